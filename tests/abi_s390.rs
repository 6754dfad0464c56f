//! The ABI check on s390x `s390-ccw-virtio`: CCW device numbers (cssid.ssid.devno) and the
//! zPCI uid/fid of devices on PCI are guest-visible and compared with the PCI places, in both
//! modes, from the library and the CLI (text and --json). The numbers the effective layouts
//! hold are libvirt 9.0's (libvirt-oracle assigns these domains the same way).

use virtpci::abi::{check_abi_stability, AbiChange, AbiOptions, ChangeKind, LayoutMode};
use virtpci::assign_domain_xml;

fn domain(devices: &str) -> String {
    format!(
        "<domain type='qemu'><name>z</name><uuid>11111111-2222-3333-4444-555555555555</uuid>\
         <memory>1048576</memory><os><type arch='s390x' machine='s390-ccw-virtio'>hvm</type>\
         </os><devices>{devices}</devices></domain>"
    )
}

fn disk(dev: &str, address: &str) -> String {
    format!(
        "<disk type='file' device='disk'><source file='/{dev}.img'/>\
         <target dev='{dev}' bus='virtio'/>{address}</disk>"
    )
}

fn nic(mac: u8, address: &str) -> String {
    format!("<interface type='user'><mac address='52:54:00:00:00:{mac:02x}'/>{address}</interface>")
}

fn hostdev(bus: u32, address: &str) -> String {
    format!(
        "<hostdev mode='subsystem' type='pci' managed='yes'><source>\
         <address domain='0' bus='{bus}' slot='0' function='0'/></source>{address}</hostdev>"
    )
}

fn ccw(devno: u32) -> String {
    format!("<address type='ccw' cssid='0xfe' ssid='0x0' devno='0x{devno:04x}'/>")
}

fn pci(slot: u32, zpci: &str) -> String {
    format!("<address type='pci' domain='0' bus='0' slot='{slot}' function='0'>{zpci}</address>")
}

fn diff(old: &str, new: &str) -> Vec<AbiChange> {
    check_abi_stability(&domain(old), &domain(new), AbiOptions::default())
        .unwrap()
        .changes
}

fn find<'a>(changes: &'a [AbiChange], kind: ChangeKind, device: &str) -> &'a AbiChange {
    changes
        .iter()
        .find(|c| c.kind == kind && c.device == device)
        .unwrap_or_else(|| panic!("no {kind:?} for {device} in {changes:#?}"))
}

#[test]
fn a_definition_and_its_assigned_form_have_the_same_abi() {
    let devices = format!(
        "{}{}{}{}",
        disk("vda", ""),
        nic(1, ""),
        hostdev(1, ""),
        hostdev(2, "<address type='pci'><zpci uid='7'/></address>")
    );
    let xml = domain(&devices);
    let assigned = assign_domain_xml(&xml).unwrap().xml;
    assert!(assigned.contains("devno='0x0001'"), "{assigned}");
    let report = check_abi_stability(&xml, &assigned, AbiOptions::default()).unwrap();
    assert!(report.changes.is_empty(), "{:#?}", report.changes);
    assert!(report.to_text().contains("ABI unchanged"));
}

#[test]
fn a_removed_virtio_device_moves_the_ccw_numbers_after_it() {
    // vda takes fe.0.0000, the interface fe.0.0001, the balloon libvirt adds fe.0.0002;
    // without vda the interface and the balloon move down one number.
    let changes = diff(&format!("{}{}", disk("vda", ""), nic(1, "")), &nic(1, ""));
    let removed = find(&changes, ChangeKind::DeviceRemoved, "disk vda");
    assert_eq!(removed.old.as_deref(), Some("fe.0.0000"));
    let moved = find(
        &changes,
        ChangeKind::AddressMoved,
        "interface (mac 52:54:00:00:00:01)",
    );
    assert_eq!(moved.old.as_deref(), Some("fe.0.0001"));
    assert_eq!(moved.new.as_deref(), Some("fe.0.0000"));
    assert!(
        moved.note.as_deref().unwrap().contains("CCW address"),
        "{moved:?}"
    );
    let balloon = find(&changes, ChangeKind::AddressMoved, "memballoon virtio #1");
    assert_eq!(
        (balloon.old.as_deref(), balloon.new.as_deref()),
        (Some("fe.0.0002"), Some("fe.0.0001"))
    );
    assert_eq!(changes.len(), 3, "{changes:#?}");
    // The same removal with the interface's number written keeps it (the balloon still moves).
    let kept = diff(
        &format!("{}{}", disk("vda", ""), nic(1, &ccw(1))),
        &nic(1, &ccw(1)),
    );
    assert!(
        kept.iter().all(|c| !c.device.starts_with("interface")),
        "{kept:#?}"
    );
}

