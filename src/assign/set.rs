//! The PCI address set: which functions of which slots of which buses are taken, and the
//! rules for reserving one, finding the next free one, and growing the set during a dry run
//! (libvirt's `virDomainPCIAddressSet`).

use super::extend::Extension;
use crate::error::{Error, Result};
use crate::pci::PciAddress;
use crate::topology::{ConnectFlags, PciModel};

/// Slots per bus.
pub(crate) const SLOTS: usize = 32;

/// One slot: the functions in use and who may share it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Slot {
    pub functions: u8,
    /// pcie-root-ports may share it, one per function.
    pub(crate) aggregate: bool,
    /// Devices placed with [`ConnectFlags::PACK_FUNCTIONS`] may share it (extend mode).
    pub packed: bool,
    /// Kept for bridges (extend mode), so that the bridge tree can keep growing.
    pub(crate) bridges_only: bool,
}

/// One bus: the controller model that provides it and what it accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bus {
    pub model: PciModel,
    pub accepts: ConnectFlags,
    pub min_slot: u32,
    pub max_slot: u32,
    pub slots: [Slot; SLOTS],
    /// Every slot below this one has all eight functions in use, so no search needs to look
    /// at them (kept by the address set, which is the only writer of `slots`).
    full_below: u32,
    /// pseries: the isolation group of the devices this bus takes (0, the emulated devices'
    /// group, unless the first device reserved on it had another).
    pub(crate) isolation_group: u32,
    /// pseries: the bus keeps group 0 whatever is reserved first (the default PHB, so that
    /// host devices never share it with emulated ones).
    pub(crate) isolation_locked: bool,
}

impl Bus {
    pub fn new(model: PciModel, hotplug: bool) -> Bus {
        let rules = model.bus_rules(hotplug);
        Bus {
            model,
            accepts: rules.accepts,
            min_slot: rules.min_slot,
            max_slot: rules.max_slot,
            slots: [Slot::default(); SLOTS],
            full_below: 0,
            isolation_group: 0,
            isolation_locked: false,
        }
    }

    /// Mark one function of `slot` used (the slot and function are in range).
    pub(crate) fn take(&mut self, slot: u32, function: u32, flags: ConnectFlags) {
        let s = &mut self.slots[slot as usize];
        // Only the first device reserved in a slot decides whether root ports may share it.
        if s.functions == 0 && flags.intersects(ConnectFlags::AGGREGATE_SLOT) {
            s.aggregate = true;
        }
        if s.functions == 0 && flags.intersects(ConnectFlags::PACK_FUNCTIONS) {
            s.packed = true;
        }
        s.functions |= 1u8 << function;
        while (self.full_below as usize) < SLOTS
            && self.slots[self.full_below as usize].functions == 0xff
        {
            self.full_below += 1;
        }
    }

    /// Every slot in range has at least one function in use.
    pub(crate) fn is_fully_reserved(&self) -> bool {
        (self.min_slot..=self.max_slot).all(|s| self.slots[s as usize].functions != 0)
    }

    pub fn is_empty(&self) -> bool {
        (self.min_slot..=self.max_slot).all(|s| self.slots[s as usize].functions == 0)
    }
}

/// The address set of one domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressSet {
    pub buses: Vec<Bus>,
    /// In a dry run the set grows instead of failing, to count the buses needed.
    pub(crate) dry_run: bool,
    /// Per (device flags, function): the first bus worth searching. Buses only fill up while
    /// addresses are reserved, so a bus that could not take such a device never will; a
    /// release, or a bus changing isolation group, forgets these.
    search_from: Vec<(ConnectFlags, Option<u32>, u32, usize)>,
    /// Extend mode: how to add buses when nothing fits (instead of a dry run's growth).
    pub extension: Option<Extension>,
    /// Extend mode's first try: a dry run that would need more buses than this fails.
    pub(crate) grow_limit: Option<usize>,
    /// pseries: a new bus for conventional PCI devices is another PHB (pci-root).
    pub(crate) multiple_roots: bool,
    /// pseries: the isolation group of the device being placed (0 for emulated devices);
    /// reservations and searches use it (see [`super::isolation`]).
    pub(crate) isolation: u32,
    /// The emulator has pcie-pci-bridge: a pure PCI Express guest gets conventional PCI
    /// through a root port and a pcie-to-pci-bridge, else a dmi-to-pci-bridge.
    pub(crate) pcie_to_pci_bridge: bool,
}

