//! Reading hosts: bundled fixtures, a tree from the independent generator, and this machine's
//! real /sys (read only).

mod host_support;

use host_support::*;
use std::process::Command;
use virtpci::host::{HeaderType, Host, PciePortType, Resolution};

fn both_resolutions(root: &std::path::Path) -> Vec<Host> {
    vec![
        Host::open(Some(root)).unwrap(),
        Host::open_with_resolution(root, Resolution::Userland).unwrap(),
    ]
}

#[test]
fn workstation_gpu_group_includes_the_port_without_acs() {
    let tree = fixture_tree("workstation");
    for host in both_resolutions(&tree.path) {
        let gpu = addr("0000:01:00.0");
        assert_eq!(host.iommu_group_num(&gpu).unwrap(), Some(1));
        let group = host.iommu_group(&gpu).unwrap().unwrap();
        let members: Vec<String> = group.devices.iter().map(|a| a.to_string()).collect();
        assert_eq!(
            members,
            [
                "0000:00:01.0",
                "0000:01:00.0",
                "0000:01:00.1",
                "0000:01:00.2",
                "0000:01:00.3"
            ]
        );
        let port = host.config_space(&addr("0000:00:01.0")).unwrap();
        assert_eq!(port.header_type, HeaderType::PciBridge);
        assert_eq!(port.pcie.unwrap().port_type, PciePortType::RootPort);
        assert!(port.acs.is_none());
        assert_eq!(port.bridge_buses(), Some((0, 1, 1)));
        let cfg = host.config_space(&gpu).unwrap();
        assert!(cfg.multifunction);
        assert!(!cfg.has_flr());
        assert!(cfg.has_pm_reset());
        let d = host.device(&gpu).unwrap();
        assert_eq!(d.driver.as_deref(), Some("nvidia"));
        assert_eq!(d.ids.vendor, 0x10de);
        assert_eq!(d.ids.class, 0x030000);
        assert_eq!(d.numa_node, Some(0));
        assert_eq!(d.reset_methods, Some(vec!["bus".to_string()]));
        assert_eq!(d.sysfs_path, "devices/pci0000:00/0000:00:01.0/0000:01:00.0");
        assert_eq!(
            host.parent_bridge(&gpu).unwrap(),
            Some(addr("0000:00:01.0"))
        );
        assert_eq!(host.parent_bridge(&addr("0000:00:02.0")).unwrap(), None);
        // The root port's children have their own block devices; the port has none.
        assert!(host
            .block_devices(&addr("0000:00:1b.0"))
            .unwrap()
            .is_empty());
        assert_eq!(
            host.block_devices(&addr("0000:02:00.0")).unwrap(),
            ["nvme0n1", "nvme0n1p1", "nvme0n1p2"]
        );
        assert_eq!(
            host.net_interfaces(&addr("0000:03:00.0")).unwrap(),
            ["enp3s0"]
        );
        assert!(host.config_space(&addr("0000:02:00.0")).unwrap().has_flr());
    }
}

#[test]
fn sriov_server_pf_vfs_and_bridge_group() {
    let tree = fixture_tree("sriov-server");
    let host = Host::open(Some(&tree.path)).unwrap();
    let pf = addr("0000:3b:00.0");
    let vfs: Vec<String> = host
        .virtual_functions(&pf)
        .unwrap()
        .iter()
        .map(|a| a.to_string())
        .collect();
    assert_eq!(vfs.len(), 8);
    assert_eq!(vfs[0], "0000:3b:02.0");
    assert_eq!(vfs[7], "0000:3b:02.7");
    for (i, vf) in vfs.iter().enumerate() {
        let vf = addr(vf);
        assert_eq!(host.physical_function(&vf).unwrap(), Some(pf));
        assert_eq!(host.iommu_group_num(&vf).unwrap(), Some(23 + i as u32));
        assert_eq!(host.iommu_group(&vf).unwrap().unwrap().devices, [vf]);
    }
    assert_eq!(host.sriov_totalvfs(&pf).unwrap(), Some(64));
    assert_eq!(
        host.driver(&addr("0000:3b:02.4")).unwrap().as_deref(),
        Some("vfio-pci")
    );
    assert!(host.bound_to_vfio(&addr("0000:3b:02.4")).unwrap());
    assert!(!host.bound_to_vfio(&addr("0000:3b:02.0")).unwrap());
    assert_eq!(host.driver(&addr("0000:3b:02.7")).unwrap(), None);
    // VGA behind the AST1150 PCIe-to-PCI bridge shares the bridge's group.
    let group = host.iommu_group(&addr("0000:03:00.0")).unwrap().unwrap();
    assert_eq!(group.number, 10);
    assert_eq!(
        group.devices,
        [
            addr("0000:00:1c.0"),
            addr("0000:02:00.0"),
            addr("0000:03:00.0")
        ]
    );
    let vga = host.config_space(&addr("0000:03:00.0")).unwrap();
    assert!(vga.pcie.is_none(), "conventional PCI");
    assert_eq!(vga.bytes.len(), 256);
    let bridge = host.config_space(&addr("0000:02:00.0")).unwrap();
    assert_eq!(
        bridge.pcie.unwrap().port_type,
        PciePortType::PcieToPciBridge
    );
    assert_eq!(host.numa_node(&addr("0000:d8:00.0")).unwrap(), Some(1));
    assert_eq!(
        host.parent_bridge(&addr("0000:03:00.0")).unwrap(),
        Some(addr("0000:02:00.0"))
    );
}

