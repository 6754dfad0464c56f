//! Host fixtures: record a host's PCI topology as JSON ([`HostSnapshot::capture`]) and build a
//! sysfs-shaped tree from such a record ([`HostSnapshot::materialize`]).
//!
//! The JSON (`"format": "virtpci-host/1"`) lists drivers and devices. A device has its
//! address, the bridge above it in the sysfs hierarchy (`parent`), ids and class as sysfs
//! writes them (`"0x8086"`, `"0x020000"`), its driver, `native_driver` (the driver a probe
//! binds when nothing overrides it; defaults to `driver` when that is not a stub), IOMMU group,
//! NUMA node, `physfn` for VFs, `sriov_totalvfs` for PFs, `reset_method` (a `reset` file is
//! made when it is present), network and block children, and config space: either raw
//! (`{"hex": "...", "size": 4096}`, trailing zero bytes omitted) as captured, or described
//! (`{"pcie": "endpoint", "flr": true, "pm": true, "acs": "0x1d", "multifunction": true}`) as
//! hand-written fixtures do; a bridge's bus numbers are derived from its children unless given.
//!
//! The tree is laid out as the kernel lays out `/sys`: device directories nested under
//! `devices/pciDDDD:BB/` following the bridges, relative links from `bus/pci/devices`,
//! `bus/pci/drivers/<drv>`, `kernel/iommu_groups/<n>/devices`, `driver`, `iommu_group`,
//! `physfn`/`virtfnN`, and `class/net`, `class/block`. The simulator's native-driver rules are
//! seeded from `native_driver`.

mod materialize;

use super::config::{ConfigBuilder, PciePortType};
use super::names::{is_valid_driver_name, parse_device_name};
use super::simulator::SIM_DIR;
use super::vfnet::MacAddr;
use super::{Host, DRIVERS_DIR};
use crate::error::{Error, Result};
use crate::pci::PciAddress;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

pub const FORMAT: &str = "virtpci-host/1";

/// A recorded host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSnapshot {
    pub format: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Loaded drivers (`bus/pci/drivers/<name>`).
    pub drivers: Vec<String>,
    pub devices: Vec<DeviceRecord>,
    /// What the host itself uses, for the host-critical guard of the simulated kernel:
    /// materialized as its `/proc` tables (`.virtpci-sim/proc/`). Not captured from a real
    /// host (the guard reads the real `/proc` there).
    #[serde(default, skip_serializing_if = "HostUse::is_empty")]
    pub host_use: HostUse,
}

/// Mounted filesystems and the interfaces of default routes, as a snapshot records them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostUse {
    /// Mounted filesystems as `DEVICE MOUNT_POINT` (`"/dev/sda1 /"`).
    #[serde(default)]
    pub mounts: Vec<String>,
    /// Network interfaces that carry an IPv4 default route (`"eno1"`).
    #[serde(default)]
    pub(crate) default_routes: Vec<String>,
}

impl HostUse {
    pub fn is_empty(&self) -> bool {
        self.mounts.is_empty() && self.default_routes.is_empty()
    }

    /// Write the simulated kernel's `/proc` tables for this use under `dir`.
    fn materialize(&self, dir: &Path) -> Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        let proc_dir = dir.join(SIM_DIR).join("proc");
        let mut mounts = String::new();
        for m in &self.mounts {
            let mut f = m.split_whitespace();
            let (Some(dev), Some(point), None) = (f.next(), f.next(), f.next()) else {
                return Err(Error::invalid_arg(format!(
                    "host_use mount '{}' is not 'DEVICE MOUNT_POINT'",
                    crate::error::quote(m)
                )));
            };
            mounts.push_str(&format!("{dev} {point} ext4 rw 0 0\n"));
        }
        let mut route = String::from(
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n",
        );
        for iface in &self.default_routes {
            if iface.is_empty() || iface.contains(char::is_whitespace) {
                return Err(Error::invalid_arg(format!(
                    "host_use default route interface '{}' is not an interface name",
                    crate::error::quote(iface)
                )));
            }
            route.push_str(&format!(
                "{iface}\t00000000\t0102A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
            ));
        }
        for (rel, text) in [("self/mounts", mounts), ("net/route", route)] {
            let p = proc_dir.join(rel);
            let made = p
                .parent()
                .map_or(Ok(()), fs::create_dir_all)
                .and_then(|()| fs::write(&p, text));
            made.map_err(|e| Error::system(format!("Failed to write '{}'", p.display()), &e))?;
        }
        Ok(())
    }
}

