//! Bad trees and bad arguments: clear errors, no panic, nothing written, no link followed out
//! of the root.

mod host_support;

use host_support::*;
use std::io;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use virtpci::host::{Host, Resolution, Sysfs, SysfsWrite, SysfsWriter};
use virtpci::ErrorCode;

/// A writer that records every write it is asked to make and makes none.
#[derive(Debug, Default)]
struct RecordingWriter {
    seen: Mutex<Vec<String>>,
}

impl SysfsWriter for RecordingWriter {
    fn write(&self, _sysfs: &Sysfs, w: &SysfsWrite<'_>) -> io::Result<()> {
        self.seen.lock().unwrap().push(w.path.to_string());
        Ok(())
    }
}

fn hosts(root: &Path) -> Vec<Host> {
    vec![
        Host::open(Some(root)).unwrap(),
        Host::open_with_resolution(root, Resolution::Userland).unwrap(),
    ]
}

const DEV: &str = "bus/pci/devices/0000:02:00.0";

fn replace_file(tree: &TempTree, rel: &str, content: &[u8]) {
    let p = tree.join(rel);
    let _ = std::fs::remove_file(&p);
    std::fs::write(p, content).unwrap();
}

#[test]
fn missing_and_garbage_attributes() {
    let tree = fixture_tree("quad-nic");
    let a = addr("0000:02:00.0");
    std::fs::remove_file(tree.join(&format!("{DEV}/class"))).unwrap();
    for host in hosts(&tree.path) {
        let e = host.ids(&a).unwrap_err();
        assert_eq!(e.code, ErrorCode::SystemError);
        assert!(e.message.contains("/class'"), "{}", e.message);
        assert!(e.message.ends_with("No such file or directory"));
    }
    replace_file(&tree, &format!("{DEV}/class"), b"banana\n");
    for host in hosts(&tree.path) {
        let e = host.ids(&a).unwrap_err();
        assert!(
            e.message.starts_with("internal error: Unusual value in "),
            "{}",
            e.message
        );
        assert!(e.message.ends_with("class: banana"), "{}", e.message);
    }
    replace_file(&tree, &format!("{DEV}/class"), b"0x020000\n");
    replace_file(&tree, &format!("{DEV}/vendor"), b"\xff\xfe\n");
    for host in hosts(&tree.path) {
        let e = host.ids(&a).unwrap_err();
        assert!(e.message.contains("does not hold text"), "{}", e.message);
    }
    replace_file(&tree, &format!("{DEV}/vendor"), b"0x14e4\n");
    replace_file(&tree, &format!("{DEV}/config"), b"short");
    replace_file(&tree, &format!("{DEV}/numa_node"), b"north\n");
    for host in hosts(&tree.path) {
        let e = host.config_space(&a).unwrap_err();
        assert!(e.message.contains("too short: 5 bytes"), "{}", e.message);
        assert!(host.numa_node(&a).is_err());
    }
    let mut cfg = vec![0u8; 256];
    cfg[0x0e] = 0x7f;
    replace_file(&tree, &format!("{DEV}/config"), &cfg);
    std::fs::remove_file(tree.join(&format!("{DEV}/driver_override"))).unwrap();
    for host in hosts(&tree.path) {
        let e = host.config_space(&a).unwrap_err();
        assert_eq!(
            e.message,
            "internal error: Unknown PCI header type '127' for device '0000:02:00.0'"
        );
        assert_eq!(host.driver_override(&a).unwrap(), None);
    }
    std::fs::remove_file(tree.join(&format!("{DEV}/config"))).unwrap();
    for host in hosts(&tree.path) {
        let e = host.config_space(&a).unwrap_err();
        assert!(
            e.message.starts_with("Failed to open config space file '"),
            "{}",
            e.message
        );
    }
    // A garbage iommu_group link target.
    let g = tree.join(&format!("{DEV}/iommu_group"));
    std::fs::remove_file(&g).unwrap();
    std::fs::create_dir_all(tree.join("kernel/iommu_groups/x7")).unwrap();
    symlink("../../../../kernel/iommu_groups/x7", &g).unwrap();
    for host in hosts(&tree.path) {
        let e = host.iommu_group_num(&a).unwrap_err();
        assert!(
            e.message.contains("has invalid group number x7"),
            "{}",
            e.message
        );
        // The whole-host walk names the bad group directory too.
        assert!(host
            .iommu_groups()
            .unwrap_err()
            .message
            .contains("Unusual entry 'x7'"));
    }
}

