//! NUMA placement, before the passes: each device with a `numa='N'` preference goes behind an
//! expander bus (pci-expander-bus on pc, pcie-expander-bus on q35) whose `<node>` is N, an
//! existing one while it has room, else a new one.

use super::flags::describe;
use super::Planner;
use crate::error::{Error, Result};
use crate::pci::PciAddress;
use crate::topology::{MachineKind, PciModel};
use crate::xml::domain::{
    BusPreference, DeviceAddress, DeviceKind, Multifunction, PciControllerOptions,
};
use std::collections::HashSet;

impl<'a> Planner<'a> {
    /// `numa='N'` preferences: put each such device behind an expander bus whose `<node>` is
    /// N (pcie-expander-bus on q35, pci-expander-bus on pc), adding the expander and, on q35,
    /// one pcie-root-port behind it per device. The devices and the added root ports get
    /// their addresses here; the expanders are placed by the usual algorithm on bus 0.
    pub(super) fn place_numa_devices(&mut self) -> Result<()> {
        let mut wanted: Vec<(u32, usize)> = (0..self.def.devices.len())
            .filter_map(|i| {
                let d = &self.def.devices[i];
                d.prefs
                    .numa
                    .filter(|_| d.address.wants_pci())
                    .map(|n| (n, i))
            })
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        wanted.sort();
        let machine = self.machine();
        let expander_model = match machine {
            MachineKind::Q35 => PciModel::PcieExpanderBus,
            MachineKind::I440fx => PciModel::PciExpanderBus,
            _ => {
                return Err(Error::config_unsupported(
                    "addressPreferences numa needs a pc or q35 machine",
                ))
            }
        };
        for &(node, i) in &wanted {
            let d = &self.def.devices[i];
            if node as usize >= self.def.numa_cells {
                return Err(Error::xml(format!(
                    "{}: addressPreferences numa='{node}' names a NUMA node the domain does not have (its <cpu><numa> has {} cell(s))",
                    describe(d),
                    self.def.numa_cells
                )));
            }
            if machine == MachineKind::Q35 && d.prefs.bus == Some(BusPreference::Pci) {
                return Err(Error::config_unsupported(format!(
                    "{}: addressPreferences numa with bus='pci' is not supported on q35 (the devices behind a pcie-expander-bus are PCI Express)",
                    describe(d)
                )));
            }
        }
        // New buses get indexes above every bus in use.
        let mut next_index = self
            .def
            .devices
            .iter()
            .filter_map(|d| match (&d.kind, d.address.present_pci()) {
                (DeviceKind::Controller(c), _) if c.ctype == "pci" => Some(c.index()),
                (_, Some(addr)) => Some(addr.bus),
                _ => None,
            })
            .max()
            .unwrap_or(0)
            + 1;
        // busNr ranges of the new expanders, from the top: each needs one number for itself
        // and one per root port behind it.
        let mut lowest_bus_nr: i64 = self
            .pci_controllers()
            .filter_map(|(_, c, _)| c.pci.as_ref().and_then(|(_, o)| o.bus_nr))
            .fold(255, i64::min);
        let mut start = 0;
        while start < wanted.len() {
            let node = wanted[start].0;
            let end = wanted[start..]
                .iter()
                .position(|&(n, _)| n != node)
                .map_or(wanted.len(), |p| start + p);
            let mut devices: Vec<usize> = wanted[start..end].iter().map(|&(_, i)| i).collect();
            start = end;
            // An expander for the node that the domain has already takes them first.
            let reused =
                self.place_on_existing_expander(node, expander_model, &devices, &mut next_index);
            devices.drain(..reused);
            if devices.is_empty() {
                continue;
            }
            let per_bus = if machine == MachineKind::Q35 {
                8 * 32
            } else {
                32
            };
            if devices.len() > per_bus {
                return Err(Error::config_unsupported(format!(
                    "{} devices prefer NUMA node {node}, but one expander bus takes at most {per_bus}",
                    devices.len()
                )));
            }
            let expander = next_index;
            next_index += 1;
            let children = if machine == MachineKind::Q35 {
                devices.len() as i64
            } else {
                0
            };
            let bus_nr = lowest_bus_nr - 1 - children;
            if bus_nr < 1 {
                return Err(Error::config_unsupported(format!(
                    "no bus numbers left for a NUMA node {node} expander bus"
                )));
            }
            lowest_bus_nr = bus_nr;
            let options = PciControllerOptions {
                numa_node: Some(i64::from(node)),
                bus_nr: Some(bus_nr),
                ..Default::default()
            };
            self.add_pci_controller(expander, expander_model, options, DeviceAddress::None);
            self.filled_last().bus_nr = true;
            for (k, &device) in devices.iter().enumerate() {
                let k = k as u32;
                if machine == MachineKind::Q35 {
                    // One root port per device, eight to a slot of the expander bus.
                    let at = PciAddress::new(0, expander, k / 8, k % 8);
                    self.place_behind_new_root_port(device, at, &mut next_index);
                } else {
                    let target = PciAddress::new(0, expander, k, 0);
                    self.set_address(device, target, Multifunction::Absent);
                }
            }
        }
        Ok(())
    }