#[test]
fn quad_nic_is_one_group_of_four_functions() {
    let tree = fixture_tree("quad-nic");
    let host = Host::open(Some(&tree.path)).unwrap();
    let g = host.iommu_group(&addr("0000:02:00.2")).unwrap().unwrap();
    assert_eq!(g.number, 6);
    assert_eq!(
        g.devices,
        (0..4)
            .map(|f| addr(&format!("0000:02:00.{f}")))
            .collect::<Vec<_>>()
    );
    assert!(
        host.config_space(&addr("0000:02:00.0"))
            .unwrap()
            .multifunction
    );
    assert_eq!(
        host.net_interfaces(&addr("0000:00:19.0")).unwrap(),
        ["eno1"]
    );
}

#[test]
fn iommu_groups_lists_every_group_and_devices_without_one() {
    let tree = fixture_tree("qemu-q35");
    let host = Host::open(Some(&tree.path)).unwrap();
    let all = host.iommu_groups().unwrap();
    let numbers: Vec<u32> = all.groups.iter().map(|g| g.number).collect();
    assert_eq!(numbers, (0..=12).collect::<Vec<_>>());
    assert!(all.no_group.is_empty());
    let g8 = &all.groups[8];
    assert_eq!(g8.devices, [addr("0000:01:00.0")]);
    let g11 = &all.groups[11];
    assert_eq!(
        g11.devices,
        [
            addr("0000:04:00.0"),
            addr("0000:05:01.0"),
            addr("0000:05:02.0")
        ]
    );
    assert_eq!(host.device_addresses().unwrap().len(), 18);
}

#[test]
fn snapshot_of_a_materialized_fixture_round_trips() {
    use virtpci::host::snapshot::HostSnapshot;
    for name in [
        "workstation",
        "sriov-server",
        "quad-nic",
        "qemu-q35",
        "numa-server",
    ] {
        let tree = fixture_tree(name);
        let host = Host::open(Some(&tree.path)).unwrap();
        let snap = HostSnapshot::capture(&host).unwrap();
        let again = TempTree::new("again");
        let dir = again.join("sys");
        snap.materialize(&dir).unwrap();
        let snap2 = HostSnapshot::capture(&Host::open(Some(&dir)).unwrap()).unwrap();
        assert_eq!(snap, snap2, "{name}");
        assert_eq!(snap.devices.len(), {
            let text = std::fs::read_to_string(fixture_path(name)).unwrap();
            HostSnapshot::from_json(&text).unwrap().devices.len()
        });
    }
}

#[test]
fn independent_generator_tree_through_the_library() {
    let (tree, expect) = generated_tree();
    let root = tree.join("sys");
    for host in both_resolutions(&root) {
        for (dev, parent) in expect["parents"].as_object().unwrap() {
            let got = host
                .parent_bridge(&addr(dev))
                .unwrap()
                .map(|a| a.to_string());
            assert_eq!(got.as_deref(), parent.as_str(), "parent of {dev}");
        }
        for (dev, driver) in expect["drivers"].as_object().unwrap() {
            assert_eq!(
                host.driver(&addr(dev)).unwrap().as_deref(),
                driver.as_str(),
                "driver of {dev}"
            );
        }
        for (pf, vfs) in expect["vfs"].as_object().unwrap() {
            let got: Vec<String> = host
                .virtual_functions(&addr(pf))
                .unwrap()
                .iter()
                .map(|a| a.to_string())
                .collect();
            let want: Vec<String> = vfs
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect();
            assert_eq!(got, want);
        }
        // Its config layout differs from ours: PM at 0xc8 then PCIe at 0x80, ACS after AER.
        let port = host.config_space(&addr("0000:03:08.0")).unwrap();
        assert_eq!(port.pcie.unwrap().port_type, PciePortType::DownstreamPort);
        assert_eq!(port.acs.unwrap().offset, 0x148);
        assert!(!port.downstream_port_lacks_acs());
        assert_eq!(port.bridge_buses(), Some((3, 4, 4)));
        assert_eq!(
            host.config_space(&addr("0000:02:00.0"))
                .unwrap()
                .bridge_buses(),
            Some((2, 3, 5))
        );
        assert!(host.config_space(&addr("0000:04:00.0")).unwrap().has_flr());
        assert_eq!(host.iommu_group_num(&addr("0001:01:00.0")).unwrap(), None);
        assert_eq!(
            host.net_interfaces(&addr("0000:05:00.1")).unwrap(),
            ["enp5s0f1"]
        );
    }
}

