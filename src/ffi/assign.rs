//! Guest PCI address assignment (`virtpci_domain_assign_pci_addresses`) and the address set
//! of a running guest for hotplug (`virtpci_address_set_*`).

use super::address::VirtpciPciAddress;
use super::boundary::{
    check_flags, guard, guard_free, malloc_string, null_arg, out_arg, ref_arg, str_arg, xml_arg,
};
use super::host::VirtpciHost;
use super::log::{emit, VIRTPCI_LOG_WARNING};
use crate::assign::{
    AssignHost, AssignOptions, EmulatorCap, EmulatorCaps, HotplugAddressSet, LibvirtLevel,
};
use crate::error::{Error, Result};
use crate::pci::PciAddress;
use crate::xml::domain::{AddressPreferences, BusPreference};
use std::ffi::{c_char, c_int, c_uint};
use std::sync::{Mutex, MutexGuard};

/// The address set of a running guest: which guest PCI addresses are in use, with libvirt's
/// hotplug rules. Opaque; create it with `virtpci_address_set_new_from_xml()` and release it
/// with `virtpci_address_set_free()`. Every function taking it may be called from several
/// threads at once: calls on one set are serialised by an internal lock.
pub struct VirtpciAddressSet {
    inner: Mutex<HotplugAddressSet>,
}

