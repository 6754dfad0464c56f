//! The host: sysfs under a root, IOMMU groups, the simulated kernel and fault injection.

use super::address::VirtpciPciAddress;
use super::boundary::{
    addr_arg, guard, guard_free, malloc_array, malloc_string, null_arg, opt_str_arg, out_arg,
    ref_arg, str_arg,
};
use crate::error::{quote, Error, Result};
use crate::host::{Host, WriteKind};
use std::ffi::{c_char, c_int, c_uint, c_void};
use std::path::Path;
use std::sync::Arc;

/// An opened host: a sysfs tree (the real `/sys` or any directory laid out like it) and the
/// writer that carries out its writes (the real kernel, or the simulated one). Opaque; create
/// it with `virtpci_host_open()` or `virtpci_host_open_simulated()`, release it with
/// `virtpci_host_free()`. A handle may be used from several threads at once. The host inside
/// is reference-counted: a hostdev manager made from the handle keeps its own reference, so the
/// handle may be released before the manager.
pub struct VirtpciHost {
    pub(crate) host: Arc<Host>,
}

/// Called once per device by `virtpci_pci_address_iommu_group_iterate()`: `addr` is valid only
/// during the call, `opaque` is the caller's pointer. Return 0 to go on; any other value stops
/// the walk and is returned by the iterate call.
pub type VirtpciPciAddressCallback =
    Option<unsafe extern "C" fn(addr: *const VirtpciPciAddress, opaque: *mut c_void) -> c_int>;

/// Borrow a host handle.
///
/// # Safety
/// `host` is NULL or a live handle from `virtpci_host_open*`.
pub(super) unsafe fn host_arg<'a>(host: *const VirtpciHost, func: &str) -> Result<&'a Host> {
    // SAFETY: forwarded caller contract.
    Ok(&*unsafe { ref_arg(host, "host", func) }?.host)
}

fn boxed(host: Host) -> *mut VirtpciHost {
    Box::into_raw(Box::new(VirtpciHost {
        host: Arc::new(host),
    }))
}

/// Open the host whose sysfs is at `sysfs_root` (NULL means "/sys"). Writes made through this
/// handle really happen. Nothing is read or written by opening beyond checking that the root
/// is a directory.
///
/// Returns a new handle (release it with `virtpci_host_free()`), or NULL with the last error
/// set: `VIRTPCI_ERR_SYSTEM_ERROR` when the root cannot be opened,
/// `VIRTPCI_ERR_INVALID_ARG` when `sysfs_root` is not UTF-8. Thread-safe.
///
/// # Safety
/// `sysfs_root` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn virtpci_host_open(sysfs_root: *const c_char) -> *mut VirtpciHost {
    const NAME: &str = "virtpci_host_open";
    guard(NAME, || {
        // SAFETY: forwarded caller contract.
        let root = unsafe { opt_str_arg(sysfs_root, "sysfs_root", NAME) }?;
        Ok(boxed(Host::open(root.map(Path::new))?))
    })
}

/// Open the sysfs-shaped tree at `root` (required) with a simulated kernel: writes to
/// `driver_override`, `bind`, `unbind`, `new_id`, `remove_id`, `drivers_probe`, `reset` and
/// `config` are carried out on the tree with Linux's semantics (driver links moved,
/// `driver_override` honoured by probe and reading `(null)` when cleared). On opening, the
/// simulator records in `root/.virtpci-sim/native-drivers` which driver each bound device's
/// ids belong to, so that a device moved to vfio-pci returns to it on probe. It also keeps the
/// MAC and VLAN each PF holds for its VFs (`root/.virtpci-sim/vf-net`).
///
/// Returns a new handle or NULL with the last error set. Thread-safe; several processes may
/// use the same tree (writes are serialised with a lock file).
///
/// # Safety
/// `root` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn virtpci_host_open_simulated(root: *const c_char) -> *mut VirtpciHost {
    const NAME: &str = "virtpci_host_open_simulated";
    guard(NAME, || {
        // SAFETY: forwarded caller contract.
        let root = unsafe { str_arg(root, "root", NAME) }?;
        Ok(boxed(Host::open_simulated(Path::new(root))?))
    })
}

/// Release a host handle. NULL is accepted. The handle must not be in use by another thread.
/// Hostdev managers made from it keep the host alive until they are released themselves. The
/// thread's last error is left as it was.
///
/// # Safety
/// `host` is NULL or a handle from `virtpci_host_open*` not yet released.
#[no_mangle]
pub unsafe extern "C" fn virtpci_host_free(host: *mut VirtpciHost) {
    guard_free("virtpci_host_free", || {
        if !host.is_null() {
            // SAFETY: by contract the pointer came from Box::into_raw and is released once.
            drop(unsafe { Box::from_raw(host) });
        }
    })
}

