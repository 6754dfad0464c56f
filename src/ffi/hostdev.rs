//! The hostdev manager through the C ABI: prepare, re-attach, update-active, node-device
//! detach/re-attach/reset, the domain-XML conveniences and the dry run.

use super::address::VirtpciPciAddress;
use super::boundary::{
    addr_arg, array_arg, check_flags, guard, guard_free, malloc_array, malloc_string, opt_str_arg,
    out_arg, ref_arg, str_arg, xml_arg,
};
use super::host::VirtpciHost;
use super::log::{emit, VIRTPCI_LOG_WARNING};
use crate::assign::explain::guest_warning_messages;
use crate::error::{Error, Result};
use crate::hostdev::critical::name_force_option;
use crate::hostdev::{HostdevManager, PrepareOptions, ResetOutcome};
use crate::pci::PciAddress;
use crate::xml::hostdevs::hostdevs_from_domain_xml;
use crate::xml::hostdevs::HostdevSpec;
use std::ffi::{c_char, c_int, c_uchar, c_uint};
use std::path::Path;
use std::sync::Arc;

/// libvirt's VIR_HOSTDEV_STRICT_ACS_CHECK. Accepted by prepare; it has no effect on VFIO
/// devices (the kernel's IOMMU groups already isolate them).
pub const VIRTPCI_HOSTDEV_STRICT_ACS_CHECK: c_uint = 1 << 0;
/// Prepare: apply libvirt 9.0's group rule (refuse only when another domain uses a member of
/// the device's IOMMU group) instead of virtpci's default, which requires every member of the
/// group (PCI bridges and PCIe ports excepted) to be declared in the same domain.
pub const VIRTPCI_HOSTDEV_LEGACY_GROUP_CHECK: c_uint = 1 << 2;
/// Prepare and node-device detach: detach devices the host needs (the disk of a mounted
/// filesystem, the network interface with the default route).
pub const VIRTPCI_HOSTDEV_FORCE: c_uint = 1 << 3;
/// Every flag prepare and its dry run accept.
const PREPARE_FLAGS: c_uint =
    VIRTPCI_HOSTDEV_STRICT_ACS_CHECK | VIRTPCI_HOSTDEV_LEGACY_GROUP_CHECK | VIRTPCI_HOSTDEV_FORCE;

/// One PCI host device of a domain, as libvirt's `virDomainHostdevDef` says it for PCI.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct VirtpciHostdev {
    /// The device's host address.
    pub source: VirtpciPciAddress,
    /// Non-zero for `managed='yes'`: virtpci detaches the device from its host driver on
    /// prepare and gives it back on re-attach. Zero: the device must already be on vfio-pci.
    pub managed: c_int,
    /// Non-zero for `<address type='unassigned'/>`: detached and booked like any other, but not
    /// meant for the guest.
    pub unassigned: c_int,
    /// The stub driver: NULL (or "vfio", "vfio-pci") for vfio-pci, or the name of a vfio
    /// variant driver. Only read during the call.
    pub driver: *const c_char,
}

/// The hostdev manager: the active list (device → driver name and domain name of its user)
/// and the inactive list (detached devices nobody uses), saved in a state directory so that a
/// manager created on the same directory after a crash knows who owns what. Opaque; create
/// it with `virtpci_hostdev_manager_new()`, release it with `virtpci_hostdev_manager_free()`.
/// Every function taking it may be called from several threads at once: operations are
/// serialised by the manager (and, between processes sharing the state directory, by a lock
/// file), each holding the lists for its whole duration as libvirt does.
pub struct VirtpciHostdevManager {
    mgr: HostdevManager,
}

/// Borrow a manager handle.
///
/// # Safety
/// `mgr` is NULL or a live handle from `virtpci_hostdev_manager_new`.
pub(super) unsafe fn mgr_arg<'a>(
    mgr: *const VirtpciHostdevManager,
    func: &str,
) -> Result<&'a HostdevManager> {
    // SAFETY: forwarded caller contract.
    Ok(&unsafe { ref_arg(mgr, "mgr", func) }?.mgr)
}

