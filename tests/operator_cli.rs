//! The passthrough half of the CLI as an operator meets it: each command says per device what
//! happened and exits non-zero when something asked was not done, messages name the CLI's
//! options (never C flags or functions), interrupted devices name the command that recovers
//! them, real-mode writes go to a real sysfs only, and the per-device commands work.

mod host_support;
mod hostdev_support;

use host_support::{addr, fixture_tree, TempTree};
use hostdev_support::{default_route, hostdev, write_domain};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use virtpci::host::Host;

const BIN: &str = env!("CARGO_BIN_EXE_virtpci");

/// `virtpci ARGS... --simulate --sysfs TREE [FILE]`.
fn sim(tree: &TempTree, args: &[&str], file: Option<&Path>) -> Output {
    let mut c = Command::new(BIN);
    c.args(args)
        .arg("--simulate")
        .arg("--sysfs")
        .arg(&tree.path);
    if let Some(f) = file {
        c.arg(f);
    }
    c.output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn quad(tree: &TempTree, name: &str) -> PathBuf {
    let body: String = (0..4).map(|f| hostdev(2, 0, f, "")).collect();
    write_domain(&tree.path, name, &body)
}

#[test]
fn prepare_and_reattach_say_per_device_what_happened() {
    let tree = fixture_tree("quad-nic");
    let xml = quad(&tree, "vm1");
    let out = sim(&tree, &["prepare", "--driver", "QEMU"], Some(&xml));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 4, "{stdout}");
    assert_eq!(
        stdout.lines().next().unwrap(),
        "0000:02:00.0: tg3 -> vfio-pci"
    );

    // The wrong --driver: nothing is done, each device says why, and the exit status says so.
    let out = sim(&tree, &["reattach"], Some(&xml));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stdout = text(&out.stdout);
    assert_eq!(
        stdout.lines().next().unwrap(),
        "0000:02:00.0: skipped: owned by QEMU/vm1"
    );
    assert!(
        text(&out.stderr).contains("--driver QEMU"),
        "{}",
        text(&out.stderr)
    );
    // A domain that owns nothing.
    let other = quad(&tree, "vm2");
    let out = sim(&tree, &["reattach", "--driver", "QEMU"], Some(&other));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("0000:02:00.1: skipped: owned by QEMU/vm1"));

    // The real one.
    let out = sim(&tree, &["reattach", "--driver", "QEMU"], Some(&xml));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(
        stdout.lines().next().unwrap(),
        "0000:02:00.0: vfio-pci -> tg3"
    );
    assert!(!stdout.contains("not booked"), "{stdout}");
    // Again: nothing is held any more and every device is on its driver: said, and done.
    let out = sim(&tree, &["reattach", "--driver", "QEMU"], Some(&xml));
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("0000:02:00.0: nothing to do: not held by virtpci, on tg3"));
}

#[test]
fn prepare_and_reattach_take_json() {
    let tree = fixture_tree("quad-nic");
    let xml = quad(&tree, "vm1");
    let out = sim(&tree, &["prepare", "--json"], Some(&xml));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["domain"], "vm1");
    assert_eq!(v["devices"][0]["address"], "0000:02:00.0");
    assert_eq!(v["devices"][0]["result"], "detached");
    assert_eq!(v["devices"][0]["from"], "tg3");
    assert_eq!(v["devices"][0]["to"], "vfio-pci");
    let out = sim(
        &tree,
        &["reattach", "--json", "--driver", "other"],
        Some(&xml),
    );
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["devices"][0]["result"], "skipped");
    // A refused prepare is JSON too, with the error.
    let out = sim(&tree, &["prepare", "--json"], Some(&quad(&tree, "vm2")));
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert!(v["error"]
        .as_str()
        .unwrap()
        .contains("in use by driver virtpci"));
}

#[test]
fn real_mode_writes_are_refused_on_a_tree_that_is_not_sysfs() {
    let tree = fixture_tree("quad-nic");
    let xml = quad(&tree, "vm1");
    let override_file = tree.join("bus/pci/devices/0000:02:00.0/driver_override");
    let before = std::fs::read(&override_file).ok();
    let state = tree.join("state");
    let out = Command::new(BIN)
        .args(["prepare", "--sysfs"])
        .arg(&tree.path)
        .arg("--state")
        .arg(&state)
        .arg(&xml)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("--simulate"), "{stderr}");
    assert!(stderr.contains("not a sysfs"), "{stderr}");
    assert_eq!(std::fs::read(&override_file).ok(), before);
    // Reading still works, and so does --simulate afterwards.
    let out = sim(&tree, &["check"], Some(&xml));
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Through the library as well: the real kernel's writer refuses.
    let host = Host::open(Some(&tree.path)).unwrap();
    let e = host
        .set_driver_override(&addr("0000:02:00.0"), Some("vfio-pci"))
        .unwrap_err();
    assert!(e.message.contains("not a sysfs"), "{}", e.message);
    assert_eq!(std::fs::read(&override_file).ok(), before);
}

