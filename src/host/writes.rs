//! The writes that move a device between drivers, each through the host's one writer (after
//! fault injection) and each with libvirt's error wording.

use super::names::check_driver_name;
use super::writer::{SysfsWrite, WriteKind};
use super::{dev_path, sysfs, Host, DRIVERS_DIR, DRIVERS_PROBE};
use crate::error::{Error, Result};
use crate::pci::PciAddress;

impl Host {
    /// Every write goes through here: fault injection first, then the host's writer.
    pub(super) fn write(
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
