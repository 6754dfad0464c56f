//! libvirt 9.0's post-parse rules that change the PCI layout of definitions written by hand
//! or by other tools: USB2 companions sharing an index, the default models QEMU's driver
//! writes into controllers, the drive addresses of disks (and the disk controllers they
//! imply), and the refusals its validation makes about IDE controllers.

use super::Planner;
use crate::error::{Error, Result};
use crate::topology::MachineKind;
use crate::xml::domain::{Controller, DeviceAddress, DeviceKind};

/// The ICH9 USB2 controllers (libvirt's IS_USB2_CONTROLLER).
fn is_usb2(c: &Controller) -> bool {
    c.ctype == "usb"
        && matches!(
            c.model,
            Some("ich9-ehci1" | "ich9-uhci1" | "ich9-uhci2" | "ich9-uhci3")
        )
}

/// The index of a disk name (virDiskNameToIndex): `sda` is 0, `sdz` 25, `sdaa` 26; trailing
/// partition digits are allowed. `None` for a name libvirt cannot map.
fn disk_name_index(name: &str) -> Option<u32> {
    let rest = ["fd", "hd", "vd", "sd", "xvd", "ubd"]
        .iter()
        .find_map(|p| name.strip_prefix(p))?;
    let letters = rest.bytes().take_while(u8::is_ascii_lowercase).count();
    if !rest[letters..].bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut index: u32 = 0;
    for (k, b) in rest[..letters].bytes().enumerate() {
        index = index
            .checked_add(u32::from(k > 0))?
            .checked_mul(26)?
            .checked_add(u32::from(b - b'a'))?;
    }
    Some(index)
}

/// The controller libvirt gives a disk without an address (virDomainDiskDefAssignAddress):
/// 7 SCSI units (QEMU's driver does not ask for wide SCSI buses), IDE 2 buses of 2 units,
/// SATA 6 units and the floppy controller 2 units per controller.
pub(super) fn default_drive_controller(bus: &str, target: &str) -> Option<u32> {
    let per_controller = match bus {
        "scsi" => 7,
        "ide" => 4,
        "sata" => 6,
        "fdc" => 2,
        _ => return None,
    };
    disk_name_index(target).map(|i| i / per_controller)
}

impl<'a> Planner<'a> {
    /// The index an index-less USB2 companion at `pos` of the controller list shares with
    /// the group before it (virDomainAssignControllerIndexes): the previous USB controller
    /// is a USB2 one, and no controller of this model has its index yet.
    pub(super) fn usb2_companion_index(&self, pos: usize) -> Option<u32> {
        let c = self.controller(self.controller_order[pos]);
        if pos == 0 || !is_usb2(c) {
            return None;
        }
        let prev = self.controller_order[..pos]
            .iter()
            .rev()
            .map(|&j| self.controller(j))
            .find(|p| p.ctype == "usb")?;
        if !is_usb2(prev) {
            return None;
        }
        let index = prev.index?;
        let taken = self.controller_order.iter().any(|&j| {
            let other = self.controller(j);
            other.ctype == "usb" && other.index == Some(index) && other.model == c.model
        });
        (!taken).then_some(index)
    }

    /// The parser's rule for `model='none'`: USB is then disabled, and no other USB
    /// controller may be defined, before or after it.
    pub(super) fn check_usb_none(&self) -> Result<()> {
        let (mut none, mut other) = (false, false);
        for &i in &self.controller_order {
            let c = self.controller(i);
            if c.ctype == "usb" {
                none |= c.model_is("none");
                other |= !c.model_is("none");
            }
        }
        if none && other {
            return Err(Error::xml_detail(
                "Can't add another USB controller: USB is disabled for this domain",
            ));
        }
        Ok(())
    }

    /// UHCI companions need a USB controller of another model in the definition (the EHCI
    /// they serve, or any other): a definition whose USB controllers are all companions is
    /// refused, before libvirt adds its default controller (seen with both oracles, whatever
    /// the indexes).
    pub(super) fn check_usb_companions_have_a_master(&self) -> Result<()> {
        let (mut companions, mut others) = (false, false);
        for &i in &self.controller_order {
            let c = self.controller(i);
            if c.ctype == "usb" {
                let companion = matches!(c.model, Some("ich9-uhci1" | "ich9-uhci2" | "ich9-uhci3"));
                companions |= companion;
                others |= !companion;
            }
        }
        if companions && !others {
            return Err(Error::xml_detail("No master USB controller specified"));
        }
        Ok(())
    }

    /// The default models QEMU's driver gives controllers written without one
    /// (qemuDomainControllerDefPostParse), which decide their connect flags: USB is
    /// `piix3-uhci` on x86 (q35 too: QEMU 7.2 has it), SCSI (also `auto`) is `lsilogic`.
    /// A USB controller of model `none` has no PCI address: an address given is dropped.
    pub(super) fn fill_default_controller_models(&mut self) -> Result<()> {
        let machine = self.machine();
        if machine == MachineKind::Other {
            return Ok(());
        }
        let x86 = matches!(machine, MachineKind::I440fx | MachineKind::Q35);
        let usb_model = if x86 {
            self.x86_usb_model_default()
        } else {
            Some(self.default_usb_model())
        };
        let x86_scsi_model = if x86 {
            self.x86_scsi_model_default()
        } else {
            Some("lsilogic")
        };
        for pos in 0..self.controller_order.len() {
            let i = self.controller_order[pos];
            let device = &mut self.def.devices[i];
            let no_address = device.address == DeviceAddress::None;
            let Some(c) = device.controller_mut() else {
                continue;
            };
            // s390x: a USB controller without a model has none when it has no address, and
            // stays without one otherwise (QEMU there has no piix3-uhci); SCSI is virtio.
            let s390 = machine == MachineKind::S390Ccw;
            let model = match (c.ctype, c.model) {
                ("usb", None) if s390 && no_address => "none",
                ("usb", None) if s390 => continue,
                ("usb", None) => match usb_model {
                    Some(model) => model,
                    None => continue,
                },
                ("scsi", None | Some("auto")) if s390 => "virtio-scsi",
                ("scsi", None | Some("auto")) if machine == MachineKind::Pseries => "ibmvscsi",
                ("scsi", None | Some("auto")) => {
                    x86_scsi_model.ok_or_else(|| super::emulator::no_scsi_model(c.index()))?
                }
                ("usb", Some("none")) => {
                    device.address = DeviceAddress::None;
                    continue;
                }
                _ => continue,
            };
            c.model = Some(model);
            self.filled[i].model = true;
        }
        Ok(())
    }

