//! What a domain definition says about where its host devices and memory live: a PCI host
//! device's `<source><address>`, and `<numatune>`'s `<memnode cellid nodeset>` mapping of
//! guest NUMA cells to host NUMA nodes.

use super::dom::{Document, ElementId};
use crate::error::{quote, Error, Result};
use crate::pci::{parse_xml_uint, PciAddress};

/// The host address in `<source><address>` of the PCI host device element `id` (a
/// `<hostdev type='pci'>` or an `<interface type='hostdev'>`), with libvirt's words when it is
/// missing or malformed.
pub fn pci_hostdev_source(doc: &Document<'_>, id: ElementId) -> Result<PciAddress> {
    let line = doc.line_of(doc.element(id).start);
    let source = doc
        .child(id, "source")
        .and_then(|s| doc.child(s, "address"))
        .ok_or_else(|| {
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

/// One `<numatune><memnode cellid='C' nodeset='…'/>`: guest cell C's memory comes from these
/// host NUMA nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemNode {
    pub cell: u32,
    pub host_nodes: Vec<u32>,
}

/// Every `<numatune><memnode>` of the domain, in document order (empty without them).
pub fn memnodes(doc: &Document<'_>) -> Result<Vec<MemNode>> {
    let Some(numatune) = doc.child(doc.root, "numatune") else {
        return Ok(Vec::new());
    };
    doc.children_named(numatune, "memnode")
        .map(|id| {
            let cellid = doc
                .attr(id, "cellid")
                .ok_or_else(|| Error::xml("Invalid attribute cellid in memnode element"))?;
            let cell = cellid
                .trim()
                .parse::<u32>()
                .map_err(|_| Error::xml("Invalid attribute cellid in memnode element"))?;
            let nodeset = doc.attr(id, "nodeset").ok_or_else(|| {
                Error::xml(format!(
                    "Missing required nodeset attribute in memnode element of cell {cell}"
                ))
            })?;
            Ok(MemNode {
                cell,
                host_nodes: parse_nodeset(nodeset)?,
            })
        })
        .collect()
}

/// Highest node number a nodeset may name (libvirt's bitmaps for NUMA nodes are this wide).
const MAX_NODE: u32 = 1023;

/// A libvirt node set, `0-3,^2,5`: numbers and ranges, `^N` taking a node out; sorted.
pub fn parse_nodeset(text: &str) -> Result<Vec<u32>> {
    let bad = || Error::xml(format!("Failed to parse bitmap '{}'", quote(text)));
    let number = |t: &str| {
        t.trim()
            .parse::<u32>()
            .ok()
            .filter(|&n| n <= MAX_NODE)
            .ok_or_else(bad)
    };
    let mut nodes = std::collections::BTreeSet::new();
    let mut removed = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        if let Some(n) = part.strip_prefix('^') {
            removed.push(number(n)?);
        } else if let Some((from, to)) = part.split_once('-') {
            let (from, to) = (number(from)?, number(to)?);
            if from > to {
                return Err(bad());
            }
            nodes.extend(from..=to);
        } else {
            nodes.insert(number(part)?);
        }
    }
    for n in removed {
        nodes.remove(&n);
    }
    if nodes.is_empty() {
        return Err(bad());
    }
    Ok(nodes.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodesets() {
        assert_eq!(parse_nodeset("0-3,^2,5").unwrap(), vec![0, 1, 3, 5]);
        assert_eq!(parse_nodeset("1").unwrap(), vec![1]);
        for bad in ["", "a", "3-1", "^1", "1,,2", "2000"] {
            assert!(parse_nodeset(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reads_memnodes_and_sources() {
        let xml = "<domain><numatune><memory nodeset='0-1'/>\
                   <memnode cellid='0' mode='strict' nodeset='1'/>\
                   <memnode cellid='1' nodeset='0,2'/></numatune>\
                   <devices><hostdev mode='subsystem' type='pci'><source>\
                   <address domain='0' bus='0xd8' slot='0' function='1'/></source></hostdev>\
                   </devices></domain>";
        let doc = Document::parse(xml).unwrap();
        let m = memnodes(&doc).unwrap();
        assert_eq!(
            m,
            vec![
                MemNode {
                    cell: 0,
                    host_nodes: vec![1]
                },
                MemNode {
                    cell: 1,
                    host_nodes: vec![0, 2]
                }
            ]
        );
        let devices = doc.child(doc.root, "devices").unwrap();
        let hostdev = doc.children(devices)[0];
        assert_eq!(
            pci_hostdev_source(&doc, hostdev).unwrap(),
            PciAddress::new(0, 0xd8, 0, 1)
        );
    }
}