impl VirtpciAddressSet {
    pub(super) fn lock(&self) -> MutexGuard<'_, HotplugAddressSet> {
        // A panic while the lock was held left the set consistent (every change is one
        // bit flip at its end), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Flag of `virtpci_domain_assign_pci_addresses()`: on x86 machine types
/// (pc, q35), a guest PCI slot with functions above 0 in use but nothing at function 0 is an
/// error (`VIRTPCI_ERR_CONFIG_UNSUPPORTED`) instead of a warning, since Linux and Windows
/// guests on x86 would not see those functions. pSeries guests find them and stay accepted.
pub const VIRTPCI_ASSIGN_STRICT_FUNCTION0: c_uint = 1 << 0;

/// Flag of `virtpci_domain_assign_pci_addresses()` (virtpci, not libvirt): when libvirt's
/// placement runs out of room (past about 237 hot-pluggable devices on q35, 268 on pc), place
/// the devices anyway: PCIe switches behind pcie-root-ports, pci-bridges behind pci-bridges,
/// and devices with `<addressPreferences hotplug='no'/>` packed eight to a slot as
/// multifunction devices, all within PCI domain 0 (256 bus numbers). A domain libvirt can
/// place comes out exactly as libvirt places it. When even this is full, the error
/// (`VIRTPCI_ERR_INTERNAL`) says how many devices did not fit and why.
pub const VIRTPCI_ASSIGN_EXTEND: c_uint = 1 << 1;

/// Every flag the assignment functions know.
const ASSIGN_FLAGS: c_uint = VIRTPCI_ASSIGN_STRICT_FUNCTION0 | VIRTPCI_ASSIGN_EXTEND;

/// The options `flags` ask for, unknown bits refused.
fn assign_options(flags: c_uint, hotplug_ports: Option<u32>, func: &str) -> Result<AssignOptions> {
    check_flags(flags, ASSIGN_FLAGS, func)?;
    Ok(AssignOptions {
        strict_function0: flags & VIRTPCI_ASSIGN_STRICT_FUNCTION0 != 0,
        hotplug_ports,
        extend: flags & VIRTPCI_ASSIGN_EXTEND != 0,
        ..Default::default()
    })
}

/// The size of the first version of `VirtpciAssignOptions` (size, flags, hotplug_ports).
const ASSIGN_OPTIONS_FIRST_SIZE: usize =
    std::mem::offset_of!(VirtpciAssignOptions, libvirt_version);

/// Give every device of the domain in `domain_xml` a guest PCI address, adding PCI
/// controllers where needed, exactly as libvirt 9.0 does when the domain is defined (x86 `pc`
/// and `q35` machines).
///
/// On success returns 0 and stores in `*out_xml` the domain XML with `<address>` elements and
/// controllers added and every other byte of the input unchanged; release it with
/// `virtpci_string_free()` or `free()`. Warnings go to the log callback at
/// `VIRTPCI_LOG_WARNING`, one message each: a device with a PCI address that is not a PCI
/// device, and each slot used without function 0, naming the slot, its
/// functions and the guests that will not see them.
///
/// On failure returns -1, leaves `*out_xml` unchanged, and sets the last error to libvirt's
/// code and full message (`VIRTPCI_ERR_XML_ERROR` "XML error: Attempted double use of PCI
/// Address 0000:00:01.1", `VIRTPCI_ERR_INTERNAL` "internal error: No more available PCI
/// slots", ...). `flags` is 0 or a mix of `VIRTPCI_ASSIGN_STRICT_FUNCTION0` and
/// `VIRTPCI_ASSIGN_EXTEND` (other bits: `VIRTPCI_ERR_INVALID_ARG`); NULL arguments and non-UTF-8 text are
/// `VIRTPCI_ERR_INVALID_ARG`; XML beyond virtpci's limits (16 MiB, nesting 256 deep; see the
/// README) is `VIRTPCI_ERR_XML_ERROR`, and at most 16 MiB + 1 bytes of `domain_xml` are read.
/// Thread-safe; no state is kept between calls.
///
/// # Safety
/// `domain_xml` is NULL or a NUL-terminated string; `out_xml` is NULL or valid for writing
/// one pointer.
#[no_mangle]
pub unsafe extern "C" fn virtpci_domain_assign_pci_addresses(
    domain_xml: *const c_char,
    flags: c_uint,
    out_xml: *mut *mut c_char,
) -> c_int {
    const NAME: &str = "virtpci_domain_assign_pci_addresses";
    guard(NAME, || {
        // SAFETY: forwarded caller contract.
        let xml = unsafe { xml_arg(domain_xml, "domain_xml", NAME) }?;
        // SAFETY: forwarded caller contract.
        let out = unsafe { out_arg(out_xml, "out_xml", NAME) }?;
        let options = assign_options(flags, None, NAME)?;
        let result = crate::assign::assign_domain_xml_with(xml, options)?;
        for warning in &result.warnings {
            emit(VIRTPCI_LOG_WARNING, warning);
        }
        *out = malloc_string(&result.xml)?;
        Ok(0)
    })
}

/// Options of `virtpci_domain_assign_pci_addresses_with_options()`: virtpci's placement
/// beyond libvirt. Zero-initialise it, set `size` to `sizeof(VirtpciAssignOptions)`, then set
/// the fields wanted; fields added in later versions go at the end, and a caller built
/// against an older header passes its smaller `size`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct VirtpciAssignOptions {
    /// `sizeof(VirtpciAssignOptions)` as the caller knows it.
    pub size: c_uint,
    /// The flags of `virtpci_domain_assign_pci_addresses()` (`VIRTPCI_ASSIGN_STRICT_FUNCTION0`,
    /// `VIRTPCI_ASSIGN_EXTEND`); any other bit is refused.
    pub flags: c_uint,
    /// Guarantee at least this many free hotplug-capable places after assignment: empty
    /// pcie-root-ports on q35 (packed eight to a slot), free slots on buses with hotplug on
    /// pc. A negative value keeps libvirt's rule (one spare root port on q35 when
    /// controllers were added).
    pub hotplug_ports: c_int,
    /// The libvirt release whose layout to give, as libvirt numbers versions (major *
    /// 1000000 + minor * 1000 + micro): 9000000 (9.0, Debian 12 with QEMU 7.2) or 11003000
    /// (11.3, Debian 13 with QEMU 10.0); 0 is the default, 9.0. Other versions are refused.
    /// Added in the second version of the struct: a smaller `size` means 0.
    pub libvirt_version: c_uint,
    /// Host-NUMA mirroring (virtpci, not libvirt): when not NULL, each PCI host device
    /// (`<hostdev type='pci'>`, `<interface type='hostdev'>`) whose guest address is picked
    /// automatically goes behind an expander bus (pxb on pc, pxb-pcie on q35) on the guest
    /// NUMA cell of the NUMA node this host gives its device (sysfs `numa_node`, mapped through
    /// the domain's `<numatune><memnode cellid nodeset>`, or the same number without
    /// memnodes), adding the expander and its ports as needed. A device whose host node has
    /// no guest cell, or that has none (-1), is placed as usual and named in a warning (log
    /// callback); a host device the host does not have is an error. On pseries the same
    /// handle gives libvirt's isolation groups instead: PCI host devices of different host
    /// IOMMU groups go on different PHBs, none on the default one (a device whose group the
    /// host does not give is placed as usual and named in a warning). The handle is only read
    /// during the call. Added in the third version of the struct: a smaller `size` means NULL.
    pub numa_host: *const VirtpciHost,
    /// The emulator's capabilities, which choose controller models and device variants as in
    /// libvirt (root port model, the bridges a legacy PCI device gets on q35, virtio devices
    /// on PCI Express or conventional PCI, default USB, SCSI, video and NIC models). NULL:
    /// the emulator of the libvirt level (QEMU 7.2 for 9.0, QEMU 10.0 for 11.3). Else a
    /// NULL-terminated list of the names of the QEMU capabilities the emulator has, spelled
    /// as libvirt's qemu_capabilities.c spells its flags ("pcie-root-port", "ioh3420",
    /// "pci-bridge", ...); names virtpci does not use are ignored, capabilities virtpci uses
    /// and not listed are absent (`virtpci_emulator_cap_names()` lists those it uses). At
    /// most 65536 names, each UTF-8. Added in the fourth version of the struct: a smaller
    /// `size` means NULL.
    pub emulator_caps: *const *const c_char,
}

