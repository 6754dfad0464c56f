//! The panic and error boundary, the thread-local last error, and argument conversion.

use super::address::VirtpciPciAddress;
use crate::error::{bounded_message, Error, ErrorCode, Result};
use crate::pci::PciAddress;
use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_int, c_uint, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// What an exported function returns when it fails.
pub trait FailureValue {
    fn failure() -> Self;
}

impl FailureValue for c_int {
    fn failure() -> c_int {
        -1
    }
}

impl<T> FailureValue for *mut T {
    fn failure() -> *mut T {
        std::ptr::null_mut()
    }
}

impl<T> FailureValue for *const T {
    fn failure() -> *const T {
        std::ptr::null()
    }
}

impl FailureValue for () {
    fn failure() {}
}

struct LastError {
    message: CString,
}

thread_local! {
    static LAST_ERROR: RefCell<Option<LastError>> = const { RefCell::new(None) };
    /// The last error's code, also kept here: a `Cell` of a `Copy` type has no destructor, so
    /// it stays usable while the thread exits, after `LAST_ERROR` is destroyed (a daemon may
    /// call virtpci from its own thread-local destructors).
    static LAST_CODE: Cell<ErrorCode> = const { Cell::new(ErrorCode::Ok) };
}

/// The message given for an error set after the thread's error slot was destroyed.
const MESSAGE_UNAVAILABLE: &CStr = c"error message unavailable: the calling thread is exiting";

pub fn reset_last_error() {
    LAST_CODE.set(ErrorCode::Ok);
    // During thread exit the slot may be gone; the code above is then what counts.
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = None);
}

/// Record `err` as this thread's last error and send it to the log callback.
pub fn set_last_error(err: Error) {
    // A message with an interior NUL cannot reach C whole; cut it there, and at the bound.
    let text = bounded_message(
        err.message
            .split('\0')
            .next()
            .unwrap_or_default()
            .to_string(),
    );
    crate::ffi::log::emit(crate::ffi::log::VIRTPCI_LOG_ERROR, &text);
    let message = CString::new(text).unwrap_or_default();
    LAST_CODE.set(err.code);
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = Some(LastError { message }));
}

pub fn last_error_code() -> ErrorCode {
    LAST_CODE.get()
}

/// The last error's message; the pointer stays valid until the slot is next written.
pub fn last_error_message_ptr() -> *const c_char {
    if LAST_CODE.get() == ErrorCode::Ok {
        return c"no error".as_ptr();
    }
    LAST_ERROR
        .try_with(|slot| match slot.borrow().as_ref() {
            Some(e) => e.message.as_ptr(),
            None => MESSAGE_UNAVAILABLE.as_ptr(),
        })
        .unwrap_or(MESSAGE_UNAVAILABLE.as_ptr())
}

/// Run the body of the exported function `name`: reset the last error, catch panics, and map
/// an error to the function's failure value.
pub fn guard<T: FailureValue>(name: &str, body: impl FnOnce() -> Result<T>) -> T {
    reset_last_error();
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(value)) => value,
        Ok(Err(err)) => {
            set_last_error(err);
            T::failure()
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            set_last_error(Error::internal(format!(
                "unexpected panic in {name}: {what}"
            )));
            T::failure()
        }
    }
}

/// Run the body of a `_free` function: as [`guard`], but the thread's last error is left as it
/// was (a daemon cleans up before it reads the error of the call that failed).
pub fn guard_free(name: &str, body: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(body)).is_err() {
        set_last_error(Error::internal(format!("unexpected panic in {name}")));
    }
}

/// libvirt's wording for a NULL argument (`virCheckNonNullArgReturn`).
pub fn null_arg(arg: &str, func: &str) -> Error {
    Error::invalid_arg(format!("{arg} in {func} must not be NULL"))
}

/// A caller's array of `n` elements: empty when `n` is 0 (the pointer may then be NULL), else
/// refused when NULL.
///
/// # Safety
/// `items` is NULL (only with `n` 0) or valid for reading `n` elements for `'a`.
pub unsafe fn array_arg<'a, T>(
    items: *const T,
    n: usize,
    arg: &str,
    func: &str,
) -> Result<&'a [T]> {
    if n == 0 {
        return Ok(&[]);
    }
    if items.is_null() {
        return Err(null_arg(arg, func));
    }
    // SAFETY: non-NULL and valid for n elements by the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts(items, n) })
}

