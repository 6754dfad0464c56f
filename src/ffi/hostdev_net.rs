//! The C calls for network hostdevs and whole-group help: prepare with the MAC/VLAN of each
//! `<interface type='hostdev'>` (`virtpci_hostdev_prepare_pci_devices_with_net`, libvirt's
//! virHostdevPreparePCIDevices given interface hostdevs), and a domain completed with its
//! hostdevs' missing IOMMU group members (`virtpci_domain_add_missing_group_members`, the
//! CLI's `check --fix`).

use super::address::VirtpciPciAddress;
use super::boundary::{
    array_arg, check_flags, guard, malloc_string, opt_str_arg, out_arg, ref_arg, xml_arg,
};
use super::host::VirtpciHost;
use super::hostdev::{
    c_error, domain_hostdevs_args, prepare_options, uuid_arg, VirtpciHostdev, VirtpciHostdevManager,
};
use super::hostdev_extras::hostdev_named;
use crate::error::{Error, Result};
use crate::host::MacAddr;
use crate::pci::PciAddress;
use crate::xml::hostdevs::{HostdevSpec, NetConfig, VLAN_MAX};
use std::ffi::{c_char, c_int, c_uchar, c_uint};

/// The network side of one `<interface type='hostdev'>`, given to
/// `virtpci_hostdev_prepare_pci_devices_with_net()` beside its hostdev: what libvirt keeps in
/// the hostdev's parent `virDomainNetDef`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct VirtpciHostdevNet {
    /// The VF: the `source` of one of the hostdevs of the same call.
    pub source: VirtpciPciAddress,
    /// `<mac address>`, e.g. "52:54:00:aa:bb:cc", or NULL for none. Only read during the call.
    pub mac: *const c_char,
    /// `<vlan><tag id>`: 0 to 4095, or -1 for none (the VLAN the PF holds is left as it is).
    pub vlan: c_int,
}

/// Attach the network configs to the hostdevs they name.
///
/// # Safety
/// `nets` is NULL (only with `n_nets` 0) or valid for reading `n_nets` elements whose `mac` is
/// NULL or a NUL-terminated string.
pub(super) unsafe fn add_nets(
    list: &mut [HostdevSpec],
    nets: *const VirtpciHostdevNet,
    n_nets: usize,
    func: &str,
) -> Result<()> {
    // SAFETY: forwarded caller contract for the array.
    let nets = unsafe { array_arg(nets, n_nets, "nets", func) }?;
    for (i, net) in nets.iter().enumerate() {
        let source = PciAddress::from(&net.source);
        source.check_ranges()?;
        // SAFETY: forwarded caller contract for the MAC string.
        let mac = unsafe { opt_str_arg(net.mac, "nets[].mac", func) }?
            .map(MacAddr::parse)
            .transpose()?;
        let vlan = match net.vlan {
            -1 => None,
            v if (0..=i32::from(VLAN_MAX)).contains(&v) => Some(v as u16),
            v => {
                return Err(Error::invalid_arg(format!(
                    "nets[{i}].vlan in {func} must be -1 or a VLAN id from 0 to {VLAN_MAX}, not {v}"
                )))
            }
        };
        let spec = hostdev_named(list, &source, "nets", i, func)?;
        if spec.net.is_some() {
            return Err(Error::invalid_arg(format!(
                "nets[{i}] in {func} names {source} a second time"
            )));
        }
        spec.net = Some(NetConfig { mac, vlan });
    }
    Ok(())
}

