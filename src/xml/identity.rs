//! What names a device to a person, or pairs it across two definitions of one guest: its
//! alias, MAC address, disk or filesystem target, host source and model type. Read from the
//! device's element when asked (labels, explanations, the ABI check); placing addresses needs
//! none of it, so reading a domain for placement does not pay for it.

use super::dom::{Document, ElementId};
use crate::error::{quote, Error, Result};
use crate::pci::{parse_xml_uint, PciAddress};
use std::fmt;

/// The host side of a host device (`<hostdev>`, `<interface type='hostdev'>`): the
/// `<source><address>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HostSource<'d> {
    /// A host PCI function: `bus` and `slot` given, `domain` and `function` 0 when absent.
    Pci(PciAddress),
    /// A mediated device, by its `uuid` as written.
    Mdev(&'d str),
}

impl HostSource<'_> {
    /// The `<source><address>` of the device element `id`, when it has one that names a host
    /// device (a PCI address without `bus` or `slot` names none).
    pub(crate) fn of<'d>(doc: &'d Document<'_>, id: ElementId) -> Option<HostSource<'d>> {
        let address = source_address(doc, id)?;
        if let Some(uuid) = doc.attr(address, "uuid") {
            return Some(HostSource::Mdev(uuid));
        }
        pci_hostdev_source(doc, id).ok().map(HostSource::Pci)
    }
}

/// The `<source><address>` element of the device element `id`.
fn source_address(doc: &Document<'_>, id: ElementId) -> Option<ElementId> {
    doc.child(id, "source")
        .and_then(|s| doc.child(s, "address"))
}

/// The host address in `<source><address>` of the PCI host device element `id` (a
/// `<hostdev type='pci'>` or an `<interface type='hostdev'>`), with libvirt's words when it is
/// missing or malformed.
pub(crate) fn pci_hostdev_source(doc: &Document<'_>, id: ElementId) -> Result<PciAddress> {
    let line = doc.line_of(doc.element(id).start);
    let source = source_address(doc, id).ok_or_else(|| {
        Error::xml(format!(
            "Missing <source><address> in PCI host device (line {line})"
        ))
    })?;
    let a = doc.element(source);
    let part = |attr: &str, required: bool| -> Result<u32> {
        match a.attr(attr) {
            None if !required => Ok(0),
            None => Err(Error::xml(format!(
                "Missing '{attr}' in the source address of a PCI host device (line {line})"
            ))),
            Some(v) => parse_xml_uint(v)
                .ok_or_else(|| Error::xml(format!("Cannot parse <address> '{attr}' attribute"))),
        }
    };
    let address = PciAddress::new(
        part("domain", false)?,
        part("bus", true)?,
        part("slot", true)?,
        part("function", false)?,
    );
    address.check_ranges().map_err(|e| Error::xml(e.message))?;
    Ok(address)
}

impl fmt::Display for HostSource<'_> {
    /// `host 0000:03:00.1`, `mdev 8e3a…` (the UUID in lower case).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostSource::Pci(addr) => write!(f, "host {addr}"),
            HostSource::Mdev(uuid) => write!(f, "mdev {}", uuid.to_ascii_lowercase()),
        }
    }
}

/// The identity of one device element, each part as written (entities decoded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Identity<'d> {
    /// The element name (`interface`, `disk`, ...).
    pub(crate) tag: &'d str,
    /// `<alias name>`.
    pub(crate) alias: Option<&'d str>,
    /// `<mac address>`.
    pub(crate) mac: Option<&'d str>,
    /// A disk's `<target dev>`.
    pub(crate) target_dev: Option<&'d str>,
    /// A filesystem's `<target dir>`.
    pub(crate) target_dir: Option<&'d str>,
    pub(crate) host_source: Option<HostSource<'d>>,
    /// `<model type>`.
    pub(crate) model_type: Option<&'d str>,
}

