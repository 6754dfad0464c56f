//! Issue 21, host-NUMA mirroring: `assign --mirror-host-numa` puts each PCI hostdev behind an
//! expander bus on the guest cell of its host device's NUMA node, on the bundled hosts with
//! several NUMA nodes (`sriov-server`: nodes 0 and 1; `numa-server`: nodes 0 to 3 and a
//! device without a node). Each result is checked here (the guest node each hostdev ends up
//! on) and fed to both real libvirts (9.0 and 11.3 oracles), which must accept it and keep
//! every address (`pci-layout` of their answer equals ours).

mod host_support;
mod shared_support;

use host_support::{fixture_tree, TempTree};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use virtpci::assign::explain::{explain_mirroring, Reason};
use virtpci::assign::{assign_domain_xml_mirroring, AssignHost, AssignOptions, LibvirtLevel};
use virtpci::xml::Document;
use virtpci::{ErrorCode, Host, PciAddress};

fn domain(machine: &str, cells: usize, numatune: &str, devices: &str) -> String {
    let mut numa = String::new();
    if cells > 0 {
        numa.push_str("  <cpu>\n    <numa>\n");
        for c in 0..cells {
            numa.push_str(&format!(
                "      <cell id='{c}' cpus='{c}' memory='262144' unit='KiB'/>\n"
            ));
        }
        numa.push_str("    </numa>\n  </cpu>\n");
    }
    format!(
        "<domain type='kvm'>\n  <name>mirror</name>\n  <memory unit='KiB'>{}</memory>\n  \
         <vcpu>{}</vcpu>\n{numatune}  <os>\n    <type arch='x86_64' machine='{machine}'>hvm</type>\n  </os>\n\
         {numa}  <devices>\n{devices}  </devices>\n</domain>\n",
        262144 * cells.max(1),
        cells.max(1)
    )
}

fn hostdev(bus: u32, slot: u32, function: u32) -> String {
    format!(
        "    <hostdev mode='subsystem' type='pci' managed='yes'>\n      <source>\n        \
         <address domain='0x0000' bus='0x{bus:02x}' slot='0x{slot:02x}' function='0x{function:x}'/>\n      \
         </source>\n    </hostdev>\n"
    )
}

const VIRTIO_NIC: &str =
    "    <interface type='user'>\n      <mac address='52:54:00:00:00:01'/>\n      <model type='virtio'/>\n    </interface>\n";

/// Per hostdev (by host address): the guest NUMA node of the bus it is on (the `<node>` of
/// the expander it sits behind), `None` when not behind one.
fn hostdev_nodes(xml: &str) -> BTreeMap<PciAddress, Option<u32>> {
    let doc = Document::parse(xml).unwrap();
    let devices = doc.child(doc.root, "devices").unwrap();
    let pci_address = |id| {
        doc.child(id, "address")
            .filter(|&a| doc.attr(a, "type") == Some("pci"))
            .map(|a| shared_support::address_attrs(&doc, a))
    };
    // index -> (parent bus, own node)
    let mut buses: BTreeMap<u32, (Option<u32>, Option<u32>)> = BTreeMap::new();
    for &id in doc.children(devices) {
        if doc.element(id).name == "controller" && doc.attr(id, "type") == Some("pci") {
            let node = doc
                .child(id, "target")
                .and_then(|t| doc.child(t, "node"))
                .map(|n| shared_support::xml_number(doc.element(n).text));
            let index = shared_support::xml_number(doc.attr(id, "index").unwrap());
            buses.insert(index, (pci_address(id).map(|a| a.bus), node));
        }
    }
    let node_of = |mut bus: u32| {
        for _ in 0..256 {
            let (parent, node) = buses[&bus];
            if node.is_some() {
                return node;
            }
            bus = parent?;
        }
        None
    };
    let mut out = BTreeMap::new();
    for &id in doc.children(devices) {
        let name = doc.element(id).name;
        if name != "hostdev" && name != "interface" {
            continue;
        }
        let Some(source) = doc
            .child(id, "source")
            .and_then(|s| doc.child(s, "address"))
        else {
            continue;
        };
        let host = shared_support::address_attrs(&doc, source);
        out.insert(host, pci_address(id).and_then(|a| node_of(a.bus)));
    }
    out
}

fn pci_layout(file: &Path) -> String {
    let tool = shared_support::shared_path("tools/pci-layout").expect("tools/pci-layout");
    let out = Command::new(tool).arg(file).output().unwrap();
    assert!(out.status.success(), "pci-layout {}", file.display());
    String::from_utf8(out.stdout).unwrap()
}

