//! Hotplug with guest addresses of any kind: a PCI address (with zPCI identifiers on s390x) or
//! a CCW device number (s390x).

use super::address::VirtpciPciAddress;
use super::assign::VirtpciAddressSet;
use super::boundary::{guard, out_arg, ref_arg, xml_arg};
use crate::assign::hotplug_s390::GuestAddress;
use crate::error::{Error, Result};
use crate::pci::PciAddress;
use crate::xml::ccw::{CcwAddress, MAX_CSSID, MAX_DEVNO, MAX_SSID};
use std::ffi::{c_char, c_int, c_uint};

/// `VirtpciGuestAddress.kind`: a PCI address, with zPCI identifiers on s390x.
pub const VIRTPCI_GUEST_ADDRESS_PCI: c_int = 0;
/// `VirtpciGuestAddress.kind`: a channel subsystem (CCW) address, s390x only.
pub const VIRTPCI_GUEST_ADDRESS_CCW: c_int = 1;

/// A guest address given to a hot-plugged device: `kind` says which fields are meaningful.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VirtpciGuestAddress {
    /// `VIRTPCI_GUEST_ADDRESS_PCI` or `VIRTPCI_GUEST_ADDRESS_CCW`.
    pub kind: c_int,
    /// The PCI address (kind PCI).
    pub pci: VirtpciPciAddress,
    /// Non-zero when `zpci_uid` and `zpci_fid` hold the device's zPCI identifiers (kind PCI
    /// on s390x; libvirt's `<zpci uid fid/>`).
    pub has_zpci: c_int,
    pub zpci_uid: c_uint,
    pub zpci_fid: c_uint,
    /// The CCW address (kind CCW): channel subsystem id, subchannel set id, device number
    /// (libvirt's `<address type='ccw' cssid ssid devno/>`).
    pub ccw_cssid: c_uint,
    pub ccw_ssid: c_uint,
    pub ccw_devno: c_uint,
}

impl From<GuestAddress> for VirtpciGuestAddress {
    fn from(a: GuestAddress) -> Self {
        match a {
            GuestAddress::Pci { addr, zpci } => VirtpciGuestAddress {
                kind: VIRTPCI_GUEST_ADDRESS_PCI,
                pci: addr.into(),
                has_zpci: c_int::from(zpci.is_some()),
                zpci_uid: zpci.map_or(0, |z| z.0),
                zpci_fid: zpci.map_or(0, |z| z.1),
                ..Default::default()
            },
            GuestAddress::Ccw(ccw) => VirtpciGuestAddress {
                kind: VIRTPCI_GUEST_ADDRESS_CCW,
                ccw_cssid: ccw.cssid,
                ccw_ssid: ccw.ssid,
                ccw_devno: ccw.devno,
                ..Default::default()
            },
        }
    }
}

impl TryFrom<&VirtpciGuestAddress> for GuestAddress {
    type Error = Error;

    fn try_from(a: &VirtpciGuestAddress) -> Result<GuestAddress> {
        match a.kind {
            VIRTPCI_GUEST_ADDRESS_PCI => Ok(GuestAddress::Pci {
                addr: PciAddress::from(&a.pci),
                zpci: (a.has_zpci != 0).then_some((a.zpci_uid, a.zpci_fid)),
            }),
            VIRTPCI_GUEST_ADDRESS_CCW => {
                let ccw = CcwAddress {
                    cssid: a.ccw_cssid,
                    ssid: a.ccw_ssid,
                    devno: a.ccw_devno,
                };
                if ccw.cssid > MAX_CSSID || ccw.ssid > MAX_SSID || ccw.devno > MAX_DEVNO {
                    return Err(Error::invalid_arg(format!(
                        "CCW address cssid 0x{:x} ssid 0x{:x} devno 0x{:x} is out of range \
                         (cssid up to 0x{MAX_CSSID:x}, ssid up to {MAX_SSID}, devno up to \
                         0x{MAX_DEVNO:x})",
                        ccw.cssid, ccw.ssid, ccw.devno
                    )));
                }
                Ok(GuestAddress::Ccw(ccw))
            }
            other => Err(Error::invalid_arg(format!(
                "guest address kind {other} is neither VIRTPCI_GUEST_ADDRESS_PCI (0) nor \
                 VIRTPCI_GUEST_ADDRESS_CCW (1)"
            ))),
        }
    }
}

