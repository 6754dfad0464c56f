//! s390x `s390-ccw-virtio`: virtio devices on the channel subsystem, with CCW device numbers
//! given as libvirt gives them (qemuDomainAssignS390Addresses), and the zPCI identifiers of
//! the devices that are on PCI (virDomainZPCIAddress*).
//!
//! libvirt's order: after post-parse, every virtio device without an address is declared a
//! CCW device; the explicit device numbers are booked (a number used twice is refused), then
//! the others get the lowest free numbers of channel subsystem 0xfe, subchannel set 0, in
//! device order. PCI placement follows for whatever is left. Last, every device on PCI gets a
//! zPCI uid (lowest free from 1) and fid (lowest free from 0): first those that give one of
//! them, then the others, each group in device order.

use super::Planner;
use crate::error::{Error, Result};
use crate::topology::MachineKind;
use crate::xml::ccw::{
    CcwAddress, S390Address, S390Assigned, Zpci, MAX_DEVNO, MAX_ZPCI_UID, VIRTUAL_CSSID,
};
use crate::xml::domain::{Device, DeviceAddress, DeviceKind};
use std::collections::HashSet;

const CCW: &str = "ccw";

impl<'a> Planner<'a> {
    pub(super) fn is_s390(&self) -> bool {
        self.machine() == MachineKind::S390Ccw
    }

    /// What the input's address of device `i` says for s390x (nothing for added devices).
    fn s390_input(&self, i: usize) -> S390Address {
        self.def.s390.get(i).cloned().unwrap_or_default()
    }

    /// The post-parse default of s390x that decides the bus: an interface without a model is
    /// virtio (qemuDomainDefaultNetModel). The controllers' defaults are with the others
    /// (`defaults.rs`).
    pub(super) fn s390_defaults(&mut self) {
        for d in &mut self.def.devices {
            s390_device_default(d);
        }
    }

