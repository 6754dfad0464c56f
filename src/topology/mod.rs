//! PCI topology facts: connect flags, the PCI controller models, and which bus accepts what.
//!
//! These mirror libvirt 9.0 with QEMU 7.2 capabilities: the generic `pcie-root-port` and the
//! `pcie-pci-bridge` exist, and QEMU tells transitional from non-transitional virtio devices.

use std::fmt;
use std::ops::{BitAnd, BitOr, BitOrAssign};

/// What a device needs from the bus it plugs into, or what a bus accepts (libvirt's
/// `virDomainPCIConnectFlags`). The bit values are libvirt's, so a value in a message such as
/// "connect flags 0x..." matches what libvirt prints.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ConnectFlags(pub u32);

impl ConnectFlags {
    pub const NONE: ConnectFlags = ConnectFlags(0);
    /// Device: its address is picked automatically. Bus: automatic placement allowed.
    pub const AUTOASSIGN: ConnectFlags = ConnectFlags(1 << 0);
    /// Device needs hotplug; bus supports hotplug.
    pub const HOTPLUGGABLE: ConnectFlags = ConnectFlags(1 << 1);
    /// Device must sit directly on bus 0.
    pub const INTEGRATED: ConnectFlags = ConnectFlags(1 << 2);
    /// Several such devices may share one slot, one per function (pcie-root-port).
    pub const AGGREGATE_SLOT: ConnectFlags = ConnectFlags(1 << 3);
    pub const PCI_DEVICE: ConnectFlags = ConnectFlags(1 << 4);
    pub const PCIE_DEVICE: ConnectFlags = ConnectFlags(1 << 5);
    pub const PCIE_ROOT_PORT: ConnectFlags = ConnectFlags(1 << 6);
    pub const PCIE_SWITCH_UPSTREAM_PORT: ConnectFlags = ConnectFlags(1 << 7);
    pub const PCIE_SWITCH_DOWNSTREAM_PORT: ConnectFlags = ConnectFlags(1 << 8);
    pub const DMI_TO_PCI_BRIDGE: ConnectFlags = ConnectFlags(1 << 9);
    pub const PCI_EXPANDER_BUS: ConnectFlags = ConnectFlags(1 << 10);
    pub const PCIE_EXPANDER_BUS: ConnectFlags = ConnectFlags(1 << 11);
    pub const PCI_BRIDGE: ConnectFlags = ConnectFlags(1 << 12);
    pub const PCIE_TO_PCI_BRIDGE: ConnectFlags = ConnectFlags(1 << 13);

    /// virtpci, not libvirt: a placement preference (`hotplug='no'`) letting an
    /// automatically placed device sit on a bus that neither supports hotplug nor allows
    /// automatic placement, such as q35's pcie-root (as an integrated endpoint).
    pub const PLACE_WITHOUT_HOTPLUG: ConnectFlags = ConnectFlags(1 << 16);
    /// virtpci, not libvirt: extend mode packs devices that are never hot-plugged into
    /// the functions of shared slots (multifunction), eight to a slot.
    pub const PACK_FUNCTIONS: ConnectFlags = ConnectFlags(1 << 17);
    /// virtpci, not libvirt: extend mode on q35 may put this PCI Express endpoint on
    /// conventional PCI (a bridge slot) instead, for a device QEMU runs on either side
    /// (virtio, VFIO host devices, XHCI). A PCI Express port costs a bus number for one
    /// slot; a bridge holds 31 slots on one.
    pub const EITHER_SIDE: ConnectFlags = ConnectFlags(1 << 18);

    /// libvirt's bits (what its messages print).
    pub const LIBVIRT_MASK: ConnectFlags = ConnectFlags(0xFFFF);

    /// Every "type" bit (what kind of thing plugs in), without the behaviour bits.
    pub const TYPES_MASK: ConnectFlags = ConnectFlags(0x3FF0);
    /// Both kinds of endpoint.
    pub const ENDPOINTS: ConnectFlags = ConnectFlags((1 << 4) | (1 << 5));

