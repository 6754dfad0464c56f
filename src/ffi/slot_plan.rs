//! Whole-slot hot-plug and hot-unplug plans (`virtpci_address_set_plan_slot_*`) and device
//! pluggability: multifunction slots plugged and unplugged whole.

use super::address::VirtpciPciAddress;
use super::assign::VirtpciAddressSet;
use super::boundary::{guard, guard_free, out_arg, ref_arg, xml_arg};
use crate::assign::slot_plan::{Pluggability, SlotPlan};
use crate::error::{Error, Result};
use crate::pci::PciAddress;
use std::ffi::{c_char, c_int, CString};

/// One device of a slot plan. Its strings belong to the plan and stay valid until
/// `virtpci_slot_plan_free()`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct VirtpciSlotPlanItem {
    /// The device's guest PCI address.
    pub address: VirtpciPciAddress,
    /// 1 when this function carries `multifunction='on'` (function 0 of a slot with more than
    /// one function), else 0.
    pub multifunction: c_int,
    /// Attach plans: the device XML with its `<address>` filled in, to hand to the emulator.
    /// Detach plans: the device element as the guest's definition (or the attach) gave it.
    pub device_xml: *const c_char,
    /// A short name for messages, e.g. "interface (mac 52:54:00:00:00:01)".
    pub description: *const c_char,
}

/// A whole-slot plan: the devices of one guest PCI slot in the order to hand them to the
/// emulator. Opaque; read it with `virtpci_slot_plan_items()`, release it with
/// `virtpci_slot_plan_free()`. Immutable once made, so it may be read from several threads.
pub struct VirtpciSlotPlan {
    plan: SlotPlan,
    items: Vec<VirtpciSlotPlanItem>,
    // The strings the items point into; moving the Vec does not move their buffers.
    _strings: Vec<CString>,
}

// SAFETY: the raw pointers in `items` point into `_strings`, owned by the same value and never
// mutated after construction; sharing or sending the whole value is therefore sound.
unsafe impl Send for VirtpciSlotPlan {}
// SAFETY: as above; no interior mutability.
unsafe impl Sync for VirtpciSlotPlan {}

fn c_string(text: &str) -> CString {
    CString::new(text.replace('\0', "")).unwrap_or_default()
}

impl VirtpciSlotPlan {
    fn new(plan: SlotPlan) -> VirtpciSlotPlan {
        let mut strings = Vec::with_capacity(plan.items.len() * 2);
        let mut items = Vec::with_capacity(plan.items.len());
        for item in &plan.items {
            let xml = c_string(&item.xml);
            let description = c_string(&item.label);
            items.push(VirtpciSlotPlanItem {
                address: item.addr.into(),
                multifunction: c_int::from(item.multifunction),
                device_xml: xml.as_ptr(),
                description: description.as_ptr(),
            });
            strings.push(xml);
            strings.push(description);
        }
        VirtpciSlotPlan {
            plan,
            items,
            _strings: strings,
        }
    }
}

/// Plan the hot-plug of `n` devices as the functions of one free guest PCI slot, and reserve
/// their addresses in `set`.
///
/// `device_xmls` holds `n` device elements (1 to 8), e.g. `<interface type='network'>...`.
/// Without `<address>` in them, device `i` becomes function `i` of the first free slot on a
/// hotplug-capable bus that accepts every device. Otherwise every device must give an address,
/// all in one free slot, one of them function 0. The plan lists the devices in the order to
/// hand them to the emulator: functions above 0 first, function 0 last (the guest learns of
/// the slot when function 0 arrives); function 0 gets `multifunction='on'` when `n > 1`. The
/// single-device calls keep libvirt's rule (function 0 only) and are not affected.
///
/// Returns 0 and stores a new plan in `*out` (release it with `virtpci_slot_plan_free()`).
/// If the hot-plug fails, give the addresses back with
/// `virtpci_address_set_release_slot_plan()`. Returns -1 with the last error set, booking
/// nothing and leaving `*out` unchanged: `VIRTPCI_ERR_INVALID_ARG` for NULL arguments,
/// non-UTF-8 XML, `n` of 0 or above 8, a device that does not use PCI, addresses in several
/// slots, without function 0, or given for some devices only; `VIRTPCI_ERR_OPERATION_INVALID`
/// when the given slot is in use (the message names what uses it); `VIRTPCI_ERR_XML_ERROR`
/// for malformed device XML or a bus that cannot take a device; `VIRTPCI_ERR_INTERNAL` when
/// no free slot takes the devices; `VIRTPCI_ERR_CONFIG_UNSUPPORTED` for
/// `multifunction='off'` on function 0 of several. Thread-safe (calls on one set are
/// serialised).
///
/// # Safety
/// `set` is NULL or a live handle; `device_xmls` is NULL or points to `n` pointers, each NULL
/// or a NUL-terminated string; `out` is NULL or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn virtpci_address_set_plan_slot_attach(
    set: *mut VirtpciAddressSet,
    device_xmls: *const *const c_char,
    n: usize,
    out: *mut *mut VirtpciSlotPlan,
) -> c_int {
    const NAME: &str = "virtpci_address_set_plan_slot_attach";
    guard(NAME, || {
        // SAFETY: forwarded caller contract.
        let set = unsafe { ref_arg(set as *const VirtpciAddressSet, "set", NAME) }?;
        // SAFETY: forwarded caller contract.
        let out = unsafe { out_arg(out, "out", NAME) }?;
        if n > 8 {
            return Err(Error::invalid_arg(format!(
                "a PCI slot has 8 functions; {n} devices cannot share one"
            )));
        }
        let mut xmls: Vec<&str> = Vec::with_capacity(n);
        if n > 0 {
            if device_xmls.is_null() {
                return Err(super::boundary::null_arg("device_xmls", NAME));
            }
            for i in 0..n {
                // SAFETY: the caller promises `n` readable pointers.
                let ptr = unsafe { *device_xmls.add(i) };
                // SAFETY: NULL or NUL-terminated by contract; the size limit applies.
                let text = unsafe { xml_arg(ptr, &format!("device_xmls[{i}]"), NAME) }?;
                xmls.push(text);
            }
        }
        let plan = set.lock().plan_slot_attach(&xmls)?;
        *out = Box::into_raw(Box::new(VirtpciSlotPlan::new(plan)));
        Ok(0)
    })
}