/// Convert the caller's hostdev array.
///
/// # Safety
/// `hostdevs` is NULL (only with `n` 0) or valid for reading `n` elements whose `driver` is
/// NULL or a NUL-terminated string.
pub(super) unsafe fn hostdevs_arg(
    hostdevs: *const VirtpciHostdev,
    n: usize,
    func: &str,
) -> Result<Vec<HostdevSpec>> {
    // SAFETY: forwarded caller contract for the array.
    let items = unsafe { array_arg(hostdevs, n, "hostdevs", func) }?;
    items
        .iter()
        .map(|h| {
            let source = PciAddress::from(&h.source);
            source.check_ranges()?;
            // SAFETY: forwarded caller contract for the driver string.
            let driver = unsafe { opt_str_arg(h.driver, "hostdevs[].driver", func) }?;
            Ok(HostdevSpec {
                source,
                managed: h.managed != 0,
                unassigned: h.unassigned != 0,
                driver: driver.map(str::to_string),
                model: None,
                iommufd: false,
                net: None,
            })
        })
        .collect()
}

/// The arguments of the calls about one domain's hostdevs, checked in the order they come.
pub(super) struct DomainHostdevs<'a> {
    pub(super) mgr: &'a HostdevManager,
    pub(super) drv: &'a str,
    pub(super) dom: &'a str,
    pub(super) list: Vec<HostdevSpec>,
}

/// Borrow and convert the manager, driver name, domain name and hostdev array.
///
/// # Safety
/// As [`mgr_arg`], `str_arg` (for both names) and [`hostdevs_arg`].
pub(super) unsafe fn domain_hostdevs_args<'a>(
    mgr: *const VirtpciHostdevManager,
    drv_name: *const c_char,
    dom_name: *const c_char,
    hostdevs: *const VirtpciHostdev,
    n: usize,
    func: &str,
) -> Result<DomainHostdevs<'a>> {
    // SAFETY: forwarded caller contract (each call below).
    unsafe {
        Ok(DomainHostdevs {
            mgr: mgr_arg(mgr, func)?,
            drv: str_arg(drv_name, "drv_name", func)?,
            dom: str_arg(dom_name, "dom_name", func)?,
            list: hostdevs_arg(hostdevs, n, func)?,
        })
    }
}

/// The domain UUID argument: NULL for none, else 16 bytes.
///
/// # Safety
/// `uuid` is NULL or valid for reading 16 bytes.
pub(super) unsafe fn uuid_arg(uuid: *const c_uchar) -> Option<[u8; 16]> {
    // SAFETY: non-NULL and valid for 16 bytes by contract.
    (!uuid.is_null()).then(|| unsafe { *(uuid as *const [u8; 16]) })
}

/// The options a prepare `flags` word asks for, unknown bits refused.
pub(super) fn prepare_options(flags: c_uint, func: &str) -> Result<PrepareOptions> {
    check_flags(flags, PREPARE_FLAGS, func)?;
    // VIRTPCI_HOSTDEV_STRICT_ACS_CHECK is accepted and changes nothing for VFIO devices.
    Ok(PrepareOptions {
        legacy_group_check: flags & VIRTPCI_HOSTDEV_LEGACY_GROUP_CHECK != 0,
        force: flags & VIRTPCI_HOSTDEV_FORCE != 0,
    })
}

/// A core error as C callers read it: a refusal to detach a host-critical device names the
/// flag that overrides it.
pub(super) fn c_error(err: Error) -> Error {
    name_force_option(err, "VIRTPCI_HOSTDEV_FORCE")
}

