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
//! group, but only for host devices whose IOMMU group it can read on the host; for those it
//! cannot (any device not on the host) the group is the default one and placement is plain.
//! virtpci plans without a host, so placement is the plain one.

use super::Planner;
use crate::assign::LibvirtLevel;
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
    /// serial or console libvirt pairs with a lone one.
    pub(super) fn assign_spapr_vio(&mut self) {
        if !self.is_pseries() {
            return;
        }
        let has =
            |p: &Planner, f: fn(&DeviceKind) -> bool| p.def.devices.iter().any(|d| f(&d.kind));
        let has_serial = has(self, |k| matches!(k, DeviceKind::Serial { .. }));
        let has_console = has(self, |k| matches!(k, DeviceKind::Console { .. }));
        if has_console && !has_serial {
            self.push_device(new_chr(DeviceKind::Serial {
                target_type: Some("spapr-vio-serial"),
            }));
        } else if has_serial && !has_console {
            self.push_device(new_chr(DeviceKind::Console {
                target_type: Some("serial"),
            }));
        }
        for d in &mut self.def.devices {
            let on_vio = match &d.kind {
                DeviceKind::Serial { target_type } => {
                    matches!(target_type, None | Some("spapr-vio-serial"))
                }
                DeviceKind::Console { target_type } => {
                    matches!(target_type, None | Some("serial"))
                }
                DeviceKind::Nvram => true,
                DeviceKind::Tpm => true,
                DeviceKind::Controller(c) => c.ctype == "scsi" && c.model_is("ibmvscsi"),
                DeviceKind::Net { model, .. } => *model == Some("spapr-vlan"),
                _ => false,
            };
            if on_vio && d.address == DeviceAddress::None {
                d.address = DeviceAddress::Other(SPAPR_VIO.to_string());
            }
        }
    }

    /// The PHB values libvirt fills in after assignment: the model name, and the target
    /// index (0 for the default PHB; the lowest unused above 0 for the others, input PHBs
    /// first: devices below `defined`).
    pub(super) fn fill_phb_defaults(&mut self, defined: usize) {
        if !self.is_pseries() {
            return;
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
                let target = if index == 0 {
                    0
                } else {
                    (1..).find(|t| !used.contains(t)).unwrap_or(1)
                };
                opts.target_index = Some(target);
                self.filled[i].target_index = true;
            }
            used.extend(opts.target_index);
        }
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
