//! Extend mode (virtpci, not libvirt): keep placing devices where libvirt 9.0 gives up.
//!
//! libvirt's dry run adds buses without asking where their controllers will plug in, so it
//! fails once pcie-root (q35) or the buses of pc have no slot left for one more
//! pcie-root-port or pci-bridge. Here a bus is added only together with a place for its
//! controller, chosen at once:
//!
//! - PCI Express: a pcie-root-port while pcie-root has room (eight to a slot), then
//!   downstream ports of PCIe switches. The first switch hangs off a root-port place kept
//!   free on pcie-root from the start (the "hub"); every switch keeps its upstream bus's
//!   slots 28-31 for the downstream ports that carry further switches, so the switches form
//!   a shallow tree rather than a chain.
//! - Conventional PCI: pci-bridges behind pci-bridges (behind a pcie-to-pci-bridge on q35).
//!   Slots 28-31 of every bridge added, and the last four free slots of pc's pci-root, are
//!   kept for bridges, for the same reason.
//!
//! Only the main hierarchy grows (never the buses behind a NUMA expander), within one PCI
//! domain: 256 bus numbers, fewer when expander buses claim the top ones (`busNr`).

use super::set::{AddressSet, Bus};
use crate::error::{Error, Result};
use crate::pci::PciAddress;
use crate::topology::{ConnectFlags, PciModel};

/// Slots from this one up, on buses the extension adds, are kept for growing the tree.
const GROWTH_SLOTS_FROM: u32 = 28;
/// How many PCI Express ports the main hierarchy gets before devices that QEMU runs on
/// either side go on conventional PCI bridges: eight slots of pcie-root's root ports. With
/// the remaining bus numbers as bridges, about 5,000 hot-pluggable devices fit on q35.
const EITHER_SIDE_PORTS: usize = 64;
/// How many free slots of pc's pci-root are kept for bridges.
const ROOT_BRIDGE_SLOTS: usize = 4;

/// One PCI controller the extension added, with the place it plugs into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddedController {
    pub index: u32,
    pub model: PciModel,
    pub address: PciAddress,
}

/// The state of extend mode, kept in the address set it grows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extension {
    pcie: bool,
    /// Controllers added, in the order they were added (their indexes ascend).
    pub added: Vec<AddedController>,
    /// q35: a root-port place on pcie-root kept for the first switch.
    hub: Option<PciAddress>,
    /// Per bus: whether it is behind an expander bus (never grown).
    behind_expander: Vec<bool>,
    /// How many more buses the main hierarchy may have.
    room: usize,
    /// Devices that found no room, and why the first of them did not.
    pub failures: usize,
    pub(crate) first_failure: Option<String>,
}

impl Extension {
    /// Start extending `set`. `behind_expander` tells, per existing bus, whether it belongs
    /// to an expander bus's hierarchy; `lowest_bus_nr` is the lowest `busNr` an expander bus
    /// claims (256 when there is none). Takes the places it keeps (see the module comment).
    pub fn start(
        set: &mut AddressSet,
        pcie: bool,
        behind_expander: Vec<bool>,
        lowest_bus_nr: u32,
    ) -> Extension {
        let main_buses = behind_expander.iter().filter(|b| !**b).count();
        let room = (256usize.saturating_sub(set.buses.len()))
            .min((lowest_bus_nr as usize).saturating_sub(main_buses));
        let mut ext = Extension {
            pcie,
            added: Vec::new(),
            hub: None,
            behind_expander,
            room,
            failures: 0,
            first_failure: None,
        };
        let Some(root) = set.buses.first_mut() else {
            return ext;
        };
        let top_free: Vec<u32> = (root.min_slot..=root.max_slot)
            .rev()
            .filter(|&s| root.slots[s as usize].functions == 0)
            .collect();
        if pcie && root.accepts.intersects(ConnectFlags::PCIE_ROOT_PORT) {
            if let Some(&slot) = top_free.first() {
                root.take(slot, 0, PciModel::PcieRootPort.connect_flags());
                ext.hub = Some(PciAddress::new(0, 0, slot, 0));
            }
        } else if root.accepts.intersects(ConnectFlags::PCI_BRIDGE) {
            for &slot in top_free.iter().take(ROOT_BRIDGE_SLOTS) {
                root.slots[slot as usize].bridges_only = true;
            }
        }
        // The first switch is added at once, unless one has a free downstream slot. A later
        // assignment of the saved definition tries libvirt's own placement first, which fills
        // every free slot of pcie-root and of the bridges but never puts a device on a
        // switch's upstream bus: those slots stay the room to grow.
        if ext.hub.is_some() && ext.free_downstream_slot(set, 0..32).is_none() {
            let _ = ext.new_switch(set);
        }
        ext
    }

