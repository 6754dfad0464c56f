//! Writing domain XML: the `<address>` and `<controller>` elements libvirt prints, and the
//! splicing of an assignment's results (addresses, filled-in controller values, added
//! controllers and devices) into the original text with [`super::edit`], every other byte
//! kept.

use super::ccw::{S390Assigned, Zpci};
use super::domain::{Controller, Device, DeviceAddress, DeviceKind, DomainDef, Multifunction};
use super::edit::{Editor, Edits};
use super::{Document, ElementId};
use crate::pci::PciAddress;
use crate::topology::PciModel;

/// How one PCI controller's options were completed, for the writer (public as part of
/// [`crate::assign::plan::Plan`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FilledDefaults {
    /// The controller's `model` attribute (a default model libvirt writes out).
    pub model: bool,
    pub model_name: bool,
    pub chassis_nr: bool,
    pub chassis: bool,
    pub port: bool,
    pub bus_nr: bool,
    /// pseries PHBs: `<target index>`.
    pub target_index: bool,
}

/// What the writer takes from a completed assignment.
pub(crate) struct Assigned<'p, 'a> {
    pub(crate) def: &'p DomainDef<'a>,
    /// Device indexes of the controllers in libvirt's order (the order they are written in).
    pub(crate) controller_order: &'p [usize],
    /// Per device: which PCI controller options were filled in.
    pub(crate) filled: &'p [FilledDefaults],
    /// Per device: the index attribute was filled in.
    pub(crate) index_filled: &'p [bool],
    /// s390x: per device, the CCW address and zPCI identifiers given (empty elsewhere).
    pub(crate) s390: &'p [S390Assigned],
    /// pseries: per device on spapr-vio, its `reg` (empty elsewhere).
    pub(crate) spapr_vio_regs: &'p [Option<u32>],
}

/// A short text built on the stack (numbers and attribute values), pushed in one go.
///
/// Kept instead of `write!`: with `write!` for the controllers' numbers and `<target>`
/// attributes (the address template below kept), one assignment of a q35 domain with 237
/// NICs took 6.8% more instructions (callgrind, `cargo bench --bench assign -- --once`), and
/// 21.6% with the address template written by `write!` too.
struct Small {
    buf: [u8; 24],
    len: usize,
}

impl Small {
    fn new() -> Small {
        Small {
            buf: [0; 24],
            len: 0,
        }
    }

    fn byte(&mut self, b: u8) {
        self.buf[self.len] = b;
        self.len += 1;
    }

    /// `value` in lower-case hexadecimal, zero-padded to `width` digits.
    fn hex(mut self, value: u32, width: usize) -> Small {
        let digits = (32 - value.leading_zeros()).div_ceil(4).max(1) as usize;
        for _ in digits..width {
            self.byte(b'0');
        }
        for i in (0..digits).rev() {
            self.byte(HEX_DIGITS[((value >> (4 * i)) & 0xf) as usize]);
        }
        self
    }

    /// `value` in decimal.
    fn dec(mut self, value: i64) -> Small {
        if value < 0 {
            self.byte(b'-');
        }
        let mut n = value.unsigned_abs();
        let mut digits = [0u8; 20];
        let mut len = 0;
        while n > 0 || len == 0 {
            digits[len] = b'0' + (n % 10) as u8;
            n /= 10;
            len += 1;
        }
        for &d in digits[..len].iter().rev() {
            self.byte(d);
        }
        self
    }

    fn text(mut self, text: &str) -> Small {
        for &b in text.as_bytes() {
            self.byte(b);
        }
        self
    }

