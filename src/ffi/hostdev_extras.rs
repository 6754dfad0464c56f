//! Prepare with what a `VirtpciHostdev` cannot say: `<driver model='NAME' iommufd='yes'/>` per
//! device, and the network configs of `<interface type='hostdev'>`
//! (`virtpci_hostdev_prepare_pci_devices_ext`). They come in a size-versioned struct, so that
//! later fields are appended without breaking a daemon compiled against an older header.

use super::address::VirtpciPciAddress;
use super::boundary::{array_arg, guard, opt_str_arg};
use super::hostdev::{c_error, domain_hostdevs_args, prepare_options, uuid_arg};
use super::hostdev::{VirtpciHostdev, VirtpciHostdevManager};
use super::hostdev_net::{add_nets, VirtpciHostdevNet};
use crate::error::{Error, Result};
use crate::pci::PciAddress;
use crate::xml::hostdevs::HostdevSpec;
use std::collections::BTreeSet;
use std::ffi::{c_char, c_int, c_uchar, c_uint};
use std::mem::{offset_of, size_of};

/// How one hostdev's VFIO driver is chosen and opened, as libvirt's `<driver>` element of a
/// PCI hostdev says it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct VirtpciHostdevDriver {
    /// The device: the `source` of one of the hostdevs of the same call.
    pub source: VirtpciPciAddress,
    /// `<driver model='NAME'/>`: the VFIO driver to bind ("vfio-pci" or a variant driver such
    /// as "mlx5_vfio_pci"), instead of the one chosen from modules.alias; NULL to choose. Only
    /// read during the call.
    pub model: *const c_char,
    /// Non-zero for `<driver iommufd='yes'/>`: the device is opened through iommufd; prepare
    /// requires `/dev/iommu` and the device's VFIO device cdev (see
    /// `virtpci_host_get_vfio_cdev()` for its path).
    pub iommufd: c_int,
}

/// What `virtpci_hostdev_prepare_pci_devices_ext()` takes beyond the hostdevs. Set `size` to
/// `sizeof(VirtpciHostdevPrepareExtras)`: a later library reads only the fields that size
/// covers (the others are absent), and an older library accepts a larger struct only when the
/// fields it does not know are zero.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct VirtpciHostdevPrepareExtras {
    /// `sizeof(VirtpciHostdevPrepareExtras)` as the caller was compiled.
    pub size: usize,
    /// The network side of hostdevs that are `<interface type='hostdev'>`s, as for
    /// `virtpci_hostdev_prepare_pci_devices_with_net()`; NULL when `n_nets` is 0.
    pub nets: *const VirtpciHostdevNet,
    pub n_nets: usize,
    /// Per-device driver options, at most one per hostdev; NULL when `n_drivers` is 0.
    /// Hostdevs without one have their driver chosen and are opened through VFIO groups.
    pub drivers: *const VirtpciHostdevDriver,
    pub n_drivers: usize,
}

/// The first version of the extras: every field up to `n_drivers`.
const EXTRAS_V1_SIZE: usize =
    offset_of!(VirtpciHostdevPrepareExtras, n_drivers) + size_of::<usize>();

/// Read the caller's extras, whatever version of the struct it was compiled with.
///
/// # Safety
/// `extras` is NULL or valid for reading `(*extras).size` bytes.
unsafe fn extras_arg(
    extras: *const VirtpciHostdevPrepareExtras,
    func: &str,
) -> Result<Option<VirtpciHostdevPrepareExtras>> {
    if extras.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL; every version of the struct starts with `size`.
    let size = unsafe { *extras.cast::<usize>() };
    if size < EXTRAS_V1_SIZE {
        return Err(Error::invalid_arg(format!(
            "extras->size in {func} is {size}, smaller than any version of VirtpciHostdevPrepareExtras (at least {EXTRAS_V1_SIZE}); set it to sizeof(VirtpciHostdevPrepareExtras)"
        )));
    }
    if size > size_of::<VirtpciHostdevPrepareExtras>() {
        // SAFETY: valid for `size` bytes by the caller's contract.
        let tail = unsafe {
            std::slice::from_raw_parts(
                extras
                    .cast::<u8>()
                    .add(size_of::<VirtpciHostdevPrepareExtras>()),
                size - size_of::<VirtpciHostdevPrepareExtras>(),
            )
        };
        if tail.iter().any(|b| *b != 0) {
            return Err(Error::invalid_arg(format!(
                "extras in {func} sets fields this library does not know (its size is {size}, this library's VirtpciHostdevPrepareExtras has {})",
                size_of::<VirtpciHostdevPrepareExtras>()
            )));
        }
    }
    // Fields past the caller's size stay zero: absent.
    // SAFETY: all-zero bytes are a valid value of this struct (zero counts, NULL pointers).
    let mut read: VirtpciHostdevPrepareExtras = unsafe { std::mem::zeroed() };
    // SAFETY: the caller's struct is valid for `size` bytes, ours for its own size.
    unsafe {
        std::ptr::copy_nonoverlapping(
            extras.cast::<u8>(),
            std::ptr::addr_of_mut!(read).cast::<u8>(),
            size.min(size_of::<VirtpciHostdevPrepareExtras>()),
        );
    }
    Ok(Some(read))
}

