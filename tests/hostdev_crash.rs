//! Crash safety: the CLI (`virtpci prepare --simulate`) is killed after each sysfs write in
//! turn, and at random moments with `kill -9`; a manager created afterwards on the same state
//! directory must book every device that is not where it was (none lost), never twice, refuse
//! the group to another domain, and the domain's re-attach (another CLI process) must put
//! every device back on its original driver and empty the lists. Same for a crash during
//! re-attach.

mod host_support;
mod hostdev_support;

use hostdev_support::*;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use virtpci::host::Host;
use virtpci::hostdev::{HostdevManager, PrepareOptions};

const BIN: &str = env!("CARGO_BIN_EXE_virtpci");

fn domain_xml(dir: &Path) -> std::path::PathBuf {
    let mut xml = String::from("<domain type='kvm'><name>vm1</name><devices>\n");
    for f in 0..4 {
        xml.push_str(&format!(
            "<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x02' slot='0x00' function='0x{f}'/></source></hostdev>\n"
        ));
    }
    xml.push_str("</devices></domain>\n");
    let path = dir.join("dom.xml");
    std::fs::write(&path, xml).unwrap();
    path
}

fn cli(tree: &TempTree, verb: &str, xml: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.arg(verb)
        .arg("--simulate")
        .arg("--sysfs")
        .arg(&tree.path)
        .arg("--state")
        .arg(tree.join("state"))
        .arg("--driver")
        .arg("QEMU")
        .arg(xml)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

/// After a crash: the saved book accounts for every moved device, and re-attach restores all.
fn recover_and_check(tree: &TempTree, xml: &Path, initial: &Drivers, what: &str) -> bool {
    let host = Arc::new(Host::open_simulated(&tree.path).unwrap());
    // Loading refuses a book that lists a device twice.
    let mgr = HostdevManager::new(host.clone(), &tree.join("state")).unwrap();
    let book = mgr.book().unwrap();
    let now = drivers(&host);
    let mut moved = false;
    for (a, state) in &now {
        if state != &initial[a] {
            moved = true;
            let e = book
                .active_entry(a)
                .unwrap_or_else(|| panic!("{what}: {a} moved ({state:?}) but nobody owns it"));
            assert_eq!(e.owner.domain, "vm1", "{what}");
        }
    }
    let booked = !book.active.is_empty();
    if booked {
        let e = mgr
            .prepare_pci_devices(
                "QEMU",
                "vm2",
                None,
                &managed(&QUAD),
                PrepareOptions::default(),
            )
            .unwrap_err();
        assert!(
            e.message.contains("is in use by driver QEMU, domain vm1"),
            "{what}: {}",
            e.message
        );
    }
    let out = cli(tree, "reattach", xml)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{what}: reattach failed: {}",
        String::from_utf8_lossy(&out.stderr).trim_end()
    );
    assert_eq!(&drivers(&host), initial, "{what}: after reattach");
    let book = mgr.book().unwrap();
    assert!(
        book.active.is_empty() && book.inactive.is_empty(),
        "{what}: {book:?}"
    );
    moved || booked
}

type Drivers = std::collections::BTreeMap<virtpci::PciAddress, (Option<String>, Option<String>)>;

#[test]
fn killed_after_each_write_of_prepare() {
    let tree = fixture_tree("quad-nic");
    let xml = domain_xml(&tree.path);
    let initial = drivers(&Host::open_simulated(&tree.path).unwrap());
    let writes = 12; // 4 devices × (driver_override, unbind, drivers_probe)
    for k in 0..=writes {
        let status = cli(&tree, "prepare", &xml)
            .env("VIRTPCI_TEST_ABORT_AFTER_WRITES", k.to_string())
            .status()
            .unwrap();
        assert_eq!(
            status.signal(),
            Some(libc::SIGABRT),
            "abort after {k} writes"
        );
        recover_and_check(&tree, &xml, &initial, &format!("abort after {k} writes"));
    }
    // Without the hook the same command succeeds, then a crash during re-attach.
    for k in 0..=writes {
        assert!(cli(&tree, "prepare", &xml).status().unwrap().success());
        let status = cli(&tree, "reattach", &xml)
            .env("VIRTPCI_TEST_ABORT_AFTER_WRITES", k.to_string())
            .status()
            .unwrap();
        assert_eq!(status.signal(), Some(libc::SIGABRT));
        recover_and_check(
            &tree,
            &xml,
            &initial,
            &format!("reattach abort after {k} writes"),
        );
    }
    eprintln!(
        "crash runs: {} prepare + {} reattach abort points",
        writes + 1,
        writes + 1
    );
}

