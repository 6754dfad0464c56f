//! `virtpci check`, `virtpci prepare` and `virtpci reattach` on simulated fixture hosts: the
//! dry run's report (text and JSON), its exit status and message, and the real thing.

mod host_support;
mod hostdev_support;

use hostdev_support::*;
use std::path::Path;
use std::process::{Command, Output};
use virtpci::host::Host;

const BIN: &str = env!("CARGO_BIN_EXE_virtpci");

fn run(tree: &TempTree, args: &[&str], xml: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--simulate")
        .arg("--sysfs")
        .arg(&tree.path)
        .arg(xml)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn check_reports_groups_actions_and_violations() {
    let tree = fixture_tree("workstation");
    let partial = write_domain(
        &tree.path,
        "gaming",
        &(hostdev(1, 0, 0, "") + &hostdev(1, 0, 1, "")),
    );
    let out = run(&tree, &["check"], &partial);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("hostdev 0000:01:00.0 (managed)"),
        "{stdout}"
    );
    assert!(stdout.contains("detach: nvidia -> vfio-pci"), "{stdout}");
    assert!(stdout.contains("IOMMU group 1:"));
    assert!(
        stdout.contains("0000:00:01.0  pcieport       bridge, exempt"),
        "{stdout}"
    );
    assert!(
        stdout.contains("0000:01:00.2  xhci_hcd       NOT declared"),
        "{stdout}"
    );
    assert!(stdout.contains("PM reset"));
    assert_eq!(
        text(&out.stderr).trim(),
        "error: Requested operation is not valid: All devices of the same IOMMU group 1 of the PCI device 0000:01:00.0 must belong to domain gaming: not declared: 0000:01:00.2, 0000:01:00.3; declare each as a managed hostdev hidden from the guest with <address type='unassigned'/>, or use --legacy-group-check (libvirt 9.0's rule)"
    );
    // The legacy rule passes, with a warning about the siblings left on their drivers.
    let out = run(&tree, &["check", "--legacy-group-check"], &partial);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("0000:01:00.2 of IOMMU group 1 stays on xhci_hcd"));

    // JSON for the whole group; nothing was changed by the dry runs.
    let full: String = (0..4)
        .map(|f| {
            hostdev(
                1,
                0,
                f,
                if f == 0 {
                    ""
                } else {
                    "<address type='unassigned'/>"
                },
            )
        })
        .collect();
    let whole = write_domain(&tree.path, "gaming2", &full);
    let out = run(&tree, &["check", "--json"], &whole);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["domain"], "gaming2");
    assert_eq!(v["driver"], "virtpci");
    assert_eq!(v["hostdevs"].as_array().unwrap().len(), 4);
    assert_eq!(v["hostdevs"][1]["unassigned"], true);
    assert_eq!(v["hostdevs"][0]["action"], "detach");
    assert_eq!(v["hostdevs"][0]["driver"], "nvidia");
    assert_eq!(v["groups"][0]["number"], 1);
    assert_eq!(v["groups"][0]["members"].as_array().unwrap().len(), 5);
    let host = Host::open_simulated(&tree.path).unwrap();
    assert_eq!(
        host.driver(&addr("0000:01:00.0")).unwrap().as_deref(),
        Some("nvidia")
    );
    assert!(
        !tree.join(".virtpci-sim/hostdevmgr").exists(),
        "the dry run creates no state"
    );
}

#[test]
fn check_names_host_critical_devices() {
    let tree = fixture_tree("quad-nic");
    let proc_dir = tree.join(".virtpci-sim/proc");
    std::fs::create_dir_all(proc_dir.join("net")).unwrap();
    std::fs::create_dir_all(proc_dir.join("self")).unwrap();
    std::fs::write(proc_dir.join("net/route"), default_route("eno1")).unwrap();
    std::fs::write(proc_dir.join("self/mounts"), "/dev/sda1 / ext4 rw 0 0\n").unwrap();
    let xml = write_domain(&tree.path, "vm", &hostdev(0, 0x19, 0, ""));
    let out = run(&tree, &["check"], &xml);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains(
        "host-critical: it holds network interface eno1, which carries the default route"
    ));
    assert!(text(&out.stderr).contains("PCI device 0000:00:19.0 is critical to the host"));
    let out = run(&tree, &["check", "--force"], &xml);
    assert!(out.status.success());
    let out = run(&tree, &["prepare"], &xml);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("refusing to detach it"));
}

