//! Devices the host cannot lose: the PCI device behind a mounted filesystem's block device, and
//! the one behind the network interface that carries the default route.
//!
//! The mount and route tables come from a [`HostUsage`] source (`/proc` on a real host, files
//! in the tree for a simulated one, fixed text in tests). A block device or interface is traced
//! to its PCI device through `class/block/<name>` and `class/net/<name>`: the last PCI device
//! in the resolved path holds it (an xHCI controller holds a USB disk). Virtual devices are
//! followed down to what they stack on: `slaves/` of a device-mapper or md disk, `lower_*` and
//! `brif/` of a bond, VLAN or bridge.

use crate::error::{Error, Result};
use crate::host::names::parse_device_name;
use crate::host::Host;
use crate::pci::PciAddress;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Where the mount and route tables come from.
pub trait HostUsage: Send + Sync + fmt::Debug {
    /// `/proc/self/mounts`-formatted text.
    fn mounts(&self) -> Result<String>;
    /// `/proc/net/route`-formatted text (IPv4).
    fn ipv4_routes(&self) -> Result<String>;
    /// `/proc/net/ipv6_route`-formatted text.
    fn ipv6_routes(&self) -> Result<String>;
}

/// Tables read from files; a missing file counts as an empty table.
#[derive(Debug, Clone)]
pub struct ProcUsage {
    pub mounts: PathBuf,
    pub(crate) ipv4_routes: PathBuf,
    pub(crate) ipv6_routes: PathBuf,
}

/// Where a simulated tree keeps its fake tables, relative to its root.
pub(crate) const SIMULATED_PROC_DIR: &str = ".virtpci-sim/proc";

impl ProcUsage {
    /// The running system's `/proc`.
    pub fn system() -> ProcUsage {
        ProcUsage::under(Path::new("/proc"))
    }

    /// `dir/self/mounts`, `dir/net/route`, `dir/net/ipv6_route`.
    pub fn under(dir: &Path) -> ProcUsage {
        ProcUsage {
            mounts: dir.join("self/mounts"),
            ipv4_routes: dir.join("net/route"),
            ipv6_routes: dir.join("net/ipv6_route"),
        }
    }

    /// The fake tables of a simulated tree: `ROOT/.virtpci-sim/proc/...`.
    pub fn simulated(root: &Path) -> ProcUsage {
        ProcUsage::under(&root.join(SIMULATED_PROC_DIR))
    }

    fn read(path: &Path) -> Result<String> {
        match crate::host::files::read_regular(path) {
            Ok(t) => Ok(t.unwrap_or_default()),
            Err(e) => Err(Error::system(
                format!("Failed to read '{}'", path.display()),
                &e,
            )),
        }
    }
}

impl HostUsage for ProcUsage {
    fn mounts(&self) -> Result<String> {
        ProcUsage::read(&self.mounts)
    }
    fn ipv4_routes(&self) -> Result<String> {
        ProcUsage::read(&self.ipv4_routes)
    }
    fn ipv6_routes(&self) -> Result<String> {
        ProcUsage::read(&self.ipv6_routes)
    }
}

/// Fixed tables (tests).
#[derive(Debug, Clone, Default)]
pub struct StaticUsage {
    pub mounts: String,
    pub ipv4_routes: String,
    pub ipv6_routes: String,
}

impl HostUsage for StaticUsage {
    fn mounts(&self) -> Result<String> {
        Ok(self.mounts.clone())
    }
    fn ipv4_routes(&self) -> Result<String> {
        Ok(self.ipv4_routes.clone())
    }
    fn ipv6_routes(&self) -> Result<String> {
        Ok(self.ipv6_routes.clone())
    }
}

/// Why a device is critical: what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CriticalUse {
    Mount {
        block: String,
        mount_point: String,
    },
    DefaultRoute {
        interface: String,
        via: Option<String>,
    },
}

impl fmt::Display for CriticalUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CriticalUse::Mount { block, mount_point } => write!(
                f,
                "it holds block device {block}, whose filesystem is mounted at {mount_point}"
            ),
            CriticalUse::DefaultRoute { interface, via } => match via {
                Some(v) if v != interface => write!(
                    f,
                    "it holds network interface {interface}, under {v}, which carries the default route"
                ),
                _ => write!(
                    f,
                    "it holds network interface {interface}, which carries the default route"
                ),
            },
        }
    }
}

/// How the refusal to detach a critical device ends.
const REFUSAL_END: &str = "refusing to detach it unless forced";

/// The error for detaching a critical device without forcing. It names no option: each
/// front end names its own with [`name_force_option`].
pub(crate) fn critical_error(addr: &PciAddress, why: &CriticalUse) -> Error {
    Error::operation_invalid(format!(
        "PCI device {addr} is critical to the host: {why}; {REFUSAL_END}"
    ))
}

/// `err` with the front end's way of forcing (`--force`, a C flag's name) added when it is the
/// refusal of a critical device; any other error unchanged.
pub fn name_force_option(err: Error, option: &str) -> Error {
    if err.code == crate::error::ErrorCode::OperationInvalid && err.message.ends_with(REFUSAL_END) {
        Error::new(err.code, format!("{} ({option} overrides)", err.detail()))
    } else {
        err
    }
}

/// Undo the octal escapes of /proc/mounts (`\040` is a space).
fn unescape_mount_field(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            let digits = text.get(i + 1..i + 4).unwrap_or("");
            if digits.len() == 3 && digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                if let Ok(v) = u8::from_str_radix(digits, 8) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `(source, mount point)` of every mount whose source is under /dev.
pub(crate) fn parse_mounts(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let source = unescape_mount_field(f.next()?);
            let point = unescape_mount_field(f.next()?);
            source.starts_with("/dev/").then_some((source, point))
        })
        .collect()
}