    /// A conventional PCI endpoint placed automatically.
    pub const PCI_AUTO: ConnectFlags = ConnectFlags((1 << 4) | 1);
    /// A PCI Express endpoint placed automatically.
    pub const PCIE_AUTO: ConnectFlags = ConnectFlags((1 << 5) | 1);

    pub fn contains(self, other: ConnectFlags) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn intersects(self, other: ConnectFlags) -> bool {
        self.0 & other.0 != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn without(self, other: ConnectFlags) -> ConnectFlags {
        ConnectFlags(self.0 & !other.0)
    }

    /// An [`Self::EITHER_SIDE`] device as a conventional PCI endpoint: the same placement
    /// bits (hotplug, packing) with PCI_DEVICE for PCIE_DEVICE.
    pub fn as_conventional(self) -> ConnectFlags {
        self.without(ConnectFlags::PCIE_DEVICE | ConnectFlags::EITHER_SIDE)
            | ConnectFlags::PCI_DEVICE
    }

    /// The first type bit in libvirt's reporting order, worded as libvirt's
    /// "It requires a controller that accepts a %s." message words it.
    pub fn required_type_name(self) -> Option<&'static str> {
        const ORDER: [(ConnectFlags, &str); 10] = [
            (ConnectFlags::PCI_DEVICE, "standard PCI device"),
            (ConnectFlags::PCIE_DEVICE, "PCI Express device"),
            (ConnectFlags::PCIE_ROOT_PORT, "pcie-root-port"),
            (
                ConnectFlags::PCIE_SWITCH_UPSTREAM_PORT,
                "pcie-switch-upstream-port",
            ),
            (
                ConnectFlags::PCIE_SWITCH_DOWNSTREAM_PORT,
                "pcie-switch-downstream-port",
            ),
            (ConnectFlags::DMI_TO_PCI_BRIDGE, "dmi-to-pci-bridge"),
            (ConnectFlags::PCIE_TO_PCI_BRIDGE, "pcie-to-pci-bridge"),
            (ConnectFlags::PCI_EXPANDER_BUS, "pci-expander-bus"),
            (ConnectFlags::PCIE_EXPANDER_BUS, "pcie-expander-bus"),
            (ConnectFlags::PCI_BRIDGE, "pci-bridge"),
        ];
        ORDER
            .iter()
            .find(|(bit, _)| self.intersects(*bit))
            .map(|(_, name)| *name)
    }
}

impl BitOr for ConnectFlags {
    type Output = ConnectFlags;
    fn bitor(self, rhs: ConnectFlags) -> ConnectFlags {
        ConnectFlags(self.0 | rhs.0)
    }
}

impl BitOrAssign for ConnectFlags {
    fn bitor_assign(&mut self, rhs: ConnectFlags) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for ConnectFlags {
    type Output = ConnectFlags;
    fn bitand(self, rhs: ConnectFlags) -> ConnectFlags {
        ConnectFlags(self.0 & rhs.0)
    }
}

impl fmt::Debug for ConnectFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnectFlags({:#x})", self.0)
    }
}

/// The models of `<controller type='pci'>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum PciModel {
    PciRoot,
    PcieRoot,
    PciBridge,
    DmiToPciBridge,
    PcieToPciBridge,
    PcieRootPort,
    PcieSwitchUpstreamPort,
    PcieSwitchDownstreamPort,
    PciExpanderBus,
    PcieExpanderBus,
}

impl PciModel {
    pub const ALL: [PciModel; 10] = [
        PciModel::PciRoot,
        PciModel::PcieRoot,
        PciModel::PciBridge,
        PciModel::DmiToPciBridge,
        PciModel::PcieToPciBridge,
        PciModel::PcieRootPort,
        PciModel::PcieSwitchUpstreamPort,
        PciModel::PcieSwitchDownstreamPort,
        PciModel::PciExpanderBus,
        PciModel::PcieExpanderBus,
    ];