/// The simulated kernel makes one write in several steps (links, files, its own record), in
/// the process that writes; the kernel makes it in one system call, which `kill -9` cannot cut
/// in two. Prepare, then re-attach, are aborted after each step in turn: the next process must
/// find each write made whole or not at all. (A kill inside an unbind once left a device
/// without its `driver` link but still listed by its driver, and re-attach failed with
/// "Failed to trigger a probe for PCI device '0000:02:00.0': File exists".)
#[test]
fn killed_between_the_steps_of_a_write() {
    let tree = fixture_tree("quad-nic");
    let xml = domain_xml(&tree.path);
    let initial = drivers(&Host::open_simulated(&tree.path).unwrap());
    for verb in ["prepare", "reattach"] {
        let mut steps = 1;
        loop {
            if verb == "reattach" {
                assert!(cli(&tree, "prepare", &xml).status().unwrap().success());
            }
            let status = cli(&tree, verb, &xml)
                .env("VIRTPCI_TEST_ABORT_AFTER_STEPS", steps.to_string())
                .status()
                .unwrap();
            let what = format!("{verb} aborted after {steps} steps");
            let finished = status.success();
            if !finished {
                assert_eq!(status.signal(), Some(libc::SIGABRT), "{what}");
            }
            // The next process to attach finishes the write, whatever it reads afterwards.
            Host::open_simulated(&tree.path).unwrap();
            assert_links_agree(&tree, &what);
            recover_and_check(&tree, &xml, &initial, &what);
            if finished {
                break;
            }
            steps += 1;
            assert!(steps < 1000, "{verb} never finished");
        }
        // Prepare moves 4 devices: 3 writes each, several steps per write.
        assert!(steps > 24, "{verb}: only {steps} steps");
        eprintln!("{verb}: aborted after each of {} steps", steps - 1);
    }
}

/// Each device of the domain is bound (its `driver` link), listed by its driver and shows
/// `vfio-dev/` all together or not at all, and no write is left unfinished.
fn assert_links_agree(tree: &TempTree, what: &str) {
    assert!(
        !tree.join(".virtpci-sim/pending").exists(),
        "{what}: a write is left unfinished"
    );
    let drivers_dir = tree.join("bus/pci/drivers");
    for a in QUAD {
        let dev = tree.join(&format!("bus/pci/devices/{a}"));
        let bound = std::fs::read_link(dev.join("driver"))
            .ok()
            .and_then(|t| Some(t.file_name()?.to_string_lossy().into_owned()));
        let mut listed_by = Vec::new();
        for d in std::fs::read_dir(&drivers_dir).unwrap() {
            let d = d.unwrap();
            if d.path().join(a).symlink_metadata().is_ok() {
                listed_by.push(d.file_name().to_string_lossy().into_owned());
            }
        }
        assert_eq!(
            listed_by,
            bound.iter().cloned().collect::<Vec<_>>(),
            "{what}: {a} is bound to {bound:?} but listed by {listed_by:?}"
        );
        assert_eq!(
            dev.join("vfio-dev").exists(),
            bound.as_deref() == Some("vfio-pci"),
            "{what}: {a} is bound to {bound:?}; vfio-dev/ disagrees"
        );
    }
}

/// A small deterministic generator (no dependency): xorshift.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn killed_at_random_moments() {
    let runs: u64 = std::env::var("VIRTPCI_CRASH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(25);
    let tree = fixture_tree("quad-nic");
    let xml = domain_xml(&tree.path);
    let initial = drivers(&Host::open_simulated(&tree.path).unwrap());
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut interrupted = 0;
    let mut midway = 0;
    for run in 0..runs {
        let mut child = cli(&tree, "prepare", &xml)
            .env("VIRTPCI_TEST_WRITE_DELAY_US", "3000")
            .spawn()
            .unwrap();
        // 12 writes × 3 ms after start-up: kill anywhere in 0..120 ms, before, during or after.
        std::thread::sleep(Duration::from_micros(next(&mut seed) % 120_000));
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        if status.signal() == Some(libc::SIGKILL) {
            interrupted += 1;
        }
        if recover_and_check(&tree, &xml, &initial, &format!("random kill run {run}")) {
            midway += 1;
        }
    }
    eprintln!(
        "random kills: {runs} runs, {interrupted} killed before exiting, {midway} left devices moved or booked"
    );
    assert!(interrupted > 0);
}
