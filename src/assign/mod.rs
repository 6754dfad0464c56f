//! Guest PCI address assignment, identical to libvirt 9.0 for x86 `pc` and `q35` machines.
//!
//! [`assign_domain_xml`] takes a domain definition and returns it with every PCI address
//! filled in and the PCI controllers libvirt would add, keeping every other byte of the input.
//! [`set::AddressSet`] is the address bookkeeping, also used for hotplug by
//! [`HotplugAddressSet`].

pub mod explain;
pub mod hotplug;
pub mod plan;
pub mod set;
pub mod slot_plan;

pub use hotplug::HotplugAddressSet;
pub use plan::{plan, Plan};
pub use set::AddressSet;

use crate::error::Result;
use crate::pci::PciAddress;
use crate::topology::PciModel;
use crate::xml::domain::{Controller, Device, DeviceAddress, DeviceKind, DomainDef, Multifunction};
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

/// Choices beyond libvirt's behaviour for [`assign_domain_xml_with`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AssignOptions {
    /// Seed thread S1: on x86 machine types, a slot used without function 0 is an error
    /// instead of a warning (pSeries guests find such functions and stay accepted).
    pub strict_function0: bool,
}

/// Assign guest PCI addresses to the domain in `xml` as libvirt 9.0 does on define.
///
/// Errors carry libvirt's code and full message ("XML error: ...", "internal error: ...").
pub fn assign_domain_xml(xml: &str) -> Result<AssignOutput> {
    assign_domain_xml_with(xml, AssignOptions::default())
}

/// [`assign_domain_xml`] with `options`.
pub fn assign_domain_xml_with(xml: &str, options: AssignOptions) -> Result<AssignOutput> {
    let doc = Document::parse(xml)?;
    let def = DomainDef::from_document(&doc)?;
    let original: Vec<Original> = def
        .devices
        .iter()
        .map(|d| Original {
            element: d.element,
            address_element: d.address_element,
            address: d.address.clone(),
        })
        .collect();
    let mut plan = plan::plan(def)?;
    if options.strict_function0 {
        explain::check_function_zero_strict(&plan.def, &plan.set)?;
    }
    let more = explain::function_zero_warnings(&plan.def, &plan.set);
    plan.warnings.extend(more.into_iter().map(|w| w.message));
    let xml = write_plan(&doc, &original, &plan);
    Ok(AssignOutput {
        xml,
        warnings: plan.warnings,
    })
}

/// Append `value` in lower-case hexadecimal, zero-padded to `width` digits.
fn push_hex(out: &mut String, value: u32, width: usize) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 8];
    let mut n = value;
    let mut len = 0;
    while n > 0 || len == 0 {
        buf[len] = DIGITS[(n & 0xf) as usize];
        n >>= 4;
        len += 1;
    }
    for _ in len..width {
        out.push('0');
    }
    for &b in buf[..len].iter().rev() {
        out.push(b as char);
    }
}

/// Append `value` in decimal.
fn push_dec(out: &mut String, value: i64) {
    if value < 0 {
        out.push('-');
    }
    let mut n = value.unsigned_abs();
    let mut buf = [0u8; 20];
    let mut len = 0;
    while n > 0 || len == 0 {
        buf[len] = b'0' + (n % 10) as u8;
        n /= 10;
        len += 1;
    }
    for &b in buf[..len].iter().rev() {
        out.push(b as char);
    }
}

/// `address type='pci' domain=... bus=... slot=... function=... [multifunction=...]` as
/// libvirt formats it, without the angle brackets.
pub fn pci_address_tag(addr: &PciAddress, multi: Multifunction) -> String {
    let mut tag = String::with_capacity(96);
    push_pci_address_tag(&mut tag, addr, multi);
    tag
}