    /// The XML spelling (`model='...'`).
    pub fn name(self) -> &'static str {
        match self {
            PciModel::PciRoot => "pci-root",
            PciModel::PcieRoot => "pcie-root",
            PciModel::PciBridge => "pci-bridge",
            PciModel::DmiToPciBridge => "dmi-to-pci-bridge",
            PciModel::PcieToPciBridge => "pcie-to-pci-bridge",
            PciModel::PcieRootPort => "pcie-root-port",
            PciModel::PcieSwitchUpstreamPort => "pcie-switch-upstream-port",
            PciModel::PcieSwitchDownstreamPort => "pcie-switch-downstream-port",
            PciModel::PciExpanderBus => "pci-expander-bus",
            PciModel::PcieExpanderBus => "pcie-expander-bus",
        }
    }

    pub fn from_name(name: &str) -> Option<PciModel> {
        PciModel::ALL.into_iter().find(|m| m.name() == name)
    }

    pub fn is_root(self) -> bool {
        matches!(self, PciModel::PciRoot | PciModel::PcieRoot)
    }

    /// What a controller of this model needs from its parent bus
    /// (`virDomainPCIControllerModelToConnectType`). Roots plug into nothing.
    pub fn connect_flags(self) -> ConnectFlags {
        match self {
            PciModel::PciRoot | PciModel::PcieRoot => ConnectFlags::NONE,
            PciModel::PciBridge => ConnectFlags::PCI_BRIDGE,
            PciModel::PciExpanderBus => ConnectFlags::PCI_EXPANDER_BUS,
            PciModel::PcieExpanderBus => ConnectFlags::PCIE_EXPANDER_BUS,
            PciModel::DmiToPciBridge => ConnectFlags::DMI_TO_PCI_BRIDGE,
            PciModel::PcieToPciBridge => ConnectFlags::PCIE_TO_PCI_BRIDGE,
            PciModel::PcieRootPort => ConnectFlags::PCIE_ROOT_PORT | ConnectFlags::AGGREGATE_SLOT,
            PciModel::PcieSwitchUpstreamPort => ConnectFlags::PCIE_SWITCH_UPSTREAM_PORT,
            PciModel::PcieSwitchDownstreamPort => ConnectFlags::PCIE_SWITCH_DOWNSTREAM_PORT,
        }
    }

    /// The model whose controller needs exactly these connect flags, if any
    /// (`virDomainPCIControllerConnectTypeToModel`).
    pub fn from_connect_flags(flags: ConnectFlags) -> Option<PciModel> {
        let types = flags & ConnectFlags::TYPES_MASK;
        [
            (ConnectFlags::PCIE_ROOT_PORT, PciModel::PcieRootPort),
            (
                ConnectFlags::PCIE_SWITCH_UPSTREAM_PORT,
                PciModel::PcieSwitchUpstreamPort,
            ),
            (
                ConnectFlags::PCIE_SWITCH_DOWNSTREAM_PORT,
                PciModel::PcieSwitchDownstreamPort,
            ),
            (ConnectFlags::DMI_TO_PCI_BRIDGE, PciModel::DmiToPciBridge),
            (ConnectFlags::PCIE_TO_PCI_BRIDGE, PciModel::PcieToPciBridge),
            (ConnectFlags::PCI_EXPANDER_BUS, PciModel::PciExpanderBus),
            (ConnectFlags::PCIE_EXPANDER_BUS, PciModel::PcieExpanderBus),
            (ConnectFlags::PCI_BRIDGE, PciModel::PciBridge),
        ]
        .into_iter()
        .find(|(bit, _)| types.intersects(*bit))
        .map(|(_, model)| model)
    }

    /// The QEMU device name libvirt fills into `<model name=...>` when none is given.
    pub fn default_model_name(self) -> Option<&'static str> {
        match self {
            PciModel::PciBridge => Some("pci-bridge"),
            PciModel::DmiToPciBridge => Some("i82801b11-bridge"),
            PciModel::PcieToPciBridge => Some("pcie-pci-bridge"),
            PciModel::PcieRootPort => Some("pcie-root-port"),
            PciModel::PcieSwitchUpstreamPort => Some("x3130-upstream"),
            PciModel::PcieSwitchDownstreamPort => Some("xio3130-downstream"),
            PciModel::PciExpanderBus => Some("pxb"),
            PciModel::PcieExpanderBus => Some("pxb-pcie"),
            PciModel::PciRoot | PciModel::PcieRoot => None,
        }
    }

    /// The `<model name>` values valid for this model (QEMU 7.2 has all of them).
    pub fn valid_model_names(self) -> &'static [&'static str] {
        match self {
            PciModel::PciBridge => &["pci-bridge"],
            PciModel::DmiToPciBridge => &["i82801b11-bridge"],
            PciModel::PcieToPciBridge => &["pcie-pci-bridge"],
            PciModel::PcieRootPort => &["pcie-root-port", "ioh3420"],
            PciModel::PcieSwitchUpstreamPort => &["x3130-upstream"],
            PciModel::PcieSwitchDownstreamPort => &["xio3130-downstream"],
            PciModel::PciExpanderBus => &["pxb"],
            PciModel::PcieExpanderBus => &["pxb-pcie"],
            PciModel::PciRoot | PciModel::PcieRoot => &[],
        }
    }

    /// What a bus of this model accepts and its slot range (`virDomainPCIAddressBusSetModel`).
    /// `hotplug` is false only for a controller with `hotplug='off'`.
    pub fn bus_rules(self, hotplug: bool) -> BusRules {
        use ConnectFlags as F;
        let hp = if hotplug { F::HOTPLUGGABLE } else { F::NONE };
        let (accepts, min_slot, max_slot) = match self {
            PciModel::PciRoot => (
                F::AUTOASSIGN | F::PCI_DEVICE | F::PCI_BRIDGE | F::PCI_EXPANDER_BUS | hp,
                1,
                31,
            ),
            PciModel::PciBridge => (F::AUTOASSIGN | F::PCI_DEVICE | F::PCI_BRIDGE | hp, 1, 31),
            PciModel::PciExpanderBus => (F::AUTOASSIGN | F::PCI_DEVICE | F::PCI_BRIDGE | hp, 0, 31),
            PciModel::PcieRoot => (
                F::PCIE_DEVICE | F::PCIE_ROOT_PORT | F::DMI_TO_PCI_BRIDGE | F::PCIE_EXPANDER_BUS,
                1,
                31,
            ),
            PciModel::DmiToPciBridge => (F::PCI_DEVICE | F::PCI_BRIDGE, 0, 31),
            PciModel::PcieToPciBridge => {
                (F::AUTOASSIGN | F::PCI_DEVICE | F::PCI_BRIDGE | hp, 1, 31)
            }
            PciModel::PcieRootPort | PciModel::PcieSwitchDownstreamPort => (
                F::AUTOASSIGN
                    | F::PCIE_DEVICE
                    | F::PCIE_SWITCH_UPSTREAM_PORT
                    | F::PCIE_TO_PCI_BRIDGE
                    | hp,
                0,
                0,
            ),
            PciModel::PcieSwitchUpstreamPort => (F::PCIE_SWITCH_DOWNSTREAM_PORT, 0, 31),
            PciModel::PcieExpanderBus => (F::PCIE_ROOT_PORT | F::DMI_TO_PCI_BRIDGE, 0, 31),
        };
        BusRules {
            accepts,
            min_slot,
            max_slot,
        }
    }

    /// Whether `<target hotplug=...>` may be set on this model.
    pub fn takes_hotplug_option(self) -> bool {
        matches!(
            self,
            PciModel::PciRoot | PciModel::PcieRootPort | PciModel::PcieSwitchDownstreamPort
        )
    }
}

