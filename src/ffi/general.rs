//! Library-wide calls: version, last error, log callback, string release.

use super::boundary;
use super::log::{self, VirtpciLogCallback};
use std::ffi::{c_char, c_int, c_void};

/// The library version, e.g. "0.1.0". Static storage: never free it. Thread-safe.
#[no_mangle]
pub extern "C" fn virtpci_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const c_char
}

/// The code of the last error on the calling thread (a `VirtpciErr` value), or
/// `VIRTPCI_ERR_OK` when the last virtpci call on this thread succeeded. Does not change it.
#[no_mangle]
pub extern "C" fn virtpci_last_error_code() -> c_int {
    boundary::last_error_code() as c_int
}

/// The message of the last error on the calling thread, prefixed as libvirt prefixes it
/// ("XML error: …", "internal error: …"), or "no error". At most 1024 bytes before its NUL:
/// input repeated in it is cut to its first 64 bytes and "...". The string belongs to virtpci
/// and stays valid until the next virtpci call on this thread; copy it to keep it. Never NULL.
#[no_mangle]
pub extern "C" fn virtpci_last_error_message() -> *const c_char {
    boundary::last_error_message_ptr()
}

/// Clear the last error of the calling thread.
#[no_mangle]
pub extern "C" fn virtpci_reset_last_error() {
    boundary::reset_last_error();
}

/// Release a string returned by virtpci. NULL is accepted. Strings returned by virtpci are
/// allocated with `malloc`, so `free()` is equally right. The thread's last error is left as
/// it was.
///
/// # Safety
/// `s` is NULL or a string returned by virtpci that was not yet released.
#[no_mangle]
pub unsafe extern "C" fn virtpci_string_free(s: *mut c_char) {
    // SAFETY: by contract, s came from libc::malloc or is NULL (free(NULL) is a no-op).
    unsafe { libc::free(s as *mut c_void) };
}

/// Install (or with NULL remove) the process-wide log callback. Every error set by a virtpci
/// call is also logged at `VIRTPCI_LOG_ERROR`; warnings (for instance about guest slots without
/// function 0) at `VIRTPCI_LOG_WARNING`. Thread-safe; the callback may run on any thread that
/// calls virtpci and is never called with an internal lock held.
///
/// # Safety
/// `callback` must be safe to call from any thread with `opaque` until it is replaced.
#[no_mangle]
pub unsafe extern "C" fn virtpci_set_log_callback(
    callback: VirtpciLogCallback,
    opaque: *mut c_void,
) {
    log::set(callback, opaque);
}
