//! Reading one device: ids, driver, config space, SR-IOV links, reset files, the interfaces
//! and disks below it, its parent bridge.

use super::names::{
    check_driver_name, is_valid_driver_name, parse_device_name, parse_device_name_bytes,
};
use super::{basename, config, dev_path, parse_class, parse_hex_u16, sysfs};
use super::{
    ConfigSpace, DeviceSummary, Host, PciDevice, PciIds, DEVICES_DIR, DRIVERS_DIR, VFIO_PCI,
};
use crate::error::{Error, Result};
use crate::pci::PciAddress;

impl Host {
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
    pub(crate) fn require_device(&self, addr: &PciAddress) -> Result<()> {
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
    pub(crate) fn has_reset_file(&self, addr: &PciAddress) -> Result<bool> {
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
    pub(crate) fn device_sysfs_path(&self, addr: &PciAddress) -> Result<String> {
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
    /// else (flat trees), as libvirt searches: the bridge whose secondary bus is the device's
    /// bus, or else the one whose secondary..subordinate range holds it most closely.
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
}