impl fmt::Display for PciModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What one bus accepts and which slots it has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusRules {
    pub accepts: ConnectFlags,
    pub min_slot: u32,
    pub max_slot: u32,
}

/// The machine families whose chipset rules virtpci knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MachineKind {
    /// `pc`, `pc-i440fx-*` and the old `pc-0.*`/`pc-1.*`: PIIX3 on pci-root.
    I440fx,
    /// `q35`, `pc-q35-*`: ICH9 on pcie-root.
    Q35,
    /// s390x `s390-ccw-virtio*`: virtio devices on the channel subsystem (CCW), PCI on a
    /// pci-root with zPCI identifiers.
    S390Ccw,
    /// aarch64 and armv7l `virt`, `virt-*`: a generic PCI Express host bridge (pcie-root), no
    /// chipset.
    ArmVirt,
    /// riscv64 `virt`: a generic PCI Express host bridge (pcie-root), no chipset.
    RiscvVirt,
    /// ppc64 `pseries`, `pseries-*`: conventional PCI on PCI host bridges (PHBs), each a
    /// `pci-root` with model name `spapr-pci-host-bridge`; consoles, NVRAM and ibmvscsi on
    /// the spapr-vio bus.
    Pseries,
    /// Anything else (isapc, microvm, sbsa-ref, other architectures): not placed by
    /// virtpci, refused before planning (see [`MachineKind::from_os`]).
    Other,
}