/// One recorded device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRecord {
    pub address: String,
    #[serde(default)]
    pub parent: Option<String>,
    pub vendor: String,
    pub device: String,
    pub class: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subsystem_vendor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subsystem_device: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    #[serde(default)]
    pub driver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native_driver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_override: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numa_node: Option<i32>,
    #[serde(default)]
    pub iommu_group: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physfn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sriov_totalvfs: Option<u32>,
    /// For a VF: the MAC address its PF holds for it (recorded from a simulated host only,
    /// when not the zero MAC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vf_mac: Option<String>,
    /// For a VF: the VLAN its PF holds for it (simulated hosts only, when not 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vf_vlan: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_method: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub net: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub block: Vec<String>,
    #[serde(default)]
    pub config: ConfigRecord,
}

/// Config space, raw or described.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ConfigRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pcie: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub flr: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub pm: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub pm_no_soft_reset: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acs: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub multifunction: bool,
    /// Bridge bus numbers: primary, secondary, subordinate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buses: Option<[u8; 3]>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn port_type_from_name(name: &str) -> Option<PciePortType> {
    Some(match name {
        "endpoint" => PciePortType::Endpoint,
        "legacy_endpoint" => PciePortType::LegacyEndpoint,
        "root_port" => PciePortType::RootPort,
        "upstream_port" => PciePortType::UpstreamPort,
        "downstream_port" => PciePortType::DownstreamPort,
        "pcie_to_pci_bridge" => PciePortType::PcieToPciBridge,
        "pci_to_pcie_bridge" => PciePortType::PciToPcieBridge,
        "integrated_endpoint" => PciePortType::IntegratedEndpoint,
        "event_collector" => PciePortType::EventCollector,
        _ => return None,
    })
}

