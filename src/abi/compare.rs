//! Comparing one pair of devices (or a device without a partner) and naming each change.

use super::layout::{Entry, Layout};
use super::pair::Pair;
use super::report::{AbiChange, ChangeKind, Position};
use crate::pci::PciAddress;
use crate::xml::ccw::Zpci;
use crate::xml::domain::Multifunction;

fn position(e: &Entry) -> Position {
    Position {
        tag: e.tag.clone(),
        ordinal: e.ordinal,
        controller: e.controller.clone(),
    }
}

fn multi_name(m: Multifunction) -> Option<String> {
    match m {
        Multifunction::Absent => None,
        Multifunction::On => Some("on".into()),
        Multifunction::Off => Some("off".into()),
    }
}

/// The other functions used in the slot of `addr` in `layout`.
fn siblings(layout: &Layout, addr: PciAddress) -> Vec<String> {
    layout
        .entries
        .iter()
        .filter_map(|e| e.address.pci().map(|(a, _)| (a, e)))
        .filter(|(a, _)| a.same_slot(&addr) && a.function != addr.function)
        .map(|(a, e)| format!("{} at {a}", e.label))
        .collect()
}

/// Where the guest sees a device: its address, and on s390x the zPCI identifiers of a device
/// on PCI (as `--explain` writes them).
fn place(e: &Entry) -> String {
    let mut out = e.address.to_string();
    if let Some(uid) = e.zpci.uid {
        out.push_str(&format!(" zpci uid {}", uid_text(uid)));
    }
    if let Some(fid) = e.zpci.fid {
        out.push_str(&format!(" fid {}", fid_text(fid)));
    }
    out
}

/// The identifiers as libvirt prints them in `<zpci>`.
fn uid_text(uid: u32) -> String {
    format!("0x{uid:04x}")
}

fn fid_text(fid: u32) -> String {
    format!("0x{fid:08x}")
}