#[test]
fn a_root_without_bus_pci_is_an_error() {
    let empty = TempTree::new("not-sysfs");
    let out = Command::new(BIN)
        .args(["groups", "--sysfs"])
        .arg(&empty.path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("bus/pci"), "{stderr}");
    assert!(!text(&out.stdout).contains("IOMMU is off"));
}

#[test]
fn messages_name_cli_options_not_c_flags() {
    let tree = fixture_tree("quad-nic");
    let proc_dir = tree.join(".virtpci-sim/proc");
    std::fs::create_dir_all(proc_dir.join("net")).unwrap();
    std::fs::write(proc_dir.join("net/route"), default_route("eno1")).unwrap();
    let xml = write_domain(&tree.path, "vm", &hostdev(0, 0x19, 0, ""));
    for cmd in ["check", "prepare"] {
        let out = sim(&tree, &[cmd], Some(&xml));
        assert_eq!(out.status.code(), Some(1));
        let all = text(&out.stderr) + &text(&out.stdout);
        assert!(all.contains("--force"), "{cmd}: {all}");
        assert!(!all.contains("VIRTPCI_"), "{cmd}: {all}");
        assert!(!all.contains("virtpci_"), "{cmd}: {all}");
    }
    // The whole-group rule names its option too.
    let tree = fixture_tree("workstation");
    let xml = write_domain(&tree.path, "gaming", &hostdev(1, 0, 0, ""));
    let out = sim(&tree, &["check"], Some(&xml));
    assert!(text(&out.stderr).contains("--legacy-group-check"));
}

#[test]
fn interrupted_devices_name_the_recovering_command() {
    let tree = fixture_tree("quad-nic");
    let xml = quad(&tree, "vm1");
    let out = Command::new(BIN)
        .args(["prepare", "--driver", "QEMU", "--simulate", "--sysfs"])
        .arg(&tree.path)
        .arg(&xml)
        .env("VIRTPCI_TEST_ABORT_AFTER_WRITES", "2")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let other = quad(&tree, "vm2");
    for cmd in ["check", "prepare"] {
        let out = sim(&tree, &[cmd, "--driver", "QEMU"], Some(&other));
        assert_eq!(out.status.code(), Some(1));
        let stderr = text(&out.stderr);
        assert!(stderr.contains("interrupted"), "{cmd}: {stderr}");
        assert!(stderr.contains("virtpci reattach"), "{cmd}: {stderr}");
    }
    let out = sim(&tree, &["status"], None);
    assert!(text(&out.stdout).contains("interrupted"));
    assert!(text(&out.stdout).contains("virtpci reattach"));
    // reattach --all recovers it.
    let out = sim(&tree, &["reattach", "--all"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let host = Host::open_simulated(&tree.path).unwrap();
    for f in 0..4 {
        let a = virtpci::PciAddress::new(0, 2, 0, f);
        assert_eq!(host.driver(&a).unwrap().as_deref(), Some("tg3"), "{a}");
    }
    let out = sim(&tree, &["status", "--json"], None);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["devices"], serde_json::json!([]));
}

#[test]
fn nodedev_commands_and_update_active() {
    let tree = fixture_tree("quad-nic");
    let out = sim(&tree, &["nodedev-detach", "0000:02:00.1"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "0000:02:00.1: tg3 -> vfio-pci");
    // status: held, unused.
    let out = sim(&tree, &["status", "--json"], None);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["devices"][0]["address"], "0000:02:00.1");
    assert_eq!(v["devices"][0]["bound_to"], "vfio-pci");
    let out = sim(&tree, &["nodedev-reset", "0000:02:00.1"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = sim(&tree, &["nodedev-reattach", "0000:02:00.1"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "0000:02:00.1: vfio-pci -> tg3");

    // update-active books a running domain's devices as they are.
    let xml = quad(&tree, "vm1");
    let out = sim(&tree, &["prepare"], Some(&xml));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let state = tree.join(".virtpci-sim/hostdevmgr");
    std::fs::remove_dir_all(&state).unwrap();
    let out = sim(&tree, &["update-active"], Some(&xml));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = sim(&tree, &["status", "--json"], None);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["devices"].as_array().unwrap().len(), 4);
    assert_eq!(v["devices"][0]["domain"], "vm1");
    // The host-critical guard: the NIC of the default route (the fixture's host_use).
    let out = sim(&tree, &["nodedev-detach", "0000:00:19.0"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("(--force overrides)"));
}

#[test]
fn status_lists_vfio_devices_nobody_holds() {
    let tree = fixture_tree("quad-nic");
    let host = Host::open_simulated(&tree.path).unwrap();
    let a = addr("0000:02:00.2");
    host.set_driver_override(&a, Some("vfio-pci")).unwrap();
    host.unbind(&a).unwrap();
    host.drivers_probe(&a).unwrap();
    assert_eq!(host.driver(&a).unwrap().as_deref(), Some("vfio-pci"));
    let out = sim(&tree, &["status"], None);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("0000:02:00.2  on vfio-pci, not held by virtpci"),
        "{stdout}"
    );
    let out = sim(&tree, &["status", "--json"], None);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["unheld_vfio"][0]["address"], "0000:02:00.2");
}

#[test]
fn check_warns_of_a_guest_slot_without_function_zero() {
    let tree = fixture_tree("quad-nic");
    let body = hostdev(
        2,
        0,
        1,
        "<address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x1'/>",
    );
    let xml = write_domain(&tree.path, "vm", &body);
    let body2 = (0..4)
        .filter(|f| *f != 1)
        .map(|f| hostdev(2, 0, f, "<address type='unassigned'/>"))
        .collect::<String>();
    let full = std::fs::read_to_string(&xml)
        .unwrap()
        .replace("</devices>", &format!("{body2}</devices>"));
    std::fs::write(&xml, full).unwrap();
    let out = sim(&tree, &["check"], Some(&xml));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("guest PCI slot 0000:00:05 is used without function 0"),
        "{}",
        text(&out.stdout)
    );
    let out = sim(&tree, &["check", "--json"], Some(&xml));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w.as_str().unwrap().contains("used without function 0")));
}