/// `virtpci_hostdev_prepare_pci_devices()` where some hostdevs are `<interface
/// type='hostdev'>`s: each hostdev named by an entry of `nets` must be an SR-IOV VF whose PF
/// has a netdev (libvirt's refusals, "Interface type hostdev is currently supported on SR-IOV
/// Virtual Functions only", `VIRTPCI_ERR_CONFIG_UNSUPPORTED`, before anything changes), and
/// when its entry has a MAC or a VLAN, the MAC and VLAN its PF holds for it are saved in the
/// state directory before anything changes, then set as asked (through netlink on a host
/// opened on `/sys`, in the simulated kernel's table on a simulated host; refused with
/// `VIRTPCI_ERR_OPERATION_UNSUPPORTED` on any other tree).
/// `virtpci_hostdev_reattach_pci_devices()` (or `_reattach_domain()`) restores exactly what
/// was saved, also from another process after a crash; a failure of prepare puts them back.
///
/// `nets` may be NULL when `n_nets` is 0 (then this is `virtpci_hostdev_prepare_pci_devices()`).
/// Errors besides that function's: `VIRTPCI_ERR_INVALID_ARG` for an entry naming no hostdev or
/// one named twice, or a `vlan` outside -1..4095; a MAC that does not parse or is multicast
/// gets libvirt's words ("unable to parse mac address '…'"). Returns 0, or -1 with the last
/// error set. Thread-safe.
///
/// # Safety
/// As `virtpci_hostdev_prepare_pci_devices()`; `nets` is NULL or valid for reading `n_nets`
/// elements whose `mac` is NULL or a NUL-terminated string.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn virtpci_hostdev_prepare_pci_devices_with_net(
    mgr: *mut VirtpciHostdevManager,
    drv_name: *const c_char,
    dom_name: *const c_char,
    uuid: *const c_uchar,
    hostdevs: *const VirtpciHostdev,
    n: usize,
    nets: *const VirtpciHostdevNet,
    n_nets: usize,
    flags: c_uint,
) -> c_int {
    const NAME: &str = "virtpci_hostdev_prepare_pci_devices_with_net";
    guard(NAME, || {
        // SAFETY: forwarded caller contract.
        let mut a = unsafe { domain_hostdevs_args(mgr, drv_name, dom_name, hostdevs, n, NAME) }?;
        // SAFETY: forwarded caller contract.
        unsafe { add_nets(&mut a.list, nets, n_nets, NAME) }?;
        // SAFETY: forwarded caller contract.
        let uuid = unsafe { uuid_arg(uuid) };
        let options = prepare_options(flags, NAME)?;
        a.mgr
            .prepare_pci_devices(a.drv, a.dom, uuid.as_ref(), &a.list, options)
            .map_err(c_error)?;
        Ok(0)
    })
}

/// Whole-group help, as `virtpci check --fix`: store in `*out_xml` the domain of `domain_xml`
/// with every member of its PCI hostdevs' IOMMU groups on `host` that it does not declare
/// added at the end of `<devices>` as a managed `<hostdev>` hidden from the guest (`<address
/// type='unassigned'/>`), PCI bridges and ports excepted; every other byte is kept. The
/// result passes the whole-group rule of `virtpci_hostdev_prepare_domain()` (other refusals,
/// such as a device the host needs, remain). A domain with nothing missing comes back
/// unchanged. Release the string with `virtpci_string_free()` or `free()`.
///
/// `flags` must be 0. Errors: `VIRTPCI_ERR_INVALID_ARG` (NULL argument, non-UTF-8 text,
/// flags), `VIRTPCI_ERR_XML_ERROR` (malformed XML, a hostdev without a source address, no
/// `<name>`, no `<devices>` element to add to), `VIRTPCI_ERR_SYSTEM_ERROR` (sysfs unreadable).
/// Returns 0, or -1 with the last error set and `*out_xml` unchanged. Reads only. Thread-safe.
///
/// # Safety
/// `host` is NULL or a live host handle; `domain_xml` is NULL or a NUL-terminated string;
/// `out_xml` is NULL or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn virtpci_domain_add_missing_group_members(
    host: *const VirtpciHost,
    domain_xml: *const c_char,
    flags: c_uint,
    out_xml: *mut *mut c_char,
) -> c_int {
    const NAME: &str = "virtpci_domain_add_missing_group_members";
    guard(NAME, || {
        // SAFETY: forwarded caller contract.
        let host = &unsafe { ref_arg(host, "host", NAME) }?.host;
        // SAFETY: forwarded caller contract.
        let xml = unsafe { xml_arg(domain_xml, "domain_xml", NAME) }?;
        // SAFETY: forwarded caller contract.
        let out = unsafe { out_arg(out_xml, "out_xml", NAME) }?;
        check_flags(flags, 0, NAME)?;
        let completed = crate::hostdev::group_fix::add_missing_group_members(host, xml)?;
        *out = malloc_string(&completed)?;
        Ok(0)
    })
}