    /// Place as many of `devices` (all preferring NUMA node `node`) as fit behind an
    /// expander bus for that node that the domain already has: in its free root ports, then
    /// (q35) in new root ports on its free functions while its bus numbers last, or (pc) in
    /// its free slots. Returns how many were placed, the first ones of `devices`.
    pub(super) fn place_on_existing_expander(
        &mut self,
        node: u32,
        expander_model: PciModel,
        devices: &[usize],
        next_index: &mut u32,
    ) -> usize {
        let Some((expander, bus_nr)) = self
            .pci_controllers()
            .filter(|&(_, _, m)| m == expander_model)
            .find_map(|(_, c, _)| {
                let options = &c.pci.as_ref()?.1;
                (options.numa_node == Some(i64::from(node)))
                    .then(|| (c.index(), options.bus_nr.unwrap_or(0)))
            })
        else {
            return 0;
        };
        let used: HashSet<PciAddress> = self
            .def
            .devices
            .iter()
            .filter_map(|d| d.address.present_pci())
            .collect();
        let busy_bus = |bus: u32| used.iter().any(|a| a.bus == bus);
        let mut targets: Vec<PciAddress> = Vec::new();
        if expander_model == PciModel::PcieExpanderBus {
            // Free root ports the user put behind it.
            let ports: Vec<u32> = self
                .pci_controllers()
                .filter(|&(i, _, m)| {
                    m == PciModel::PcieRootPort
                        && self.def.devices[i].address.present_pci().map(|a| a.bus)
                            == Some(expander)
                })
                .map(|(_, c, _)| c.index())
                .collect();
            targets.extend(
                ports
                    .into_iter()
                    .filter(|&p| !busy_bus(p))
                    .map(|p| PciAddress::new(0, p, 0, 0)),
            );
        } else {
            targets.extend(
                (0..32)
                    .map(|slot| PciAddress::new(0, expander, slot, 0))
                    .filter(|a| !used.iter().any(|u| u.bus == a.bus && u.slot == a.slot)),
            );
        }
        let mut placed = 0;
        for (&device, &target) in devices.iter().zip(&targets) {
            self.set_address(device, target, Multifunction::Absent);
            placed += 1;
        }
        if expander_model != PciModel::PcieExpanderBus || placed == devices.len() {
            return placed;
        }
        // New root ports on its free functions, each needing a bus number between its busNr
        // and the next expander's.
        let nbuses = *next_index as usize;
        let behind = self
            .def
            .inherited_by_buses(nbuses, |c, m| (m == expander_model).then(|| c.index()))
            .into_iter()
            .filter(|e| *e == Some(expander))
            .count() as i64;
        let limit = self
            .pci_controllers()
            .filter(|&(_, _, m)| matches!(m, PciModel::PciExpanderBus | PciModel::PcieExpanderBus))
            .filter_map(|(_, c, _)| c.pci.as_ref().and_then(|(_, o)| o.bus_nr))
            .filter(|&nr| nr > bus_nr)
            .fold(256, i64::min);
        let mut free_numbers = (limit - bus_nr - behind).max(0);
        // Only slots nothing uses yet: a new function beside a port already there would flip
        // that port's multifunction bit.
        let free_places = (0..32u32)
            .filter(|&slot| !used.iter().any(|u| u.bus == expander && u.slot == slot))
            .flat_map(|slot| (0..8u32).map(move |f| PciAddress::new(0, expander, slot, f)));
        for (&device, at) in devices[placed..].iter().zip(free_places) {
            if free_numbers == 0 {
                break;
            }
            free_numbers -= 1;
            self.place_behind_new_root_port(device, at, next_index);
            placed += 1;
        }
        placed
    }

    /// Add a pcie-root-port (the next index) plugged in at `at`, and put `device` behind it.
    pub(super) fn place_behind_new_root_port(
        &mut self,
        device: usize,
        at: PciAddress,
        next_index: &mut u32,
    ) {
        let port = *next_index;
        *next_index += 1;
        self.add_pci_controller(
            port,
            PciModel::PcieRootPort,
            PciControllerOptions::default(),
            DeviceAddress::Pci {
                addr: at,
                multi: Multifunction::Absent,
            },
        );
        self.set_address(
            device,
            PciAddress::new(0, port, 0, 0),
            Multifunction::Absent,
        );
    }
}
