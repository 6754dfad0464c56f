//! [`HostSnapshot::materialize`]: the sysfs-shaped tree of a snapshot, one step per part of
//! the tree (device directories, the bus skeleton and drivers, each device's attributes, its
//! links, SR-IOV, the simulated kernel's own files).

use super::{hex_u16, DeviceRecord, HostSnapshot};
use crate::error::{Error, Result};
use crate::host::names::is_vfio_driver;
use crate::host::names::{is_stub_driver, parse_device_name};
use crate::host::simulator::{IdRule, NATIVE_DRIVERS_FILE, SIM_DIR};
use crate::host::sysfs::relative_link;
use crate::host::vfnet::{format_table, MacAddr, VfNet, VF_NET_FILE};
use crate::host::{DEVICES_DIR, DRIVERS_DIR, IOMMU_GROUPS_DIR};
use crate::pci::PciAddress;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

type Records<'s> = BTreeMap<PciAddress, &'s DeviceRecord>;

/// The tree being written: every path is relative to its root.
struct Tree<'a> {
    dir: &'a Path,
}

impl Tree<'_> {
    fn io(what: &str, p: &Path, e: std::io::Error) -> Error {
        Error::system(format!("{what} '{}'", p.display()), &e)
    }

    fn mkdir(&self, rel: &str) -> Result<()> {
        let p = self.dir.join(rel);
        fs::create_dir_all(&p).map_err(|e| Self::io("Failed to create", &p, e))
    }

    fn put(&self, rel: &str, data: &[u8], mode: u32) -> Result<()> {
        let p = self.dir.join(rel);
        fs::write(&p, data).map_err(|e| Self::io("Failed to write", &p, e))?;
        fs::set_permissions(&p, fs::Permissions::from_mode(mode))
            .map_err(|e| Self::io("Failed to set mode of", &p, e))
    }

    /// A sysfs attribute: `value` and a newline.
    fn attr(&self, rel: &str, value: impl std::fmt::Display, mode: u32) -> Result<()> {
        self.put(rel, format!("{value}\n").as_bytes(), mode)
    }

    /// A relative symlink at `from_rel` to `to_rel`, as the kernel makes them.
    fn link(&self, from_rel: &str, to_rel: &str) -> Result<()> {
        let (from_dir, _) = from_rel.rsplit_once('/').unwrap_or(("", from_rel));
        let p = self.dir.join(from_rel);
        symlink(relative_link(from_dir, to_rel), &p).map_err(|e| Self::io("Failed to link", &p, e))
    }
}

/// The directory of each device under `devices/`, following its parents.
fn device_paths(by_addr: &Records<'_>) -> Result<BTreeMap<PciAddress, String>> {
    fn path_of(
        addr: PciAddress,
        by_addr: &Records<'_>,
        paths: &mut BTreeMap<PciAddress, String>,
        depth: usize,
    ) -> Result<String> {
        if let Some(p) = paths.get(&addr) {
            return Ok(p.clone());
        }
        if depth > 256 {
            return Err(Error::invalid_arg(format!(
                "host snapshot: the parents of {addr} form a loop"
            )));
        }
        let p = match by_addr[&addr].parent.as_deref().and_then(parse_device_name) {
            Some(parent) => format!("{}/{addr}", path_of(parent, by_addr, paths, depth + 1)?),
            None => format!("devices/pci{:04x}:{:02x}/{addr}", addr.domain, addr.bus),
        };
        paths.insert(addr, p.clone());
        Ok(p)
    }
    let mut paths = BTreeMap::new();
    for addr in by_addr.keys() {
        path_of(*addr, by_addr, &mut paths, 0)?;
    }
    Ok(paths)
}

/// `bus/pci` with its files, `class/`, the IOMMU groups directory, and every driver.
fn bus_skeleton(t: &Tree<'_>, snapshot: &HostSnapshot, by_addr: &Records<'_>) -> Result<()> {
    for d in [
        DEVICES_DIR,
        DRIVERS_DIR,
        IOMMU_GROUPS_DIR,
        "class/net",
        "class/block",
    ] {
        t.mkdir(d)?;
    }
    t.put("bus/pci/drivers_probe", b"", 0o200)?;
    t.put("bus/pci/drivers_autoprobe", b"1\n", 0o644)?;
    t.put("bus/pci/rescan", b"", 0o200)?;
    let mut drivers: BTreeSet<&str> = snapshot.drivers.iter().map(String::as_str).collect();
    drivers.extend(by_addr.values().filter_map(|d| d.driver.as_deref()));
    for name in drivers {
        let base = format!("{DRIVERS_DIR}/{name}");
        t.mkdir(&base)?;
        for f in ["bind", "unbind", "new_id", "remove_id", "uevent"] {
            t.put(&format!("{base}/{f}"), b"", 0o200)?;
        }
    }
    Ok(())
}

