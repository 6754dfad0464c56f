//! Connect flags: what each device may plug into (qemuDomainDeviceCalculatePCIConnectFlags),
//! and how the devices' `bus` and `hotplug` preferences change them.

use super::{Planner, PCI_FLAGS};
use crate::error::{Error, Result};
use crate::topology::{ConnectFlags, PciModel};
use crate::xml::domain::{BusPreference, Device, DeviceKind, Hostdev};

impl<'a> Planner<'a> {
    pub(super) fn compute_flags(&mut self) {
        let pcie = if self.has_pcie_root() {
            ConnectFlags::PCIE_AUTO
        } else {
            PCI_FLAGS
        };
        let virtio = self.virtio_flags(pcie);
        for i in 0..self.def.devices.len() {
            self.flags[i] = device_flags(&self.def.devices[i], pcie, virtio);
        }
    }

    /// Turn each device's `bus` and `hotplug` preferences into its connect flags.
    pub(super) fn apply_preferences(&mut self) -> Result<()> {
        let has_pcie_root = self.has_pcie_root();
        for i in 0..self.def.devices.len() {
            let device = &self.def.devices[i];
            if device.prefs.is_empty() {
                continue;
            }
            self.flags[i] = preferred_flags(device, self.flags[i], has_pcie_root)?;
        }
        Ok(())
    }
}

/// The connect flags of one device (qemuDomainDeviceCalculatePCIConnectFlags).
/// `pcie` is what a PCI Express endpoint gets (conventional PCI on machines without
/// pcie-root); `virtio` is what virtio devices get (QEMU 7.2: same as `pcie`).
pub fn device_flags(device: &Device, pcie: ConnectFlags, virtio: ConnectFlags) -> ConnectFlags {
    let pci = PCI_FLAGS;
    let none = ConnectFlags::NONE;
    let transitional = |model: Option<&str>| model == Some("virtio-transitional");
    match &device.kind {
        DeviceKind::Controller(c) => match c.ctype {
            "pci" => c.pci_model().map_or(none, PciModel::connect_flags),
            "sata" | "ide" => pci,
            "usb" => match c.model {
                None => pci,
                Some("nec-xhci" | "qemu-xhci") => pcie,
                Some(
                    "ehci" | "ich9-ehci1" | "ich9-uhci1" | "ich9-uhci2" | "ich9-uhci3"
                    | "vt82c686b-uhci" | "piix3-uhci" | "piix4-uhci" | "pci-ohci",
                ) => pci,
                Some(_) => none,
            },
            "scsi" => match c.model {
                None | Some("ncr53c90") => none,
                Some("virtio-scsi" | "virtio-non-transitional") => virtio,
                Some(_) => pci,
            },
            "virtio-serial" => {
                if transitional(c.model) {
                    pci
                } else {
                    virtio
                }
            }
            _ => none,
        },
        DeviceKind::Filesystem { driver, model } => match driver.as_deref() {
            None | Some("default" | "path" | "handle") => {
                if transitional(model.as_deref()) {
                    pci
                } else {
                    virtio
                }
            }
            Some("virtiofs") => virtio,
            _ => none,
        },
        DeviceKind::Net {
            hostdev: Some(h), ..
        } => hostdev_flags(h, device, pcie, virtio),
        DeviceKind::Net { model, .. } => match model.as_deref() {
            Some("usb-net") => none,
            Some("virtio" | "virtio-non-transitional") => virtio,
            Some("virtio-transitional") => pci,
            Some("e1000e" | "igb") => pcie,
            // No model: libvirt's x86 default, rtl8139.
            None => pci,
            Some(other) if known_net_model(other) => pci,
            // A model libvirt does not know is "unknown", which it treats as PCI Express.
            Some(_) => pcie,
        },
        DeviceKind::Sound { model } if matches!(*model, "es1370" | "ac97" | "ich6" | "ich9") => pci,
        DeviceKind::Sound { .. } => none,
        DeviceKind::Disk { bus, model, .. } => {
            if *bus != "virtio" {
                none
            } else if transitional(model.as_deref()) {
                pci
            } else {
                virtio
            }
        }
        DeviceKind::Hostdev(h) => hostdev_flags(h, device, pcie, virtio),
        DeviceKind::Memballoon { model } => match *model {
            "virtio-transitional" => pci,
            "virtio" | "virtio-non-transitional" => virtio,
            _ => none,
        },
        DeviceKind::Rng { model } => {
            if *model == "virtio-transitional" {
                pci
            } else {
                virtio
            }
        }
        DeviceKind::Watchdog { model } => {
            if *model == "i6300esb" {
                pci
            } else {
                none
            }
        }
        DeviceKind::Video { model, .. } => match *model {
            "virtio" => virtio,
            "vga" | "cirrus" | "vmvga" | "xen" | "vbox" | "qxl" | "parallels" => pci,
            "bochs" => pcie,
            _ => none,
        },
        DeviceKind::Shmem => pci,
        DeviceKind::Input { bus, model } => {
            if *bus != "virtio" {
                none
            } else if transitional(model.as_deref()) {
                pci
            } else {
                virtio
            }
        }
        DeviceKind::Serial { target_type } => {
            if target_type.as_deref() == Some("pci-serial") {
                pci
            } else {
                none
            }
        }
        DeviceKind::Iommu { model } => {
            if *model == "virtio" {
                virtio | ConnectFlags::INTEGRATED
            } else {
                none
            }
        }
        DeviceKind::Vsock { model } => match model.as_deref() {
            Some("virtio-transitional") => pci,
            _ => virtio,
        },
        DeviceKind::Memory { model } if matches!(*model, "virtio-pmem" | "virtio-mem") => virtio,
        DeviceKind::Memory { .. } => none,
        DeviceKind::Crypto { model } => {
            if *model == "virtio" {
                pci
            } else {
                none
            }
        }
        DeviceKind::Panic { model } => {
            if model.as_deref() == Some("pvpanic") {
                pci | ConnectFlags::INTEGRATED
            } else {
                none
            }
        }
        _ => none,
    }
}

