//! Multifunction slots as a unit for a running guest (why: docs/decisions.md).
//!
//! libvirt hot-plugs one device at a time, at function 0 only, and refuses to unplug a device
//! whose slot holds another function; that stays the rule of the single-device
//! calls of [`HotplugAddressSet`]. The plans here treat a whole slot as the unit instead:
//!
//! * **attach**: n devices (1 to 8) become the functions of one free slot. They are handed to
//!   the emulator functions above 0 first and function 0 last, because the guest learns of
//!   the slot when function 0 arrives; function 0 carries `multifunction='on'` when there is
//!   more than one. The addresses are reserved when the plan is made.
//! * **detach**: every device of a slot (unplugging function 0 removes the whole slot), or a
//!   refusal naming each function that cannot go: a chipset function, a controller that still
//!   has devices behind it, a device marked `hotplug='no'`, or a bus without hotplug. The set
//!   is not changed until [`HotplugAddressSet::release_slot_plan`].
//!
//! A device's pluggability therefore has three states ([`Pluggability`]).

use super::hotplug::HotplugAddressSet;
use crate::error::{quote, Error, ErrorCode, Result};
use crate::pci::{parse_xml_uint, PciAddress};
use crate::topology::ConnectFlags;
use crate::xml::domain::{
    read_device, Device, DeviceAddress, DeviceKind, DomainDef, Multifunction,
};
use crate::xml::edit::Editor;
use crate::xml::identity::Identity;
use crate::xml::write::pci_address_tag;
use crate::xml::{Document, ElementId};

/// Whether a device can be hot-unplugged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pluggability {
    /// Alone: its slot has no other function in use.
    Pluggable,
    /// Only together with the rest of its slot (a multifunction slot; libvirt refuses to
    /// unplug such a device on its own).
    WithSlot,
    /// Not at all; the reason says why.
    NotPluggable(String),
}

/// A device of the running guest that has a PCI address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LiveDevice {
    pub addr: PciAddress,
    /// A short name: `interface (mac 52:54:00:00:00:01)`, `controller pci index 3 (...)`.
    pub label: String,
    /// The device element as the definition (or the attach plan) gave it.
    pub xml: String,
    /// Marked `<addressPreferences hotplug='no'/>` or `<hotplug require='no'/>`.
    pub(crate) no_hotplug: bool,
    /// A PCI controller: the bus (its index) it provides.
    pub(crate) provides_bus: Option<u32>,
    /// Another controller: the devices that use it (their labels).
    pub(crate) users: Vec<String>,
}

/// The devices of a running guest by PCI address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Inventory {
    pub devices: Vec<LiveDevice>,
}

/// The `<devices>` child `id` of `doc` as written.
fn element_text(doc: &Document<'_>, id: ElementId) -> String {
    let el = doc.element(id);
    doc.text[el.start..el.end].to_string()
}

/// A short name for a device.
fn label(doc: &Document<'_>, id: Option<ElementId>, device: &Device) -> String {
    if let Some(c) = device.controller() {
        return c.describe();
    }
    let Some(id) = id else {
        return match &device.kind {
            DeviceKind::Memballoon { .. } => "memballoon".into(),
            DeviceKind::Video { .. } => "video".into(),
            _ => "device".into(),
        };
    };
    let identity = Identity::of(doc, id);
    let detail = identity
        .key()
        .or_else(|| identity.alias.map(|a| format!("alias {a}")));
    identity.label(detail.as_deref())
}

/// The controller (type, index) a device uses, if it uses one other than PCI.
fn uses_controller(doc: &Document<'_>, device: &Device) -> Option<(&'static str, u32)> {
    let id = device.element?;
    let address = doc.child(id, "address");
    let address_attr = |name: &str| {
        address
            .and_then(|a| doc.attr(a, name))
            .and_then(parse_xml_uint)
    };
    let address_type = address.and_then(|a| doc.attr(a, "type"));
    match (&device.kind, address_type) {
        (DeviceKind::Disk { bus, .. }, _) => {
            let ctype = match *bus {
                "scsi" => "scsi",
                "sata" => "sata",
                "ide" => "ide",
                "fdc" => "fdc",
                "usb" => "usb",
                _ => return None,
            };
            let index = if ctype == "usb" {
                address_attr("bus")
            } else {
                address_attr("controller")
            };
            Some((ctype, index.unwrap_or(0)))
        }
        (_, Some("drive")) => Some(("scsi", address_attr("controller").unwrap_or(0))),
        (_, Some("virtio-serial")) => {
            Some(("virtio-serial", address_attr("controller").unwrap_or(0)))
        }
        (_, Some("usb")) => Some(("usb", address_attr("bus").unwrap_or(0))),
        (DeviceKind::Input { bus, .. }, None) if *bus == "usb" => Some(("usb", 0)),
        (DeviceKind::Hostdev(h), None) if h.htype == "usb" => Some(("usb", 0)),
        (DeviceKind::Hub | DeviceKind::Redirdev, None) => Some(("usb", 0)),
        (DeviceKind::Channel { .. } | DeviceKind::Console { .. }, None) => {
            let virtio = doc.child_attr(id, "target", "type") == Some("virtio");
            virtio.then_some(("virtio-serial", 0))
        }
        _ => None,
    }
}