/// The ids a device record gives, checked.
fn ids_of(addr: &PciAddress, d: &DeviceRecord) -> Result<(u16, u16, u32)> {
    let class = d
        .class
        .strip_prefix("0x")
        .and_then(|c| u32::from_str_radix(c, 16).ok())
        .filter(|c| *c <= 0xff_ffff)
        .ok_or_else(|| {
            Error::invalid_arg(format!("class '{}' of {addr} is not 0xCCSSPP", d.class))
        })?;
    Ok((
        hex_u16(&d.vendor, "vendor")?,
        hex_u16(&d.device, "device")?,
        class,
    ))
}

/// A device's own files: ids, driver_override, NUMA node, config space, reset and SR-IOV
/// attributes.
fn device_files(
    t: &Tree<'_>,
    p: &str,
    d: &DeviceRecord,
    (vendor, device, class): (u16, u16, u32),
    config: &[u8],
) -> Result<()> {
    let or = |v: &Option<String>, default: &str| v.clone().unwrap_or_else(|| default.into());
    t.attr(&format!("{p}/vendor"), &d.vendor, 0o444)?;
    t.attr(&format!("{p}/device"), &d.device, 0o444)?;
    t.attr(&format!("{p}/class"), format_args!("0x{class:06x}"), 0o444)?;
    t.attr(
        &format!("{p}/subsystem_vendor"),
        or(&d.subsystem_vendor, "0x0000"),
        0o444,
    )?;
    t.attr(
        &format!("{p}/subsystem_device"),
        or(&d.subsystem_device, "0x0000"),
        0o444,
    )?;
    t.put(
        &format!("{p}/modalias"),
        modalias(
            vendor,
            device,
            &or(&d.subsystem_vendor, "0x0000"),
            &or(&d.subsystem_device, "0x0000"),
            class,
        )
        .as_bytes(),
        0o444,
    )?;
    t.attr(&format!("{p}/revision"), or(&d.revision, "0x00"), 0o444)?;
    t.attr(
        &format!("{p}/driver_override"),
        or(&d.driver_override, "(null)"),
        0o644,
    )?;
    t.attr(&format!("{p}/numa_node"), d.numa_node.unwrap_or(-1), 0o644)?;
    t.put(&format!("{p}/enable"), b"1\n", 0o644)?;
    t.put(&format!("{p}/config"), config, 0o644)?;
    if let Some(m) = &d.reset_method {
        t.put(&format!("{p}/reset"), b"", 0o200)?;
        if !m.is_empty() {
            t.attr(&format!("{p}/reset_method"), m, 0o644)?;
        }
    }
    if let Some(n) = d.sriov_totalvfs {
        t.attr(&format!("{p}/sriov_totalvfs"), n, 0o444)?;
    }
    Ok(())
}

/// A device's links: from `bus/pci/devices`, to and from its driver, its IOMMU group, and
/// its network interfaces and block devices with their `class/` links. Each device on a VFIO
/// driver gets its own `vfio-dev/vfioN` (`next_vfio`), as the kernel numbers them.
fn device_links(
    t: &Tree<'_>,
    addr: &PciAddress,
    p: &str,
    d: &DeviceRecord,
    next_vfio: &mut u32,
) -> Result<()> {
    t.link(&format!("{DEVICES_DIR}/{addr}"), p)?;
    if let Some(drv) = &d.driver {
        let drv_dir = format!("{DRIVERS_DIR}/{drv}");
        t.link(&format!("{p}/driver"), &drv_dir)?;
        t.link(&format!("{drv_dir}/{addr}"), p)?;
        if is_vfio_driver(drv) {
            t.mkdir(&format!("{p}/vfio-dev/vfio{next_vfio}"))?;
            *next_vfio += 1;
        }
    }
    if let Some(g) = d.iommu_group {
        let gdir = format!("{IOMMU_GROUPS_DIR}/{g}");
        if !t.dir.join(&gdir).exists() {
            t.mkdir(&format!("{gdir}/devices"))?;
            t.put(&format!("{gdir}/type"), b"DMA\n", 0o644)?;
            t.put(&format!("{gdir}/reserved_regions"), b"", 0o444)?;
        }
        t.link(&format!("{gdir}/devices/{addr}"), p)?;
        t.link(&format!("{p}/iommu_group"), &gdir)?;
    }
    for net in &d.net {
        let ndir = format!("{p}/net/{net}");
        t.mkdir(&ndir)?;
        t.put(&format!("{ndir}/operstate"), b"up\n", 0o444)?;
        t.link(&format!("class/net/{net}"), &ndir)?;
    }
    for blk in &d.block {
        let bdir = format!("{p}/block/{blk}");
        t.mkdir(&bdir)?;
        t.put(&format!("{bdir}/size"), b"0\n", 0o444)?;
        t.link(&format!("class/block/{blk}"), &bdir)?;
    }
    Ok(())
}

