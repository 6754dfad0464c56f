//! What the operator's tools report about a host, as data: every IOMMU group with its
//! devices (with vendor and device names from the PCI ID database), and everything sysfs says
//! about one device. The CLI (`groups`, `host show`) and the C API print the same reports.

use super::{class_name, DeviceSummary, Host};
use crate::error::Result;
use crate::pci::PciAddress;
use serde::Serialize;

/// The vendor's and the device's names in the PCI ID database bundled with the `pci-ids`
/// crate (the pci.ids file lspci reads), when it knows them.
pub(crate) fn pci_names(vendor: u16, device: u16) -> (Option<&'static str>, Option<&'static str>) {
    match pci_ids::Device::from_vid_pid(vendor, device) {
        Some(d) => (Some(d.vendor().name()), Some(d.name())),
        None => (
            pci_ids::Vendors::iter()
                .find(|v| v.id() == vendor)
                .map(|v| v.name()),
            None,
        ),
    }
}

/// One device of a group report.
#[derive(Debug, Clone, Serialize)]
pub struct GroupDevice {
    pub address: String,
    pub vendor: String,
    pub device: String,
    pub class: String,
    pub driver: Option<String>,
    pub class_name: &'static str,
    pub vendor_name: Option<&'static str>,
    pub device_name: Option<&'static str>,
}

impl From<&DeviceSummary> for GroupDevice {
    fn from(d: &DeviceSummary) -> GroupDevice {
        let (vendor_name, device_name) = pci_names(d.ids.vendor, d.ids.device);
        GroupDevice {
            address: d.address.to_string(),
            vendor: format!("0x{:04x}", d.ids.vendor),
            device: format!("0x{:04x}", d.ids.device),
            class: format!("0x{:06x}", d.ids.class),
            driver: d.driver.clone(),
            class_name: class_name(d.ids.class),
            vendor_name,
            device_name,
        }
    }
}

/// One IOMMU group and its devices, in address order.
#[derive(Debug, Clone, Serialize)]
pub struct GroupReport {
    pub group: u32,
    pub devices: Vec<GroupDevice>,
}

/// Every IOMMU group of a host, in number order, and the devices that have none.
#[derive(Debug, Clone, Serialize)]
pub struct GroupsReport {
    pub groups: Vec<GroupReport>,
    pub no_iommu_group: Vec<GroupDevice>,
}

impl GroupsReport {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a groups report serializes")
    }
}

/// Read every IOMMU group of `host`.
pub fn groups_report(host: &Host) -> Result<GroupsReport> {
    let all = host.iommu_groups()?;
    let mut groups = Vec::with_capacity(all.groups.len());
    for g in &all.groups {
        let devices = g
            .devices
            .iter()
            .map(|a| host.summary(a).map(|s| GroupDevice::from(&s)))
            .collect::<Result<Vec<_>>>()?;
        groups.push(GroupReport {
            group: g.number,
            devices,
        });
    }
    let no_iommu_group = all
        .no_group
        .iter()
        .map(|a| host.summary(a).map(|s| GroupDevice::from(&s)))
        .collect::<Result<Vec<_>>>()?;
    Ok(GroupsReport {
        groups,
        no_iommu_group,
    })
}

/// Everything sysfs says about the device `addr`, as JSON: ids and names, driver and
/// override, NUMA node, IOMMU group, parent bridge, SR-IOV (for a VF: its PF, index, and the
/// MAC and VLAN the PF holds for it, `null` on a real host), config-space facts and resets,
/// network interfaces and block devices.
pub fn device_facts(host: &Host, addr: &PciAddress) -> Result<serde_json::Value> {
    let d = host.device(addr)?;
    let cfg = host.config_space(addr)?;
    let vf = match host.vf_index(addr)? {
        Some((pf, index)) => {
            let net = host.recorded_vf_net(&pf, index)?;
            serde_json::json!({
                "pf": pf.to_string(),
                "index": index,
                "mac": net.map(|n| n.mac.to_string()),
                "vlan": net.map(|n| n.vlan),
            })
        }
        None => serde_json::Value::Null,
    };
    let (vendor_name, device_name) = pci_names(d.ids.vendor, d.ids.device);
    Ok(serde_json::json!({
        "address": d.address.to_string(),
        "vendor": format!("0x{:04x}", d.ids.vendor),
        "device": format!("0x{:04x}", d.ids.device),
        "class": format!("0x{:06x}", d.ids.class),
        "class_name": class_name(d.ids.class),
        "vendor_name": vendor_name,
        "device_name": device_name,
        "driver": d.driver,
        "driver_override": d.driver_override,
        "numa_node": d.numa_node,
        "iommu_group": d.iommu_group,
        "parent_bridge": host.parent_bridge(addr)?.map(|a| a.to_string()),
        "physfn": d.physfn.map(|a| a.to_string()),
        "virtfns": d.virtfns.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "vf": vf,
        "header_type": format!("{:?}", cfg.header_type),
        "multifunction": cfg.multifunction,
        "pcie_port_type": cfg.pcie.map(|c| format!("{:?}", c.port_type)),
        "flr": cfg.has_flr() || d.physfn.is_some(),
        "pm_reset": cfg.has_pm_reset(),
        "reset_file": d.has_reset,
        "reset_method": d.reset_methods,
        "sysfs_path": d.sysfs_path,
        "net": d.net,
        "block": d.block,
    }))
}