/// The index of a `<controller type='pci'>` element at the root of `doc`. Read from the XML
/// rather than from the parsed device: valgrind reports a conditional jump on uninitialised
/// bytes in the optimised code of the equivalent `Device` match here (a false positive, the
/// code is safe Rust), which would fail the C tests under valgrind.
fn pci_controller_index(doc: &Document<'_>) -> Option<u32> {
    let el = doc.element(doc.root);
    if el.name == "controller" && el.attr("type") == Some("pci") {
        el.attr("index").and_then(parse_xml_uint)
    } else {
        None
    }
}

impl Inventory {
    /// The devices of `def` (after assignment) that have a PCI address; `doc` is the
    /// definition they were read from.
    pub(crate) fn from_definition(doc: &Document<'_>, def: &DomainDef) -> Inventory {
        let mut devices = Vec::new();
        for device in &def.devices {
            let Some(addr) = device.address.present_pci() else {
                continue;
            };
            let users: Vec<String> = match device.controller() {
                Some(c) if c.pci.is_none() => def
                    .devices
                    .iter()
                    .filter(|d| {
                        uses_controller(doc, d).is_some_and(|(t, i)| t == c.ctype && i == c.index())
                    })
                    .map(|d| label(doc, d.element, d))
                    .collect(),
                _ => Vec::new(),
            };
            devices.push(LiveDevice {
                addr,
                label: label(doc, device.element, device),
                xml: device
                    .element
                    .map(|id| element_text(doc, id))
                    .unwrap_or_default(),
                no_hotplug: device.prefs.hotplug == Some(false),
                provides_bus: device
                    .controller()
                    .filter(|c| c.pci.is_some())
                    .map(|c| c.index()),
                users,
            });
        }
        Inventory { devices }
    }

    /// The device at `addr`, if any.
    pub fn at(&self, addr: &PciAddress) -> Option<&LiveDevice> {
        self.devices.iter().find(|d| d.addr == *addr)
    }

    /// Record a device plugged at `addr` from its XML.
    pub(crate) fn add_from_xml(&mut self, addr: PciAddress, device_xml: &str) {
        let device = Document::parse(device_xml).ok().and_then(|doc| {
            let device = read_device(&doc, doc.root).ok()?;
            Some(LiveDevice {
                addr,
                label: label(&doc, Some(doc.root), &device),
                xml: device_xml.to_string(),
                no_hotplug: device.prefs.hotplug == Some(false),
                provides_bus: pci_controller_index(&doc),
                users: Vec::new(),
            })
        });
        self.remove(&addr);
        self.devices.push(device.unwrap_or(LiveDevice {
            addr,
            label: "device".into(),
            xml: device_xml.to_string(),
            no_hotplug: false,
            provides_bus: None,
            users: Vec::new(),
        }));
    }

    /// Forget the device at `addr`.
    pub fn remove(&mut self, addr: &PciAddress) {
        self.devices.retain(|d| d.addr != *addr);
    }
}

/// Attach or detach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotPlanKind {
    Attach,
    Detach,
}

/// One device of a slot plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotPlanItem {
    pub addr: PciAddress,
    /// The function carries `multifunction='on'`.
    pub multifunction: bool,
    pub label: String,
    /// Attach: the device XML with its `<address>` filled in, ready for the emulator.
    /// Detach: the device element as the guest's definition has it.
    pub xml: String,
}

/// A whole-slot operation, its devices in the order to hand them to the emulator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotPlan {
    pub kind: SlotPlanKind,
    /// The slot (function 0).
    pub slot: PciAddress,
    pub items: Vec<SlotPlanItem>,
}