/// Why a device may not sit on a bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Incompatible {
    NotIntegrated,
    NoAutoassign,
    NoHotplug,
    WrongType,
}

impl Incompatible {
    fn message(self, addr: &PciAddress, device: ConnectFlags, from_config: bool) -> String {
        match self {
            Incompatible::NotIntegrated => {
                format!("The device at PCI address {addr} needs to be an integrated device (bus=0)")
            }
            Incompatible::NoAutoassign => format!(
                "The device at PCI address {addr} was auto-assigned this address, but the PCI \
                 controller with index='{}' doesn't allow auto-assignment",
                addr.bus
            ),
            Incompatible::NoHotplug => format!(
                "The device at PCI address {addr} requires hotplug capability, but the PCI \
                 controller with index='{}' doesn't support hotplug",
                addr.bus
            ),
            Incompatible::WrongType => {
                // A configured bridge was also treated as an endpoint, as libvirt does.
                let device = if from_config && device.intersects(ConnectFlags::PCI_BRIDGE) {
                    device | ConnectFlags::PCI_DEVICE
                } else {
                    device
                };
                match device.required_type_name() {
                    Some(name) => format!(
                        "The device at PCI address {addr} cannot be plugged into the PCI \
                         controller with index='{}'. It requires a controller that accepts a {name}.",
                        addr.bus
                    ),
                    None => format!(
                        "The device at PCI address {addr} has unrecognized connection type flags 0x{:02x}",
                        device.0 & ConnectFlags::TYPES_MASK.0
                    ),
                }
            }
        }
    }
}

fn error(from_config: bool, detail: String) -> Error {
    if from_config {
        Error::xml(detail)
    } else {
        Error::internal(detail)
    }
}

impl AddressSet {
    pub fn new(mut buses: Vec<Bus>, dry_run: bool) -> AddressSet {
        if dry_run {
            // A dry run grows; one PCI domain has at most 256 buses.
            buses.reserve(256usize.saturating_sub(buses.len()));
        }
        AddressSet {
            buses,
            dry_run,
            search_from: Vec::new(),
            extension: None,
            grow_limit: None,
            multiple_roots: false,
            isolation: 0,
            pcie_to_pci_bridge: true,
        }
    }

    pub(crate) fn bus_count(&self) -> usize {
        self.buses.len()
    }

    /// Whether any function of the slot of `addr` is taken.
    pub(crate) fn slot_in_use(&self, addr: &PciAddress) -> bool {
        self.buses
            .get(addr.bus as usize)
            .and_then(|b| b.slots.get(addr.slot as usize))
            .is_some_and(|s| s.functions != 0)
    }

    /// Whether a device with `device` flags may sit on a bus accepting `bus` flags
    /// (libvirt's virDomainPCIAddressFlagsCompatible). With `report`, the reason is the error.
    pub(crate) fn flags_compatible(
        addr: &PciAddress,
        bus: ConnectFlags,
        device: ConnectFlags,
        report: bool,
        from_config: bool,
    ) -> Result<bool> {
        match Self::incompatibility(addr, bus, device, from_config) {
            None => Ok(true),
            Some(_) if !report => Ok(false),
            Some(reason) => Err(error(
                from_config,
                reason.message(addr, device, from_config),
            )),
        }
    }