/// The zPCI identifiers that differ between `a` and `b`: (name, old, new).
type ZpciDiff = (&'static str, Option<String>, Option<String>);

fn zpci_changes(a: Zpci, b: Zpci) -> Vec<ZpciDiff> {
    let mut out = Vec::new();
    if a.uid != b.uid {
        out.push(("uid", a.uid.map(uid_text), b.uid.map(uid_text)));
    }
    if a.fid != b.fid {
        out.push(("fid", a.fid.map(fid_text), b.fid.map(fid_text)));
    }
    out
}

pub(super) fn compare(old: &Layout, new: &Layout, pair: Pair, changes: &mut Vec<AbiChange>) {
    let change = |kind, device: &str, o: Option<&Entry>, n: Option<&Entry>| AbiChange {
        kind,
        device: device.to_string(),
        attribute: None,
        old: None,
        new: None,
        guest_visible: true,
        note: None,
        old_position: o.map(position),
        new_position: n.map(position),
    };
    match pair {
        (Some(o), None) => {
            let e = &old.entries[o];
            if !e.matters() {
                return;
            }
            let kind = if e.pci_controller.is_some() {
                ChangeKind::ControllerRemoved
            } else {
                ChangeKind::DeviceRemoved
            };
            let mut c = change(kind, &e.label, Some(e), None);
            c.old = Some(place(e));
            changes.push(c);
        }
        (None, Some(n)) => {
            let e = &new.entries[n];
            if !e.matters() {
                return;
            }
            let kind = if e.pci_controller.is_some() {
                ChangeKind::ControllerAdded
            } else {
                ChangeKind::DeviceAdded
            };
            let mut c = change(kind, &e.label, None, Some(e));
            c.new = Some(place(e));
            if e.address.is_placed() && !e.address_written {
                c.note = Some(if e.written {
                    "address assigned automatically".into()
                } else {
                    "added by address assignment".into()
                });
            }
            changes.push(c);
        }
        (Some(o), Some(n)) => {
            let (a, b) = (&old.entries[o], &new.entries[n]);
            if !a.matters() && !b.matters() {
                return;
            }
            let label = b.label.as_str();
            if let (Some(x), Some(y)) = (&a.pci_controller, &b.pci_controller) {
                if x.index != y.index {
                    let mut c = change(ChangeKind::ControllerRenumbered, label, Some(a), Some(b));
                    c.old = Some(x.index.to_string());
                    c.new = Some(y.index.to_string());
                    c.note = Some("devices behind it change bus number".into());
                    changes.push(c);
                }
                if x.model != y.model {
                    let mut c = change(ChangeKind::ControllerModel, label, Some(a), Some(b));
                    c.old = Some(x.model.name().into());
                    c.new = Some(y.model.name().into());
                    changes.push(c);
                }
                if x.model_name != y.model_name {
                    let mut c = change(ChangeKind::ControllerModelName, label, Some(a), Some(b));
                    c.old = x.model_name.clone();
                    c.new = y.model_name.clone();
                    changes.push(c);
                }
                for ((name, va), (_, vb)) in x.target.iter().zip(&y.target) {
                    if va != vb {
                        let mut c = change(ChangeKind::ControllerTarget, label, Some(a), Some(b));
                        c.attribute = Some((*name).to_string());
                        c.old = va.clone();
                        c.new = vb.clone();
                        changes.push(c);
                    }
                }
            } else if a.model != b.model && (a.address.is_placed() || b.address.is_placed()) {
                let mut c = change(ChangeKind::DeviceModel, label, Some(a), Some(b));
                c.old = a.model.clone();
                c.new = b.model.clone();
                changes.push(c);
            }
            match (a.address.pci(), b.address.pci()) {
                (Some((pa, ma)), Some((pb, mb))) => {
                    if pa != pb {
                        let mut c = change(ChangeKind::AddressMoved, label, Some(a), Some(b));
                        c.old = Some(pa.to_string());
                        c.new = Some(pb.to_string());
                        if !a.address_written && !b.address_written {
                            c.note = Some(
                                "assigned automatically in both definitions; write the old \
                                 address into the new definition to keep it"
                                    .into(),
                            );
                        }
                        changes.push(c);
                    }
                    let (on_a, on_b) = (ma == Multifunction::On, mb == Multifunction::On);
                    if on_a != on_b {
                        let mut c =
                            change(ChangeKind::MultifunctionFlipped, label, Some(a), Some(b));
                        c.old = Some(if on_a { "on" } else { "off" }.into());
                        c.new = Some(if on_b { "on" } else { "off" }.into());
                        c.note = multifunction_note(old, new, a, b, pa, pb, on_a);
                        changes.push(c);
                    } else if ma != mb {
                        let mut c =
                            change(ChangeKind::MultifunctionSpelling, label, Some(a), Some(b));
                        c.old = multi_name(ma);
                        c.new = multi_name(mb);
                        c.guest_visible = false;
                        changes.push(c);
                    }
                    for (name, old_id, new_id) in zpci_changes(a.zpci, b.zpci) {
                        let mut c = change(ChangeKind::ZpciChanged, label, Some(a), Some(b));
                        c.attribute = Some(name.to_string());
                        c.old = old_id;
                        c.new = new_id;
                        if !a.zpci_written && !b.zpci_written {
                            c.note = Some(
                                "assigned automatically in both definitions; write the old \
                                 <zpci> into the new definition to keep it"
                                    .into(),
                            );
                        }
                        changes.push(c);
                    }
                }
                (None, None)
                    if a.address.ccw().is_some()
                        && b.address.ccw().is_some()
                        && a.address != b.address =>
                {
                    let mut c = change(ChangeKind::AddressMoved, label, Some(a), Some(b));
                    c.old = Some(a.address.to_string());
                    c.new = Some(b.address.to_string());
                    if !a.address_written && !b.address_written {
                        c.note = Some(
                            "assigned automatically in both definitions; write the old CCW \
                             address into the new definition to keep it"
                                .into(),
                        );
                    }
                    changes.push(c);
                }
                _ if a.address != b.address => {
                    let mut c = change(ChangeKind::AddressType, label, Some(a), Some(b));
                    c.old = Some(place(a));
                    c.new = Some(place(b));
                    changes.push(c);
                }
                _ => {}
            }
        }
        (None, None) => {}
    }
}

/// Explain a flipped multifunction bit: the silent flip when it was never written.
fn multifunction_note(
    old: &Layout,
    new: &Layout,
    a: &Entry,
    b: &Entry,
    pa: PciAddress,
    pb: PciAddress,
    on_before: bool,
) -> Option<String> {
    if on_before {
        let written_on = b.written_multi == Some(Multifunction::On);
        let implicit_before = a.written_multi != Some(Multifunction::On);
        let gone = siblings(old, pa);
        let now = siblings(new, pb);
        if !written_on && now.is_empty() {
            let why = if implicit_before {
                "was set automatically"
            } else {
                "was written"
            };
            return Some(format!(
                "the bit {why} because {} used the slot; the new definition has no other \
                 function there, so the bit turns off: write multifunction='on' to keep it",
                if gone.is_empty() {
                    "other functions".to_string()
                } else {
                    gone.join(", ")
                }
            ));
        }
        None
    } else {
        let now = siblings(new, pb);
        if !now.is_empty() && b.written_multi != Some(Multifunction::On) {
            return Some(format!(
                "set automatically because {} now use(s) the slot",
                now.join(", ")
            ));
        }
        None
    }
}