    /// A `<controller type='pci'>` without a model: at index 0 on pc and q35 it fails the
    /// root check of qemuDomainDefAddDefaultDevices, which prints the missing model as
    /// "(null)".
    pub(super) fn pci_controller_without_model(&self, c: &Controller) -> Error {
        let machine = self.machine();
        if c.index() == 0 && machine != MachineKind::Other {
            return Error::xml(format!(
                "The PCI controller with index='0' must be model='{}' for this machine type, \
                 but model='(null)' was found instead",
                machine.root_model()
            ));
        }
        Error::internal("PCI controller model was not set correctly")
    }

    /// A disk without an address needs a name libvirt can map to a drive address, whatever
    /// its bus (virDomainDiskDefAssignAddress).
    pub(super) fn check_disk_names(&self) -> Result<()> {
        for d in &self.def.devices {
            if let DeviceKind::Disk { target, .. } = &d.kind {
                if d.address == DeviceAddress::None && disk_name_index(target).is_none() {
                    return Err(Error::xml(format!(
                        "Unknown disk name '{target}' and no address specified"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The disk controllers libvirt adds (virDomainDefAddImplicitControllers): per type, in
    /// the order SCSI, FDC, IDE, SATA, every index from 0 to the highest one a disk uses.
    pub(super) fn wanted_disk_controllers(&self) -> Vec<(&'static str, u32)> {
        let mut wanted = Vec::new();
        for ctype in ["scsi", "fdc", "ide", "sata"] {
            let max = self
                .def
                .devices
                .iter()
                .filter_map(|d| match &d.kind {
                    DeviceKind::Disk { bus, target, .. } if *bus == ctype => {
                        self.disk_controller(d, target)
                    }
                    _ => None,
                })
                .max();
            if let Some(max) = max {
                wanted.extend((0..=max).map(|index| (ctype, index)));
            }
        }
        wanted
    }

    /// libvirt's validation of the devices, as far as it concerns virtpci, in libvirt's device
    /// order (disks, interfaces, controllers): the level's own refusals, and those about IDE
    /// (pc's built-in IDE controller is the only one, q35 has none).
    pub(super) fn validate_devices(&self) -> Result<()> {
        let machine = self.machine();
        for d in &self.def.devices {
            if let DeviceKind::Disk { bus, target, .. } = &d.kind {
                self.validate_disk_level(d)?;
                let controller = self.disk_controller(d, target);
                if machine == MachineKind::I440fx
                    && *bus == "ide"
                    && controller.is_some_and(|c| c != 0)
                {
                    return Err(Error::internal("Only 1 IDE controller is supported"));
                }
            }
        }
        self.validate_nets_level()?;
        if machine == MachineKind::Other {
            return Ok(());
        }
        for &i in &self.controller_order {
            let c = self.controller(i);
            if c.ctype != "ide" {
                continue;
            }
            if machine != MachineKind::I440fx {
                return Err(Error::config_unsupported(
                    "IDE controllers are unsupported for this QEMU binary or machine type",
                ));
            }
            if c.index() != 0 {
                return Err(Error::config_unsupported(
                    "Only a single IDE controller is supported for this machine type",
                ));
            }
        }
        Ok(())
    }

    /// The disk controller index a disk uses: its drive address's, or the one libvirt
    /// derives from its target name when it has no address.
    pub(super) fn disk_controller(
        &self,
        d: &crate::xml::domain::Device<'a>,
        target: &str,
    ) -> Option<u32> {
        let DeviceKind::Disk {
            bus,
            drive_controller,
            ..
        } = &d.kind
        else {
            return None;
        };
        match &d.address {
            DeviceAddress::Other(t) if t == "drive" => Some(drive_controller.unwrap_or(0)),
            DeviceAddress::None => default_drive_controller(bus, target),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_names_map_as_libvirt_maps_them() {
        assert_eq!(disk_name_index("sda"), Some(0));
        assert_eq!(disk_name_index("hdd"), Some(3));
        assert_eq!(disk_name_index("sdz"), Some(25));
        assert_eq!(disk_name_index("sdaa"), Some(26));
        assert_eq!(disk_name_index("vdb1"), Some(1));
        assert_eq!(disk_name_index("xvdc"), Some(2));
        assert_eq!(disk_name_index("sd1a"), None);
        assert_eq!(disk_name_index("nvme0n1"), None);
        assert_eq!(default_drive_controller("sata", "sdg"), Some(1));
        assert_eq!(default_drive_controller("ide", "hde"), Some(1));
        assert_eq!(default_drive_controller("scsi", "sdq"), Some(2));
        assert_eq!(default_drive_controller("virtio", "vda"), None);
    }
}