    /// Why a device with `device` flags may not sit on a bus accepting `bus` flags, if it may
    /// not. Cheap: the message is only worded when it is reported.
    fn incompatibility(
        addr: &PciAddress,
        bus: ConnectFlags,
        device: ConnectFlags,
        from_config: bool,
    ) -> Option<Incompatible> {
        let mut bus = bus;
        let mut device = device;
        if device.intersects(ConnectFlags::INTEGRATED) {
            if addr.bus != 0 {
                return Some(Incompatible::NotIntegrated);
            }
            bus |= ConnectFlags::PCI_DEVICE | ConnectFlags::AUTOASSIGN;
        }
        if from_config {
            // The user may put any endpoint on any endpoint bus, and a bridge where
            // endpoints go.
            if bus.intersects(ConnectFlags::ENDPOINTS) {
                bus |= ConnectFlags::ENDPOINTS;
            }
            if device.intersects(ConnectFlags::PCI_BRIDGE) {
                device |= ConnectFlags::PCI_DEVICE;
            }
        } else if device.intersects(ConnectFlags::AUTOASSIGN)
            && !bus.intersects(ConnectFlags::AUTOASSIGN)
            && !device.intersects(ConnectFlags::PLACE_WITHOUT_HOTPLUG)
        {
            return Some(Incompatible::NoAutoassign);
        }
        if device.intersects(ConnectFlags::HOTPLUGGABLE)
            && !bus.intersects(ConnectFlags::HOTPLUGGABLE)
        {
            return Some(Incompatible::NoHotplug);
        }
        if !(device & bus).intersects(ConnectFlags::TYPES_MASK) {
            return Some(Incompatible::WrongType);
        }
        None
    }

    /// Check that `addr` exists and suits a device with `flags` (virDomainPCIAddressValidate).
    pub(crate) fn validate(
        &self,
        addr: &PciAddress,
        flags: ConnectFlags,
        from_config: bool,
    ) -> Result<()> {
        if self.buses.is_empty() {
            return Err(error(from_config, "No PCI buses available".into()));
        }
        if addr.domain != 0 {
            return Err(error(
                from_config,
                format!("Invalid PCI address {addr}. Only PCI domain 0 is available"),
            ));
        }
        let Some(bus) = self.buses.get(addr.bus as usize) else {
            return Err(error(
                from_config,
                format!(
                    "Invalid PCI address {addr}. Only PCI buses up to {} are available",
                    self.buses.len() - 1
                ),
            ));
        };
        Self::flags_compatible(addr, bus.accepts, flags, true, from_config)?;
        if bus.min_slot > 0 && addr.slot < bus.min_slot {
            return Err(error(
                from_config,
                format!(
                    "Invalid PCI address {addr}. slot must be >= {}",
                    bus.min_slot
                ),
            ));
        }
        if addr.slot > bus.max_slot {
            return Err(error(
                from_config,
                format!(
                    "Invalid PCI address {addr}. slot must be <= {}",
                    bus.max_slot
                ),
            ));
        }
        if addr.function > 7 {
            return Err(error(
                from_config,
                format!("Invalid PCI address {addr}. function must be <= 7"),
            ));
        }
        Ok(())
    }

    /// Reserve one function (virDomainPCIAddressReserveAddrInternal). Configured addresses
    /// (`from_config`) fail with XML errors, generated ones with internal errors.
    pub fn reserve(
        &mut self,
        addr: &PciAddress,
        flags: ConnectFlags,
        from_config: bool,
    ) -> Result<()> {
        let mut addr = *addr;
        if self.dry_run {
            self.grow(&mut addr, flags)?;
        }
        self.validate(&addr, flags, from_config)?;
        let bus = &mut self.buses[addr.bus as usize];
        if bus.slots[addr.slot as usize].functions & (1u8 << addr.function) != 0 {
            return Err(error(
                from_config,
                format!("Attempted double use of PCI Address {addr}"),
            ));
        }
        self.join_isolation_group(addr.bus as usize, from_config);
        self.buses[addr.bus as usize].take(addr.slot, addr.function, flags);
        Ok(())
    }

    /// Free one function. The slot's aggregate mark stays, as in libvirt.
    pub fn release(&mut self, addr: &PciAddress) {
        if let Some(slot) = self
            .buses
            .get_mut(addr.bus as usize)
            .and_then(|b| b.slots.get_mut(addr.slot as usize))
        {
            if addr.function < 8 {
                slot.functions &= !(1u8 << addr.function);
            }
        }
        if let Some(bus) = self.buses.get_mut(addr.bus as usize) {
            bus.full_below = bus.full_below.min(addr.slot);
        }
        self.search_from.clear();
    }

