//! The PCI host devices of a domain definition, read into the specs the hostdev manager takes
//! ([`HostdevSpec`], defined here with the rest of the domain model, so the manager depends on
//! the reader and not the other way round, as libvirt's virhostdev takes conf's
//! virDomainHostdevDef): every `<hostdev mode='subsystem' type='pci'>` and `<interface type='hostdev'>`, with
//! `managed`, `<driver name>`, the host address in `<source><address>`, and whether the guest
//! address is `<address type='unassigned'/>`; plus the domain's `<name>` and `<uuid>`. And the
//! one edit the hostdev side makes: adding hostdevs hidden from the guest.

use super::domain::{read_device, DeviceKind};
use super::edit::Editor;
use super::identity::pci_hostdev_source;
use super::{DeviceAddress, Document, ElementId};
use crate::error::{Error, Result};
use crate::host::MacAddr;
use crate::pci::PciAddress;

/// One PCI host device of a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostdevSpec {
    /// The host address.
    pub source: PciAddress,
    /// `managed='yes'`: virtpci detaches it and gives it back.
    pub managed: bool,
    /// `<address type='unassigned'/>`: prepared and booked like any other, never shown to the
    /// guest (how a domain declares the other members of a group under the whole-group rule).
    pub unassigned: bool,
    /// The stub: `None`, "vfio" or "vfio-pci" for vfio-pci, or a vfio variant driver's name.
    pub driver: Option<String>,
    /// `<driver model='NAME'/>`: the VFIO driver to use, instead of the one chosen from
    /// modules.alias. Refused unless it is a VFIO driver.
    pub model: Option<String>,
    /// `<driver iommufd='yes'/>` or the domain's `<iommufd enabled='yes'/>`: the device is
    /// opened through iommufd and its VFIO device cdev, which prepare finds and checks.
    pub iommufd: bool,
    /// Set for `<interface type='hostdev'>`: the device must be an SR-IOV VF, and its MAC and
    /// VLAN are set through its PF.
    pub net: Option<NetConfig>,
}

impl HostdevSpec {
    pub fn managed(source: PciAddress) -> HostdevSpec {
        HostdevSpec {
            source,
            managed: true,
            unassigned: false,
            driver: None,
            model: None,
            iommufd: false,
            net: None,
        }
    }

    pub fn unmanaged(source: PciAddress) -> HostdevSpec {
        HostdevSpec {
            managed: false,
            ..HostdevSpec::managed(source)
        }
    }
}

/// The largest 802.1Q VLAN id.
pub(crate) const VLAN_MAX: u16 = 4095;

/// What an `<interface type='hostdev'>` asks of its VF.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetConfig {
    /// `<mac address>`: set as the VF's MAC through its PF.
    pub mac: Option<MacAddr>,
    /// `<vlan><tag id>`: set as the VF's VLAN through its PF; `None` leaves the VLAN the PF
    /// holds (libvirt's setVlan false).
    pub vlan: Option<u16>,
}

/// libvirt's refusal of a VLAN an SR-IOV VF cannot carry (more than one tag, or a trunk).
pub(crate) fn vlan_trunk_error() -> Error {
    Error::config_unsupported("vlan trunking is not supported by SR-IOV network devices")
}

/// What a domain definition says about its PCI host devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainHostdevs {
    pub name: Option<String>,
    pub uuid: Option<[u8; 16]>,
    pub hostdevs: Vec<HostdevSpec>,
}

impl DomainHostdevs {
    /// The domain's `<name>`, which every hostdev manager call needs, or libvirt's refusal.
    pub fn required_name(&self) -> Result<&str> {
        self.name
            .as_deref()
            .ok_or_else(|| Error::xml("missing domain name information"))
    }
}

/// Parse `8e3f…` with or without dashes (libvirt's virUUIDParse accepts both).
pub fn parse_uuid(text: &str) -> Result<[u8; 16]> {
    let digits: Vec<u8> = text
        .trim()
        .bytes()
        .filter(|b| *b != b'-' && *b != b' ')
        .collect();
    let bad = || Error::xml(format!("malformed uuid element '{}'", text.escape_debug()));
    if digits.len() != 32 {
        return Err(bad());
    }
    let mut out = [0u8; 16];
    for (i, pair) in digits.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).map_err(|_| bad())?;
        out[i] = u8::from_str_radix(s, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// Format a UUID as libvirt does (8-4-4-4-12, lower case).
pub fn format_uuid(u: &[u8; 16]) -> String {
    let h: Vec<String> = u.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        h[..4].concat(),
        h[4..6].concat(),
        h[6..8].concat(),
        h[8..10].concat(),
        h[10..].concat()
    )
}

