//! What a domain definition says about where its memory lives: `<numatune>`'s `<memnode cellid
//! nodeset>` mapping of guest NUMA cells to host NUMA nodes.

use super::dom::Document;
use crate::error::{quote, Error, Result};

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
    fn reads_memnodes() {
        let xml = "<domain><numatune><memory nodeset='0-1'/>\
                   <memnode cellid='0' mode='strict' nodeset='1'/>\
                   <memnode cellid='1' nodeset='0,2'/></numatune></domain>";
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
    }
}