/// The libvirt of `level` accepts `xml` and keeps every PCI address and controller.
fn check_with_libvirt(xml: &str, name: &str, level: LibvirtLevel) {
    let tool = match level {
        LibvirtLevel::V9_0 => "libvirt-oracle",
        _ => "libvirt-oracle-trixie",
    };
    let Some(oracle) = shared_support::oracle(tool, "the layout") else {
        return;
    };
    let dir = TempTree::new(&format!("mirror-{name}"));
    let mine = dir.join("mine.xml");
    std::fs::write(&mine, xml).unwrap();
    let theirs = dir.join("theirs.xml");
    std::fs::write(&theirs, shared_support::oracle_assign(&oracle, &mine, name)).unwrap();
    assert_eq!(
        pci_layout(&mine),
        pci_layout(&theirs),
        "{name}: {tool} moved something"
    );
}

fn mirrored(xml: &str, host: &Host, level: LibvirtLevel) -> virtpci::AssignOutput {
    let options = AssignOptions {
        libvirt: level,
        ..Default::default()
    };
    assign_domain_xml_mirroring(xml, options, Some(host as &dyn AssignHost)).unwrap()
}

const LEVELS: [LibvirtLevel; 2] = [LibvirtLevel::V9_0, LibvirtLevel::V11_3];

fn a(bus: u32, slot: u32, function: u32) -> PciAddress {
    PciAddress::new(0, bus, slot, function)
}

#[test]
fn q35_hostdevs_follow_their_host_nodes_on_the_sriov_server() {
    let tree = fixture_tree("sriov-server");
    let host = Host::open(Some(&tree.path)).unwrap();
    let vf_interface = "    <interface type='hostdev' managed='yes'>\n      <mac address='52:54:00:aa:bb:cc'/>\n      \
        <source>\n        <address type='pci' domain='0x0000' bus='0x3b' slot='0x02' function='0x7'/>\n      \
        </source>\n    </interface>\n";
    let devices = hostdev(0xd8, 0, 0) + &hostdev(0x3b, 2, 6) + vf_interface + VIRTIO_NIC;
    let xml = domain("q35", 2, "", &devices);
    for level in LEVELS {
        let out = mirrored(&xml, &host, level);
        assert!(out.warnings.is_empty(), "{:?}", out.warnings);
        let nodes = hostdev_nodes(&out.xml);
        assert_eq!(nodes[&a(0xd8, 0, 0)], Some(1), "{}", out.xml);
        assert_eq!(nodes[&a(0x3b, 2, 6)], Some(0), "{}", out.xml);
        assert_eq!(nodes[&a(0x3b, 2, 7)], Some(0), "{}", out.xml);
        assert!(out.xml.contains("model='pcie-expander-bus'"));
        check_with_libvirt(&out.xml, &format!("sriov-q35-{level:?}"), level);
    }
    // Without mirroring the same domain is libvirt's: no expander at all.
    let plain = virtpci::assign_domain_xml(&xml).unwrap();
    assert!(!plain.xml.contains("expander"), "{}", plain.xml);
    assert!(hostdev_nodes(&plain.xml).values().all(Option::is_none));
}

#[test]
fn pc_hostdevs_follow_numatune_memnodes_on_the_numa_server() {
    let tree = fixture_tree("numa-server");
    let host = Host::open(Some(&tree.path)).unwrap();
    // Guest cell 0 lives on host node 3, cell 1 on node 2, cell 2 on nodes 0-1.
    let numatune = "  <numatune>\n    <memory mode='strict' nodeset='0-3'/>\n    \
        <memnode cellid='0' mode='strict' nodeset='3'/>\n    \
        <memnode cellid='1' mode='strict' nodeset='2'/>\n    \
        <memnode cellid='2' mode='strict' nodeset='0-1'/>\n  </numatune>\n";
    let devices = hostdev(0x81, 0, 0)
        + &hostdev(0x82, 0, 0)
        + &hostdev(0xc1, 0, 0)
        + &hostdev(0x42, 0, 0)
        + &hostdev(0x01, 0, 1)
        + &hostdev(0xe1, 0, 0)
        + VIRTIO_NIC;
    for machine in ["pc", "q35"] {
        let xml = domain(machine, 3, numatune, &devices);
        for level in LEVELS {
            let out = mirrored(&xml, &host, level);
            let nodes = hostdev_nodes(&out.xml);
            assert_eq!(nodes[&a(0x81, 0, 0)], Some(1), "{}", out.xml);
            assert_eq!(nodes[&a(0x82, 0, 0)], Some(1));
            assert_eq!(nodes[&a(0xc1, 0, 0)], Some(0));
            assert_eq!(nodes[&a(0x42, 0, 0)], Some(2));
            assert_eq!(nodes[&a(0x01, 0, 1)], Some(2));
            // numa_node -1: placed as usual, and named in a warning.
            assert_eq!(nodes[&a(0xe1, 0, 0)], None);
            assert_eq!(out.warnings.len(), 1, "{:?}", out.warnings);
            assert!(
                out.warnings[0].contains("host device 0000:e1:00.0")
                    && out.warnings[0].contains("no host NUMA node (numa_node -1)"),
                "{:?}",
                out.warnings
            );
            let model = if machine == "pc" {
                "pci-expander-bus"
            } else {
                "pcie-expander-bus"
            };
            assert_eq!(out.xml.matches(model).count(), 3, "{}", out.xml);
            check_with_libvirt(&out.xml, &format!("numa-{machine}-{level:?}"), level);
        }
    }
}