impl Default for VirtpciAssignOptions {
    fn default() -> Self {
        VirtpciAssignOptions {
            size: 0,
            flags: 0,
            hotplug_ports: 0,
            libvirt_version: 0,
            numa_host: std::ptr::null(),
            emulator_caps: std::ptr::null(),
        }
    }
}

/// `virtpci_domain_assign_pci_addresses()` with `*opts`: the same result, plus virtpci's
/// placement options (`VirtpciAssignOptions`). Devices' `<addressPreferences hotplug='yes|no'
/// bus='pci|pcie' numa='N'/>` (and `<hotplug require='no'/>`) are honoured by both functions;
/// without preferences and with `hotplug_ports` negative the result is libvirt 9.0's (or
/// 11.3's, with `libvirt_version` 11003000).
///
/// Returns 0 and stores the new XML in `*out_xml` (release it with `virtpci_string_free()`
/// or `free()`), or -1 with the last error set: libvirt's errors as for
/// `virtpci_domain_assign_pci_addresses()`; `VIRTPCI_ERR_XML_ERROR` or
/// `VIRTPCI_ERR_CONFIG_UNSUPPORTED` for a preference that is malformed or cannot be met (the
/// message names the device and its line); `VIRTPCI_ERR_INVALID_ARG` for NULL arguments, a
/// `size` smaller than the first version of the struct, an unknown bit in `flags`, or a
/// `libvirt_version` other than 0, 9.0 or 11.3.
/// Thread-safe.
///
/// # Safety
/// `domain_xml` is NULL or a NUL-terminated string; `opts` is NULL or points to at least
/// `opts->size` readable bytes, and its `numa_host` (when within `size`) is NULL or a host
/// handle not yet freed; `out_xml` is NULL or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn virtpci_domain_assign_pci_addresses_with_options(
    domain_xml: *const c_char,
    opts: *const VirtpciAssignOptions,
    out_xml: *mut *mut c_char,
) -> c_int {
    const NAME: &str = "virtpci_domain_assign_pci_addresses_with_options";
    guard(NAME, || {
        // SAFETY: forwarded caller contract.
        let xml = unsafe { xml_arg(domain_xml, "domain_xml", NAME) }?;
        // SAFETY: forwarded caller contract.
        let opts = unsafe { versioned_options(opts, NAME) }?;
        // SAFETY: forwarded caller contract.
        let out = unsafe { out_arg(out_xml, "out_xml", NAME) }?;
        let options = options_of(&opts, NAME)?;
        let mirror = numa_host_of(&opts);
        let result = crate::assign::assign_domain_xml_mirroring(xml, options, mirror)?;
        for warning in &result.warnings {
            emit(VIRTPCI_LOG_WARNING, warning);
        }
        *out = malloc_string(&result.xml)?;
        Ok(0)
    })
}