    /// Look for a free function on `bus_index` (virDomainPCIAddressFindUnusedFunctionOnBus).
    pub(crate) fn find_on_bus(
        &self,
        bus_index: usize,
        function: Option<u32>,
        flags: ConnectFlags,
    ) -> Option<PciAddress> {
        let bus = &self.buses[bus_index];
        let mut addr = PciAddress::new(0, bus_index as u32, bus.min_slot, function.unwrap_or(0));
        if Self::incompatibility(&addr, bus.accepts, flags, false).is_some() {
            return None;
        }
        let aggregate = flags.intersects(ConnectFlags::AGGREGATE_SLOT);
        let pack = flags.intersects(ConnectFlags::PACK_FUNCTIONS);
        let bridge = flags.intersects(ConnectFlags::PCI_BRIDGE);
        addr.slot = addr.slot.max(bus.full_below);
        while addr.slot <= bus.max_slot {
            let slot = bus.slots[addr.slot as usize];
            if slot.bridges_only && !bridge {
                addr.slot += 1;
                continue;
            }
            if slot.functions == 0 {
                return Some(addr);
            }
            if (aggregate && slot.aggregate) || (pack && slot.packed) {
                if slot.functions & (1 << addr.function) == 0 {
                    return Some(addr);
                }
                if function.is_none() && slot.functions != 0xff {
                    // The lowest free function (the search starts at function 0).
                    addr.function = (!slot.functions).trailing_zeros();
                    return Some(addr);
                }
            }
            addr.slot += 1;
        }
        None
    }

    /// The next free address for a device with `flags` (virDomainPCIAddressGetNextAddr):
    /// buses in order from 0, slots from each bus's first; in a dry run a new bus is added
    /// when nothing fits. `function` is the function wanted, `None` for any.
    pub fn next_address(
        &mut self,
        flags: ConnectFlags,
        function: Option<u32>,
    ) -> Result<PciAddress> {
        self.find_next(flags, function).map(|(addr, _)| addr)
    }

    /// [`Self::next_address`], also saying whether the address is on a bus that existed
    /// (and was checked to suit the device) rather than on one just added.
    fn find_next(
        &mut self,
        flags: ConnectFlags,
        function: Option<u32>,
    ) -> Result<(PciAddress, bool)> {
        if self.buses.is_empty() {
            return Err(Error::xml("No PCI buses available"));
        }
        if let Some(found) = self.find_free(flags, function) {
            return Ok((found, true));
        }
        // A device of either side takes a free conventional slot before a new bus is spent.
        let either = flags.intersects(ConnectFlags::EITHER_SIDE);
        if either {
            if let Some(found) = self.find_free(flags.as_conventional(), function) {
                return Ok((found, true));
            }
        }
        if let Some(mut extension) = self.extension.take() {
            let grown = extension.add_bus_for(self, flags);
            self.extension = Some(extension);
            let bus = grown? as usize;
            let found = self.find_on_bus(bus, function, flags).or_else(|| {
                either
                    .then(|| self.find_on_bus(bus, function, flags.as_conventional()))
                    .flatten()
            });
            return found.map(|a| (a, true)).ok_or_else(|| {
                Error::internal(format!(
                    "the PCI bus {bus} added for a device does not take it"
                ))
            });
        }
        if self.dry_run {
            let mut addr = PciAddress::new(0, self.buses.len() as u32, 0, function.unwrap_or(0));
            self.grow(&mut addr, flags)?;
            addr.slot = self.buses[addr.bus as usize].min_slot;
            return Ok((addr, false));
        }
        Err(Error::internal("No more available PCI slots"))
    }

    /// The first free place for a device with `flags` on the buses there are, if any:
    /// first on the buses of the device's isolation group, then on an empty bus whose group
    /// may still change (virDomainPCIAddressGetNextAddr's two rounds).
    pub(crate) fn find_free(
        &mut self,
        flags: ConnectFlags,
        function: Option<u32>,
    ) -> Option<PciAddress> {
        let group = self.isolation;
        let cursor = self
            .search_from
            .iter()
            .position(|&(f, func, g, _)| f == flags && func == function && g == group);
        let start = cursor.map_or(0, |c| self.search_from[c].3);
        for bus_index in start..self.buses.len() {
            if self.buses[bus_index].isolation_group != group {
                continue;
            }
            if let Some(found) = self.find_on_bus(bus_index, function, flags) {
                match cursor {
                    Some(c) => self.search_from[c].3 = bus_index,
                    None => self.search_from.push((flags, function, group, bus_index)),
                }
                return Some(found);
            }
        }
        match cursor {
            Some(c) => self.search_from[c].3 = self.buses.len(),
            None => self
                .search_from
                .push((flags, function, group, self.buses.len())),
        }
        // Without isolation every bus is in group 0, so the first round saw them all.
        (0..self.buses.len())
            .filter(|&b| self.buses[b].isolation_group != group)
            .filter(|&b| !self.buses[b].isolation_locked && self.buses[b].is_empty())
            .find_map(|b| self.find_on_bus(b, function, flags))
    }

