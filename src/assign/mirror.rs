//! Host-NUMA mirroring (virtpci's, opt-in): each PCI host device whose guest address is
//! picked automatically goes behind an expander bus on the guest NUMA cell that maps to the
//! host NUMA node the device sits on, so the guest sees the same locality as the host.
//!
//! The host node is the device's sysfs `numa_node`; the guest cell is the `<numatune><memnode
//! cellid='C' nodeset='…'/>` whose node set holds it (the lowest such cell), or, when the
//! domain has no memnode, the cell with the host node's number. The chosen cell becomes the
//! device's NUMA preference, so the placement is the one `<addressPreferences numa='C'/>`
//! gives (an existing expander for the cell and its free ports first). A device with its own
//! `numa` preference keeps it; a device whose host node has no guest cell, or that has no
//! host node, is placed as usual and named in a warning.

use super::host::AssignHost;
use crate::error::{Error, Result};
use crate::pci::PciAddress;
use crate::topology::MachineKind;
use crate::xml::domain::{BusPreference, DeviceKind, DomainDef};
use crate::xml::host_numa::{memnodes, MemNode};
use crate::xml::identity::pci_hostdev_source;
use crate::xml::Document;

/// How the guest cell of a mirrored device was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CellMapping {
    /// A `<numatune><memnode>` maps the cell to the host node.
    Memnode,
    /// No memnode: the cell with the host node's number.
    SameNumber,
}

/// What mirroring decided for one PCI host device of the domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mirroring {
    /// The device's index in the domain's devices.
    pub device: usize,
    /// The host device (`<source><address>`).
    pub host: PciAddress,
    /// Its host NUMA node, `None` when the host does not say.
    pub host_node: Option<u32>,
    /// The guest cell it goes to and how that was found; `None`: placed without mirroring
    /// (see `warning`).
    pub(crate) guest_cell: Option<(u32, CellMapping)>,
    /// Why it was not mirrored, for the user.
    pub warning: Option<String>,
}

/// Give each PCI host device of `def` (read from `doc`) whose address is picked
/// automatically and that has no NUMA preference of its own the guest cell of its host NUMA
/// node as its preference. Returns one entry per such device.
pub fn mirror_host_numa(
    doc: &Document<'_>,
    def: &mut DomainDef<'_>,
    host: &dyn AssignHost,
) -> Result<Vec<Mirroring>> {
    let memnodes = memnodes(doc)?;
    let mut done = Vec::new();
    for i in 0..def.devices.len() {
        let device = &def.devices[i];
        let is_pci_hostdev = match &device.kind {
            DeviceKind::Hostdev(h) => h.is_subsystem() && h.htype == "pci",
            DeviceKind::Net { hostdev, .. } => hostdev.is_some(),
            _ => false,
        };
        let Some(element) = device.element else {
            continue;
        };
        if !is_pci_hostdev || !device.address.wants_pci() || device.prefs.numa.is_some() {
            continue;
        }
        if def.machine_kind == MachineKind::Other {
            return Err(Error::config_unsupported(
                "mirroring host NUMA nodes needs a pc or q35 machine (expander buses)",
            ));
        }
        let tag = doc.element(element).name;
        let line = doc.line_of(doc.element(element).start);
        let source = pci_hostdev_source(doc, element)?;
        let host_node = host
            .numa_node_of(&source)?
            .and_then(|n| u32::try_from(n).ok());
        let label = format!("<{tag}> at line {line} (host device {source})");
        let (guest_cell, warning) = match host_node {
            None => (
                None,
                Some(format!(
                    "{label} has no host NUMA node (numa_node -1): placed without NUMA mirroring"
                )),
            ),
            Some(node) => match guest_cell_of(node, &memnodes, def.numa_cells) {
                Some(cell) => (Some(cell), None),
                None => (None, Some(no_cell_warning(&label, node, &memnodes, def))),
            },
        };
        let device = &mut def.devices[i];
        if let Some((cell, _)) = guest_cell {
            if def.machine_kind == MachineKind::Q35 && device.prefs.bus == Some(BusPreference::Pci)
            {
                return Err(Error::config_unsupported(format!(
                    "{label}: addressPreferences bus='pci' cannot be mirrored to NUMA node {cell} on q35 (the devices behind a pcie-expander-bus are PCI Express)"
                )));
            }
            device.prefs.numa = Some(cell);
        }
        done.push(Mirroring {
            device: i,
            host: source,
            host_node,
            guest_cell,
            warning,
        });
    }
    Ok(done)
}

/// The guest cell for host node `node`: the lowest memnode cell whose node set holds it, or
/// without memnodes the cell of the same number; only cells the guest has.
fn guest_cell_of(node: u32, memnodes: &[MemNode], cells: usize) -> Option<(u32, CellMapping)> {
    if memnodes.is_empty() {
        return ((node as usize) < cells).then_some((node, CellMapping::SameNumber));
    }
    memnodes
        .iter()
        .filter(|m| (m.cell as usize) < cells && m.host_nodes.contains(&node))
        .map(|m| m.cell)
        .min()
        .map(|cell| (cell, CellMapping::Memnode))
}

fn no_cell_warning(label: &str, node: u32, memnodes: &[MemNode], def: &DomainDef) -> String {
    let why = if def.numa_cells == 0 {
        "the guest has no NUMA cells (<cpu><numa>)".to_string()
    } else if memnodes.is_empty() {
        format!(
            "the guest has no cell {node} (its <cpu><numa> has {} cell(s))",
            def.numa_cells
        )
    } else {
        "no <numatune><memnode> of the guest's cells includes it".to_string()
    };
    format!("{label} is on host NUMA node {node}, but {why}: placed without NUMA mirroring")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_from_memnodes_or_numbers() {
        let memnodes = vec![
            MemNode {
                cell: 1,
                host_nodes: vec![0, 2],
            },
            MemNode {
                cell: 0,
                host_nodes: vec![2, 3],
            },
        ];
        assert_eq!(
            guest_cell_of(2, &memnodes, 2),
            Some((0, CellMapping::Memnode))
        );
        assert_eq!(
            guest_cell_of(0, &memnodes, 2),
            Some((1, CellMapping::Memnode))
        );
        assert_eq!(guest_cell_of(1, &memnodes, 2), None);
        assert_eq!(guest_cell_of(0, &memnodes, 1), None);
        assert_eq!(guest_cell_of(1, &[], 2), Some((1, CellMapping::SameNumber)));
        assert_eq!(guest_cell_of(2, &[], 2), None);
    }
}