/// The assignment options a caller's `VirtpciAssignOptions` asks for.
fn options_of(opts: &VirtpciAssignOptions, func: &str) -> Result<AssignOptions> {
    let hotplug_ports = u32::try_from(opts.hotplug_ports).ok();
    let mut options = assign_options(opts.flags, hotplug_ports, func)?;
    options.libvirt = LibvirtLevel::from_version_number(opts.libvirt_version)?;
    // SAFETY: the caller's contract on `emulator_caps`.
    options.emulator = unsafe { emulator_caps_arg(opts.emulator_caps, func) }?;
    Ok(options)
}

/// The most names `emulator_caps` may hold (libvirt 9.0 has about 400 capabilities).
const MAX_EMULATOR_CAP_NAMES: usize = 65536;

/// The capabilities a caller's NULL-terminated list of names gives (NULL: the level's
/// emulator).
///
/// # Safety
/// `names` is NULL or a NULL-terminated array of NUL-terminated strings.
unsafe fn emulator_caps_arg(names: *const *const c_char, func: &str) -> Result<EmulatorCaps> {
    if names.is_null() {
        return Ok(EmulatorCaps::default());
    }
    let mut read = Vec::new();
    for i in 0.. {
        if i == MAX_EMULATOR_CAP_NAMES {
            return Err(Error::invalid_arg(format!(
                "emulator_caps in {func} has more than {MAX_EMULATOR_CAP_NAMES} names (is it \
                 NULL-terminated?)"
            )));
        }
        // SAFETY: the list is NULL-terminated and `i` has not passed its end.
        let name = unsafe { names.add(i).read() };
        if name.is_null() {
            break;
        }
        // SAFETY: each entry is a NUL-terminated string.
        read.push(unsafe { str_arg(name, "emulator_caps entry", func) }?);
    }
    Ok(EmulatorCaps::from_names(read))
}

/// The NULL-terminated names of `virtpci_emulator_cap_names()`.
struct CapNames([*const c_char; EmulatorCap::ALL.len() + 1]);
// SAFETY: the pointers are to static, immutable C strings.
unsafe impl Sync for CapNames {}

static CAP_NAMES: CapNames = {
    let mut names = [std::ptr::null(); EmulatorCap::ALL.len() + 1];
    let mut i = 0;
    while i < EmulatorCap::ALL.len() {
        names[i] = EmulatorCap::ALL[i].c_name().as_ptr();
        i += 1;
    }
    CapNames(names)
};

/// The names of the emulator capabilities virtpci reads from
/// `VirtpciAssignOptions.emulator_caps`, as libvirt spells them, in a NULL-terminated static
/// array (never freed). Any other name given there is ignored. Thread-safe; never fails.
#[no_mangle]
pub extern "C" fn virtpci_emulator_cap_names() -> *const *const c_char {
    const NAME: &str = "virtpci_emulator_cap_names";
    guard(NAME, || Ok(CAP_NAMES.0.as_ptr()))
}

/// The host whose NUMA nodes the caller's options ask to mirror (`numa_host`), if any.
fn numa_host_of(opts: &VirtpciAssignOptions) -> Option<&dyn AssignHost> {
    // SAFETY: the caller's contract: `numa_host` is NULL or a live host handle, alive for
    // the call.
    let numa_host = unsafe { opts.numa_host.as_ref() }?;
    Some(&*numa_host.host as &dyn AssignHost)
}