#[test]
fn prepare_and_reattach_with_a_driver_name_and_state_dir() {
    let tree = fixture_tree("quad-nic");
    let body: String = (0..4).map(|f| hostdev(2, 0, f, "")).collect();
    let xml = write_domain(&tree.path, "vm1", &body);
    let state = tree.join("state");
    let state_arg = state.to_str().unwrap();
    let out = run(
        &tree,
        &["prepare", "--driver", "QEMU", "--state", state_arg],
        &xml,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).lines().next().unwrap(),
        "0000:02:00.0: tg3 -> vfio-pci"
    );
    // The dry run now sees the owner, and another domain is refused.
    let other = write_domain(&tree.path, "vm2", &body);
    let out = run(
        &tree,
        &["check", "--driver", "QEMU", "--state", state_arg],
        &other,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("used by QEMU/vm1"));
    assert!(
        text(&out.stderr).contains("PCI device 0000:02:00.0 is in use by driver QEMU, domain vm1")
    );
    // A reattach under the wrong driver name touches nothing, and says so.
    let out = run(&tree, &["reattach", "--state", state_arg], &xml);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("0000:02:00.0: skipped: owned by QEMU/vm1"));
    let out = run(
        &tree,
        &["reattach", "--driver", "QEMU", "--state", state_arg],
        &xml,
    );
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout).lines().next().unwrap(),
        "0000:02:00.0: vfio-pci -> tg3"
    );
    // Bad invocations.
    let out = Command::new(BIN)
        .args(["prepare", "--simulate"])
        .arg(&xml)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("--simulate needs --sysfs ROOT"));
}

/// `virtpci status` with the tree and extra arguments (no domain file).
fn status(tree: &TempTree, extra: &[&str]) -> Output {
    Command::new(BIN)
        .args(["status", "--simulate", "--sysfs"])
        .arg(&tree.path)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn status_lists_every_held_device() {
    let tree = fixture_tree("quad-nic");
    let out = status(&tree, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("no device is held"),
        "{}",
        text(&out.stdout)
    );
    let body: String = (0..4).map(|f| hostdev(2, 0, f, "")).collect();
    let xml = write_domain(&tree.path, "vm1", &body);
    let out = run(&tree, &["prepare", "--driver", "QEMU"], &xml);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = status(&tree, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 4, "{stdout}");
    let first = stdout.lines().next().unwrap();
    assert!(
        first.starts_with(
            "0000:02:00.0  used by QEMU/vm1  booked on vfio-pci  bound to vfio-pci  since 20"
        ),
        "{first}"
    );
    let out = status(&tree, &["--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let devices = json["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 4);
    assert_eq!(devices[3]["address"], "0000:02:00.3");
    assert_eq!(devices[3]["domain"], "vm1");
    assert_eq!(devices[3]["driver"], "QEMU");
    assert_eq!(devices[3]["stub"], "vfio-pci");
    assert_eq!(devices[3]["interrupted"], false);
    assert_eq!(devices[3]["bound_to"], "vfio-pci");
    // When the manager took it: RFC 3339 in UTC.
    let since = devices[3]["since"].as_str().unwrap();
    assert!(since.len() == 20 && since.ends_with('Z'), "{since}");

    let out = run(&tree, &["reattach", "--driver", "QEMU"], &xml);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value =
        serde_json::from_slice(&status(&tree, &["--json"]).stdout).unwrap();
    assert_eq!(json["devices"], serde_json::json!([]));
}

#[test]
fn check_fix_adds_the_missing_group_members_unassigned() {
    // On every bundled host: each endpoint alone in a domain; `check --fix` completes its
    // group, and `check` accepts the result (the group rule at least; other refusals — a
    // device the host needs — are not the fix's business).
    let mut completed = 0;
    for fixture in [
        "workstation",
        "sriov-server",
        "quad-nic",
        "qemu-q35",
        "numa-server",
    ] {
        let tree = fixture_tree(fixture);
        let host = virtpci::host::Host::open(Some(&tree.path)).unwrap();
        let groups = host.iommu_groups().unwrap();
        for g in &groups.groups {
            let Some(first) = g.devices.iter().find(|a| {
                host.config_space(a).unwrap().header_type == virtpci::host::HeaderType::Endpoint
            }) else {
                continue;
            };
            let alone = write_domain(
                &tree.path,
                "fixme",
                &hostdev(first.bus, first.slot, first.function, ""),
            );
            let out = run(&tree, &["check", "--fix"], &alone);
            assert!(
                out.status.success(),
                "{fixture} {first}: {}",
                text(&out.stderr)
            );
            let fixed = text(&out.stdout);
            let original = std::fs::read_to_string(&alone).unwrap();
            // Everything else byte for byte: the original with lines inserted before </devices>.
            let cut = original.find("</devices>").unwrap();
            assert!(fixed.starts_with(&original[..cut]), "{fixed}");
            assert!(fixed.ends_with(&original[cut..]), "{fixed}");
            if fixed != original {
                assert!(fixed.contains("<address type='unassigned'/></hostdev>\n</devices>"));
                completed += 1;
            }
            let path = tree.join("fixed.xml");
            std::fs::write(&path, &fixed).unwrap();
            let out = run(&tree, &["check"], &path);
            let stderr = text(&out.stderr);
            assert!(
                !stderr.contains("must belong to domain"),
                "{fixture} {first}: {stderr}\n{fixed}"
            );
        }
    }
    // The GPU's group, the quad NIC's, the BMC VGA's, the q35 guest's multi-device groups.
    assert!(completed >= 3, "{completed} domains completed");
}
