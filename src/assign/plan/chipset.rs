//! Chipset reservations: the slots the i440fx (PIIX3) and q35 (ICH9) chipsets and the primary
//! video take before any other device (qemuDomainValidateDevicePCISlotsChipsets).

use super::{Planner, PCI_FLAGS};
use crate::assign::set::AddressSet;
use crate::error::{Error, Result};
use crate::pci::PciAddress;
use crate::topology::{ConnectFlags, MachineKind, PciModel};
use crate::xml::domain::{DeviceAddress, DeviceKind, Multifunction};

impl<'a> Planner<'a> {
    /// The fixed places of the chipset's own functions and of the devices that go there
    /// (qemuDomainValidateDevicePCISlotsChipsets). These placements are written into the
    /// definition even in the dry run, as libvirt does.
    pub(super) fn chipset_reservations(&mut self, set: &mut AddressSet) -> Result<()> {
        match self.machine() {
            MachineKind::I440fx => self.chipset_piix3(set),
            MachineKind::Q35 => self.chipset_q35(set),
            MachineKind::ArmVirt
            | MachineKind::RiscvVirt
            | MachineKind::S390Ccw
            | MachineKind::Pseries
            | MachineKind::Other => Ok(()),
        }
    }

    pub(super) fn chipset_piix3(&mut self, set: &mut AddressSet) -> Result<()> {
        let flags = PCI_FLAGS;
        let has_buses = set.bus_count() > 0;
        for i in self.controller_order.clone() {
            let c = self.controller(i);
            let (fixed, message) = if c.ctype == "ide" && c.index() == 0 {
                (
                    PciAddress::new(0, 0, 1, 1),
                    "Primary IDE controller must have PCI address 0:0:1.1",
                )
            } else if c.ctype == "usb"
                && c.index() == 0
                && (c.model.is_none() || c.model_is("piix3-uhci"))
            {
                (
                    PciAddress::new(0, 0, 1, 2),
                    "PIIX3 USB controller at index 0 must have PCI address 0:0:1.2",
                )
            } else {
                continue;
            };
            match self.def.devices[i].address.present_pci() {
                Some(addr) if addr != fixed => return Err(Error::internal(message)),
                Some(_) => {}
                None => self.set_address(i, fixed, Multifunction::Absent),
            }
            if has_buses {
                set.reserve(&fixed, flags, true)?;
            }
        }
        if has_buses {
            set.reserve(&PciAddress::new(0, 0, 1, 0), flags, true)?;
            set.reserve(&PciAddress::new(0, 0, 1, 3), flags, true)?;
        }
        self.primary_video(set, PciAddress::new(0, 0, 2, 0), flags)
    }

    /// The primary video wants `preferred`; if that slot is taken it gets the next free one.
    pub(super) fn primary_video(
        &mut self,
        set: &mut AddressSet,
        preferred: PciAddress,
        flags: ConnectFlags,
    ) -> Result<()> {
        let Some(&video) = self.video_order().first() else {
            return Ok(());
        };
        if let DeviceKind::Video { model, .. } = &self.def.devices[video].kind {
            if *model == "none" || *model == "ramfb" {
                return Ok(());
            }
        }
        if !self.wants(video) {
            return Ok(());
        }
        set.validate(&preferred, flags, true)?;
        if set.slot_in_use(&preferred) {
            self.reserve_next_for(set, video)
        } else {
            set.reserve(&preferred, flags, true)?;
            self.set_address(video, preferred, Multifunction::Absent);
            Ok(())
        }
    }

    pub(super) fn chipset_q35(&mut self, set: &mut AddressSet) -> Result<()> {
        let flags = ConnectFlags::PCIE_DEVICE;
        for i in self.controller_order.clone() {
            let c = self.controller(i);
            let no_address = self.def.devices[i].address == DeviceAddress::None;
            if c.ctype == "sata" && c.index() == 0 {
                let fixed = PciAddress::new(0, 0, 0x1f, 2);
                match self.def.devices[i].address.present_pci() {
                    Some(addr) if addr != fixed => {
                        return Err(Error::internal(
                            "Primary SATA controller must have PCI address 0:0:1f.2",
                        ))
                    }
                    Some(_) => {}
                    None => self.set_address(i, fixed, Multifunction::Absent),
                }
            } else if c.ctype == "usb" && c.model_is("ich9-uhci1") && no_address {
                // The first USB2 sets go where real ICH9 hardware has them, if free.
                let place = [0x1d, 0x1a]
                    .into_iter()
                    .map(|slot| PciAddress::new(0, 0, slot, 0))
                    .find(|a| !set.slot_in_use(a));
                if let Some(addr) = place {
                    set.reserve(&addr, flags, true)?;
                    self.set_address(i, addr, Multifunction::On);
                }
            } else if c.pci_model() == Some(PciModel::DmiToPciBridge) && no_address {
                let addr = PciAddress::new(0, 0, 0x1e, 0);
                if !set.slot_in_use(&addr) {
                    set.reserve(&addr, flags, true)?;
                    self.set_address(i, addr, Multifunction::Absent);
                }
            }
        }
        if set.bus_count() > 0 {
            set.reserve(&PciAddress::new(0, 0, 0x1f, 0), flags, true)?;
            set.reserve(&PciAddress::new(0, 0, 0x1f, 3), flags, true)?;
        }
        self.primary_video(set, PciAddress::new(0, 0, 1, 0), flags)?;
        let audio = PciAddress::new(0, 0, 0x1b, 0);
        if !set.slot_in_use(&audio) {
            let first_ich9 = self.devices_where(|d| {
                matches!(&d.kind, DeviceKind::Sound { model } if *model == "ich9")
                    && d.address.wants_pci()
            });
            if let Some(&sound) = first_ich9.first() {
                set.reserve(&audio, flags, true)?;
                self.set_address(sound, audio, Multifunction::Absent);
            }
        }
        Ok(())
    }
}