/// The IOMMU group number of the device `addr`, as libvirt's
/// `virPCIDeviceAddressGetIOMMUGroupNum`.
///
/// Returns the number (≥ 0); -2 when the device exists but has no IOMMU group; -1 with the
/// last error set when `host` or `addr` is NULL or out of range (`VIRTPCI_ERR_INVALID_ARG`),
/// the device does not exist (`VIRTPCI_ERR_DEVICE_MISSING`), or the `iommu_group` link cannot
/// be resolved, leaves the sysfs root, or does not end in a decimal number
/// (`VIRTPCI_ERR_INTERNAL`). Thread-safe.
///
/// # Safety
/// `host` is NULL or a live handle; `addr` is NULL or valid for reading.
#[no_mangle]
pub unsafe extern "C" fn virtpci_pci_address_get_iommu_group_num(
    host: *mut VirtpciHost,
    addr: *const VirtpciPciAddress,
) -> c_int {
    const NAME: &str = "virtpci_pci_address_get_iommu_group_num";
    guard(NAME, || {
        // SAFETY: forwarded caller contract.
        let host = unsafe { host_arg(host, NAME) }?;
        // SAFETY: forwarded caller contract.
        let addr = unsafe { addr_arg(addr, "addr", NAME) }?;
        match host.iommu_group_num(&addr)? {
            None => Ok(-2),
            Some(n) => c_int::try_from(n)
                .map_err(|_| Error::internal(format!("IOMMU group number {n} is too large"))),
        }
    })
}

/// Call `cb` for every device of the IOMMU group of `orig`, `orig` included, in address
/// order (libvirt walks in directory order; virtpci sorts). The first non-zero value `cb`
/// returns stops the walk and is returned. When `orig` has no IOMMU group, `cb` is not
/// called and 0 is returned (libvirt would call it once for `orig`).
///
/// Returns 0 when every call returned 0, the callback's non-zero value, or -1 with the last
/// error set when an argument is NULL or out of range, the device does not exist, or the
/// group cannot be read ("Found invalid device link …"). A callback that itself returns -1
/// is indistinguishable by value; check `virtpci_last_error_code()`, which this call leaves at
/// `VIRTPCI_ERR_OK` unless it failed itself (or the callback called virtpci and failed).
/// The group is read before the first call, so the callback may call virtpci functions,
/// including on the same handle. Thread-safe.
///
/// # Safety
/// `host` is NULL or a live handle; `orig` is NULL or valid for reading; `cb` is NULL or safe
/// to call with `opaque`.
#[no_mangle]
pub unsafe extern "C" fn virtpci_pci_address_iommu_group_iterate(
    host: *mut VirtpciHost,
    orig: *const VirtpciPciAddress,
    cb: VirtpciPciAddressCallback,
    opaque: *mut c_void,
) -> c_int {
    const NAME: &str = "virtpci_pci_address_iommu_group_iterate";
    guard(NAME, || {
        // SAFETY: forwarded caller contract.
        let host = unsafe { host_arg(host, NAME) }?;
        // SAFETY: forwarded caller contract.
        let orig = unsafe { addr_arg(orig, "orig", NAME) }?;
        let cb = cb.ok_or_else(|| null_arg("cb", NAME))?;
        let Some(group) = host.iommu_group(&orig)? else {
            return Ok(0);
        };
        for member in group.devices {
            let c_addr = VirtpciPciAddress::from(member);
            // SAFETY: the callback contract is the caller's; the address lives on our stack
            // for the duration of the call.
            let rc = unsafe { cb(&c_addr, opaque) };
            if rc != 0 {
                return Ok(rc);
            }
        }
        Ok(0)
    })
}