/// Copy the caller's `VirtpciAssignOptions`, of the version its `size` says: fields after
/// that size are zero. A size below the first version's is refused.
///
/// # Safety
/// `opts` is NULL or points to at least `opts->size` readable bytes.
unsafe fn versioned_options(
    opts: *const VirtpciAssignOptions,
    func: &str,
) -> Result<VirtpciAssignOptions> {
    if opts.is_null() {
        return Err(null_arg("opts", func));
    }
    // SAFETY: the first field is readable whatever the version.
    let size = unsafe { std::ptr::addr_of!((*opts).size).read_unaligned() } as usize;
    if size < ASSIGN_OPTIONS_FIRST_SIZE {
        return Err(Error::invalid_arg(format!(
            "VirtpciAssignOptions size {size} is smaller than its first version \
             ({ASSIGN_OPTIONS_FIRST_SIZE})"
        )));
    }
    let mut copy = VirtpciAssignOptions::default();
    let n = size.min(std::mem::size_of::<VirtpciAssignOptions>());
    // SAFETY: the caller's struct has `size` readable bytes, ours has room for `n`, and the
    // two do not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(
            opts.cast::<u8>(),
            std::ptr::addr_of_mut!(copy).cast::<u8>(),
            n,
        )
    };
    // A size that ends inside the pointer gave part of one: the caller's struct has no host.
    if size < std::mem::offset_of!(VirtpciAssignOptions, numa_host) + std::mem::size_of::<usize>() {
        copy.numa_host = std::ptr::null();
    }
    // Likewise for the list of emulator capabilities (fourth version).
    if size
        < std::mem::offset_of!(VirtpciAssignOptions, emulator_caps) + std::mem::size_of::<usize>()
    {
        copy.emulator_caps = std::ptr::null();
    }
    Ok(copy)
}

/// `VirtpciAddressPreferences.bus`: no preference.
pub const VIRTPCI_BUS_ANY: c_int = 0;
/// `VirtpciAddressPreferences.bus`: conventional PCI.
pub const VIRTPCI_BUS_PCI: c_int = 1;
/// `VirtpciAddressPreferences.bus`: PCI Express.
pub const VIRTPCI_BUS_PCIE: c_int = 2;

/// Placement preferences for `virtpci_address_set_reserve_next_with_preferences()`, the same
/// as a device's `<addressPreferences>`. Set `size` to `sizeof(VirtpciAddressPreferences)`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct VirtpciAddressPreferences {
    /// `sizeof(VirtpciAddressPreferences)` as the caller knows it.
    pub size: c_uint,
    /// -1: no preference; 1: the device needs hotplug (always true when hot-plugging); 0:
    /// never unplugged, which a hot-plugged device cannot be (an error).
    pub hotplug: c_int,
    /// `VIRTPCI_BUS_ANY`, `VIRTPCI_BUS_PCI` or `VIRTPCI_BUS_PCIE`: for devices that can use
    /// either (virtio devices, PCI host devices, xHCI controllers).
    pub bus: c_int,
    /// -1: no preference; else a guest NUMA node: only buses behind an expander bus with
    /// that `<node>` are searched.
    pub numa_node: c_int,
}

/// Create the address set of the running guest defined by `xml` (its full domain XML, as a
/// daemon keeps it for a running domain). Addresses the XML lacks are assigned first, as
/// libvirt does when the domain starts.
///
/// Returns a new handle, to be released with `virtpci_address_set_free()`, or NULL with the
/// last error set (NULL or non-UTF-8 `xml`: `VIRTPCI_ERR_INVALID_ARG`; XML beyond virtpci's
/// limits: `VIRTPCI_ERR_XML_ERROR`, after reading at most 16 MiB + 1 bytes; a domain libvirt
/// would refuse: libvirt's error). Thread-safe.
///
/// # Safety
/// `xml` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn virtpci_address_set_new_from_xml(
    xml: *const c_char,
) -> *mut VirtpciAddressSet {
    const NAME: &str = "virtpci_address_set_new_from_xml";
    guard(NAME, || {
        // SAFETY: forwarded caller contract.
        let xml = unsafe { xml_arg(xml, "xml", NAME) }?;
        let set = HotplugAddressSet::from_domain_xml(xml)?;
        Ok(Box::into_raw(Box::new(VirtpciAddressSet {
            inner: Mutex::new(set),
        })))
    })
}

