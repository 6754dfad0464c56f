//! Guest PCI address assignment, identical to libvirt 9.0 for x86 `pc` and `q35` machines.
//!
//! [`assign_domain_xml`] takes a domain definition and returns it with every PCI address
//! filled in and the PCI controllers libvirt would add, keeping every other byte of the input.
//! [`set::AddressSet`] is the address bookkeeping, also used for hotplug by
//! [`HotplugAddressSet`].

pub mod hotplug;
pub mod plan;
pub mod set;

pub use hotplug::HotplugAddressSet;
pub use plan::{plan, Plan};
pub use set::AddressSet;

use crate::error::Result;
use crate::pci::PciAddress;
use crate::xml::domain::{Controller, Device, DeviceAddress, DomainDef, Multifunction};
use crate::xml::edit::Editor;
use crate::xml::Document;

/// The result of [`assign_domain_xml`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignOutput {
    /// The input with addresses and controllers added.
    pub xml: String,
    /// Things worth telling the user that do not stop the assignment, e.g. a device that has
    /// a PCI address although it is not a PCI device, or a slot used without function 0.
    pub warnings: Vec<String>,
}

/// Assign guest PCI addresses to the domain in `xml` as libvirt 9.0 does on define.
///
/// Errors carry libvirt's code and full message ("XML error: ...", "internal error: ...").
pub fn assign_domain_xml(xml: &str) -> Result<AssignOutput> {
    let doc = Document::parse(xml)?;
    let def = DomainDef::from_document(&doc)?;
    let original: Vec<Device> = def.devices.clone();
    let mut plan = plan::plan(def)?;
    plan.warnings.extend(slots_without_function_zero(&plan.def));
    let xml = write_plan(&doc, &original, &plan);
    Ok(AssignOutput {
        xml,
        warnings: plan.warnings,
    })
}

/// Seed thread S1: libvirt accepts a slot whose function 0 is unused; guests may not find it.
fn slots_without_function_zero(def: &DomainDef) -> Vec<String> {
    let used: Vec<PciAddress> = def
        .devices
        .iter()
        .filter_map(|d| d.address.present_pci())
        .collect();
    let mut warnings = Vec::new();
    let mut seen = Vec::new();
    for a in &used {
        let slot = PciAddress { function: 0, ..*a };
        if a.function != 0 && !used.contains(&slot) && !seen.contains(&slot) {
            seen.push(slot);
            warnings.push(format!(
                "guest PCI slot {:04x}:{:02x}:{:02x} is used without function 0; some guests \
                 (Linux on x86) will not scan its other functions",
                slot.domain, slot.bus, slot.slot
            ));
        }
    }
    warnings
}

/// `<address type='pci' .../>` as libvirt formats it, without the angle brackets.
pub fn pci_address_tag(addr: &PciAddress, multi: Multifunction) -> String {
    let mut tag = format!(
        "address type='pci' domain='0x{:04x}' bus='0x{:02x}' slot='0x{:02x}' function='0x{:x}'",
        addr.domain, addr.bus, addr.slot, addr.function
    );
    match multi {
        Multifunction::On => tag.push_str(" multifunction='on'"),
        Multifunction::Off => tag.push_str(" multifunction='off'"),
        Multifunction::Absent => {}
    }
    tag
}

fn address_element(address: &DeviceAddress) -> Option<String> {
    match address {
        DeviceAddress::Pci { addr, multi } => Some(format!("<{}/>", pci_address_tag(addr, *multi))),
        _ => None,
    }
}

/// The `<target .../>` attributes of a PCI controller, in libvirt's order.
fn target_attributes(
    c: &Controller,
    only: Option<&plan::FilledDefaults>,
) -> Vec<(&'static str, String)> {
    let Some((_, opts)) = &c.pci else {
        return Vec::new();
    };
    let wanted = |filled: bool| only.is_none() || filled;
    let mut attrs = Vec::new();
    if let Some(v) = opts
        .chassis_nr
        .filter(|_| wanted(only.is_some_and(|f| f.chassis_nr)))
    {
        attrs.push(("chassisNr", v.to_string()));
    }
    if let Some(v) = opts
        .chassis
        .filter(|_| wanted(only.is_some_and(|f| f.chassis)))
    {
        attrs.push(("chassis", v.to_string()));
    }
    if let Some(v) = opts.port.filter(|_| wanted(only.is_some_and(|f| f.port))) {
        attrs.push(("port", format!("0x{v:x}")));
    }
    if let Some(v) = opts
        .bus_nr
        .filter(|_| wanted(only.is_some_and(|f| f.bus_nr)))
    {
        attrs.push(("busNr", v.to_string()));
    }
    if only.is_none() {
        if let Some(h) = opts.hotplug {
            attrs.push(("hotplug", if h { "on" } else { "off" }.to_string()));
        }
    }
    attrs
}

