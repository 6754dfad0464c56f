//! The host's PCI devices, read from sysfs under any root, and the writes that move them
//! between drivers.
//!
//! # The API in brief
//! * [`Host::open`]`(root)` opens a sysfs tree (`/sys` by default) whose writes really happen
//!   ([`KernelWriter`]); [`Host::open_simulated`]`(root)` opens any sysfs-shaped tree whose
//!   writes are carried out by a [`SimulatedKernel`] (driver links moved, `driver_override`
//!   honoured by probe, …) so that passthrough can be tested without hardware or root.
//!   [`Host::with_writer`] takes any [`SysfsWriter`].
//! * Reading: [`Host::device_addresses`], [`Host::device`] (everything about one device),
//!   [`Host::ids`], [`Host::driver`], [`Host::driver_override`], [`Host::numa_node`],
//!   [`Host::config_space`] (header type, multifunction, PCIe/FLR, PM, ACS),
//!   [`Host::physical_function`], [`Host::virtual_functions`], [`Host::reset_methods`],
//!   [`Host::net_interfaces`], [`Host::block_devices`], [`Host::parent_bridge`],
//!   [`Host::driver_loaded`], [`Host::bound_to_vfio`].
//! * IOMMU groups: [`Host::iommu_group_num`], [`Host::iommu_group`] (members in address
//!   order), `Host::iommu_group_by_number`, [`Host::iommu_groups`] (every group, and the
//!   devices that have none).
//! * Writing, each through the one [`SysfsWriter`] of the host and each with libvirt's error
//!   wording: [`Host::set_driver_override`], [`Host::unbind`], [`Host::unbind_from`],
//!   [`Host::bind`], [`Host::drivers_probe`], [`Host::new_id`], [`Host::remove_id`],
//!   [`Host::reset`], [`Host::write_config`].
//! * Fault injection, for any host: [`Host::faults`] ([`Faults::inject`]: the Nth write of a
//!   kind fails with an errno and changes nothing) and counters of attempted writes.
//! * Drivers and modules: [`Host::choose_vfio_driver`] (from modules.alias, as libvirt does),
//!   `Host::ensure_driver_loaded` (`modules`, `module_loading.rs`); VFIO cdevs and iommufd:
//!   [`Host::vfio_cdev`] (`vfio.rs`).
//! * A VF's MAC and VLAN as its PF holds them: [`Host::vf_net`], [`Host::set_vf_net`]
//!   ([`vfnet`]; through [`netlink`] on a real host).
//! * Reports for the operator's tools: [`facts::groups_report`], [`facts::device_facts`].
//! * Fixtures: [`snapshot::HostSnapshot`] records a host as JSON and materializes it as a tree.
//!
//! # Safety of the layer
//! Device names are only ever `dddd:bb:ss.f` (formatted from [`PciAddress`]); driver names
//! are checked against `[A-Za-z0-9_.-]+`; every path is resolved beneath the root, so a
//! symlink leaving it is an error and is not followed; attribute files must be regular files;
//! writes use `O_NOFOLLOW`. A `Host` holds no mutable state besides fault counters, is
//! `Send + Sync`, and may be shared between threads.

mod class_names;
pub mod config;
mod device;
pub mod facts;
pub mod files;
mod groups;
mod module_loading;
pub mod modules;
pub mod names;
pub mod netlink;
pub mod simulator;
pub mod snapshot;
pub mod sysfs;
mod vfio;
pub mod vfnet;
pub mod writer;
mod writes;

pub use class_names::class_name;
pub use config::{ConfigSpace, HeaderType, PciePortType};
pub use module_loading::{ChoiceReason, DriverChoice, ModulesFiles};
pub use modules::ModuleOptions;
pub use simulator::SimulatedKernel;
pub use sysfs::{Resolution, Sysfs};
pub use vfio::VfioCdev;
pub use vfnet::{MacAddr, VfNet};
pub use writer::{Environment, Fault, Faults, KernelWriter, SysfsWrite, SysfsWriter, WriteKind};

use crate::error::Result;
use crate::pci::PciAddress;
use std::path::Path;
use std::sync::{Arc, RwLock};

