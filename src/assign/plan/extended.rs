//! Extend mode's run: placing past libvirt's limits by adding buses whenever a device finds
//! no room (see [`crate::assign::extend`]), and what it puts back when libvirt's own
//! placement ran out of room first.

use super::flags::can_use_either_bus;
use super::slots::usb2_companion_function;
use super::{FilledDefaults, Planner};
use crate::assign::extend::Extension;
use crate::assign::set::SLOTS;
use crate::error::{Error, Result};
use crate::topology::{ConnectFlags, PciModel};
use crate::xml::domain::{DeviceAddress, DomainDef, Multifunction, PciControllerOptions};

/// What the extend mode puts back before its own placement.
pub(super) struct Saved<'a> {
    def: DomainDef<'a>,
    flags: Vec<ConnectFlags>,
    controller_order: Vec<usize>,
    filled: Vec<FilledDefaults>,
    index_filled: Vec<bool>,
    warnings: usize,
}

/// libvirt's placement failed only for want of room (the extend mode may then take over).
pub(super) fn is_out_of_room(e: &Error) -> bool {
    const ROOM: [&str; 4] = [
        "No more available PCI slots",
        "but none is available, and it cannot be automatically added",
        "Cannot automatically add a new PCI bus",
        "more buses than one PCI domain has",
    ];
    ROOM.iter().any(|m| e.message.contains(m))
}

impl<'a> Planner<'a> {
    /// Extend mode, when libvirt's placement ran out of room: one pass over a set that adds
    /// buses, with their controllers' places, whenever a device finds no room (see
    /// [`crate::assign::extend`]); devices with `hotplug='no'` share multifunction slots.
    pub(super) fn run_extended(&mut self, declared_max_index: i64) -> Result<()> {
        let q35 = self.has_pcie_root();
        for i in 0..self.def.devices.len() {
            let device = &self.def.devices[i];
            // A device already alone at function 0 without the multifunction bit (a saved
            // definition) keeps its slot to itself: packing beside it would flip the bit the
            // guest sees.
            let alone_at_function_0 = matches!(
                device.address,
                DeviceAddress::Pci { addr, multi } if addr.function == 0 && multi != Multifunction::On
            );
            if device.prefs.hotplug == Some(false) && !alone_at_function_0 {
                self.flags[i] |= ConnectFlags::PACK_FUNCTIONS;
            }
            // Unless the user asked for PCI Express, a device that runs on either side may
            // end on a bridge when the ports run out (see [`crate::assign::extend`]).
            if q35
                && self.flags[i].intersects(ConnectFlags::PCIE_DEVICE)
                && device.prefs.bus.is_none()
                && can_use_either_bus(device)
            {
                self.flags[i] |= ConnectFlags::EITHER_SIDE;
            }
        }
        let max_index: i64 = self.max_pci_index();
        // Buses named by addresses but without a controller get one, placed like the rest.
        let max_bus = self
            .def
            .devices
            .iter()
            .filter_map(|d| d.address.present_pci())
            .map(|a| i64::from(a.bus))
            .max()
            .unwrap_or(-1);
        let nbuses = (max_index.max(max_bus) + 1) as usize;
        let gap_model = if self.has_pcie_root() {
            PciModel::PcieRootPort
        } else {
            PciModel::PciBridge
        };
        for index in 1..nbuses {
            self.add_missing_controller(index, gap_model);
        }
        let mut set = self.create_set(nbuses, false)?;
        self.chipset_reservations(&mut set)?;
        let (behind_expander, lowest_bus_nr) = self.expander_hierarchies(nbuses);
        set.extension = Some(Extension::start(
            &mut set,
            self.has_pcie_root(),
            behind_expander,
            lowest_bus_nr,
        ));
        let wanted = self.devices_where(|d| d.address.wants_pci()).len();
        self.assign_slots(&mut set)?;
        let ext = set.extension.as_ref().expect("extend mode");
        if ext.failures > 0 {
            let hint = if self.has_pcie_root() {
                "; every hot-pluggable PCI Express-only device needs a bus of its own, and \
                 one that also runs on conventional PCI a slot of a bridge: \
                 <addressPreferences hotplug='no'/> packs devices eight to a slot"
            } else {
                "; <addressPreferences hotplug='no'/> packs devices eight to a slot"
            };
            return Err(Error::internal(format!(
                "{} of the {wanted} devices that needed a PCI address did not fit in PCI \
                 domain 0: {}{hint}",
                ext.failures,
                ext.first_failure.as_deref().unwrap_or("no room"),
            )));
        }
        self.reserve_hotplug_room(&mut set, declared_max_index, max_index)?;
        let added = set
            .extension
            .as_ref()
            .map(|e| e.added.clone())
            .unwrap_or_default();
        for c in added {
            let address = DeviceAddress::Pci {
                addr: c.address,
                multi: Multifunction::Absent,
            };
            self.add_pci_controller(c.index, c.model, PciControllerOptions::default(), address);
        }
        self.set_all_multifunction();
        self.fill_controller_defaults()?;
        set.extension = None;
        self.set = Some(set);
        Ok(())
    }

    /// Per bus: whether it belongs to an expander bus's hierarchy; and the lowest `busNr`
    /// an expander claims (256 when none does).
    pub(super) fn expander_hierarchies(&self, nbuses: usize) -> (Vec<bool>, u32) {
        let is_expander =
            |m: PciModel| matches!(m, PciModel::PciExpanderBus | PciModel::PcieExpanderBus);
        let lowest_bus_nr = self
            .pci_controllers()
            .filter(|&(_, c, m)| is_expander(m) && (c.index() as usize) < nbuses)
            .filter_map(|(_, c, _)| c.pci.as_ref().and_then(|(_, o)| o.bus_nr))
            .map(|nr| nr.clamp(0, 256) as u32)
            .fold(256, u32::min);
        let behind = self
            .def
            .inherited_by_buses(nbuses, |_, m| is_expander(m).then_some(()))
            .into_iter()
            .map(|v| v.is_some())
            .collect();
        (behind, lowest_bus_nr)
    }

    /// libvirt's placement certainly fails: it gives every device a slot of its own (root
    /// ports and USB companion controllers aside), and one PCI domain has 256 x 32 slots.
    /// Skipping its dry run saves a second pass over very large domains.
    pub(super) fn needs_more_slots_than_a_domain_has(&self) -> bool {
        let slot_takers = (0..self.def.devices.len())
            .filter(|&i| {
                self.wants(i)
                    && !self.flags[i].intersects(ConnectFlags::AGGREGATE_SLOT)
                    && self.def.devices[i]
                        .controller()
                        .map_or(true, |c| usb2_companion_function(c).is_none())
            })
            .count();
        slot_takers > 256 * SLOTS
    }

    pub(super) fn save(&self) -> Saved<'a> {
        Saved {
            def: self.def.clone(),
            flags: self.flags.clone(),
            controller_order: self.controller_order.clone(),
            filled: self.filled.clone(),
            index_filled: self.index_filled.clone(),
            warnings: self.warnings.len(),
        }
    }

    pub(super) fn restore(&mut self, saved: Saved<'a>) {
        self.def = saved.def;
        self.flags = saved.flags;
        self.controller_order = saved.controller_order;
        self.filled = saved.filled;
        self.index_filled = saved.index_filled;
        self.warnings.truncate(saved.warnings);
        self.set = None;
    }
}