impl<'d> Identity<'d> {
    /// The identity of the device element `id` of `doc`.
    pub(crate) fn of(doc: &'d Document<'_>, id: ElementId) -> Identity<'d> {
        let tag = doc.name(id);
        let target = |name| {
            doc.child_attr(id, "target", name)
                .filter(|_| tag == if name == "dev" { "disk" } else { "filesystem" })
        };
        Identity {
            tag,
            alias: doc.child_attr(id, "alias", "name"),
            mac: doc.child_attr(id, "mac", "address"),
            target_dev: target("dev"),
            target_dir: target("dir"),
            host_source: HostSource::of(doc, id),
            model_type: doc.child_attr(id, "model", "type"),
        }
    }

    /// What tells this device from others of its kind, for the kinds that have such a key: an
    /// interface's MAC, a disk's target, a filesystem's target directory, a host device's
    /// source.
    pub(crate) fn key(&self) -> Option<String> {
        match self.tag {
            "interface" => self.mac.map(|m| format!("mac {m}")),
            "disk" => self.target_dev.map(str::to_string),
            "filesystem" => self.target_dir.map(str::to_string),
            "hostdev" => self.host_source.map(|s| s.to_string()),
            _ => None,
        }
    }

    /// The device in a message: its tag and `detail` in brackets, each quoted short (both come
    /// from the input).
    pub(crate) fn label(&self, detail: Option<&str>) -> String {
        match detail {
            Some(d) => format!("{} ({})", quote(self.tag), quote(d)),
            None => quote(self.tag).to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_part_where_the_device_has_it() {
        let text = "<devices>\
            <interface type='hostdev'><mac address='52:54:00:AA:00:01'/><alias name='ua-n'/>\
            <source><address type='pci' domain='0' bus='0x3b' slot='2' function='4'/></source>\
            <model type='virtio'/></interface>\
            <disk><target dev='vda' bus='virtio'/></disk>\
            <filesystem><target dir='/m'/></filesystem>\
            <hostdev><source><address uuid='C2177883-F1BB-47F0-914D-32A22E3A8804'/></source></hostdev>\
            <hostdev><source><address domain='0' slot='1'/></source></hostdev>\
            </devices>";
        let doc = Document::parse(text).unwrap();
        let ids = doc.children(doc.root).to_vec();
        let nic = Identity::of(&doc, ids[0]);
        assert_eq!(nic.mac, Some("52:54:00:AA:00:01"));
        assert_eq!(nic.alias, Some("ua-n"));
        assert_eq!(nic.model_type, Some("virtio"));
        assert_eq!(nic.host_source.unwrap().to_string(), "host 0000:3b:02.4");
        let disk = Identity::of(&doc, ids[1]);
        assert_eq!((disk.target_dev, disk.target_dir), (Some("vda"), None));
        let fs = Identity::of(&doc, ids[2]);
        assert_eq!((fs.target_dev, fs.target_dir), (None, Some("/m")));
        let mdev = Identity::of(&doc, ids[3]).host_source.unwrap();
        assert_eq!(
            mdev.to_string(),
            "mdev c2177883-f1bb-47f0-914d-32a22e3a8804"
        );
        assert_eq!(Identity::of(&doc, ids[4]).host_source, None);
        assert_eq!(
            pci_hostdev_source(&doc, ids[0]).unwrap(),
            PciAddress::new(0, 0x3b, 2, 4)
        );
        let keys: Vec<_> = ids.iter().map(|&id| Identity::of(&doc, id).key()).collect();
        assert_eq!(
            keys,
            [
                Some("mac 52:54:00:AA:00:01".to_string()),
                Some("vda".into()),
                Some("/m".into()),
                Some("mdev c2177883-f1bb-47f0-914d-32a22e3a8804".into()),
                None,
            ]
        );
        assert_eq!(nic.label(Some("x")), "interface (x)");
        assert_eq!(disk.label(None), "disk");
        let e = pci_hostdev_source(&doc, ids[4]).unwrap_err();
        assert_eq!(
            e.message,
            "XML error: Missing 'bus' in the source address of a PCI host device (line 1)"
        );
    }
}
