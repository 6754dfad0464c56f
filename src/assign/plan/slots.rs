//! Device placement in libvirt's order (qemuDomainAssignDevicePCISlots): the device lists of
//! each step, the USB2 companions sharing a slot, and multifunction set on function 0 of
//! every slot in use by several functions.

use super::Planner;
use crate::assign::set::AddressSet;
use crate::error::{quote, Error, Result};
use crate::pci::PciAddress;
use crate::xml::domain::{Controller, Device, DeviceAddress, DeviceKind, Multifunction};

impl<'a> Planner<'a> {
    pub(super) fn devices_where(&self, keep: impl Fn(&Device) -> bool) -> Vec<usize> {
        (0..self.def.devices.len())
            .filter(|&i| keep(&self.def.devices[i]))
            .collect()
    }

    /// Videos as libvirt lists them: the primary one first.
    pub(super) fn video_order(&self) -> Vec<usize> {
        let mut videos = self.devices_where(|d| matches!(d.kind, DeviceKind::Video { .. }));
        if let Some(pos) = videos.iter().position(|&i| {
            matches!(
                self.def.devices[i].kind,
                DeviceKind::Video { primary: true, .. }
            )
        }) {
            let primary = videos.remove(pos);
            videos.insert(0, primary);
        }
        videos
    }

