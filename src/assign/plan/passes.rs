//! The run: libvirt's two passes (a dry run that counts the buses needed and adds controllers
//! for them, then the real pass), the address set each pass starts from, and the choice
//! between libvirt's placement and extend mode's.

use super::extended::is_out_of_room;
use super::{new_pci_controller, Planner, PCI_FLAGS};
use crate::assign::caps::EmulatorCap;
use crate::assign::set::{AddressSet, Bus};
use crate::error::{Error, Result};
use crate::topology::{ConnectFlags, MachineKind, PciModel};
use crate::xml::domain::{DeviceAddress, Multifunction, PciControllerOptions};

impl<'a> Planner<'a> {
    pub(super) fn run(&mut self) -> Result<()> {
        let declared_max_index: i64 = self.max_pci_index();
        self.place_numa_devices()?;
        self.compute_flags();
        self.apply_preferences()?;
        if !self.options.extend {
            return self.run_libvirt(declared_max_index);
        }
        // Extend mode: libvirt's placement when it fits, the extended one when it does not.
        if self.needs_more_slots_than_a_domain_has() {
            return self.run_extended(declared_max_index);
        }
        let saved = self.save();
        match self.run_libvirt(declared_max_index) {
            Err(e) if is_out_of_room(&e) => {
                self.restore(saved);
                self.run_extended(declared_max_index)
            }
            done => done,
        }
    }

    /// libvirt's two passes: a dry run that grows the set to count the buses needed and
    /// adds controllers for them, then the real pass.
    pub(super) fn run_libvirt(&mut self, declared_max_index: i64) -> Result<()> {
        let max_index: i64 = self.max_pci_index();
        let mut nbuses = (max_index + 1) as usize;
        if nbuses > 0 {
            let mut set = self.create_set(nbuses, true)?;
            if self.options.extend || self.options.hotplug_ports.is_some() {
                // More buses than one PCI domain has cannot work: stop early (and let the
                // extended placement take over, in extend mode). Without this, hotplug room
                // for any number of ports would grow the set without end.
                set.grow_limit = Some(256);
            }
            self.chipset_reservations(&mut set)?;
            // i440fx: keep one slot in reserve so that a full bus gets a pci-bridge added.
            if self.has_pci_root() && set.buses.iter().any(|b| !b.is_fully_reserved()) {
                set.reserve_next(PCI_FLAGS, None)?;
            }
            self.assign_slots(&mut set)?;
            self.reserve_hotplug_room(&mut set, declared_max_index, max_index)?;
            self.add_controllers_for_new_buses(&mut set)?;
            nbuses = set.bus_count();
        }
        let mut set = self.create_set(nbuses, false)?;
        if self.machine() != MachineKind::Other || nbuses > 0 {
            self.chipset_reservations(&mut set)?;
            self.assign_slots(&mut set)?;
            self.set_all_multifunction();
            self.fill_controller_defaults()?;
        }
        self.set = Some(set);
        Ok(())
    }