/// The NIC models libvirt 9.0 knows by name (anything else is "unknown" to it).
pub(super) fn known_net_model(model: &str) -> bool {
    matches!(
        model,
        "virtio"
            | "virtio-transitional"
            | "virtio-non-transitional"
            | "e1000"
            | "e1000e"
            | "igb"
            | "rtl8139"
            | "netfront"
            | "usb-net"
            | "spapr-vlan"
            | "lan9118"
            | "scm91c111"
            | "vlance"
            | "vmxnet"
            | "vmxnet2"
            | "vmxnet3"
            | "am79c970a"
            | "am79c973"
            | "82540EM"
            | "82545EM"
            | "82543GC"
    )
}

pub(super) fn hostdev_flags(
    h: &Hostdev,
    device: &Device,
    pcie: ConnectFlags,
    virtio: ConnectFlags,
) -> ConnectFlags {
    let pci = PCI_FLAGS;
    let is_mdev = h.htype == "mdev";
    if !is_mdev && (!h.is_subsystem() || (h.htype != "pci" && h.htype != "scsi_host")) {
        return ConnectFlags::NONE;
    }
    if pci == pcie {
        return pci;
    }
    if device.address.present_pci().is_some() || is_mdev {
        return pcie;
    }
    if h.htype == "scsi_host" {
        return if h.model == Some("virtio-transitional") {
            pci
        } else {
            virtio
        };
    }
    // libvirt opens the host device here; one that is not on this host counts as PCIe.
    pcie
}