/// `virtpci_address_set_new_from_xml()` with `*opts`: the addresses the XML lacks are
/// assigned with these options, and the devices hot-plugged later get the flags the emulator
/// of `opts->emulator_caps` gives them (virtio devices on PCI Express or conventional PCI).
/// `libvirt_version` and `emulator_caps` are read; `flags`, `hotplug_ports` and `numa_host`
/// as for `virtpci_domain_assign_pci_addresses_with_options()`.
///
/// Returns a new handle, or NULL with the last error set as
/// `virtpci_address_set_new_from_xml()` and `virtpci_domain_assign_pci_addresses_with_options()`
/// do (NULL `opts`: `VIRTPCI_ERR_INVALID_ARG`). Thread-safe.
///
/// # Safety
/// `xml` is NULL or a NUL-terminated string; `opts` as for
/// `virtpci_domain_assign_pci_addresses_with_options()`.
#[no_mangle]
pub unsafe extern "C" fn virtpci_address_set_new_from_xml_with_options(
    xml: *const c_char,
    opts: *const VirtpciAssignOptions,
) -> *mut VirtpciAddressSet {
    const NAME: &str = "virtpci_address_set_new_from_xml_with_options";
    guard(NAME, || {
        // SAFETY: forwarded caller contract.
        let xml = unsafe { xml_arg(xml, "xml", NAME) }?;
        // SAFETY: forwarded caller contract.
        let opts = unsafe { versioned_options(opts, NAME) }?;
        let options = options_of(&opts, NAME)?;
        let set = HotplugAddressSet::from_domain_xml_with(xml, &options)?;
        Ok(Box::into_raw(Box::new(VirtpciAddressSet {
            inner: Mutex::new(set),
        })))
    })
}

/// Reserve a guest address for hot-plugging the device described by `device_xml` (one device
/// element, e.g. `<interface type='network'>...</interface>`), with libvirt's hotplug rules:
/// the bus must support hotplug, no PCI controller is ever added, and an `<address>` given in
/// `device_xml` is reserved as is (its function must be 0).
///
/// Returns 0 and stores the address in `*out` when one was reserved; returns 1, leaving
/// `*out` unchanged, when the device does not use a PCI address (a PS/2 mouse, a USB disk);
/// returns -1 with the last error set otherwise (`VIRTPCI_ERR_INTERNAL` "internal error: No
/// more available PCI slots", `VIRTPCI_ERR_XML_ERROR` for an address already in use or on a
/// bus that cannot take it, `VIRTPCI_ERR_INVALID_ARG` for NULL arguments,
/// `VIRTPCI_ERR_CONFIG_UNSUPPORTED` on s390x, where a PCI address alone is not the answer:
/// use `virtpci_address_set_reserve_next_guest()`). Thread-safe.
///
/// # Safety
/// `set` is NULL or a live handle from `virtpci_address_set_new_from_xml()`; `device_xml` is
/// NULL or a NUL-terminated string; `out` is NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn virtpci_address_set_reserve_next(
    set: *mut VirtpciAddressSet,
    device_xml: *const c_char,
    out: *mut VirtpciPciAddress,
) -> c_int {
    const NAME: &str = "virtpci_address_set_reserve_next";
    guard(NAME, || {
        // SAFETY: forwarded caller contract.
        let set = unsafe { ref_arg(set as *const VirtpciAddressSet, "set", NAME) }?;
        // SAFETY: forwarded caller contract.
        let device_xml = unsafe { xml_arg(device_xml, "device_xml", NAME) }?;
        // SAFETY: forwarded caller contract.
        let out = unsafe { out_arg(out, "out", NAME) }?;
        match set.lock().reserve_next(device_xml)? {
            Some(addr) => {
                *out = addr.into();
                Ok(0)
            }
            None => Ok(1),
        }
    })
}