/// A slot written as `DDDD:BB:SS`.
fn slot_name(a: &PciAddress) -> String {
    format!("{:04x}:{:02x}:{:02x}", a.domain, a.bus, a.slot)
}

/// One device to attach, parsed: its address and connect flags.
struct Incoming<'a> {
    xml: &'a str,
    address: DeviceAddress,
    flags: ConnectFlags,
}

/// Put `addr` (with `multi`) into the device element `xml`.
fn with_address(xml: &str, addr: &PciAddress, multi: Multifunction) -> Result<String> {
    let doc = Document::parse(xml)?;
    let mut ed = Editor::new(&doc);
    let tag = pci_address_tag(addr, multi);
    match doc.child(doc.root, "address") {
        Some(a) => ed.replace_start_tag(a, &tag),
        None => ed.append_child(doc.root, format!("<{tag}/>")),
    }
    Ok(ed.finish())
}

impl HotplugAddressSet {
    /// Plan (and reserve) the hot-plug of `device_xmls` as the functions of one free slot.
    ///
    /// Without addresses in the device XML, device `i` becomes function `i` of the first free
    /// slot, on a hotplug-capable bus, that accepts every device. With addresses, every
    /// device must have one, all in one slot, one of them function 0, and the slot must be
    /// free. The plan lists functions above 0 first and function 0 last.
    pub fn plan_slot_attach(&mut self, device_xmls: &[&str]) -> Result<SlotPlan> {
        self.refuse_pci_only_on_s390()?;
        let n = device_xmls.len();
        if n == 0 {
            return Err(Error::invalid_arg("a slot plan needs at least one device"));
        }
        if n > 8 {
            return Err(Error::invalid_arg(format!(
                "a PCI slot has 8 functions; {n} devices cannot share one"
            )));
        }
        let mut incoming = Vec::with_capacity(n);
        for (i, xml) in device_xmls.iter().enumerate() {
            let (address, flags) = self
                .parse_for_hotplug(xml)
                .map_err(|e| e.context(format!("device {i}")))?;
            let tag = Document::parse(xml)
                .map(|d| quote(d.element(d.root).name).to_string())
                .unwrap_or_default();
            let Some(flags) = flags else {
                return Err(Error::invalid_arg(format!(
                    "device {i} (<{tag}>) does not use a PCI address and cannot be a function \
                     of a PCI slot"
                )));
            };
            if let DeviceAddress::Other(t) = &address {
                return Err(Error::invalid_arg(format!(
                    "device {i} (<{tag}>) has an address of type '{}', not a PCI address",
                    quote(t)
                )));
            }
            incoming.push(Incoming {
                xml,
                address,
                flags,
            });
        }
        let given: Vec<Option<PciAddress>> =
            incoming.iter().map(|d| d.address.present_pci()).collect();
        let addrs: Vec<PciAddress> = if given.iter().all(Option::is_none) {
            self.find_free_slot(&incoming)?
        } else {
            self.check_given_slot(&incoming, &given)?
        };
        let zero = addrs
            .iter()
            .position(|a| a.function == 0)
            .expect("a slot plan always has function 0");
        if n > 1 {
            if let DeviceAddress::Pci {
                multi: Multifunction::Off,
                ..
            } = incoming[zero].address
            {
                return Err(Error::config_unsupported(format!(
                    "function 0 of guest PCI slot {} has multifunction='off', but {n} functions \
                     share the slot: the guest would not see the others",
                    slot_name(&addrs[zero])
                )));
            }
        }
        let mut items = Vec::with_capacity(n);
        for (i, (d, addr)) in incoming.iter().zip(&addrs).enumerate() {
            let multi = if i == zero && n > 1 {
                Multifunction::On
            } else {
                match d.address {
                    DeviceAddress::Pci { multi, .. } => multi,
                    _ => Multifunction::Absent,
                }
            };
            items.push(SlotPlanItem {
                addr: *addr,
                multifunction: multi == Multifunction::On,
                label: String::new(),
                xml: with_address(d.xml, addr, multi)?,
            });
        }
        // Everything is checked: book the slot.
        for (d, addr) in incoming.iter().zip(&addrs) {
            self.set.reserve(addr, d.flags, true)?;
        }
        for item in &mut items {
            self.inventory.add_from_xml(item.addr, &item.xml);
            item.label = self
                .inventory
                .at(&item.addr)
                .map(|d| d.label.clone())
                .unwrap_or_default();
        }
        items.sort_by_key(|it| (it.addr.function == 0, it.addr.function));
        Ok(SlotPlan {
            kind: SlotPlanKind::Attach,
            slot: PciAddress {
                function: 0,
                ..addrs[0]
            },
            items,
        })
    }