/// A whole `<controller>` element for a controller virtpci added, indented at `indent` with
/// children one `unit` deeper.
fn new_controller_element(
    c: &Controller,
    address: &DeviceAddress,
    indent: &str,
    unit: &str,
) -> String {
    let model = c.pci_model().map_or_else(
        || c.model.clone().unwrap_or_default(),
        |m| m.name().to_string(),
    );
    let head = format!(
        "<controller type='{}' index='{}' model='{}'",
        c.ctype,
        c.index(),
        model
    );
    let mut children = Vec::new();
    if let Some((_, opts)) = &c.pci {
        if let Some(name) = &opts.model_name {
            children.push(format!("<model name='{name}'/>"));
        }
        let attrs = target_attributes(c, None);
        if !attrs.is_empty() {
            let body: Vec<String> = attrs.iter().map(|(k, v)| format!("{k}='{v}'")).collect();
            children.push(format!("<target {}/>", body.join(" ")));
        }
    }
    children.extend(address_element(address));
    if children.is_empty() {
        return format!("{head}/>");
    }
    let mut out = format!("{head}>");
    for child in children {
        out.push('\n');
        out.push_str(indent);
        out.push_str(unit);
        out.push_str(&child);
    }
    out.push('\n');
    out.push_str(indent);
    out.push_str("</controller>");
    out
}

/// Splice the plan's results into the original text.
fn write_plan(doc: &Document<'_>, original: &[Device], plan: &Plan) -> String {
    let mut ed = Editor::new(doc);
    for (i, before) in original.iter().enumerate() {
        let after = &plan.def.devices[i];
        let Some(element) = before.element else {
            continue;
        };
        let mut new_children: Vec<String> = Vec::new();
        if let Some(c) = after.controller() {
            if plan.index_filled[i] {
                ed.insert_attr_after(element, "type", "index", &c.index().to_string());
            }
            if c.pci_model().is_some() {
                let filled = &plan.filled[i];
                if filled.model_name {
                    if let Some((_, opts)) = &c.pci {
                        if let Some(name) = &opts.model_name {
                            let model = format!("<model name='{name}'/>");
                            // libvirt writes <model> before <target>.
                            match doc.child(element, "target") {
                                Some(target) => ed.insert_child_before(target, model),
                                None => new_children.push(model),
                            }
                        }
                    }
                }
                let attrs = target_attributes(c, Some(filled));
                if !attrs.is_empty() {
                    match doc.child(element, "target") {
                        Some(target) => {
                            for (k, v) in &attrs {
                                ed.set_attr(target, k, v);
                            }
                        }
                        None => {
                            let body: Vec<String> =
                                attrs.iter().map(|(k, v)| format!("{k}='{v}'")).collect();
                            new_children.push(format!("<target {}/>", body.join(" ")));
                        }
                    }
                }
            }
        }
        match before.address_element {
            Some(addr_el) => {
                for child in new_children.drain(..) {
                    ed.insert_child_before(addr_el, child);
                }
                if before.address != after.address {
                    match (&before.address, &after.address) {
                        (
                            DeviceAddress::Pci { addr: a, .. },
                            DeviceAddress::Pci { addr: b, multi },
                        ) if a == b && before.address.present_pci().is_some() => {
                            let value = match multi {
                                Multifunction::On => "on",
                                Multifunction::Off => "off",
                                Multifunction::Absent => continue,
                            };
                            ed.set_attr(addr_el, "multifunction", value);
                        }
                        (_, DeviceAddress::Pci { addr, multi }) => {
                            ed.replace_start_tag(addr_el, &pci_address_tag(addr, *multi));
                        }
                        _ => {}
                    }
                }
            }
            None => {
                if before.address != after.address {
                    new_children.extend(address_element(&after.address));
                }
                for child in new_children {
                    ed.append_child(element, child);
                }
            }
        }
    }
    write_new_devices(original.len(), plan, &mut ed);
    ed.finish()
}

/// Place the devices virtpci added: controllers where libvirt lists them, after the
/// previous controller that exists in the input (or before the next one).
fn write_new_devices(first_new: usize, plan: &Plan, ed: &mut Editor<'_, '_>) {
    let devices = &plan.def.devices;
    let unit = ed.unit.clone();
    let order = &plan.controller_order;
    for (pos, &i) in order.iter().enumerate() {
        if i < first_new {
            continue;
        }
        let Some(c) = devices[i].controller() else {
            continue;
        };
        let previous = order[..pos].iter().rev().find_map(|&j| devices[j].element);
        let next = order[pos + 1..].iter().find_map(|&j| devices[j].element);
        let anchor_indent = |id| ed.indent_of(id).unwrap_or_default().to_string();
        match (previous, next, plan.def.devices_element) {
            (Some(prev), _, _) => {
                let indent = anchor_indent(prev);
                let text = new_controller_element(c, &devices[i].address, &indent, &unit);
                ed.insert_after(prev, text);
            }
            (None, Some(next), _) => {
                let indent = anchor_indent(next);
                let text = new_controller_element(c, &devices[i].address, &indent, &unit);
                ed.insert_before(next, text);
            }
            (None, None, Some(devs)) => {
                let indent = ed.child_indent(devs).unwrap_or_default();
                let text = new_controller_element(c, &devices[i].address, &indent, &unit);
                ed.append_child(devs, text);
            }
            (None, None, None) => {}
        }
    }
}