    /// Add what a device with `flags` needs and return the index of the bus it can use.
    pub(crate) fn add_bus_for(&mut self, set: &mut AddressSet, flags: ConnectFlags) -> Result<u32> {
        let result = if flags.intersects(ConnectFlags::INTEGRATED) {
            Err("the device must sit on bus 0, which is full".to_string())
        } else if flags.intersects(ConnectFlags::PCI_DEVICE | ConnectFlags::PCI_BRIDGE)
            || (flags.intersects(ConnectFlags::EITHER_SIDE) && self.ports_spent(set))
        {
            self.new_pci_bus(set)
        } else if flags.intersects(
            ConnectFlags::PCIE_DEVICE
                | ConnectFlags::PCIE_SWITCH_UPSTREAM_PORT
                | ConnectFlags::PCIE_TO_PCI_BRIDGE,
        ) {
            self.new_port(set)
        } else {
            let what = flags.required_type_name().unwrap_or("device of this kind");
            Err(format!("no bus has a free place for a {what}"))
        };
        result.map_err(|why| {
            self.failures += 1;
            if self.first_failure.is_none() {
                self.first_failure = Some(why.clone());
            }
            Error::internal(format!("No more available PCI slots: {why}"))
        })
    }

    /// A new bus for conventional PCI devices: a pci-bridge wherever one fits, else (q35)
    /// a pcie-to-pci-bridge on a new port.
    fn new_pci_bus(&mut self, set: &mut AddressSet) -> std::result::Result<u32, String> {
        self.need(1)?;
        if let Some(at) = self.find_main(set, ConnectFlags::PCI_BRIDGE) {
            return Ok(self.add(set, PciModel::PciBridge, at, true));
        }
        if !self.pcie {
            return Err("no bus has a free slot for another pci-bridge".into());
        }
        // A port may need a new switch first (two more buses).
        let root_port = PciModel::PcieRootPort.connect_flags();
        let port_free = set.find_on_bus(0, None, root_port).is_some()
            || self
                .free_downstream_slot(set, 0..GROWTH_SLOTS_FROM)
                .is_some();
        self.need(if port_free { 2 } else { 4 })?;
        let port = self.new_port(set)?;
        let at = PciAddress::new(0, port, 0, 0);
        Ok(self.add(set, PciModel::PcieToPciBridge, at, true))
    }

    /// A new PCI Express port: a pcie-root-port on pcie-root, else a downstream port of a
    /// switch with a free slot, else one of a new switch.
    fn new_port(&mut self, set: &mut AddressSet) -> std::result::Result<u32, String> {
        self.need(1)?;
        let root_port = PciModel::PcieRootPort.connect_flags();
        if let Some(at) = set.find_on_bus(0, None, root_port) {
            return Ok(self.add(set, PciModel::PcieRootPort, at, true));
        }
        if let Some(at) = self.free_downstream_slot(set, 0..GROWTH_SLOTS_FROM) {
            return Ok(self.add(set, PciModel::PcieSwitchDownstreamPort, at, true));
        }
        let upstream = self.new_switch(set)?;
        let at = PciAddress::new(0, upstream, 0, 0);
        Ok(self.add(set, PciModel::PcieSwitchDownstreamPort, at, true))
    }