#[test]
fn check_fix_keeps_crlf_line_ends() {
    let tree = fixture_tree("quad-nic");
    let xml = tree.join("crlf.xml");
    std::fs::write(
        &xml,
        format!(
            "<domain type='kvm'>\r\n  <name>vm</name>\r\n  <devices>\r\n    {}  </devices>\r\n</domain>\r\n",
            hostdev(2, 0, 0, "").replace('\n', "\r\n")
        ),
    )
    .unwrap();
    let out = sim(&tree, &["check", "--fix"], Some(&xml));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let fixed = text(&out.stdout);
    assert_eq!(fixed.matches("<hostdev").count(), 4, "{fixed}");
    assert_eq!(
        fixed.matches('\n').count(),
        fixed.matches("\r\n").count(),
        "{fixed:?}"
    );
}

#[test]
fn groups_names_devices_filters_and_prints_no_colour_into_a_pipe() {
    let tree = fixture_tree("workstation");
    let groups = |extra: &[&str]| {
        Command::new(BIN)
            .args(["groups", "--sysfs"])
            .arg(&tree.path)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = groups(&["--device", "0000:01:00.1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("IOMMU group 1\n"), "{stdout}");
    assert!(
        stdout.contains("0000:01:00.0  VGA compatible controller [0300]: NVIDIA Corporation TU104 [GeForce RTX 2070 SUPER] [10de:1e84]  driver nvidia"),
        "{stdout}"
    );
    assert!(!stdout.contains('\x1b'), "no colour into a pipe");
    assert_eq!(stdout.matches("IOMMU group").count(), 1);
    let out = groups(&["--group", "5", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["groups"].as_array().unwrap().len(), 1);
    assert_eq!(
        v["groups"][0]["devices"][1]["vendor_name"],
        "Samsung Electronics Co Ltd"
    );
    let out = groups(&["--group", "99"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no IOMMU group 99"));
}

#[test]
fn host_show_prints_text_or_json() {
    let tree = fixture_tree("workstation");
    let show = |extra: &[&str]| {
        Command::new(BIN)
            .args(["host", "show", "0000:02:00.0", "--sysfs"])
            .arg(&tree.path)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = show(&[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("driver           nvme\n"));
    let v: serde_json::Value = serde_json::from_slice(&show(&["--json"]).stdout).unwrap();
    assert_eq!(v["block"][0], "nvme0n1");
    assert_eq!(v["vendor_name"], "Samsung Electronics Co Ltd");
}
