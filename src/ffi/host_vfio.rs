//! The host's modules and VFIO devices: the modules directory and whether virtpci may load
//! modules, a bound device's VFIO device cdev, and the kernel's reset methods of a device.

use super::address::VirtpciPciAddress;
use super::boundary::addr_arg;
use super::boundary::{guard, malloc_string, opt_str_arg, out_arg};
use super::host::{host_arg, VirtpciHost};
use std::ffi::{c_char, c_int};
use std::path::Path;

/// Use `dir` as the kernel modules directory whose `modules.alias` chooses VFIO variant
/// drivers and whose `modules.dep` lists the modules that can be loaded. NULL restores the
/// default: the running kernel's `/lib/modules/$(uname -r)`, or `ROOT/.virtpci-sim/modules`
/// on a simulated host. Applies to every manager made from the handle, from the next call on.
///
/// Returns 0, or -1 with the last error set (NULL host, an empty `dir`). Thread-safe.
///
/// # Safety
/// `host` is NULL or a live handle; `dir` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn virtpci_host_set_modules_dir(
    host: *mut VirtpciHost,
    dir: *const c_char,
) -> c_int {
    const NAME: &str = "virtpci_host_set_modules_dir";
    guard(NAME, || {
        // SAFETY: forwarded caller contract.
        let host = unsafe { host_arg(host, NAME) }?;
        // SAFETY: forwarded caller contract.
        let dir = unsafe { opt_str_arg(dir, "dir", NAME) }?;
        if dir == Some("") {
            return Err(crate::Error::invalid_arg(format!(
                "dir must not be empty in {NAME}"
            )));
        }
        host.set_modules_dir(dir.map(Path::new));
        Ok(0)
    })
}

/// Allow (`allowed` non-zero, the default, as libvirt does) or forbid loading kernel modules.
/// When forbidden, preparing a device whose driver is not registered fails with an error
/// naming the module to load, before anything changes.
///
/// Returns 0, or -1 with the last error set (NULL host). Thread-safe.
///
/// # Safety
/// `host` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn virtpci_host_set_module_loading(
    host: *mut VirtpciHost,
    allowed: c_int,
) -> c_int {
    const NAME: &str = "virtpci_host_set_module_loading";
    guard(NAME, || {
        // SAFETY: forwarded caller contract.
        let host = unsafe { host_arg(host, NAME) }?;
        host.set_module_loading(allowed != 0);
        Ok(0)
    })
}

/// The VFIO device cdev of the device `addr`, which must be bound to a VFIO driver: its sysfs
/// directory (`.../vfio-dev/vfioN`) in `*sysfs_dir` and its node (`/dev/vfio/devices/vfioN`,
/// what a daemon opens for iommufd) in `*dev_path`, each a new string (release with
/// `virtpci_string_free()` or `free()`). Either output may be NULL when not wanted.
///
/// Returns 0, or -1 with the last error set: the device is missing, not bound to VFIO
/// (`VIRTPCI_ERR_OPERATION_FAILED`), or the kernel has no VFIO device cdevs
/// (`VIRTPCI_ERR_CONFIG_UNSUPPORTED`, naming the missing node). Thread-safe.
///
/// # Safety
/// `host` is NULL or a live handle; `addr` is NULL or valid for reading; `sysfs_dir` and
/// `dev_path` are NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn virtpci_host_get_vfio_cdev(
    host: *mut VirtpciHost,
    addr: *const VirtpciPciAddress,
    sysfs_dir: *mut *mut c_char,
    dev_path: *mut *mut c_char,
) -> c_int {
    const NAME: &str = "virtpci_host_get_vfio_cdev";
    guard(NAME, || {
        // SAFETY: forwarded caller contract.
        let host = unsafe { host_arg(host, NAME) }?;
        // SAFETY: forwarded caller contract.
        let addr = unsafe { addr_arg(addr, "addr", NAME) }?;
        if sysfs_dir.is_null() && dev_path.is_null() {
            return Err(crate::Error::invalid_arg(format!(
                "sysfs_dir and dev_path must not both be NULL in {NAME}"
            )));
        }
        let cdev = host.vfio_cdev(&addr)?;
        let sysfs = malloc_string(&cdev.sysfs_dir.to_string_lossy())?;
        let node = match malloc_string(&cdev.node.to_string_lossy()) {
            Ok(n) => n,
            Err(e) => {
                // SAFETY: allocated just above with malloc.
                unsafe { libc::free(sysfs.cast()) };
                return Err(e);
            }
        };
        let give = |out: *mut *mut c_char, value: *mut c_char, arg: &str| {
            if out.is_null() {
                // SAFETY: allocated above with malloc and not handed out.
                unsafe { libc::free(value.cast()) };
            } else {
                // SAFETY: non-NULL and valid for writing by the caller's contract.
                if let Ok(slot) = unsafe { out_arg(out, arg, NAME) } {
                    *slot = value;
                }
            }
        };
        give(sysfs_dir, sysfs, "sysfs_dir");
        give(dev_path, node, "dev_path");
        Ok(0)
    })
}

/// Choose the reset methods the kernel uses for the device `addr` (its `reset_method`):
/// `methods` is a space-separated list, in order, of methods the device offers (e.g.
/// "flr bus"); NULL or "" restores the kernel's default. The methods offered are what
/// `reset_method` lists before any choice.
///
/// Returns 0, or -1 with the last error set: a method the device does not offer
/// (`VIRTPCI_ERR_INVALID_ARG`, listing the offered ones), a device without `reset_method`
/// (`VIRTPCI_ERR_OPERATION_UNSUPPORTED`), a failed write. Thread-safe.
///
/// # Safety
/// `host` is NULL or a live handle; `addr` is NULL or valid for reading; `methods` is NULL or
/// a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn virtpci_host_set_reset_methods(
    host: *mut VirtpciHost,
    addr: *const VirtpciPciAddress,
    methods: *const c_char,
) -> c_int {
    const NAME: &str = "virtpci_host_set_reset_methods";
    guard(NAME, || {
        // SAFETY: forwarded caller contract.
        let host = unsafe { host_arg(host, NAME) }?;
        // SAFETY: forwarded caller contract.
        let addr = unsafe { addr_arg(addr, "addr", NAME) }?;
        // SAFETY: forwarded caller contract.
        let methods = unsafe { opt_str_arg(methods, "methods", NAME) }?.unwrap_or("");
        let list: Vec<&str> = methods.split_whitespace().collect();
        host.set_reset_methods(&addr, &list)?;
        Ok(0)
    })
}