fn push_pci_address_tag(out: &mut String, addr: &PciAddress, multi: Multifunction) {
    out.push_str("address type='pci' domain='0x");
    push_hex(out, addr.domain, 4);
    out.push_str("' bus='0x");
    push_hex(out, addr.bus, 2);
    out.push_str("' slot='0x");
    push_hex(out, addr.slot, 2);
    out.push_str("' function='0x");
    push_hex(out, addr.function, 1);
    out.push('\'');
    match multi {
        Multifunction::On => out.push_str(" multifunction='on'"),
        Multifunction::Off => out.push_str(" multifunction='off'"),
        Multifunction::Absent => {}
    }
}

fn address_element(address: &DeviceAddress) -> Option<String> {
    match address {
        DeviceAddress::Pci { addr, multi } => {
            let mut out = String::with_capacity(100);
            out.push('<');
            push_pci_address_tag(&mut out, addr, *multi);
            out.push_str("/>");
            Some(out)
        }
        _ => None,
    }
}

/// The `<target .../>` attributes of a PCI controller, in libvirt's order: all of them, or
/// with `only`, those that were filled in.
fn target_attributes(
    c: &Controller,
    only: Option<&plan::FilledDefaults>,
) -> Vec<(&'static str, String)> {
    let Some((_, opts)) = &c.pci else {
        return Vec::new();
    };
    let wanted = |filled: bool| only.is_none() || filled;
    let dec = |v: i64| {
        let mut s = String::new();
        push_dec(&mut s, v);
        s
    };
    let mut attrs = Vec::new();
    if let Some(v) = opts
        .chassis_nr
        .filter(|_| wanted(only.is_some_and(|f| f.chassis_nr)))
    {
        attrs.push(("chassisNr", dec(v)));
    }
    if let Some(v) = opts
        .chassis
        .filter(|_| wanted(only.is_some_and(|f| f.chassis)))
    {
        attrs.push(("chassis", dec(v)));
    }
    if let Some(v) = opts.port.filter(|_| wanted(only.is_some_and(|f| f.port))) {
        let mut s = String::from("0x");
        push_hex(&mut s, u32::try_from(v).unwrap_or(0), 1);
        attrs.push(("port", s));
    }
    if let Some(v) = opts
        .bus_nr
        .filter(|_| wanted(only.is_some_and(|f| f.bus_nr)))
    {
        attrs.push(("busNr", dec(v)));
    }
    if only.is_none() {
        if let Some(h) = opts.hotplug {
            attrs.push(("hotplug", if h { "on" } else { "off" }.to_string()));
        }
    }
    attrs
}

fn push_target_element(out: &mut String, attrs: &[(&str, String)]) {
    out.push_str("<target");
    for (k, v) in attrs {
        out.push(' ');
        out.push_str(k);
        out.push_str("='");
        out.push_str(v);
        out.push('\'');
    }
    out.push_str("/>");
}

/// A whole `<controller>` element for a controller virtpci added, indented at `indent` with
/// children one `unit` deeper.
fn new_controller_element(
    c: &Controller,
    address: &DeviceAddress,
    indent: &str,
    unit: &str,
) -> String {
    let mut out = String::with_capacity(320);
    out.push_str("<controller type='");
    out.push_str(&c.ctype);
    out.push_str("' index='");
    push_dec(&mut out, i64::from(c.index()));
    out.push('\'');
    let model = c.pci_model().map(PciModel::name).or(c.model.as_deref());
    if let Some(model) = model {
        out.push_str(" model='");
        out.push_str(model);
        out.push('\'');
    }
    let child_start = |out: &mut String| {
        out.push('\n');
        out.push_str(indent);
        out.push_str(unit);
    };
    let mut has_children = false;
    if let Some((_, opts)) = &c.pci {
        if let Some(name) = &opts.model_name {
            out.push('>');
            has_children = true;
            child_start(&mut out);
            out.push_str("<model name='");
            out.push_str(name);
            out.push_str("'/>");
        }
        let attrs = target_attributes(c, None);
        if !attrs.is_empty() {
            if !has_children {
                out.push('>');
                has_children = true;
            }
            child_start(&mut out);
            push_target_element(&mut out, &attrs);
        }
    }
    if let DeviceAddress::Pci { addr, multi } = address {
        if !has_children {
            out.push('>');
            has_children = true;
        }
        child_start(&mut out);
        out.push('<');
        push_pci_address_tag(&mut out, addr, *multi);
        out.push_str("/>");
    }
    if !has_children {
        out.push_str("/>");
        return out;
    }
    out.push('\n');
    out.push_str(indent);
    out.push_str("</controller>");
    out
}

