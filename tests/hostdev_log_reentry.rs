//! The log callback may call virtpci (README, "Thread safety"): every hostdev call that logs a
//! warning does so after releasing its list lock and the state directory's flock. The callback
//! here asks both the manager that logs and a second manager on the same state directory who
//! owns a device; each scenario runs under a watchdog, so a deadlock fails the test instead of
//! hanging it. Scenarios: update-active of a device still on its host driver, and failed moves
//! whose undo fails too (faults armed on every sysfs write after the first) in prepare,
//! re-attach, node-device detach and node-device re-attach.

mod host_support;

use host_support::fixture_tree;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::Duration;
use virtpci::ffi::address::VirtpciPciAddress;
use virtpci::ffi::general::*;
use virtpci::ffi::host::*;
use virtpci::ffi::hostdev::*;
use virtpci::ffi::log::VIRTPCI_LOG_WARNING;

static MANAGERS: [AtomicPtr<VirtpciHostdevManager>; 2] = [
    AtomicPtr::new(ptr::null_mut()),
    AtomicPtr::new(ptr::null_mut()),
];
/// Every warning seen, and whether the callback's own calls succeeded.
static SEEN: Mutex<Vec<(String, bool)>> = Mutex::new(Vec::new());

unsafe extern "C" fn reentering(level: c_int, message: *const c_char, _: *mut c_void) {
    // SAFETY: the message is a NUL-terminated string valid during the call.
    let text = unsafe { CStr::from_ptr(message) }
        .to_string_lossy()
        .into_owned();
    let mut ok = true;
    for m in &MANAGERS {
        let a = nic(0);
        let (mut drv, mut dom) = (ptr::null_mut(), ptr::null_mut());
        // SAFETY: live handles (set before any call that logs); out-pointers are locals.
        let rc =
            unsafe { virtpci_hostdev_get_owner(m.load(Ordering::SeqCst), &a, &mut drv, &mut dom) };
        ok &= rc >= 0;
        // SAFETY: NULL or strings from the call above.
        unsafe {
            virtpci_string_free(drv);
            virtpci_string_free(dom);
        }
    }
    if level == VIRTPCI_LOG_WARNING {
        SEEN.lock().unwrap().push((text, ok));
    }
}

fn nic(function: u32) -> VirtpciPciAddress {
    VirtpciPciAddress {
        domain: 0,
        bus: 2,
        slot: 0,
        function,
    }
}

fn all_nics() -> Vec<VirtpciHostdev> {
    (0..4)
        .map(|f| VirtpciHostdev {
            source: nic(f),
            managed: 1,
            unassigned: 0,
            driver: ptr::null(),
        })
        .collect()
}

/// Raw pointers for the watchdog's thread.
#[derive(Clone, Copy)]
struct Handles {
    host: usize,
    mgr: usize,
}

/// Run `call` on another thread; fail when it has not returned after 30 s (a deadlock) or when
/// no warning reached the callback.
fn within_watchdog(what: &str, h: Handles, call: fn(Handles) -> c_int) {
    SEEN.lock().unwrap().clear();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(call(h)).unwrap());
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(_) => {}
        Err(_) => panic!("{what}: the call did not return: deadlock from the log callback"),
    }
    let seen = SEEN.lock().unwrap().clone();
    assert!(!seen.is_empty(), "{what}: no warning was logged");
    for (message, ok) in seen {
        assert!(
            ok,
            "{what}: a call from the callback failed (warning '{message}')"
        );
    }
    // SAFETY: live host handle.
    unsafe { virtpci_host_clear_faults(h.host as *mut VirtpciHost) };
}

/// Every sysfs write from the second on fails: a move starts, fails, and its undo fails.
fn arm_faults(h: Handles) {
    for nth in 2..40 {
        // SAFETY: live host handle.
        let rc =
            unsafe { virtpci_host_inject_fault(h.host as *mut VirtpciHost, ptr::null(), nth, 5) };
        assert_eq!(rc, 0);
    }
}

fn mgr(h: Handles) -> *mut VirtpciHostdevManager {
    h.mgr as *mut VirtpciHostdevManager
}