/// Create a manager for `host` whose lists are kept in `state_dir` (created with mode 0700
/// when missing; libvirt uses /run/libvirt/hostdevmgr). Lists saved there by an earlier
/// manager, including one in a process that was killed, are taken over: owners, original
/// drivers, and devices an interrupted prepare left half-moved (the owner's next re-attach
/// puts those back). The manager takes its own reference to the host: `host` may be released
/// before the manager. On a simulated host, mount and route tables are read from
/// `ROOT/.virtpci-sim/proc/self/mounts`, `.../net/route` and `.../net/ipv6_route` (missing
/// means empty); on a real host from /proc. Warnings go to the log callback.
///
/// Returns a new handle, or NULL with the last error set: `VIRTPCI_ERR_INVALID_ARG` (NULL
/// argument, non-UTF-8 path, a path that is empty or not absolute), `VIRTPCI_ERR_SYSTEM_ERROR` ("Failed to create state dir …",
/// unreadable state), `VIRTPCI_ERR_INTERNAL` (a state file that is not virtpci's). Thread-safe.
///
/// # Safety
/// `host` is NULL or a live host handle; `state_dir` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn virtpci_hostdev_manager_new(
    host: *mut VirtpciHost,
    state_dir: *const c_char,
) -> *mut VirtpciHostdevManager {
    const NAME: &str = "virtpci_hostdev_manager_new";
    guard(NAME, || {
        // SAFETY: forwarded caller contract.
        let host = unsafe { ref_arg(host, "host", NAME) }?;
        // SAFETY: forwarded caller contract.
        let dir = unsafe { str_arg(state_dir, "state_dir", NAME) }?;
        // A daemon's working directory is usually "/": a relative (or empty) directory would
        // put the state there, and a daemon started elsewhere would not find it again.
        if !Path::new(dir).is_absolute() {
            return Err(Error::invalid_arg(format!(
                "state_dir in {NAME} must be an absolute path"
            )));
        }
        let mgr = HostdevManager::new(Arc::clone(&host.host), Path::new(dir))?
            .with_logger(Arc::new(|m: &str| emit(VIRTPCI_LOG_WARNING, m)));
        Ok(Box::into_raw(Box::new(VirtpciHostdevManager { mgr })))
    })
}

/// Release a manager. NULL is accepted. The lists stay saved in the state directory; devices
/// stay where they are. The handle must not be in use by another thread. The thread's last
/// error is left as it was.
///
/// # Safety
/// `mgr` is NULL or a handle from `virtpci_hostdev_manager_new` not yet released.
#[no_mangle]
pub unsafe extern "C" fn virtpci_hostdev_manager_free(mgr: *mut VirtpciHostdevManager) {
    guard_free("virtpci_hostdev_manager_free", || {
        if !mgr.is_null() {
            // SAFETY: by contract the pointer came from Box::into_raw and is released once.
            drop(unsafe { Box::from_raw(mgr) });
        }
    })
}

/// libvirt's virHostdevPreparePCIDevices: make the `n` devices of `hostdevs` ready for the
/// domain `dom_name` of the daemon driver `drv_name` (e.g. "QEMU"), and book them to it.
///
/// Checks first, changing nothing when one fails (messages are libvirt's where libvirt has
/// the check): the device exists ("Device %s not found: could not access %s"); it is a PCI
/// endpoint ("Non-endpoint PCI devices cannot be assigned to guests"); neither it nor, for a
/// different domain, a member of its IOMMU group is in use ("PCI device %s is in use by driver
/// %s, domain %s", naming the member); every member of its IOMMU group other than PCI bridges
/// and PCIe ports is listed in `hostdevs` ("All devices of the same IOMMU group %d of the PCI
/// device %s must belong to domain %s", then the members not declared and the two remedies:
/// declare them hidden with `<address type='unassigned'/>`, or the legacy group check; not with
/// `VIRTPCI_HOSTDEV_LEGACY_GROUP_CHECK`); an
/// unmanaged device is already on a vfio driver ("Unmanaged PCI device %s must be manually
/// detached from the host"); a managed device to detach is not needed by the host ("PCI device
/// %s is critical to the host: …"; not with `VIRTPCI_HOSTDEV_FORCE`).
///
/// Then, in libvirt's order: managed devices are moved to their stub (driver_override, unbind,
/// drivers_probe) and every device is confirmed bound to it ("PCI device %s did not bind to
/// vfio-pci: …"); devices are reset by libvirt's rules (VFIO-bound devices are left to VFIO);
/// all are booked to the domain with the driver each was on. Any failure returns every device
/// to exactly the driver and driver_override it had, and leaves both lists as they were.
///
/// `uuid` is NULL or 16 bytes (recorded with the owner). `hostdevs` may be NULL when `n` is 0
/// (then nothing is done). `flags`: `VIRTPCI_HOSTDEV_STRICT_ACS_CHECK`,
/// `VIRTPCI_HOSTDEV_LEGACY_GROUP_CHECK`, `VIRTPCI_HOSTDEV_FORCE`; others are
/// `VIRTPCI_ERR_INVALID_ARG`. Returns 0, or -1 with the last error set. Thread-safe.
///
/// # Safety
/// `mgr` is NULL or a live handle; strings are NULL or NUL-terminated; `uuid` is NULL or
/// valid for reading 16 bytes; `hostdevs` is NULL or valid for reading `n` elements.
#[no_mangle]
pub unsafe extern "C" fn virtpci_hostdev_prepare_pci_devices(
    mgr: *mut VirtpciHostdevManager,
    drv_name: *const c_char,
    dom_name: *const c_char,
    uuid: *const c_uchar,
    hostdevs: *const VirtpciHostdev,
    n: usize,
    flags: c_uint,
) -> c_int {
    const NAME: &str = "virtpci_hostdev_prepare_pci_devices";
    guard(NAME, || {
        // SAFETY: forwarded caller contract.
        let a = unsafe { domain_hostdevs_args(mgr, drv_name, dom_name, hostdevs, n, NAME) }?;
        // SAFETY: forwarded caller contract.
        let uuid = unsafe { uuid_arg(uuid) };
        a.mgr
            .prepare_pci_devices(
                a.drv,
                a.dom,
                uuid.as_ref(),
                &a.list,
                prepare_options(flags, NAME)?,
            )
            .map_err(c_error)?;
        Ok(0)
    })
}

