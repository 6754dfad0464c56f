//! pseries isolation groups read from a host (`assign --sysfs`, the C options' host handle):
//! PCI host devices of different host IOMMU groups go on different PHBs, none on the default
//! PHB, as libvirt does when it can read the groups. The host is the one libvirt's own
//! pseries-hostdevs tests run on (tests/conformance-arch/pseries-isolation/host.json: the NIC
//! 0001:01:00.x in IOMMU group 5, the USB controller 0005:90:01.x in group 7); libvirt's own
//! cases are judged by step 13-arch-conformance. Each result here is also fed to both real
//! libvirts, which must accept it and keep every address.

mod host_support;
mod shared_support;

use host_support::TempTree;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use virtpci::assign::explain::explain_mirroring;
use virtpci::assign::{assign_domain_xml_mirroring, AssignHost, AssignOptions, LibvirtLevel};
use virtpci::host::snapshot::HostSnapshot;
use virtpci::xml::Document;
use virtpci::Host;

fn host_tree() -> TempTree {
    let json = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/conformance-arch/pseries-isolation/host.json");
    let tree = TempTree::new("pseries-isolation");
    HostSnapshot::from_json(&std::fs::read_to_string(json).unwrap())
        .unwrap()
        .materialize(&tree.path)
        .unwrap();
    tree
}

fn domain(devices: &str) -> String {
    format!(
        "<domain type='qemu'><name>p</name><memory>1048576</memory>\
         <os><type arch='ppc64' machine='pseries'>hvm</type></os>\
         <devices>{devices}<controller type='usb' model='none'/>\
         <memballoon model='none'/></devices></domain>"
    )
}

fn hostdev(source: &str, guest: Option<(u32, u32)>) -> String {
    let (d, rest) = source.split_once(':').unwrap();
    let (b, rest) = rest.split_once(':').unwrap();
    let (s, f) = rest.split_once('.').unwrap();
    let guest = guest.map_or(String::new(), |(bus, slot)| {
        format!("<address type='pci' domain='0x0000' bus='{bus:#04x}' slot='{slot:#04x}' function='0x0'/>")
    });
    format!(
        "<hostdev mode='subsystem' type='pci' managed='yes'><source>\
         <address domain='0x{d}' bus='0x{b}' slot='0x{s}' function='0x{f}'/></source>{guest}</hostdev>"
    )
}

const DISK: &str = "<disk type='file' device='disk'><source file='/a.img'/>\
    <target dev='vda' bus='virtio'/></disk>";
const NIC: &str = "<interface type='user'><mac address='52:54:00:00:00:01'/>\
    <model type='virtio'/></interface>";

/// Per device: its host source (or its element name) and guest (bus, slot, function); and the
/// PHBs as (index, target index).
type Layout = (Vec<(String, (u32, u32, u32))>, Vec<(u32, u32)>);

fn layout(xml: &str) -> Layout {
    let doc = Document::parse(xml).unwrap();
    let devices = doc.child(doc.root, "devices").unwrap();
    let num = |t: &str| {
        t.strip_prefix("0x").map_or_else(
            || t.parse().unwrap(),
            |h| u32::from_str_radix(h, 16).unwrap(),
        )
    };
    let mut placed = Vec::new();
    let mut phbs = Vec::new();
    for &id in doc.children(devices) {
        let name = doc.element(id).name;
        if name == "controller" && doc.attr(id, "type") == Some("pci") {
            let target = doc.child(id, "target").unwrap();
            phbs.push((
                num(doc.attr(id, "index").unwrap()),
                num(doc.attr(target, "index").unwrap()),
            ));
            continue;
        }
        let Some(a) = doc
            .child(id, "address")
            .filter(|&a| doc.attr(a, "type") == Some("pci"))
        else {
            continue;
        };
        let part = |a, n| num(doc.attr(a, n).unwrap());
        let label = match doc
            .child(id, "source")
            .and_then(|s| doc.child(s, "address"))
        {
            Some(s) => format!(
                "{:04x}:{:02x}:{:02x}.{:x}",
                part(s, "domain"),
                part(s, "bus"),
                part(s, "slot"),
                part(s, "function")
            ),
            None => name.to_string(),
        };
        placed.push((
            label,
            (part(a, "bus"), part(a, "slot"), part(a, "function")),
        ));
    }
    phbs.sort();
    (placed, phbs)
}