const DRV: *const c_char = c"QEMU".as_ptr();
const DOM: *const c_char = c"vm1".as_ptr();

fn update_active_on_host_driver(h: Handles) -> c_int {
    let d = all_nics();
    // SAFETY: live handle, valid array.
    unsafe { virtpci_hostdev_update_active_pci_devices(mgr(h), DRV, DOM, d.as_ptr(), 1) }
}

fn prepare_all(h: Handles) -> c_int {
    let d = all_nics();
    // SAFETY: live handle, valid array.
    unsafe { virtpci_hostdev_prepare_pci_devices(mgr(h), DRV, DOM, ptr::null(), d.as_ptr(), 4, 0) }
}

fn reattach_all(h: Handles) -> c_int {
    let d = all_nics();
    // SAFETY: live handle, valid array.
    unsafe { virtpci_hostdev_reattach_pci_devices(mgr(h), DRV, DOM, d.as_ptr(), 4) }
}

fn node_detach(h: Handles) -> c_int {
    // SAFETY: live handle, valid address.
    unsafe { virtpci_hostdev_pci_node_device_detach(mgr(h), &nic(0), ptr::null(), 0) }
}

fn node_reattach(h: Handles) -> c_int {
    // SAFETY: live handle, valid address.
    unsafe { virtpci_hostdev_pci_node_device_reattach(mgr(h), &nic(0)) }
}

/// `call` with every write after the first failing.
fn faulty(h: Handles, call: fn(Handles) -> c_int) -> c_int {
    arm_faults(h);
    call(h)
}

#[test]
fn a_callback_that_calls_the_manager_does_not_deadlock() {
    let tree = fixture_tree("quad-nic");
    let root = CString::new(tree.path.to_str().unwrap()).unwrap();
    let state = CString::new(tree.join("state").to_str().unwrap()).unwrap();
    // SAFETY: valid C strings.
    let host = unsafe { virtpci_host_open_simulated(root.as_ptr()) };
    assert!(!host.is_null());
    for m in &MANAGERS {
        // SAFETY: live host, valid string.
        let p = unsafe { virtpci_hostdev_manager_new(host, state.as_ptr()) };
        assert!(!p.is_null());
        m.store(p, Ordering::SeqCst);
    }
    let h = Handles {
        host: host as usize,
        mgr: MANAGERS[0].load(Ordering::SeqCst) as usize,
    };
    // SAFETY: the callback is thread-safe and takes no opaque pointer.
    unsafe { virtpci_set_log_callback(Some(reentering), ptr::null_mut()) };

    within_watchdog(
        "update-active of a device on its host driver",
        h,
        update_active_on_host_driver,
    );
    // Booked without a known original driver and still on it: update-active with no device
    // moves it to the inactive list, node-device re-attach forgets it.
    // SAFETY: live handle; n is 0.
    assert_eq!(
        unsafe { virtpci_hostdev_update_active_pci_devices(mgr(h), DRV, DOM, ptr::null(), 0) },
        0
    );
    assert_eq!(node_reattach(h), 0);

    within_watchdog("prepare whose rollback fails", h, |h| {
        faulty(h, prepare_all)
    });
    // The failed undo left devices booked as interrupted; re-attach puts them back.
    assert_eq!(reattach_all(h), 0);
    assert_eq!(prepare_all(h), 0);
    within_watchdog("re-attach whose undo fails", h, |h| faulty(h, reattach_all));
    assert_eq!(reattach_all(h), 0);
    within_watchdog("node-device detach whose undo fails", h, |h| {
        faulty(h, node_detach)
    });
    assert_eq!(node_detach(h), 0);
    within_watchdog("node-device re-attach whose undo fails", h, |h| {
        faulty(h, node_reattach)
    });
    assert_eq!(node_reattach(h), 0);

    // SAFETY: handles from above, each released once.
    unsafe {
        virtpci_set_log_callback(None, ptr::null_mut());
        for m in &MANAGERS {
            virtpci_hostdev_manager_free(m.swap(ptr::null_mut(), Ordering::SeqCst));
        }
        virtpci_host_free(host);
    }
}
