//! The log callback: one process-wide sink the daemon installs to receive virtpci's messages.

use std::ffi::{c_char, c_int, c_void, CString};
use std::sync::RwLock;

/// Log levels, numbered as libvirt's `virLogPriority`.
pub const VIRTPCI_LOG_DEBUG: c_int = 1;
pub const VIRTPCI_LOG_INFO: c_int = 2;
pub const VIRTPCI_LOG_WARNING: c_int = 3;
pub const VIRTPCI_LOG_ERROR: c_int = 4;

/// A log callback: `level` is one of `VIRTPCI_LOG_*`, `message` is valid only during the call,
/// `opaque` is what was given to `virtpci_set_log_callback`. It may be called from any thread
/// that calls into virtpci, and must not call `virtpci_set_log_callback` itself.
pub type VirtpciLogCallback =
    Option<unsafe extern "C" fn(level: c_int, message: *const c_char, opaque: *mut c_void)>;

#[derive(Clone, Copy)]
struct Sink {
    callback: unsafe extern "C" fn(c_int, *const c_char, *mut c_void),
    // The daemon's pointer, kept as an integer: it is only handed back, never dereferenced.
    opaque: usize,
}

static SINK: RwLock<Option<Sink>> = RwLock::new(None);

pub fn set(callback: VirtpciLogCallback, opaque: *mut c_void) {
    let sink = callback.map(|callback| Sink {
        callback,
        opaque: opaque as usize,
    });
    match SINK.write() {
        Ok(mut guard) => *guard = sink,
        Err(poisoned) => *poisoned.into_inner() = sink,
    }
}

/// Send one message to the daemon's callback, if one is installed. No lock is held during the
/// call, so the callback may call other virtpci functions.
pub fn emit(level: c_int, message: &str) {
    let sink = match SINK.read() {
        Ok(guard) => *guard,
        Err(poisoned) => *poisoned.into_inner(),
    };
    let Some(sink) = sink else { return };
    let text = message.split('\0').next().unwrap_or_default();
    let Ok(text) = CString::new(crate::error::bounded_message(text.to_string())) else {
        return;
    };
    // SAFETY: the daemon registered this function for exactly this call signature; the
    // message pointer is valid for the duration of the call.
    unsafe { (sink.callback)(level, text.as_ptr(), sink.opaque as *mut c_void) };
}
