//! The emulator's capabilities that change libvirt's PCI layout: which controller models and
//! device variants QEMU offers decides the root port model, how a legacy PCI device gets a
//! bus on q35, whether virtio devices are PCI Express, and the default models libvirt writes.
//!
//! Capabilities are named as libvirt's capability cache names them (`<flag name='...'/>`
//! in its capabilities XML), so a daemon can pass what its own probe found. Without any, the
//! emulator of the libvirt level is assumed (QEMU 7.2 for 9.0, QEMU 10.0 for 11.3), which
//! has every capability virtpci reads.

use crate::error::{Error, Result};
use crate::xml::Document;
use std::fmt;

/// One capability virtpci reads. The names are libvirt's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmulatorCap {
    /// The generic `pcie-root-port`: libvirt's default root port model, else `ioh3420`.
    PcieRootPort,
    /// `ioh3420`, the Intel root port.
    Ioh3420,
    /// `pcie-pci-bridge`: a legacy PCI device on a PCI Express machine gets a root port and
    /// a pcie-to-pci-bridge; without it a dmi-to-pci-bridge and a pci-bridge.
    PcieToPciBridge,
    /// The virtio `*-pci-non-transitional` devices: with them virtio devices are PCI
    /// Express endpoints on q35, without them conventional PCI.
    VirtioPciNonTransitional,
    /// `qemu-xhci`: q35's default USB controller.
    QemuXhci,
    /// `nec-usb-xhci`: q35's default USB controller without qemu-xhci.
    NecUsbXhci,
    /// `ich9-usb-ehci1`: q35's default USB controller (with its three UHCI companions)
    /// without either XHCI.
    Ich9UsbEhci1,
    /// `piix3-usb-uhci`: the model a USB controller written without one gets on x86.
    Piix3UsbUhci,
    /// `cirrus-vga`: the default video model on x86.
    CirrusVga,
    /// `VGA`: the default video model on x86 without cirrus.
    Vga,
    /// `rtl8139`: the default NIC model.
    Rtl8139,
    /// `e1000`: the default NIC model without rtl8139.
    E1000,
    /// `virtio-net`: the default NIC model without rtl8139 and e1000.
    VirtioNet,
    /// `lsi`: the default SCSI controller model on x86.
    ScsiLsi,
    /// `virtio-scsi-pci`: the default SCSI controller model without lsi.
    VirtioScsi,
    /// `pci-bridge`; like the five below, a PCI controller of that QEMU device is refused
    /// without it.
    PciBridge,
    /// `dmi-to-pci-bridge` (QEMU's i82801b11-bridge).
    DmiToPciBridge,
    /// `x3130-upstream`, the PCIe switch's upstream port.
    X3130Upstream,
    /// `xio3130-downstream`, the PCIe switch's downstream ports.
    Xio3130Downstream,
    /// `pxb`, the PCI expander bus.
    Pxb,
    /// `pxb-pcie`, the PCI Express expander bus.
    PxbPcie,
    /// `piix4.acpi-root-pci-hotplug`: `<target hotplug>` on pc's pci-root is refused
    /// without it.
    Piix4AcpiRootPciHotplug,
    /// `pcie-root-port.hotplug`: `<target hotplug>` on a root or downstream port is refused
    /// without it.
    PcieRootPortHotplug,
}

impl EmulatorCap {
    /// Every capability virtpci reads, in the order of [`EmulatorCap::name`]'s list.
    pub const ALL: [EmulatorCap; 23] = [
        EmulatorCap::PcieRootPort,
        EmulatorCap::Ioh3420,
        EmulatorCap::PcieToPciBridge,
        EmulatorCap::VirtioPciNonTransitional,
        EmulatorCap::QemuXhci,
        EmulatorCap::NecUsbXhci,
        EmulatorCap::Ich9UsbEhci1,
        EmulatorCap::Piix3UsbUhci,
        EmulatorCap::CirrusVga,
        EmulatorCap::Vga,
        EmulatorCap::Rtl8139,
        EmulatorCap::E1000,
        EmulatorCap::VirtioNet,
        EmulatorCap::ScsiLsi,
        EmulatorCap::VirtioScsi,
        EmulatorCap::PciBridge,
        EmulatorCap::DmiToPciBridge,
        EmulatorCap::X3130Upstream,
        EmulatorCap::Xio3130Downstream,
        EmulatorCap::Pxb,
        EmulatorCap::PxbPcie,
        EmulatorCap::Piix4AcpiRootPciHotplug,
        EmulatorCap::PcieRootPortHotplug,
    ];