#[test]
fn independent_generator_tree_through_the_cli() {
    let (tree, expect) = generated_tree();
    let out = Command::new(virtpci_bin())
        .args(["groups", "--json", "--sysfs"])
        .arg(tree.join("sys"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The names come from the PCI ID database, which the generator does not know: checked
    // to be there, then compared without them.
    let lists = ["groups", "no_iommu_group"];
    for list in lists {
        for entry in got[list].as_array_mut().unwrap() {
            let devices = match entry.get_mut("devices") {
                Some(d) => d.as_array_mut().unwrap().iter_mut().collect::<Vec<_>>(),
                None => vec![entry],
            };
            for d in devices {
                let d = d.as_object_mut().unwrap();
                for name in ["class_name", "vendor_name", "device_name"] {
                    assert!(d.remove(name).is_some(), "{name} missing");
                }
            }
        }
    }
    assert_eq!(got, expect["cli"]);
    let table = Command::new(virtpci_bin())
        .args(["groups", "--sysfs"])
        .arg(tree.join("sys"))
        .output()
        .unwrap();
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(
        text.contains("  0000:07:01.0  Ethernet controller [0200]"),
        "{text}"
    );
    let no_group = text
        .find("no IOMMU group\n")
        .expect("a block of devices without a group");
    assert!(text[no_group..].contains("  0001:01:00.0"), "{text}");
}

#[test]
fn json_shape_is_exactly_the_documented_one() {
    let tree = fixture_tree("qemu-q35");
    let out = Command::new(virtpci_bin())
        .args(["groups", "--json", "--sysfs"])
        .arg(&tree.path)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(
        r#"{"group":8,"devices":[{"address":"0000:01:00.0","vendor":"0x8086","device":"0x10d3","class":"0x020000","driver":"e1000e","class_name":"Ethernet controller","vendor_name":"Intel Corporation","device_name":"82574L Gigabit Network Connection"}]}"#
    ), "{text}");
    assert!(text.contains(r#""driver":null"#));
    assert!(text.trim_end().ends_with(r#""no_iommu_group":[]}"#));
}

/// This machine's /sys, read only, against what `ls -l /sys/bus/pci/devices/*/` shows.
#[test]
fn real_sys_agrees_with_ls() {
    let devices = std::path::Path::new("/sys/bus/pci/devices");
    if !devices.is_dir() {
        eprintln!("skipped: /sys/bus/pci is absent");
        return;
    }
    let host = Host::open(None).unwrap();
    let addrs = host.device_addresses().unwrap();
    let mut listed: Vec<String> = std::fs::read_dir(devices)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    listed.sort();
    assert_eq!(
        addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        listed
    );
    let groups = host.iommu_groups().unwrap();
    for a in &addrs {
        let out = Command::new("ls")
            .arg("-l")
            .arg(devices.join(a.to_string()).join(""))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let link = |name: &str| -> Option<String> {
            text.lines()
                .find(|l| l.contains(&format!(" {name} -> ")))
                .map(|l| l.rsplit('/').next().unwrap().to_string())
        };
        assert_eq!(host.driver(a).unwrap(), link("driver"), "driver of {a}");
        let group = link("iommu_group").map(|g| g.parse::<u32>().unwrap());
        assert_eq!(host.iommu_group_num(a).unwrap(), group, "group of {a}");
        match group {
            Some(n) => assert!(groups
                .groups
                .iter()
                .any(|g| g.number == n && g.devices.contains(a))),
            None => assert!(groups.no_group.contains(a)),
        }
        let vendor = std::fs::read_to_string(devices.join(a.to_string()).join("vendor")).unwrap();
        let ids = host.ids(a).unwrap();
        assert_eq!(format!("0x{:04x}", ids.vendor), vendor.trim());
        let cfg = host.config_space(a).unwrap();
        assert_eq!(cfg.vendor(), ids.vendor);
        assert_eq!(
            host.physical_function(a).unwrap().is_some(),
            link("physfn").is_some()
        );
    }
}