fn assign(xml: &str, host: Option<&Host>, level: LibvirtLevel) -> virtpci::AssignOutput {
    let options = AssignOptions {
        libvirt: level,
        ..Default::default()
    };
    assign_domain_xml_mirroring(xml, options, host.map(|h| h as &dyn AssignHost)).unwrap()
}

fn placed(layout: &Layout) -> BTreeMap<&str, (u32, u32, u32)> {
    layout.0.iter().map(|(l, a)| (l.as_str(), *a)).collect()
}

/// Both libvirts accept `xml` and keep every PCI address and controller.
fn check_with_libvirt(xml: &str, name: &str) {
    for tool in ["libvirt-oracle", "libvirt-oracle-trixie"] {
        let Some(oracle) = shared_support::oracle(tool, "the layout") else {
            return;
        };
        let dir = TempTree::new(&format!("isolation-{name}"));
        let mine = dir.join("mine.xml");
        std::fs::write(&mine, xml).unwrap();
        let theirs = shared_support::oracle_assign(&oracle, &mine, name);
        let (mut a, mut b) = (layout(xml), layout(&theirs));
        a.0.sort();
        b.0.sort();
        assert_eq!(a, b, "{name}: {tool} moved something\n{theirs}");
    }
}

const LEVELS: [LibvirtLevel; 2] = [LibvirtLevel::V9_0, LibvirtLevel::V11_3];

#[test]
fn each_iommu_group_gets_its_own_phb_and_emulated_devices_stay_on_the_default_one() {
    let tree = host_tree();
    let host = Host::open(Some(&tree.path)).unwrap();
    let xml = domain(&format!(
        "{DISK}{}{}{}{NIC}",
        hostdev("0001:01:00.0", None),
        hostdev("0005:90:01.0", None),
        hostdev("0001:01:00.1", None)
    ));
    for level in LEVELS {
        let out = assign(&xml, Some(&host), level);
        assert!(out.warnings.is_empty(), "{:?}", out.warnings);
        let l = layout(&out.xml);
        let p = placed(&l);
        // Interfaces before disks, in libvirt's order.
        assert_eq!(p["interface"], (0, 1, 0), "{}", out.xml);
        assert_eq!(p["disk"], (0, 2, 0), "{}", out.xml);
        assert_eq!(p["0001:01:00.0"], (1, 1, 0), "{}", out.xml);
        assert_eq!(p["0005:90:01.0"], (2, 1, 0), "{}", out.xml);
        assert_eq!(p["0001:01:00.1"], (1, 2, 0), "{}", out.xml);
        assert_eq!(l.1, vec![(0, 0), (1, 1), (2, 2)], "{}", out.xml);
        if level == LibvirtLevel::V9_0 {
            check_with_libvirt(&out.xml, "groups");
        }
    }
    // Without a host libvirt cannot read the groups: one PHB, plain placement.
    let plain = layout(&assign(&xml, None, LibvirtLevel::V9_0).xml);
    assert_eq!(plain.1, vec![(0, 0)]);
    assert_eq!(placed(&plain)["0001:01:00.1"], (0, 5, 0));
}

