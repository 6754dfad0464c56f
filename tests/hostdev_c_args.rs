//! Arguments of the hostdev manager's calls (C, and the Rust API for the state directory)
//! that used to be taken as they came: a state directory that is empty or relative (files
//! written in the daemon's working directory), and domain and driver names of any length (a
//! 64 MiB name made a 192 MiB state file).

mod host_support;

use host_support::fixture_tree;
use std::ffi::{c_char, CStr, CString};
use std::ptr;
use virtpci::ffi::address::VirtpciPciAddress;
use virtpci::ffi::general::*;
use virtpci::ffi::host::*;
use virtpci::ffi::hostdev::*;
/// The documented limits (README, "Limits").
const MAX_DOMAIN_NAME_BYTES: usize = 255;
const MAX_DRIVER_NAME_BYTES: usize = 64;

fn last_error() -> (i32, String) {
    // SAFETY: the message is valid until this thread's next virtpci call.
    let msg = unsafe { CStr::from_ptr(virtpci_last_error_message()) };
    (
        virtpci_last_error_code(),
        msg.to_string_lossy().into_owned(),
    )
}

const INVALID_ARG: i32 = 8;

#[test]
fn an_empty_or_relative_state_dir_is_refused() {
    let tree = fixture_tree("quad-nic");
    let root = CString::new(tree.path.to_str().unwrap()).unwrap();
    // Run from the tree, so that files a wrongly accepted directory makes land in it.
    std::env::set_current_dir(&tree.path).unwrap();
    // SAFETY: valid strings; handles released below.
    unsafe {
        let host = virtpci_host_open_simulated(root.as_ptr());
        assert!(!host.is_null());
        for dir in [c"", c"state", c"./state", c"../x"] {
            let mgr = virtpci_hostdev_manager_new(host, dir.as_ptr());
            assert!(mgr.is_null(), "{dir:?} accepted");
            virtpci_hostdev_manager_free(mgr);
            assert_eq!(
                last_error(),
                (
                    INVALID_ARG,
                    "invalid argument: state_dir in virtpci_hostdev_manager_new must be an absolute path"
                        .to_string()
                ),
                "{dir:?}"
            );
        }
        assert!(!tree.join("lock").exists() && !tree.join("state").exists());
        virtpci_host_free(host);
    }
}

fn name(len: usize) -> CString {
    CString::new("n".repeat(len)).unwrap()
}

fn device() -> VirtpciHostdev {
    VirtpciHostdev {
        source: VirtpciPciAddress {
            domain: 0,
            bus: 2,
            slot: 0,
            function: 0,
        },
        managed: 1,
        unassigned: 0,
        driver: ptr::null(),
    }
}

/// Prepare (legacy group rule, one function) with these names: the return value.
fn prepare(mgr: *mut VirtpciHostdevManager, drv: *const c_char, dom: *const c_char) -> i32 {
    let d = device();
    // SAFETY: live handle, valid strings and array.
    unsafe {
        virtpci_hostdev_prepare_pci_devices(
            mgr,
            drv,
            dom,
            ptr::null(),
            &d,
            1,
            VIRTPCI_HOSTDEV_LEGACY_GROUP_CHECK,
        )
    }
}