    /// Find the next free address and reserve it (virDomainPCIAddressReserveNextAddr).
    pub fn reserve_next(
        &mut self,
        flags: ConnectFlags,
        function: Option<u32>,
    ) -> Result<PciAddress> {
        let (addr, checked) = self.find_next(flags, function)?;
        if checked {
            // The search checked the bus, the slot range and that the function is free:
            // all that reserving would check again.
            self.join_isolation_group(addr.bus as usize, false);
            self.buses[addr.bus as usize].take(addr.slot, addr.function, flags);
        } else {
            self.reserve(&addr, flags, false)?;
        }
        Ok(addr)
    }

    /// Reserve the first free address for a device with `flags` on a bus that `allowed`
    /// accepts, buses in order; the set never grows here.
    pub(crate) fn reserve_next_on(
        &mut self,
        flags: ConnectFlags,
        allowed: impl Fn(usize) -> bool,
    ) -> Result<PciAddress> {
        for bus_index in 0..self.buses.len() {
            if !allowed(bus_index) {
                continue;
            }
            if let Some(addr) = self.find_on_bus(bus_index, None, flags) {
                self.buses[bus_index].take(addr.slot, addr.function, flags);
                return Ok(addr);
            }
        }
        Err(Error::internal("No more available PCI slots"))
    }

    /// The isolation-group rule of a reservation on `bus` for the device being placed
    /// (virDomainPCIAddressReserveAddrInternal): the first device on an empty bus that is
    /// not locked gives it its group; a configured address of another group on a bus puts
    /// the bus back in group 0, since isolation cannot be kept there any more.
    fn join_isolation_group(&mut self, bus: usize, from_config: bool) {
        let group = self.isolation;
        let bus = &mut self.buses[bus];
        let new_group = if bus.is_empty() && !bus.isolation_locked {
            group
        } else if bus.isolation_group != group && from_config {
            0
        } else {
            bus.isolation_group
        };
        if new_group != bus.isolation_group {
            bus.isolation_group = new_group;
            self.search_from.clear();
        }
    }

