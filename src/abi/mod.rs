//! ABI stability of a guest's PCI layout: every guest-visible PCI change between two
//! definitions of the same guest.
//!
//! Both definitions are compared as the guest gets them ([`LayoutMode::Effective`]): each is
//! run through libvirt's address assignment first, so an address or a multifunction bit that
//! assignment fills in counts exactly as if it had been written. That is what makes a silent
//! multifunction flip visible: a definition that never wrote `multifunction='on'` still gave
//! function 0 the bit while a sibling used the slot, and loses it when the sibling is removed.
//! A saved definition that wrote `multifunction='on'` keeps the bit, and no change is
//! reported.
//! [`LayoutMode::AsGiven`] compares the definitions exactly as written instead.
//!
//! Devices are paired by identity, not by position: user alias, then MAC address, then disk
//! or filesystem target, then host source address (hostdevs), then controller type and index;
//! devices without any of these (videos, balloons, ...) are paired by kind, those at the same
//! address first, then in document order. PCI controllers are paired by alias, then by index
//! and model, then by model and address (a renumbered controller), then by index.

pub mod layout;

use crate::error::{quote, Error, ErrorCode, Result};
use crate::xml::domain::Multifunction;
use layout::{read_layout, Entry, Key, Layout};
pub use layout::{ControllerId, LayoutMode};
use serde::Serialize;

/// What changed about one device or controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    /// A device with a PCI address (or an unassigned host device) is only in the old
    /// definition.
    DeviceRemoved,
    /// A device with a PCI address is only in the new definition.
    DeviceAdded,
    /// The device's guest PCI address changed.
    AddressMoved,
    /// The device went from a PCI address to none or `unassigned`, or the other way.
    AddressType,
    /// The multifunction bit of the device's function changed (the guest sees it).
    MultifunctionFlipped,
    /// `multifunction` changed between absent and `off`: the same bit, not guest-visible.
    MultifunctionSpelling,
    /// The device model the guest sees changed (NIC model, controller model, video type).
    DeviceModel,
    /// A PCI controller is only in the old definition.
    ControllerRemoved,
    /// A PCI controller is only in the new definition.
    ControllerAdded,
    /// A PCI controller's index changed.
    ControllerRenumbered,
    /// A PCI controller's model changed.
    ControllerModel,
    /// A PCI controller's `<model name>` changed.
    ControllerModelName,
    /// A PCI controller's `<target>` value changed (chassisNr, chassis, port, busNr, index,
    /// hotplug, node); the attribute is in [`AbiChange::attribute`].
    ControllerTarget,
    /// The machine type changed.
    Machine,
}

impl ChangeKind {
    fn describe(self) -> &'static str {
        match self {
            ChangeKind::DeviceRemoved => "removed",
            ChangeKind::DeviceAdded => "added",
            ChangeKind::AddressMoved => "address moved",
            ChangeKind::AddressType => "address changed",
            ChangeKind::MultifunctionFlipped => "multifunction bit flipped",
            ChangeKind::MultifunctionSpelling => "multifunction attribute respelled",
            ChangeKind::DeviceModel => "model changed",
            ChangeKind::ControllerRemoved => "controller removed",
            ChangeKind::ControllerAdded => "controller added",
            ChangeKind::ControllerRenumbered => "controller renumbered",
            ChangeKind::ControllerModel => "controller model changed",
            ChangeKind::ControllerModelName => "controller model name changed",
            ChangeKind::ControllerTarget => "controller target changed",
            ChangeKind::Machine => "machine type changed",
        }
    }
}

/// Where a device is in one definition: its element name and 1-based position among the
/// `<devices>` children with that name (as `pci-layout` counts them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Position {
    pub tag: String,
    pub ordinal: usize,
    /// For a controller: its type, index and model (PCI controllers are known by index).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub controller: Option<ControllerId>,
}

/// One guest-visible (or, for [`ChangeKind::MultifunctionSpelling`], merely written) change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AbiChange {
    pub kind: ChangeKind,
    /// The device, as named in the new definition when it is there, else in the old one.
    pub device: String,
    /// For [`ChangeKind::ControllerTarget`], the `<target>` attribute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attribute: Option<String>,
    /// The old value (`None` for an addition or an absent value).
    pub old: Option<String>,
    /// The new value (`None` for a removal or an absent value).
    pub new: Option<String>,
    /// Whether the guest can tell the difference.
    pub guest_visible: bool,
    /// Why it happened or how to avoid it, when that is not obvious.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The device in the old definition, if it is there.
    pub old_position: Option<Position>,
    /// The device in the new definition, if it is there.
    pub new_position: Option<Position>,
}