/// A short description of a device for messages about its preferences.
pub(super) fn describe(device: &Device) -> String {
    let name = match &device.kind {
        DeviceKind::Disk { .. } => "disk",
        DeviceKind::Controller(_) => "controller",
        DeviceKind::Filesystem { .. } => "filesystem",
        DeviceKind::Net { .. } => "interface",
        DeviceKind::Sound { .. } => "sound",
        DeviceKind::Hostdev(_) => "hostdev",
        DeviceKind::Memballoon { .. } => "memballoon",
        DeviceKind::Rng { .. } => "rng",
        DeviceKind::Watchdog { .. } => "watchdog",
        DeviceKind::Video { .. } => "video",
        DeviceKind::Shmem => "shmem",
        DeviceKind::Input { .. } => "input",
        DeviceKind::Serial { .. } => "serial",
        DeviceKind::Console { .. } => "console",
        DeviceKind::Channel { .. } => "channel",
        DeviceKind::Iommu { .. } => "iommu",
        DeviceKind::Vsock { .. } => "vsock",
        DeviceKind::Memory { .. } => "memory",
        DeviceKind::Crypto { .. } => "crypto",
        DeviceKind::Panic { .. } => "panic",
        _ => "device",
    };
    match device.prefs.line {
        Some(line) => format!("<{name}> at line {line}"),
        None => format!("<{name}>"),
    }
}

/// Whether a device may be placed on either conventional PCI or PCI Express (virtio devices
/// that are not transitional, PCI host devices, the xHCI USB controllers).
pub(super) fn can_use_either_bus(device: &Device) -> bool {
    const MARK: ConnectFlags = ConnectFlags(1 << 20);
    if device_flags(device, ConnectFlags::PCIE_AUTO, MARK).intersects(MARK) {
        return true;
    }
    match &device.kind {
        DeviceKind::Hostdev(h)
        | DeviceKind::Net {
            hostdev: Some(h), ..
        } => h.is_subsystem() && h.htype == "pci",
        DeviceKind::Controller(c) => {
            c.ctype == "usb" && matches!(c.model, Some("nec-xhci" | "qemu-xhci"))
        }
        _ => false,
    }
}

/// The connect flags of `device` (libvirt's are `flags`) after its `bus` and `hotplug`
/// preferences; an error names the device when a preference cannot be met.
pub fn preferred_flags(
    device: &Device,
    flags: ConnectFlags,
    has_pcie_root: bool,
) -> Result<ConnectFlags> {
    let prefs = device.prefs;
    if prefs.is_empty() {
        return Ok(flags);
    }
    if flags.is_empty() {
        return Err(Error::xml(format!(
            "{}: addressPreferences apply only to devices that take a PCI address",
            describe(device)
        )));
    }
    let mut flags = flags;
    let keep = flags & (ConnectFlags::INTEGRATED | ConnectFlags::HOTPLUGGABLE);
    match prefs.bus {
        None => {}
        Some(BusPreference::Pci) if flags.intersects(ConnectFlags::PCI_DEVICE) => {}
        Some(BusPreference::Pci) if can_use_either_bus(device) => flags = PCI_FLAGS | keep,
        Some(BusPreference::Pci) => {
            return Err(Error::config_unsupported(format!(
                "{}: addressPreferences bus='pci' cannot be met, the device is PCI Express only",
                describe(device)
            )))
        }
        Some(BusPreference::Pcie) if !has_pcie_root => {
            return Err(Error::config_unsupported(format!(
                "{}: addressPreferences bus='pcie' needs a PCI Express machine (q35); this machine has conventional PCI only",
                describe(device)
            )))
        }
        Some(BusPreference::Pcie) if flags.intersects(ConnectFlags::PCIE_DEVICE) => {}
        Some(BusPreference::Pcie) if can_use_either_bus(device) => {
            flags = ConnectFlags::PCIE_AUTO | keep
        }
        Some(BusPreference::Pcie) => {
            return Err(Error::config_unsupported(format!(
                "{}: addressPreferences bus='pcie' cannot be met, the device is conventional PCI only",
                describe(device)
            )))
        }
    }
    match prefs.hotplug {
        None => {}
        Some(true) => flags |= ConnectFlags::HOTPLUGGABLE,
        Some(false) => flags |= ConnectFlags::PLACE_WITHOUT_HOTPLUG,
    }
    Ok(flags)
}