    fn as_str(&self) -> &str {
        // Only ASCII is ever written.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }

    /// Append the text to `out` (ASCII, so byte by byte without checking it again).
    fn push_to(&self, out: &mut String) {
        for &b in &self.buf[..self.len] {
            out.push(char::from(b));
        }
    }
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Append `value` in lower-case hexadecimal, zero-padded to `width` digits.
fn push_hex(out: &mut String, value: u32, width: usize) {
    Small::new().hex(value, width).push_to(out);
}

/// Append `value` in decimal.
fn push_dec(out: &mut String, value: i64) {
    Small::new().dec(value).push_to(out);
}

/// `address type='pci' domain=... bus=... slot=... function=... [multifunction=...]` as
/// libvirt formats it, without the angle brackets.
pub(crate) fn pci_address_tag(addr: &PciAddress, multi: Multifunction) -> String {
    let mut tag = String::with_capacity(96);
    push_pci_address_tag(&mut tag, addr, multi);
    tag
}

fn push_pci_address_tag(out: &mut String, addr: &PciAddress, multi: Multifunction) {
    const TEMPLATE: &[u8; 72] =
        b"address type='pci' domain='0x0000' bus='0x00' slot='0x00' function='0x0'";
    if addr.domain <= 0xffff && addr.bus <= 0xff && addr.slot <= 0xff && addr.function <= 0xf {
        // The usual case: every number fits its width, so fill in the template.
        let mut tag = *TEMPLATE;
        let mut put = |at: usize, value: u32, width: usize| {
            for i in 0..width {
                tag[at + i] = HEX_DIGITS[((value >> (4 * (width - 1 - i))) & 0xf) as usize];
            }
        };
        put(29, addr.domain, 4);
        put(42, addr.bus, 2);
        put(54, addr.slot, 2);
        put(70, addr.function, 1);
        out.push_str(std::str::from_utf8(&tag).unwrap_or_default());
    } else {
        out.push_str("address type='pci' domain='0x");
        push_hex(out, addr.domain, 4);
        out.push_str("' bus='0x");
        push_hex(out, addr.bus, 2);
        out.push_str("' slot='0x");
        push_hex(out, addr.slot, 2);
        out.push_str("' function='0x");
        push_hex(out, addr.function, 1);
        out.push('\'');
    }
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
        DeviceAddress::Other(t) => Some(other_address_element(t)),
        _ => None,
    }
}

/// `<address type='T'/>`: an address type the planner chose without details (virtio-mmio).
fn other_address_element(address_type: &str) -> String {
    format!("<address type='{address_type}'/>")
}

/// A spapr-vio `reg` as libvirt prints it.
fn spapr_vio_reg_text(reg: u32) -> String {
    format!("0x{reg:08x}")
}

/// The `<address>` element of a device virtpci adds: its s390x CCW address or zPCI
/// identifiers, its spapr-vio `reg`, or its plain address.
fn new_address_element(
    address: &DeviceAddress,
    s390: S390Assigned,
    spapr_vio_reg: Option<u32>,
    indent: &str,
    unit: &str,
) -> Option<String> {
    if let Some(reg) = spapr_vio_reg {
        return Some(format!(
            "<address type='spapr-vio' reg='{}'/>",
            spapr_vio_reg_text(reg)
        ));
    }
    s390_address_element(address, s390, indent, unit).or_else(|| address_element(address))
}

/// The `<target .../>` attributes of a PCI controller, in libvirt's order: all of them, or
/// with `only`, those that were filled in. At most six; `count` says how many.
struct TargetAttributes {
    attrs: [(&'static str, Small); 6],
    count: usize,
}

impl TargetAttributes {
    fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> + '_ {
        self.attrs[..self.count]
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
    }

    fn is_empty(&self) -> bool {
        self.count == 0
    }
}

fn target_attributes(c: &Controller, only: Option<&FilledDefaults>) -> TargetAttributes {
    let mut out = TargetAttributes {
        attrs: std::array::from_fn(|_| ("", Small::new())),
        count: 0,
    };
    let Some((_, opts)) = &c.pci else {
        return out;
    };
    let mut add = |name: &'static str, value: Small| {
        out.attrs[out.count] = (name, value);
        out.count += 1;
    };
    let wanted = |filled: bool| only.is_none() || filled;
    if let Some(v) = opts
        .chassis_nr
        .filter(|_| wanted(only.is_some_and(|f| f.chassis_nr)))
    {
        add("chassisNr", Small::new().dec(v));
    }
    if let Some(v) = opts
        .chassis
        .filter(|_| wanted(only.is_some_and(|f| f.chassis)))
    {
        add("chassis", Small::new().dec(v));
    }
    if let Some(v) = opts.port.filter(|_| wanted(only.is_some_and(|f| f.port))) {
        add(
            "port",
            Small::new()
                .text("0x")
                .hex(u32::try_from(v).unwrap_or(0), 1),
        );
    }
    if let Some(v) = opts
        .bus_nr
        .filter(|_| wanted(only.is_some_and(|f| f.bus_nr)))
    {
        add("busNr", Small::new().dec(v));
    }
    if let Some(v) = opts
        .target_index
        .filter(|_| wanted(only.is_some_and(|f| f.target_index)))
    {
        add("index", Small::new().dec(v));
    }
    if only.is_none() {
        if let Some(h) = opts.hotplug {
            add("hotplug", Small::new().text(if h { "on" } else { "off" }));
        }
    }
    out
}

fn push_target_element(out: &mut String, attrs: &TargetAttributes) {
    out.push_str("<target");
    for (k, v) in &attrs.attrs[..attrs.count] {
        out.push(' ');
        out.push_str(k);
        out.push_str("='");
        v.push_to(out);
        out.push('\'');
    }
    out.push_str("/>");
}

/// A whole `<controller>` element for a controller virtpci added, indented at `indent` with
/// children one `unit` deeper.
fn push_controller_element(
    out: &mut String,
    c: &Controller,
    address: &DeviceAddress,
    (s390, spapr_vio_reg): (S390Assigned, Option<u32>),
    indent: &str,
    unit: &str,
) {
    out.push_str("<controller type='");
    out.push_str(c.ctype);
    out.push_str("' index='");
    push_dec(out, i64::from(c.index()));
    out.push('\'');
    let model = c.pci_model().map(PciModel::name).or(c.model);
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
            child_start(out);
            out.push_str("<model name='");
            out.push_str(name);
            out.push_str("'/>");
        }
        let attrs = target_attributes(c, None);
        if !attrs.is_empty() || opts.numa_node.is_some() {
            if !has_children {
                out.push('>');
                has_children = true;
            }
            child_start(out);
            push_target_element(out, &attrs);
            if let Some(node) = opts.numa_node {
                // `<target ...>` with a `<node>` child, as libvirt writes it.
                out.truncate(out.len() - 2);
                out.push('>');
                out.push('\n');
                out.push_str(indent);
                out.push_str(unit);
                out.push_str(unit);
                out.push_str("<node>");
                push_dec(out, node);
                out.push_str("</node>");
                child_start(out);
                out.push_str("</target>");
            }
        }
    }
    let element = new_address_element(
        address,
        s390,
        spapr_vio_reg,
        &format!("{indent}{unit}"),
        unit,
    );
    if let Some(element) = element {
        if !has_children {
            out.push('>');
            has_children = true;
        }
        child_start(out);
        out.push_str(&element);
    }
    if !has_children {
        out.push_str("/>");
        return;
    }
    out.push('\n');
    out.push_str(indent);
    out.push_str("</controller>");
}

