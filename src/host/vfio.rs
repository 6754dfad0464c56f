//! What VFIO needs beyond the driver link: iommufd (`/dev/iommu`), a bound device's VFIO
//! device cdev (`vfio-dev/vfioN` in sysfs, `/dev/vfio/devices/vfioN`), the kernel's reset
//! methods (`reset_method`), and whether a released device still answers.

use super::{dev_path, Host, WriteKind};
use crate::error::{Error, Result};
use crate::pci::PciAddress;
use std::path::PathBuf;

/// The reset methods the kernel knows (`reset_method` accepts these names).
pub(crate) const RESET_METHOD_NAMES: [&str; 7] = [
    "device_specific",
    "acpi",
    "flr",
    "af_flr",
    "pm",
    "bus",
    "cxl_bus",
];

/// A bound device's VFIO device cdev.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VfioCdev {
    /// `vfioN`.
    pub name: String,
    /// Its sysfs directory (`ROOT/bus/pci/devices/<dev>/vfio-dev/vfioN`).
    pub sysfs_dir: PathBuf,
    /// Its node (`/dev/vfio/devices/vfioN`).
    pub node: PathBuf,
}

impl Host {
    /// Whether the host has iommufd (`/dev/iommu` exists).
    pub(crate) fn iommufd_available(&self) -> bool {
        self.environment.dev_dir.join("iommu").exists()
    }

    /// Refuse unless the host has iommufd, saying what is missing.
    pub(crate) fn require_iommufd(&self) -> Result<()> {
        if self.iommufd_available() {
            return Ok(());
        }
        Err(Error::config_unsupported(format!(
            "iommufd is not supported on this host: {} is missing (a kernel with CONFIG_IOMMUFD is needed)",
            self.environment.dev_dir.join("iommu").display()
        )))
    }

    /// The VFIO device cdev of a device bound to a VFIO driver: `vfio-dev/vfioN` in sysfs,
    /// `None` when there is none (not bound to VFIO, or a kernel before 6.1).
    pub(crate) fn vfio_cdev_name(&self, addr: &PciAddress) -> Result<Option<String>> {
        self.require_device(addr)?;
        let entries = self
            .sysfs
            .read_dir_opt(&dev_path(addr, "vfio-dev"))?
            .unwrap_or_default();
        Ok(entries
            .into_iter()
            .map(|e| e.name)
            .find(|n| n.strip_prefix("vfio").is_some_and(is_number)))
    }

    /// The device's cdev with its node, which must exist: a device bound to VFIO on a kernel
    /// with CONFIG_VFIO_DEVICE_CDEV. The error says which part is missing.
    pub fn vfio_cdev(&self, addr: &PciAddress) -> Result<VfioCdev> {
        let Some(name) = self.vfio_cdev_name(addr)? else {
            return Err(Error::operation_failed(format!(
                "PCI device {addr} has no VFIO device: {} is missing or empty (not bound to a VFIO driver)",
                self.sysfs.display(&dev_path(addr, "vfio-dev"))
            )));
        };
        let node = self.environment.dev_dir.join("vfio/devices").join(&name);
        if !node.exists() {
            return Err(Error::config_unsupported(format!(
                "PCI device {addr} has no VFIO device cdev: {} is missing (a kernel with CONFIG_VFIO_DEVICE_CDEV is needed)",
                node.display()
            )));
        }
        Ok(VfioCdev {
            sysfs_dir: self
                .root()
                .join(dev_path(addr, &format!("vfio-dev/{name}"))),
            name,
            node,
        })
    }

    /// Choose the reset methods the kernel uses for the device, in order (`reset_method`);
    /// an empty list restores the kernel's default. The kernel refuses a method the device
    /// does not support: the error then lists what `reset_method` says now.
    pub fn set_reset_methods(&self, addr: &PciAddress, methods: &[&str]) -> Result<()> {
        self.require_device(addr)?;
        let Some(now) = self.reset_methods(addr)? else {
            return Err(Error::new(
                crate::error::ErrorCode::OperationUnsupported,
                format!(
                    "PCI device {addr} has no reset_method (the kernel knows no reset method for it, or is older than 5.15)"
                ),
            ));
        };
        if let Some(m) = methods.iter().find(|m| !RESET_METHOD_NAMES.contains(m)) {
            return Err(Error::invalid_arg(format!(
                "unknown reset method '{}' (the kernel knows: {})",
                m.escape_debug(),
                RESET_METHOD_NAMES.join(" ")
            )));
        }
        let text = if methods.is_empty() {
            "default".to_string()
        } else {
            methods.join(" ")
        };
        let written = self.write(
            WriteKind::ResetMethod,
            &dev_path(addr, "reset_method"),
            text.as_bytes(),
            0,
            || format!("Failed to set reset methods '{text}' of PCI device {addr}"),
        );
        match written {
            Err(e) if methods.iter().any(|m| !now.iter().any(|o| o == m)) => {
                Err(Error::invalid_arg(format!(
                    "reset method '{text}' is not offered by PCI device {addr} (it offers: {}): {}",
                    now.join(" "),
                    e.message
                )))
            }
            other => other,
        }
    }

    /// Why a device just given back to the host seems gone, if it does: left in D3cold
    /// (`power_state`), or answering all-ones config space (it fell off the bus).
    pub(crate) fn unresponsive(&self, addr: &PciAddress) -> Result<Option<String>> {
        self.require_device(addr)?;
        if let Some(state) = self.sysfs.read_attr_opt(&dev_path(addr, "power_state"))? {
            if state.trim() == "D3cold" {
                return Ok(Some("it is in D3cold".to_string()));
            }
        }
        let bytes = self.read_config_bytes(addr)?;
        if bytes.len() >= 4 && bytes[..4] == [0xff; 4] {
            return Ok(Some("its config space reads all ones".to_string()));
        }
        Ok(None)
    }
}

fn is_number(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}