impl std::fmt::Display for AbiChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.device, self.kind.describe())?;
        if let Some(attr) = &self.attribute {
            write!(f, " ({attr})")?;
        }
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "absent".to_string());
        match self.kind {
            ChangeKind::DeviceAdded | ChangeKind::ControllerAdded => {
                write!(f, " at {}", show(&self.new))?
            }
            ChangeKind::DeviceRemoved | ChangeKind::ControllerRemoved => {
                write!(f, " from {}", show(&self.old))?
            }
            _ => write!(f, ": {} -> {}", show(&self.old), show(&self.new))?,
        }
        if !self.guest_visible {
            f.write_str(" [not guest-visible]")?;
        }
        if let Some(note) = &self.note {
            write!(f, " ({note})")?;
        }
        Ok(())
    }
}

/// How to compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbiOptions {
    pub mode: LayoutMode,
}

impl Default for AbiOptions {
    fn default() -> AbiOptions {
        AbiOptions {
            mode: LayoutMode::Effective,
        }
    }
}

/// The result of [`check_abi_stability`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AbiReport {
    /// The guest's name (the new definition's).
    pub guest: Option<String>,
    /// `effective` or `as-given`.
    pub mode: &'static str,
    pub changes: Vec<AbiChange>,
}

impl AbiReport {
    /// The changes the guest can tell.
    pub fn guest_visible(&self) -> impl Iterator<Item = &AbiChange> {
        self.changes.iter().filter(|c| c.guest_visible)
    }

    /// No guest-visible change.
    pub fn is_stable(&self) -> bool {
        self.guest_visible().next().is_none()
    }

    /// A plain-text report: a summary line, then one line per change.
    pub fn to_text(&self) -> String {
        let visible = self.guest_visible().count();
        let guest = self
            .guest
            .as_deref()
            .map(|n| format!("guest '{n}'"))
            .unwrap_or_else(|| "the guest".to_string());
        let mut out = if visible == 0 {
            format!("{guest}: PCI ABI unchanged")
        } else {
            format!("{guest}: {visible} guest-visible PCI change(s)")
        };
        let hidden = self.changes.len() - visible;
        if hidden > 0 {
            out.push_str(&format!(", {hidden} not guest-visible"));
        }
        out.push_str(&format!(" ({} layouts compared)\n", self.mode));
        for c in &self.changes {
            out.push_str("  ");
            out.push_str(&c.to_string());
            out.push('\n');
        }
        out
    }

    /// The report as JSON (`{"guest":..,"mode":..,"stable":..,"changes":[..]}`).
    pub fn to_json(&self) -> String {
        #[derive(Serialize)]
        struct Json<'a> {
            #[serde(flatten)]
            report: &'a AbiReport,
            stable: bool,
            guest_visible_changes: usize,
        }
        serde_json::to_string_pretty(&Json {
            report: self,
            stable: self.is_stable(),
            guest_visible_changes: self.guest_visible().count(),
        })
        .unwrap_or_default()
    }

    /// The strict-mode error: every guest-visible change, one per line.
    pub fn strict_error(&self) -> Option<Error> {
        let lines: Vec<String> = self.guest_visible().map(|c| c.to_string()).collect();
        if lines.is_empty() {
            return None;
        }
        Some(Error::new(
            ErrorCode::ConfigUnsupported,
            format!(
                "guest PCI ABI changed ({} change(s)): {}",
                lines.len(),
                lines.join("; ")
            ),
        ))
    }
}