/// The devices of the IOMMU group of `addr` (itself included), in address order, as a new
/// array in `*out` with its length in `*n`. Release the array with
/// `virtpci_pci_address_list_free()` (or `free()`). When the device has no group, `*out` is
/// NULL and `*n` is 0.
///
/// Returns 0, or -1 with the last error set (arguments NULL or out of range, device missing,
/// group unreadable); `*out` and `*n` are then unchanged. Thread-safe.
///
/// # Safety
/// `host` is NULL or a live handle; `addr` is NULL or valid for reading; `out` and `n` are
/// NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn virtpci_pci_address_get_iommu_group_addresses(
    host: *mut VirtpciHost,
    addr: *const VirtpciPciAddress,
    out: *mut *mut VirtpciPciAddress,
    n: *mut usize,
) -> c_int {
    const NAME: &str = "virtpci_pci_address_get_iommu_group_addresses";
    guard(NAME, || {
        // SAFETY: forwarded caller contract.
        let host = unsafe { host_arg(host, NAME) }?;
        // SAFETY: forwarded caller contract.
        let addr = unsafe { addr_arg(addr, "addr", NAME) }?;
        // SAFETY: forwarded caller contract.
        let out = unsafe { out_arg(out, "out", NAME) }?;
        // SAFETY: forwarded caller contract.
        let n = unsafe { out_arg(n, "n", NAME) }?;
        let members: Vec<VirtpciPciAddress> = match host.iommu_group(&addr)? {
            None => Vec::new(),
            Some(g) => g.devices.into_iter().map(VirtpciPciAddress::from).collect(),
        };
        let array = malloc_array(&members)?;
        *out = array;
        *n = members.len();
        Ok(0)
    })
}

/// Release an array returned by virtpci (`virtpci_pci_address_get_iommu_group_addresses()`).
/// NULL is accepted. The thread's last error is left as it was.
///
/// # Safety
/// `list` is NULL or an array returned by virtpci and not yet released.
#[no_mangle]
pub unsafe extern "C" fn virtpci_pci_address_list_free(list: *mut VirtpciPciAddress) {
    guard_free("virtpci_pci_address_list_free", || {
        // SAFETY: by contract the array came from libc::malloc or is NULL.
        unsafe { libc::free(list as *mut c_void) };
    })
}

/// The driver the device `addr` is bound to, in `*driver` as a new string (release it with
/// `virtpci_string_free()` or `free()`), or NULL when the device is unbound.
///
/// Returns 0, or -1 with the last error set (arguments, missing device, a `driver` link that
/// leaves the sysfs root or names an invalid driver). Thread-safe.
///
/// # Safety
/// `host` is NULL or a live handle; `addr` is NULL or valid for reading; `driver` is NULL or
/// valid for writing.
#[no_mangle]
pub unsafe extern "C" fn virtpci_host_get_driver(
    host: *mut VirtpciHost,
    addr: *const VirtpciPciAddress,
    driver: *mut *mut c_char,
) -> c_int {
    const NAME: &str = "virtpci_host_get_driver";
    guard(NAME, || {
        // SAFETY: forwarded caller contract.
        let host = unsafe { host_arg(host, NAME) }?;
        // SAFETY: forwarded caller contract.
        let addr = unsafe { addr_arg(addr, "addr", NAME) }?;
        // SAFETY: forwarded caller contract.
        let out = unsafe { out_arg(driver, "driver", NAME) }?;
        host.require_device(&addr)?;
        *out = match host.driver(&addr)? {
            Some(name) => malloc_string(&name)?,
            None => std::ptr::null_mut(),
        };
        Ok(0)
    })
}

/// Arm a fault: the `nth` (1-based, counted from now) write of kind `kind` made through this
/// handle fails with `errnum` and changes nothing. `kind` is one of "driver_override", "bind",
/// "unbind", "new_id", "remove_id", "drivers_probe", "reset", "config", "vf_net" (a VF's MAC
/// and VLAN set through its PF), "load_module" (loading a driver's module), "reset_method", or
/// NULL for any write. Works on real and simulated hosts; meant for tests.
///
/// Returns 0, or -1 with `VIRTPCI_ERR_INVALID_ARG` (NULL host, unknown kind, `nth` 0,
/// `errnum` ≤ 0). Thread-safe.
///
/// # Safety
/// `host` is NULL or a live handle; `kind` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn virtpci_host_inject_fault(
    host: *mut VirtpciHost,
    kind: *const c_char,
    nth: c_uint,
    errnum: c_int,
) -> c_int {
    const NAME: &str = "virtpci_host_inject_fault";
    guard(NAME, || {
        // SAFETY: forwarded caller contract.
        let host = unsafe { host_arg(host, NAME) }?;
        // SAFETY: forwarded caller contract.
        let kind = match unsafe { opt_str_arg(kind, "kind", NAME) }? {
            None => None,
            Some(k) => Some(WriteKind::from_name(k).ok_or_else(|| {
                let shown = k.escape_debug().to_string();
                Error::invalid_arg(format!("unknown sysfs write kind '{}'", quote(&shown)))
            })?),
        };
        if nth == 0 || errnum <= 0 {
            return Err(Error::invalid_arg(
                "nth must be at least 1 and errnum a positive errno value",
            ));
        }
        host.faults().inject(kind, nth as u64, errnum);
        Ok(0)
    })
}

