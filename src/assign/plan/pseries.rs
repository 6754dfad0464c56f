//! ppc64 `pseries`: PCI host bridges (PHBs) and the spapr-vio bus.
//!
//! Every PHB is a `pci-root` controller with model name `spapr-pci-host-bridge` and a
//! `<target index>` (the guest's PCI domain number); controller index 0 is the default PHB,
//! target index 0, and only it. When a bus is full, libvirt adds another PHB rather than a
//! pci-bridge. A PHB without a target index gets the lowest one above 0 that no PHB before it
//! has, the input's PHBs first, then those added for new buses.
//!
//! Consoles, serials, NVRAM, ibmvscsi SCSI controllers, spapr-vlan interfaces and TPMs sit on
//! the spapr-vio bus and take no PCI slot (qemuDomainAssignSpaprVIOAddresses). A console
//! alone gets a serial beside it and a serial alone a console, as libvirt's compatibility
//! rule does; both on spapr-vio.
//!
//! Isolation groups: libvirt keeps host devices off the default PHB and apart by host IOMMU
//! group, for host devices whose IOMMU group it can read on the host; the groups come from
//! the host the assignment is given (`assign::isolation`), and without one placement is the
//! plain one, as libvirt's for devices it cannot find.

use super::Planner;
use crate::assign::LibvirtLevel;
use crate::error::{Error, Result};
use crate::topology::{MachineKind, PciModel};
use crate::xml::domain::{Device, DeviceAddress, DeviceKind};

/// The address type of the spapr-vio bus.
pub const SPAPR_VIO: &str = "spapr-vio";
/// The PHB's QEMU device, written as the model name of every pseries pci-root.
pub const PHB_MODEL_NAME: &str = "spapr-pci-host-bridge";

impl<'a> Planner<'a> {
    pub(super) fn is_pseries(&self) -> bool {
        self.machine() == MachineKind::Pseries
    }

    /// Put the devices that live on spapr-vio there (before PCI placement), adding the
    /// serial or console libvirt pairs with a lone one: a console on a serial target gets a
    /// serial beside it, a serial on spapr-vio a console (on another serial target, the
    /// console libvirt adds shares the serial's address and is not written here). An
    /// isa-serial target is a spapr-vio one on pseries.
    pub(super) fn assign_spapr_vio(&mut self) {
        if !self.is_pseries() {
            return;
        }
        let serial_on_vio =
            |t: &Option<&str>| matches!(t, None | Some("spapr-vio-serial" | "isa-serial"));
        let first_serial = self.def.devices.iter().find_map(|d| match &d.kind {
            DeviceKind::Serial { target_type } => Some(*target_type),
            _ => None,
        });
        let first_console = self.def.devices.iter().find_map(|d| match &d.kind {
            DeviceKind::Console { target_type } => Some(*target_type),
            _ => None,
        });
        match (first_serial, first_console) {
            (None, Some(None | Some("serial"))) => {
                self.push_device(new_chr(DeviceKind::Serial {
                    target_type: Some("spapr-vio-serial"),
                }));
            }
            (Some(t), None) if serial_on_vio(&t) => {
                self.push_device(new_chr(DeviceKind::Console {
                    target_type: Some("serial"),
                }));
            }
            _ => {}
        }
        for d in &mut self.def.devices {
            let on_vio = match &d.kind {
                DeviceKind::Serial { target_type } => serial_on_vio(target_type),
                DeviceKind::Console { target_type } => {
                    matches!(target_type, None | Some("serial"))
                }
                DeviceKind::Nvram => true,
                DeviceKind::Tpm { model } => *model != Some("spapr-tpm-proxy"),
                DeviceKind::Controller(c) => c.ctype == "scsi" && c.model_is("ibmvscsi"),
                DeviceKind::Net { model, .. } => *model == Some("spapr-vlan"),
                _ => false,
            };
            if on_vio && d.address == DeviceAddress::None {
                d.address = DeviceAddress::Other(SPAPR_VIO.to_string());
            }
        }
    }