/// What the writer needs to know about a device as it was in the input.
pub(crate) struct Original {
    pub(crate) element: Option<ElementId>,
    pub(crate) address_element: Option<ElementId>,
    pub(crate) address: DeviceAddress,
}

/// A whole element for a non-controller device virtpci added (the default memory balloon,
/// the video libvirt adds for graphics).
fn new_device_element(
    device: &Device,
    (s390, spapr_vio_reg): (S390Assigned, Option<u32>),
    indent: &str,
    unit: &str,
) -> Option<String> {
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
        // pseries: the serial or console libvirt pairs with a lone one.
        DeviceKind::Serial {
            target_type: Some(t),
        } => (
            "<serial type='pty'".to_string(),
            Some(format!(
                "<target type='{t}' port='0'><model name='spapr-vty'/></target>"
            )),
            "</serial>",
        ),
        DeviceKind::Console {
            target_type: Some(t),
        } => (
            "<console type='pty'".to_string(),
            Some(format!("<target type='{t}' port='0'/>")),
            "</console>",
        ),
        _ => return None,
    };
    let mut children: Vec<String> = model_child.into_iter().collect();
    let child_indent = format!("{indent}{unit}");
    children.extend(new_address_element(
        &device.address,
        s390,
        spapr_vio_reg,
        &child_indent,
        unit,
    ));
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
pub(crate) fn write_plan(doc: &Document<'_>, original: &[Original], plan: &Assigned) -> Edits {
    let mut ed = Editor::new(doc);
    // About 100 bytes per address written and 250 per controller added.
    let added = plan.def.devices.len() - original.len();
    ed.reserve(original.len() * 100 + added * 250, original.len() + added);
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
            if let (true, Some(model)) = (plan.filled[i].model, c.model) {
                // libvirt writes the model after the index; 'auto' is replaced.
                if doc.element(element).attr("model").is_some() {
                    ed.set_attr(element, "model", model);
                } else {
                    let after = if plan.index_filled[i] {
                        "type"
                    } else {
                        "index"
                    };
                    ed.insert_attr_after(element, after, "model", model);
                }
            }
            if let Some(port) = companion_start_port(c) {
                // libvirt gives a UHCI companion its EHCI master's ports (two each).
                if doc.child(element, "master").is_none() {
                    new_children.push(format!("<master startport='{port}'/>"));
                }
            }
            if c.pci_model().is_some() {
                let filled = &plan.filled[i];
                if filled.model_name {
                    if let Some((_, opts)) = &c.pci {
                        if let Some(name) = &opts.model_name {
                            let model = format!("<model name='{name}'/>");
                            // The name goes on the <model> that is read (the first one),
                            // so that a second assignment finds it; libvirt writes <model>
                            // before <target>.
                            match (doc.child(element, "model"), doc.child(element, "target")) {
                                (Some(existing), _) => ed.set_attr(existing, "name", name),
                                (None, Some(target)) => ed.insert_child_before(target, model),
                                (None, None) => new_children.push(model),
                            }
                        }
                    }
                }
                let attrs = target_attributes(c, Some(filled));
                if !attrs.is_empty() {
                    match doc.child(element, "target") {
                        Some(target) => {
                            for (k, v) in attrs.iter() {
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
        if let Some(reg) = plan.spapr_vio_regs.get(i).copied().flatten() {
            for child in new_children {
                ed.append_child(element, child);
            }
            write_spapr_vio_reg(doc, &mut ed, element, before, reg);
            continue;
        }
        let s390 = plan.s390.get(i).copied().unwrap_or_default();
        if write_s390_address(doc, &mut ed, element, before, &after.address, s390) {
            for child in new_children {
                ed.append_child(element, child);
            }
            continue;
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
                            ed.replace_start_tag_with(addr_el, |out| {
                                push_pci_address_tag(out, addr, *multi)
                            });
                        }
                        // An address libvirt drops (a USB controller of model 'none').
                        (DeviceAddress::Pci { .. }, DeviceAddress::None) => {
                            ed.remove_element(addr_el)
                        }
                        _ => {}
                    }
                }
            }
            None => {
                for child in new_children {
                    ed.append_child(element, child);
                }
                if before.address != after.address {
                    match &after.address {
                        DeviceAddress::Pci { addr, multi } => {
                            ed.append_child_with(element, |out| {
                                out.push('<');
                                push_pci_address_tag(out, addr, *multi);
                                out.push_str("/>");
                            })
                        }
                        DeviceAddress::Other(t) => {
                            ed.append_child(element, other_address_element(t))
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    write_new_devices(original.len(), plan, &mut ed);
    ed.into_edits()
}

/// The first port of the EHCI master a UHCI companion serves.
fn companion_start_port(c: &Controller) -> Option<u32> {
    match (c.ctype, c.model?) {
        ("usb", "ich9-uhci1") => Some(0),
        ("usb", "ich9-uhci2") => Some(2),
        ("usb", "ich9-uhci3") => Some(4),
        _ => None,
    }
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
fn write_new_devices(first_new: usize, plan: &Assigned, ed: &mut Editor<'_, '_>) {
    let devices = &plan.def.devices;
    let unit = ed.unit.clone();
    let order = &plan.controller_order;
    // For each position of the controller list, the next controller that is in the input.
    let mut next_existing = vec![None; order.len() + 1];
    for pos in (0..order.len()).rev() {
        next_existing[pos] = devices[order[pos]].element.or(next_existing[pos + 1]);
    }
    let mut previous = None;
    for (pos, &i) in order.iter().enumerate() {
        if i < first_new {
            previous = devices[i].element.or(previous);
            continue;
        }
        let Some(c) = devices[i].controller() else {
            continue;
        };
        let next = next_existing[pos + 1];
        let address = &devices[i].address;
        let extras = plan.extras(i);
        match (previous, next, plan.def.devices_element) {
            (Some(prev), _, _) => {
                let indent = ed.indent_of(prev).unwrap_or_default();
                ed.insert_after_with(prev, |out| {
                    push_controller_element(out, c, address, extras, indent, &unit)
                });
            }
            (None, Some(next), _) => {
                let indent = ed.indent_of(next).unwrap_or_default();
                ed.insert_before_with(next, |out| {
                    push_controller_element(out, c, address, extras, indent, &unit)
                });
            }
            (None, None, Some(devs)) => {
                let indent = ed.child_indent(devs).unwrap_or_default();
                ed.append_child_with(devs, |out| {
                    push_controller_element(out, c, address, extras, &indent, &unit)
                });
            }
            (None, None, None) => {}
        }
    }
    if let Some(devs) = plan.def.devices_element {
        let indent = ed.child_indent(devs).unwrap_or_default();
        for (i, device) in devices.iter().enumerate().skip(first_new) {
            if let Some(text) = new_device_element(device, plan.extras(i), &indent, &unit) {
                ed.append_child(devs, text);
            }
        }
    }
}

/// The whole `<address>` element of an s390x device whose CCW address or zPCI identifiers
/// virtpci gave, written at `indent` (its children one `unit` deeper); `None` otherwise.
fn s390_address_element(
    address: &DeviceAddress,
    s390: S390Assigned,
    indent: &str,
    unit: &str,
) -> Option<String> {
    if let Some(ccw) = s390.ccw {
        return Some(ccw.element());
    }
    let (DeviceAddress::Pci { addr, multi }, Some((uid, fid))) = (address, s390.zpci) else {
        return None;
    };
    let mut out = String::with_capacity(160);
    out.push('<');
    push_pci_address_tag(&mut out, addr, *multi);
    out.push_str(">\n");
    out.push_str(indent);
    out.push_str(unit);
    out.push_str(&Zpci::element(uid, fid));
    out.push('\n');
    out.push_str(indent);
    out.push_str("</address>");
    Some(out)
}

/// Write what virtpci gave an s390x device from the input: a CCW address (replacing an
/// address without numbers), or a PCI address with its zPCI identifiers. A `<zpci>` already
/// in the input gets the missing identifier and the PCI numbers are left to the usual path
/// (false). True when the address is written.
fn write_s390_address(
    doc: &Document<'_>,
    ed: &mut Editor<'_, '_>,
    element: ElementId,
    before: &Original,
    after: &DeviceAddress,
    s390: S390Assigned,
) -> bool {
    let zpci_element = before.address_element.and_then(|a| doc.child(a, "zpci"));
    if let (Some(z), None, Some((uid, fid))) = (zpci_element, s390.ccw, s390.zpci) {
        if doc.attr(z, "uid").is_none() {
            ed.set_attr(z, "uid", &format!("0x{uid:04x}"));
        }
        if doc.attr(z, "fid").is_none() {
            ed.set_attr(z, "fid", &format!("0x{fid:08x}"));
        }
        return false;
    }
    let indent = ed.child_indent(element).unwrap_or_default().into_owned();
    let unit = ed.unit.clone();
    let Some(text) = s390_address_element(after, s390, &indent, &unit) else {
        return false;
    };
    match before.address_element {
        Some(a) => ed.replace_element_with(a, |out| out.push_str(&text)),
        None => ed.append_child(element, text),
    }
    true
}

impl Assigned<'_, '_> {
    /// What virtpci gave device `i` beyond a PCI address: s390x ids, a spapr-vio `reg`.
    fn extras(&self, i: usize) -> (S390Assigned, Option<u32>) {
        (
            self.s390.get(i).copied().unwrap_or_default(),
            self.spapr_vio_regs.get(i).copied().flatten(),
        )
    }
}

/// Write the spapr-vio `reg` of a device from the input as libvirt prints it: into its
/// `<address type='spapr-vio'>`, or as a new address element when it had none.
fn write_spapr_vio_reg(
    doc: &Document<'_>,
    ed: &mut Editor<'_, '_>,
    element: ElementId,
    before: &Original,
    reg: u32,
) {
    let text = spapr_vio_reg_text(reg);
    match before.address_element {
        Some(a) if doc.attr(a, "reg") != Some(text.as_str()) => ed.set_attr(a, "reg", &text),
        Some(_) => {}
        None => ed.append_child(element, format!("<address type='spapr-vio' reg='{text}'/>")),
    }
}