impl MachineKind {
    /// Classify a `<type machine=...>` value the way libvirt's qemuDomainIsI440FX/IsQ35 do.
    /// A missing machine is QEMU's default for x86_64, an i440fx `pc`.
    pub fn from_machine(machine: Option<&str>) -> MachineKind {
        let Some(m) = machine else {
            return MachineKind::I440fx;
        };
        if m == "q35" || m.starts_with("pc-q35-") {
            MachineKind::Q35
        } else if m == "pc"
            || m.starts_with("pc-0.")
            || m.starts_with("pc-1.")
            || m.starts_with("pc-i440fx-")
            || m.starts_with("rhel")
        {
            MachineKind::I440fx
        } else {
            MachineKind::Other
        }
    }

    /// The one place that says which guests virtpci places: the architecture and machine
    /// type of `<os><type arch=... machine=...>`. Anything that maps to
    /// [`MachineKind::Other`] is refused as an unsupported configuration. A missing
    /// architecture is x86 (libvirt takes the host's; virtpci's callers are x86 hosts). A
    /// missing machine type on aarch64, armv7l and riscv64 is `virt`, QEMU 10.0's default there
    /// (QEMU 7.2's defaults have no PCI: the planner refuses them at libvirt 9.0).
    pub fn from_os(arch: Option<&str>, machine: Option<&str>) -> MachineKind {
        let is_virt = |m: Option<&str>| m.map_or(true, |m| m == "virt" || m.starts_with("virt-"));
        match arch {
            None | Some("x86_64" | "i686") => MachineKind::from_machine(machine),
            Some("aarch64" | "armv7l") if is_virt(machine) => MachineKind::ArmVirt,
            Some("riscv64") if is_virt(machine) => MachineKind::RiscvVirt,
            Some("s390x") if machine.map_or(true, |m| m.starts_with("s390-ccw")) => {
                MachineKind::S390Ccw
            }
            Some("ppc64" | "ppc64le") if machine.map_or(true, |m| m.starts_with("pseries")) => {
                MachineKind::Pseries
            }
            _ => MachineKind::Other,
        }
    }

    /// The machines with a generic PCI Express host bridge and nothing else on it: virtio
    /// devices may take virtio-mmio instead of PCI there.
    pub fn is_virt(self) -> bool {
        matches!(self, MachineKind::ArmVirt | MachineKind::RiscvVirt)
    }

    /// The root controller model this machine needs at index 0.
    pub fn root_model(self) -> PciModel {
        match self {
            MachineKind::Q35 | MachineKind::ArmVirt | MachineKind::RiscvVirt => PciModel::PcieRoot,
            _ => PciModel::PciRoot,
        }
    }