    /// A new switch (its upstream port) on the hub or on a downstream port in a growth
    /// slot of another switch. Returns the upstream port's bus.
    fn new_switch(&mut self, set: &mut AddressSet) -> std::result::Result<u32, String> {
        // The host port, the upstream port and the downstream port the caller adds.
        self.need(3)?;
        let host = if let Some(hub) = self.hub.take() {
            self.add(set, PciModel::PcieRootPort, hub, false)
        } else if let Some(at) = self.free_downstream_slot(set, GROWTH_SLOTS_FROM..32) {
            self.add(set, PciModel::PcieSwitchDownstreamPort, at, true)
        } else {
            return Err(
                "pcie-root has no place for another pcie-root-port and no switch has a free \
                 downstream slot"
                    .into(),
            );
        };
        let at = PciAddress::new(0, host, 0, 0);
        Ok(self.add(set, PciModel::PcieSwitchUpstreamPort, at, true))
    }

    /// Whether devices of either side have had their share of PCI Express ports: the main
    /// hierarchy has [`EITHER_SIDE_PORTS`] of them. Past that they go on bridges, which
    /// hold 27 devices per bus number where a port holds one, so that thousands fit; a
    /// fixed share keeps every device's place independent of the devices after it.
    fn ports_spent(&self, set: &AddressSet) -> bool {
        let ports = set
            .buses
            .iter()
            .zip(&self.behind_expander)
            .filter(|(bus, behind)| {
                !**behind
                    && matches!(
                        bus.model,
                        PciModel::PcieRootPort | PciModel::PcieSwitchDownstreamPort
                    )
            })
            .count();
        ports >= EITHER_SIDE_PORTS
    }

    fn need(&self, buses: usize) -> std::result::Result<(), String> {
        if self.room >= buses {
            Ok(())
        } else {
            Err(
                "all bus numbers of PCI domain 0 are in use (256, fewer when expander \
                 buses claim the top ones)"
                    .into(),
            )
        }
    }

    /// The first place for a controller with `flags` on a bus of the main hierarchy.
    fn find_main(&self, set: &AddressSet, flags: ConnectFlags) -> Option<PciAddress> {
        (0..set.buses.len())
            .filter(|&b| !self.behind_expander.get(b).copied().unwrap_or(false))
            .find_map(|b| set.find_on_bus(b, None, flags))
    }

    /// A free slot among `slots` of a switch's upstream bus in the main hierarchy.
    fn free_downstream_slot(
        &self,
        set: &AddressSet,
        slots: std::ops::Range<u32>,
    ) -> Option<PciAddress> {
        set.buses.iter().enumerate().find_map(|(b, bus)| {
            if bus.model != PciModel::PcieSwitchUpstreamPort
                || self.behind_expander.get(b).copied().unwrap_or(false)
            {
                return None;
            }
            slots
                .clone()
                .find(|&s| bus.slots[s as usize].functions == 0)
                .map(|s| PciAddress::new(0, b as u32, s, 0))
        })
    }

    /// Add the bus of a `model` controller plugged in at `at` (taking that place unless it
    /// is already taken for it) and return its index.
    fn add(&mut self, set: &mut AddressSet, model: PciModel, at: PciAddress, take: bool) -> u32 {
        if take {
            set.buses[at.bus as usize].take(at.slot, at.function, model.connect_flags());
        }
        let index = set.buses.len() as u32;
        let mut bus = Bus::new(model, true);
        if matches!(model, PciModel::PciBridge | PciModel::PcieToPciBridge) {
            for slot in GROWTH_SLOTS_FROM..=bus.max_slot {
                bus.slots[slot as usize].bridges_only = true;
            }
        }
        set.buses.push(bus);
        self.behind_expander.push(false);
        self.room -= 1;
        self.added.push(AddedController {
            index,
            model,
            address: at,
        });
        index
    }
}