    /// libvirt's refusals of what pseries devices cannot have: an address on the pseries
    /// panic device (qemuValidateDomainDefPanic), and a `reg` already taken on spapr-vio;
    /// and the `reg` of every spapr-vio device (qemuDomainAssignSpaprVIOAddresses:
    /// interfaces, controllers, serials, NVRAM and TPMs in that order; a device without a
    /// `reg` takes its kind's default, moved up by 0x1000 while taken; a `reg` given that is
    /// taken is refused). The console libvirt writes beside the first serial shows that
    /// serial's `reg`.
    pub(super) fn assign_spapr_vio_regs(&mut self) -> Result<()> {
        if !self.is_pseries() {
            return Ok(());
        }
        for d in &self.def.devices {
            if let DeviceKind::Panic {
                model: None | Some("pseries"),
            } = d.kind
            {
                if d.address != DeviceAddress::None {
                    return Err(Error::config_unsupported(
                        "setting the panic device address is not supported for model 'pseries'",
                    ));
                }
            }
        }
        let rank = |k: &DeviceKind| match k {
            DeviceKind::Net { .. } => Some((0, 0x1000)),
            DeviceKind::Controller(_) => Some((1, 0x2000)),
            DeviceKind::Serial { .. } => Some((2, 0x3000_0000)),
            DeviceKind::Nvram => Some((3, 0x3000)),
            DeviceKind::Tpm { .. } => Some((4, 0x4000)),
            _ => None,
        };
        // (kind rank, position among its kind, device, default reg), in libvirt's order.
        let mut walk: Vec<(u32, u32, usize, u32)> = self
            .def
            .devices
            .iter()
            .enumerate()
            .filter(|(_, d)| matches!(&d.address, DeviceAddress::Other(t) if t == SPAPR_VIO))
            .filter_map(|(i, d)| {
                let (r, default) = rank(&d.kind)?;
                let pos = if r == 1 {
                    self.controller_order
                        .iter()
                        .position(|&c| c == i)
                        .unwrap_or(i)
                } else {
                    i
                };
                Some((r, pos as u32, i, default))
            })
            .collect();
        walk.sort();
        let mut regs: Vec<Option<u32>> = walk
            .iter()
            .map(|&(_, _, i, _)| self.def.spapr_vio_regs.get(i).copied().flatten())
            .collect();
        for n in 0..walk.len() {
            let given = regs[n].is_some();
            let mut reg = regs[n].unwrap_or(walk[n].3);
            let taken = |reg: u32, regs: &[Option<u32>]| {
                regs.iter()
                    .enumerate()
                    .any(|(m, r)| m != n && *r == Some(reg))
            };
            while taken(reg, &regs) {
                if given {
                    return Err(Error::xml(format!(
                        "spapr-vio address {reg:#x} already in use"
                    )));
                }
                reg += 0x1000;
            }
            regs[n] = Some(reg);
        }
        let mut by_device = vec![None; self.def.devices.len()];
        for (&(_, _, i, _), reg) in walk.iter().zip(regs) {
            by_device[i] = reg;
        }
        let first_serial = self
            .def
            .devices
            .iter()
            .position(|d| matches!(d.kind, DeviceKind::Serial { .. }));
        for (i, d) in self.def.devices.iter().enumerate() {
            let on_vio = matches!(&d.address, DeviceAddress::Other(t) if t == SPAPR_VIO);
            if on_vio && matches!(d.kind, DeviceKind::Console { .. }) {
                by_device[i] = first_serial.and_then(|s| by_device[s]);
            }
        }
        self.spapr_vio_regs = by_device;
        Ok(())
    }

    /// The PHB values libvirt fills in after assignment: the model name, and the target
    /// index (0 for the default PHB; the lowest unused above 0 for the others, input PHBs
    /// first: devices below `defined`).
    pub(super) fn fill_phb_defaults(&mut self, defined: usize) -> Result<()> {
        if !self.is_pseries() {
            return Ok(());
        }
        let mut order: Vec<usize> = self
            .controller_order
            .iter()
            .copied()
            .filter(|&i| self.controller(i).pci_model() == Some(PciModel::PciRoot))
            .collect();
        // libvirt 11.3 numbers them in index order.
        let input_first = self.options.libvirt < LibvirtLevel::V11_3;
        order.sort_by_key(|&i| (input_first && i >= defined, self.controller(i).index()));
        let mut used: Vec<i64> = Vec::new();
        for i in order {
            let Some(c) = self.def.devices[i].controller_mut() else {
                continue;
            };
            let index = c.index();
            let Some((_, opts)) = c.pci.as_mut() else {
                continue;
            };
            if opts.model_name.is_none() {
                opts.model_name = Some(PHB_MODEL_NAME);
                self.filled[i].model_name = true;
            }
            if opts.target_index.is_none() {
                // libvirt looks up to 31 (out of range, refused after) and gives up above;
                // a PHB has no PCI address, so its bus in the message is 0.
                let target = if index == 0 {
                    0
                } else {
                    (1..=31).find(|t| !used.contains(t)).ok_or_else(|| {
                        Error::config_unsupported("No usable target index found for 0")
                    })?
                };
                opts.target_index = Some(target);
                self.filled[i].target_index = true;
            }
            used.extend(opts.target_index);
        }
        Ok(())
    }
}

fn new_chr<'a>(kind: DeviceKind<'a>) -> Device<'a> {
    Device {
        element: None,
        address_element: None,
        kind,
        address: DeviceAddress::None,
        address_controller: None,
        prefs: Default::default(),
    }
}