    /// Every device in the order of libvirt's virDomainDeviceInfoIterate: by kind, then in
    /// each kind's list order.
    pub(super) fn iterate_order(&self, keep: impl Fn(&Device<'a>) -> bool) -> Vec<usize> {
        let mut keyed = self.iterate_keys(keep);
        keyed.sort_unstable();
        keyed.into_iter().map(|(_, _, i)| i).collect()
    }

    /// The devices `keep` accepts, each with its sort key for [`Self::iterate_order`]
    /// (unsorted).
    pub(super) fn iterate_keys(
        &self,
        keep: impl Fn(&Device<'a>) -> bool,
    ) -> Vec<(u8, usize, usize)> {
        let backcompat_console = self.backcompat_console();
        let primary_video = self.video_order().first().copied();
        let mut controller_pos = vec![usize::MAX; self.def.devices.len()];
        for (pos, &i) in self.controller_order.iter().enumerate() {
            controller_pos[i] = pos;
        }
        let mut keyed: Vec<(u8, usize, usize)> = Vec::new();
        for (i, device) in self.def.devices.iter().enumerate() {
            if !keep(device) {
                continue;
            }
            let rank = match device.kind {
                DeviceKind::Disk { .. } => 0,
                DeviceKind::Net { .. } => 1,
                DeviceKind::Sound { .. } => 2,
                DeviceKind::Hostdev(_) => 3,
                DeviceKind::Video { .. } => 4,
                DeviceKind::Controller(_) => 5,
                DeviceKind::Smartcard => 6,
                DeviceKind::Serial { .. } => 7,
                DeviceKind::Parallel => 8,
                DeviceKind::Channel { .. } => 9,
                DeviceKind::Console { .. } if Some(i) == backcompat_console => continue,
                DeviceKind::Console { .. } => 10,
                DeviceKind::Input { .. } => 11,
                DeviceKind::Filesystem { .. } => 12,
                DeviceKind::Watchdog { .. } => 13,
                DeviceKind::Memballoon { .. } => 14,
                DeviceKind::Rng { .. } => 15,
                DeviceKind::Nvram => 16,
                DeviceKind::Hub => 17,
                DeviceKind::Shmem => 18,
                DeviceKind::Tpm { .. } => 19,
                DeviceKind::Panic { .. } => 20,
                DeviceKind::Memory { .. } => 21,
                DeviceKind::Redirdev => 22,
                DeviceKind::Vsock { .. } => 23,
                DeviceKind::Iommu { .. } => 24,
                DeviceKind::Crypto { .. } => 25,
                DeviceKind::Other => continue,
            };
            let within = match device.kind {
                DeviceKind::Controller(_) => controller_pos[i],
                DeviceKind::Video { .. } if Some(i) == primary_video => 0,
                _ => i + 1,
            };
            keyed.push((rank, within, i));
        }
        keyed
    }

    /// The first console, when it only mirrors the first serial port (libvirt skips it when
    /// walking devices: its address is the serial's).
    pub(super) fn backcompat_console(&self) -> Option<usize> {
        let has_serial = self
            .def
            .devices
            .iter()
            .any(|d| matches!(d.kind, DeviceKind::Serial { .. }));
        let first = self
            .def
            .devices
            .iter()
            .position(|d| matches!(d.kind, DeviceKind::Console { .. }))?;
        match &self.def.devices[first].kind {
            DeviceKind::Console { target_type }
                if has_serial && target_type.as_deref().map_or(true, |t| t == "serial") =>
            {
                Some(first)
            }
            _ => None,
        }
    }

    /// Give every device that wants one an address, in libvirt's order
    /// (qemuDomainAssignDevicePCISlots).
    pub(super) fn assign_slots(&mut self, set: &mut AddressSet) -> Result<()> {
        // The device lists of each step, made in one walk over the devices.
        let rest: [fn(&DeviceKind) -> bool; 12] = [
            |k| matches!(k, DeviceKind::Memballoon { model } if *model != "none" && *model != "xen"),
            |k| matches!(k, DeviceKind::Rng { .. }),
            |k| matches!(k, DeviceKind::Watchdog { model } if *model == "i6300esb"),
            |_| false, // videos: see below
            |k| matches!(k, DeviceKind::Shmem),
            |k| matches!(k, DeviceKind::Input { bus, .. } if *bus == "virtio"),
            |k| matches!(k, DeviceKind::Serial { target_type: Some(t) } if *t == "pci-serial"),
            |k| matches!(k, DeviceKind::Iommu { model } if *model == "virtio"),
            |k| matches!(k, DeviceKind::Vsock { .. }),
            |k| matches!(k, DeviceKind::Memory { model } if *model == "virtio-pmem" || *model == "virtio-mem"),
            |k| matches!(k, DeviceKind::Crypto { .. }),
            |k| matches!(k, DeviceKind::Panic { model: Some(m) } if *m == "pvpanic"),
        ];
        const FILESYSTEMS: usize = 0;
        const NETS: usize = 1;
        const SOUNDS: usize = 2;
        const VIRTIO_DISKS: usize = 3;
        const HOSTDEV_NETS: usize = 4;
        const HOSTDEVS: usize = 5;
        const REST: usize = 6;
        let mut lists: [Vec<usize>; REST + 12] = Default::default();
        for (i, d) in self.def.devices.iter().enumerate() {
            let bucket = match &d.kind {
                DeviceKind::Filesystem { .. } => FILESYSTEMS,
                DeviceKind::Net { hostdev: None, .. } => NETS,
                DeviceKind::Net { .. } => HOSTDEV_NETS,
                DeviceKind::Sound { model } if !matches!(*model, "sb16" | "pcspk" | "usb") => {
                    SOUNDS
                }
                DeviceKind::Disk { bus, .. } if *bus == "virtio" => VIRTIO_DISKS,
                DeviceKind::Hostdev(_) => HOSTDEVS,
                kind => match rest.iter().position(|keep| keep(kind)) {
                    Some(step) => REST + step,
                    None => continue,
                },
            };
            lists[bucket].push(i);
        }
        // 1. PCI controllers other than the roots.
        for i in self.controller_order.clone() {
            if let Some(model) = self.controller(i).pci_model() {
                if !model.is_root() && self.wants(i) {
                    self.reserve_next_for(set, i)?;
                }
            }
        }
        // 2. Filesystems.
        for &i in &lists[FILESYSTEMS] {
            if self.wants(i) {
                self.reserve_next_for(set, i)?;
            }
        }
        // 3. Network interfaces, except hostdev ones (they go with the hostdevs).
        for &i in &lists[NETS] {
            if self.wants(i) {
                self.reserve_next_for(set, i)?;
            }
        }
        // 4. Sound cards that are PCI devices.
        for &i in &lists[SOUNDS] {
            if self.wants(i) {
                self.reserve_next_for(set, i)?;
            }
        }
        // 5. Other controllers.
        for i in self.controller_order.clone() {
            let c = self.controller(i);
            let skip = c.ctype == "pci"
                || (c.ctype == "usb" && c.model_is("none"))
                || c.ctype == "fdc"
                || c.ctype == "ccid"
                || (c.ctype == "ide" && c.index() == 0)
                || (c.ctype == "scsi" && c.model_is("ncr53c90"));
            if skip || !self.wants(i) {
                continue;
            }
            match usb2_companion_function(c) {
                Some((function, multi)) => self.assign_usb2_companion(set, i, function, multi)?,
                None => self.reserve_next_for(set, i)?,
            }
        }
        // 6. virtio disks.
        for &i in &lists[VIRTIO_DISKS] {
            let address = &self.def.devices[i].address;
            if address.present_pci().is_some()
                || matches!(address, DeviceAddress::Other(t) if t == "ccw" || t == "virtio-mmio")
            {
                continue;
            }
            if !address.wants_pci() {
                return Err(Error::config_unsupported(format!(
                    "virtio disk cannot have an address of type '{}'",
                    quote(address.type_name())
                )));
            }
            self.reserve_next_for(set, i)?;
        }
        // 7. Host devices that are PCI functions in the guest: those of
        // `<interface type='hostdev'>` first.
        for &i in lists[HOSTDEV_NETS].iter().chain(&lists[HOSTDEVS]) {
            let hostdev = match &self.def.devices[i].kind {
                DeviceKind::Hostdev(h) => h,
                DeviceKind::Net {
                    hostdev: Some(h), ..
                } => h,
                _ => continue,
            };
            let pci_in_guest = hostdev.is_subsystem()
                && (hostdev.htype == "pci"
                    || hostdev.htype == "scsi_host"
                    || (hostdev.htype == "mdev" && hostdev.model == Some("vfio-pci")));
            if pci_in_guest && self.wants(i) {
                self.reserve_next_for(set, i)?;
            }
        }
        // 8.-19. The rest, one kind after the other.
        for step in 0..rest.len() {
            let devices = if step == 3 {
                self.video_order()
                    .into_iter()
                    .filter(|&i| {
                        !matches!(&self.def.devices[i].kind, DeviceKind::Video { model, .. } if *model == "none" || *model == "ramfb")
                    })
                    .collect()
            } else {
                let mut list = std::mem::take(&mut lists[REST + step]);
                // libvirt has a single memballoon, iommu and vsock.
                if step == 0 || step == 7 || step == 8 {
                    list.truncate(1);
                }
                list
            };
            for i in devices {
                if self.wants(i) {
                    self.reserve_next_for(set, i)?;
                }
            }
        }
        Ok(())
    }

    /// ICH9 USB2 controllers of one index share a slot at fixed functions.
    pub(super) fn assign_usb2_companion(
        &mut self,
        set: &mut AddressSet,
        i: usize,
        function: u32,
        multi: Multifunction,
    ) -> Result<()> {
        let index = self.controller(i).index();
        let partner = self.controller_order.iter().find_map(|&j| {
            let c = self.controller(j);
            if usb2_companion_function(c).is_some() && c.index() == index {
                self.def.devices[j].address.present_pci()
            } else {
                None
            }
        });
        match partner {
            Some(addr) => {
                let addr = PciAddress { function, ..addr };
                set.reserve(&addr, self.flags[i], true)?;
                self.set_address(i, addr, multi);
            }
            None => {
                let addr = set.reserve_next(self.flags[i], Some(function))?;
                if !set.dry_run {
                    self.set_address(i, addr, multi);
                }
            }
        }
        Ok(())
    }

    /// Function 0 of every slot with another function in use gets multifunction='on',
    /// unless the definition says 'off' (virDomainPCIAddressSetAllMulti).
    pub(super) fn set_all_multifunction(&mut self) {
        let pci = |d: &Device| match d.address {
            DeviceAddress::Pci { addr, .. } => Some(addr),
            _ => None,
        };
        let keyed = self.iterate_keys(|d| pci(d).is_some());
        let mut slots_with_others: Vec<PciAddress> = keyed
            .iter()
            .filter_map(|&(_, _, i)| pci(&self.def.devices[i]))
            .filter(|a| a.function != 0)
            .map(|a| PciAddress { function: 0, ..a })
            .collect();
        if slots_with_others.is_empty() {
            return;
        }
        slots_with_others.sort_unstable();
        slots_with_others.dedup();
        // Per slot, the device at function 0 that comes first in libvirt's order.
        let mut first_at: Vec<Option<(u8, usize, usize)>> = vec![None; slots_with_others.len()];
        for &key in &keyed {
            let Some(addr) = pci(&self.def.devices[key.2]) else {
                continue;
            };
            if let Ok(pos) = slots_with_others.binary_search(&addr) {
                let entry = &mut first_at[pos];
                if entry.map_or(true, |e| key < e) {
                    *entry = Some(key);
                }
            }
        }
        for (_, _, i) in first_at.into_iter().flatten() {
            if let DeviceAddress::Pci { multi, .. } = &mut self.def.devices[i].address {
                if *multi == Multifunction::Absent {
                    *multi = Multifunction::On;
                }
            }
        }
    }
}

/// The fixed function (and multifunction setting) of an ICH9 USB2 companion controller.
pub(super) fn usb2_companion_function(c: &Controller) -> Option<(u32, Multifunction)> {
    if c.ctype != "usb" {
        return None;
    }
    match c.model? {
        "ich9-ehci1" => Some((7, Multifunction::Absent)),
        "ich9-uhci1" => Some((0, Multifunction::On)),
        "ich9-uhci2" => Some((1, Multifunction::Absent)),
        "ich9-uhci3" => Some((2, Multifunction::Absent)),
        _ => None,
    }
}