#[test]
fn written_ccw_numbers_are_compared_as_given() {
    let old = disk("vda", &ccw(5));
    let new = disk("vda", &ccw(6));
    for mode in [LayoutMode::Effective, LayoutMode::AsGiven] {
        let report =
            check_abi_stability(&domain(&old), &domain(&new), AbiOptions { mode }).unwrap();
        let moved = find(&report.changes, ChangeKind::AddressMoved, "disk vda");
        assert_eq!(
            (moved.old.as_deref(), moved.new.as_deref()),
            (Some("fe.0.0005"), Some("fe.0.0006"))
        );
        assert_eq!(moved.note, None, "written numbers need no advice");
        assert!(!report.is_stable());
    }
    // A different subchannel set or channel subsystem is a move too.
    let other_set = disk(
        "vda",
        "<address type='ccw' cssid='0xfe' ssid='0x1' devno='0x0005'/>",
    );
    let changes = diff(&old, &other_set);
    let moved = find(&changes, ChangeKind::AddressMoved, "disk vda");
    assert_eq!(moved.new.as_deref(), Some("fe.1.0005"));
}

#[test]
fn a_device_from_ccw_to_pci_changes_address_type() {
    let changes = diff(&nic(1, ""), &nic(1, "<address type='pci'/>"));
    let c = find(
        &changes,
        ChangeKind::AddressType,
        "interface (mac 52:54:00:00:00:01)",
    );
    assert_eq!(c.old.as_deref(), Some("fe.0.0000"));
    assert_eq!(
        c.new.as_deref(),
        Some("0000:00:01.0 zpci uid 0x0001 fid 0x00000000")
    );
}

#[test]
fn changed_zpci_identifiers_are_reported() {
    // Written: uid 1 -> 3, the fid (assigned, 0) the same.
    let changes = diff(
        &hostdev(1, &pci(1, "<zpci uid='1'/>")),
        &hostdev(1, &pci(1, "<zpci uid='3'/>")),
    );
    assert_eq!(changes.len(), 1, "{changes:#?}");
    let c = &changes[0];
    assert_eq!(c.kind, ChangeKind::ZpciChanged);
    assert_eq!(c.attribute.as_deref(), Some("uid"));
    assert_eq!(
        (c.old.as_deref(), c.new.as_deref()),
        (Some("0x0001"), Some("0x0003"))
    );
    assert!(c.guest_visible);
    // Assigned: removing the first host device gives the second (same PCI slot written)
    // the identifiers the first had.
    let second = hostdev(2, &pci(2, ""));
    let changes = diff(&format!("{}{second}", hostdev(1, &pci(1, ""))), &second);
    let device = "hostdev (host 0000:02:00.0)";
    let ids: Vec<_> = changes
        .iter()
        .filter(|c| c.kind == ChangeKind::ZpciChanged && c.device == device)
        .map(|c| {
            (
                c.attribute.as_deref().unwrap(),
                c.old.as_deref().unwrap(),
                c.new.as_deref().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ids,
        [
            ("uid", "0x0002", "0x0001"),
            ("fid", "0x00000001", "0x00000000")
        ]
    );
    let c = find(&changes, ChangeKind::ZpciChanged, device);
    assert!(c.note.as_deref().unwrap().contains("<zpci>"), "{c:?}");
    let removed = find(
        &changes,
        ChangeKind::DeviceRemoved,
        "hostdev (host 0000:01:00.0)",
    );
    assert_eq!(
        removed.old.as_deref(),
        Some("0000:00:01.0 zpci uid 0x0001 fid 0x00000000")
    );
    // Written in full on both sides: stable.
    let full = hostdev(1, &pci(1, "<zpci uid='0x0009' fid='0x00000004'/>"));
    assert!(diff(&full, &full).is_empty());
}

#[test]
fn the_as_given_mode_compares_only_what_is_written() {
    // Neither definition writes a number: as given, nothing moved.
    let report = check_abi_stability(
        &domain(&format!("{}{}", disk("vda", ""), nic(1, ""))),
        &domain(&nic(1, "")),
        AbiOptions {
            mode: LayoutMode::AsGiven,
        },
    )
    .unwrap();
    assert!(report.is_stable(), "{:#?}", report.changes);
}

#[test]
fn the_cli_reports_ccw_and_zpci_changes_in_text_and_json() {
    let dir = std::env::temp_dir().join(format!("virtpci-abi-s390-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let old = dir.join("old.xml");
    let new = dir.join("new.xml");
    std::fs::write(
        &old,
        domain(&format!(
            "{}{}",
            disk("vda", &ccw(5)),
            hostdev(1, &pci(1, "<zpci uid='1' fid='2'/>"))
        )),
    )
    .unwrap();
    std::fs::write(
        &new,
        domain(&format!(
            "{}{}",
            disk("vda", &ccw(6)),
            hostdev(1, &pci(1, "<zpci uid='1' fid='3'/>"))
        )),
    )
    .unwrap();
    let run = |json: bool| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_virtpci"));
        cmd.arg("abi-diff");
        if json {
            cmd.arg("--json");
        }
        let out = cmd.arg(&old).arg(&new).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let text = run(false);
    assert!(
        text.contains("disk vda: address moved: fe.0.0005 -> fe.0.0006"),
        "{text}"
    );
    assert!(
        text.contains(
            "hostdev (host 0000:01:00.0): zPCI identifier changed (fid): 0x00000002 -> 0x00000003"
        ),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&run(true)).unwrap();
    let kinds: Vec<_> = json["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["kind"].as_str().unwrap(), c["attribute"].as_str()))
        .collect();
    assert_eq!(
        kinds,
        [("address-moved", None), ("zpci-changed", Some("fid"))]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
