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
//!   order), [`Host::iommu_group_by_number`], [`Host::iommu_groups`] (every group, and the
//!   devices that have none).
//! * Writing, each through the one [`SysfsWriter`] of the host and each with libvirt's error
//!   wording: [`Host::set_driver_override`], [`Host::unbind`], [`Host::unbind_from`],
//!   [`Host::bind`], [`Host::drivers_probe`], [`Host::new_id`], [`Host::remove_id`],
//!   [`Host::reset`], [`Host::write_config`].
//! * Fault injection, for any host: [`Host::faults`] ([`Faults::inject`]: the Nth write of a
//!   kind fails with an errno and changes nothing) and counters of attempted writes.
//! * Fixtures: [`snapshot::HostSnapshot`] records a host as JSON and materializes it as a tree.
//!
//! # Safety of the layer
//! Device names are only ever `dddd:bb:ss.f` (formatted from [`PciAddress`]); driver names
//! are checked against `[A-Za-z0-9_.-]+`; every path is resolved beneath the root, so a
//! symlink leaving it is an error and is not followed; attribute files must be regular files;
//! writes use `O_NOFOLLOW`. A `Host` holds no mutable state besides fault counters, is
//! `Send + Sync`, and may be shared between threads.

pub mod config;
pub mod facts;
pub mod files;
pub mod names;
pub mod simulator;
pub mod snapshot;
pub mod sysfs;
pub mod vfnet;
pub mod writer;

pub use config::{ConfigSpace, HeaderType, PciePortType};
pub use simulator::SimulatedKernel;
pub use sysfs::{Resolution, Sysfs};
pub use vfnet::{MacAddr, VfNet};
pub use writer::{Fault, Faults, KernelWriter, SysfsWrite, SysfsWriter, WriteKind};

use crate::error::{Error, ErrorCode, Result};
use crate::pci::PciAddress;
use names::{check_driver_name, is_valid_driver_name, parse_device_name, parse_device_name_bytes};
use std::path::Path;
use std::sync::Arc;