/// The default sysfs root.
pub(crate) const DEFAULT_SYSFS_ROOT: &str = "/sys";
/// Root-relative directory of PCI devices.
pub(crate) const DEVICES_DIR: &str = "bus/pci/devices";
/// Root-relative directory of PCI drivers.
pub(crate) const DRIVERS_DIR: &str = "bus/pci/drivers";
/// Root-relative `drivers_probe` file.
pub(crate) const DRIVERS_PROBE: &str = "bus/pci/drivers_probe";
/// Root-relative directory of IOMMU groups.
pub(crate) const IOMMU_GROUPS_DIR: &str = "kernel/iommu_groups";
/// The VFIO stub driver.
pub(crate) const VFIO_PCI: &str = "vfio-pci";

/// The identifiers of a device, from its sysfs attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciIds {
    pub vendor: u16,
    pub device: u16,
    pub subsystem_vendor: Option<u16>,
    pub subsystem_device: Option<u16>,
    /// 24-bit class code (`0xCCSSPP`).
    pub class: u32,
}

impl PciIds {
    /// A PCI-to-PCI bridge (class 0x0604), which includes PCIe ports.
    pub(crate) fn is_bridge(&self) -> bool {
        self.class >> 8 == 0x0604
    }
}

/// Everything sysfs says about one device (config space apart: see [`Host::config_space`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciDevice {
    pub address: PciAddress,
    pub ids: PciIds,
    pub revision: Option<u8>,
    /// The bound driver, from the `driver` link.
    pub driver: Option<String>,
    /// `driver_override`, `None` when clear (`(null)`).
    pub driver_override: Option<String>,
    /// `numa_node`, `None` when absent or -1.
    pub numa_node: Option<i32>,
    pub iommu_group: Option<u32>,
    /// For a VF, its PF.
    pub physfn: Option<PciAddress>,
    /// For a PF, its VFs (`virtfn0`, `virtfn1`, …).
    pub virtfns: Vec<PciAddress>,
    pub sriov_totalvfs: Option<u32>,
    /// Whether the `reset` file exists (the kernel knows a reset method).
    pub(crate) has_reset: bool,
    /// `reset_method`, when the kernel has it (5.15+).
    pub reset_methods: Option<Vec<String>>,
    /// The device's directory relative to the root, symlinks resolved
    /// (e.g. `devices/pci0000:00/0000:00:1c.0/0000:03:00.0`).
    pub sysfs_path: String,
    pub net: Vec<String>,
    pub block: Vec<String>,
}

/// The short view of a device used by group listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSummary {
    pub address: PciAddress,
    pub ids: PciIds,
    pub driver: Option<String>,
}

/// One IOMMU group: its number and its members in address order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IommuGroup {
    pub number: u32,
    pub devices: Vec<PciAddress>,
}

/// Every IOMMU group of a host (by number), and the devices that belong to none.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IommuGroups {
    pub groups: Vec<IommuGroup>,
    pub no_group: Vec<PciAddress>,
}

/// A host's PCI devices under a sysfs root. See the module documentation.
#[derive(Debug)]
pub struct Host {
    sysfs: Sysfs,
    writer: Arc<dyn SysfsWriter>,
    simulator: Option<Arc<SimulatedKernel>>,
    faults: Faults,
    /// `/proc`, `/dev`, the default modules directory: the writer's (see [`Environment`]).
    environment: Environment,
    /// The modules directory in use and whether loading is allowed (the daemon may change them).
    modules: RwLock<ModuleOptions>,
}

fn dev_path(addr: &PciAddress, attr: &str) -> String {
    format!("{DEVICES_DIR}/{addr}/{attr}")
}

fn parse_hex_u16(text: &str) -> Option<u16> {
    let digits = text.strip_prefix("0x")?;
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u16::from_str_radix(digits, 16).ok()
}

fn parse_class(text: &str) -> Option<u32> {
    let digits = text.strip_prefix("0x")?;
    if digits.is_empty() || digits.len() > 6 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(digits, 16).ok()
}

fn basename(target: &str) -> &str {
    target
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("")
}

impl Host {
    /// Open the host whose sysfs is at `root` (`/sys` when `None`); writes really happen.
    pub fn open(root: Option<&Path>) -> Result<Host> {
        Host::with_writer(root, Arc::new(KernelWriter))
    }

    /// Open the host at `root` with `writer` carrying out its writes.
    pub fn with_writer(root: Option<&Path>, writer: Arc<dyn SysfsWriter>) -> Result<Host> {
        let root = root.unwrap_or(Path::new(DEFAULT_SYSFS_ROOT));
        let sysfs = Sysfs::open(root)?;
        Ok(Host::assemble(sysfs, writer, None))
    }