/// Disarm every fault armed on this handle with `virtpci_host_inject_fault()`. Returns how many
/// were still armed (had not fired), or -1 with the last error set (NULL host). Thread-safe.
///
/// # Safety
/// `host` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn virtpci_host_clear_faults(host: *mut VirtpciHost) -> c_int {
    const NAME: &str = "virtpci_host_clear_faults";
    guard(NAME, || {
        // SAFETY: forwarded caller contract.
        let host = unsafe { host_arg(host, NAME) }?;
        Ok(c_int::try_from(host.faults().clear()).unwrap_or(c_int::MAX))
    })
}

/// How many faults armed on this handle fired (made a write fail) since the host was opened,
/// so a test can tell an injected fault from a path that never wrote. Returns the count, or
/// -1 with the last error set (NULL host). Thread-safe.
///
/// # Safety
/// `host` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn virtpci_host_faults_fired(host: *mut VirtpciHost) -> c_int {
    const NAME: &str = "virtpci_host_faults_fired";
    guard(NAME, || {
        // SAFETY: forwarded caller contract.
        let host = unsafe { host_arg(host, NAME) }?;
        Ok(c_int::try_from(host.faults().fired()).unwrap_or(c_int::MAX))
    })
}

/// Every IOMMU group of the host with its devices, as `virtpci groups --json` prints it: in
/// `*json` a new string (release it with `virtpci_string_free()` or `free()`) holding
/// `{"groups": [{"group": N, "devices": [DEVICE...]}], "no_iommu_group": [DEVICE...]}`, each
/// DEVICE `{"address", "vendor", "device", "class", "driver", "class_name", "vendor_name",
/// "device_name"}` (ids as "0x…" text; the names from the PCI ID database, `null` when it does
/// not know them; `driver` `null` when unbound). Groups in number order, devices in address
/// order.
///
/// Returns 0, or -1 with the last error set (NULL argument, unreadable sysfs); `*json` is then
/// unchanged. Thread-safe.
///
/// # Safety
/// `host` is NULL or a live handle; `json` is NULL or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn virtpci_host_iommu_groups_json(
    host: *mut VirtpciHost,
    json: *mut *mut c_char,
) -> c_int {
    const NAME: &str = "virtpci_host_iommu_groups_json";
    guard(NAME, || {
        // SAFETY: forwarded caller contract.
        let host = unsafe { host_arg(host, NAME) }?;
        // SAFETY: forwarded caller contract.
        let out = unsafe { out_arg(json, "json", NAME) }?;
        let report = crate::host::facts::groups_report(host)?;
        *out = malloc_string(&report.to_json())?;
        Ok(0)
    })
}

/// Everything sysfs says about the device `addr`, as `virtpci host show --json` prints it: in
/// `*json` a new string (release it with `virtpci_string_free()` or `free()`) with its ids and
/// names, driver and `driver_override`, NUMA node, IOMMU group, parent bridge, SR-IOV links
/// (`physfn`, `virtfns`, and for a VF `vf`: its PF, index, MAC and VLAN), config-space facts
/// (`header_type`, `multifunction`, `pcie_port_type`, `flr`, `pm_reset`), reset files,
/// network interfaces (`net`) and block devices (`block`).
///
/// Returns 0, or -1 with the last error set: `VIRTPCI_ERR_INVALID_ARG` (NULL argument, an
/// address part out of range), `VIRTPCI_ERR_DEVICE_MISSING` (no such device), or the error of
/// an unreadable file; `*json` is then unchanged. Thread-safe.
///
/// # Safety
/// `host` is NULL or a live handle; `addr` is NULL or valid for reading; `json` is NULL or
/// valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn virtpci_host_device_json(
    host: *mut VirtpciHost,
    addr: *const VirtpciPciAddress,
    json: *mut *mut c_char,
) -> c_int {
    const NAME: &str = "virtpci_host_device_json";
    guard(NAME, || {
        // SAFETY: forwarded caller contract.
        let host = unsafe { host_arg(host, NAME) }?;
        // SAFETY: forwarded caller contract.
        let addr = unsafe { addr_arg(addr, "addr", NAME) }?;
        // SAFETY: forwarded caller contract.
        let out = unsafe { out_arg(json, "json", NAME) }?;
        let facts = crate::host::facts::device_facts(host, &addr)?;
        *out = malloc_string(&facts.to_string())?;
        Ok(0)
    })
}