#[test]
fn names_are_bounded() {
    let tree = fixture_tree("quad-nic");
    let root = CString::new(tree.path.to_str().unwrap()).unwrap();
    let state = CString::new(tree.join("state").to_str().unwrap()).unwrap();
    let state_file = tree.join("state/hostdev-state.json");
    // SAFETY: valid strings; handles released below.
    let (host, mgr) = unsafe {
        let host = virtpci_host_open_simulated(root.as_ptr());
        (host, virtpci_hostdev_manager_new(host, state.as_ptr()))
    };
    assert!(!mgr.is_null());
    let qemu = c"QEMU".as_ptr();
    let refused_domains = [
        (name(0), "domain name must be 1 to 255 bytes long, not 0"),
        (
            name(MAX_DOMAIN_NAME_BYTES + 1),
            "domain name must be 1 to 255 bytes long, not 256",
        ),
        (
            name(1 << 20),
            "domain name must be 1 to 255 bytes long, not 1048576",
        ),
        (
            name(64 << 20),
            "domain name must be 1 to 255 bytes long, not 67108864",
        ),
        (c"a\nb".to_owned(), "invalid char in domain name: newline"),
    ];
    for (dom, why) in &refused_domains {
        for call in 0..3 {
            let d = device();
            // SAFETY: live handle, valid strings and array.
            let rc = unsafe {
                match call {
                    0 => prepare(mgr, qemu, dom.as_ptr()),
                    1 => virtpci_hostdev_reattach_pci_devices(mgr, qemu, dom.as_ptr(), &d, 1),
                    _ => virtpci_hostdev_update_active_pci_devices(mgr, qemu, dom.as_ptr(), &d, 1),
                }
            };
            assert_eq!(rc, -1, "call {call}, {why}");
            assert_eq!(
                last_error(),
                (INVALID_ARG, format!("invalid argument: {why}"))
            );
        }
    }
    let refused_drivers = [
        (name(0), "driver name must be 1 to 64 bytes long, not 0"),
        (
            name(MAX_DRIVER_NAME_BYTES + 1),
            "driver name must be 1 to 64 bytes long, not 65",
        ),
        (
            name(64 << 20),
            "driver name must be 1 to 64 bytes long, not 67108864",
        ),
    ];
    for (drv, why) in &refused_drivers {
        assert_eq!(prepare(mgr, drv.as_ptr(), c"vm1".as_ptr()), -1, "{why}");
        assert_eq!(
            last_error(),
            (INVALID_ARG, format!("invalid argument: {why}"))
        );
    }
    // Nothing was booked by the refused calls.
    let saved = std::fs::read_to_string(&state_file).unwrap_or_default();
    assert!(!saved.contains("nnn"), "{saved}");

    // The longest names are taken and released.
    let (drv, dom) = (name(MAX_DRIVER_NAME_BYTES), name(MAX_DOMAIN_NAME_BYTES));
    assert_eq!(
        prepare(mgr, drv.as_ptr(), dom.as_ptr()),
        0,
        "{:?}",
        last_error()
    );
    let d = device();
    // SAFETY: live handles, valid strings and array.
    unsafe {
        assert_eq!(
            virtpci_hostdev_reattach_pci_devices(mgr, drv.as_ptr(), dom.as_ptr(), &d, 1),
            0
        );
        virtpci_hostdev_manager_free(mgr);
        virtpci_host_free(host);
    }
}

#[test]
fn a_domain_xml_name_is_bounded_too() {
    let tree = fixture_tree("quad-nic");
    let root = CString::new(tree.path.to_str().unwrap()).unwrap();
    let state = CString::new(tree.join("state").to_str().unwrap()).unwrap();
    let xml = CString::new(format!(
        "<domain type='kvm'><name>{}</name><devices><hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0' bus='2' slot='0' function='0'/></source></hostdev></devices></domain>",
        "n".repeat(300)
    ))
    .unwrap();
    // SAFETY: valid strings; handles released below.
    unsafe {
        let host = virtpci_host_open_simulated(root.as_ptr());
        let mgr = virtpci_hostdev_manager_new(host, state.as_ptr());
        assert_eq!(
            virtpci_hostdev_prepare_domain(
                mgr,
                c"QEMU".as_ptr(),
                xml.as_ptr(),
                VIRTPCI_HOSTDEV_LEGACY_GROUP_CHECK
            ),
            -1
        );
        assert_eq!(
            last_error(),
            (
                INVALID_ARG,
                "invalid argument: domain name must be 1 to 255 bytes long, not 300".to_string()
            )
        );
        virtpci_hostdev_manager_free(mgr);
        virtpci_host_free(host);
    }
}

#[test]
fn the_rust_api_refuses_an_empty_state_dir_too() {
    let tree = fixture_tree("quad-nic");
    let host = std::sync::Arc::new(virtpci::Host::open_simulated(&tree.path).unwrap());
    let err = virtpci::HostdevManager::new(host, std::path::Path::new("")).unwrap_err();
    assert_eq!(
        err.message,
        "invalid argument: the hostdev state directory must not be empty"
    );
}