/// What the writer needs to know about a device as it was in the input.
struct Original {
    element: Option<crate::xml::ElementId>,
    address_element: Option<crate::xml::ElementId>,
    address: DeviceAddress,
}

/// A whole element for a non-controller device virtpci added (the default memory balloon,
/// the video libvirt adds for graphics).
fn new_device_element(device: &Device, indent: &str, unit: &str) -> Option<String> {
    let (open, model_child, close) = match &device.kind {
        DeviceKind::Memballoon { model } => (
            format!("<memballoon model='{model}'"),
            None,
            "</memballoon>",
        ),
        DeviceKind::Video { model, .. } => (
            "<video".to_string(),
            Some(format!(
                "<model type='{model}' vram='16384' heads='1' primary='yes'/>"
            )),
            "</video>",
        ),
        _ => return None,
    };
    let mut children: Vec<String> = model_child.into_iter().collect();
    children.extend(address_element(&device.address));
    if children.is_empty() {
        return Some(format!("{open}/>"));
    }
    let mut out = open;
    out.push('>');
    for child in children {
        out.push('\n');
        out.push_str(indent);
        out.push_str(unit);
        out.push_str(&child);
    }
    out.push('\n');
    out.push_str(indent);
    out.push_str(close);
    Some(out)
}

/// Splice the plan's results into the original text.
fn write_plan(doc: &Document<'_>, original: &[Original], plan: &Plan) -> String {
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
                            let mut target = String::new();
                            push_target_element(&mut target, &attrs);
                            new_children.push(target);
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
                // libvirt prints every PCI address in its own hex form, so an address the user
                // wrote as `slot='010'` (octal 8) comes back as `slot='0x08'`.
                let canonical = match &after.address {
                    DeviceAddress::Pci { addr, multi } => {
                        written_as_libvirt_does(doc, addr_el, addr, *multi)
                    }
                    _ => true,
                };
                if before.address != after.address || !canonical {
                    match (&before.address, &after.address) {
                        (
                            DeviceAddress::Pci { addr: a, .. },
                            DeviceAddress::Pci { addr: b, multi },
                        ) if a == b && canonical && before.address.present_pci().is_some() => {
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

/// Whether the `<address>` element `id` already reads exactly as libvirt would print `addr`.
fn written_as_libvirt_does(
    doc: &Document<'_>,
    id: crate::xml::ElementId,
    addr: &PciAddress,
    multi: Multifunction,
) -> bool {
    let el = doc.element(id);
    let mut text = String::with_capacity(8);
    let parts = [
        ("domain", addr.domain, 4),
        ("bus", addr.bus, 2),
        ("slot", addr.slot, 2),
        ("function", addr.function, 1),
    ];
    let numbers_match = parts.iter().all(|&(name, value, width)| {
        text.clear();
        text.push_str("0x");
        push_hex(&mut text, value, width);
        el.attr(name) == Some(text.as_str())
    });
    let multi_text = match multi {
        Multifunction::On => Some("on"),
        Multifunction::Off => Some("off"),
        Multifunction::Absent => None,
    };
    numbers_match && el.attr("multifunction") == multi_text
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
    if let Some(devs) = plan.def.devices_element {
        let indent = ed.child_indent(devs).unwrap_or_default();
        for device in &devices[first_new..] {
            if let Some(text) = new_device_element(device, &indent, &unit) {
                ed.append_child(devs, text);
            }
        }
    }
}