/// libvirt's virHostdevReAttachPCIDevices: release the devices of `hostdevs` that the domain
/// `dom_name` of `drv_name` uses (others are not touched), together with any device an
/// interrupted prepare of that domain left half-moved. Each is unbooked and reset by libvirt's
/// rules; a managed device is returned to the driver and driver_override it had before prepare
/// and confirmed there ("PCI device %s did not bind to %s: …"); an unmanaged device, or one that
/// was detached through `virtpci_hostdev_pci_node_device_detach()` before, stays on its stub in
/// the inactive list. Hostdevs whose device has left the host are forgotten.
///
/// Unlike libvirt (which cannot fail), this is all or nothing: on failure every device is
/// put back on its stub, both lists are unchanged, and the call may be retried. Returns 0, or
/// -1 with the last error set. Thread-safe.
///
/// # Safety
/// As `virtpci_hostdev_prepare_pci_devices()`.
#[no_mangle]
pub unsafe extern "C" fn virtpci_hostdev_reattach_pci_devices(
    mgr: *mut VirtpciHostdevManager,
    drv_name: *const c_char,
    dom_name: *const c_char,
    hostdevs: *const VirtpciHostdev,
    n: usize,
) -> c_int {
    const NAME: &str = "virtpci_hostdev_reattach_pci_devices";
    guard(NAME, || {
        // SAFETY: forwarded caller contract.
        let a = unsafe { domain_hostdevs_args(mgr, drv_name, dom_name, hostdevs, n, NAME) }?;
        a.mgr.reattach_pci_devices(a.drv, a.dom, &a.list)?;
        Ok(0)
    })
}

/// libvirt's virHostdevUpdateActivePCIDevices, for a daemon that restarts and finds the domain
/// running: book the devices of `hostdevs` to the domain. Devices already booked to it keep
/// what the state directory remembers (their original drivers); devices the manager never
/// saw are booked with an unknown original driver (re-attach then lets the kernel choose, as
/// libvirt does); devices booked to the domain but not listed move to the inactive list.
/// Errors: a device that does not exist (`VIRTPCI_ERR_SYSTEM_ERROR` "Device %s not found: …"),
/// a device another domain uses (`VIRTPCI_ERR_OPERATION_INVALID` "PCI device %s is in use by
/// driver %s, domain %s"); nothing is changed then. Returns 0 or -1. Thread-safe.
///
/// # Safety
/// As `virtpci_hostdev_prepare_pci_devices()`.
#[no_mangle]
pub unsafe extern "C" fn virtpci_hostdev_update_active_pci_devices(
    mgr: *mut VirtpciHostdevManager,
    drv_name: *const c_char,
    dom_name: *const c_char,
    hostdevs: *const VirtpciHostdev,
    n: usize,
) -> c_int {
    const NAME: &str = "virtpci_hostdev_update_active_pci_devices";
    guard(NAME, || {
        // SAFETY: forwarded caller contract.
        let a = unsafe { domain_hostdevs_args(mgr, drv_name, dom_name, hostdevs, n, NAME) }?;
        a.mgr.update_active_pci_devices(a.drv, a.dom, &a.list)?;
        Ok(0)
    })
}

