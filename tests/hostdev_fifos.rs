//! A FIFO (or a symlink, or a directory) at any file virtpci keeps for itself — the state
//! directory's `lock`, `hostdev-state.json` and its temporary file, and the simulated kernel's
//! records under `.virtpci-sim/` — is an error naming that file, never a hang (opening a FIFO
//! blocks until the other end is opened). Each case runs under a watchdog.

mod host_support;

use host_support::{addr, fixture_tree, TempTree};
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;
use virtpci::host::Host;
use virtpci::hostdev::{HostdevManager, PrepareOptions};
use virtpci::HostdevSpec;

fn mkfifo(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(path);
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(
        unsafe { libc::mkfifo(c.as_ptr(), 0o600) },
        0,
        "{}",
        path.display()
    );
}

/// Open the simulated host and a manager, and prepare the quad NIC: the first error.
fn open_and_prepare(root: &Path) -> virtpci::Result<()> {
    let host = Arc::new(Host::open_simulated(root)?);
    let mgr = HostdevManager::new(host, &root.join("state"))?;
    let nics: Vec<HostdevSpec> = (0..4)
        .map(|f| HostdevSpec::managed(addr(&format!("0000:02:00.{f}"))))
        .collect();
    mgr.prepare_pci_devices("QEMU", "vm1", None, &nics, PrepareOptions::default())?;
    mgr.reattach_pci_devices("QEMU", "vm1", &nics)
}

/// With a FIFO at `rel` (made after the simulated kernel first ran when `after_open`), the
/// run fails within the watchdog with a message naming the file.
fn refused_with_fifo_at(rel: &str, after_open: bool) {
    let tree: TempTree = fixture_tree("quad-nic");
    if after_open {
        Host::open_simulated(&tree.path).unwrap();
    }
    if rel == ".virtpci-sim/native-drivers.tmp" {
        // Without its record the kernel learns the drivers again and writes it.
        std::fs::remove_file(tree.join(".virtpci-sim/native-drivers")).unwrap();
    }
    mkfifo(&tree.join(rel));
    let root = tree.path.clone();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(open_and_prepare(&root)).unwrap());
    let result = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("a FIFO at {rel} hangs the manager"));
    let err = result.expect_err(rel);
    let fifo = format!(
        "'{}' is a FIFO, not a regular file",
        tree.join(rel).display()
    );
    assert!(err.message.contains(&fifo), "{rel}: {}", err.message);
}

#[test]
fn fifos_in_the_state_directory_are_errors() {
    for rel in [
        "state/lock",
        "state/hostdev-state.json",
        "state/.hostdev-state.json.tmp",
    ] {
        refused_with_fifo_at(rel, false);
    }
}

#[test]
fn fifos_among_the_simulated_kernels_files_are_errors() {
    for rel in [
        ".virtpci-sim/lock",
        ".virtpci-sim/native-drivers",
        ".virtpci-sim/native-drivers.tmp",
        ".virtpci-sim/pending",
        ".virtpci-sim/proc/self/mounts",
    ] {
        refused_with_fifo_at(rel, false);
    }
    // Files first written by a move: the kernel has learned its drivers already.
    for rel in [
        ".virtpci-sim/pending.tmp",
        ".virtpci-sim/driver_override.tmp",
        ".virtpci-sim/dynamic-ids",
    ] {
        refused_with_fifo_at(rel, true);
    }
}