/// Each PF's `virtfnN` links and `sriov_numvfs`, and the MAC/VLAN each VF record gives.
fn sriov(
    t: &Tree<'_>,
    by_addr: &Records<'_>,
    paths: &BTreeMap<PciAddress, String>,
) -> Result<BTreeMap<(PciAddress, u32), VfNet>> {
    let mut vfs_of: BTreeMap<PciAddress, Vec<PciAddress>> = BTreeMap::new();
    for (addr, d) in by_addr {
        if let Some(pf) = d.physfn.as_deref().and_then(parse_device_name) {
            t.link(&format!("{}/physfn", paths[addr]), &paths[&pf])?;
            vfs_of.entry(pf).or_default().push(*addr);
        }
    }
    let mut vf_net = BTreeMap::new();
    for (pf, vfs) in vfs_of {
        let p = &paths[&pf];
        for (i, vf) in vfs.iter().enumerate() {
            t.link(&format!("{p}/virtfn{i}"), &paths[vf])?;
            let d = by_addr[vf];
            if d.vf_mac.is_none() && d.vf_vlan.is_none() {
                continue;
            }
            let mac = match d.vf_mac.as_deref() {
                Some(m) => MacAddr::parse(m)
                    .map_err(|e| Error::invalid_arg(format!("vf_mac of {vf}: {}", e.detail())))?,
                None => MacAddr::default(),
            };
            let vlan = d.vf_vlan.unwrap_or(0);
            if vlan > 4095 {
                return Err(Error::invalid_arg(format!(
                    "vf_vlan of {vf}: {vlan} is over 4095"
                )));
            }
            vf_net.insert((pf, i as u32), VfNet { mac, vlan });
        }
        t.attr(&format!("{p}/sriov_numvfs"), vfs.len(), 0o644)?;
    }
    Ok(vf_net)
}

/// The simulated kernel's files: which driver each vendor:device belongs to, and the MAC and
/// VLAN each PF holds for its VFs.
fn simulator_files(
    t: &Tree<'_>,
    rules: &BTreeSet<IdRule>,
    vf_net: &BTreeMap<(PciAddress, u32), VfNet>,
) -> Result<()> {
    t.mkdir(SIM_DIR)?;
    let mut text = String::from(
        "# virtpci simulated kernel: native driver of each vendor:device\n# DRIVER VENDOR DEVICE\n",
    );
    for r in rules {
        text.push_str(&format!("{} {:04x} {:04x}\n", r.driver, r.vendor, r.device));
    }
    t.put(NATIVE_DRIVERS_FILE, text.as_bytes(), 0o644)?;
    if !vf_net.is_empty() {
        t.put(VF_NET_FILE, format_table(vf_net).as_bytes(), 0o644)?;
    }
    Ok(())
}

impl HostSnapshot {
    /// Build the tree in `dir`, which must not exist or be empty.
    pub fn materialize(&self, dir: &Path) -> Result<()> {
        let by_addr = self.check()?;
        if let Ok(mut entries) = fs::read_dir(dir) {
            if entries.next().is_some() {
                return Err(Error::operation_invalid(format!(
                    "'{}' is not empty; refusing to materialize a host there",
                    dir.display()
                )));
            }
        }
        let t = Tree { dir };
        let paths = device_paths(&by_addr)?;
        bus_skeleton(&t, self, &by_addr)?;
        let mut children: BTreeMap<PciAddress, Vec<PciAddress>> = BTreeMap::new();
        for (addr, d) in &by_addr {
            if let Some(parent) = d.parent.as_deref().and_then(parse_device_name) {
                children.entry(parent).or_default().push(*addr);
            }
        }
        let mut rules: BTreeSet<IdRule> = BTreeSet::new();
        let mut next_vfio = 0u32;
        for (addr, d) in &by_addr {
            let p = &paths[addr];
            t.mkdir(p)?;
            let (vendor, device, class) = ids_of(addr, d)?;
            let config = self.config_bytes(addr, d, vendor, device, class, &children)?;
            device_files(&t, p, d, (vendor, device, class), &config)?;
            device_links(&t, addr, p, d, &mut next_vfio)?;
            let native = d
                .native_driver
                .clone()
                .or_else(|| d.driver.clone().filter(|n| !is_stub_driver(n)));
            if let Some(driver) = native {
                rules.insert(IdRule {
                    driver,
                    vendor,
                    device,
                });
            }
        }
        let vf_net = sriov(&t, &by_addr, &paths)?;
        simulator_files(&t, &rules, &vf_net)?;
        self.host_use.materialize(dir)
    }
}

/// The kernel's `modalias` of a PCI device (`pci:vVVVVVVVVdDDDDDDDDsvSSSSSSSSsdTTTTTTTTbcBBscSSiII`).
fn modalias(vendor: u16, device: u16, sv: &str, sd: &str, class: u32) -> String {
    let hex = |t: &str| u16::from_str_radix(t.trim_start_matches("0x"), 16).unwrap_or(0);
    format!(
        "pci:v{vendor:08X}d{device:08X}sv{:08X}sd{:08X}bc{:02X}sc{:02X}i{:02X}\n",
        hex(sv),
        hex(sd),
        class >> 16,
        (class >> 8) & 0xff,
        class & 0xff
    )
}