    /// [`EmulatorCap::name`] as a C string (for the C API's list of names).
    pub const fn c_name(self) -> &'static std::ffi::CStr {
        match self {
            EmulatorCap::PcieRootPort => c"pcie-root-port",
            EmulatorCap::Ioh3420 => c"ioh3420",
            EmulatorCap::PcieToPciBridge => c"pcie-pci-bridge",
            EmulatorCap::VirtioPciNonTransitional => c"virtio-pci-non-transitional",
            EmulatorCap::QemuXhci => c"qemu-xhci",
            EmulatorCap::NecUsbXhci => c"nec-usb-xhci",
            EmulatorCap::Ich9UsbEhci1 => c"ich9-usb-ehci1",
            EmulatorCap::Piix3UsbUhci => c"piix3-usb-uhci",
            EmulatorCap::CirrusVga => c"cirrus-vga",
            EmulatorCap::Vga => c"VGA",
            EmulatorCap::Rtl8139 => c"rtl8139",
            EmulatorCap::E1000 => c"e1000",
            EmulatorCap::VirtioNet => c"virtio-net",
            EmulatorCap::ScsiLsi => c"lsi",
            EmulatorCap::VirtioScsi => c"virtio-scsi-pci",
            EmulatorCap::PciBridge => c"pci-bridge",
            EmulatorCap::DmiToPciBridge => c"dmi-to-pci-bridge",
            EmulatorCap::X3130Upstream => c"x3130-upstream",
            EmulatorCap::Xio3130Downstream => c"xio3130-downstream",
            EmulatorCap::Pxb => c"pxb",
            EmulatorCap::PxbPcie => c"pxb-pcie",
            EmulatorCap::Piix4AcpiRootPciHotplug => c"piix4.acpi-root-pci-hotplug",
            EmulatorCap::PcieRootPortHotplug => c"pcie-root-port.hotplug",
        }
    }

    /// libvirt's name of the capability (qemu_capabilities.c).
    pub fn name(self) -> &'static str {
        self.c_name().to_str().expect("ASCII")
    }

    pub fn from_name(name: &str) -> Option<EmulatorCap> {
        EmulatorCap::ALL.into_iter().find(|c| c.name() == name)
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

/// The set of capabilities an emulator has (of those virtpci reads).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct EmulatorCaps(u32);

impl EmulatorCaps {
    /// No capability at all.
    pub const NONE: EmulatorCaps = EmulatorCaps(0);
    /// Every capability virtpci reads: what QEMU 7.2 and 10.0, the emulators of the
    /// reproduced libvirt levels, have.
    pub const LEVEL_DEFAULT: EmulatorCaps = EmulatorCaps((1 << EmulatorCap::ALL.len()) - 1);

    pub fn has(self, cap: EmulatorCap) -> bool {
        self.0 & cap.bit() != 0
    }

    pub fn with(self, cap: EmulatorCap) -> EmulatorCaps {
        EmulatorCaps(self.0 | cap.bit())
    }

    /// From capability names as libvirt spells them; names virtpci does not read are
    /// ignored (libvirt has hundreds that do not touch PCI placement).
    pub fn from_names<'n>(names: impl IntoIterator<Item = &'n str>) -> EmulatorCaps {
        names
            .into_iter()
            .filter_map(EmulatorCap::from_name)
            .fold(EmulatorCaps::NONE, EmulatorCaps::with)
    }

    /// From libvirt's capabilities cache XML (`<qemuCaps>` with one `<flag name='...'/>`
    /// per capability, the format of its tests' `caps_*.xml`).
    pub fn from_capabilities_xml(xml: &str) -> Result<EmulatorCaps> {
        let doc = Document::parse(xml)?;
        if doc.name(doc.root) != "qemuCaps" {
            return Err(Error::xml(format!(
                "expected libvirt's QEMU capabilities (<qemuCaps>), found <{}>",
                crate::error::quote(doc.name(doc.root))
            )));
        }
        let names = doc
            .children_named(doc.root, "flag")
            .filter_map(|f| doc.attr(f, "name"));
        Ok(EmulatorCaps::from_names(names))
    }

    /// The names of the capabilities held, in [`EmulatorCap::ALL`]'s order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        EmulatorCap::ALL
            .into_iter()
            .filter(move |c| self.has(*c))
            .map(EmulatorCap::name)
    }
}

impl Default for EmulatorCaps {
    fn default() -> EmulatorCaps {
        EmulatorCaps::LEVEL_DEFAULT
    }
}

impl fmt::Debug for EmulatorCaps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_are_ignored() {
        for cap in EmulatorCap::ALL {
            assert_eq!(EmulatorCap::from_name(cap.name()), Some(cap));
        }
        let caps = EmulatorCaps::from_names(["ioh3420", "kvm", "pcie-pci-bridge", ""]);
        assert!(caps.has(EmulatorCap::Ioh3420));
        assert!(caps.has(EmulatorCap::PcieToPciBridge));
        assert!(!caps.has(EmulatorCap::PcieRootPort));
        assert_eq!(
            caps.names().collect::<Vec<_>>(),
            ["ioh3420", "pcie-pci-bridge"]
        );
        assert_eq!(
            EmulatorCaps::from_names(EmulatorCap::ALL.map(EmulatorCap::name)),
            EmulatorCaps::LEVEL_DEFAULT
        );
    }

    #[test]
    fn capabilities_xml_gives_its_flags() {
        let xml = "<qemuCaps>\n  <emulator binary='/usr/bin/qemu-system-x86_64'/>\n  \
                   <flag name='kvm'/>\n  <flag name='qemu-xhci'/>\n  <flag name='VGA'/>\n</qemuCaps>\n";
        let caps = EmulatorCaps::from_capabilities_xml(xml).unwrap();
        assert_eq!(caps.names().collect::<Vec<_>>(), ["qemu-xhci", "VGA"]);
        let err = EmulatorCaps::from_capabilities_xml("<domain/>").unwrap_err();
        assert!(err.to_string().contains("<qemuCaps>"), "{err}");
    }
}