/// Every guest-visible PCI change between `old_xml` and `new_xml`, two definitions of the
/// same guest.
///
/// Errors: either definition is not valid (the parser's or the assignment's error, naming
/// which one after libvirt's prefix: "XML error: old definition: ..."), or they describe different guests (UUIDs differ, or there is no UUID on
/// one side and the names differ): `VIRTPCI_ERR_CONFIG_UNSUPPORTED`, worded as libvirt's ABI
/// check ("Target domain uuid ... does not match source ...").
pub fn check_abi_stability(old_xml: &str, new_xml: &str, options: AbiOptions) -> Result<AbiReport> {
    let old = read_layout(old_xml, options.mode).map_err(|e| e.context("old definition"))?;
    let new = read_layout(new_xml, options.mode).map_err(|e| e.context("new definition"))?;
    same_guest(&old, &new)?;
    let mut changes = Vec::new();
    if old.machine != new.machine {
        changes.push(AbiChange {
            kind: ChangeKind::Machine,
            device: "machine".into(),
            attribute: None,
            old: old.machine.clone(),
            new: new.machine.clone(),
            guest_visible: true,
            note: None,
            old_position: None,
            new_position: None,
        });
    }
    let pairs = pair_entries(&old.entries, &new.entries);
    for pair in pairs {
        compare(&old, &new, pair, &mut changes);
    }
    Ok(AbiReport {
        guest: new.name.clone().or(old.name.clone()),
        mode: match options.mode {
            LayoutMode::Effective => "effective",
            LayoutMode::AsGiven => "as-given",
        },
        changes,
    })
}

fn normalise_uuid(uuid: &str) -> String {
    uuid.chars()
        .filter(|c| *c != '-')
        .collect::<String>()
        .to_ascii_lowercase()
}

fn same_guest(old: &Layout, new: &Layout) -> Result<()> {
    match (&old.uuid, &new.uuid) {
        (Some(a), Some(b)) => {
            if normalise_uuid(a) != normalise_uuid(b) {
                return Err(Error::config_unsupported(format!(
                    "Target domain uuid {} does not match source {}: the two definitions \
                     describe different guests",
                    quote(b),
                    quote(a)
                )));
            }
        }
        _ => {
            if let (Some(a), Some(b)) = (&old.name, &new.name) {
                if a != b {
                    return Err(Error::config_unsupported(format!(
                        "Target domain name '{}' does not match source '{}': the two \
                         definitions describe different guests (give both the same <uuid> to \
                         compare a renamed guest)",
                        quote(b),
                        quote(a)
                    )));
                }
            }
        }
    }
    Ok(())
}

/// A rule saying two entries are the same device.
type SameDevice = dyn Fn(&Entry, &Entry) -> bool;

/// A pairing of old and new entries (indexes into each layout's `entries`).
type Pair = (Option<usize>, Option<usize>);

/// Pair the devices of two layouts by identity (see the module documentation).
pub fn pair_entries(old: &[Entry], new: &[Entry]) -> Vec<(Option<usize>, Option<usize>)> {
    let mut old_taken = vec![false; old.len()];
    let mut new_taken = vec![false; new.len()];
    let mut pairs: Vec<Pair> = Vec::new();
    let mut link = |o: usize, n: usize, ot: &mut Vec<bool>, nt: &mut Vec<bool>| {
        ot[o] = true;
        nt[n] = true;
        pairs.push((Some(o), Some(n)));
    };
    // PCI controllers.
    let pci_rounds: [&SameDevice; 4] = [
        &|a, b| a.key(0).is_some() && a.key(0) == b.key(0),
        &|a, b| {
            let (x, y) = (
                a.pci_controller.as_ref().unwrap(),
                b.pci_controller.as_ref().unwrap(),
            );
            x.index == y.index && x.model == y.model
        },
        &|a, b| {
            a.pci_controller.as_ref().unwrap().model == b.pci_controller.as_ref().unwrap().model
                && a.address.is_pci()
                && a.address.pci().map(|p| p.0) == b.address.pci().map(|p| p.0)
        },
        &|a, b| {
            a.pci_controller.as_ref().unwrap().index == b.pci_controller.as_ref().unwrap().index
        },
    ];
    for round in pci_rounds {
        for o in 0..old.len() {
            if old_taken[o] || old[o].pci_controller.is_none() {
                continue;
            }
            let found = (0..new.len()).find(|&n| {
                !new_taken[n] && new[n].pci_controller.is_some() && round(&old[o], &new[n])
            });
            if let Some(n) = found {
                link(o, n, &mut old_taken, &mut new_taken);
            }
        }
    }
    // Other devices: identity keys, round by round.
    for round in 0..Key::ROUNDS {
        for o in 0..old.len() {
            if old_taken[o] || old[o].pci_controller.is_some() {
                continue;
            }
            let Some(key) = unique_key(old, o, round) else {
                continue;
            };
            let found = (0..new.len()).find(|&n| {
                !new_taken[n]
                    && new[n].pci_controller.is_none()
                    && new[n].tag == old[o].tag
                    && unique_key(new, n, round) == Some(key)
            });
            if let Some(n) = found {
                link(o, n, &mut old_taken, &mut new_taken);
            }
        }
    }
    // The rest by kind: the same address first, then in order.
    for same_address in [true, false] {
        for o in 0..old.len() {
            if old_taken[o] || old[o].pci_controller.is_some() {
                continue;
            }
            let found = (0..new.len()).find(|&n| {
                !new_taken[n]
                    && new[n].pci_controller.is_none()
                    && new[n].kind == old[o].kind
                    && (!same_address || new[n].address == old[o].address)
                    // Two devices with different identities of the same kind are different.
                    && !keys_conflict(&old[o], &new[n])
            });
            if let Some(n) = found {
                link(o, n, &mut old_taken, &mut new_taken);
            }
        }
    }
    for (o, taken) in old_taken.iter().enumerate() {
        if !taken {
            pairs.push((Some(o), None));
        }
    }
    for (n, taken) in new_taken.iter().enumerate() {
        if !taken {
            pairs.push((None, Some(n)));
        }
    }
    pairs
}