#[test]
fn a_device_the_host_lacks_is_not_isolated_and_is_named() {
    let tree = host_tree();
    let host = Host::open(Some(&tree.path)).unwrap();
    let xml = domain(&format!(
        "{}{}",
        hostdev("0002:00:00.0", None),
        hostdev("0001:01:00.0", None)
    ));
    let out = assign(&xml, Some(&host), LibvirtLevel::V9_0);
    assert_eq!(
        out.warnings,
        vec![
            "Can't look up isolation group for host device 0002:00:00.0, device won't be isolated"
                .to_string()
        ]
    );
    let l = layout(&out.xml);
    assert_eq!(placed(&l)["0002:00:00.0"], (0, 1, 0), "{}", out.xml);
    assert_eq!(placed(&l)["0001:01:00.0"], (1, 1, 0), "{}", out.xml);
    let explained = explain_mirroring(&xml, &AssignOptions::default(), Some(&host)).unwrap();
    assert!(
        explained
            .to_text()
            .contains("0002:00:00.0, device won't be isolated"),
        "{}",
        explained.to_text()
    );
}

#[test]
fn an_empty_phb_takes_the_first_group_and_a_configured_address_ends_isolation() {
    let tree = host_tree();
    let host = Host::open(Some(&tree.path)).unwrap();
    let phb1 = "<controller type='pci' index='1' model='pci-root'/>";
    // PHB 1 is empty: the NIC's group takes it; the USB controller's group needs PHB 2.
    let xml = domain(&format!(
        "{phb1}{}{}{DISK}",
        hostdev("0001:01:00.0", None),
        hostdev("0005:90:01.0", None)
    ));
    let out = assign(&xml, Some(&host), LibvirtLevel::V9_0);
    let l = layout(&out.xml);
    assert_eq!(placed(&l)["0001:01:00.0"], (1, 1, 0), "{}", out.xml);
    assert_eq!(placed(&l)["0005:90:01.0"], (2, 1, 0), "{}", out.xml);
    assert_eq!(placed(&l)["disk"], (0, 1, 0), "{}", out.xml);
    check_with_libvirt(&out.xml, "empty-phb");
    // A disk put on PHB 1 by the user keeps it in the emulated devices' group: the host
    // devices go to a new PHB, and the next emulated device may use PHB 1.
    let disk_on_1 = DISK.replace(
        "</disk>",
        "<address type='pci' domain='0x0000' bus='0x01' slot='0x05' function='0x0'/></disk>",
    );
    let xml = domain(&format!(
        "{phb1}{disk_on_1}{}{NIC}",
        hostdev("0001:01:00.0", None)
    ));
    let out = assign(&xml, Some(&host), LibvirtLevel::V9_0);
    let l = layout(&out.xml);
    assert_eq!(placed(&l)["0001:01:00.0"], (2, 1, 0), "{}", out.xml);
    assert_eq!(placed(&l)["interface"], (0, 1, 0), "{}", out.xml);
    // A host device put on PHB 1 by the user makes it its group's: the function beside it
    // follows, the emulated devices do not.
    let xml = domain(&format!(
        "{phb1}{}{}{NIC}",
        hostdev("0001:01:00.0", Some((1, 3))),
        hostdev("0001:01:00.1", None)
    ));
    let out = assign(&xml, Some(&host), LibvirtLevel::V9_0);
    let l = layout(&out.xml);
    assert_eq!(placed(&l)["0001:01:00.1"], (1, 1, 0), "{}", out.xml);
    assert_eq!(placed(&l)["interface"], (0, 1, 0), "{}", out.xml);
    assert_eq!(l.1.len(), 2, "{}", out.xml);
    check_with_libvirt(&out.xml, "configured");
}

#[test]
fn the_cli_reads_the_host_with_sysfs() {
    let tree = host_tree();
    let dir = TempTree::new("isolation-cli");
    let file = dir.join("dom.xml");
    std::fs::write(
        &file,
        domain(&format!(
            "{}{}",
            hostdev("0001:01:00.0", None),
            hostdev("0005:90:01.0", None)
        )),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_virtpci"))
        .args(["assign", "--sysfs"])
        .arg(&tree.path)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let l = layout(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(placed(&l)["0001:01:00.0"], (1, 1, 0));
    assert_eq!(placed(&l)["0005:90:01.0"], (2, 1, 0));
}