#[test]
fn host_nodes_without_a_guest_cell_are_named_and_placed_as_usual() {
    let tree = fixture_tree("numa-server");
    let host = Host::open(Some(&tree.path)).unwrap();
    // Two cells, no numatune: host nodes 2 and 3 have no cell.
    let devices = hostdev(0x01, 0, 0) + &hostdev(0x81, 0, 0) + &hostdev(0xc1, 0, 0);
    let xml = domain("q35", 2, "", &devices);
    let out = mirrored(&xml, &host, LibvirtLevel::V9_0);
    let nodes = hostdev_nodes(&out.xml);
    assert_eq!(nodes[&a(0x01, 0, 0)], Some(0));
    assert_eq!(nodes[&a(0x81, 0, 0)], None);
    assert_eq!(nodes[&a(0xc1, 0, 0)], None);
    assert_eq!(out.warnings.len(), 2, "{:?}", out.warnings);
    assert!(
        out.warnings[0].contains("0000:81:00.0")
            && out.warnings[0].contains("host NUMA node 2, but the guest has no cell 2")
    );
    assert!(out.warnings[1].contains("0000:c1:00.0"));
    check_with_libvirt(&out.xml, "unmapped", LibvirtLevel::V9_0);
    // A memnode mapping that leaves node 0 out: named too.
    let numatune = "  <numatune>\n    <memnode cellid='0' nodeset='1'/>\n    <memnode cellid='1' nodeset='2-3'/>\n  </numatune>\n";
    let xml = domain("q35", 2, numatune, &devices);
    let out = mirrored(&xml, &host, LibvirtLevel::V9_0);
    let nodes = hostdev_nodes(&out.xml);
    assert_eq!(nodes[&a(0x01, 0, 0)], None);
    assert_eq!(nodes[&a(0x81, 0, 0)], Some(1));
    assert_eq!(nodes[&a(0xc1, 0, 0)], Some(1));
    assert_eq!(out.warnings.len(), 1, "{:?}", out.warnings);
    assert!(out.warnings[0].contains("no <numatune><memnode> of the guest's cells includes it"));
    check_with_libvirt(&out.xml, "memnode-gap", LibvirtLevel::V9_0);
}

#[test]
fn an_existing_expander_and_its_free_port_are_reused() {
    let tree = fixture_tree("sriov-server");
    let host = Host::open(Some(&tree.path)).unwrap();
    let controllers = "    <controller type='pci' index='0' model='pcie-root'/>\n    \
        <controller type='pci' index='1' model='pcie-expander-bus'>\n      <target busNr='200'>\n        <node>1</node>\n      </target>\n      \
        <address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/>\n    </controller>\n    \
        <controller type='pci' index='2' model='pcie-root-port'>\n      \
        <address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>\n    </controller>\n";
    let xml = domain(
        "q35",
        2,
        "",
        &(controllers.to_string() + &hostdev(0xd8, 0, 0)),
    );
    for level in LEVELS {
        let out = mirrored(&xml, &host, level);
        assert!(
            out.xml
                .contains("bus='0x02' slot='0x00' function='0x0'/>\n    </hostdev>"),
            "{}",
            out.xml
        );
        assert_eq!(
            out.xml.matches("pcie-expander-bus").count(),
            1,
            "{}",
            out.xml
        );
        check_with_libvirt(&out.xml, &format!("reuse-{level:?}"), level);
    }
}