/// libvirt's `virCheckFlags`: refuse bits of `flags` outside `allowed`, naming the function.
pub fn check_flags(flags: c_uint, allowed: c_uint, func: &str) -> Result<()> {
    let unknown = flags & !allowed;
    if unknown != 0 {
        return Err(Error::invalid_arg(format!(
            "unsupported flags (0x{unknown:x}) in function {func}"
        )));
    }
    Ok(())
}

/// Borrow an address argument and check that each part is in range.
///
/// # Safety
/// `addr` is NULL or valid for reading.
pub unsafe fn addr_arg(
    addr: *const VirtpciPciAddress,
    arg: &str,
    func: &str,
) -> Result<PciAddress> {
    // SAFETY: forwarded caller contract.
    let addr = PciAddress::from(unsafe { ref_arg(addr, arg, func) }?);
    addr.check_ranges()?;
    Ok(addr)
}

/// Borrow a C string argument as UTF-8.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that outlives the returned borrow.
pub unsafe fn str_arg<'a>(ptr: *const c_char, arg: &str, func: &str) -> Result<&'a str> {
    if ptr.is_null() {
        return Err(null_arg(arg, func));
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's contract.
    let bytes = unsafe { CStr::from_ptr(ptr) };
    bytes
        .to_str()
        .map_err(|_| Error::invalid_arg(format!("{arg} in {func} is not valid UTF-8")))
}

/// Borrow a C string argument that holds XML, as [`str_arg`] does, except that a string longer
/// than [`crate::limits::MAX_XML_BYTES`] is refused after reading at most that many bytes plus
/// one (a 1 GB string costs no more than a 16 MiB one, and nothing is copied).
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string, or to at least `MAX_XML_BYTES + 1`
/// readable bytes, that outlives the returned borrow.
pub unsafe fn xml_arg<'a>(ptr: *const c_char, arg: &str, func: &str) -> Result<&'a str> {
    if ptr.is_null() {
        return Err(null_arg(arg, func));
    }
    let max = crate::limits::MAX_XML_BYTES;
    // SAFETY: non-NULL; strnlen reads at most max + 1 bytes, stopping at the NUL.
    let len = unsafe { libc::strnlen(ptr, max + 1) };
    if len > max {
        return Err(crate::limits::xml_too_large(None, max));
    }
    // SAFETY: the len bytes before the NUL are readable and outlive the borrow.
    let bytes = unsafe { std::slice::from_raw_parts(ptr as *const u8, len) };
    std::str::from_utf8(bytes)
        .map_err(|_| Error::invalid_arg(format!("{arg} in {func} is not valid UTF-8")))
}

/// Borrow an optional C string argument: NULL gives `None`.
///
/// # Safety
/// As [`str_arg`].
pub unsafe fn opt_str_arg<'a>(
    ptr: *const c_char,
    arg: &str,
    func: &str,
) -> Result<Option<&'a str>> {
    if ptr.is_null() {
        Ok(None)
    } else {
        // SAFETY: forwarded contract.
        unsafe { str_arg(ptr, arg, func) }.map(Some)
    }
}

/// Borrow a pointer argument that must not be NULL.
///
/// # Safety
/// `ptr` is NULL or valid for reads of `T` for the borrow's lifetime.
pub unsafe fn ref_arg<'a, T>(ptr: *const T, arg: &str, func: &str) -> Result<&'a T> {
    // SAFETY: the caller promises validity when non-NULL.
    unsafe { ptr.as_ref() }.ok_or_else(|| null_arg(arg, func))
}

/// Borrow an out-pointer that must not be NULL.
///
/// # Safety
/// `ptr` is NULL or valid for writes of `T` for the borrow's lifetime.
pub unsafe fn out_arg<'a, T>(ptr: *mut T, arg: &str, func: &str) -> Result<&'a mut T> {
    // SAFETY: the caller promises validity when non-NULL.
    unsafe { ptr.as_mut() }.ok_or_else(|| null_arg(arg, func))
}