    /// libvirt's refusals of addresses s390x devices cannot have: a mediated device's
    /// address must be of its model's bus (virDomainHostdevDefPostParse), the s390 panic
    /// device has none (qemuValidateDomainDefPanic).
    pub(super) fn check_s390_addresses(&self) -> Result<()> {
        for d in &self.def.devices {
            match &d.kind {
                DeviceKind::Hostdev(h) if h.is_subsystem() && h.htype == "mdev" => {
                    let wanted = match h.model {
                        Some("vfio-pci") => "pci",
                        Some("vfio-ccw") => CCW,
                        _ => continue,
                    };
                    let given = d.address.type_name();
                    if d.address != DeviceAddress::None && given != wanted {
                        return Err(Error::xml(format!(
                            "Unsupported address type '{given}' with mediated device model '{}'",
                            h.model.unwrap_or_default()
                        )));
                    }
                }
                DeviceKind::Panic { model: None }
                | DeviceKind::Panic {
                    model: Some("s390"),
                } if d.address != DeviceAddress::None => {
                    return Err(Error::config_unsupported(
                        "setting the panic device address is not supported for model 's390'",
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The devices QEMU for s390x does not have, refused as libvirt's validation refuses
    /// them (after placement, in device order): ICH9 sound, video other than virtio, the
    /// LSI SCSI controller, SATA.
    pub(super) fn check_s390_device_models(&self) -> Result<()> {
        for i in self.iterate_order(|_| true) {
            let refusal = match &self.def.devices[i].kind {
                DeviceKind::Sound { model } if *model == "ich9" => {
                    "The ich9-intel-hda audio controller is not supported in this QEMU binary"
                        .to_string()
                }
                DeviceKind::Video { model, .. } if !matches!(*model, "virtio" | "none") => {
                    format!("domain configuration does not support video model '{model}'")
                }
                DeviceKind::Controller(c) if c.ctype == "scsi" && c.model_is("lsilogic") => {
                    "This QEMU doesn't support the LSI 53C895A SCSI controller".to_string()
                }
                DeviceKind::Controller(c) if c.ctype == "sata" => {
                    "SATA is not supported with this QEMU binary".to_string()
                }
                _ => continue,
            };
            return Err(Error::config_unsupported(refusal));
        }
        Ok(())
    }

    /// Declare the virtio devices without an address CCW devices and give every CCW device
    /// without numbers the lowest free ones.
    pub(super) fn assign_ccw_addresses(&mut self) -> Result<()> {
        self.s390 = vec![S390Assigned::default(); self.def.devices.len()];
        for i in 0..self.def.devices.len() {
            if self.def.devices[i].address == DeviceAddress::None
                && goes_on_ccw(&self.def.devices[i])
            {
                if !self.def.devices[i].prefs.is_empty() {
                    return Err(Error::config_unsupported(format!(
                        "{}: addressPreferences apply to PCI placement, but on s390x this \
                         device goes on CCW; give it <address type='pci'/> to place it on PCI",
                        super::flags::describe(&self.def.devices[i])
                    )));
                }
                self.def.devices[i].address = DeviceAddress::Other(CCW.to_string());
            }
        }
        let ccw_devices = self.iterate_order(|d| d.address.type_name() == CCW);
        let mut used: HashSet<CcwAddress> = HashSet::new();
        for &i in &ccw_devices {
            if let Some(addr) = self.s390_input(i).ccw {
                if !used.insert(addr) {
                    return Err(ccw_in_use(addr));
                }
            }
        }
        let mut next = FIRST_CCW;
        for &i in &ccw_devices {
            if self.s390_input(i).ccw.is_some() {
                continue;
            }
            next = next_free_ccw(&used, next)?;
            used.insert(next);
            self.s390[i].ccw = Some(next);
        }
        Ok(())
    }

    /// Give every device on PCI among the first `defined` ones (those of the definition and
    /// its post-parse defaults, not the controllers placement added) its zPCI uid and fid,
    /// and check them as libvirt's validation does afterwards.
    pub(super) fn assign_zpci(&mut self, defined: usize) -> Result<()> {
        self.s390
            .resize(self.def.devices.len(), S390Assigned::default());
        let mut on_pci =
            self.iterate_order(|d| matches!(d.address, DeviceAddress::Pci { .. }) && takes_zpci(d));
        on_pci.retain(|&i| i < defined);
        let mut ids = ZpciIds::default();
        let mut given: Vec<(usize, Zpci)> = Vec::new();
        for &i in &on_pci {
            let zpci = self.s390_input(i).zpci;
            if zpci.is_present() {
                given.push((i, zpci));
            }
        }
        for &(i, zpci) in &given {
            let (uid, fid) = ids.ensure(zpci)?;
            if zpci.uid.is_none() || zpci.fid.is_none() {
                self.s390[i].zpci = Some((uid, fid));
            }
        }
        for &i in &on_pci {
            if !self.s390_input(i).zpci.is_present() {
                self.s390[i].zpci = Some(ids.ensure(Zpci::default())?);
            }
        }
        for &(_, zpci) in &given {
            if let Some(uid) = zpci.uid.filter(|&u| u == 0 || u > MAX_ZPCI_UID) {
                return Err(Error::xml(format!(
                    "Invalid PCI address uid='0x{uid:04x}', must be > 0x0000 and <= \
                     0x{MAX_ZPCI_UID:04x}"
                )));
            }
        }
        Ok(())
    }
}

/// s390x's post-parse default of one device (also applied to a hot-plugged device): an
/// interface without a model is virtio.
pub(crate) fn s390_device_default(d: &mut Device) {
    if let DeviceKind::Net {
        model: model @ None,
        hostdev: None,
        ..
    } = &mut d.kind
    {
        *model = Some("virtio");
    }
}

/// Where libvirt starts looking for a free CCW device number: channel subsystem 0xfe,
/// subchannel set 0, device 0.
pub(crate) const FIRST_CCW: CcwAddress = CcwAddress {
    cssid: VIRTUAL_CSSID,
    ssid: 0,
    devno: 0,
};

/// The first device number from `from` on (same channel subsystem and subchannel set) that
/// `used` lacks; libvirt never moves to another subchannel set.
pub(crate) fn next_free_ccw(used: &HashSet<CcwAddress>, from: CcwAddress) -> Result<CcwAddress> {
    let mut next = from;
    while used.contains(&next) {
        if next.devno == MAX_DEVNO {
            return Err(Error::internal("There are no more free CCW devnos."));
        }
        next.devno += 1;
    }
    Ok(next)
}

/// The refusal of a CCW address given twice.
pub(crate) fn ccw_in_use(addr: CcwAddress) -> Error {
    Error::xml(format!("The CCW devno '{addr}' is in use already"))
}

/// The zPCI uids and fids in use (virDomainZPCIAddressIds).
#[derive(Clone, Debug, Default)]
pub(crate) struct ZpciIds {
    uids: HashSet<u32>,
    fids: HashSet<u32>,
}

impl ZpciIds {
    /// Fill in what `zpci` lacks with the lowest free identifiers, then book both
    /// (virDomainZPCIAddressEnsureAddr); an identifier already booked is refused.
    pub(crate) fn ensure(&mut self, zpci: Zpci) -> Result<(u32, u32)> {
        let uid = match zpci.uid {
            Some(uid) => uid,
            None => lowest_free(&self.uids, 1, u32::from(u16::MAX), "uid")?,
        };
        let fid = match zpci.fid {
            Some(fid) => fid,
            None => lowest_free(&self.fids, 0, u32::MAX, "fid")?,
        };
        if !self.uids.insert(uid) {
            return Err(already_reserved("uid", uid));
        }
        if !self.fids.insert(fid) {
            self.uids.remove(&uid);
            return Err(already_reserved("fid", fid));
        }
        Ok((uid, fid))
    }
    /// Give back a device's identifiers (virDomainZPCIAddressReleaseIds).
    pub(crate) fn release(&mut self, (uid, fid): (u32, u32)) {
        self.uids.remove(&uid);
        self.fids.remove(&fid);
    }
}

fn lowest_free(used: &HashSet<u32>, min: u32, max: u32, name: &str) -> Result<u32> {
    let mut id = min;
    while used.contains(&id) {
        if id == max {
            return Err(Error::internal(format!("There is no more free {name}.")));
        }
        id += 1;
    }
    Ok(id)
}

/// libvirt prints the identifier in octal here.
fn already_reserved(name: &str, id: u32) -> Error {
    Error::internal(format!("zPCI {name} {id:o} is already reserved"))
}

/// The devices libvirt declares CCW devices when they have no address
/// (qemuDomainPrimeVirtioDeviceAddresses, and vfio-ccw mediated devices).
pub(crate) fn goes_on_ccw(d: &Device) -> bool {
    let virtio_net = |model: Option<&str>| {
        matches!(
            model,
            Some("virtio" | "virtio-transitional" | "virtio-non-transitional")
        )
    };
    match &d.kind {
        DeviceKind::Disk { bus, .. } => *bus == "virtio",
        DeviceKind::Net { model, .. } => virtio_net(*model),
        DeviceKind::Video { model, .. } => *model == "virtio",
        DeviceKind::Input { bus, .. } => *bus == "virtio",
        DeviceKind::Controller(c) => matches!(c.ctype, "virtio-serial" | "scsi"),
        DeviceKind::Hostdev(h) => {
            h.is_subsystem()
                && (h.htype == "scsi_host" || (h.htype == "mdev" && h.model == Some("vfio-ccw")))
        }
        DeviceKind::Memballoon { model } => *model != "none",
        DeviceKind::Rng { .. } => true,
        DeviceKind::Memory { model } => matches!(*model, "virtio-pmem" | "virtio-mem"),
        DeviceKind::Filesystem { .. } => true,
        DeviceKind::Vsock { .. } => true,
        _ => false,
    }
}

/// Every device on PCI takes zPCI identifiers except character devices
/// (qemuDomainDeviceSupportZPCI).
pub(crate) fn takes_zpci(d: &Device) -> bool {
    !matches!(
        d.kind,
        DeviceKind::Serial { .. }
            | DeviceKind::Console { .. }
            | DeviceKind::Channel { .. }
            | DeviceKind::Parallel
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zpci_ids_fill_the_lowest_free_and_refuse_twice_booked() {
        let mut ids = ZpciIds::default();
        let given = Zpci {
            uid: Some(1),
            fid: None,
        };
        assert_eq!(ids.ensure(given).unwrap(), (1, 0));
        assert_eq!(ids.ensure(Zpci::default()).unwrap(), (2, 1));
        let twice = Zpci {
            uid: Some(8),
            fid: Some(1),
        };
        assert_eq!(
            ids.ensure(twice).unwrap_err().to_string(),
            "internal error: zPCI fid 1 is already reserved"
        );
        // The uid of the refused device was given back.
        assert_eq!(
            ids.ensure(Zpci {
                uid: Some(8),
                fid: Some(9)
            })
            .unwrap(),
            (8, 9)
        );
        assert_eq!(
            ids.ensure(Zpci {
                uid: Some(8),
                fid: None
            })
            .unwrap_err()
            .to_string(),
            "internal error: zPCI uid 10 is already reserved"
        );
    }
}
