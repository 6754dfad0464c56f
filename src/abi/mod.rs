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
//! On s390x the channel subsystem address (cssid.ssid.devno) of a CCW device and the zPCI
//! uid/fid of a device on PCI are guest-visible too, and compared with the PCI places.
//!
//! Devices are paired by identity, not by position: user alias, then MAC address, then disk
//! or filesystem target, then host source address (hostdevs), then controller type and index;
//! devices without any of these (videos, balloons, ...) are paired by kind, those at the same
//! address first, then in document order. PCI controllers are paired by alias, then by index
//! and model, then by model and address (a renumbered controller), then by index.

mod compare;
mod layout;
mod pair;
mod report;

use crate::error::{quote, Error, Result};
use compare::compare;
use layout::{read_layout, Layout};
pub use layout::{ControllerId, LayoutMode};
use pair::pair_entries;
pub use report::{AbiChange, AbiOptions, AbiReport, ChangeKind, Position};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

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