/// Copy `text` into a NUL-terminated string allocated with the C allocator, so that both
/// `free()` and `virtpci_string_free()` release it.
pub fn malloc_string(text: &str) -> Result<*mut c_char> {
    if text.as_bytes().contains(&0) {
        return Err(Error::internal("string for C contains a NUL byte"));
    }
    let len = text.len();
    // SAFETY: malloc with a non-zero size; the result is checked for NULL before use.
    let ptr = unsafe { libc::malloc(len + 1) } as *mut c_char;
    if ptr.is_null() {
        return Err(Error::new(ErrorCode::NoMemory, "cannot allocate a string"));
    }
    // SAFETY: ptr has len + 1 writable bytes; the source has len readable bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr() as *const c_char, ptr, len);
        *ptr.add(len) = 0;
    }
    Ok(ptr)
}

/// Copy `items` into an array allocated with the C allocator (NULL for an empty list).
pub fn malloc_array<T: Copy>(items: &[T]) -> Result<*mut T> {
    if items.is_empty() {
        return Ok(std::ptr::null_mut());
    }
    let bytes = std::mem::size_of_val(items);
    // SAFETY: malloc with a non-zero size; checked for NULL before use.
    let ptr = unsafe { libc::malloc(bytes) } as *mut T;
    if ptr.is_null() {
        return Err(Error::new(ErrorCode::NoMemory, "cannot allocate an array"));
    }
    // SAFETY: ptr has room for items.len() values of T; malloc aligns for any type.
    unsafe { std::ptr::copy_nonoverlapping(items.as_ptr(), ptr, items.len()) };
    Ok(ptr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_internal_error() {
        let rc: c_int = guard("virtpci_test", || -> Result<c_int> { panic!("boom") });
        assert_eq!(rc, -1);
        assert_eq!(last_error_code(), ErrorCode::Internal);
        // SAFETY: the slot's pointer is valid until the slot is next written.
        let msg = unsafe { CStr::from_ptr(last_error_message_ptr()) };
        assert_eq!(
            msg.to_str().unwrap(),
            "internal error: unexpected panic in virtpci_test: boom"
        );
    }

    #[test]
    fn success_clears_the_previous_error() {
        let _: c_int = guard("f", || Err(Error::xml("bad")));
        assert_eq!(last_error_code(), ErrorCode::XmlError);
        let rc: c_int = guard("f", || Ok(0));
        assert_eq!(rc, 0);
        assert_eq!(last_error_code(), ErrorCode::Ok);
    }

    #[test]
    fn a_free_keeps_the_last_error() {
        let _: c_int = guard("f", || Err(Error::xml("bad")));
        guard_free("f_free", || {});
        assert_eq!(last_error_code(), ErrorCode::XmlError);
        guard_free("f_free", || panic!("boom"));
        assert_eq!(last_error_code(), ErrorCode::Internal);
    }

    #[test]
    fn null_and_non_utf8_arguments_are_refused() {
        // SAFETY: NULL is allowed by the contract.
        let err = unsafe { str_arg(std::ptr::null(), "xml", "virtpci_f") }.unwrap_err();
        assert_eq!(
            err.message,
            "invalid argument: xml in virtpci_f must not be NULL"
        );
        let bad = [0xffu8, 0xfe, 0];
        // SAFETY: NUL-terminated buffer that outlives the call.
        let err =
            unsafe { str_arg(bad.as_ptr() as *const c_char, "xml", "virtpci_f") }.unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidArg);
    }

    #[test]
    fn strings_for_c_are_malloced_copies() {
        let ptr = malloc_string("0000:00:1f.7").unwrap();
        // SAFETY: ptr is a fresh NUL-terminated malloc'd string; freed once below.
        unsafe {
            assert_eq!(CStr::from_ptr(ptr).to_str().unwrap(), "0000:00:1f.7");
            libc::free(ptr as *mut libc::c_void);
        }
        assert!(malloc_string("a\0b").is_err());
    }
}