    /// Open the sysfs-shaped tree at `root` with a [`SimulatedKernel`]: writes are carried out
    /// on the tree with the kernel's semantics. The simulator learns native drivers when it
    /// first sees the tree (see [`simulator`]).
    pub fn open_simulated(root: &Path) -> Result<Host> {
        let sysfs = Sysfs::open(root)?;
        let kernel = Arc::new(SimulatedKernel::attach(&sysfs)?);
        Ok(Host::assemble(sysfs, kernel.clone(), Some(kernel)))
    }

    fn assemble(
        sysfs: Sysfs,
        writer: Arc<dyn SysfsWriter>,
        simulator: Option<Arc<SimulatedKernel>>,
    ) -> Host {
        let environment = writer.environment(&sysfs);
        let modules = RwLock::new(ModuleOptions {
            dir: environment.modules_dir.clone(),
            loading: true,
        });
        Host {
            sysfs,
            writer,
            simulator,
            faults: Faults::default(),
            environment,
            modules,
        }
    }

    /// Open with a given path resolution method (for tests of the user-space resolver).
    pub fn open_with_resolution(root: &Path, resolution: Resolution) -> Result<Host> {
        Ok(Host::assemble(
            Sysfs::open_with(root, resolution)?,
            Arc::new(KernelWriter),
            None,
        ))
    }

    pub fn root(&self) -> &Path {
        self.sysfs.root()
    }

    pub fn sysfs(&self) -> &Sysfs {
        &self.sysfs
    }

    /// The simulated kernel, for a host opened with [`Host::open_simulated`].
    pub fn simulator(&self) -> Option<&SimulatedKernel> {
        self.simulator.as_deref()
    }

    /// Fault injection and write counters (for every host, simulated or not).
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// The MAC and VLAN the PF `pf` holds for its VF `index`: from the simulated kernel, or
    /// through netlink from the running kernel (see [`netlink`]); refused on other trees.
    pub fn vf_net(&self, pf: &PciAddress, index: u32) -> Result<VfNet> {
        if self.vf_net_through_netlink() {
            return self.netlink_vf_net(pf, index);
        }
        if !self.keeps_vf_net() {
            return Err(netlink::not_the_running_kernel(self.root()));
        }
        self.simulated_vf_net(pf, index)
    }

    /// The simulated kernel's table entry for the VF (the zero MAC and VLAN 0 when not set).
    fn simulated_vf_net(&self, pf: &PciAddress, index: u32) -> Result<VfNet> {
        Ok(simulator::read_vf_net_table(self.root())?
            .get(&(*pf, index))
            .copied()
            .unwrap_or_default())
    }

    /// Whether the host's writer keeps a VF's MAC and VLAN (the simulated kernel does; the
    /// running kernel is asked through netlink instead, `Host::vf_net_through_netlink`).
    pub fn keeps_vf_net(&self) -> bool {
        self.writer.keeps_vf_net()
    }

    /// What [`Host::vf_net`] says, for reading tools: on a tree the simulated kernel keeps
    /// (its `.virtpci-sim/` directory is there) even when opened without it, and `None` on a
    /// tree that is neither instead of an error; on the running kernel what netlink says
    /// (`None` when the PF's driver does not say).
    pub(crate) fn recorded_vf_net(&self, pf: &PciAddress, index: u32) -> Result<Option<VfNet>> {
        if self.vf_net_through_netlink() {
            return Ok(self.netlink_vf_net(pf, index).ok());
        }
        if self.keeps_vf_net() || self.root().join(simulator::SIM_DIR).is_dir() {
            self.simulated_vf_net(pf, index).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Set the MAC and VLAN the PF `pf` holds for its VF `index` (a [`WriteKind::VfNet`]
    /// write: fault injection applies), or through netlink on the running kernel (fault
    /// injection applies there too); refused on other trees.
    pub fn set_vf_net(&self, pf: &PciAddress, index: u32, net: VfNet) -> Result<()> {
        if self.vf_net_through_netlink() {
            return self.netlink_set_vf_net(pf, index, net);
        }
        if !self.keeps_vf_net() {
            return Err(netlink::not_the_running_kernel(self.root()));
        }
        self.require_device(pf)?;
        let data = net.to_data(index);
        self.write(
            WriteKind::VfNet,
            &dev_path(pf, vfnet::VF_NET_ATTR),
            data.as_bytes(),
            0,
            || {
                format!(
                    "Failed to set MAC address {} and VLAN {} of VF {index} of PF {pf}",
                    net.mac, net.vlan
                )
            },
        )
    }
}