/// `virtpci_address_set_reserve_next()` with placement preferences: each field of `*prefs`
/// that is set replaces the device's own `<addressPreferences>` value. `bus` picks
/// conventional PCI or PCI Express for a device that can use either; `numa_node` limits the
/// search to buses behind an expander bus of that node; `hotplug` 0 is refused (a
/// hot-plugged device needs hotplug).
///
/// Returns 0 and stores the address in `*out`; 1 when the device does not use PCI; -1 with
/// the last error set: as `virtpci_address_set_reserve_next()`, plus
/// `VIRTPCI_ERR_OPERATION_INVALID` for `hotplug` 0 or a NUMA node no bus is behind,
/// `VIRTPCI_ERR_CONFIG_UNSUPPORTED` for a `bus` the device cannot use, and
/// `VIRTPCI_ERR_INVALID_ARG` for NULL arguments, a too small `size` or a value out of range.
/// Thread-safe.
///
/// # Safety
/// `set` is NULL or a live handle; `device_xml` is NULL or a NUL-terminated string; `prefs`
/// is NULL or points to at least `prefs->size` readable bytes; `out` is NULL or valid for
/// writing.
#[no_mangle]
pub unsafe extern "C" fn virtpci_address_set_reserve_next_with_preferences(
    set: *mut VirtpciAddressSet,
    device_xml: *const c_char,
    prefs: *const VirtpciAddressPreferences,
    out: *mut VirtpciPciAddress,
) -> c_int {
    const NAME: &str = "virtpci_address_set_reserve_next_with_preferences";
    guard(NAME, || {
        // SAFETY: forwarded caller contract.
        let set = unsafe { ref_arg(set as *const VirtpciAddressSet, "set", NAME) }?;
        // SAFETY: forwarded caller contract.
        let device_xml = unsafe { xml_arg(device_xml, "device_xml", NAME) }?;
        // SAFETY: forwarded caller contract.
        let prefs = unsafe { ref_arg(prefs, "prefs", NAME) }?;
        // SAFETY: forwarded caller contract.
        let out = unsafe { out_arg(out, "out", NAME) }?;
        if (prefs.size as usize) < std::mem::size_of::<VirtpciAddressPreferences>() {
            return Err(Error::invalid_arg(format!(
                "VirtpciAddressPreferences size {} is smaller than its first version ({})",
                prefs.size,
                std::mem::size_of::<VirtpciAddressPreferences>()
            )));
        }
        let bad = |what: &str, value: c_int| {
            Error::invalid_arg(format!(
                "VirtpciAddressPreferences {what} {value} is out of range in function {NAME}"
            ))
        };
        let wanted = AddressPreferences {
            hotplug: match prefs.hotplug {
                -1 => None,
                0 => Some(false),
                1 => Some(true),
                v => return Err(bad("hotplug", v)),
            },
            bus: match prefs.bus {
                VIRTPCI_BUS_ANY => None,
                VIRTPCI_BUS_PCI => Some(BusPreference::Pci),
                VIRTPCI_BUS_PCIE => Some(BusPreference::Pcie),
                v => return Err(bad("bus", v)),
            },
            numa: match prefs.numa_node {
                -1 => None,
                v => Some(u32::try_from(v).map_err(|_| bad("numa_node", v))?),
            },
            line: None,
        };
        match set.lock().reserve_next_with(device_xml, &wanted)? {
            Some(addr) => {
                *out = addr.into();
                Ok(0)
            }
            None => Ok(1),
        }
    })
}

/// Reserve `*addr` for hot-plugging the device described by `device_xml`, with libvirt's
/// hotplug rules (function 0 only, the bus must support hotplug and accept the device).
///
/// Returns 0, or -1 with the last error set: `VIRTPCI_ERR_INTERNAL` "internal error: Only PCI
/// device addresses with function=0 are supported", `VIRTPCI_ERR_XML_ERROR` "XML error:
/// Attempted double use of PCI Address ..." and libvirt's other address errors,
/// `VIRTPCI_ERR_OPERATION_INVALID` when the device does not use PCI, `VIRTPCI_ERR_INVALID_ARG`
/// for NULL arguments. Thread-safe.
///
/// # Safety
/// `set` is NULL or a live handle; `addr` is NULL or valid for reading; `device_xml` is NULL
/// or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn virtpci_address_set_reserve(
    set: *mut VirtpciAddressSet,
    addr: *const VirtpciPciAddress,
    device_xml: *const c_char,
) -> c_int {
    const NAME: &str = "virtpci_address_set_reserve";
    guard(NAME, || {
        // SAFETY: forwarded caller contract.
        let set = unsafe { ref_arg(set as *const VirtpciAddressSet, "set", NAME) }?;
        // SAFETY: forwarded caller contract.
        let addr = PciAddress::from(unsafe { ref_arg(addr, "addr", NAME) }?);
        // SAFETY: forwarded caller contract.
        let device_xml = unsafe { xml_arg(device_xml, "device_xml", NAME) }?;
        set.lock().reserve(&addr, device_xml)?;
        Ok(0)
    })
}

