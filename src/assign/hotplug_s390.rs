//! Hotplug on s390x `s390-ccw-virtio`, as libvirt hot-plugs there: a virtio device without an
//! address goes on the channel subsystem and gets the lowest free device number of channel
//! subsystem 0xfe, subchannel set 0 (libvirt builds its CCW set anew from the running guest
//! for each hotplug, so a number freed by an unplug is given again); a device on PCI gets its
//! PCI address as elsewhere, then its zPCI uid and fid (those the device gives kept, the
//! others the lowest free). Unplug frees the number, or the PCI function and its identifiers.
//!
//! [`HotplugAddressSet::reserve_next_guest`] answers on every machine (a PCI address without
//! zPCI identifiers elsewhere); the PCI-only calls refuse on s390x, where their answer would
//! lack the CCW number or the zPCI identifiers.

use super::hotplug::HotplugAddressSet;
use super::plan::{
    ccw_in_use, goes_on_ccw, next_free_ccw, s390_device_default, takes_zpci, Plan, ZpciIds,
    FIRST_CCW,
};
use crate::error::{Error, Result};
use crate::pci::PciAddress;
use crate::xml::ccw::{read_s390_address, CcwAddress, S390Address};
use crate::xml::domain::{read_device, AddressPreferences, DeviceAddress};
use crate::xml::Document;
use std::collections::{HashMap, HashSet};
use std::fmt;

/// The guest address a hot-plugged device gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestAddress {
    /// A PCI address; on s390x with the device's zPCI (uid, fid), elsewhere without.
    Pci {
        addr: PciAddress,
        zpci: Option<(u32, u32)>,
    },
    /// s390x: a channel subsystem address.
    Ccw(CcwAddress),
}

impl fmt::Display for GuestAddress {
    /// `0000:00:01.0 zpci uid 0x0001 fid 0x00000000`, `fe.0.0001` (as `--explain` writes).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuestAddress::Pci { addr, zpci: None } => write!(f, "{addr}"),
            GuestAddress::Pci {
                addr,
                zpci: Some((uid, fid)),
            } => write!(f, "{addr} zpci uid 0x{uid:04x} fid 0x{fid:08x}"),
            GuestAddress::Ccw(addr) => write!(f, "{addr}"),
        }
    }
}

/// The CCW numbers and zPCI identifiers in use in a running s390x guest.
#[derive(Clone, Debug, Default)]
pub(super) struct S390Ids {
    ccw: HashSet<CcwAddress>,
    zpci: ZpciIds,
    /// The identifiers of each device on PCI, by its address, to free them on unplug.
    zpci_at: HashMap<PciAddress, (u32, u32)>,
}

impl S390Ids {
    /// What the assigned guest `plan` uses.
    pub(super) fn of_plan(plan: &Plan<'_>) -> Result<S390Ids> {
        let mut ids = S390Ids::default();
        for (i, device) in plan.def.devices.iter().enumerate() {
            let given = plan.def.s390.get(i).cloned().unwrap_or_default();
            let now = given.completed(&plan.s390.get(i).copied().unwrap_or_default());
            if device.address.type_name() == "ccw" {
                if let Some(addr) = now.ccw {
                    ids.ccw.insert(addr);
                }
            }
            if let (Some(addr), Some(uid), Some(fid)) =
                (device.address.present_pci(), now.zpci.uid, now.zpci.fid)
            {
                ids.zpci.ensure(now.zpci)?;
                ids.zpci_at.insert(addr, (uid, fid));
            }
        }
        Ok(ids)
    }

    /// Free the zPCI identifiers of the device at `addr`, if it has any.
    pub(super) fn release_zpci(&mut self, addr: &PciAddress) {
        if let Some(ids) = self.zpci_at.remove(addr) {
            self.zpci.release(ids);
        }
    }
}

impl HotplugAddressSet {
    /// Reserve the guest address of the device described by `device_xml`, on every machine:
    /// on s390x a CCW device number or a PCI address with zPCI identifiers (see the module
    /// documentation), elsewhere what [`Self::reserve_next`] gives. An address written in
    /// `device_xml` is reserved as is (a CCW number in use, a zPCI id already reserved or
    /// a PCI address libvirt would refuse are refused with libvirt's words). `Ok(None)` when
    /// the device uses neither.
    pub fn reserve_next_guest(&mut self, device_xml: &str) -> Result<Option<GuestAddress>> {
        if self.s390.is_none() {
            return Ok(self
                .reserve_pci(device_xml, &AddressPreferences::default())?
                .map(|addr| GuestAddress::Pci { addr, zpci: None }));
        }
        let doc = Document::parse(device_xml)?;
        let mut device = read_device(&doc, doc.root)?;
        s390_device_default(&mut device);
        let given: S390Address = match device.address_element {
            Some(a) => read_s390_address(&doc, a)?,
            None => S390Address::default(),
        };
        let on_ccw = device.address.type_name() == "ccw"
            || (device.address == DeviceAddress::None && goes_on_ccw(&device));
        let ids = self.s390.as_mut().expect("checked above");
        if on_ccw {
            if !device.prefs.is_empty() {
                return Err(Error::config_unsupported(
                    "addressPreferences apply to PCI placement, but on s390x this device goes \
                     on CCW; give it <address type='pci'/> to place it on PCI",
                ));
            }
            let addr = match given.ccw {
                Some(addr) if ids.ccw.contains(&addr) => return Err(ccw_in_use(addr)),
                Some(addr) => addr,
                None => next_free_ccw(&ids.ccw, FIRST_CCW)?,
            };
            ids.ccw.insert(addr);
            return Ok(Some(GuestAddress::Ccw(addr)));
        }
        let takes = takes_zpci(&device);
        let Some(addr) = self.reserve_pci(device_xml, &AddressPreferences::default())? else {
            return Ok(None);
        };
        if !takes {
            return Ok(Some(GuestAddress::Pci { addr, zpci: None }));
        }
        let ids = self.s390.as_mut().expect("checked above");
        match ids.zpci.ensure(given.zpci) {
            Ok(zpci) => {
                ids.zpci_at.insert(addr, zpci);
                Ok(Some(GuestAddress::Pci {
                    addr,
                    zpci: Some(zpci),
                }))
            }
            Err(e) => {
                // Nothing is kept of a refused device.
                self.release(&addr)?;
                Err(e)
            }
        }
    }

    /// Free the guest address `addr` (unplug): a PCI function (and on s390x its zPCI
    /// identifiers) as [`Self::release`] does, or a CCW device number. Releasing an address
    /// not in use is not an error, as in libvirt.
    pub fn release_guest(&mut self, addr: &GuestAddress) -> Result<()> {
        match addr {
            GuestAddress::Pci { addr, .. } => self.release(addr),
            GuestAddress::Ccw(ccw) => match &mut self.s390 {
                Some(ids) => {
                    ids.ccw.remove(ccw);
                    Ok(())
                }
                None => Err(Error::invalid_arg(format!(
                    "CCW address {ccw} on a guest that is not s390x (s390-ccw-virtio)"
                ))),
            },
        }
    }

    /// The PCI-only calls cannot answer on s390x: the caller would not learn the CCW number
    /// or the zPCI identifiers libvirt gives.
    pub(super) fn refuse_pci_only_on_s390(&self) -> Result<()> {
        if self.s390.is_some() {
            return Err(Error::config_unsupported(
                "on s390x (s390-ccw-virtio) a hot-plugged device gets a CCW device number or \
                 zPCI identifiers that a PCI address does not carry; use reserve_next_guest \
                 (C: virtpci_address_set_reserve_next_guest)",
            ));
        }
        Ok(())
    }
}