    /// Add buses so that `addr.bus` exists, choosing their model from what the device needs
    /// (virDomainPCIAddressSetGrow). May move `addr` one bus up when a pure PCIe topology
    /// needs a pcie-root-port before the pcie-to-pci-bridge.
    pub(crate) fn grow(&mut self, addr: &mut PciAddress, flags: ConnectFlags) -> Result<()> {
        let current = self.buses.len() as i64;
        let mut add = i64::from(addr.bus) - current + 1;
        if add <= 0 {
            return Ok(());
        }
        if self
            .grow_limit
            .is_some_and(|limit| current + add > limit as i64)
        {
            return Err(Error::internal(
                "No more available PCI slots: more buses than one PCI domain has",
            ));
        }
        let mut needs_pcie_to_pci_bridge = false;
        let mut needs_dmi_to_pci_bridge = false;
        let model = if self.multiple_roots && flags.intersects(ConnectFlags::PCI_DEVICE) {
            PciModel::PciRoot
        } else if flags.intersects(ConnectFlags::PCI_DEVICE) {
            // A pure PCIe topology has nowhere to plug a pci-bridge: a root port plus a
            // pcie-to-pci-bridge provide the bus, or without pcie-pci-bridge in the
            // emulator a dmi-to-pci-bridge for the pci-bridges.
            let bridge_has_home = self
                .buses
                .iter()
                .any(|b| b.accepts.intersects(ConnectFlags::PCI_BRIDGE));
            if !bridge_has_home {
                needs_pcie_to_pci_bridge = self.pcie_to_pci_bridge;
                needs_dmi_to_pci_bridge = !self.pcie_to_pci_bridge;
                if add == 1 {
                    add += 1;
                    addr.bus += 1;
                }
            }
            PciModel::PciBridge
        } else if flags
            .intersects(ConnectFlags::PCIE_DEVICE | ConnectFlags::PCIE_SWITCH_UPSTREAM_PORT)
        {
            PciModel::PcieRootPort
        } else {
            // libvirt names the model of a controller it cannot add, except the
            // pcie-to-pci-bridge, which its lookup table lacks (the generic message then).
            let model =
                PciModel::from_connect_flags(flags).filter(|m| *m != PciModel::PcieToPciBridge);
            return Err(match model {
                Some(model) => Error::internal(format!(
                    "a PCI slot is needed to connect a PCI controller model='{model}', but none \
                     is available, and it cannot be automatically added"
                )),
                None => Error::internal(format!(
                    "Cannot automatically add a new PCI bus for a device with connect flags {:02x}",
                    flags.0 & ConnectFlags::LIBVIRT_MASK.0
                )),
            });
        };
        let mut remaining = add;
        if needs_dmi_to_pci_bridge {
            self.buses.push(Bus::new(PciModel::DmiToPciBridge, false));
            remaining -= 1;
        }
        if needs_pcie_to_pci_bridge {
            // This root port only takes the pcie-to-pci-bridge, so the hotplug spare
            // reserved later cannot land on it.
            let mut port = Bus::new(PciModel::PcieRootPort, true);
            port.accepts = ConnectFlags::PCIE_TO_PCI_BRIDGE;
            self.buses.push(port);
            self.buses.push(Bus::new(PciModel::PcieToPciBridge, true));
            remaining -= 2;
        }
        for _ in 0..remaining {
            self.buses.push(Bus::new(model, true));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q35_root() -> AddressSet {
        AddressSet::new(vec![Bus::new(PciModel::PcieRoot, true)], true)
    }

    #[test]
    fn root_ports_pack_eight_to_a_slot() {
        let mut set = q35_root();
        let flags = PciModel::PcieRootPort.connect_flags();
        let mut got = Vec::new();
        for _ in 0..10 {
            got.push(set.reserve_next(flags, None).unwrap());
        }
        assert_eq!(got[0], PciAddress::new(0, 0, 1, 0));
        assert_eq!(got[7], PciAddress::new(0, 0, 1, 7));
        assert_eq!(got[8], PciAddress::new(0, 0, 2, 0));
    }

    #[test]
    fn dry_run_grows_for_endpoints() {
        let mut set = q35_root();
        let a = set.reserve_next(ConnectFlags::PCIE_AUTO, None).unwrap();
        assert_eq!(a, PciAddress::new(0, 1, 0, 0));
        assert_eq!(set.buses[1].model, PciModel::PcieRootPort);
        let b = set.reserve_next(ConnectFlags::PCI_AUTO, None).unwrap();
        // root port + pcie-to-pci-bridge, device on the bridge's first slot
        assert_eq!(b, PciAddress::new(0, 3, 1, 0));
        assert_eq!(set.buses[2].accepts, ConnectFlags::PCIE_TO_PCI_BRIDGE);
        assert_eq!(set.buses[3].model, PciModel::PcieToPciBridge);
    }

    #[test]
    fn real_pass_fails_when_full() {
        let mut set = q35_root();
        set.dry_run = false;
        let err = set.reserve_next(ConnectFlags::PCIE_AUTO, None).unwrap_err();
        assert_eq!(err.message, "internal error: No more available PCI slots");
    }

    #[test]
    fn double_use_is_refused() {
        let mut set = AddressSet::new(vec![Bus::new(PciModel::PciRoot, true)], false);
        let a = PciAddress::new(0, 0, 3, 0);
        set.reserve(&a, ConnectFlags::PCI_AUTO, true).unwrap();
        let err = set.reserve(&a, ConnectFlags::PCI_AUTO, true).unwrap_err();
        assert_eq!(
            err.message,
            "XML error: Attempted double use of PCI Address 0000:00:03.0"
        );
        set.release(&a);
        set.reserve(&a, ConnectFlags::PCI_AUTO, true).unwrap();
    }
}
