//! libvirt 9.0's guest PCI address assignment (qemuDomainAssignPCIAddresses) over a
//! [`DomainDef`]: a dry run that counts the buses needed and adds controllers for them, then
//! the real pass that places controllers first and devices after, in libvirt's order.

use super::extend::Extension;
use super::set::{AddressSet, Bus, SLOTS};
use super::AssignOptions;
use crate::error::{quote, Error, Result};
use crate::pci::PciAddress;
use crate::topology::{ConnectFlags, MachineKind, PciModel};
use crate::xml::domain::{
    BusPreference, Controller, Device, DeviceAddress, DeviceKind, DomainDef, Hostdev,
    Multifunction, PciControllerOptions,
};
use std::collections::{HashMap, HashSet};

mod defaults;
mod levels;

/// How one PCI controller's options were completed, for the writer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FilledDefaults {
    /// The controller's `model` attribute (a default model libvirt writes out).
    pub model: bool,
    pub model_name: bool,
    pub chassis_nr: bool,
    pub chassis: bool,
    pub port: bool,
    pub bus_nr: bool,
}

/// The outcome of planning: the domain with its final addresses and controllers.
#[derive(Debug)]
pub struct Plan<'a> {
    pub def: DomainDef<'a>,
    /// Device indexes of the controllers in libvirt's order (which is the order in which
    /// they are written).
    pub controller_order: Vec<usize>,
    /// Per device: which PCI controller options were filled in.
    pub filled: Vec<FilledDefaults>,
    /// Per device: the index attribute was filled in.
    pub index_filled: Vec<bool>,
    /// The final address set (pass 2).
    pub set: AddressSet,
    pub warnings: Vec<String>,
}

/// Assign every PCI address of `def` as libvirt 9.0 does.
pub fn plan(def: DomainDef<'_>) -> Result<Plan<'_>> {
    plan_with(def, &AssignOptions::default())
}

/// Assign every PCI address of `def` as libvirt 9.0 does, with virtpci's `options` and the
/// devices' address preferences.
pub fn plan_with<'a>(def: DomainDef<'a>, options: &AssignOptions) -> Result<Plan<'a>> {
    let mut planner = Planner::new(def);
    planner.options = *options;
    planner.prepare()?;
    planner.run()?;
    planner.validate_after()?;
    let Planner {
        def,
        controller_order,
        filled,
        index_filled,
        set,
        warnings,
        ..
    } = planner;
    Ok(Plan {
        def,
        controller_order,
        filled,
        index_filled,
        set: set.unwrap_or_else(|| AddressSet::new(Vec::new(), false)),
        warnings,
    })
}

/// What the extend mode puts back before its own placement.
struct Saved<'a> {
    def: DomainDef<'a>,
    flags: Vec<ConnectFlags>,
    controller_order: Vec<usize>,
    filled: Vec<FilledDefaults>,
    index_filled: Vec<bool>,
    warnings: usize,
}

/// libvirt's placement failed only for want of room (the extend mode may then take over).
fn is_out_of_room(e: &Error) -> bool {
    const ROOM: [&str; 4] = [
        "No more available PCI slots",
        "but none is available, and it cannot be automatically added",
        "Cannot automatically add a new PCI bus",
        "more buses than one PCI domain has",
    ];
    ROOM.iter().any(|m| e.message.contains(m))
}

struct Planner<'a> {
    def: DomainDef<'a>,
    options: AssignOptions,
    flags: Vec<ConnectFlags>,
    controller_order: Vec<usize>,
    filled: Vec<FilledDefaults>,
    index_filled: Vec<bool>,
    set: Option<AddressSet>,
    warnings: Vec<String>,
}

const PCI_FLAGS: ConnectFlags = ConnectFlags::PCI_AUTO;

impl<'a> Planner<'a> {
    fn new(def: DomainDef<'a>) -> Planner<'a> {
        let n = def.devices.len();
        Planner {
            def,
            options: AssignOptions::default(),
            flags: vec![ConnectFlags::NONE; n],
            controller_order: Vec::new(),
            filled: vec![FilledDefaults::default(); n],
            index_filled: vec![false; n],
            set: None,
            warnings: Vec::new(),
        }
    }

    fn machine(&self) -> MachineKind {
        self.def.machine_kind
    }

    fn device(&self, i: usize) -> &Device<'a> {
        &self.def.devices[i]
    }