/// Release the guest address `*addr` after a hot-unplug. Only that function is freed; as in
/// libvirt, the slot keeps its "shared by root ports" mark. Releasing a free address is not an
/// error.
///
/// Returns 0, or -1 with `VIRTPCI_ERR_INVALID_ARG` when an argument is NULL or the address is
/// outside the guest's topology. Thread-safe.
///
/// # Safety
/// `set` is NULL or a live handle; `addr` is NULL or valid for reading.
#[no_mangle]
pub unsafe extern "C" fn virtpci_address_set_release(
    set: *mut VirtpciAddressSet,
    addr: *const VirtpciPciAddress,
) -> c_int {
    const NAME: &str = "virtpci_address_set_release";
    guard(NAME, || {
        // SAFETY: forwarded caller contract.
        let set = unsafe { ref_arg(set as *const VirtpciAddressSet, "set", NAME) }?;
        // SAFETY: forwarded caller contract.
        let addr = PciAddress::from(unsafe { ref_arg(addr, "addr", NAME) }?);
        set.lock().release(&addr)?;
        Ok(0)
    })
}

/// Release an address set. NULL is accepted. No other thread may use `set` during or after
/// this call. The thread's last error is left as it was.
///
/// # Safety
/// `set` is NULL or a handle from `virtpci_address_set_new_from_xml()` not yet released.
#[no_mangle]
pub unsafe extern "C" fn virtpci_address_set_free(set: *mut VirtpciAddressSet) {
    guard_free("virtpci_address_set_free", || {
        if !set.is_null() {
            // SAFETY: by contract the pointer came from Box::into_raw and is released once.
            drop(unsafe { Box::from_raw(set) });
        }
    })
}

/// `virtpci_domain_explain_pci_addresses()`: print JSON instead of text.
pub const VIRTPCI_EXPLAIN_JSON: c_uint = 1 << 0;

/// Why each device of the domain in `domain_xml` gets the guest PCI address it gets, as
/// `virtpci assign --explain` prints it: per device its address and the rule that chose it
/// (a reservation of the chipset, a configured address, the first free place its connect
/// flags accept), each controller that was added and why, and the warnings (a guest slot
/// used without function 0). `opts` as for `virtpci_domain_assign_pci_addresses_with_options()`,
/// or NULL for the defaults (libvirt 9.0). `flags`: 0 for text, `VIRTPCI_EXPLAIN_JSON` for
/// JSON (`virtpci assign --explain --json`).
///
/// Returns 0 and stores the explanation in `*out` (release it with `virtpci_string_free()`
/// or `free()`), or -1 with the last error set: the assignment's errors (libvirt's), or
/// `VIRTPCI_ERR_INVALID_ARG` for NULL arguments, an unknown flag, or options refused as by
/// `virtpci_domain_assign_pci_addresses_with_options()`; `*out` is then unchanged.
/// Thread-safe.
///
/// # Safety
/// `domain_xml` is NULL or a NUL-terminated string; `opts` is NULL or points to at least
/// `opts->size` readable bytes; `out` is NULL or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn virtpci_domain_explain_pci_addresses(
    domain_xml: *const c_char,
    opts: *const VirtpciAssignOptions,
    flags: c_uint,
    out: *mut *mut c_char,
) -> c_int {
    const NAME: &str = "virtpci_domain_explain_pci_addresses";
    guard(NAME, || {
        // SAFETY: forwarded caller contract.
        let xml = unsafe { xml_arg(domain_xml, "domain_xml", NAME) }?;
        let given = if opts.is_null() {
            None
        } else {
            // SAFETY: forwarded caller contract.
            Some(unsafe { versioned_options(opts, NAME) }?)
        };
        let options = match &given {
            None => AssignOptions::default(),
            Some(o) => options_of(o, NAME)?,
        };
        check_flags(flags, VIRTPCI_EXPLAIN_JSON, NAME)?;
        // SAFETY: forwarded caller contract.
        let out = unsafe { out_arg(out, "out", NAME) }?;
        let mirror = given.as_ref().and_then(numa_host_of);
        let explanation = crate::assign::explain::explain_mirroring(xml, &options, mirror)?;
        *out = malloc_string(&if flags & VIRTPCI_EXPLAIN_JSON != 0 {
            explanation.to_json()
        } else {
            explanation.to_text()
        })?;
        Ok(0)
    })
}