/// The default sysfs root.
pub const DEFAULT_SYSFS_ROOT: &str = "/sys";
/// Root-relative directory of PCI devices.
pub const DEVICES_DIR: &str = "bus/pci/devices";
/// Root-relative directory of PCI drivers.
pub const DRIVERS_DIR: &str = "bus/pci/drivers";
/// Root-relative `drivers_probe` file.
pub const DRIVERS_PROBE: &str = "bus/pci/drivers_probe";
/// Root-relative directory of IOMMU groups.
pub const IOMMU_GROUPS_DIR: &str = "kernel/iommu_groups";
/// The VFIO stub driver.
pub const VFIO_PCI: &str = "vfio-pci";

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
    pub fn is_bridge(&self) -> bool {
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
    pub has_reset: bool,
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
        Ok(Host {
            sysfs,
            writer,
            simulator: None,
            faults: Faults::default(),
        })
    }

    /// Open the sysfs-shaped tree at `root` with a [`SimulatedKernel`]: writes are carried out
    /// on the tree with the kernel's semantics. The simulator learns native drivers when it
    /// first sees the tree (see [`simulator`]).
    pub fn open_simulated(root: &Path) -> Result<Host> {
        let sysfs = Sysfs::open(root)?;
        let kernel = Arc::new(SimulatedKernel::attach(&sysfs)?);
        Ok(Host {
            sysfs,
            writer: kernel.clone(),
            simulator: Some(kernel),
            faults: Faults::default(),
        })
    }

    /// Open with a given path resolution method (for tests of the user-space resolver).
    pub fn open_with_resolution(root: &Path, resolution: Resolution) -> Result<Host> {
        Ok(Host {
            sysfs: Sysfs::open_with(root, resolution)?,
            writer: Arc::new(KernelWriter),
            simulator: None,
            faults: Faults::default(),
        })
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

    // ---------------------------------------------------------------- devices

    /// Every PCI device, in address order. Entries of `bus/pci/devices` that are not
    /// `dddd:bb:ss.f` are skipped, as libvirt skips them ("Unusual entry").
    pub fn device_addresses(&self) -> Result<Vec<PciAddress>> {
        let mut out = Vec::new();
        self.sysfs.for_each_entry(DEVICES_DIR, |name, _| {
            if let Some(a) = parse_device_name_bytes(name) {
                out.push(a);
            }
            Ok(())
        })?;
        out.sort_unstable();
        Ok(out)
    }

    /// Whether the device exists (its directory is reachable beneath the root).
    pub fn device_exists(&self, addr: &PciAddress) -> Result<bool> {
        addr.check_ranges()?;
        self.sysfs.exists(&format!("{DEVICES_DIR}/{addr}"))
    }

    /// Fail with `VIR_ERR_DEVICE_MISSING` unless the device exists.
    pub fn require_device(&self, addr: &PciAddress) -> Result<()> {
        if self.device_exists(addr)? {
            Ok(())
        } else {
            Err(Error::device_missing(format!(
                "PCI device {addr} not found: could not access {}",
                self.sysfs.display(&format!("{DEVICES_DIR}/{addr}"))
            )))
        }
    }

    /// Vendor, device, subsystem ids and class.
    pub fn ids(&self, addr: &PciAddress) -> Result<PciIds> {
        self.require_device(addr)?;
        self.read_ids(addr, true)
    }

    /// Read the id attributes; the device is known to exist, or a missing `vendor` is
    /// reported as a missing device.
    fn read_ids(&self, addr: &PciAddress, subsystem: bool) -> Result<PciIds> {
        let id = |attr: &str, required: bool| -> Result<Option<u16>> {
            let rel = dev_path(addr, attr);
            match self.sysfs.read_attr_opt(&rel)? {
                None if !required => Ok(None),
                None => {
                    self.require_device(addr)?;
                    Err(Error::internal(format!(
                        "Failed to read product/vendor ID for {addr}: '{}' is missing",
                        self.sysfs.display(&rel)
                    )))
                }
                Some(text) => parse_hex_u16(&text).map(Some).ok_or_else(|| {
                    Error::internal(format!(
                        "Unusual value in {}: {}",
                        self.sysfs.display(&rel),
                        text.escape_debug()
                    ))
                }),
            }
        };
        let vendor = id("vendor", true)?.unwrap_or(0);
        let device = id("device", true)?.unwrap_or(0);
        let class_rel = dev_path(addr, "class");
        let class_text = self.sysfs.read_attr(&class_rel)?;
        let class = parse_class(&class_text).ok_or_else(|| {
            Error::internal(format!(
                "Unusual value in {}: {}",
                self.sysfs.display(&class_rel),
                class_text.escape_debug()
            ))
        })?;
        let (subsystem_vendor, subsystem_device) = if subsystem {
            (
                id("subsystem_vendor", false)?,
                id("subsystem_device", false)?,
            )
        } else {
            (None, None)
        };
        Ok(PciIds {
            vendor,
            device,
            subsystem_vendor,
            subsystem_device,
            class,
        })
    }

    /// The bound driver (basename of the `driver` link), `None` when unbound.
    pub fn driver(&self, addr: &PciAddress) -> Result<Option<String>> {
        let rel = dev_path(addr, "driver");
        let Some(target) = self.sysfs.read_link(&rel)? else {
            return Ok(None);
        };
        let name = basename(&target);
        if !is_valid_driver_name(name) {
            return Err(Error::internal(format!(
                "Invalid driver name '{}' in link '{}'",
                name.escape_debug(),
                self.sysfs.display(&rel)
            )));
        }
        Ok(Some(name.to_string()))
    }

    /// `driver_override`: `None` when absent, empty or `(null)`.
    pub fn driver_override(&self, addr: &PciAddress) -> Result<Option<String>> {
        let rel = dev_path(addr, "driver_override");
        match self.sysfs.read_attr_opt(&rel)? {
            None => Ok(None),
            Some(t) if t.is_empty() || t == "(null)" => Ok(None),
            Some(t) if is_valid_driver_name(&t) => Ok(Some(t)),
            Some(t) => Err(Error::internal(format!(
                "Unusual value in {}: {}",
                self.sysfs.display(&rel),
                t.escape_debug()
            ))),
        }
    }

    /// `numa_node`: `None` when absent or -1.
    pub fn numa_node(&self, addr: &PciAddress) -> Result<Option<i32>> {
        let rel = dev_path(addr, "numa_node");
        match self.sysfs.read_attr_opt(&rel)? {
            None => Ok(None),
            Some(t) => match t.trim().parse::<i32>() {
                Ok(n) if n >= 0 => Ok(Some(n)),
                Ok(_) => Ok(None),
                Err(_) => Err(Error::internal(format!(
                    "Unusual value in {}: {}",
                    self.sysfs.display(&rel),
                    t.escape_debug()
                ))),
            },
        }
    }

    fn revision(&self, addr: &PciAddress) -> Result<Option<u8>> {
        let rel = dev_path(addr, "revision");
        Ok(self
            .sysfs
            .read_attr_opt(&rel)?
            .and_then(|t| u8::from_str_radix(t.strip_prefix("0x")?, 16).ok()))
    }

    /// The device's config space, parsed. libvirt's "Failed to open config space file" when
    /// it cannot be opened.
    pub fn config_space(&self, addr: &PciAddress) -> Result<ConfigSpace> {
        self.require_device(addr)?;
        let rel = dev_path(addr, "config");
        let bytes = match self.sysfs.read_file_opt(&rel, config::PCIE_CONFIG_SIZE)? {
            Some(b) => b,
            None => {
                return Err(Error::system(
                    format!(
                        "Failed to open config space file '{}'",
                        self.sysfs.display(&rel)
                    ),
                    &std::io::Error::from_raw_os_error(libc::ENOENT),
                ))
            }
        };
        ConfigSpace::parse(bytes, &addr.to_string())
    }

    /// The raw config space bytes (what a PM or bus reset saves and restores).
    pub fn read_config_bytes(&self, addr: &PciAddress) -> Result<Vec<u8>> {
        self.require_device(addr)?;
        self.sysfs
            .read_file(&dev_path(addr, "config"), config::PCIE_CONFIG_SIZE)
    }

    fn link_address(&self, rel: &str) -> Result<Option<PciAddress>> {
        let Some(target) = self.sysfs.read_link(rel)? else {
            return Ok(None);
        };
        parse_device_name(basename(&target))
            .map(Some)
            .ok_or_else(|| {
                Error::internal(format!(
                    "Failed to get SRIOV function from device link '{}'",
                    self.sysfs.display(rel)
                ))
            })
    }

    /// For a VF, its PF (`physfn`).
    pub fn physical_function(&self, addr: &PciAddress) -> Result<Option<PciAddress>> {
        self.link_address(&dev_path(addr, "physfn"))
    }

    /// For a PF, its VFs (`virtfn0`, `virtfn1`, … until one is missing).
    pub fn virtual_functions(&self, addr: &PciAddress) -> Result<Vec<PciAddress>> {
        let mut out = Vec::new();
        for i in 0.. {
            match self.link_address(&dev_path(addr, &format!("virtfn{i}")))? {
                Some(a) => out.push(a),
                None => break,
            }
        }
        Ok(out)
    }

    /// For a VF, its PF and its index among the PF's VFs (`virtfnN` pointing at it).
    pub fn vf_index(&self, addr: &PciAddress) -> Result<Option<(PciAddress, u32)>> {
        let Some(pf) = self.physical_function(addr)? else {
            return Ok(None);
        };
        let vfs = self.virtual_functions(&pf)?;
        Ok(vfs.iter().position(|v| v == addr).map(|i| (pf, i as u32)))
    }

    /// The MAC and VLAN the PF `pf` holds for its VF `index`. Only the simulated kernel can say
    /// (a real host needs netlink, which virtpci does not do yet).
    pub fn vf_net(&self, pf: &PciAddress, index: u32) -> Result<VfNet> {
        if !self.keeps_vf_net() {
            return Err(Error::new(
                ErrorCode::OperationUnsupported,
                "reading a VF's MAC/VLAN on a real host is not implemented yet",
            ));
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

    /// Whether the host's writer can set a VF's MAC and VLAN (the simulated kernel can; a real
    /// host needs netlink, not implemented yet).
    pub fn keeps_vf_net(&self) -> bool {
        self.writer.keeps_vf_net()
    }

    /// What [`Host::vf_net`] says, for reading tools: on a tree the simulated kernel keeps
    /// (its `.virtpci-sim/` directory is there) even when opened without it, and `None` on a
    /// real host instead of an error.
    pub fn recorded_vf_net(&self, pf: &PciAddress, index: u32) -> Result<Option<VfNet>> {
        if self.keeps_vf_net() || self.root().join(simulator::SIM_DIR).is_dir() {
            self.simulated_vf_net(pf, index).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Set the MAC and VLAN the PF `pf` holds for its VF `index` (a [`WriteKind::VfNet`]
    /// write: fault injection applies). Refused on a real host: not implemented yet.
    pub fn set_vf_net(&self, pf: &PciAddress, index: u32, net: VfNet) -> Result<()> {
        if !self.keeps_vf_net() {
            return Err(Error::new(
                ErrorCode::OperationUnsupported,
                "setting a VF's MAC/VLAN on a real host is not implemented yet",
            ));
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

    /// `sriov_totalvfs`, when present.
    pub fn sriov_totalvfs(&self, addr: &PciAddress) -> Result<Option<u32>> {
        let rel = dev_path(addr, "sriov_totalvfs");
        match self.sysfs.read_attr_opt(&rel)? {
            None => Ok(None),
            Some(t) => t.trim().parse().map(Some).map_err(|_| {
                Error::internal(format!(
                    "Unrecognized value in {}: {}",
                    self.sysfs.display(&rel),
                    t.escape_debug()
                ))
            }),
        }
    }

    /// Whether the `reset` file exists.
    pub fn has_reset_file(&self, addr: &PciAddress) -> Result<bool> {
        self.sysfs.exists_nofollow(&dev_path(addr, "reset"))
    }

    /// `reset_method` split into words (e.g. `["flr", "bus"]`), `None` when absent.
    pub fn reset_methods(&self, addr: &PciAddress) -> Result<Option<Vec<String>>> {
        Ok(self
            .sysfs
            .read_attr_opt(&dev_path(addr, "reset_method"))?
            .map(|t| t.split_whitespace().map(str::to_string).collect()))
    }

    /// The device's real directory relative to the root (symlinks resolved).
    pub fn device_sysfs_path(&self, addr: &PciAddress) -> Result<String> {
        self.require_device(addr)?;
        self.sysfs.real_path(&format!("{DEVICES_DIR}/{addr}"))
    }

    /// Children of `class/<class>` whose device lives under the PCI device's directory,
    /// together with the entries of the device's own `<class>` directory (libvirt's view).
    fn class_children(&self, addr: &PciAddress, class: &str) -> Result<Vec<String>> {
        let dev_dir = self.device_sysfs_path(addr)?;
        let mut out: Vec<String> = Vec::new();
        if let Some(entries) = self.sysfs.read_dir_opt(&dev_path(addr, class))? {
            out.extend(entries.into_iter().map(|e| e.name));
        }
        let class_dir = format!("class/{class}");
        if let Some(entries) = self.sysfs.read_dir_opt(&class_dir)? {
            for e in entries {
                let rel = format!("{class_dir}/{}", e.name);
                let Ok(Some(target)) = self.sysfs.read_link(&rel) else {
                    continue;
                };
                let Some(real) = sysfs::join_lexically(&class_dir, &target) else {
                    continue;
                };
                // Under this device, but not under a PCI device below it (a bridge's
                // children have their own interfaces).
                let Some(rest) = real.strip_prefix(&format!("{dev_dir}/")) else {
                    continue;
                };
                if !rest
                    .split('/')
                    .any(|part| parse_device_name(part).is_some())
                {
                    out.push(e.name);
                }
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Network interfaces of the device (`class/net` entries under its directory, and its own
    /// `net/` directory).
    pub fn net_interfaces(&self, addr: &PciAddress) -> Result<Vec<String>> {
        self.class_children(addr, "net")
    }

    /// Block devices (disks and partitions) under the device.
    pub fn block_devices(&self, addr: &PciAddress) -> Result<Vec<String>> {
        self.class_children(addr, "block")
    }

    /// Whether `bus/pci/drivers/<name>` exists (the driver is loaded).
    pub fn driver_loaded(&self, name: &str) -> Result<bool> {
        check_driver_name(name)?;
        self.sysfs.exists(&format!("{DRIVERS_DIR}/{name}"))
    }

    /// Bound to vfio-pci or a vfio variant driver (`vfio-dev/` exists, kernel ≥ 6.1).
    pub fn bound_to_vfio(&self, addr: &PciAddress) -> Result<bool> {
        if self.driver(addr)?.as_deref() == Some(VFIO_PCI) {
            return Ok(true);
        }
        self.sysfs.exists(&dev_path(addr, "vfio-dev"))
    }

    /// The bridge above the device: the parent directory in sysfs when it is a PCI device,
    /// else (flat trees) libvirt's search of bridges by bus numbers (§4.4).
    pub fn parent_bridge(&self, addr: &PciAddress) -> Result<Option<PciAddress>> {
        let path = self.device_sysfs_path(addr)?;
        if let Some((parent, _)) = path.rsplit_once('/') {
            if let Some(p) = parse_device_name(basename(parent)) {
                return Ok(Some(p));
            }
        }
        let mut best: Option<(u8, PciAddress)> = None;
        for other in self.device_addresses()? {
            if other.domain != addr.domain || other == *addr {
                continue;
            }
            let Ok(ids) = self.ids(&other) else { continue };
            if !ids.is_bridge() {
                continue;
            }
            let Ok(cfg) = self.config_space(&other) else {
                continue;
            };
            let Some((_, secondary, subordinate)) = cfg.bridge_buses() else {
                continue;
            };
            if secondary as u32 == addr.bus {
                return Ok(Some(other));
            }
            if (secondary as u32) < addr.bus
                && addr.bus <= subordinate as u32
                && best.map_or(true, |(s, _)| secondary > s)
            {
                best = Some((secondary, other));
            }
        }
        Ok(best.map(|(_, a)| a))
    }

    /// Everything about one device.
    pub fn device(&self, addr: &PciAddress) -> Result<PciDevice> {
        let ids = self.ids(addr)?;
        Ok(PciDevice {
            address: *addr,
            ids,
            revision: self.revision(addr)?,
            driver: self.driver(addr)?,
            driver_override: self.driver_override(addr)?,
            numa_node: self.numa_node(addr)?,
            iommu_group: self.iommu_group_num(addr)?,
            physfn: self.physical_function(addr)?,
            virtfns: self.virtual_functions(addr)?,
            sriov_totalvfs: self.sriov_totalvfs(addr)?,
            has_reset: self.has_reset_file(addr)?,
            reset_methods: self.reset_methods(addr)?,
            sysfs_path: self.device_sysfs_path(addr)?,
            net: self.net_interfaces(addr)?,
            block: self.block_devices(addr)?,
        })
    }

    /// Address, ids (without subsystem ids) and driver of a device: what listings need, read
    /// with as few system calls as possible.
    pub fn summary(&self, addr: &PciAddress) -> Result<DeviceSummary> {
        addr.check_ranges()?;
        Ok(DeviceSummary {
            address: *addr,
            ids: self.read_ids(addr, false)?,
            driver: self.driver(addr)?,
        })
    }

    // ---------------------------------------------------------------- IOMMU groups

    /// The device's IOMMU group number, `None` when it has no `iommu_group` link.
    /// Errors (libvirt's words): the device does not exist; the link cannot be resolved or
    /// leaves the root; the group number is not decimal.
    pub fn iommu_group_num(&self, addr: &PciAddress) -> Result<Option<u32>> {
        self.require_device(addr)?;
        let rel = dev_path(addr, "iommu_group");
        let target = match self.sysfs.read_link(&rel) {
            Ok(Some(t)) => t,
            Ok(None) => return Ok(None),
            Err(e) if e.message.contains("is not a symlink") => return Ok(None),
            Err(e) => {
                return Err(Error::internal(format!(
                    "Unable to resolve device {addr} iommu_group symlink {}: {}",
                    self.sysfs.display(&rel),
                    e.message
                )))
            }
        };
        let name = basename(&target);
        if name.is_empty() || name.len() > 9 || !name.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::internal(format!(
                "device {addr} iommu_group symlink {} has invalid group number {}",
                self.sysfs.display(&rel),
                name.escape_debug()
            )));
        }
        Ok(name.parse().ok())
    }

    /// Members of group `number` in address order. An error when the group does not exist or
    /// an entry is not a device name ("Found invalid device link").
    pub fn iommu_group_by_number(&self, number: u32) -> Result<IommuGroup> {
        let rel = format!("{IOMMU_GROUPS_DIR}/{number}/devices");
        let mut devices = Vec::new();
        let found =
            self.sysfs
                .for_each_entry(&rel, |name, _| match parse_device_name_bytes(name) {
                    Some(a) => {
                        devices.push(a);
                        Ok(())
                    }
                    None => Err(Error::internal(format!(
                        "Found invalid device link '{}' in '{}'",
                        String::from_utf8_lossy(name).escape_debug(),
                        self.sysfs.display(&rel)
                    ))),
                })?;
        if !found {
            return Err(Error::system(
                format!("Failed to open directory '{}'", self.sysfs.display(&rel)),
                &std::io::Error::from_raw_os_error(libc::ENOENT),
            ));
        }
        devices.sort_unstable();
        Ok(IommuGroup { number, devices })
    }

    /// The group of `addr` with its members (itself included) in address order; `None` when
    /// the device has no group.
    pub fn iommu_group(&self, addr: &PciAddress) -> Result<Option<IommuGroup>> {
        match self.iommu_group_num(addr)? {
            None => Ok(None),
            Some(n) => self.iommu_group_by_number(n).map(Some),
        }
    }

    /// Every group in number order with its members in address order, and the devices of
    /// `bus/pci/devices` that belong to no group. Reads directories only (no per-device
    /// link), which is what makes it as fast as a plain walk.
    pub fn iommu_groups(&self) -> Result<IommuGroups> {
        let mut numbers: Vec<u32> = Vec::new();
        self.sysfs.for_each_entry(IOMMU_GROUPS_DIR, |name, _| {
            let number = std::str::from_utf8(name)
                .ok()
                .filter(|t| !t.is_empty() && t.len() <= 9 && t.bytes().all(|b| b.is_ascii_digit()))
                .filter(|t| t.len() == 1 || !t.starts_with('0'))
                .and_then(|t| t.parse::<u32>().ok());
            match number {
                Some(n) => {
                    numbers.push(n);
                    Ok(())
                }
                None => Err(Error::internal(format!(
                    "Unusual entry '{}' in '{}'",
                    String::from_utf8_lossy(name).escape_debug(),
                    self.sysfs.display(IOMMU_GROUPS_DIR)
                ))),
            }
        })?;
        numbers.sort_unstable();
        let mut groups = Vec::with_capacity(numbers.len());
        let mut grouped: Vec<PciAddress> = Vec::new();
        for n in numbers {
            let g = self.iommu_group_by_number(n)?;
            grouped.extend_from_slice(&g.devices);
            groups.push(g);
        }
        grouped.sort_unstable();
        let no_group = self
            .device_addresses()?
            .into_iter()
            .filter(|a| grouped.binary_search(a).is_err())
            .collect();
        Ok(IommuGroups { groups, no_group })
    }

    // ---------------------------------------------------------------- writes

    fn write(
        &self,
        kind: WriteKind,
        path: &str,
        data: &[u8],
        offset: u64,
        describe: impl FnOnce() -> String,
    ) -> Result<()> {
        let request = SysfsWrite {
            kind,
            path,
            data,
            offset,
        };
        self.faults
            .before_write(kind)
            .and_then(|()| self.writer.write(&self.sysfs, &request))
            .map_err(|e| {
                if e.raw_os_error() == Some(libc::EXDEV) {
                    sysfs::outside_root(self.sysfs.root(), path)
                } else {
                    Error::system(describe(), &e)
                }
            })
    }

    /// Write `driver` to `driver_override`, or clear it (`"\n"`) with `None`.
    pub fn set_driver_override(&self, addr: &PciAddress, driver: Option<&str>) -> Result<()> {
        self.require_device(addr)?;
        let rel = dev_path(addr, "driver_override");
        match driver {
            Some(name) => {
                check_driver_name(name)?;
                self.write(WriteKind::DriverOverride, &rel, name.as_bytes(), 0, || {
                    format!(
                        "Failed to add driver '{name}' to driver_override interface of PCI device '{addr}'"
                    )
                })
            }
            None => self.write(WriteKind::DriverOverride, &rel, b"\n", 0, || {
                format!(
                    "Failed to remove stub driver from driver_override interface of PCI device '{addr}'"
                )
            }),
        }
    }

    /// Unbind the device from its driver through `driver/unbind`. Nothing to do when unbound.
    pub fn unbind(&self, addr: &PciAddress) -> Result<()> {
        self.require_device(addr)?;
        let Some(driver) = self.driver(addr)? else {
            return Ok(());
        };
        let name = addr.to_string();
        self.write(
            WriteKind::Unbind,
            &dev_path(addr, "driver/unbind"),
            name.as_bytes(),
            0,
            || format!("Failed to unbind PCI device '{addr}' from {driver}"),
        )
    }

    /// Unbind the device from `driver` through `drivers/<driver>/unbind`.
    pub fn unbind_from(&self, addr: &PciAddress, driver: &str) -> Result<()> {
        self.require_device(addr)?;
        check_driver_name(driver)?;
        let name = addr.to_string();
        self.write(
            WriteKind::Unbind,
            &format!("{DRIVERS_DIR}/{driver}/unbind"),
            name.as_bytes(),
            0,
            || format!("Failed to unbind PCI device '{addr}' from {driver}"),
        )
    }

    /// Bind the device to `driver` through `drivers/<driver>/bind`.
    pub fn bind(&self, addr: &PciAddress, driver: &str) -> Result<()> {
        self.require_device(addr)?;
        check_driver_name(driver)?;
        let name = addr.to_string();
        self.write(
            WriteKind::Bind,
            &format!("{DRIVERS_DIR}/{driver}/bind"),
            name.as_bytes(),
            0,
            || format!("Failed to bind PCI device '{addr}' to {driver}"),
        )
    }

    /// Ask the kernel to probe drivers for the device (`drivers_probe`).
    pub fn drivers_probe(&self, addr: &PciAddress) -> Result<()> {
        self.require_device(addr)?;
        let name = addr.to_string();
        self.write(
            WriteKind::DriversProbe,
            DRIVERS_PROBE,
            name.as_bytes(),
            0,
            || format!("Failed to trigger a probe for PCI device '{addr}'"),
        )
    }

    /// Add a dynamic id `vendor device` to `driver` (`new_id`).
    pub fn new_id(&self, driver: &str, vendor: u16, device: u16) -> Result<()> {
        check_driver_name(driver)?;
        let text = format!("{vendor:04x} {device:04x}");
        self.write(
            WriteKind::NewId,
            &format!("{DRIVERS_DIR}/{driver}/new_id"),
            text.as_bytes(),
            0,
            || format!("Failed to add PCI device ID '{text}' to {driver}"),
        )
    }

    /// Remove the dynamic id `vendor device` from `driver` (`remove_id`).
    pub fn remove_id(&self, driver: &str, vendor: u16, device: u16) -> Result<()> {
        check_driver_name(driver)?;
        let text = format!("{vendor:04x} {device:04x}");
        self.write(
            WriteKind::RemoveId,
            &format!("{DRIVERS_DIR}/{driver}/remove_id"),
            text.as_bytes(),
            0,
            || format!("Failed to remove PCI ID '{text}' from {driver}"),
        )
    }

    /// Ask the kernel to reset the device (write `1` to `reset`).
    pub fn reset(&self, addr: &PciAddress) -> Result<()> {
        self.require_device(addr)?;
        self.write(WriteKind::Reset, &dev_path(addr, "reset"), b"1", 0, || {
            format!("Failed to reset PCI device {addr}")
        })
    }

    /// Write `data` into the device's config space at `offset` (PM and bus resets).
    pub fn write_config(&self, addr: &PciAddress, offset: u64, data: &[u8]) -> Result<()> {
        self.require_device(addr)?;
        self.write(
            WriteKind::Config,
            &dev_path(addr, "config"),
            data,
            offset,
            || format!("Failed to write to PCI config space for {addr}"),
        )
    }
}

/// lspci's name for a class code (class and subclass), or a generic one.
pub fn class_name(class: u32) -> &'static str {
    match class >> 8 {
        0x0000 => "Non-VGA unclassified device",
        0x0001 => "VGA compatible unclassified device",
        0x0100 => "SCSI storage controller",
        0x0101 => "IDE interface",
        0x0104 => "RAID bus controller",
        0x0106 => "SATA controller",
        0x0107 => "Serial Attached SCSI controller",
        0x0108 => "Non-Volatile memory controller",
        0x0180 => "Mass storage controller",
        0x0200 => "Ethernet controller",
        0x0207 => "Infiniband controller",
        0x0280 => "Network controller",
        0x0300 => "VGA compatible controller",
        0x0302 => "3D controller",
        0x0380 => "Display controller",
        0x0401 => "Multimedia audio controller",
        0x0403 => "Audio device",
        0x0480 => "Multimedia controller",
        0x0500 => "RAM memory",
        0x0580 => "Memory controller",
        0x0600 => "Host bridge",
        0x0601 => "ISA bridge",
        0x0604 => "PCI bridge",
        0x0680 => "Bridge",
        0x0700 => "Serial controller",
        0x0780 => "Communication controller",
        0x0805 => "SD Host controller",
        0x0806 => "IOMMU",
        0x0880 => "System peripheral",
        0x0c03 => "USB controller",
        0x0c05 => "SMBus",
        0x0c80 => "Serial bus controller",
        0x0d80 => "Wireless controller",
        0x1080 => "Encryption controller",
        0x1101 => "Performance counters",
        0x1180 => "Signal processing controller",
        0x1200 => "Processing accelerators",
        0xff00 => "Unassigned class",
        _ => match class >> 16 {
            0x01 => "Mass storage controller",
            0x02 => "Network controller",
            0x03 => "Display controller",
            0x04 => "Multimedia controller",
            0x06 => "Bridge",
            0x0c => "Serial bus controller",
            _ => "Device",
        },
    }
}