#[test]
fn directories_fifos_and_symlinks_where_files_belong() {
    let tree = fixture_tree("quad-nic");
    let a = addr("0000:02:00.0");
    std::fs::remove_file(tree.join(&format!("{DEV}/vendor"))).unwrap();
    std::fs::create_dir(tree.join(&format!("{DEV}/vendor"))).unwrap();
    std::fs::remove_file(tree.join(&format!("{DEV}/config"))).unwrap();
    let fifo = tree.join(&format!("{DEV}/config"));
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    std::fs::remove_file(tree.join(&format!("{DEV}/numa_node"))).unwrap();
    symlink("/etc/hostname", tree.join(&format!("{DEV}/numa_node"))).unwrap();
    for host in hosts(&tree.path) {
        let e = host.ids(&a).unwrap_err();
        assert!(
            e.message
                .contains("is a directory where a regular file was expected"),
            "{}",
            e.message
        );
        let e = host.config_space(&a).unwrap_err();
        assert!(e.message.contains("is a FIFO"), "{}", e.message);
        let e = host.numa_node(&a).unwrap_err();
        assert!(e.message.contains("symlink"), "{}", e.message);
    }
    // A group directory that is a file.
    let gdir = tree.join("kernel/iommu_groups/6/devices");
    std::fs::remove_dir_all(&gdir).unwrap();
    std::fs::write(&gdir, b"").unwrap();
    for host in hosts(&tree.path) {
        let e = host.iommu_group(&a).unwrap_err();
        assert!(e.message.contains("is not a directory"), "{}", e.message);
    }
}

#[test]
fn links_leaving_the_root_are_errors_and_not_followed() {
    let outside = TempTree::new("outside");
    std::fs::create_dir_all(outside.join("drivers/evil")).unwrap();
    std::fs::create_dir_all(outside.join("groups/3/devices/0000:02:00.0")).unwrap();
    std::fs::write(outside.join("vendor"), "0x1234\n").unwrap();
    let tree = fixture_tree("quad-nic");
    let a = addr("0000:02:00.0");
    let depth = tree.path.components().count() + 6;
    let up = "../".repeat(depth);
    let outside_rel = format!(
        "{up}{}",
        outside.path.display().to_string().trim_start_matches('/')
    );
    // driver -> relative path climbing out; iommu_group -> absolute path.
    let drv = tree.join(&format!("{DEV}/driver"));
    std::fs::remove_file(&drv).unwrap();
    symlink(format!("{outside_rel}/drivers/evil"), &drv).unwrap();
    let grp = tree.join(&format!("{DEV}/iommu_group"));
    std::fs::remove_file(&grp).unwrap();
    symlink(outside.join("groups/3"), &grp).unwrap();
    // A whole device entry pointing outside.
    let ent = tree.join("bus/pci/devices/0000:02:00.1");
    std::fs::remove_file(&ent).unwrap();
    symlink(&outside.path, &ent).unwrap();
    for host in hosts(&tree.path) {
        let e = host.driver(&a).unwrap_err();
        assert!(
            e.message.contains("resolves outside the sysfs root"),
            "{}",
            e.message
        );
        let e = host.iommu_group_num(&a).unwrap_err();
        assert!(
            e.message.contains("outside the sysfs root"),
            "{}",
            e.message
        );
        let b = addr("0000:02:00.1");
        let e = host.ids(&b).unwrap_err();
        assert!(
            e.message.contains("outside the sysfs root"),
            "{}",
            e.message
        );
        let e = host.set_driver_override(&b, Some("vfio-pci")).unwrap_err();
        assert!(
            e.message.contains("outside the sysfs root"),
            "{}",
            e.message
        );
        // The listing still names it (the name is fine); reading it is what fails.
        assert!(host.device_addresses().unwrap().contains(&b));
    }
    // The simulated kernel refuses as well, and writes nothing outside.
    let before = digest(&outside.path);
    let host = Host::open_simulated(&tree.path).unwrap();
    assert!(host.unbind(&a).is_err());
    assert!(host.drivers_probe(&addr("0000:02:00.1")).is_err());
    assert_eq!(digest(&outside.path), before);
}