/// Plan the hot-unplug of the whole guest PCI slot of `*addr` (its function is ignored):
/// every device of the slot, function 0 first (removing it takes the slot away from the
/// guest), then the others. `set` is not changed: once the emulator has let the devices go,
/// call `virtpci_address_set_release_slot_plan()`.
///
/// Returns 0 and stores a new plan in `*out` (release it with `virtpci_slot_plan_free()`), or
/// -1 with the last error set and `*out` unchanged: `VIRTPCI_ERR_OPERATION_FAILED` "cannot hot
/// unplug guest PCI slot DDDD:BB:SS: function ...: why; ..." naming every function that
/// cannot go (a chipset function, a controller that still has devices behind it, a device
/// marked `hotplug='no'` or `<hotplug require='no'/>`, a bus without hotplug);
/// `VIRTPCI_ERR_DEVICE_MISSING` when no device uses the slot; `VIRTPCI_ERR_INVALID_ARG` for
/// NULL arguments or an address outside the guest's topology. Thread-safe.
///
/// # Safety
/// `set` is NULL or a live handle; `addr` is NULL or valid for reading; `out` is NULL or
/// valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn virtpci_address_set_plan_slot_detach(
    set: *mut VirtpciAddressSet,
    addr: *const VirtpciPciAddress,
    out: *mut *mut VirtpciSlotPlan,
) -> c_int {
    const NAME: &str = "virtpci_address_set_plan_slot_detach";
    guard(NAME, || {
        // SAFETY: forwarded caller contract.
        let set = unsafe { ref_arg(set as *const VirtpciAddressSet, "set", NAME) }?;
        // SAFETY: forwarded caller contract.
        let addr = PciAddress::from(unsafe { ref_arg(addr, "addr", NAME) }?);
        // SAFETY: forwarded caller contract.
        let out = unsafe { out_arg(out, "out", NAME) }?;
        let plan = set.lock().plan_slot_detach(&addr)?;
        *out = Box::into_raw(Box::new(VirtpciSlotPlan::new(plan)));
        Ok(0)
    })
}

/// Give back every address of `plan` to `set`: after the devices of a detach plan are gone,
/// or when the hot-plug of an attach plan failed. Addresses already free are not an error.
/// `plan` stays valid and must still be released with `virtpci_slot_plan_free()`.
///
/// Returns 0, or -1 with `VIRTPCI_ERR_INVALID_ARG` for NULL arguments or a plan made for a
/// guest with another topology (nothing is released then). Thread-safe.
///
/// # Safety
/// `set` is NULL or a live handle; `plan` is NULL or a live plan.
#[no_mangle]
pub unsafe extern "C" fn virtpci_address_set_release_slot_plan(
    set: *mut VirtpciAddressSet,
    plan: *const VirtpciSlotPlan,
) -> c_int {
    const NAME: &str = "virtpci_address_set_release_slot_plan";
    guard(NAME, || {
        // SAFETY: forwarded caller contract.
        let set = unsafe { ref_arg(set as *const VirtpciAddressSet, "set", NAME) }?;
        // SAFETY: forwarded caller contract.
        let plan = unsafe { ref_arg(plan, "plan", NAME) }?;
        set.lock().release_slot_plan(&plan.plan)?;
        Ok(0)
    })
}