    /// Whether the whole slot of `slot` is free and takes device `i` at function `i`.
    fn slot_takes(
        &self,
        slot: PciAddress,
        incoming: &[Incoming<'_>],
        from_config: bool,
    ) -> Result<()> {
        if self.set.slot_in_use(&slot) {
            let used: Vec<String> = (0..8)
                .map(|f| PciAddress {
                    function: f,
                    ..slot
                })
                .filter(|a| self.function_in_use(a))
                .map(|a| match self.inventory.at(&a) {
                    Some(d) => format!("{a} ({})", d.label),
                    None => format!("{a} (chipset)"),
                })
                .collect();
            return Err(Error::operation_invalid(format!(
                "guest PCI slot {} is not free: {}",
                slot_name(&slot),
                used.join(", ")
            )));
        }
        for (i, d) in incoming.iter().enumerate() {
            let addr = PciAddress {
                function: d.address.present_pci().map_or(i as u32, |a| a.function),
                ..slot
            };
            self.set.validate(&addr, d.flags, from_config)?;
        }
        Ok(())
    }

    fn function_in_use(&self, addr: &PciAddress) -> bool {
        self.set
            .buses
            .get(addr.bus as usize)
            .and_then(|b| b.slots.get(addr.slot as usize))
            .is_some_and(|s| s.functions & (1 << addr.function) != 0)
    }

    fn find_free_slot(&self, incoming: &[Incoming<'_>]) -> Result<Vec<PciAddress>> {
        for (bus_index, bus) in self.set.buses.iter().enumerate() {
            for slot in bus.min_slot..=bus.max_slot {
                let base = PciAddress::new(0, bus_index as u32, slot, 0);
                if self.slot_takes(base, incoming, false).is_ok() {
                    return Ok((0..incoming.len() as u32)
                        .map(|f| PciAddress {
                            function: f,
                            ..base
                        })
                        .collect());
                }
            }
        }
        Err(Error::internal(format!(
            "No free PCI slot on a hotplug-capable bus takes these {} device(s)",
            incoming.len()
        )))
    }

    fn check_given_slot(
        &self,
        incoming: &[Incoming<'_>],
        given: &[Option<PciAddress>],
    ) -> Result<Vec<PciAddress>> {
        if let Some(missing) = given.iter().position(Option::is_none) {
            return Err(Error::invalid_arg(format!(
                "device {missing} of the slot plan has no PCI address while others have one: \
                 give every device an address in the same slot, or none"
            )));
        }
        let addrs: Vec<PciAddress> = given.iter().flatten().copied().collect();
        let slot = PciAddress {
            function: 0,
            ..addrs[0]
        };
        if let Some(other) = addrs.iter().find(|a| !a.same_slot(&slot)) {
            return Err(Error::invalid_arg(format!(
                "the devices of a slot plan must share one slot: {} and {other} do not",
                addrs[0]
            )));
        }
        for (i, a) in addrs.iter().enumerate() {
            if addrs[..i].contains(a) {
                return Err(Error::invalid_arg(format!(
                    "two devices of the slot plan ask for function {a}"
                )));
            }
        }
        if !addrs.iter().any(|a| a.function == 0) {
            return Err(Error::invalid_arg(format!(
                "no device of the slot plan is function 0 of {}: the guest learns of a slot \
                 when function 0 arrives, so it would never see the others",
                slot_name(&slot)
            )));
        }
        self.slot_takes(slot, incoming, true)?;
        Ok(addrs)
    }

    /// Whether the device at `addr` can be hot-unplugged, and how.
    pub fn pluggability(&self, addr: &PciAddress) -> Result<Pluggability> {
        self.check_in_topology(addr)?;
        if !self.function_in_use(addr) {
            return Err(Error::device_missing(format!(
                "no device uses guest PCI address {addr}"
            )));
        }
        if let Some(reason) = self.cannot_unplug(addr) {
            return Ok(Pluggability::NotPluggable(reason));
        }
        let others: Vec<PciAddress> = (0..8)
            .filter(|&f| f != addr.function)
            .map(|function| PciAddress { function, ..*addr })
            .filter(|a| self.function_in_use(a))
            .collect();
        if others.is_empty() {
            return Ok(Pluggability::Pluggable);
        }
        // Only with its slot, so only if every other function of the slot can go too (what
        // plan_slot_detach asks).
        for other in &others {
            if let Some(why) = self.cannot_unplug(other) {
                return Ok(Pluggability::NotPluggable(format!(
                    "it can only go with its whole slot, and function {other} cannot: {why}"
                )));
            }
        }
        Ok(Pluggability::WithSlot)
    }

    /// Why the function at `addr` (in use) cannot be unplugged, if it cannot.
    fn cannot_unplug(&self, addr: &PciAddress) -> Option<String> {
        let bus = &self.set.buses[addr.bus as usize];
        if !bus.accepts.intersects(ConnectFlags::HOTPLUGGABLE) {
            return Some(format!(
                "bus {} ({}) does not support hotplug",
                addr.bus, bus.model
            ));
        }
        let Some(device) = self.inventory.at(addr) else {
            return Some("it is a function of the chipset, not a device".into());
        };
        if device.no_hotplug {
            return Some(format!("{} is marked hotplug='no'", device.label));
        }
        if let Some(index) = device.provides_bus {
            let behind: Vec<String> = self
                .inventory
                .devices
                .iter()
                .filter(|d| d.addr.bus == index)
                .map(|d| format!("{} at {}", d.label, d.addr))
                .collect();
            let busy = self
                .set
                .buses
                .get(index as usize)
                .is_some_and(|b| !b.is_empty());
            if busy || !behind.is_empty() {
                return Some(format!(
                    "{} still has devices behind it{}",
                    device.label,
                    if behind.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", behind.join(", "))
                    }
                ));
            }
        }
        if !device.users.is_empty() {
            return Some(format!(
                "{} still has devices behind it: {}",
                device.label,
                device.users.join(", ")
            ));
        }
        None
    }

    /// Plan the hot-unplug of every device of the slot of `addr` (its function is ignored):
    /// function 0 first (its removal takes the slot away from the guest), then the others.
    /// Refused, naming each function that cannot go, when one cannot. The set is not
    /// changed; release the plan once the emulator has let the devices go.
    pub fn plan_slot_detach(&self, addr: &PciAddress) -> Result<SlotPlan> {
        let slot = PciAddress {
            function: 0,
            ..*addr
        };
        self.check_in_topology(&slot)?;
        if !self.set.slot_in_use(&slot) {
            return Err(Error::device_missing(format!(
                "no device uses guest PCI slot {}",
                slot_name(&slot)
            )));
        }
        let used: Vec<PciAddress> = (0..8)
            .map(|f| PciAddress {
                function: f,
                ..slot
            })
            .filter(|a| self.function_in_use(a))
            .collect();
        let refusals: Vec<String> = used
            .iter()
            .filter_map(|a| {
                self.cannot_unplug(a)
                    .map(|why| format!("function {a}: {why}"))
            })
            .collect();
        if !refusals.is_empty() {
            return Err(Error::new(
                ErrorCode::OperationFailed,
                format!(
                    "cannot hot unplug guest PCI slot {}: {}",
                    slot_name(&slot),
                    refusals.join("; ")
                ),
            ));
        }
        let multi = used.len() > 1;
        let items = used
            .iter()
            .map(|a| {
                let d = self
                    .inventory
                    .at(a)
                    .expect("cannot_unplug refuses functions without a device");
                SlotPlanItem {
                    addr: *a,
                    multifunction: multi && a.function == 0,
                    label: d.label.clone(),
                    xml: d.xml.clone(),
                }
            })
            .collect();
        Ok(SlotPlan {
            kind: SlotPlanKind::Detach,
            slot,
            items,
        })
    }

    /// Free every address of `plan`: after a detach plan's devices are gone, or when the
    /// hot-plug of an attach plan failed. Addresses already free are not an error.
    pub fn release_slot_plan(&mut self, plan: &SlotPlan) -> Result<()> {
        for item in &plan.items {
            self.check_in_topology(&item.addr)?;
        }
        for item in &plan.items {
            if let Some(ids) = &mut self.s390 {
                ids.release_zpci(&item.addr);
            }
            self.set.release(&item.addr);
            self.inventory.remove(&item.addr);
        }
        Ok(())
    }
}