    /// The QEMU binary libvirt runs for this machine on `arch` (as its messages name it).
    pub fn emulator(self, arch: Option<&str>) -> &'static str {
        match self {
            MachineKind::ArmVirt if arch == Some("armv7l") => "/usr/bin/qemu-system-arm",
            MachineKind::ArmVirt => "/usr/bin/qemu-system-aarch64",
            MachineKind::RiscvVirt => "/usr/bin/qemu-system-riscv64",
            MachineKind::S390Ccw => "/usr/bin/qemu-system-s390x",
            MachineKind::Pseries => "/usr/bin/qemu-system-ppc64",
            _ => "/usr/bin/qemu-system-x86_64",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_round_trip() {
        for m in PciModel::ALL {
            assert_eq!(PciModel::from_name(m.name()), Some(m));
        }
        assert_eq!(PciModel::from_name("pci-foo"), None);
    }

    #[test]
    fn connect_flags_map_back_to_models() {
        for m in PciModel::ALL.into_iter().filter(|m| !m.is_root()) {
            assert_eq!(PciModel::from_connect_flags(m.connect_flags()), Some(m));
        }
    }

    #[test]
    fn machines_classify() {
        assert_eq!(MachineKind::from_machine(Some("pc")), MachineKind::I440fx);
        assert_eq!(
            MachineKind::from_machine(Some("pc-i440fx-7.2")),
            MachineKind::I440fx
        );
        assert_eq!(MachineKind::from_machine(Some("q35")), MachineKind::Q35);
        assert_eq!(
            MachineKind::from_machine(Some("pc-q35-7.2")),
            MachineKind::Q35
        );
        assert_eq!(MachineKind::from_machine(Some("isapc")), MachineKind::Other);
        assert_eq!(MachineKind::from_machine(None), MachineKind::I440fx);
        let s390 = |m| MachineKind::from_os(Some("s390x"), m);
        assert_eq!(s390(Some("s390-ccw-virtio")), MachineKind::S390Ccw);
        assert_eq!(s390(Some("s390-ccw-virtio-7.2")), MachineKind::S390Ccw);
        assert_eq!(s390(None), MachineKind::S390Ccw);
        assert_eq!(s390(Some("pc")), MachineKind::Other);
    }

    #[test]
    fn supported_machines_by_architecture() {
        use MachineKind::*;
        assert_eq!(MachineKind::from_os(Some("x86_64"), Some("q35")), Q35);
        assert_eq!(MachineKind::from_os(None, Some("pc")), I440fx);
        assert_eq!(MachineKind::from_os(Some("aarch64"), Some("virt")), ArmVirt);
        assert_eq!(
            MachineKind::from_os(Some("aarch64"), Some("virt-7.2")),
            ArmVirt
        );
        assert_eq!(
            MachineKind::from_os(Some("riscv64"), Some("virt")),
            RiscvVirt
        );
        assert_eq!(MachineKind::from_os(Some("riscv64"), None), RiscvVirt);
        assert_eq!(
            MachineKind::from_os(Some("aarch64"), Some("sbsa-ref")),
            Other
        );
        assert_eq!(MachineKind::from_os(Some("x86_64"), Some("virt")), Other);
        assert_eq!(MachineKind::from_os(Some("armv7l"), Some("virt")), ArmVirt);
        assert_eq!(MachineKind::from_os(Some("armv6l"), Some("virt")), Other);
        assert_eq!(MachineKind::from_os(Some("x86_64"), Some("microvm")), Other);
        assert_eq!(
            MachineKind::from_os(Some("ppc64"), Some("pseries")),
            Pseries
        );
        assert_eq!(MachineKind::from_os(Some("ppc64le"), None), Pseries);
        assert_eq!(MachineKind::from_os(Some("ppc64"), Some("powernv")), Other);
        assert_eq!(
            MachineKind::from_os(Some("s390x"), Some("s390-ccw-virtio")),
            S390Ccw
        );
    }

    #[test]
    fn type_names_follow_libvirt_order() {
        let f = ConnectFlags::PCI_DEVICE | ConnectFlags::PCIE_DEVICE;
        assert_eq!(f.required_type_name(), Some("standard PCI device"));
        assert_eq!(
            ConnectFlags::DMI_TO_PCI_BRIDGE.required_type_name(),
            Some("dmi-to-pci-bridge")
        );
        assert_eq!(ConnectFlags::AUTOASSIGN.required_type_name(), None);
    }
}
