//! Whole-group help: a domain definition completed with the members of its hostdevs' IOMMU
//! groups that it does not declare, each added as a managed `<hostdev>` hidden from the guest
//! (`<address type='unassigned'/>`), PCI bridges and ports excepted. The CLI's `check --fix`
//! and the C API's `virtpci_domain_add_missing_group_members` both give this.

use super::book::OwnershipBook;
use super::critical::StaticUsage;
use super::plan::{self, CheckReport};
use super::{Owner, PrepareOptions};
use crate::error::Result;
use crate::host::Host;
use crate::pci::PciAddress;
use crate::xml::hostdevs::{add_unassigned_hostdevs, hostdevs_from_domain_xml};

/// The members of the report's IOMMU groups that the domain does not declare, bridges and
/// ports excepted, in group order.
pub fn missing_group_members(report: &CheckReport) -> Vec<PciAddress> {
    report
        .groups
        .iter()
        .flat_map(|g| &g.members)
        .filter(|m| !m.declared && !m.bridge)
        .map(|m| m.address)
        .collect()
}

/// `xml` with every undeclared member of its PCI hostdevs' IOMMU groups on `host` added at the
/// end of `<devices>`, everything else byte for byte. Group membership is all that is read:
/// who uses the devices, and whether the host needs them, does not change what is missing.
pub fn add_missing_group_members(host: &Host, xml: &str) -> Result<String> {
    let dom = hostdevs_from_domain_xml(xml)?;
    let name = dom.required_name()?;
    let report = plan::check(
        host,
        &OwnershipBook::default(),
        &StaticUsage::default(),
        &Owner::new("virtpci", name),
        &dom.hostdevs,
        PrepareOptions::default(),
    )?;
    add_unassigned_hostdevs(xml, &missing_group_members(&report))
}