fn hex_u16(text: &str, what: &str) -> Result<u16> {
    text.strip_prefix("0x")
        .and_then(|d| u16::from_str_radix(d, 16).ok())
        .ok_or_else(|| Error::invalid_arg(format!("{what} '{text}' is not 0xNNNN")))
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn basename(s: &str) -> &str {
    s.trim_end_matches('/').rsplit('/').next().unwrap_or("")
}

impl HostSnapshot {
    /// Read `json`.
    pub fn from_json(json: &str) -> Result<HostSnapshot> {
        let max = crate::limits::MAX_SNAPSHOT_BYTES;
        if json.len() > max {
            return Err(Error::invalid_arg(format!(
                "host snapshot of {} bytes is larger than the limit of {max} bytes",
                json.len()
            )));
        }
        let snap: HostSnapshot = serde_json::from_str(json)
            .map_err(|e| Error::invalid_arg(format!("host snapshot: {e}")))?;
        if snap.format != FORMAT {
            return Err(Error::invalid_arg(format!(
                "host snapshot: format '{}' is not '{FORMAT}'",
                snap.format
            )));
        }
        Ok(snap)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    /// Record `host` (reads only).
    pub fn capture(host: &Host) -> Result<HostSnapshot> {
        let mut devices = Vec::new();
        for addr in host.device_addresses()? {
            let d = host.device(&addr)?;
            let parent = d
                .sysfs_path
                .rsplit_once('/')
                .and_then(|(p, _)| parse_device_name(basename(p)))
                .map(|a| a.to_string());
            let vf_net = match host.vf_index(&addr)? {
                Some((pf, index)) => host.recorded_vf_net(&pf, index)?,
                None => None,
            };
            let bytes = host.read_config_bytes(&addr)?;
            let used = bytes.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
            devices.push(DeviceRecord {
                address: addr.to_string(),
                parent,
                vendor: format!("0x{:04x}", d.ids.vendor),
                device: format!("0x{:04x}", d.ids.device),
                class: format!("0x{:06x}", d.ids.class),
                subsystem_vendor: d.ids.subsystem_vendor.map(|v| format!("0x{v:04x}")),
                subsystem_device: d.ids.subsystem_device.map(|v| format!("0x{v:04x}")),
                revision: d.revision.map(|r| format!("0x{r:02x}")),
                native_driver: match host.simulator() {
                    Some(sim) => sim.native_driver(host.sysfs(), &addr)?,
                    None => None,
                }
                .filter(|n| Some(n) != d.driver.as_ref()),
                driver: d.driver,
                driver_override: d.driver_override,
                numa_node: d.numa_node,
                iommu_group: d.iommu_group,
                physfn: d.physfn.map(|a| a.to_string()),
                sriov_totalvfs: d.sriov_totalvfs,
                vf_mac: vf_net
                    .map(|n| n.mac)
                    .filter(|m| *m != MacAddr::default())
                    .map(|m| m.to_string()),
                vf_vlan: vf_net.map(|n| n.vlan).filter(|v| *v != 0),
                reset_method: match (d.has_reset, d.reset_methods) {
                    (_, Some(m)) => Some(m.join(" ")),
                    (true, None) => Some(String::new()),
                    (false, None) => None,
                },
                net: d.net,
                block: d.block,
                config: ConfigRecord {
                    hex: Some(hex_encode(&bytes[..used])),
                    size: Some(bytes.len()),
                    ..Default::default()
                },
            });
        }
        let mut drivers: Vec<String> = host
            .sysfs()
            .read_dir_opt(DRIVERS_DIR)?
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.name)
            .filter(|n| is_valid_driver_name(n))
            .collect();
        drivers.sort();
        Ok(HostSnapshot {
            format: FORMAT.to_string(),
            description: None,
            drivers,
            devices,
            host_use: HostUse::default(),
        })
    }

    /// Check names, references and uniqueness; returns devices by address.
    fn check(&self) -> Result<BTreeMap<PciAddress, &DeviceRecord>> {
        let mut by_addr = BTreeMap::new();
        let mut children: BTreeSet<String> = BTreeSet::new();
        for d in &self.devices {
            let addr = parse_device_name(&d.address).ok_or_else(|| {
                Error::invalid_arg(format!(
                    "host snapshot: device name '{}' is not dddd:bb:ss.f",
                    d.address
                ))
            })?;
            if by_addr.insert(addr, d).is_some() {
                return Err(Error::invalid_arg(format!(
                    "host snapshot: device {addr} listed twice"
                )));
            }
            for name in [&d.driver, &d.native_driver, &d.driver_override]
                .into_iter()
                .flatten()
            {
                if !is_valid_driver_name(name) {
                    return Err(Error::invalid_arg(format!(
                        "host snapshot: device {addr}: driver name '{name}' is not valid"
                    )));
                }
            }
            for name in d.net.iter().chain(d.block.iter()) {
                if !children.insert(name.clone()) {
                    return Err(Error::invalid_arg(format!(
                        "host snapshot: interface '{name}' belongs to two devices"
                    )));
                }
                if !is_valid_driver_name(name) {
                    return Err(Error::invalid_arg(format!(
                        "host snapshot: device {addr}: interface name '{name}' is not valid"
                    )));
                }
            }
        }
        for d in &self.devices {
            for (what, other) in [("parent", &d.parent), ("physfn", &d.physfn)] {
                if let Some(o) = other {
                    let a = parse_device_name(o).ok_or_else(|| {
                        Error::invalid_arg(format!(
                            "host snapshot: device {}: {what} '{o}' is not dddd:bb:ss.f",
                            d.address
                        ))
                    })?;
                    if !by_addr.contains_key(&a) {
                        return Err(Error::invalid_arg(format!(
                            "host snapshot: device {}: {what} {o} is not in the snapshot",
                            d.address
                        )));
                    }
                }
            }
        }
        for name in &self.drivers {
            if !is_valid_driver_name(name) {
                return Err(Error::invalid_arg(format!(
                    "host snapshot: driver name '{name}' is not valid"
                )));
            }
        }
        Ok(by_addr)
    }

    fn config_bytes(
        &self,
        addr: &PciAddress,
        d: &DeviceRecord,
        vendor: u16,
        device: u16,
        class: u32,
        children: &BTreeMap<PciAddress, Vec<PciAddress>>,
    ) -> Result<Vec<u8>> {
        let c = &d.config;
        if let Some(hex) = &c.hex {
            let mut bytes = hex_decode(hex).ok_or_else(|| {
                Error::invalid_arg(format!("config hex of {addr} is not hexadecimal"))
            })?;
            let size = c.size.unwrap_or(256).max(bytes.len());
            let max = crate::limits::MAX_CONFIG_SPACE_BYTES;
            if size > max {
                return Err(Error::invalid_arg(format!(
                    "config space of {addr} has {size} bytes, more than {max}"
                )));
            }
            bytes.resize(size, 0);
            return Ok(bytes);
        }
        let pcie = match c.pcie.as_deref() {
            None => None,
            Some(name) => Some(port_type_from_name(name).ok_or_else(|| {
                Error::invalid_arg(format!("config of {addr}: unknown pcie type '{name}'"))
            })?),
        };
        let acs = match c.acs.as_deref() {
            None => None,
            Some(text) => Some(hex_u16(text, "acs")?),
        };
        let is_bridge = class >> 8 == 0x0604;
        let buses = if let Some([p, s, sub]) = c.buses {
            Some((p, s, sub))
        } else if is_bridge {
            // Secondary: the bus of the direct children; subordinate: the highest bus below.
            let mut secondary: Option<u32> = None;
            let mut subordinate: Option<u32> = None;
            let mut frontier = vec![*addr];
            while let Some(a) = frontier.pop() {
                for child in children.get(&a).map(Vec::as_slice).unwrap_or(&[]) {
                    if a == *addr {
                        secondary = Some(secondary.map_or(child.bus, |s| s.min(child.bus)));
                    }
                    subordinate = Some(subordinate.map_or(child.bus, |s| s.max(child.bus)));
                    frontier.push(*child);
                }
            }
            let s = secondary.unwrap_or(0);
            Some((addr.bus as u8, s as u8, subordinate.unwrap_or(s) as u8))
        } else {
            None
        };
        Ok(ConfigBuilder {
            vendor,
            device,
            class,
            revision: d
                .revision
                .as_deref()
                .and_then(|r| u8::from_str_radix(r.strip_prefix("0x")?, 16).ok())
                .unwrap_or(0),
            subsystem_vendor: d
                .subsystem_vendor
                .as_deref()
                .map(|v| hex_u16(v, "subsystem_vendor"))
                .transpose()?
                .unwrap_or(0),
            subsystem_device: d
                .subsystem_device
                .as_deref()
                .map(|v| hex_u16(v, "subsystem_device"))
                .transpose()?
                .unwrap_or(0),
            multifunction: c.multifunction,
            bridge_buses: buses,
            pcie_port_type: pcie,
            flr: c.flr,
            pm: c.pm,
            pm_no_soft_reset: c.pm_no_soft_reset,
            acs_control: acs,
        }
        .build())
    }
}