/// Apply the driver options to the hostdevs they name.
///
/// # Safety
/// `drivers` is NULL (only with `n` 0) or valid for reading `n` elements whose `model` is NULL
/// or a NUL-terminated string.
unsafe fn add_drivers(
    list: &mut [HostdevSpec],
    drivers: *const VirtpciHostdevDriver,
    n: usize,
    func: &str,
) -> Result<()> {
    // SAFETY: forwarded caller contract for the array.
    let drivers = unsafe { array_arg(drivers, n, "extras->drivers", func) }?;
    let mut seen = BTreeSet::new();
    for (i, d) in drivers.iter().enumerate() {
        let source = PciAddress::from(&d.source);
        source.check_ranges()?;
        // SAFETY: forwarded caller contract for the model string.
        let model = unsafe { opt_str_arg(d.model, "extras->drivers[].model", func) }?;
        let spec = hostdev_named(list, &source, "drivers", i, func)?;
        if !seen.insert(source) {
            return Err(Error::invalid_arg(format!(
                "extras->drivers[{i}] in {func} names {source} a second time"
            )));
        }
        spec.model = model.map(str::to_string);
        spec.iommufd = d.iommufd != 0;
    }
    Ok(())
}

/// The hostdev an entry of a per-device array names; an entry naming none is an error.
pub(super) fn hostdev_named<'a>(
    list: &'a mut [HostdevSpec],
    source: &PciAddress,
    array: &str,
    i: usize,
    func: &str,
) -> Result<&'a mut HostdevSpec> {
    list.iter_mut()
        .find(|h| h.source == *source)
        .ok_or_else(|| {
            Error::invalid_arg(format!(
                "{array}[{i}] in {func} names {source}, which is not one of the hostdevs"
            ))
        })
}

/// `virtpci_hostdev_prepare_pci_devices()` with what a `VirtpciHostdev` cannot say, in
/// `extras` (NULL: nothing more, the same as that function): per-device driver options
/// (`<driver model='NAME' iommufd='yes'/>`: a forced model is refused with
/// `VIRTPCI_ERR_CONFIG_UNSUPPORTED` unless it is a VFIO driver; iommufd without `/dev/iommu`,
/// or a kernel without VFIO device cdevs, is refused with `VIRTPCI_ERR_CONFIG_UNSUPPORTED`
/// naming what is missing, and nothing is left changed), and the network configs of
/// `virtpci_hostdev_prepare_pci_devices_with_net()`, with its rules.
///
/// Errors besides those functions': `VIRTPCI_ERR_INVALID_ARG` for an `extras->size` smaller
/// than any version of the struct or larger with unknown fields set, a NULL array with a
/// non-zero count, or a driver entry naming no hostdev or one named twice. Returns 0, or -1
/// with the last error set. Thread-safe.
///
/// # Safety
/// As `virtpci_hostdev_prepare_pci_devices()`; `extras` is NULL or valid for reading
/// `extras->size` bytes, its arrays NULL or valid for reading their counts of elements, whose
/// strings are NULL or NUL-terminated.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn virtpci_hostdev_prepare_pci_devices_ext(
    mgr: *mut VirtpciHostdevManager,
    drv_name: *const c_char,
    dom_name: *const c_char,
    uuid: *const c_uchar,
    hostdevs: *const VirtpciHostdev,
    n: usize,
    extras: *const VirtpciHostdevPrepareExtras,
    flags: c_uint,
) -> c_int {
    const NAME: &str = "virtpci_hostdev_prepare_pci_devices_ext";
    guard(NAME, || {
        // SAFETY: forwarded caller contract.
        let mut a = unsafe { domain_hostdevs_args(mgr, drv_name, dom_name, hostdevs, n, NAME) }?;
        // SAFETY: forwarded caller contract.
        if let Some(x) = unsafe { extras_arg(extras, NAME) }? {
            // SAFETY: forwarded caller contract (both arrays).
            unsafe {
                add_nets(&mut a.list, x.nets, x.n_nets, NAME)?;
                add_drivers(&mut a.list, x.drivers, x.n_drivers, NAME)?;
            }
        }
        // SAFETY: forwarded caller contract.
        let uuid = unsafe { uuid_arg(uuid) };
        let options = prepare_options(flags, NAME)?;
        a.mgr
            .prepare_pci_devices(a.drv, a.dom, uuid.as_ref(), &a.list, options)
            .map_err(c_error)?;
        Ok(0)
    })
}