/// Reserve the guest address of the device described by `device_xml` (one device element)
/// for hot-plugging it, on every machine: on s390x (`s390-ccw-virtio`) a virtio device
/// without an address gets the lowest free CCW device number of `fe.0`, a device on PCI its
/// PCI address and zPCI uid and fid, as libvirt gives them; elsewhere the PCI address
/// `virtpci_address_set_reserve_next()` gives. An address in `device_xml` is reserved as is.
///
/// Returns 0 and stores the address in `*out`; 1, leaving `*out` unchanged, when the device
/// uses neither PCI nor CCW; -1 with the last error set otherwise: as
/// `virtpci_address_set_reserve_next()`, plus `VIRTPCI_ERR_XML_ERROR` "XML error: The CCW
/// devno 'fe.0.0000' is in use already", `VIRTPCI_ERR_INTERNAL` "internal error: zPCI uid 10
/// is already reserved" (libvirt prints the id in octal) or "There are no more free CCW
/// devnos.", `VIRTPCI_ERR_CONFIG_UNSUPPORTED` for address preferences on a device that goes
/// on CCW. A refused device keeps nothing reserved. Thread-safe.
///
/// # Safety
/// `set` is NULL or a live handle; `device_xml` is NULL or a NUL-terminated string; `out` is
/// NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn virtpci_address_set_reserve_next_guest(
    set: *mut VirtpciAddressSet,
    device_xml: *const c_char,
    out: *mut VirtpciGuestAddress,
) -> c_int {
    const NAME: &str = "virtpci_address_set_reserve_next_guest";
    guard(NAME, || {
        // SAFETY: forwarded caller contract.
        let set = unsafe { ref_arg(set as *const VirtpciAddressSet, "set", NAME) }?;
        // SAFETY: forwarded caller contract.
        let device_xml = unsafe { xml_arg(device_xml, "device_xml", NAME) }?;
        // SAFETY: forwarded caller contract.
        let out = unsafe { out_arg(out, "out", NAME) }?;
        match set.lock().reserve_next_guest(device_xml)? {
            Some(addr) => {
                *out = addr.into();
                Ok(0)
            }
            None => Ok(1),
        }
    })
}

/// Release the guest address `*addr` after a hot-unplug: a PCI function and, on s390x, the
/// zPCI identifiers of the device there; or a CCW device number. Releasing a free address
/// is not an error, as in libvirt.
///
/// Returns 0, or -1 with `VIRTPCI_ERR_INVALID_ARG` when an argument is NULL, `kind` is
/// unknown, a CCW number is out of range or given for a guest that is not s390x, or the PCI
/// address is outside the guest's topology. Thread-safe.
///
/// # Safety
/// `set` is NULL or a live handle; `addr` is NULL or valid for reading.
#[no_mangle]
pub unsafe extern "C" fn virtpci_address_set_release_guest(
    set: *mut VirtpciAddressSet,
    addr: *const VirtpciGuestAddress,
) -> c_int {
    const NAME: &str = "virtpci_address_set_release_guest";
    guard(NAME, || {
        // SAFETY: forwarded caller contract.
        let set = unsafe { ref_arg(set as *const VirtpciAddressSet, "set", NAME) }?;
        // SAFETY: forwarded caller contract.
        let addr = GuestAddress::try_from(unsafe { ref_arg(addr, "addr", NAME) }?)?;
        set.lock().release_guest(&addr)?;
        Ok(0)
    })
}
