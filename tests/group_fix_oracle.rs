//! Issue 19, whole-group help judged by the real libvirt: on every bundled host, a guest
//! (q35 and pc) given one endpoint of each IOMMU group is completed by
//! `hostdev::group_fix::add_missing_group_members` (what `check --fix` and
//! `virtpci_domain_add_missing_group_members` print); libvirt 9.0 and 11.3 must define the
//! result, and keep every added member as a hostdev hidden from the guest (`<address
//! type='unassigned'/>`), and `check` must accept the group rule for it.

mod host_support;
mod shared_support;

use host_support::{fixture_tree, TempTree};
use std::collections::BTreeMap;
use std::process::Command;
use virtpci::host::{HeaderType, Host};
use virtpci::hostdev::group_fix::add_missing_group_members;
use virtpci::xml::Document;
use virtpci::PciAddress;

const HOSTS: [&str; 5] = [
    "workstation",
    "sriov-server",
    "quad-nic",
    "qemu-q35",
    "numa-server",
];

fn domain(machine: &str, hostdev: PciAddress) -> String {
    format!(
        "<domain type='kvm'>\n  <name>fixme</name>\n  <memory unit='KiB'>1048576</memory>\n  \
         <vcpu>1</vcpu>\n  <os>\n    <type arch='x86_64' machine='{machine}'>hvm</type>\n  </os>\n  \
         <devices>\n    <hostdev mode='subsystem' type='pci' managed='yes'>\n      <source>\n        \
         <address domain='0x{:04x}' bus='0x{:02x}' slot='0x{:02x}' function='0x{:x}'/>\n      \
         </source>\n    </hostdev>\n  </devices>\n</domain>\n",
        hostdev.domain, hostdev.bus, hostdev.slot, hostdev.function
    )
}

/// Every hostdev of `xml`: host address → its guest address type ("pci", "unassigned",
/// or "none").
fn hostdevs(xml: &str) -> BTreeMap<PciAddress, String> {
    let doc = Document::parse(xml).unwrap();
    let devices = doc.child(doc.root, "devices").unwrap();
    doc.children_named(devices, "hostdev")
        .map(|id| {
            let source = doc
                .child(id, "source")
                .and_then(|s| doc.child(s, "address"))
                .unwrap();
            let host = shared_support::address_attrs(&doc, source);
            let guest = doc
                .child(id, "address")
                .and_then(|a| doc.attr(a, "type"))
                .unwrap_or("none")
                .to_string();
            (host, guest)
        })
        .collect()
}

#[test]
fn completed_domains_are_defined_by_libvirt_with_the_members_unassigned() {
    let oracles: Vec<_> = ["libvirt-oracle", "libvirt-oracle-trixie"]
        .into_iter()
        .filter_map(|name| {
            shared_support::oracle(name, "the completed domains are").map(|p| (name, p))
        })
        .collect();
    let scratch = TempTree::new("group-fix-oracle");
    let (mut completed, mut defined) = (0, 0);
    for fixture in HOSTS {
        let tree = fixture_tree(fixture);
        let host = Host::open_simulated(&tree.path).unwrap();
        for group in &host.iommu_groups().unwrap().groups {
            let Some(first) = group
                .devices
                .iter()
                .copied()
                .find(|a| host.config_space(a).unwrap().header_type == HeaderType::Endpoint)
            else {
                continue;
            };
            for machine in ["q35", "pc"] {
                let original = domain(machine, first);
                let fixed = add_missing_group_members(&host, &original).unwrap();
                let declared = hostdevs(&fixed);
                let endpoints: Vec<PciAddress> = group
                    .devices
                    .iter()
                    .copied()
                    .filter(|a| host.config_space(a).unwrap().header_type == HeaderType::Endpoint)
                    .collect();
                // Every endpoint of the group is declared; the added ones unassigned.
                for a in &endpoints {
                    let want = if *a == first { "none" } else { "unassigned" };
                    assert_eq!(
                        declared.get(a).map(String::as_str),
                        Some(want),
                        "{fixture} {first}: {a}\n{fixed}"
                    );
                }
                assert_eq!(declared.len(), endpoints.len(), "{fixture}: {fixed}");
                if fixed == original {
                    continue;
                }
                completed += 1;
                // The CLI's `check` accepts the group rule for it.
                let path = scratch.join(&format!("{fixture}-{machine}-{}.xml", group.number));
                std::fs::write(&path, &fixed).unwrap();
                let out = Command::new(env!("CARGO_BIN_EXE_virtpci"))
                    .args(["check", "--simulate", "--sysfs"])
                    .arg(&tree.path)
                    .arg(&path)
                    .output()
                    .unwrap();
                let stderr = String::from_utf8_lossy(&out.stderr);
                assert!(
                    !stderr.contains("must belong to domain"),
                    "{stderr}\n{fixed}"
                );
                for (name, oracle) in &oracles {
                    let what = format!("the completed {fixture} domain");
                    let theirs = hostdevs(&shared_support::oracle_assign(oracle, &path, &what));
                    for a in endpoints.iter().filter(|a| **a != first) {
                        assert_eq!(
                            theirs.get(a).map(String::as_str),
                            Some("unassigned"),
                            "{name} on {fixture}: {a}"
                        );
                    }
                    assert_eq!(theirs.get(&first).map(String::as_str), Some("pci"));
                    defined += 1;
                }
            }
        }
    }
    eprintln!("{completed} completed domains, {defined} defined by a real libvirt");
    // The GPU's group, the quad NIC's, the BMC VGA's, the q35 guest's multi-device groups,
    // each on two machine types.
    assert!(completed >= 6, "{completed} domains completed");
}