#[test]
fn bad_names_never_reach_the_writer() {
    let tree = fixture_tree("quad-nic");
    let writer = Arc::new(RecordingWriter::default());
    let host = Host::with_writer(Some(&tree.path), writer.clone()).unwrap();
    let a = addr("0000:02:00.0");
    let missing = addr("0000:09:00.0");
    for bad in ["../../etc", "vfio-pci\n", "", "..", "a/b", "x y"] {
        let e = host.set_driver_override(&a, Some(bad)).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArg, "{bad:?}");
        assert_eq!(host.bind(&a, bad).unwrap_err().code, ErrorCode::InvalidArg);
        assert_eq!(
            host.unbind_from(&a, bad).unwrap_err().code,
            ErrorCode::InvalidArg
        );
        assert_eq!(
            host.new_id(bad, 1, 2).unwrap_err().code,
            ErrorCode::InvalidArg
        );
        assert!(host.driver_loaded(bad).is_err());
    }
    for e in [
        host.set_driver_override(&missing, Some("vfio-pci"))
            .unwrap_err(),
        host.unbind(&missing).unwrap_err(),
        host.drivers_probe(&missing).unwrap_err(),
        host.reset(&missing).unwrap_err(),
        host.write_config(&missing, 0, &[0]).unwrap_err(),
    ] {
        assert_eq!(e.code, ErrorCode::DeviceMissing);
        assert!(e
            .message
            .starts_with("device not found: PCI device 0000:09:00.0 not found"));
    }
    let out_of_range = virtpci::PciAddress::new(0, 0, 0x20, 0);
    assert_eq!(
        host.device_exists(&out_of_range).unwrap_err().code,
        ErrorCode::InvalidArg
    );
    assert!(writer.seen.lock().unwrap().is_empty());
    assert_eq!(host.faults().attempted_total(), 0);
}

#[test]
fn the_cli_refuses_bad_input_without_panicking() {
    let tree = fixture_tree("quad-nic");
    let before = digest(&tree.path);
    let run = |args: &[&str]| {
        let out = Command::new(virtpci_bin()).args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let root = tree.path.to_str().unwrap();
    let (code, err) = run(&["host", "show", "../../etc", "--sysfs", root]);
    assert_eq!(code, Some(1));
    assert!(err.contains("PCI address '../../etc'"), "{err}");
    let (code, err) = run(&["host", "show", "0000:0a:00.0", "--sysfs", root]);
    assert_eq!(code, Some(1));
    assert!(err.contains("device not found"), "{err}");
    let (code, err) = run(&["groups", "--sysfs", "/nonexistent/virtpci"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("Failed to open sysfs root '/nonexistent/virtpci'"),
        "{err}"
    );
    // Garbage class breaks the listing with a message, not a panic.
    replace_file(&tree, &format!("{DEV}/class"), b"0xZZ\n");
    let (code, err) = run(&["groups", "--sysfs", root]);
    assert_eq!(code, Some(1));
    assert!(err.contains("Unusual value in"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    replace_file(&tree, &format!("{DEV}/class"), b"0x020000\n");
    // Materializing bad JSON or into a non-empty directory.
    let bad = tree.join("../bad-host.json");
    std::fs::write(&bad, r#"{"format":"virtpci-host/1","drivers":[],"devices":[{"address":"../../etc","vendor":"0x1","device":"0x2","class":"0x0"}]}"#).unwrap();
    let (code, err) = run(&[
        "host",
        "materialize",
        bad.to_str().unwrap(),
        "/tmp/virtpci-never",
    ]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("device name '../../etc' is not dddd:bb:ss.f"),
        "{err}"
    );
    assert!(!Path::new("/tmp/virtpci-never").exists());
    let _ = std::fs::remove_file(&bad);
    let fixture = fixture_path("quad-nic");
    let (code, err) = run(&["host", "materialize", fixture.to_str().unwrap(), root]);
    assert_eq!(code, Some(1));
    assert!(err.contains("is not empty"), "{err}");
    assert_eq!(digest(&tree.path), before);
}

#[test]
fn garbage_group_entries_and_unusual_device_entries() {
    let tree = fixture_tree("quad-nic");
    // An entry in a group that is not a device name.
    symlink(
        "../../../../devices",
        tree.join("kernel/iommu_groups/6/devices/evil"),
    )
    .unwrap();
    // An unusual entry in bus/pci/devices is skipped, as libvirt skips it.
    std::fs::create_dir(tree.join("bus/pci/devices/not-a-device")).unwrap();
    for host in hosts(&tree.path) {
        let e = host.iommu_group(&addr("0000:02:00.0")).unwrap_err();
        assert!(
            e.message.contains("Found invalid device link 'evil'"),
            "{}",
            e.message
        );
        assert_eq!(host.device_addresses().unwrap().len(), 11);
    }
}