/// Interfaces with a default route: IPv4 (destination and mask 0, RTF_UP) and IPv6 (::/0,
/// not on `lo`).
pub(crate) fn default_route_interfaces(ipv4: &str, ipv6: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in ipv4.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 {
            continue;
        }
        let flags = u32::from_str_radix(f[3], 16).unwrap_or(0);
        if f[1] == "00000000" && f[7] == "00000000" && flags & 1 != 0 {
            out.push(f[0].to_string());
        }
    }
    for line in ipv6.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 10 {
            continue;
        }
        let zero = f[0].bytes().all(|b| b == b'0') && f[0].len() == 32;
        if zero && f[1] == "00" && f[9] != "lo" {
            out.push(f[9].to_string());
        }
    }
    out.sort();
    out.dedup();
    out
}

const MAX_STACK_DEPTH: usize = 8;

/// The PCI devices that `class/<class>/<name>` rests on: the last PCI device of its resolved
/// path, or, for a virtual device, those of the devices it stacks on.
fn holders(host: &Host, class: &str, name: &str, depth: usize, out: &mut Vec<PciAddress>) {
    if depth > MAX_STACK_DEPTH || name.is_empty() || name.contains('/') || name.starts_with('.') {
        return;
    }
    let rel = format!("class/{class}/{name}");
    let Ok(real) = host.sysfs().real_path(&rel) else {
        return;
    };
    if let Some(pci) = real.rsplit('/').find_map(parse_device_name) {
        out.push(pci);
        return;
    }
    let sysfs = host.sysfs();
    let mut lower: Vec<String> = Vec::new();
    if class == "block" {
        if let Ok(Some(entries)) = sysfs.read_dir_opt(&format!("{real}/slaves")) {
            lower.extend(entries.into_iter().map(|e| e.name));
        }
    } else {
        if let Ok(Some(entries)) = sysfs.read_dir_opt(&real) {
            lower.extend(
                entries
                    .into_iter()
                    .filter_map(|e| e.name.strip_prefix("lower_").map(str::to_string)),
            );
        }
        if let Ok(Some(entries)) = sysfs.read_dir_opt(&format!("{real}/brif")) {
            lower.extend(entries.into_iter().map(|e| e.name));
        }
    }
    for l in lower {
        holders(host, class, &l, depth + 1, out);
    }
}

/// The block device name of a mount source: `/dev/sda1` → `sda1`; `/dev/mapper/NAME` → the
/// `dm-N` whose `dm/name` is NAME.
fn block_name(host: &Host, source: &str) -> Option<String> {
    let rest = source.strip_prefix("/dev/")?;
    if let Some(dm) = rest.strip_prefix("mapper/") {
        let entries = host.sysfs().read_dir_opt("class/block").ok()??;
        return entries
            .into_iter()
            .filter(|e| e.name.starts_with("dm-"))
            .find(|e| {
                host.sysfs()
                    .read_attr_opt(&format!("class/block/{}/dm/name", e.name))
                    .ok()
                    .flatten()
                    .as_deref()
                    == Some(dm)
            })
            .map(|e| e.name);
    }
    (!rest.contains('/')).then(|| rest.to_string())
}

/// Every critical PCI device with the first reason found for it.
pub(crate) fn critical_devices(
    host: &Host,
    usage: &dyn HostUsage,
) -> Result<BTreeMap<PciAddress, CriticalUse>> {
    let mut out: BTreeMap<PciAddress, CriticalUse> = BTreeMap::new();
    for (source, point) in parse_mounts(&usage.mounts()?) {
        let Some(block) = block_name(host, &source) else {
            continue;
        };
        let mut found = Vec::new();
        holders(host, "block", &block, 0, &mut found);
        for pci in found {
            out.entry(pci).or_insert_with(|| CriticalUse::Mount {
                block: block.clone(),
                mount_point: point.clone(),
            });
        }
    }
    let routes = default_route_interfaces(&usage.ipv4_routes()?, &usage.ipv6_routes()?);
    for iface in routes {
        let mut found = Vec::new();
        holders(host, "net", &iface, 0, &mut found);
        for pci in found {
            let physical = host
                .net_interfaces(&pci)
                .ok()
                .and_then(|n| n.into_iter().next())
                .unwrap_or_else(|| iface.clone());
            out.entry(pci).or_insert_with(|| CriticalUse::DefaultRoute {
                interface: physical.clone(),
                via: (physical != iface).then(|| iface.clone()),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_and_routes_parse() {
        let m = "proc /proc proc rw 0 0\n/dev/sda2 / ext4 rw 0 0\n/dev/nvme0n1p1 /mnt/my\\040disk xfs rw 0 0\n";
        assert_eq!(
            parse_mounts(m),
            vec![
                ("/dev/sda2".to_string(), "/".to_string()),
                ("/dev/nvme0n1p1".to_string(), "/mnt/my disk".to_string())
            ]
        );
        let r4 =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                  eno1\t00000000\t0102A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
                  eno1\t0002A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n\
                  down0\t00000000\t0102A8C0\t0002\t0\t0\t100\t00000000\t0\t0\t0\n";
        let r6 = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003 wlp2s0\n\
                  00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200 lo\n";
        assert_eq!(default_route_interfaces(r4, r6), vec!["eno1", "wlp2s0"]);
    }
}