    fn controller(&self, i: usize) -> &Controller<'a> {
        self.def.devices[i]
            .controller()
            .expect("controller_order holds controllers only")
    }

    fn pci_controllers(&self) -> impl Iterator<Item = (usize, &Controller<'a>, PciModel)> + '_ {
        self.controller_order.iter().filter_map(move |&i| {
            let c = self.controller(i);
            c.pci_model().map(|m| (i, c, m))
        })
    }

    fn root_model(&self) -> Option<PciModel> {
        self.pci_controllers()
            .find(|(_, c, _)| c.index == Some(0))
            .map(|(_, _, m)| m)
    }

    /// The highest PCI controller index, -1 without PCI controllers.
    fn max_pci_index(&self) -> i64 {
        self.pci_controllers()
            .map(|(_, c, _)| i64::from(c.index()))
            .max()
            .unwrap_or(-1)
    }

    fn has_pcie_root(&self) -> bool {
        self.root_model() == Some(PciModel::PcieRoot)
    }

    fn has_pci_root(&self) -> bool {
        self.root_model() == Some(PciModel::PciRoot)
    }

    /// Add a device that is not in the input; returns its index.
    fn push_device(&mut self, device: Device<'a>) -> usize {
        self.def.devices.push(device);
        self.flags.push(ConnectFlags::NONE);
        self.filled.push(FilledDefaults::default());
        self.index_filled.push(false);
        self.def.devices.len() - 1
    }

    /// Insert controller `i` into the controller list where libvirt's
    /// virDomainControllerInsertPreAlloced puts it: among its type, ordered by index.
    fn insert_controller(&mut self, i: usize) {
        let new = self.controller(i).clone();
        let key = |c: &Controller| c.index.map_or(-1, i64::from);
        let new_key = key(&new);
        let mut insert_at: Option<usize> = None;
        for pos in (0..self.controller_order.len()).rev() {
            let cur = self.controller(self.controller_order[pos]);
            if cur.ctype != new.ctype {
                continue;
            }
            // A controller without an index goes after every controller of its type, so
            // index-less ones keep their document order (and get indexes in that order).
            if new.index.is_none() {
                insert_at = Some(pos + 1);
                break;
            }
            if key(cur) > new_key {
                insert_at = Some(pos);
            } else if key(cur) < new_key && insert_at.is_none() {
                insert_at = Some(pos + 1);
            }
        }
        let at = insert_at.unwrap_or(self.controller_order.len());
        self.controller_order.insert(at, i);
    }

    /// Post-parse work and the checks libvirt makes before assigning addresses.
    fn prepare(&mut self) -> Result<()> {
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
        self.fill_default_controller_models();
        self.check_disk_names()?;
        self.add_default_devices();
        self.add_implicit_controllers();
        self.check_devices()?;
        Ok(())
    }

    fn check_duplicate_controllers(&self) -> Result<()> {
        let mut seen: HashSet<(&str, u32)> = HashSet::new();
        for &i in &self.controller_order {
            let c = self.controller(i);
            // USB2 companion controllers share an index on purpose.
            if c.ctype == "usb" {
                continue;
            }
            let key = (c.ctype, c.index());
            if seen.contains(&key) {
                return Err(Error::xml(format!(
                    "Multiple '{}' controllers with index '{}'",
                    quote(c.ctype),
                    c.index()
                )));
            }
            seen.insert(key);
        }
        Ok(())
    }

    fn check_controllers(&self) -> Result<()> {
        let machine = self.machine();
        for &i in &self.controller_order {
            let c = self.controller(i);
            let Some((model, opts)) = &c.pci else {
                if c.ctype == "pci" {
                    return Err(self.pci_controller_without_model(c));
                }
                continue;
            };
            let index = c.index();
            if model.is_root() && index != 0 {
                return Err(Error::xml(
                    "pci-root and pcie-root controllers should have index 0",
                ));
            }
            if model.is_root() && self.device(i).address != DeviceAddress::None {
                return Err(Error::config_unsupported(
                    "pci-root and pcie-root controllers should not have an address",
                ));
            }
            if index == 0 && machine != MachineKind::Other && *model != machine.root_model() {
                return Err(Error::xml(format!(
                    "The PCI controller with index='0' must be model='{}' for this machine type, \
                     but model='{}' was found instead",
                    machine.root_model(),
                    model
                )));
            }
            if !model.is_root() && index == 0 {
                return Err(Error::config_unsupported(format!(
                    "Index for '{model}' controllers must be > 0"
                )));
            }
            if index > 255 {
                return Err(Error::config_unsupported(format!(
                    "PCI controller index {index} too high, maximum is 255"
                )));
            }
            match model {
                PciModel::PciExpanderBus if machine != MachineKind::I440fx => {
                    return Err(Error::config_unsupported(
                        "pci-expander-bus controllers are only supported on 440fx-based machinetypes",
                    ))
                }
                PciModel::PcieExpanderBus if machine != MachineKind::Q35 => {
                    return Err(Error::config_unsupported(
                        "pcie-expander-bus controllers are not supported with this machine type",
                    ))
                }
                _ => {}
            }
            if let Some(node) = opts.numa_node {
                if index == 0 {
                    return Err(Error::config_unsupported(
                        "The PCI controller with index=0 can't be associated with a NUMA node",
                    ));
                }
                if node < 0 || node as usize >= self.def.numa_cells {
                    return Err(Error::xml(format!(
                        "{model} with index {index} is configured for a NUMA node ({node}) not \
                         present in the domain's <cpu><numa> array ({})",
                        self.def.numa_cells
                    )));
                }
            }
        }
        Ok(())
    }

    fn has_controller(&self, ctype: &str, index: u32) -> bool {
        self.controller_order.iter().any(|&i| {
            let c = self.controller(i);
            c.ctype == ctype && c.index == Some(index)
        })
    }

    /// Append a controller libvirt adds implicitly (it appends to its controller list).
    fn add_implicit_controller(&mut self, ctype: &'a str, index: u32, model: Option<&'a str>) {
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
    fn list_added_controller(&mut self, i: usize) {
        if self.options.libvirt.inserts_added_controllers() {
            self.insert_controller(i);
        } else {
            self.controller_order.push(i);
        }
    }

    /// The devices libvirt's QEMU driver adds to x86 `pc` and `q35` machines when the
    /// definition lacks them (qemuDomainDefAddDefaultDevices): a USB controller, q35's SATA
    /// controller, the root PCI controller and a virtio memory balloon.
    fn add_default_devices(&mut self) {
        let machine = self.machine();
        if machine == MachineKind::Other {
            return;
        }
        if !self.has_controller("usb", 0) {
            let model = if machine == MachineKind::Q35 {
                "qemu-xhci"
            } else {
                "piix3-uhci"
            };
            self.add_implicit_controller("usb", 0, Some(model));
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
        if !has_balloon {
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
    fn add_implicit_controllers(&mut self) {
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
                let model = (ctype == "scsi").then_some("lsilogic");
                self.add_implicit_controller(ctype, index, model);
            }
        }
        let has_video = self
            .def
            .devices
            .iter()
            .any(|d| matches!(d.kind, DeviceKind::Video { .. }));
        if self.def.has_graphics && !has_video {
            self.push_device(Device {
                element: None,
                address_element: None,
                kind: DeviceKind::Video {
                    model: "cirrus",
                    primary: true,
                },
                address: DeviceAddress::None,
                address_controller: None,
                prefs: Default::default(),
            });
        }
    }

    /// Device checks libvirt makes while parsing and validating the definition.
    fn check_devices(&self) -> Result<()> {
        for device in &self.def.devices {
            let has_address = device.address != DeviceAddress::None;
            match &device.kind {
                DeviceKind::Disk { bus, target, .. } => {
                    if matches!(device.address, DeviceAddress::Pci { .. }) && *bus != "virtio" {
                        if *bus == "usb" {
                            return Err(Error::internal("unexpected address type for usb disk"));
                        }
                        return Err(Error::config_unsupported(format!(
                            "Invalid address type 'pci' for the disk '{target}' with the bus type '{bus}'"
                        )));
                    }
                }
                // pvpanic-pci is an ARM virt device: libvirt 9.0 refuses it on x86 machines.
                DeviceKind::Panic { model: Some(m) } if *m == "pvpanic" => {
                    return Err(Error::config_unsupported("unknown panic model 'pvpanic'"));
                }
                DeviceKind::Video { model, .. } if *model == "ramfb" && has_address => {
                    return Err(Error::config_unsupported(
                        "address not supported for video type ramfb",
                    ));
                }
                DeviceKind::Iommu { model } if *model == "virtio" => {
                    if !matches!(
                        device.address,
                        DeviceAddress::None | DeviceAddress::Pci { .. }
                    ) {
                        return Err(Error::config_unsupported(
                            "IOMMU device: 'virtio' needs a PCI address",
                        ));
                    }
                }
                DeviceKind::Hostdev(h) if h.is_subsystem() && h.htype == "pci" => {
                    if !matches!(
                        device.address,
                        DeviceAddress::None | DeviceAddress::Pci { .. } | DeviceAddress::Unassigned
                    ) {
                        return Err(Error::internal(
                            "PCI host devices must use 'pci' or 'unassigned' address type",
                        ));
                    }
                }
                _ => {
                    if device.address == DeviceAddress::Unassigned {
                        return Err(Error::config_unsupported(
                            "address of type 'unassigned' is supported only for hostdevs",
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    // ----- connect flags -------------------------------------------------------------

    fn compute_flags(&mut self) {
        let pcie = if self.has_pcie_root() {
            ConnectFlags::PCIE_AUTO
        } else {
            PCI_FLAGS
        };
        for i in 0..self.def.devices.len() {
            self.flags[i] = device_flags(&self.def.devices[i], pcie, pcie);
        }
    }

    /// Turn each device's `bus` and `hotplug` preferences into its connect flags.
    fn apply_preferences(&mut self) -> Result<()> {
        let has_pcie_root = self.has_pcie_root();
        for i in 0..self.def.devices.len() {
            let device = &self.def.devices[i];
            if device.prefs.is_empty() {
                continue;
            }
            self.flags[i] = preferred_flags(device, self.flags[i], has_pcie_root)?;
        }
        Ok(())
    }

    /// `numa='N'` preferences: put each such device behind an expander bus whose `<node>` is
    /// N (pcie-expander-bus on q35, pci-expander-bus on pc), adding the expander and, on q35,
    /// one pcie-root-port behind it per device. The devices and the added root ports get
    /// their addresses here; the expanders are placed by the usual algorithm on bus 0.
    fn place_numa_devices(&mut self) -> Result<()> {
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
            MachineKind::Other => {
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
    fn place_on_existing_expander(
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
    fn place_behind_new_root_port(&mut self, device: usize, at: PciAddress, next_index: &mut u32) {
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

    /// Add a PCI controller that virtpci decided on (not libvirt).
    fn add_pci_controller(
        &mut self,
        index: u32,
        model: PciModel,
        options: PciControllerOptions<'a>,
        address: DeviceAddress,
    ) {
        let i = self.push_device(Device {
            element: None,
            address_element: None,
            kind: DeviceKind::Controller(Box::new(Controller {
                ctype: "pci",
                model: Some(model.name()),
                index: Some(index),
                index_missing: false,
                pci: Some((model, options)),
            })),
            address,
            address_controller: None,
            prefs: Default::default(),
        });
        self.controller_order.push(i);
    }

    fn filled_last(&mut self) -> &mut FilledDefaults {
        self.filled.last_mut().expect("a device was just added")
    }

    // ----- device lists in libvirt's order --------------------------------------------

    fn devices_where(&self, keep: impl Fn(&Device) -> bool) -> Vec<usize> {
        (0..self.def.devices.len())
            .filter(|&i| keep(&self.def.devices[i]))
            .collect()
    }

    /// Videos as libvirt lists them: the primary one first.
    fn video_order(&self) -> Vec<usize> {
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
    fn iterate_order(&self, keep: impl Fn(&Device<'a>) -> bool) -> Vec<usize> {
        let mut keyed = self.iterate_keys(keep);
        keyed.sort_unstable();
        keyed.into_iter().map(|(_, _, i)| i).collect()
    }

    /// The devices `keep` accepts, each with its sort key for [`Self::iterate_order`]
    /// (unsorted).
    fn iterate_keys(&self, keep: impl Fn(&Device<'a>) -> bool) -> Vec<(u8, usize, usize)> {
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
                DeviceKind::Tpm => 19,
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
    fn backcompat_console(&self) -> Option<usize> {
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

    // ----- the algorithm ---------------------------------------------------------------

    fn run(&mut self) -> Result<()> {
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
    fn run_libvirt(&mut self, declared_max_index: i64) -> Result<()> {
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
    fn reserve_hotplug_room(
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
    fn add_controllers_for_new_buses(&mut self, set: &mut AddressSet) -> Result<()> {
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
    fn add_missing_controller(&mut self, index: usize, model: PciModel) -> Option<usize> {
        if self
            .pci_controllers()
            .any(|(_, c, _)| c.index() as usize == index)
        {
            return None;
        }
        let i = self.push_device(Device {
            element: None,
            address_element: None,
            kind: DeviceKind::Controller(Box::new(Controller {
                ctype: "pci",
                model: Some(model.name()),
                index: Some(index as u32),
                index_missing: false,
                pci: Some((model, PciControllerOptions::default())),
            })),
            address: DeviceAddress::None,
            address_controller: None,
            prefs: Default::default(),
        });
        self.list_added_controller(i);
        self.flags[i] = model.connect_flags();
        Some(i)
    }

    /// Extend mode, when libvirt's placement ran out of room: one pass over a set that adds
    /// buses, with their controllers' places, whenever a device finds no room (see
    /// [`super::extend`]); devices with `hotplug='no'` share multifunction slots.
    fn run_extended(&mut self, declared_max_index: i64) -> Result<()> {
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
            // end on a bridge when the ports run out (see [`super::extend`]).
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
    fn expander_hierarchies(&self, nbuses: usize) -> (Vec<bool>, u32) {
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
    fn needs_more_slots_than_a_domain_has(&self) -> bool {
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

    fn save(&self) -> Saved<'a> {
        Saved {
            def: self.def.clone(),
            flags: self.flags.clone(),
            controller_order: self.controller_order.clone(),
            filled: self.filled.clone(),
            index_filled: self.index_filled.clone(),
            warnings: self.warnings.len(),
        }
    }

    fn restore(&mut self, saved: Saved<'a>) {
        self.def = saved.def;
        self.flags = saved.flags;
        self.controller_order = saved.controller_order;
        self.filled = saved.filled;
        self.index_filled = saved.index_filled;
        self.warnings.truncate(saved.warnings);
        self.set = None;
    }

    /// Build the address set for `nbuses` buses and reserve every configured address
    /// (qemuDomainPCIAddressSetCreate + qemuDomainCollectPCIAddress).
    fn create_set(&mut self, nbuses: usize, dry_run: bool) -> Result<AddressSet> {
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
        let gap_model = if self.has_pcie_root() {
            PciModel::PcieRootPort
        } else {
            PciModel::PciBridge
        };
        let buses = buses
            .into_iter()
            .map(|b| b.unwrap_or_else(|| Bus::new(gap_model, true)))
            .collect();
        let mut set = AddressSet::new(buses, dry_run);
        // Only devices with an address take part; visiting them in libvirt's order keeps
        // its choice of which conflict is reported.
        for i in self.iterate_order(|d| d.address.present_pci().is_some()) {
            self.collect_address(&mut set, i)?;
        }
        Ok(set)
    }

    fn collect_address(&mut self, set: &mut AddressSet, i: usize) -> Result<()> {
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
        set.reserve(&addr, flags, true)
    }

    fn set_address(&mut self, i: usize, addr: PciAddress, multi: Multifunction) {
        self.def.devices[i].address = DeviceAddress::Pci { addr, multi };
    }

    /// Reserve the next free address for device `i`; outside a dry run, record it. In
    /// extend mode a device that finds no room is counted and skipped, so that the error
    /// can say how many did not fit.
    fn reserve_next_for(&mut self, set: &mut AddressSet, i: usize) -> Result<()> {
        let failures = |set: &AddressSet| set.extension.as_ref().map(|e| e.failures);
        let before = failures(set);
        let addr = match set.reserve_next(self.flags[i], None) {
            Ok(addr) => addr,
            Err(_) if before.is_some() && failures(set) != before => return Ok(()),
            Err(e) => return Err(e),
        };
        if !set.dry_run {
            self.set_address(i, addr, Multifunction::Absent);
        }
        Ok(())
    }

    fn wants(&self, i: usize) -> bool {
        self.def.devices[i].address.wants_pci()
    }

    /// The fixed places of the chipset's own functions and of the devices that go there
    /// (qemuDomainValidateDevicePCISlotsChipsets). These placements are written into the
    /// definition even in the dry run, as libvirt does.
    fn chipset_reservations(&mut self, set: &mut AddressSet) -> Result<()> {
        match self.machine() {
            MachineKind::I440fx => self.chipset_piix3(set),
            MachineKind::Q35 => self.chipset_q35(set),
            MachineKind::Other => Ok(()),
        }
    }

    fn chipset_piix3(&mut self, set: &mut AddressSet) -> Result<()> {
        let flags = PCI_FLAGS;
        let has_buses = set.bus_count() > 0;
        for i in self.controller_order.clone() {
            let c = self.controller(i);
            let (fixed, message) = if c.ctype == "ide" && c.index() == 0 {
                (
                    PciAddress::new(0, 0, 1, 1),
                    "Primary IDE controller must have PCI address 0:0:1.1",
                )
            } else if c.ctype == "usb"
                && c.index() == 0
                && (c.model.is_none() || c.model_is("piix3-uhci"))
            {
                (
                    PciAddress::new(0, 0, 1, 2),
                    "PIIX3 USB controller at index 0 must have PCI address 0:0:1.2",
                )
            } else {
                continue;
            };
            match self.def.devices[i].address.present_pci() {
                Some(addr) if addr != fixed => return Err(Error::internal(message)),
                Some(_) => {}
                None => self.set_address(i, fixed, Multifunction::Absent),
            }
            if has_buses {
                set.reserve(&fixed, flags, true)?;
            }
        }
        if has_buses {
            set.reserve(&PciAddress::new(0, 0, 1, 0), flags, true)?;
            set.reserve(&PciAddress::new(0, 0, 1, 3), flags, true)?;
        }
        self.primary_video(set, PciAddress::new(0, 0, 2, 0), flags)
    }

    /// The primary video wants `preferred`; if that slot is taken it gets the next free one.
    fn primary_video(
        &mut self,
        set: &mut AddressSet,
        preferred: PciAddress,
        flags: ConnectFlags,
    ) -> Result<()> {
        let Some(&video) = self.video_order().first() else {
            return Ok(());
        };
        if let DeviceKind::Video { model, .. } = &self.def.devices[video].kind {
            if *model == "none" || *model == "ramfb" {
                return Ok(());
            }
        }
        if !self.wants(video) {
            return Ok(());
        }
        set.validate(&preferred, flags, true)?;
        if set.slot_in_use(&preferred) {
            self.reserve_next_for(set, video)
        } else {
            set.reserve(&preferred, flags, true)?;
            self.set_address(video, preferred, Multifunction::Absent);
            Ok(())
        }
    }

    fn chipset_q35(&mut self, set: &mut AddressSet) -> Result<()> {
        let flags = ConnectFlags::PCIE_DEVICE;
        for i in self.controller_order.clone() {
            let c = self.controller(i);
            let no_address = self.def.devices[i].address == DeviceAddress::None;
            if c.ctype == "sata" && c.index() == 0 {
                let fixed = PciAddress::new(0, 0, 0x1f, 2);
                match self.def.devices[i].address.present_pci() {
                    Some(addr) if addr != fixed => {
                        return Err(Error::internal(
                            "Primary SATA controller must have PCI address 0:0:1f.2",
                        ))
                    }
                    Some(_) => {}
                    None => self.set_address(i, fixed, Multifunction::Absent),
                }
            } else if c.ctype == "usb" && c.model_is("ich9-uhci1") && no_address {
                // The first USB2 sets go where real ICH9 hardware has them, if free.
                let place = [0x1d, 0x1a]
                    .into_iter()
                    .map(|slot| PciAddress::new(0, 0, slot, 0))
                    .find(|a| !set.slot_in_use(a));
                if let Some(addr) = place {
                    set.reserve(&addr, flags, true)?;
                    self.set_address(i, addr, Multifunction::On);
                }
            } else if c.pci_model() == Some(PciModel::DmiToPciBridge) && no_address {
                let addr = PciAddress::new(0, 0, 0x1e, 0);
                if !set.slot_in_use(&addr) {
                    set.reserve(&addr, flags, true)?;
                    self.set_address(i, addr, Multifunction::Absent);
                }
            }
        }
        if set.bus_count() > 0 {
            set.reserve(&PciAddress::new(0, 0, 0x1f, 0), flags, true)?;
            set.reserve(&PciAddress::new(0, 0, 0x1f, 3), flags, true)?;
        }
        self.primary_video(set, PciAddress::new(0, 0, 1, 0), flags)?;
        let audio = PciAddress::new(0, 0, 0x1b, 0);
        if !set.slot_in_use(&audio) {
            let first_ich9 = self.devices_where(|d| {
                matches!(&d.kind, DeviceKind::Sound { model } if *model == "ich9")
                    && d.address.wants_pci()
            });
            if let Some(&sound) = first_ich9.first() {
                set.reserve(&audio, flags, true)?;
                self.set_address(sound, audio, Multifunction::Absent);
            }
        }
        Ok(())
    }

    /// Give every device that wants one an address, in libvirt's order
    /// (qemuDomainAssignDevicePCISlots).
    fn assign_slots(&mut self, set: &mut AddressSet) -> Result<()> {
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
    fn assign_usb2_companion(
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
    fn set_all_multifunction(&mut self) {
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

    /// Model names and target values libvirt fills in after assignment.
    fn fill_controller_defaults(&mut self) -> Result<()> {
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
                if let Some(name) = model.default_model_name() {
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

    /// The checks libvirt's validation makes on the completed definition.
    fn validate_after(&self) -> Result<()> {
        self.validate_devices()?;
        for (_, c, model) in self.pci_controllers() {
            let index = c.index();
            if index > 255 {
                return Err(Error::config_unsupported(format!(
                    "PCI controller index {index} too high, maximum is 255"
                )));
            }
            let Some((_, opts)) = &c.pci else { continue };
            let context = || {
                format!(
                    "for PCI controller with index '{index}', model '{model}' and modelName '{}'",
                    quote(opts.model_name.unwrap_or_default())
                )
            };
            if let Some(name) = &opts.model_name {
                if model.is_root() || !model.valid_model_names().contains(name) {
                    return Err(Error::config_unsupported(format!(
                        "Option 'modelName' has invalid value {}",
                        context()
                    )));
                }
            }
            let options: [(&str, Option<i64>, bool); 4] = [
                ("chassisNr", opts.chassis_nr, model == PciModel::PciBridge),
                (
                    "chassis",
                    opts.chassis,
                    matches!(
                        model,
                        PciModel::PcieRootPort | PciModel::PcieSwitchDownstreamPort
                    ),
                ),
                (
                    "port",
                    opts.port,
                    matches!(
                        model,
                        PciModel::PcieRootPort | PciModel::PcieSwitchDownstreamPort
                    ),
                ),
                (
                    "busNr",
                    opts.bus_nr,
                    matches!(model, PciModel::PciExpanderBus | PciModel::PcieExpanderBus),
                ),
            ];
            for (name, value, allowed) in options {
                match (value, allowed) {
                    (Some(_), false) => {
                        return Err(Error::config_unsupported(format!(
                            "Option '{name}' is not valid {}",
                            context()
                        )))
                    }
                    (None, true) => {
                        return Err(Error::config_unsupported(format!(
                            "Required option '{name}' is not set {}",
                            context()
                        )))
                    }
                    _ => {}
                }
            }
            if opts.hotplug.is_some() && !model.takes_hotplug_option() {
                return Err(Error::config_unsupported(format!(
                    "Option 'hotplug' is not valid {}",
                    context()
                )));
            }
            if opts.target_index.is_some() {
                return Err(Error::config_unsupported(format!(
                    "Option 'targetIndex' is not valid {}",
                    context()
                )));
            }
            let range = |value: Option<i64>, lo: i64, hi: i64, what: &str| -> Result<()> {
                match value {
                    Some(v) if v < lo || v > hi => Err(Error::config_unsupported(format!(
                        "PCI controller {what} '{v}' out of range - must be {lo}-{hi}"
                    ))),
                    _ => Ok(()),
                }
            };
            range(opts.chassis_nr, 1, 255, "chassisNr")?;
            range(opts.chassis, 0, 255, "chassis")?;
            range(opts.port, 0, 255, "port")?;
            range(opts.bus_nr, 1, 254, "busNr")?;
        }
        Ok(())
    }
}

/// The fixed function (and multifunction setting) of an ICH9 USB2 companion controller.
fn usb2_companion_function(c: &Controller) -> Option<(u32, Multifunction)> {
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

/// The connect flags of one device (qemuDomainDeviceCalculatePCIConnectFlags).
/// `pcie` is what a PCI Express endpoint gets (conventional PCI on machines without
/// pcie-root); `virtio` is what virtio devices get (QEMU 7.2: same as `pcie`).
pub fn device_flags(device: &Device, pcie: ConnectFlags, virtio: ConnectFlags) -> ConnectFlags {
    let pci = PCI_FLAGS;
    let none = ConnectFlags::NONE;
    let transitional = |model: Option<&str>| model == Some("virtio-transitional");
    match &device.kind {
        DeviceKind::Controller(c) => match c.ctype {
            "pci" => c.pci_model().map_or(none, PciModel::connect_flags),
            "sata" | "ide" => pci,
            "usb" => match c.model {
                None => pci,
                Some("nec-xhci" | "qemu-xhci") => pcie,
                Some(
                    "ehci" | "ich9-ehci1" | "ich9-uhci1" | "ich9-uhci2" | "ich9-uhci3"
                    | "vt82c686b-uhci" | "piix3-uhci" | "piix4-uhci" | "pci-ohci",
                ) => pci,
                Some(_) => none,
            },
            "scsi" => match c.model {
                None | Some("ncr53c90") => none,
                Some("virtio-scsi" | "virtio-non-transitional") => virtio,
                Some(_) => pci,
            },
            "virtio-serial" => {
                if transitional(c.model) {
                    pci
                } else {
                    virtio
                }
            }
            _ => none,
        },
        DeviceKind::Filesystem { driver, model } => match driver.as_deref() {
            None | Some("default" | "path" | "handle") => {
                if transitional(model.as_deref()) {
                    pci
                } else {
                    virtio
                }
            }
            Some("virtiofs") => virtio,
            _ => none,
        },
        DeviceKind::Net {
            hostdev: Some(h), ..
        } => hostdev_flags(h, device, pcie, virtio),
        DeviceKind::Net { model, .. } => match model.as_deref() {
            Some("usb-net") => none,
            Some("virtio" | "virtio-non-transitional") => virtio,
            Some("virtio-transitional") => pci,
            Some("e1000e" | "igb") => pcie,
            // No model: libvirt's x86 default, rtl8139.
            None => pci,
            Some(other) if known_net_model(other) => pci,
            // A model libvirt does not know is "unknown", which it treats as PCI Express.
            Some(_) => pcie,
        },
        DeviceKind::Sound { model } if matches!(*model, "es1370" | "ac97" | "ich6" | "ich9") => pci,
        DeviceKind::Sound { .. } => none,
        DeviceKind::Disk { bus, model, .. } => {
            if *bus != "virtio" {
                none
            } else if transitional(model.as_deref()) {
                pci
            } else {
                virtio
            }
        }
        DeviceKind::Hostdev(h) => hostdev_flags(h, device, pcie, virtio),
        DeviceKind::Memballoon { model } => match *model {
            "virtio-transitional" => pci,
            "virtio" | "virtio-non-transitional" => virtio,
            _ => none,
        },
        DeviceKind::Rng { model } => {
            if *model == "virtio-transitional" {
                pci
            } else {
                virtio
            }
        }
        DeviceKind::Watchdog { model } => {
            if *model == "i6300esb" {
                pci
            } else {
                none
            }
        }
        DeviceKind::Video { model, .. } => match *model {
            "virtio" => virtio,
            "vga" | "cirrus" | "vmvga" | "xen" | "vbox" | "qxl" | "parallels" => pci,
            "bochs" => pcie,
            _ => none,
        },
        DeviceKind::Shmem => pci,
        DeviceKind::Input { bus, model } => {
            if *bus != "virtio" {
                none
            } else if transitional(model.as_deref()) {
                pci
            } else {
                virtio
            }
        }
        DeviceKind::Serial { target_type } => {
            if target_type.as_deref() == Some("pci-serial") {
                pci
            } else {
                none
            }
        }
        DeviceKind::Iommu { model } => {
            if *model == "virtio" {
                virtio | ConnectFlags::INTEGRATED
            } else {
                none
            }
        }
        DeviceKind::Vsock { model } => match model.as_deref() {
            Some("virtio-transitional") => pci,
            _ => virtio,
        },
        DeviceKind::Memory { model } if matches!(*model, "virtio-pmem" | "virtio-mem") => virtio,
        DeviceKind::Memory { .. } => none,
        DeviceKind::Crypto { model } => {
            if *model == "virtio" {
                pci
            } else {
                none
            }
        }
        DeviceKind::Panic { model } => {
            if model.as_deref() == Some("pvpanic") {
                pci | ConnectFlags::INTEGRATED
            } else {
                none
            }
        }
        _ => none,
    }
}

/// The NIC models libvirt 9.0 knows by name (anything else is "unknown" to it).
fn known_net_model(model: &str) -> bool {
    matches!(
        model,
        "virtio"
            | "virtio-transitional"
            | "virtio-non-transitional"
            | "e1000"
            | "e1000e"
            | "igb"
            | "rtl8139"
            | "netfront"
            | "usb-net"
            | "spapr-vlan"
            | "lan9118"
            | "scm91c111"
            | "vlance"
            | "vmxnet"
            | "vmxnet2"
            | "vmxnet3"
            | "am79c970a"
            | "am79c973"
            | "82540EM"
            | "82545EM"
            | "82543GC"
    )
}

fn hostdev_flags(
    h: &Hostdev,
    device: &Device,
    pcie: ConnectFlags,
    virtio: ConnectFlags,
) -> ConnectFlags {
    let pci = PCI_FLAGS;
    let is_mdev = h.htype == "mdev";
    if !is_mdev && (!h.is_subsystem() || (h.htype != "pci" && h.htype != "scsi_host")) {
        return ConnectFlags::NONE;
    }
    if pci == pcie {
        return pci;
    }
    if device.address.present_pci().is_some() || is_mdev {
        return pcie;
    }
    if h.htype == "scsi_host" {
        return if h.model == Some("virtio-transitional") {
            pci
        } else {
            virtio
        };
    }
    // libvirt opens the host device here; one that is not on this host counts as PCIe.
    pcie
}

/// A short description of a device for messages about its preferences.
fn describe(device: &Device) -> String {
    let name = match &device.kind {
        DeviceKind::Disk { .. } => "disk",
        DeviceKind::Controller(_) => "controller",
        DeviceKind::Filesystem { .. } => "filesystem",
        DeviceKind::Net { .. } => "interface",
        DeviceKind::Sound { .. } => "sound",
        DeviceKind::Hostdev(_) => "hostdev",
        DeviceKind::Memballoon { .. } => "memballoon",
        DeviceKind::Rng { .. } => "rng",
        DeviceKind::Watchdog { .. } => "watchdog",
        DeviceKind::Video { .. } => "video",
        DeviceKind::Shmem => "shmem",
        DeviceKind::Input { .. } => "input",
        DeviceKind::Serial { .. } => "serial",
        DeviceKind::Console { .. } => "console",
        DeviceKind::Channel { .. } => "channel",
        DeviceKind::Iommu { .. } => "iommu",
        DeviceKind::Vsock { .. } => "vsock",
        DeviceKind::Memory { .. } => "memory",
        DeviceKind::Crypto { .. } => "crypto",
        DeviceKind::Panic { .. } => "panic",
        _ => "device",
    };
    match device.prefs.line {
        Some(line) => format!("<{name}> at line {line}"),
        None => format!("<{name}>"),
    }
}

/// Whether a device may be placed on either conventional PCI or PCI Express (virtio devices
/// that are not transitional, PCI host devices, the xHCI USB controllers).
fn can_use_either_bus(device: &Device) -> bool {
    const MARK: ConnectFlags = ConnectFlags(1 << 20);
    if device_flags(device, ConnectFlags::PCIE_AUTO, MARK).intersects(MARK) {
        return true;
    }
    match &device.kind {
        DeviceKind::Hostdev(h)
        | DeviceKind::Net {
            hostdev: Some(h), ..
        } => h.is_subsystem() && h.htype == "pci",
        DeviceKind::Controller(c) => {
            c.ctype == "usb" && matches!(c.model, Some("nec-xhci" | "qemu-xhci"))
        }
        _ => false,
    }
}

/// The connect flags of `device` (libvirt's are `flags`) after its `bus` and `hotplug`
/// preferences; an error names the device when a preference cannot be met.
pub fn preferred_flags(
    device: &Device,
    flags: ConnectFlags,
    has_pcie_root: bool,
) -> Result<ConnectFlags> {
    let prefs = device.prefs;
    if prefs.is_empty() {
        return Ok(flags);
    }
    if flags.is_empty() {
        return Err(Error::xml(format!(
            "{}: addressPreferences apply only to devices that take a PCI address",
            describe(device)
        )));
    }
    let mut flags = flags;
    let keep = flags & (ConnectFlags::INTEGRATED | ConnectFlags::HOTPLUGGABLE);
    match prefs.bus {
        None => {}
        Some(BusPreference::Pci) if flags.intersects(ConnectFlags::PCI_DEVICE) => {}
        Some(BusPreference::Pci) if can_use_either_bus(device) => flags = PCI_FLAGS | keep,
        Some(BusPreference::Pci) => {
            return Err(Error::config_unsupported(format!(
                "{}: addressPreferences bus='pci' cannot be met, the device is PCI Express only",
                describe(device)
            )))
        }
        Some(BusPreference::Pcie) if !has_pcie_root => {
            return Err(Error::config_unsupported(format!(
                "{}: addressPreferences bus='pcie' needs a PCI Express machine (q35); this machine has conventional PCI only",
                describe(device)
            )))
        }
        Some(BusPreference::Pcie) if flags.intersects(ConnectFlags::PCIE_DEVICE) => {}
        Some(BusPreference::Pcie) if can_use_either_bus(device) => {
            flags = ConnectFlags::PCIE_AUTO | keep
        }
        Some(BusPreference::Pcie) => {
            return Err(Error::config_unsupported(format!(
                "{}: addressPreferences bus='pcie' cannot be met, the device is conventional PCI only",
                describe(device)
            )))
        }
    }
    match prefs.hotplug {
        None => {}
        Some(true) => flags |= ConnectFlags::HOTPLUGGABLE,
        Some(false) => flags |= ConnectFlags::PLACE_WITHOUT_HOTPLUG,
    }
    Ok(flags)
}