/// libvirt's virHostdevPCINodeDeviceDetach (`virsh nodedev-detach`): bind the device at
/// `addr` to its stub (`driver` as in `VirtpciHostdev`; NULL for vfio-pci), confirm it got
/// there, and keep it in the inactive list, unmanaged, remembering its original driver.
/// Refused when a domain uses it ("PCI device %s is in use by driver %s, domain %s") and, unless
/// `flags` has `VIRTPCI_HOSTDEV_FORCE`, when the host needs it. On failure the device is put
/// back. Returns 0, or -1 with the last error set. Thread-safe.
///
/// # Safety
/// `mgr` is NULL or a live handle; `addr` is NULL or valid for reading; `driver` is NULL or a
/// NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn virtpci_hostdev_pci_node_device_detach(
    mgr: *mut VirtpciHostdevManager,
    addr: *const VirtpciPciAddress,
    driver: *const c_char,
    flags: c_uint,
) -> c_int {
    const NAME: &str = "virtpci_hostdev_pci_node_device_detach";
    guard(NAME, || {
        // SAFETY: forwarded caller contract (each call below).
        let mgr = unsafe { mgr_arg(mgr, NAME) }?;
        let addr = unsafe { addr_arg(addr, "addr", NAME) }?;
        let driver = unsafe { opt_str_arg(driver, "driver", NAME) }?;
        check_flags(flags, VIRTPCI_HOSTDEV_FORCE, NAME)?;
        mgr.node_device_detach(&addr, driver, flags & VIRTPCI_HOSTDEV_FORCE != 0)
            .map_err(c_error)?;
        Ok(0)
    })
}

/// libvirt's virHostdevPCINodeDeviceReAttach (`virsh nodedev-reattach`): give a device no
/// domain uses back to its host driver — the one it had when virtpci detached it, else the one
/// the kernel probes — even when virtpci did not detach it, and drop it from the inactive
/// list. Refused when a domain uses it. Returns 0, or -1 with the last error set. Thread-safe.
///
/// # Safety
/// `mgr` is NULL or a live handle; `addr` is NULL or valid for reading.
#[no_mangle]
pub unsafe extern "C" fn virtpci_hostdev_pci_node_device_reattach(
    mgr: *mut VirtpciHostdevManager,
    addr: *const VirtpciPciAddress,
) -> c_int {
    const NAME: &str = "virtpci_hostdev_pci_node_device_reattach";
    guard(NAME, || {
        // SAFETY: forwarded caller contract (each call below).
        let mgr = unsafe { mgr_arg(mgr, NAME) }?;
        let addr = unsafe { addr_arg(addr, "addr", NAME) }?;
        mgr.node_device_reattach(&addr)?;
        Ok(0)
    })
}

/// libvirt's virHostdevPCINodeDeviceReset (`virsh nodedev-reset`), with libvirt's rules: a
/// non-endpoint or a device in use is refused; nothing is done for a device on a vfio driver
/// (VFIO resets it) or with FLR (the hypervisor does it); else a PM reset (D3hot, D0, config
/// space restored); else, off bus 0, a secondary bus reset through the parent bridge, refused
/// while another device of the bus is not in the inactive list ("Active %s devices on bus with
/// %s, not doing bus reset"). Returns 0 when nothing was needed, 1 after a PM reset, 2 after a
/// bus reset, or -1 with the last error set ("Unable to reset PCI device %s: …"). Thread-safe.
///
/// # Safety
/// `mgr` is NULL or a live handle; `addr` is NULL or valid for reading.
#[no_mangle]
pub unsafe extern "C" fn virtpci_hostdev_pci_node_device_reset(
    mgr: *mut VirtpciHostdevManager,
    addr: *const VirtpciPciAddress,
) -> c_int {
    const NAME: &str = "virtpci_hostdev_pci_node_device_reset";
    guard(NAME, || {
        // SAFETY: forwarded caller contract (each call below).
        let mgr = unsafe { mgr_arg(mgr, NAME) }?;
        let addr = unsafe { addr_arg(addr, "addr", NAME) }?;
        Ok(match mgr.node_device_reset(&addr)? {
            ResetOutcome::LeftToVfio | ResetOutcome::LeftToFlr => 0,
            ResetOutcome::PowerManagement => 1,
            ResetOutcome::SecondaryBus { .. } => 2,
        })
    })
}