/// A `yes`/`no` attribute, refused otherwise with libvirt's wording.
fn yes_no(value: &str, attr: &str, line: usize) -> Result<bool> {
    match value {
        "yes" => Ok(true),
        "no" => Ok(false),
        v => Err(Error::xml(format!(
            "Invalid value for attribute '{attr}' (line {line}): '{}'",
            v.escape_debug()
        ))),
    }
}

fn xml_yes(v: Option<&str>) -> bool {
    matches!(v, Some("yes") | Some("on"))
}

/// The `<mac>` and `<vlan>` of an `<interface type='hostdev'>`, refused as libvirt refuses
/// them (a MAC that does not parse or is multicast; a tag id over 4095; a trunk or several
/// tags, which an SR-IOV VF cannot carry; a single tag's `nativeMode` is ignored, as libvirt
/// does for a VF).
fn net_config(doc: &Document, id: ElementId) -> Result<NetConfig> {
    let mac = doc
        .child(id, "mac")
        .and_then(|m| doc.attr(m, "address"))
        .map(MacAddr::parse)
        .transpose()?;
    let Some(vlan) = doc.child(id, "vlan") else {
        return Ok(NetConfig { mac, vlan: None });
    };
    let tags: Vec<_> = doc
        .element(vlan)
        .children
        .iter()
        .copied()
        .filter(|&c| doc.element(c).name == "tag")
        .collect();
    let mut ids = Vec::with_capacity(tags.len());
    for &t in &tags {
        let tag = doc
            .attr(t, "id")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| Error::xml("missing or invalid vlan tag id attribute"))?;
        if tag > u64::from(VLAN_MAX) {
            return Err(Error::xml(format!(
                "vlan tag id {tag} too large (maximum {VLAN_MAX})"
            )));
        }
        ids.push(tag as u16);
    }
    let trunk = doc
        .attr(vlan, "trunk")
        .is_some_and(|t| t.eq_ignore_ascii_case("yes"));
    match ids.as_slice() {
        [] => Err(Error::xml(
            "missing tag id - each <vlan> must have at least one <tag id='n'/> subelement",
        )),
        [tag] if !trunk => Ok(NetConfig {
            mac,
            vlan: Some(*tag),
        }),
        _ => Err(vlan_trunk_error()),
    }
}

/// Read the PCI host devices of `xml`.
pub fn hostdevs_from_domain_xml(xml: &str) -> Result<DomainHostdevs> {
    let doc = Document::parse(xml)?;
    let root = doc.element(doc.root);
    if root.name != "domain" {
        return Err(Error::xml(format!(
            "expecting root element of 'domain', not '{}'",
            root.name
        )));
    }
    let text_of = |name: &str| {
        doc.child(doc.root, name)
            .map(|id| doc.element(id).text.trim().to_string())
            .filter(|t| !t.is_empty())
    };
    let name = text_of("name");
    let uuid = text_of("uuid").map(|t| parse_uuid(&t)).transpose()?;
    // The domain-wide `<iommufd enabled='yes'/>` (libvirt 12.2): every PCI hostdev uses
    // iommufd unless its own `<driver iommufd='no'/>` says otherwise.
    let domain_iommufd = match doc
        .child(doc.root, "iommufd")
        .and_then(|i| doc.attr(i, "enabled"))
    {
        None => false,
        Some(v) => yes_no(v, "enabled", doc.line_of(doc.element(doc.root).start))?,
    };
    let mut hostdevs: Vec<HostdevSpec> = Vec::new();
    let Some(devices) = doc.child(doc.root, "devices") else {
        return Ok(DomainHostdevs {
            name,
            uuid,
            hostdevs,
        });
    };
    for &id in &doc.element(devices).children {
        let dev = read_device(&doc, id)?;
        let is_pci_hostdev = match &dev.kind {
            DeviceKind::Hostdev(h) => h.is_subsystem() && h.htype == "pci",
            DeviceKind::Net { hostdev, .. } => hostdev.is_some(),
            _ => false,
        };
        if !is_pci_hostdev {
            continue;
        }
        let el = doc.element(id);
        let line = doc.line_of(el.start);
        let address = pci_hostdev_source(&doc, id)?;
        let driver_el = doc.child(id, "driver");
        let driver = driver_el
            .and_then(|d| doc.attr(d, "name"))
            .map(str::to_string);
        let model = driver_el
            .and_then(|d| doc.attr(d, "model"))
            .map(str::to_string);
        let iommufd = match driver_el.and_then(|d| doc.attr(d, "iommufd")) {
            None => domain_iommufd,
            Some(v) => yes_no(v, "iommufd", line)?,
        };
        let net = match dev.kind {
            DeviceKind::Net { .. } => Some(net_config(&doc, id)?),
            _ => None,
        };
        let spec = HostdevSpec {
            source: address,
            managed: xml_yes(el.attr("managed")),
            unassigned: dev.address == DeviceAddress::Unassigned,
            driver,
            model,
            iommufd,
            net,
        };
        if hostdevs.iter().any(|h| h.source == spec.source) {
            return Err(Error::xml(format!(
                "Hostdev already exists in the domain configuration (PCI device {address})"
            )));
        }
        hostdevs.push(spec);
    }
    Ok(DomainHostdevs {
        name,
        uuid,
        hostdevs,
    })
}