    /// After placing the devices: libvirt's one spare root port on q35, or the hotplug
    /// room asked for.
    pub(super) fn reserve_hotplug_room(
        &mut self,
        set: &mut AddressSet,
        declared_max_index: i64,
        max_index: i64,
    ) -> Result<()> {
        match self.options.hotplug_ports {
            // q35 without user PCI controllers: one empty root port for hotplug.
            None => {
                if declared_max_index <= 0
                    && set.bus_count() as i64 > max_index + 1
                    && self.has_pcie_root()
                {
                    set.reserve_next(ConnectFlags::PCIE_AUTO, None)?;
                }
            }
            // Room for `n` hot-plugged devices: as many placeholder devices that need
            // hotplug, which take free places or make the set add buses for them.
            Some(n) => {
                let dummy = if self.has_pcie_root() {
                    ConnectFlags::PCIE_AUTO
                } else {
                    PCI_FLAGS
                } | ConnectFlags::HOTPLUGGABLE;
                for done in 0..n {
                    if let Err(e) = set.reserve_next(dummy, None) {
                        return Err(Error::config_unsupported(format!(
                            "cannot leave {n} free hot-plug places: only {done} fit in PCI \
                             domain 0 ({})",
                            e.detail()
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// Pass 1, last step: every bus the dry run added becomes a controller, which itself
    /// needs an address (and may make the set grow again).
    pub(super) fn add_controllers_for_new_buses(&mut self, set: &mut AddressSet) -> Result<()> {
        let mut index = 1;
        while index < set.bus_count() {
            if let Some(i) = self.add_missing_controller(index, set.buses[index].model) {
                if !set.buses[index].model.is_root() {
                    set.reserve_next(self.flags[i], None)?;
                }
            }
            index += 1;
        }
        Ok(())
    }

    /// Add a controller of `model` for bus `index` unless one exists; returns the new one.
    pub(super) fn add_missing_controller(
        &mut self,
        index: usize,
        model: PciModel,
    ) -> Option<usize> {
        if self
            .pci_controllers()
            .any(|(_, c, _)| c.index() as usize == index)
        {
            return None;
        }
        let i = self.push_device(new_pci_controller(
            index as u32,
            model,
            PciControllerOptions::default(),
            DeviceAddress::None,
        ));
        self.list_added_controller(i);
        self.flags[i] = model.connect_flags();
        Some(i)
    }

    /// Build the address set for `nbuses` buses and reserve every configured address
    /// (qemuDomainPCIAddressSetCreate + qemuDomainCollectPCIAddress).
    pub(super) fn create_set(&mut self, nbuses: usize, dry_run: bool) -> Result<AddressSet> {
        let mut buses: Vec<Option<Bus>> = vec![None; nbuses];
        for (_, c, model) in self.pci_controllers() {
            let index = c.index() as usize;
            let hotplug = c.pci.as_ref().and_then(|(_, o)| o.hotplug) != Some(false);
            match buses.get_mut(index) {
                Some(slot) => *slot = Some(Bus::new(model, hotplug)),
                None => {
                    return Err(Error::internal(format!(
                        "Inappropriate new pci controller index {index} exceeds addrs array length"
                    )))
                }
            }
        }
        if let Some(first) = buses.first_mut() {
            if first.is_none() {
                *first = Some(Bus::new(PciModel::PciRoot, true));
            }
        }
        let gap_model = if self.is_pseries() {
            PciModel::PciRoot
        } else if self.has_pcie_root() {
            PciModel::PcieRootPort
        } else {
            PciModel::PciBridge
        };
        let buses = buses
            .into_iter()
            .map(|b| b.unwrap_or_else(|| Bus::new(gap_model, true)))
            .collect();
        let mut set = AddressSet::new(buses, dry_run);
        set.multiple_roots = self.is_pseries();
        if let Some(default_phb) = set.buses.first_mut().filter(|_| self.is_pseries()) {
            // Host devices never go on the default PHB (qemuDomainSetupIsolationGroups).
            default_phb.isolation_locked = true;
        }
        set.pcie_to_pci_bridge = self.caps().has(EmulatorCap::PcieToPciBridge);
        // Only devices with an address take part; visiting them in libvirt's order keeps
        // its choice of which conflict is reported.
        for i in self.iterate_order(|d| d.address.present_pci().is_some()) {
            self.collect_address(&mut set, i)?;
        }
        Ok(set)
    }

    pub(super) fn collect_address(&mut self, set: &mut AddressSet, i: usize) -> Result<()> {
        let Some(addr) = self.def.devices[i].address.present_pci() else {
            return Ok(());
        };
        let mut flags = self.flags[i];
        if flags.is_empty() {
            let warning = format!(
                "the device with PCI address {addr} should not have a PCI address; treating it \
                 as a conventional PCI device"
            );
            if !self.warnings.contains(&warning) {
                self.warnings.push(warning);
            }
            flags = ConnectFlags::PCI_DEVICE;
        }
        // The PIIX3 IDE and USB functions of slot 1 are reserved by the chipset step.
        if let Some(c) = self.def.devices[i].controller() {
            if addr.domain == 0 && addr.bus == 0 && addr.slot == 1 {
                let piix3 = (c.ctype == "ide" && c.index() == 0 && addr.function == 1)
                    || (c.ctype == "usb"
                        && c.index() == 0
                        && (c.model.is_none() || c.model_is("piix3-uhci"))
                        && addr.function == 2);
                if piix3 {
                    if !set.buses.is_empty()
                        && !set.buses[0].accepts.intersects(ConnectFlags::PCI_DEVICE)
                    {
                        return Err(Error::internal(
                            "Bus 0 must be PCI for integrated PIIX3 USB or IDE controllers",
                        ));
                    }
                    return Ok(());
                }
            }
        }
        set.isolation = self.isolation_of(i);
        let reserved = set.reserve(&addr, flags, true);
        set.isolation = 0;
        reserved
    }

    /// Reserve the next free address for device `i`; outside a dry run, record it. In
    /// extend mode a device that finds no room is counted and skipped, so that the error
    /// can say how many did not fit.
    pub(super) fn reserve_next_for(&mut self, set: &mut AddressSet, i: usize) -> Result<()> {
        let failures = |set: &AddressSet| set.extension.as_ref().map(|e| e.failures);
        let before = failures(set);
        set.isolation = self.isolation_of(i);
        let reserved = set.reserve_next(self.flags[i], None);
        set.isolation = 0;
        let addr = match reserved {
            Ok(addr) => addr,
            Err(_) if before.is_some() && failures(set) != before => return Ok(()),
            Err(e) => return Err(e),
        };
        if !set.dry_run {
            self.set_address(i, addr, Multifunction::Absent);
        }
        Ok(())
    }
}
