//! libvirt's post-parse phase before any address is given: controller indexes filled in, the
//! default devices and implicit controllers a definition lacks added
//! (qemuDomainDefAddDefaultDevices, qemuDomainDefAddImplicitControllers), and after
//! assignment the model names and target values libvirt writes into PCI controllers.

use super::Planner;
use crate::error::{Error, Result};
use crate::pci::PciAddress;
use crate::topology::{MachineKind, PciModel};
use crate::xml::domain::{Controller, Device, DeviceAddress, DeviceKind, PciControllerOptions};
use std::collections::{HashMap, HashSet};

impl<'a> Planner<'a> {
    /// Post-parse work and the checks libvirt makes before assigning addresses.
    pub(super) fn prepare(&mut self) -> Result<()> {
        self.check_machine_supported()?;
        self.apply_level()?;
        let controllers: Vec<usize> = (0..self.def.devices.len())
            .filter(|&i| self.def.devices[i].controller().is_some())
            .collect();
        let max = crate::limits::MAX_DOMAIN_CONTROLLERS;
        if controllers.len() > max {
            return Err(Error::xml(format!(
                "the domain has {} controllers, more than the limit of {max}",
                controllers.len()
            )));
        }
        for i in controllers {
            self.insert_controller(i);
        }
        self.check_usb_none()?;
        self.check_usb_companions_have_a_master()?;
        // Controllers without an index get the lowest one unused for their type. The indexes
        // in use only grow, so the lowest unused one never decreases: one cursor per type
        // keeps this linear (a search over every controller for every candidate index was
        // cubic: 2,000 index-less controllers took seconds).
        let mut used: HashMap<&str, HashSet<u32>> = HashMap::new();
        for &j in &self.controller_order {
            let c = self.controller(j);
            if let Some(index) = c.index {
                used.entry(c.ctype).or_default().insert(index);
            }
        }
        let mut lowest_free: HashMap<&str, u32> = HashMap::new();
        for pos in 0..self.controller_order.len() {
            let i = self.controller_order[pos];
            if self.controller(i).index.is_some() {
                continue;
            }
            let ctype = self.controller(i).ctype;
            let index = match self.usb2_companion_index(pos) {
                Some(index) => index,
                None => {
                    let taken = used.entry(ctype).or_default();
                    let index = lowest_free.entry(ctype).or_insert(0);
                    while taken.contains(index) {
                        *index += 1;
                    }
                    taken.insert(*index);
                    *index
                }
            };
            if let Some(c) = self.def.devices[i].controller_mut() {
                c.index = Some(index);
            }
            self.index_filled[i] = true;
        }
        self.check_duplicate_controllers()?;
        self.check_controllers()?;
        self.fill_default_controller_models()?;
        self.fill_virt_device_defaults();
        self.fill_x86_emulator_defaults();
        self.check_disk_names()?;
        self.add_default_devices();
        self.add_implicit_controllers()?;
        self.check_devices()?;
        self.choose_virtio_transport();
        Ok(())
    }

    pub(super) fn has_controller(&self, ctype: &str, index: u32) -> bool {
        self.controller_order.iter().any(|&i| {
            let c = self.controller(i);
            c.ctype == ctype && c.index == Some(index)
        })
    }

    /// Append a controller libvirt adds implicitly (it appends to its controller list).
    pub(super) fn add_implicit_controller(
        &mut self,
        ctype: &'a str,
        index: u32,
        model: Option<&'a str>,
    ) {
        let pci = model
            .and_then(PciModel::from_name)
            .filter(|_| ctype == "pci");
        let i = self.push_device(Device {
            element: None,
            address_element: None,
            kind: DeviceKind::Controller(Box::new(Controller {
                ctype,
                model,
                index: Some(index),
                index_missing: false,
                pci: pci.map(|m| (m, PciControllerOptions::default())),
            })),
            address: DeviceAddress::None,
            address_controller: None,
            prefs: Default::default(),
        });
        self.list_added_controller(i);
    }

    /// Put a controller libvirt added into the list: 9.0 appends it, later levels insert it
    /// in index order (virDomainDefMaybeAddController).
    pub(super) fn list_added_controller(&mut self, i: usize) {
        if self.options.libvirt.inserts_added_controllers() {
            self.insert_controller(i);
        } else {
            self.controller_order.push(i);
        }
    }

    /// The devices libvirt's QEMU driver adds to x86 `pc` and `q35` machines when the
    /// definition lacks them (qemuDomainDefAddDefaultDevices): a USB controller, q35's SATA
    /// controller, the root PCI controller and a virtio memory balloon.
    pub(super) fn add_default_devices(&mut self) {
        let machine = self.machine();
        if machine == MachineKind::Other {
            return;
        }
        // s390x has no default USB controller.
        if !machine.is_virt() && machine != MachineKind::S390Ccw && !self.has_controller("usb", 0) {
            match machine {
                MachineKind::Q35 => self.add_q35_default_usb(),
                MachineKind::Pseries => self.add_implicit_controller("usb", 0, Some("qemu-xhci")),
                _ => self.add_implicit_controller("usb", 0, self.x86_usb_model_default()),
            }
        }
        if machine == MachineKind::Q35 && !self.has_controller("sata", 0) {
            self.add_implicit_controller("sata", 0, None);
        }
        if !self.has_controller("pci", 0) {
            self.add_implicit_controller("pci", 0, Some(machine.root_model().name()));
        }
        let has_balloon = self
            .def
            .devices
            .iter()
            .any(|d| matches!(d.kind, DeviceKind::Memballoon { .. }));
        if !has_balloon && self.adds_default_memballoon() {
            self.push_device(Device {
                element: None,
                address_element: None,
                kind: DeviceKind::Memballoon { model: "virtio" },
                address: DeviceAddress::None,
                address_controller: None,
                prefs: Default::default(),
            });
        }
    }

