//! IOMMU groups: a device's group, a group's members, every group of the host.

use super::names::parse_device_name_bytes;
use super::{basename, dev_path, Host, IommuGroup, IommuGroups, IOMMU_GROUPS_DIR};
use crate::error::{Error, Result};
use crate::pci::PciAddress;

impl Host {
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
    pub(crate) fn iommu_group_by_number(&self, number: u32) -> Result<IommuGroup> {
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
}