/// `virtpci_hostdev_prepare_pci_devices()` for the PCI host devices of a domain definition:
/// every `<hostdev mode='subsystem' type='pci'>` and `<interface type='hostdev'>`, with its
/// `managed`, `<driver name>`, `<source><address>` and `<address type='unassigned'/>`; the domain
/// name and UUID come from `<name>` and `<uuid>`. XML problems are `VIRTPCI_ERR_XML_ERROR`.
/// An `<interface type='hostdev'>` must be an SR-IOV VF whose PF has a netdev (libvirt's
/// refusals, `VIRTPCI_ERR_CONFIG_UNSUPPORTED` for a PF); its `<mac>` and `<vlan>` are set through
/// the PF after the MAC/VLAN the PF held are saved in the state directory, and
/// `virtpci_hostdev_reattach_domain()` restores them: through netlink on the running kernel
/// (a host opened on `/sys`), in the simulated kernel's table on a simulated host; on any
/// other sysfs tree a VF interface with a `<mac>` or `<vlan>` is refused with
/// `VIRTPCI_ERR_OPERATION_UNSUPPORTED`.
/// Returns 0, or -1 with the last error set. Thread-safe.
///
/// # Safety
/// `mgr` is NULL or a live handle; strings are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn virtpci_hostdev_prepare_domain(
    mgr: *mut VirtpciHostdevManager,
    drv_name: *const c_char,
    domain_xml: *const c_char,
    flags: c_uint,
) -> c_int {
    const NAME: &str = "virtpci_hostdev_prepare_domain";
    guard(NAME, || {
        // SAFETY: forwarded caller contract (each call below).
        let mgr = unsafe { mgr_arg(mgr, NAME) }?;
        let drv = unsafe { str_arg(drv_name, "drv_name", NAME) }?;
        let xml = unsafe { xml_arg(domain_xml, "domain_xml", NAME) }?;
        let options = prepare_options(flags, NAME)?;
        let d = hostdevs_from_domain_xml(xml)?;
        mgr.prepare_pci_devices(
            drv,
            d.required_name()?,
            d.uuid.as_ref(),
            &d.hostdevs,
            options,
        )
        .map_err(c_error)?;
        Ok(0)
    })
}

/// `virtpci_hostdev_reattach_pci_devices()` for the PCI host devices of a domain definition
/// (read as by `virtpci_hostdev_prepare_domain()`). Returns 0, or -1 with the last error set.
/// Thread-safe.
///
/// # Safety
/// `mgr` is NULL or a live handle; strings are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn virtpci_hostdev_reattach_domain(
    mgr: *mut VirtpciHostdevManager,
    drv_name: *const c_char,
    domain_xml: *const c_char,
) -> c_int {
    const NAME: &str = "virtpci_hostdev_reattach_domain";
    guard(NAME, || {
        // SAFETY: forwarded caller contract (each call below).
        let mgr = unsafe { mgr_arg(mgr, NAME) }?;
        let drv = unsafe { str_arg(drv_name, "drv_name", NAME) }?;
        let xml = unsafe { xml_arg(domain_xml, "domain_xml", NAME) }?;
        let d = hostdevs_from_domain_xml(xml)?;
        mgr.reattach_pci_devices(drv, d.required_name()?, &d.hostdevs)?;
        Ok(0)
    })
}

/// The dry run of `virtpci_hostdev_prepare_domain()`: every check, nothing changed. Stores in
/// `*report_json` a new JSON string (release with `virtpci_string_free()` or `free()`) with,
/// per hostdev, its IOMMU group, what prepare would do ("detach", "already-on-stub",
/// "from-inactive", "adopt", "refused") and the reset it supports; per group, its members with
/// driver, bridge and owner; every violation (code and message, in prepare's order) and the
/// warnings. Returns 0 when prepare would pass the checks, 1 when it would fail (the first
/// violation is then also the last error), or -1 with the last error set when the check itself
/// failed. Thread-safe.
///
/// # Safety
/// `mgr` is NULL or a live handle; strings are NULL or NUL-terminated; `report_json` is NULL
/// or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn virtpci_hostdev_check_domain(
    mgr: *mut VirtpciHostdevManager,
    drv_name: *const c_char,
    domain_xml: *const c_char,
    flags: c_uint,
    report_json: *mut *mut c_char,
) -> c_int {
    const NAME: &str = "virtpci_hostdev_check_domain";
    guard(NAME, || {
        // SAFETY: forwarded caller contract (each call below).
        let mgr = unsafe { mgr_arg(mgr, NAME) }?;
        let drv = unsafe { str_arg(drv_name, "drv_name", NAME) }?;
        let xml = unsafe { xml_arg(domain_xml, "domain_xml", NAME) }?;
        let out = unsafe { out_arg(report_json, "report_json", NAME) }?;
        let options = prepare_options(flags, NAME)?;
        let d = hostdevs_from_domain_xml(xml)?;
        let mut report = mgr.check(drv, d.required_name()?, &d.hostdevs, options)?;
        report.warnings.extend(guest_warning_messages(xml));
        report.violations = report.violations.into_iter().map(c_error).collect();
        *out = malloc_string(&report.to_json())?;
        match report.violations.first() {
            None => Ok(0),
            Some(v) => {
                super::boundary::set_last_error(v.clone());
                Ok(1)
            }
        }
    })
}

