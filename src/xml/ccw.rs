//! s390x addresses: channel subsystem (CCW) device numbers and the zPCI identifiers of a PCI
//! address (`<address type='ccw' cssid ssid devno/>`, `<zpci uid fid/>` inside a PCI
//! address), read as libvirt's parser reads them and written as libvirt prints them.

use super::dom::{Document, ElementId};
use crate::error::{quote, Error, Result};
use crate::pci::parse_xml_uint;
use std::fmt;

/// The highest channel subsystem id, subchannel set id and device number libvirt accepts.
pub const MAX_CSSID: u32 = 0xfe;
pub const MAX_SSID: u32 = 3;
pub const MAX_DEVNO: u32 = 0xffff;
/// The channel subsystem virtio-ccw devices are given (QEMU's virtual one).
pub const VIRTUAL_CSSID: u32 = 0xfe;
/// The highest zPCI user-defined identifier (uid 0 is not allowed).
pub const MAX_ZPCI_UID: u32 = 0xffff;

/// A CCW device address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CcwAddress {
    pub cssid: u32,
    pub ssid: u32,
    pub devno: u32,
}

impl fmt::Display for CcwAddress {
    /// libvirt's short form in messages, e.g. `fe.0.0001`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}.{:x}.{:04x}", self.cssid, self.ssid, self.devno)
    }
}

impl CcwAddress {
    /// The `<address type='ccw' .../>` element as libvirt prints it.
    pub fn element(&self) -> String {
        format!(
            "<address type='ccw' cssid='0x{:02x}' ssid='0x{:x}' devno='0x{:04x}'/>",
            self.cssid, self.ssid, self.devno
        )
    }
}

/// The zPCI identifiers of a PCI address, each possibly missing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Zpci {
    pub uid: Option<u32>,
    pub fid: Option<u32>,
}

impl Zpci {
    /// libvirt's "present": at least one identifier given.
    pub fn is_present(&self) -> bool {
        self.uid.is_some() || self.fid.is_some()
    }

    /// The `<zpci .../>` element as libvirt prints it (both identifiers set).
    pub fn element(uid: u32, fid: u32) -> String {
        format!("<zpci uid='0x{uid:04x}' fid='0x{fid:08x}'/>")
    }
}

/// What a device's `<address>` says that only s390x uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct S390Address {
    /// A `type='ccw'` address with its three numbers.
    pub ccw: Option<CcwAddress>,
    /// The `<zpci>` child of a `type='pci'` address.
    pub zpci: Zpci,
    /// That `<zpci>` element.
    pub zpci_element: Option<ElementId>,
}

/// What virtpci decided for one device of an s390x guest beyond its PCI address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct S390Assigned {
    /// The CCW address given to a device that had none (or an address without numbers).
    pub ccw: Option<CcwAddress>,
    /// The zPCI identifiers (uid, fid) of a device on PCI, when its input lacked one.
    pub zpci: Option<(u32, u32)>,
}

impl S390Address {
    /// What the device has once assignment's `assigned` is applied: the CCW numbers given
    /// to it, else those written; the zPCI identifiers completed, else those written.
    pub fn completed(&self, assigned: &S390Assigned) -> S390Address {
        S390Address {
            ccw: assigned.ccw.or(self.ccw),
            zpci: match assigned.zpci {
                Some((uid, fid)) => Zpci {
                    uid: Some(uid),
                    fid: Some(fid),
                },
                None => self.zpci,
            },
            zpci_element: self.zpci_element,
        }
    }
}

/// Read the s390x parts of the `<address>` element `id` (libvirt's
/// virCCWDeviceAddressParseXML and virZPCIDeviceAddressParseXML).
pub fn read_s390_address(doc: &Document<'_>, id: ElementId) -> Result<S390Address> {
    let mut out = S390Address::default();
    match doc.attr(id, "type") {
        Some("ccw") => {
            let number = |name: &str| -> Result<Option<u32>> {
                doc.attr(id, name)
                    .map(|text| parse_number(text, name, "address"))
                    .transpose()
            };
            let (cssid, ssid, devno) = (number("cssid")?, number("ssid")?, number("devno")?);
            let addr = CcwAddress {
                cssid: cssid.unwrap_or(0),
                ssid: ssid.unwrap_or(0),
                devno: devno.unwrap_or(0),
            };
            if addr.cssid > MAX_CSSID || addr.ssid > MAX_SSID || addr.devno > MAX_DEVNO {
                return Err(Error::internal(format!(
                    "Invalid specification for virtio ccw address: cssid='0x{:x}' \
                     ssid='0x{:x}' devno='0x{:04x}'",
                    addr.cssid, addr.ssid, addr.devno
                )));
            }
            match (cssid, ssid, devno) {
                (Some(_), Some(_), Some(_)) => out.ccw = Some(addr),
                (None, None, None) => {}
                _ => {
                    return Err(Error::internal(
                        "Invalid partial specification for virtio ccw address",
                    ))
                }
            }
        }
        Some("pci") => {
            if let Some(z) = doc.child(id, "zpci") {
                let number = |name: &str| -> Result<Option<u32>> {
                    doc.attr(z, name)
                        .map(|text| parse_number(text, name, "zpci"))
                        .transpose()
                };
                out.zpci = Zpci {
                    uid: number("uid")?,
                    fid: number("fid")?,
                };
                out.zpci_element = Some(z);
            }
        }
        _ => {}
    }
    Ok(out)
}

fn parse_number(text: &str, name: &str, element: &str) -> Result<u32> {
    parse_xml_uint(text).ok_or_else(|| {
        Error::xml(format!(
            "Invalid value for attribute '{name}' in element '{element}': '{}'. Expected \
             non-negative integer value",
            quote(text)
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(xml: &str) -> Result<S390Address> {
        let doc = Document::parse(xml).unwrap();
        read_s390_address(&doc, doc.root)
    }

    #[test]
    fn ccw_addresses_read_and_print_as_libvirt_does() {
        let a = read("<address type='ccw' cssid='0xfe' ssid='0' devno='0x0a'/>").unwrap();
        let ccw = a.ccw.unwrap();
        assert_eq!(ccw.to_string(), "fe.0.000a");
        assert_eq!(
            ccw.element(),
            "<address type='ccw' cssid='0xfe' ssid='0x0' devno='0x000a'/>"
        );
        assert_eq!(read("<address type='ccw'/>").unwrap().ccw, None);
    }

    #[test]
    fn ccw_errors_use_libvirt_words() {
        let msg = |xml: &str| read(xml).unwrap_err().to_string();
        assert_eq!(
            msg("<address type='ccw' cssid='0xfe' ssid='0'/>"),
            "internal error: Invalid partial specification for virtio ccw address"
        );
        assert_eq!(
            msg("<address type='ccw' cssid='0xff' ssid='0' devno='1'/>"),
            "internal error: Invalid specification for virtio ccw address: cssid='0xff' \
             ssid='0x0' devno='0x0001'"
        );
    }

    #[test]
    fn zpci_is_read_inside_a_pci_address() {
        let a = read("<address type='pci'><zpci uid='0x10'/></address>").unwrap();
        assert_eq!(
            a.zpci,
            Zpci {
                uid: Some(16),
                fid: None
            }
        );
        assert_eq!(Zpci::element(1, 0), "<zpci uid='0x0001' fid='0x00000000'/>");
    }
}
