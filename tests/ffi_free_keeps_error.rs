//! A daemon releases what it holds before it reports the error of the call that failed: every
//! `_free` function (given NULL or a live object) leaves the thread's last error as it was.

mod host_support;

use host_support::fixture_tree;
use std::ffi::{CStr, CString};
use std::ptr;
use virtpci::ffi::assign::virtpci_address_set_free;
use virtpci::ffi::assign::virtpci_address_set_new_from_xml;
use virtpci::ffi::general::*;
use virtpci::ffi::host::*;
use virtpci::ffi::hostdev::*;
use virtpci::ffi::slot_plan::virtpci_slot_plan_free;

/// Make a call fail, run `free`, and check the failure is still the last error.
fn error_survives(what: &str, free: impl FnOnce()) {
    // SAFETY: NULL is a documented argument (refused with an error).
    assert!(unsafe { virtpci_host_open_simulated(ptr::null()) }.is_null());
    let before = last_error();
    assert_eq!(before.0, 8);
    free();
    assert_eq!(last_error(), before, "after {what}");
}

fn last_error() -> (i32, String) {
    // SAFETY: valid until this thread's next virtpci call.
    let msg = unsafe { CStr::from_ptr(virtpci_last_error_message()) };
    (
        virtpci_last_error_code(),
        msg.to_string_lossy().into_owned(),
    )
}

#[test]
fn frees_leave_the_last_error_alone() {
    let tree = fixture_tree("quad-nic");
    let root = CString::new(tree.path.to_str().unwrap()).unwrap();
    let state = CString::new(tree.join("state").to_str().unwrap()).unwrap();
    let xml = c"<domain type='kvm'><name>g</name><os><type machine='q35'>hvm</type></os></domain>";
    // SAFETY: valid strings; every object is released once, by the free under test.
    unsafe {
        error_survives("NULL frees", || {
            virtpci_host_free(ptr::null_mut());
            virtpci_hostdev_manager_free(ptr::null_mut());
            virtpci_address_set_free(ptr::null_mut());
            virtpci_pci_address_list_free(ptr::null_mut());
            virtpci_slot_plan_free(ptr::null_mut());
            virtpci_string_free(ptr::null_mut());
        });
        let host = virtpci_host_open_simulated(root.as_ptr());
        let mgr = virtpci_hostdev_manager_new(host, state.as_ptr());
        let set = virtpci_address_set_new_from_xml(xml.as_ptr());
        assert!(
            !host.is_null() && !mgr.is_null() && !set.is_null(),
            "{:?}",
            last_error()
        );
        error_survives("virtpci_hostdev_manager_free", || {
            virtpci_hostdev_manager_free(mgr)
        });
        error_survives("virtpci_address_set_free", || virtpci_address_set_free(set));
        error_survives("virtpci_host_free", || virtpci_host_free(host));
    }
}
