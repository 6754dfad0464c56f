//! PCI address parsing and formatting.

use super::boundary::{addr_arg, guard, malloc_string, out_arg, str_arg};
use crate::pci::PciAddress;
use std::ffi::{c_char, c_int, c_uint};

/// A PCI address: domain (0..0xFFFF), bus (0..0xFF), slot (0..0x1F), function (0..7).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VirtpciPciAddress {
    pub domain: c_uint,
    pub bus: c_uint,
    pub slot: c_uint,
    pub function: c_uint,
}

impl From<PciAddress> for VirtpciPciAddress {
    fn from(a: PciAddress) -> Self {
        VirtpciPciAddress {
            domain: a.domain,
            bus: a.bus,
            slot: a.slot,
            function: a.function,
        }
    }
}

impl From<&VirtpciPciAddress> for PciAddress {
    fn from(a: &VirtpciPciAddress) -> Self {
        PciAddress::new(a.domain, a.bus, a.slot, a.function)
    }
}

/// Parse "DDDD:BB:SS.F" or "BB:SS.F" (hexadecimal) into `*out`.
///
/// Returns 0 on success. Returns -1 with `VIRTPCI_ERR_INVALID_ARG` when `str` or `out` is NULL,
/// `str` is not UTF-8, or the text is not such an address or a part is out of range (the message
/// names the part and its range); `*out` is then left unchanged. Thread-safe.
///
/// # Safety
/// `str` is NULL or a NUL-terminated string; `out` is NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn virtpci_pci_address_parse(
    str: *const c_char,
    out: *mut VirtpciPciAddress,
) -> c_int {
    const NAME: &str = "virtpci_pci_address_parse";
    guard(NAME, || {
        // SAFETY: forwarded caller contract.
        let text = unsafe { str_arg(str, "str", NAME) }?;
        // SAFETY: forwarded caller contract.
        let out = unsafe { out_arg(out, "out", NAME) }?;
        *out = PciAddress::parse(text)?.into();
        Ok(0)
    })
}

/// Format `*addr` as "%04x:%02x:%02x.%x". Returns a new string (release it with
/// `virtpci_string_free()` or `free()`), or NULL with `VIRTPCI_ERR_INVALID_ARG` when `addr` is
/// NULL or a part is out of range. Thread-safe.
///
/// # Safety
/// `addr` is NULL or valid for reading.
#[no_mangle]
pub unsafe extern "C" fn virtpci_pci_address_format(addr: *const VirtpciPciAddress) -> *mut c_char {
    const NAME: &str = "virtpci_pci_address_format";
    guard(NAME, || {
        // SAFETY: forwarded caller contract.
        let addr = unsafe { addr_arg(addr, "addr", NAME) }?;
        malloc_string(&addr.to_string())
    })
}