/// The key of `round` of `entries[i]`, unless another device of the same element has it too
/// (two NICs with one MAC identify nothing).
fn unique_key(entries: &[Entry], i: usize, round: usize) -> Option<&Key> {
    let key = entries[i].key(round)?;
    let shared = entries
        .iter()
        .enumerate()
        .any(|(j, e)| j != i && e.tag == entries[i].tag && e.key(round) == Some(key));
    (!shared).then_some(key)
}

/// Both devices have a key of the same kind, with different values.
fn keys_conflict(a: &Entry, b: &Entry) -> bool {
    (0..Key::ROUNDS).any(|r| matches!((a.key(r), b.key(r)), (Some(x), Some(y)) if x != y))
}

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
fn siblings(layout: &Layout, addr: crate::pci::PciAddress) -> Vec<String> {
    layout
        .entries
        .iter()
        .filter_map(|e| e.address.pci().map(|(a, _)| (a, e)))
        .filter(|(a, _)| a.same_slot(&addr) && a.function != addr.function)
        .map(|(a, e)| format!("{} at {a}", e.label))
        .collect()
}

fn compare(old: &Layout, new: &Layout, pair: Pair, changes: &mut Vec<AbiChange>) {
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
            c.old = Some(e.address.to_string());
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
            c.new = Some(e.address.to_string());
            if e.address.is_pci() && !e.address_written {
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
            } else if a.model != b.model && (a.address.is_pci() || b.address.is_pci()) {
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
                }
                _ if a.address != b.address => {
                    let mut c = change(ChangeKind::AddressType, label, Some(a), Some(b));
                    c.old = Some(a.address.to_string());
                    c.new = Some(b.address.to_string());
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
    pa: crate::pci::PciAddress,
    pb: crate::pci::PciAddress,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn dom(devices: &str) -> String {
        format!(
            "<domain type='qemu'><name>g</name><uuid>11111111-2222-3333-4444-555555555555</uuid>\
             <os><type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type></os><devices>{devices}\
             </devices></domain>"
        )
    }

    fn nic(mac: &str, addr: &str) -> String {
        format!(
            "<interface type='user'><mac address='{mac}'/><model type='virtio'/>{addr}</interface>"
        )
    }

    fn kinds(r: &AbiReport) -> Vec<ChangeKind> {
        r.changes.iter().map(|c| c.kind).collect()
    }

    #[test]
    fn identical_definitions_are_stable() {
        let x = dom(&nic("52:54:00:00:00:01", ""));
        let r = check_abi_stability(&x, &x, AbiOptions::default()).unwrap();
        assert!(r.changes.is_empty(), "{r:?}");
        assert!(r.is_stable());
        assert!(r.strict_error().is_none());
    }

    #[test]
    fn reordering_devices_is_not_a_change_when_addresses_are_written() {
        let a = nic(
            "52:54:00:00:00:01",
            "<address type='pci' domain='0' bus='0' slot='3' function='0'/>",
        );
        let b = nic(
            "52:54:00:00:00:02",
            "<address type='pci' domain='0' bus='0' slot='4' function='0'/>",
        );
        let old = dom(&format!("{a}{b}"));
        let new = dom(&format!("{b}{a}"));
        let r = check_abi_stability(&old, &new, AbiOptions::default()).unwrap();
        assert!(r.changes.is_empty(), "{}", r.to_text());
    }

    #[test]
    fn reordering_unaddressed_devices_moves_them() {
        let a = nic("52:54:00:00:00:01", "");
        let b = nic("52:54:00:00:00:02", "");
        let old = dom(&format!("{a}{b}"));
        let new = dom(&format!("{b}{a}"));
        let r = check_abi_stability(&old, &new, AbiOptions::default()).unwrap();
        assert_eq!(
            kinds(&r),
            vec![ChangeKind::AddressMoved, ChangeKind::AddressMoved],
            "{}",
            r.to_text()
        );
        assert!(r.changes[0]
            .note
            .as_deref()
            .unwrap()
            .contains("automatically"));
        // As written, neither has an address: nothing to compare.
        let opts = AbiOptions {
            mode: LayoutMode::AsGiven,
        };
        assert!(check_abi_stability(&old, &new, opts)
            .unwrap()
            .changes
            .is_empty());
    }

    #[test]
    fn removing_a_sibling_flips_the_implicit_multifunction_bit() {
        let f0 = nic(
            "52:54:00:00:00:01",
            "<address type='pci' domain='0' bus='0' slot='5' function='0'/>",
        );
        let f1 = nic(
            "52:54:00:00:00:02",
            "<address type='pci' domain='0' bus='0' slot='5' function='1'/>",
        );
        let old = dom(&format!("{f0}{f1}"));
        let new = dom(&f0);
        let r = check_abi_stability(&old, &new, AbiOptions::default()).unwrap();
        assert_eq!(
            kinds(&r),
            vec![ChangeKind::MultifunctionFlipped, ChangeKind::DeviceRemoved],
            "{}",
            r.to_text()
        );
        let flip = &r.changes[0];
        assert_eq!(flip.device, "interface (mac 52:54:00:00:00:01)");
        assert_eq!(
            (flip.old.as_deref(), flip.new.as_deref()),
            (Some("on"), Some("off"))
        );
        let note = flip.note.as_deref().unwrap();
        assert!(note.contains("set automatically"), "{note}");
        assert!(note.contains("52:54:00:00:00:02"), "{note}");
        // As written, the bit was never there: only the removal shows.
        let opts = AbiOptions {
            mode: LayoutMode::AsGiven,
        };
        let r = check_abi_stability(&old, &new, opts).unwrap();
        assert_eq!(kinds(&r), vec![ChangeKind::DeviceRemoved]);
    }

    #[test]
    fn a_saved_explicit_multifunction_bit_survives_the_removal() {
        let f0 = nic(
            "52:54:00:00:00:01",
            "<address type='pci' domain='0' bus='0' slot='5' function='0' multifunction='on'/>",
        );
        let f1 = nic(
            "52:54:00:00:00:02",
            "<address type='pci' domain='0' bus='0' slot='5' function='1'/>",
        );
        let r = check_abi_stability(&dom(&format!("{f0}{f1}")), &dom(&f0), AbiOptions::default())
            .unwrap();
        assert_eq!(
            kinds(&r),
            vec![ChangeKind::DeviceRemoved],
            "{}",
            r.to_text()
        );
    }

    #[test]
    fn absent_and_off_are_the_same_bit() {
        let with = |m: &str| {
            dom(&nic(
                "52:54:00:00:00:01",
                &format!("<address type='pci' bus='0' slot='5' function='0'{m}/>"),
            ))
        };
        let r = check_abi_stability(
            &with(""),
            &with(" multifunction='off'"),
            AbiOptions::default(),
        )
        .unwrap();
        assert_eq!(kinds(&r), vec![ChangeKind::MultifunctionSpelling]);
        assert!(r.is_stable());
        assert!(r.to_text().contains("not guest-visible"));
    }

    #[test]
    fn different_guests_are_refused() {
        let a = dom("");
        let b = a.replace("11111111", "99999999");
        let err = check_abi_stability(&a, &b, AbiOptions::default()).unwrap_err();
        assert_eq!(err.code, ErrorCode::ConfigUnsupported);
        assert!(
            err.message.contains("does not match source"),
            "{}",
            err.message
        );
        let c = a
            .replace("<uuid>11111111-2222-3333-4444-555555555555</uuid>", "")
            .replace("<name>g</name>", "<name>h</name>");
        let err = check_abi_stability(&a, &c, AbiOptions::default()).unwrap_err();
        assert!(err.message.contains("name 'h'"), "{}", err.message);
        // A rename keeps the UUID: the same guest.
        let d = a.replace("<name>g</name>", "<name>h</name>");
        assert!(check_abi_stability(&a, &d, AbiOptions::default()).is_ok());
    }

    #[test]
    fn bad_definitions_name_the_side() {
        let err = check_abi_stability("<domain>", &dom(""), AbiOptions::default()).unwrap_err();
        assert!(
            err.message.starts_with("XML error: old definition: "),
            "{}",
            err.message
        );
        let err = check_abi_stability(&dom(""), "<network/>", AbiOptions::default()).unwrap_err();
        assert!(
            err.message.starts_with("XML error: new definition: "),
            "{}",
            err.message
        );
    }

    #[test]
    fn anonymous_devices_pair_by_kind_same_address_first() {
        let v = |slot: u32| {
            format!(
                "<video><model type='virtio'/><address type='pci' bus='0' slot='{slot}'/></video>"
            )
        };
        let none = "<memballoon model='none'/>";
        let old = dom(&format!("{}{}{none}", v(2), v(6)));
        let new = dom(&format!("{}{none}", v(6)));
        let r = check_abi_stability(&old, &new, AbiOptions::default()).unwrap();
        assert_eq!(
            kinds(&r),
            vec![ChangeKind::DeviceRemoved],
            "{}",
            r.to_text()
        );
        assert_eq!(r.changes[0].old.as_deref(), Some("0000:00:02.0"));
    }

    #[test]
    fn controller_changes_are_named() {
        let q35 = |ctrls: &str| {
            format!(
                "<domain type='qemu'><name>q</name><os><type machine='q35'>hvm</type></os><devices>\
                 <controller type='pci' index='0' model='pcie-root'/>{ctrls}\
                 <controller type='usb' index='0' model='none'/><memballoon model='none'/>\
                 </devices></domain>"
            )
        };
        let port = |index: u32, chassis: u32, slot: u32| {
            format!(
                "<controller type='pci' index='{index}' model='pcie-root-port'>\
                 <target chassis='{chassis}' port='0x10'/>\
                 <address type='pci' bus='0' slot='{slot}'/></controller>"
            )
        };
        let old = q35(&format!("{}{}", port(1, 1, 2), port(2, 2, 3)));
        // Index 2 renumbered to 3 (same model and address), index 1's chassis changed. As
        // written: assignment would add a controller for the missing index 2.
        let new = q35(&format!("{}{}", port(1, 7, 2), port(3, 2, 3)));
        let as_given = AbiOptions {
            mode: LayoutMode::AsGiven,
        };
        let r = check_abi_stability(&old, &new, as_given).unwrap();
        let text = r.to_text();
        assert!(
            r.changes
                .iter()
                .any(|c| c.kind == ChangeKind::ControllerTarget
                    && c.attribute.as_deref() == Some("chassis")
                    && c.old.as_deref() == Some("1")
                    && c.new.as_deref() == Some("7")),
            "{text}"
        );
        assert!(
            r.changes
                .iter()
                .any(|c| c.kind == ChangeKind::ControllerRenumbered
                    && c.old.as_deref() == Some("2")
                    && c.new.as_deref() == Some("3")),
            "{text}"
        );
        // A controller only in the new definition.
        let added = q35(&format!(
            "{}{}{}",
            port(1, 1, 2),
            port(2, 2, 3),
            port(3, 3, 4)
        ));
        let r = check_abi_stability(&old, &added, AbiOptions::default()).unwrap();
        assert_eq!(
            kinds(&r),
            vec![ChangeKind::ControllerAdded],
            "{}",
            r.to_text()
        );
    }
}