#[test]
fn explicit_choices_win_and_missing_devices_are_errors() {
    let tree = fixture_tree("numa-server");
    let host = Host::open(Some(&tree.path)).unwrap();
    // The device's own preference wins; a written address and an unassigned one stay.
    let own = "    <hostdev mode='subsystem' type='pci' managed='yes'>\n      <source>\n        \
        <address domain='0x0000' bus='0x81' slot='0x00' function='0x0'/>\n      </source>\n      \
        <addressPreferences numa='0'/>\n    </hostdev>\n";
    let written = "    <hostdev mode='subsystem' type='pci' managed='yes'>\n      <source>\n        \
        <address domain='0x0000' bus='0x82' slot='0x00' function='0x0'/>\n      </source>\n      \
        <address type='pci' domain='0x0000' bus='0x00' slot='0x07' function='0x0'/>\n    </hostdev>\n";
    let unassigned =
        "    <hostdev mode='subsystem' type='pci' managed='yes'>\n      <source>\n        \
        <address domain='0x0000' bus='0xc1' slot='0x00' function='0x0'/>\n      </source>\n      \
        <address type='unassigned'/>\n    </hostdev>\n";
    let xml = domain("pc", 4, "", &format!("{own}{written}{unassigned}"));
    let out = mirrored(&xml, &host, LibvirtLevel::V9_0);
    let nodes = hostdev_nodes(&out.xml);
    assert_eq!(nodes[&a(0x81, 0, 0)], Some(0));
    assert_eq!(nodes[&a(0x82, 0, 0)], None);
    assert!(out.xml.contains("slot='0x07'"));
    assert_eq!(nodes[&a(0xc1, 0, 0)], None);
    // A host device the host does not have.
    let xml = domain("q35", 2, "", &hostdev(0x99, 0, 0));
    let err = assign_domain_xml_mirroring(&xml, AssignOptions::default(), Some(&host)).unwrap_err();
    assert_eq!(err.code, ErrorCode::DeviceMissing, "{}", err.message);
    assert!(err.message.contains("0000:99:00.0"), "{}", err.message);
}

#[test]
fn explain_says_why_each_hostdev_went_where_it_did() {
    let tree = fixture_tree("numa-server");
    let host = Host::open(Some(&tree.path)).unwrap();
    let numatune = "  <numatune>\n    <memnode cellid='0' nodeset='3'/>\n    <memnode cellid='1' nodeset='2'/>\n  </numatune>\n";
    let devices = hostdev(0x81, 0, 0) + &hostdev(0xe1, 0, 0) + VIRTIO_NIC;
    let xml = domain("q35", 2, numatune, &devices);
    let x = explain_mirroring(&xml, &AssignOptions::default(), Some(&host)).unwrap();
    let find = |name: &str| x.devices.iter().find(|d| d.device.contains(name)).unwrap();
    let gpu = find("0000:81:00.0");
    assert_eq!(
        gpu.reason,
        Reason::NumaNode {
            node: 1,
            host_device: Some("0000:81:00.0".into()),
            host_node: Some(2),
            mapping: Some("memnode".into()),
        }
    );
    assert!(gpu
        .reason
        .to_string()
        .contains("<numatune> maps guest cell 1 to host node 2"));
    let sata = find("0000:e1:00.0");
    assert!(matches!(sata.reason, Reason::FirstFree { .. }));
    assert!(sata.mirroring.as_deref().unwrap().contains("numa_node -1"));
    let json = x.to_json();
    assert!(
        json.contains("\"kind\": \"numa-node\"") && json.contains("\"host_node\": 2"),
        "{json}"
    );
    assert!(
        x.to_text().contains("not mirrored: <hostdev> at line"),
        "{}",
        x.to_text()
    );
    assert!(x
        .to_text()
        .contains("of guest NUMA node 1, added for devices placed on that node"));
}

#[test]
fn the_cli_mirrors_with_sysfs() {
    let tree = fixture_tree("sriov-server");
    let dir = TempTree::new("mirror-cli");
    let file = dir.join("dom.xml");
    std::fs::write(&file, domain("q35", 2, "", &hostdev(0xd8, 0, 0))).unwrap();
    let cli = env!("CARGO_BIN_EXE_virtpci");
    let out = Command::new(cli)
        .args(["assign", "--mirror-host-numa", "--sysfs"])
        .arg(&tree.path)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let xml = String::from_utf8(out.stdout).unwrap();
    assert_eq!(hostdev_nodes(&xml)[&a(0xd8, 0, 0)], Some(1), "{xml}");
    let out = Command::new(cli)
        .args([
            "assign",
            "--explain",
            "--json",
            "--mirror-host-numa",
            "--sysfs",
        ])
        .arg(&tree.path)
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let d = json["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["device"].as_str().unwrap().contains("0000:d8:00.0"))
        .unwrap();
    assert_eq!(d["reason"]["kind"], "numa-node");
    assert_eq!(d["reason"]["mapping"], "same-number");
    // --sysfs alone reads the host (pseries isolation groups) but mirrors nothing.
    let out = Command::new(cli)
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
    let xml = String::from_utf8(out.stdout).unwrap();
    assert_eq!(hostdev_nodes(&xml)[&a(0xd8, 0, 0)], None, "{xml}");
    assert!(!xml.contains("pcie-expander-bus"), "{xml}");
}