/// Who uses the device at `addr`: on return `*drv_name` and `*dom_name` are new strings
/// (release with `virtpci_string_free()` or `free()`) naming the owner when a domain uses
/// it, or both NULL when none does. Returns 1 when the device is in the active list, 2 when it
/// is in the inactive list (detached, unused), 0 when in neither, or -1 with the last error set.
/// Thread-safe.
///
/// # Safety
/// `mgr` is NULL or a live handle; `addr` is NULL or valid for reading; `drv_name` and
/// `dom_name` are NULL or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn virtpci_hostdev_get_owner(
    mgr: *mut VirtpciHostdevManager,
    addr: *const VirtpciPciAddress,
    drv_name: *mut *mut c_char,
    dom_name: *mut *mut c_char,
) -> c_int {
    const NAME: &str = "virtpci_hostdev_get_owner";
    guard(NAME, || {
        // SAFETY: forwarded caller contract (each call below).
        let mgr = unsafe { mgr_arg(mgr, NAME) }?;
        let addr = unsafe { addr_arg(addr, "addr", NAME) }?;
        let drv_out = unsafe { out_arg(drv_name, "drv_name", NAME) }?;
        let dom_out = unsafe { out_arg(dom_name, "dom_name", NAME) }?;
        let book = mgr.book()?;
        if let Some(a) = book.active_entry(&addr) {
            let d = malloc_string(&a.owner.driver)?;
            let n = match malloc_string(&a.owner.domain) {
                Ok(n) => n,
                Err(e) => {
                    // SAFETY: d was just allocated with malloc and is not shared.
                    unsafe { libc::free(d as *mut libc::c_void) };
                    return Err(e);
                }
            };
            *drv_out = d;
            *dom_out = n;
            return Ok(1);
        }
        *drv_out = std::ptr::null_mut();
        *dom_out = std::ptr::null_mut();
        Ok(if book.is_inactive(&addr) { 2 } else { 0 })
    })
}

/// One device the hostdev manager holds, as `virtpci_hostdev_list_devices()` reports it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct VirtpciHostdevStatus {
    /// The device's host address.
    pub address: VirtpciPciAddress,
    /// The driver name and domain name of its user; both NULL for a device in the inactive
    /// list (detached, used by nobody).
    pub drv_name: *mut c_char,
    pub dom_name: *mut c_char,
    /// The stub it is booked on ("vfio-pci" or a vfio variant driver).
    pub stub: *mut c_char,
    /// Non-zero when re-attach gives it back to its host driver.
    pub managed: c_int,
    /// Non-zero when an operation that did not finish (a crash, a failed rollback) left it
    /// half-moved; the owner's re-attach puts it back.
    pub interrupted: c_int,
}

/// Free the strings of `items` (each NULL or from malloc).
fn free_status_strings(items: &[VirtpciHostdevStatus]) {
    for d in items {
        for p in [d.drv_name, d.dom_name, d.stub] {
            // SAFETY: each pointer is NULL or a string from malloc_string, released once.
            unsafe { libc::free(p as *mut libc::c_void) };
        }
    }
}

fn opt_malloc_string(text: Option<&str>) -> Result<*mut c_char> {
    text.map_or(Ok(std::ptr::null_mut()), malloc_string)
}