/// `virtpci_address_set_get_pluggability()`: the device can be hot-unplugged alone.
pub const VIRTPCI_PLUGGABLE: c_int = 0;
/// `virtpci_address_set_get_pluggability()`: only together with the rest of its slot.
pub const VIRTPCI_PLUGGABLE_WITH_SLOT: c_int = 1;
/// `virtpci_address_set_get_pluggability()`: not at all.
pub const VIRTPCI_NOT_PLUGGABLE: c_int = 2;

/// Whether the device at `*addr` can be hot-unplugged: stores `VIRTPCI_PLUGGABLE`,
/// `VIRTPCI_PLUGGABLE_WITH_SLOT` or `VIRTPCI_NOT_PLUGGABLE` in `*out`. When `reason` is not
/// NULL, `*reason` receives NULL, or for `VIRTPCI_NOT_PLUGGABLE` a new string saying why
/// (release it with `virtpci_string_free()` or `free()`).
///
/// Returns 0, or -1 with `VIRTPCI_ERR_DEVICE_MISSING` when no device uses `*addr`,
/// `VIRTPCI_ERR_INVALID_ARG` for NULL arguments or an address outside the topology.
/// Thread-safe.
///
/// # Safety
/// `set` is NULL or a live handle; `addr` is NULL or valid for reading; `out` is NULL or
/// valid for writing; `reason` is NULL or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn virtpci_address_set_get_pluggability(
    set: *mut VirtpciAddressSet,
    addr: *const VirtpciPciAddress,
    out: *mut c_int,
    reason: *mut *mut c_char,
) -> c_int {
    const NAME: &str = "virtpci_address_set_get_pluggability";
    guard(NAME, || -> Result<c_int> {
        // SAFETY: forwarded caller contract.
        let set = unsafe { ref_arg(set as *const VirtpciAddressSet, "set", NAME) }?;
        // SAFETY: forwarded caller contract.
        let addr = PciAddress::from(unsafe { ref_arg(addr, "addr", NAME) }?);
        // SAFETY: forwarded caller contract.
        let out = unsafe { out_arg(out, "out", NAME) }?;
        let state = set.lock().pluggability(&addr)?;
        let (value, why) = match state {
            Pluggability::Pluggable => (VIRTPCI_PLUGGABLE, None),
            Pluggability::WithSlot => (VIRTPCI_PLUGGABLE_WITH_SLOT, None),
            Pluggability::NotPluggable(why) => (VIRTPCI_NOT_PLUGGABLE, Some(why)),
        };
        let why = match why {
            Some(text) if !reason.is_null() => super::boundary::malloc_string(&text)?,
            _ => std::ptr::null_mut(),
        };
        if !reason.is_null() {
            // SAFETY: non-NULL and valid for writing by contract.
            unsafe { *reason = why };
        }
        *out = value;
        Ok(0)
    })
}

/// The devices of `plan` in hand-over order: returns a pointer to `*n` items owned by the
/// plan (valid until `virtpci_slot_plan_free()`), or NULL with `VIRTPCI_ERR_INVALID_ARG` when
/// an argument is NULL. Thread-safe.
///
/// # Safety
/// `plan` is NULL or a live plan; `n` is NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn virtpci_slot_plan_items(
    plan: *const VirtpciSlotPlan,
    n: *mut usize,
) -> *const VirtpciSlotPlanItem {
    const NAME: &str = "virtpci_slot_plan_items";
    guard(NAME, || {
        // SAFETY: forwarded caller contract.
        let plan = unsafe { ref_arg(plan, "plan", NAME) }?;
        // SAFETY: forwarded caller contract.
        let n = unsafe { out_arg(n, "n", NAME) }?;
        *n = plan.items.len();
        Ok(plan.items.as_ptr())
    })
}

/// The slot of `plan` (function 0) in `*out`. Returns 0, or -1 with `VIRTPCI_ERR_INVALID_ARG`
/// when an argument is NULL. Thread-safe.
///
/// # Safety
/// `plan` is NULL or a live plan; `out` is NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn virtpci_slot_plan_slot(
    plan: *const VirtpciSlotPlan,
    out: *mut VirtpciPciAddress,
) -> c_int {
    const NAME: &str = "virtpci_slot_plan_slot";
    guard(NAME, || {
        // SAFETY: forwarded caller contract.
        let plan = unsafe { ref_arg(plan, "plan", NAME) }?;
        // SAFETY: forwarded caller contract.
        let out = unsafe { out_arg(out, "out", NAME) }?;
        *out = plan.plan.slot.into();
        Ok(0)
    })
}

/// Release a plan (and the strings of its items). NULL is accepted. Releasing a plan does not
/// change any address set. The thread's last error is left as it was.
///
/// # Safety
/// `plan` is NULL or a plan not yet released, not in use by another thread.
#[no_mangle]
pub unsafe extern "C" fn virtpci_slot_plan_free(plan: *mut VirtpciSlotPlan) {
    guard_free("virtpci_slot_plan_free", || {
        if !plan.is_null() {
            // SAFETY: by contract the pointer came from Box::into_raw and is released once.
            drop(unsafe { Box::from_raw(plan) });
        }
    })
}
