//! The guest PCI ABI check (`virtpci_domain_check_abi_stability`).

use super::boundary::{check_flags, guard, malloc_string, xml_arg};
use crate::abi::{check_abi_stability, AbiOptions, LayoutMode};
use crate::error::Result;
use std::ffi::{c_char, c_int, c_uint};

/// Flag of `virtpci_domain_check_abi_stability()`: any guest-visible change is an error.
pub const VIRTPCI_ABI_STRICT: c_uint = 1 << 0;
/// Flag of `virtpci_domain_check_abi_stability()`: write the report as JSON instead of text.
pub const VIRTPCI_ABI_REPORT_JSON: c_uint = 1 << 1;
/// Flag of `virtpci_domain_check_abi_stability()`: compare the definitions exactly as
/// written, without running address assignment on them first.
pub const VIRTPCI_ABI_AS_GIVEN: c_uint = 1 << 2;

const KNOWN_FLAGS: c_uint = VIRTPCI_ABI_STRICT | VIRTPCI_ABI_REPORT_JSON | VIRTPCI_ABI_AS_GIVEN;

/// List every guest-visible PCI change between `old_xml` and `new_xml`, two definitions of
/// the same guest: devices whose address moved, multifunction bits that flipped, devices and
/// PCI controllers added or removed, controllers renumbered or changed (model, model name,
/// chassis, chassisNr, port, busNr, target index, hotplug, NUMA node), device models. Devices
/// are paired by identity (alias, MAC, disk target, host source address, controller type and
/// index, then by kind), not by position.
///
/// By default both definitions are first completed by libvirt's address assignment, so the
/// comparison is of what the guest gets: a multifunction bit set automatically because a
/// sibling used the slot counts, and so does an address assigned automatically.
/// `VIRTPCI_ABI_AS_GIVEN` compares the definitions as written instead.
///
/// `flags`: `VIRTPCI_ABI_STRICT`, `VIRTPCI_ABI_REPORT_JSON`, `VIRTPCI_ABI_AS_GIVEN`, or'ed.
///
/// Returns 0 when there is no guest-visible change, or when there are some and
/// `VIRTPCI_ABI_STRICT` is not given. With `VIRTPCI_ABI_STRICT` and at least one
/// guest-visible change, returns -1 with `VIRTPCI_ERR_CONFIG_UNSUPPORTED` and a message
/// listing the changes. In both cases, when `report` is not NULL, `*report` receives the full
/// report (text, or JSON with `VIRTPCI_ABI_REPORT_JSON`), to be released with
/// `virtpci_string_free()` or `free()`.
///
/// Other errors return -1 and leave `*report` unchanged: NULL or non-UTF-8 XML or unknown
/// flags (`VIRTPCI_ERR_INVALID_ARG`); XML beyond virtpci's limits (`VIRTPCI_ERR_XML_ERROR`,
/// after reading at most 16 MiB + 1 bytes of each); a definition libvirt would refuse (its
/// error, the message naming "old definition: " or "new definition: " after its prefix); two definitions of
/// different guests, i.e. different UUIDs, or different names when a UUID is missing
/// (`VIRTPCI_ERR_CONFIG_UNSUPPORTED`). Thread-safe; no state is kept between calls.
///
/// # Safety
/// `old_xml` and `new_xml` are NULL or NUL-terminated strings; `report` is NULL or valid for
/// writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn virtpci_domain_check_abi_stability(
    old_xml: *const c_char,
    new_xml: *const c_char,
    flags: c_uint,
    report: *mut *mut c_char,
) -> c_int {
    const NAME: &str = "virtpci_domain_check_abi_stability";
    guard(NAME, || -> Result<c_int> {
        // SAFETY: forwarded caller contract.
        let old = unsafe { xml_arg(old_xml, "old_xml", NAME) }?;
        // SAFETY: forwarded caller contract.
        let new = unsafe { xml_arg(new_xml, "new_xml", NAME) }?;
        check_flags(flags, KNOWN_FLAGS, NAME)?;
        let options = AbiOptions {
            mode: if flags & VIRTPCI_ABI_AS_GIVEN != 0 {
                LayoutMode::AsGiven
            } else {
                LayoutMode::Effective
            },
        };
        let result = check_abi_stability(old, new, options)?;
        if !report.is_null() {
            let text = if flags & VIRTPCI_ABI_REPORT_JSON != 0 {
                result.to_json()
            } else {
                result.to_text()
            };
            let ptr = malloc_string(&text)?;
            // SAFETY: non-NULL and valid for writing by the caller's contract.
            unsafe { *report = ptr };
        }
        if flags & VIRTPCI_ABI_STRICT != 0 {
            if let Some(err) = result.strict_error() {
                return Err(err);
            }
        }
        Ok(0)
    })
}