/// Every device the manager holds, from the state directory as saved now: the active list
/// (devices domains use, in address order) then the inactive list. On success `*devices` is a
/// new array of `*n` entries (NULL when `*n` is 0), to release with
/// `virtpci_hostdev_status_list_free(*devices, *n)`. Returns 0, or -1 with the last error set
/// (NULL argument, unreadable state). Thread-safe.
///
/// # Safety
/// `mgr` is NULL or a live handle; `devices` and `n` are NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn virtpci_hostdev_list_devices(
    mgr: *mut VirtpciHostdevManager,
    devices: *mut *mut VirtpciHostdevStatus,
    n: *mut usize,
) -> c_int {
    const NAME: &str = "virtpci_hostdev_list_devices";
    guard(NAME, || {
        // SAFETY: forwarded caller contract (each call below).
        let mgr = unsafe { mgr_arg(mgr, NAME) }?;
        let devices_out = unsafe { out_arg(devices, "devices", NAME) }?;
        let n_out = unsafe { out_arg(n, "n", NAME) }?;
        let mut items: Vec<VirtpciHostdevStatus> = Vec::new();
        let filled = mgr.held_devices().and_then(|held| {
            for d in &held {
                // Pushed with NULL strings first, so that a failed allocation frees the rest.
                items.push(VirtpciHostdevStatus {
                    address: VirtpciPciAddress::from(d.address),
                    drv_name: std::ptr::null_mut(),
                    dom_name: std::ptr::null_mut(),
                    stub: std::ptr::null_mut(),
                    managed: c_int::from(d.managed),
                    interrupted: c_int::from(d.interrupted),
                });
                let item = items.last_mut().expect("just pushed");
                let owner = d.owner.as_ref();
                item.drv_name = opt_malloc_string(owner.map(|o| o.driver.as_str()))?;
                item.dom_name = opt_malloc_string(owner.map(|o| o.domain.as_str()))?;
                item.stub = malloc_string(&d.stub)?;
            }
            malloc_array(&items)
        });
        match filled {
            Ok(array) => {
                *devices_out = array;
                *n_out = items.len();
                Ok(0)
            }
            Err(e) => {
                free_status_strings(&items);
                Err(e)
            }
        }
    })
}

/// Release an array from `virtpci_hostdev_list_devices()` with its `n` entries' strings.
/// NULL is accepted. The thread's last error is left as it was.
///
/// # Safety
/// `devices` is NULL or an array from `virtpci_hostdev_list_devices()` of `n` entries, not
/// yet released.
#[no_mangle]
pub unsafe extern "C" fn virtpci_hostdev_status_list_free(
    devices: *mut VirtpciHostdevStatus,
    n: usize,
) {
    guard_free("virtpci_hostdev_status_list_free", || {
        if devices.is_null() {
            return;
        }
        // SAFETY: by contract the array holds n entries and is released once.
        free_status_strings(unsafe { std::slice::from_raw_parts(devices, n) });
        // SAFETY: the array came from malloc_array.
        unsafe { libc::free(devices as *mut libc::c_void) };
    })
}

/// What the manager holds, as `virtpci status --json` prints it: in `*json` a new string
/// (release it with `virtpci_string_free()` or `free()`) holding `{"state_dir", "devices":
/// [{"address", "driver", "domain", "stub", "managed", "interrupted", "since", "bound_to"}],
/// "unheld_vfio": [{"address", "bound_to"}]}`: both lists (the active list first; `driver`
/// and `domain` only for a device a domain uses), each device with when the manager took it
/// (`since`, RFC 3339 in UTC, `null` when not recorded) and the driver sysfs shows it on now
/// (`bound_to`, `null` when unbound), then the devices on a vfio driver that the manager does
/// not hold. `virtpci_hostdev_list_devices()` gives the lists as structs.
///
/// Returns 0, or -1 with the last error set (NULL argument, unreadable state or sysfs);
/// `*json` is then unchanged. Thread-safe.
///
/// # Safety
/// `mgr` is NULL or a live handle; `json` is NULL or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn virtpci_hostdev_status_json(
    mgr: *mut VirtpciHostdevManager,
    json: *mut *mut c_char,
) -> c_int {
    const NAME: &str = "virtpci_hostdev_status_json";
    guard(NAME, || {
        // SAFETY: forwarded caller contract (each call below).
        let mgr = unsafe { mgr_arg(mgr, NAME) }?;
        let out = unsafe { out_arg(json, "json", NAME) }?;
        let book = mgr.book()?;
        let dir = mgr.state_dir().display().to_string();
        let report = crate::hostdev::status::StatusReport::new(mgr.host(), &book, &dir)?;
        *out = malloc_string(&report.to_json())?;
        Ok(0)
    })
}
