//! pseries isolation groups (libvirt's qemuDomainSetupIsolationGroups): host devices of
//! different host IOMMU groups go on different PCI host bridges, and none on the default one.
//!
//! A PCI host device's isolation group is its host IOMMU group plus one; every other device
//! is in group 0. A PHB takes the group of the first device reserved on it, except the
//! default PHB (index 0), which stays in group 0; a configured address of another group puts
//! the PHB back in group 0. A device looks for room first on the PHBs of its group, then on
//! an empty PHB that may change group, and the dry run adds a PHB when neither has room (see
//! [`super::set::AddressSet::find_free`]). A host device whose IOMMU group cannot be read
//! (not on the host, no group) stays in group 0 with a warning, as libvirt does.
//!
//! Not reproduced: `<interface type='network'>` on a network of host devices, which libvirt
//! gives a group of its own; virtpci does not see the host's network definitions, so such an
//! interface is placed as an emulated one.

use super::host::AssignHost;
use crate::error::Result;
use crate::xml::domain::{DeviceKind, DomainDef};
use crate::xml::identity::pci_hostdev_source;
use crate::xml::Document;

/// Per device of `def` (read from `doc`), its isolation group on `host`, and a warning for
/// each PCI host device whose IOMMU group `host` does not give.
pub(crate) fn isolation_groups(
    doc: &Document<'_>,
    def: &DomainDef<'_>,
    host: &dyn AssignHost,
) -> Result<(Vec<u32>, Vec<String>)> {
    let mut groups = vec![0; def.devices.len()];
    let mut warnings = Vec::new();
    for (i, device) in def.devices.iter().enumerate() {
        let hostdev = match &device.kind {
            DeviceKind::Hostdev(h) => h,
            DeviceKind::Net {
                hostdev: Some(h), ..
            } => h,
            _ => continue,
        };
        let Some(element) = device.element else {
            continue;
        };
        if !hostdev.is_subsystem() || hostdev.htype != "pci" {
            continue;
        }
        let source = pci_hostdev_source(doc, element)?;
        match host.iommu_group_of(&source) {
            Ok(Some(group)) => groups[i] = group.saturating_add(1),
            Ok(None) | Err(_) => warnings.push(format!(
                "Can't look up isolation group for host device {source}, device won't be \
                 isolated"
            )),
        }
    }
    Ok((groups, warnings))
}