/// `xml` with a managed `<hostdev>` hidden from the guest (`<address type='unassigned'/>`)
/// added at the end of `<devices>` for each of `missing`, everything else kept byte for byte
/// (whole-group help: the members of a hostdev's IOMMU group the domain does not declare).
pub fn add_unassigned_hostdevs(xml: &str, missing: &[PciAddress]) -> Result<String> {
    if missing.is_empty() {
        return Ok(xml.to_string());
    }
    let doc = Document::parse(xml)?;
    let devices = doc
        .child(doc.root, "devices")
        .filter(|&id| !doc.element(id).self_closing)
        .ok_or_else(|| {
            Error::xml("cannot add the missing group members: the domain has no <devices> element with content")
        })?;
    // The editor indents new children as the document's own and keeps the rest byte for byte.
    let mut editor = Editor::new(&doc);
    for a in missing {
        editor.append_child(
            devices,
            format!(
                "<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x{:04x}' bus='0x{:02x}' slot='0x{:02x}' function='0x{:x}'/></source><address type='unassigned'/></hostdev>",
                a.domain, a.bus, a.slot, a.function
            ),
        );
    }
    Ok(editor.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_hostdevs() {
        let xml = "<domain type='kvm'><name>vm1</name>\
            <uuid>c7a5fdbd-edaf-9455-926a-d65c16db1809</uuid><devices>\
            <hostdev mode='subsystem' type='pci' managed='yes'><source>\
            <address domain='0x0000' bus='0x02' slot='0x00' function='0x1'/></source></hostdev>\
            <hostdev mode='subsystem' type='pci'><driver name='vfio'/><source>\
            <address bus='2' slot='0' function='0'/></source><address type='unassigned'/></hostdev>\
            <interface type='hostdev' managed='yes'><source>\
            <address type='pci' domain='0' bus='0x3b' slot='0x02' function='0x4'/></source></interface>\
            <hostdev mode='subsystem' type='usb'><source><vendor id='0x1'/></source></hostdev>\
            </devices></domain>";
        let d = hostdevs_from_domain_xml(xml).unwrap();
        assert_eq!(d.name.as_deref(), Some("vm1"));
        assert_eq!(
            format_uuid(&d.uuid.unwrap()),
            "c7a5fdbd-edaf-9455-926a-d65c16db1809"
        );
        assert_eq!(d.hostdevs.len(), 3);
        assert!(d.hostdevs[0].managed && !d.hostdevs[0].unassigned);
        assert_eq!(d.hostdevs[1].source, PciAddress::new(0, 2, 0, 0));
        assert!(!d.hostdevs[1].managed && d.hostdevs[1].unassigned);
        assert_eq!(d.hostdevs[1].driver.as_deref(), Some("vfio"));
        assert_eq!(d.hostdevs[2].source, PciAddress::new(0, 0x3b, 2, 4));
        let dup = xml.replace(
            "bus='2' slot='0' function='0'",
            "bus='2' slot='0' function='1'",
        );
        let e = hostdevs_from_domain_xml(&dup).unwrap_err();
        assert!(e.message.starts_with("XML error: Hostdev already exists"));
    }

    #[test]
    fn adds_unassigned_hostdevs_keeping_the_rest() {
        let xml = "<domain>\n  <name>a</name><!-- c -->\n  <devices>\n    <disk/>\n  </devices>\n</domain>\n";
        let out = add_unassigned_hostdevs(xml, &[PciAddress::new(0, 1, 0, 2)]).unwrap();
        assert_eq!(
            out,
            "<domain>\n  <name>a</name><!-- c -->\n  <devices>\n    <disk/>\n    <hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x01' slot='0x00' function='0x2'/></source><address type='unassigned'/></hostdev>\n  </devices>\n</domain>\n"
        );
        let d = hostdevs_from_domain_xml(&out).unwrap();
        assert!(d.hostdevs[0].managed && d.hostdevs[0].unassigned);
        let inline = "<domain><devices><disk/></devices></domain>";
        let out = add_unassigned_hostdevs(inline, &[PciAddress::new(0, 1, 0, 2)]).unwrap();
        assert!(out.starts_with("<domain><devices><disk/><hostdev "));
        assert!(out.ends_with("</hostdev></devices></domain>"));
        assert!(add_unassigned_hostdevs("<domain/>", &[PciAddress::new(0, 1, 0, 2)]).is_err());
    }
}
