//! The host an assignment may read (optional): the NUMA node and the IOMMU group of each PCI
//! host device the domain names. What it is used for depends on the machine: on pc and q35
//! the devices mirror its NUMA nodes (virtpci's, see [`super::mirror`]); on pseries they get
//! libvirt's isolation groups from its IOMMU groups ([`super::isolation`]).

use super::isolation::isolation_groups;
use super::mirror::{mirror_host_numa, Mirroring};
use crate::error::Result;
use crate::host::Host;
use crate::pci::PciAddress;
use crate::topology::MachineKind;
use crate::xml::domain::DomainDef;
use crate::xml::Document;

/// Where the host's PCI devices sit, as the assignment reads it.
pub trait AssignHost {
    /// The NUMA node of host device `addr`: `None` when the host does not say (sysfs
    /// `numa_node` absent or -1); an error when the device is not on the host.
    fn numa_node_of(&self, addr: &PciAddress) -> Result<Option<i32>>;
    /// The IOMMU group of host device `addr`: `None` when it has none; an error when the
    /// device is not on the host.
    fn iommu_group_of(&self, addr: &PciAddress) -> Result<Option<u32>>;
}

impl AssignHost for Host {
    fn numa_node_of(&self, addr: &PciAddress) -> Result<Option<i32>> {
        self.require_device(addr)?;
        self.numa_node(addr)
    }

    fn iommu_group_of(&self, addr: &PciAddress) -> Result<Option<u32>> {
        self.iommu_group_num(addr)
    }
}

/// What reading the host decided before planning.
#[derive(Debug, Default)]
pub(crate) struct HostReading {
    /// pc/q35: one entry per PCI host device considered for NUMA mirroring.
    pub mirrored: Vec<Mirroring>,
    /// pseries: per device of the domain, its isolation group (empty: none isolated).
    pub isolation: Vec<u32>,
    /// For the user, in device order: devices not mirrored or not isolated, and why.
    pub warnings: Vec<String>,
}

/// Read `host` for the PCI host devices of `def` (from `doc`): isolation groups on pseries,
/// and with `mirror_numa` NUMA mirroring elsewhere (which sets the devices' NUMA
/// preferences). Without a host nothing is read.
pub(crate) fn read_host(
    doc: &Document<'_>,
    def: &mut DomainDef<'_>,
    host: Option<&dyn AssignHost>,
    mirror_numa: bool,
) -> Result<HostReading> {
    let Some(host) = host else {
        return Ok(HostReading::default());
    };
    if def.machine_kind == MachineKind::Pseries {
        let (isolation, warnings) = isolation_groups(doc, def, host)?;
        return Ok(HostReading {
            mirrored: Vec::new(),
            isolation,
            warnings,
        });
    }
    if !mirror_numa {
        return Ok(HostReading::default());
    }
    let mirrored = mirror_host_numa(doc, def, host)?;
    let warnings = mirrored.iter().filter_map(|m| m.warning.clone()).collect();
    Ok(HostReading {
        mirrored,
        isolation: Vec::new(),
        warnings,
    })
}
