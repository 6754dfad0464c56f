//! The MAC and VLAN a PF holds for each VF, on the simulated kernel: set through the host's
//! one writer (fault injection applies), kept in `.virtpci-sim/vf-net` across processes, shown
//! by `virtpci host show`, kept by `host snapshot` and `host materialize`; refused on a
//! tree that is not the running kernel's /sys (netlink would reach this machine's interfaces).

mod host_support;

use host_support::*;
use std::process::Command;
use virtpci::host::{Host, MacAddr, VfNet, WriteKind};
use virtpci::ErrorCode;

/// Run the CLI and expect success; its standard output.
fn virtpci(args: &[&std::ffi::OsStr]) -> Vec<u8> {
    let out = Command::new(virtpci_bin()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn show(root: &std::path::Path, a: &str) -> serde_json::Value {
    let out = virtpci(&[
        "host".as_ref(),
        "show".as_ref(),
        "--json".as_ref(),
        a.as_ref(),
        "--sysfs".as_ref(),
        root.as_ref(),
    ]);
    serde_json::from_slice(&out).unwrap()
}

#[test]
fn the_simulated_pf_keeps_each_vfs_mac_and_vlan() {
    let tree = fixture_tree("sriov-server");
    let host = Host::open_simulated(&tree.path).unwrap();
    let pf = addr("0000:3b:00.0");
    let vf = addr("0000:3b:02.2");
    assert_eq!(host.vf_index(&vf).unwrap(), Some((pf, 2)));
    assert_eq!(host.vf_index(&pf).unwrap(), None);
    // A fresh VF: the zero MAC, no VLAN.
    assert_eq!(host.vf_net(&pf, 2).unwrap(), VfNet::default());
    let want = VfNet {
        mac: MacAddr::parse("52:54:00:aa:bb:cc").unwrap(),
        vlan: 42,
    };

    // A fault changes nothing.
    host.faults().inject(Some(WriteKind::VfNet), 1, libc::EIO);
    let e = host.set_vf_net(&pf, 2, want).unwrap_err();
    assert_eq!(e.code, ErrorCode::SystemError);
    assert_eq!(
        e.message,
        "Failed to set MAC address 52:54:00:aa:bb:cc and VLAN 42 of VF 2 of PF 0000:3b:00.0: Input/output error"
    );
    assert_eq!(host.vf_net(&pf, 2).unwrap(), VfNet::default());

    host.set_vf_net(&pf, 2, want).unwrap();
    assert_eq!(host.vf_net(&pf, 2).unwrap(), want);
    assert_eq!(host.vf_net(&pf, 3).unwrap(), VfNet::default());
    // Another process (another simulator on the tree) sees it.
    let again = Host::open_simulated(&tree.path).unwrap();
    assert_eq!(again.vf_net(&pf, 2).unwrap(), want);
    // An index the PF does not have, or a PF without VFs: ENODEV, nothing kept.
    assert!(host.set_vf_net(&pf, 8, want).is_err());
    assert!(host.set_vf_net(&addr("0000:3b:00.1"), 0, want).is_err());
    assert_eq!(host.vf_net(&pf, 8).unwrap(), VfNet::default());

    // host show reports the VF's PF, index, MAC and VLAN.
    let j = show(&tree.path, "0000:3b:02.2");
    assert_eq!(
        j["vf"],
        serde_json::json!({"pf": "0000:3b:00.0", "index": 2, "mac": "52:54:00:aa:bb:cc", "vlan": 42})
    );
    assert_eq!(
        show(&tree.path, "0000:3b:00.0")["vf"],
        serde_json::Value::Null
    );
    assert_eq!(
        show(&tree.path, "0000:3b:02.3")["vf"]["mac"],
        "00:00:00:00:00:00"
    );

    // snapshot + materialize keep it.
    let snap = virtpci(&[
        "host".as_ref(),
        "snapshot".as_ref(),
        "--sysfs".as_ref(),
        tree.path.as_ref(),
    ]);
    let record: serde_json::Value = serde_json::from_slice(&snap).unwrap();
    let vf_record = record["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["address"] == "0000:3b:02.2")
        .unwrap();
    assert_eq!(vf_record["vf_mac"], "52:54:00:aa:bb:cc");
    assert_eq!(vf_record["vf_vlan"], 42);
    let copy = TempTree::new("vf-net-copy");
    let json = copy.join("h.json");
    std::fs::write(&json, &snap).unwrap();
    let dir = copy.join("tree");
    virtpci(&[
        "host".as_ref(),
        "materialize".as_ref(),
        json.as_ref(),
        dir.as_ref(),
    ]);
    assert_eq!(show(&dir, "0000:3b:02.2")["vf"], j["vf"]);
    assert_eq!(
        Host::open_simulated(&dir).unwrap().vf_net(&pf, 2).unwrap(),
        want
    );
}

#[test]
fn a_real_host_refuses_rather_than_pretends() {
    let tree = fixture_tree("sriov-server");
    // Opened with the kernel writer: no simulator, as on a real host.
    let host = Host::open(Some(&tree.path)).unwrap();
    let pf = addr("0000:3b:00.0");
    let want = VfNet {
        mac: MacAddr::parse("52:54:00:aa:bb:cc").unwrap(),
        vlan: 42,
    };
    let refusal = format!(
        "Operation not supported: a VF's MAC/VLAN is set through netlink on the running kernel, and the sysfs tree at '{}' is not its /sys (use the simulated kernel for a tree)",
        tree.path.display()
    );
    let e = host.set_vf_net(&pf, 2, want).unwrap_err();
    assert_eq!(e.code, ErrorCode::OperationUnsupported);
    assert_eq!(e.message, refusal);
    let e = host.vf_net(&pf, 2).unwrap_err();
    assert_eq!(e.message, refusal);
    assert_eq!(host.faults().attempted_total(), 0);
}