    /// The controllers libvirt adds for the devices that need them
    /// (virDomainDefAddImplicitDevices): disk controllers for IDE, SATA and SCSI disks, a
    /// virtio-serial controller for virtio channels and consoles, and a video device when
    /// there is graphics but no video.
    pub(super) fn add_implicit_controllers(&mut self) -> Result<()> {
        let mut wanted = self.wanted_disk_controllers();
        for device in &self.def.devices {
            match &device.kind {
                DeviceKind::Channel {
                    target_type: Some(t),
                }
                | DeviceKind::Console {
                    target_type: Some(t),
                } if *t == "virtio" => {
                    wanted.push(("virtio-serial", device.address_controller.unwrap_or(0)))
                }
                _ => {}
            }
        }
        for (ctype, index) in wanted {
            if !self.has_controller(ctype, index) {
                // QEMU on x86 gives a SCSI controller without a model an LSI Logic one.
                let model = if ctype != "scsi" {
                    None
                } else if self.is_s390() {
                    Some("virtio-scsi")
                } else if self.is_pseries() {
                    Some("ibmvscsi")
                } else {
                    Some(
                        self.x86_scsi_model_default()
                            .ok_or_else(|| super::emulator::no_scsi_model(index))?,
                    )
                };
                self.add_implicit_controller(ctype, index, model);
            }
        }
        let has_video = self
            .def
            .devices
            .iter()
            .any(|d| matches!(d.kind, DeviceKind::Video { .. }));
        if self.def.has_graphics && !has_video {
            let model = if self.machine().is_virt() || self.is_s390() {
                "virtio"
            } else if self.is_pseries() {
                "vga"
            } else {
                self.x86_video_model_default()
            };
            self.push_device(Device {
                element: None,
                address_element: None,
                kind: DeviceKind::Video {
                    model,
                    primary: true,
                    model_given: true,
                },
                address: DeviceAddress::None,
                address_controller: None,
                prefs: Default::default(),
            });
        }
        Ok(())
    }

    /// Model names and target values libvirt fills in after assignment.
    pub(super) fn fill_controller_defaults(&mut self) -> Result<()> {
        let root_port_name = self.root_port_model_name();
        for i in self.controller_order.clone() {
            let address = match self.def.devices[i].address {
                DeviceAddress::Pci { addr, .. } => addr,
                _ => PciAddress::default(),
            };
            let is_expander = matches!(
                self.controller(i).pci_model(),
                Some(PciModel::PciExpanderBus | PciModel::PcieExpanderBus)
            );
            let lowest_bus_nr = if is_expander {
                self.pci_controllers()
                    .filter_map(|(_, c, _)| c.pci.as_ref().and_then(|(_, o)| o.bus_nr))
                    .filter(|&nr| nr >= 0)
                    .fold(256, i64::min)
            } else {
                256
            };
            let Some(c) = self.def.devices[i].controller_mut() else {
                continue;
            };
            let index = i64::from(c.index());
            let Some((model, opts)) = c.pci.as_mut() else {
                continue;
            };
            let filled = &mut self.filled[i];
            if opts.model_name.is_none() {
                let name = match model {
                    PciModel::PcieRootPort => Some(root_port_name),
                    _ => model.default_model_name(),
                };
                if let Some(name) = name {
                    opts.model_name = Some(name);
                    filled.model_name = true;
                }
            }
            match model {
                PciModel::PciBridge if opts.chassis_nr.is_none() => {
                    opts.chassis_nr = Some(index);
                    filled.chassis_nr = true;
                }
                PciModel::PcieRootPort | PciModel::PcieSwitchDownstreamPort => {
                    if opts.chassis.is_none() {
                        opts.chassis = Some(index);
                        filled.chassis = true;
                    }
                    if opts.port.is_none() {
                        opts.port = Some(if *model == PciModel::PcieRootPort {
                            i64::from((address.slot << 3) + address.function)
                        } else {
                            i64::from(address.slot)
                        });
                        filled.port = true;
                    }
                }
                PciModel::PciExpanderBus | PciModel::PcieExpanderBus if opts.bus_nr.is_none() => {
                    if lowest_bus_nr <= 2 {
                        return Err(Error::config_unsupported(format!(
                            "No free busNr lower than current lowest busNr is available to \
                             auto-assign to bus {}. Must be manually assigned",
                            address.bus
                        )));
                    }
                    opts.bus_nr = Some(lowest_bus_nr - 2);
                    filled.bus_nr = true;
                }
                _ => {}
            }
            if *model == PciModel::PciBridge && index <= i64::from(address.bus) {
                return Err(Error::config_unsupported(format!(
                    "PCI controller at index {index} (0x{index:02x}) has bus='0x{:02x}', but \
                     index must be larger than bus",
                    address.bus
                )));
            }
        }
        Ok(())
    }
}
