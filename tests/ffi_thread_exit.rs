//! virtpci called while a thread exits, from a thread-local destructor that runs after
//! virtpci's own thread-local error slot is gone (as a daemon's per-thread cleanup may): the
//! call must work and must not abort the process.

use std::ffi::{c_char, CStr};
use virtpci::ffi::{address, general};

struct CallsVirtpciOnDrop;

impl Drop for CallsVirtpciOnDrop {
    fn drop(&mut self) {
        let mut out = address::VirtpciPciAddress::default();
        // SAFETY: a NUL-terminated literal and a local.
        let rc = unsafe {
            address::virtpci_pci_address_parse(c"0000:00:20.0".as_ptr() as *const c_char, &mut out)
        };
        assert_eq!(rc, -1);
        // SAFETY: never NULL.
        let msg = unsafe { CStr::from_ptr(general::virtpci_last_error_message()) };
        assert!(!msg.to_bytes().is_empty());
        let _ = general::virtpci_last_error_code();
        general::virtpci_reset_last_error();
        // SAFETY: a NUL-terminated literal and a local.
        let rc = unsafe {
            address::virtpci_pci_address_parse(c"0000:00:1f.0".as_ptr() as *const c_char, &mut out)
        };
        assert_eq!(rc, 0);
        DONE.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

static DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

thread_local! {
    static CLEANUP: CallsVirtpciOnDrop = const { CallsVirtpciOnDrop };
}

#[test]
fn calls_from_a_thread_local_destructor_after_the_error_slot_is_gone() {
    std::thread::spawn(|| {
        // Registered first, so destroyed after the error slot (destructors run in reverse).
        CLEANUP.with(|_| ());
        let mut out = address::VirtpciPciAddress::default();
        // SAFETY: a NUL-terminated literal and a local.
        let rc = unsafe {
            address::virtpci_pci_address_parse(c"bad".as_ptr() as *const c_char, &mut out)
        };
        assert_eq!(rc, -1);
    })
    .join()
    .expect("the thread exits cleanly");
    assert!(
        DONE.load(std::sync::atomic::Ordering::SeqCst),
        "the destructor ran"
    );
}
