//! A simulated kernel: carries out sysfs writes on a sysfs-shaped tree as Linux would, so that
//! detach, reattach and reset can be tested end to end without hardware or root.
//!
//! # What it models
//! * `devices/<dev>/driver_override`: the value up to the first newline; an empty value (or
//!   `"\n"`) clears it, and the file then reads `(null)` as on a real kernel. Values of 4096
//!   bytes or more: `EINVAL`.
//! * `drivers/<drv>/bind`: `ENODEV` unless the device exists and the driver matches it
//!   (`driver_override` names it, or — without an override — one of its ids does); `EBUSY`
//!   when the device already has a driver. Binding creates `devices/<dev>/driver` →
//!   `bus/pci/drivers/<drv>` and `bus/pci/drivers/<drv>/<dev>` → the device directory, both
//!   relative as the kernel writes them; binding to vfio-pci also creates
//!   `devices/<dev>/vfio-dev/vfio0` (what kernels ≥ 6.1 show and libvirt checks).
//! * `drivers/<drv>/unbind` and `devices/<dev>/driver/unbind`: `ENODEV` unless the device is
//!   bound to that driver; removes both links and `vfio-dev/`.
//! * `drivers_probe`: `ENODEV` for an unknown device; nothing for a bound one; otherwise binds
//!   the first matching *loaded* driver (`bus/pci/drivers/<drv>` exists): with an override only
//!   that driver, else a driver with a matching dynamic id (`new_id`), else the device's native
//!   driver. No match leaves the device unbound, and the write still succeeds (as on Linux).
//! * `drivers/<drv>/new_id` (`"vvvv dddd"`, hex): adds a dynamic id (`EEXIST` when the
//!   driver already claims it) and binds every unbound device it now matches;
//!   `remove_id`: removes it (`ENODEV` if absent).
//! * `devices/<dev>/reset`: accepts `"1"` only (`EINVAL` otherwise) and counts the reset; the
//!   file must exist (the kernel creates it only when it knows a reset method).
//! * `devices/<dev>/config`: the bytes are stored at the offset.
//!   Any other write: `EACCES`.
//!
//! Not modelled: `/dev/vfio/<group>` (the tree is a sysfs root, `/dev` lies outside it),
//! module loading (a driver is loaded when `bus/pci/drivers/<drv>` exists), the real effect of a
//! reset on the device, and `remove`/`rescan`.
//!
//! # How it knows native drivers
//! A kernel knows which driver claims a device from the drivers' id tables; a tree does not
//! say. The simulator keeps that knowledge in the tree, in `.virtpci-sim/native-drivers`:
//! one rule per line, `DRIVER VENDOR DEVICE` (hexadecimal, without `0x`), `#` comments allowed.
//! When a simulator attaches to a tree it *learns*: every device bound to a driver that is not
//! a stub (vfio-pci, pci-stub, pciback, vfio variants) adds the rule "that driver claims these
//! ids", and the file is rewritten when a rule was added. Knowledge is never forgotten, so a
//! device later moved to vfio-pci — by this process or one that crashed — goes back to its
//! driver on probe. A tree may be seeded with rules for devices that start unbound or on a stub
//! (the fixture materializer writes one from each device's `native_driver`); a device no rule
//! covers stays unbound after probe, as a device without a driver does on Linux. Dynamic ids
//! live in `.virtpci-sim/dynamic-ids`, same format. Both files, and the links and attributes of
//! the tree, are all the state there is: another process attaching to the same tree sees the
//! same kernel. Writes are serialised by a mutex and, between processes, by `flock` on
//! `.virtpci-sim/lock`.

use super::names::{is_stub_driver, is_valid_driver_name, parse_device_name};
use super::sysfs::{relative_link, Sysfs};
use super::writer::{SysfsWrite, SysfsWriter, WriteKind};
use super::{DEVICES_DIR, DRIVERS_DIR, DRIVERS_PROBE, VFIO_PCI};
use crate::error::{Error, Result};
use crate::pci::PciAddress;
use rustix::fs::{flock, FlockOperation};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The simulator's directory inside the tree.
pub const SIM_DIR: &str = ".virtpci-sim";
/// Native driver rules, `DRIVER VENDOR DEVICE` per line.
pub const NATIVE_DRIVERS_FILE: &str = ".virtpci-sim/native-drivers";
/// Dynamic ids added with `new_id`, same format.
pub const DYNAMIC_IDS_FILE: &str = ".virtpci-sim/dynamic-ids";
const LOCK_FILE: &str = ".virtpci-sim/lock";

/// Called after each change the simulator makes to the tree, with a line naming it: lets a
/// test stop the process between two steps of one write.
pub type StepHook = Arc<dyn Fn(&str) + Send + Sync>;

/// "Driver `driver` claims devices `vendor:device`".
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IdRule {
    pub driver: String,
    pub vendor: u16,
    pub device: u16,
}

/// The simulated kernel. See the module documentation.
pub struct SimulatedKernel {
    root: PathBuf,
    lock: Mutex<SimState>,
    step_hook: Option<StepHook>,
}

impl fmt::Debug for SimulatedKernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimulatedKernel")
            .field("root", &self.root)
            .field("step_hook", &self.step_hook.is_some())
            .finish()
    }
}

#[derive(Debug, Default)]
struct SimState {
    applied: Vec<String>,
    resets: BTreeMap<PciAddress, u64>,
}

fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

fn parse_rules(text: &str, what: &str) -> Result<BTreeSet<IdRule>> {
    let mut rules = BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let rule = match fields.as_slice() {
            [d, v, p] if is_valid_driver_name(d) => u16::from_str_radix(v, 16)
                .ok()
                .zip(u16::from_str_radix(p, 16).ok())
                .map(|(vendor, device)| IdRule {
                    driver: d.to_string(),
                    vendor,
                    device,
                }),
            _ => None,
        };
        match rule {
            Some(r) => {
                rules.insert(r);
            }
            None => {
                return Err(Error::internal(format!(
                    "{what}, line {}: expected 'DRIVER VENDOR DEVICE', found '{}'",
                    i + 1,
                    line.escape_debug()
                )))
            }
        }
    }
    Ok(rules)
}

fn format_rules(rules: &BTreeSet<IdRule>, header: &str) -> String {
    let mut out = format!("# {header}\n# DRIVER VENDOR DEVICE\n");
    for r in rules {
        out.push_str(&format!("{} {:04x} {:04x}\n", r.driver, r.vendor, r.device));
    }
    out
}

/// Parse `"vvvv dddd ..."` as written to new_id/remove_id.
fn parse_id_pair(data: &[u8]) -> io::Result<(u16, u16)> {
    let text = std::str::from_utf8(data).map_err(|_| errno(libc::EINVAL))?;
    let mut fields = text.split_whitespace();
    let mut next = || -> io::Result<u16> {
        let f = fields.next().ok_or_else(|| errno(libc::EINVAL))?;
        let f = f.strip_prefix("0x").unwrap_or(f);
        u16::from_str_radix(f, 16).map_err(|_| errno(libc::EINVAL))
    };
    Ok((next()?, next()?))
}

/// The device named by a write's data (`"dddd:bb:ss.f"`, optionally with a newline).
fn data_device(data: &[u8]) -> io::Result<PciAddress> {
    let text = std::str::from_utf8(data).map_err(|_| errno(libc::ENODEV))?;
    parse_device_name(text.trim_end_matches('\n')).ok_or_else(|| errno(libc::ENODEV))
}

impl SimulatedKernel {
    /// Attach to the tree of `sysfs`: create `.virtpci-sim/` if needed and learn native
    /// drivers from the devices bound now (see the module documentation).
    pub fn attach(sysfs: &Sysfs) -> Result<SimulatedKernel> {
        SimulatedKernel::attach_inner(sysfs, None)
    }

    /// [`attach`](Self::attach), calling `hook` after every change made to the tree from now
    /// on (the attachment's own included).
    pub fn attach_with_step_hook(sysfs: &Sysfs, hook: StepHook) -> Result<SimulatedKernel> {
        SimulatedKernel::attach_inner(sysfs, Some(hook))
    }

    fn attach_inner(sysfs: &Sysfs, step_hook: Option<StepHook>) -> Result<SimulatedKernel> {
        let kernel = SimulatedKernel {
            root: sysfs.root().to_path_buf(),
            lock: Mutex::new(SimState::default()),
            step_hook,
        };
        let sim_dir = kernel.root.join(SIM_DIR);
        if fs::symlink_metadata(&sim_dir).is_ok_and(|m| !m.is_dir()) {
            return Err(Error::internal(format!(
                "'{}' exists and is not a directory",
                sim_dir.display()
            )));
        }
        fs::create_dir_all(&sim_dir)
            .map_err(|e| Error::system(format!("Failed to create '{}'", sim_dir.display()), &e))?;
        kernel.learn(sysfs)?;
        Ok(kernel)
    }

    /// Learn native drivers from the devices bound now to a driver that is not a stub; rewrite
    /// the rule file when something was added. Returns the number of rules added.
    pub fn learn(&self, sysfs: &Sysfs) -> Result<usize> {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let _flock = self.flock()?;
        let mut rules = self.native_rules()?;
        let before = rules.len();
        for addr in list_devices(sysfs)? {
            let Ok(Some(driver)) = current_driver(sysfs, &addr) else {
                continue;
            };
            if is_stub_driver(&driver) {
                continue;
            }
            let Ok((vendor, device)) = read_ids(sysfs, &addr) else {
                continue;
            };
            rules.insert(IdRule {
                driver,
                vendor,
                device,
            });
        }
        let added = rules.len() - before;
        if added > 0 || !self.root.join(NATIVE_DRIVERS_FILE).exists() {
            self.store_rules(
                NATIVE_DRIVERS_FILE,
                &rules,
                "virtpci simulated kernel: native driver of each vendor:device",
            )?;
        }
        Ok(added)
    }

    fn flock(&self) -> Result<fs::File> {
        let path = self.root.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| Error::system(format!("Failed to open '{}'", path.display()), &e))?;
        flock(&file, FlockOperation::LockExclusive).map_err(|e| {
            Error::system(format!("Failed to lock '{}'", path.display()), &e.into())
        })?;
        Ok(file)
    }

    fn read_rules(&self, rel: &str) -> Result<BTreeSet<IdRule>> {
        let path = self.root.join(rel);
        match fs::read_to_string(&path) {
            Ok(text) => parse_rules(&text, &path.display().to_string()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BTreeSet::new()),
            Err(e) => Err(Error::system(
                format!("Failed to read '{}'", path.display()),
                &e,
            )),
        }
    }

    fn store_rules(&self, rel: &str, rules: &BTreeSet<IdRule>, header: &str) -> Result<()> {
        let path = self.root.join(rel);
        let tmp = self.root.join(format!("{rel}.tmp"));
        let text = format_rules(rules, header);
        let io = || -> io::Result<()> {
            let mut f = OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            self.step(&format!("write {rel}.tmp"));
            fs::rename(&tmp, &path)?;
            self.step(&format!("rename {rel}.tmp {rel}"));
            Ok(())
        };
        io().map_err(|e| Error::system(format!("Failed to write '{}'", path.display()), &e))
    }

    /// Tell the step hook that `what` was done.
    fn step(&self, what: &str) {
        if let Some(hook) = &self.step_hook {
            hook(what);
        }
    }

    /// The native driver rules known now.
    pub fn native_rules(&self) -> Result<BTreeSet<IdRule>> {
        self.read_rules(NATIVE_DRIVERS_FILE)
    }

    /// The dynamic ids added with `new_id` and not removed.
    pub fn dynamic_ids(&self) -> Result<BTreeSet<IdRule>> {
        self.read_rules(DYNAMIC_IDS_FILE)
    }

    /// The driver a probe without override would bind `addr` to (first dynamic id, then the
    /// first native rule, each in driver-name order), loaded or not; `None` when unknown.
    pub fn native_driver(&self, sysfs: &Sysfs, addr: &PciAddress) -> Result<Option<String>> {
        let (vendor, device) = read_ids(sysfs, addr)
            .map_err(|e| sysfs.io_error("Failed to read ids of", &dev(addr, ""), e))?;
        let dynamic = self.dynamic_ids()?;
        let native = self.native_rules()?;
        Ok(dynamic
            .iter()
            .chain(native.iter())
            .find(|r| r.vendor == vendor && r.device == device)
            .map(|r| r.driver.clone()))
    }

    /// The writes carried out so far by this simulator object, one line each
    /// (`kind path data`).
    pub fn applied_writes(&self) -> Vec<String> {
        self.lock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .applied
            .clone()
    }

    /// How many times `addr` was reset through this simulator object.
    pub fn resets(&self, addr: &PciAddress) -> u64 {
        self.lock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .resets
            .get(addr)
            .copied()
            .unwrap_or(0)
    }

    fn apply(&self, sysfs: &Sysfs, w: &SysfsWrite<'_>, state: &mut SimState) -> io::Result<()> {
        let path = w.path;
        if path == DRIVERS_PROBE {
            return self.probe(sysfs, &data_device(w.data)?);
        }
        if let Some(rest) = path.strip_prefix(&format!("{DRIVERS_DIR}/")) {
            let (driver, file) = rest.split_once('/').ok_or_else(|| errno(libc::EACCES))?;
            if !is_valid_driver_name(driver) || file.contains('/') {
                return Err(errno(libc::EACCES));
            }
            if !driver_exists(sysfs, driver)? {
                return Err(errno(libc::ENOENT));
            }
            return match file {
                "bind" => self.bind(sysfs, &data_device(w.data)?, driver),
                "unbind" => self.unbind(sysfs, &data_device(w.data)?, driver),
                "new_id" => self.new_id(sysfs, driver, w.data),
                "remove_id" => self.remove_id(driver, w.data),
                _ => Err(errno(libc::EACCES)),
            };
        }
        if let Some(rest) = path.strip_prefix(&format!("{DEVICES_DIR}/")) {
            let (name, file) = rest.split_once('/').ok_or_else(|| errno(libc::EACCES))?;
            let addr = parse_device_name(name).ok_or_else(|| errno(libc::ENOENT))?;
            let dir = device_dir(sysfs, &addr)?;
            return match file {
                "driver_override" => self.set_override(sysfs, &addr, &dir, w.data),
                "driver/unbind" => {
                    let driver =
                        current_driver(sysfs, &addr)?.ok_or_else(|| errno(libc::ENOENT))?;
                    self.unbind(sysfs, &data_device(w.data)?, &driver)
                }
                "reset" => {
                    let file = format!("{dir}/reset");
                    if !self.root.join(&file).is_file() {
                        return Err(errno(libc::ENOENT));
                    }
                    let text = std::str::from_utf8(w.data).map_err(|_| errno(libc::EINVAL))?;
                    if text.trim_end_matches('\n') != "1" {
                        return Err(errno(libc::EINVAL));
                    }
                    *state.resets.entry(addr).or_insert(0) += 1;
                    Ok(())
                }
                "config" => {
                    let file = OpenOptions::new()
                        .write(true)
                        .custom_flags(libc::O_NOFOLLOW)
                        .open(self.root.join(format!("{dir}/config")))?;
                    let size = file.metadata()?.len();
                    if w.offset + w.data.len() as u64 > size {
                        return Err(errno(libc::EINVAL));
                    }
                    file.write_all_at(w.data, w.offset)
                }
                _ => Err(errno(libc::EACCES)),
            };
        }
        Err(errno(libc::EACCES))
    }

    fn set_override(
        &self,
        _sysfs: &Sysfs,
        _addr: &PciAddress,
        dir: &str,
        data: &[u8],
    ) -> io::Result<()> {
        if data.len() >= 4096 {
            return Err(errno(libc::EINVAL));
        }
        let value = data.split(|&b| b == b'\n').next().unwrap_or(&[]);
        let content: Vec<u8> = if value.is_empty() {
            b"(null)\n".to_vec()
        } else {
            let mut v = value.to_vec();
            v.push(b'\n');
            v
        };
        let path = self.root.join(format!("{dir}/driver_override"));
        if !fs::symlink_metadata(&path)?.is_file() {
            return Err(errno(libc::EACCES));
        }
        let mut f = OpenOptions::new()
            .write(true)
            .truncate(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)?;
        self.step(&format!("truncate {dir}/driver_override"));
        f.write_all(&content)?;
        self.step(&format!("write {dir}/driver_override"));
        Ok(())
    }

    fn matches(
        &self,
        driver: &str,
        overridden: &Option<String>,
        ids: (u16, u16),
        rules: &[&BTreeSet<IdRule>],
    ) -> bool {
        match overridden {
            Some(o) => o == driver,
            None => rules.iter().any(|set| {
                set.iter()
                    .any(|r| r.driver == driver && r.vendor == ids.0 && r.device == ids.1)
            }),
        }
    }

    fn bind(&self, sysfs: &Sysfs, addr: &PciAddress, driver: &str) -> io::Result<()> {
        let dir = device_dir(sysfs, addr).map_err(|_| errno(libc::ENODEV))?;
        let ids = read_ids(sysfs, addr)?;
        let overridden = read_override(sysfs, addr)?;
        let dynamic = self.dynamic_ids().map_err(to_io)?;
        let native = self.native_rules().map_err(to_io)?;
        if !self.matches(driver, &overridden, ids, &[&dynamic, &native]) {
            return Err(errno(libc::ENODEV));
        }
        if current_driver(sysfs, addr)?.is_some() {
            return Err(errno(libc::EBUSY));
        }
        self.attach_links(sysfs, addr, &dir, driver)
    }

    fn attach_links(
        &self,
        sysfs: &Sysfs,
        addr: &PciAddress,
        dir: &str,
        driver: &str,
    ) -> io::Result<()> {
        let drv_dir = sysfs.resolve_userland(&format!("{DRIVERS_DIR}/{driver}"), true)?;
        std::os::unix::fs::symlink(
            relative_link(dir, &drv_dir),
            self.root.join(format!("{dir}/driver")),
        )?;
        self.step(&format!("symlink {dir}/driver"));
        let back = self.root.join(format!("{drv_dir}/{addr}"));
        if let Err(e) = std::os::unix::fs::symlink(relative_link(&drv_dir, dir), &back) {
            let _ = fs::remove_file(self.root.join(format!("{dir}/driver")));
            return Err(e);
        }
        self.step(&format!("symlink {drv_dir}/{addr}"));
        if driver == VFIO_PCI {
            fs::create_dir_all(self.root.join(format!("{dir}/vfio-dev/vfio0")))?;
            self.step(&format!("mkdir {dir}/vfio-dev/vfio0"));
        }
        Ok(())
    }

    fn unbind(&self, sysfs: &Sysfs, addr: &PciAddress, driver: &str) -> io::Result<()> {
        let dir = device_dir(sysfs, addr).map_err(|_| errno(libc::ENODEV))?;
        if current_driver(sysfs, addr)?.as_deref() != Some(driver) {
            return Err(errno(libc::ENODEV));
        }
        let drv_dir = sysfs.resolve_userland(&format!("{DRIVERS_DIR}/{driver}"), true)?;
        fs::remove_file(self.root.join(format!("{dir}/driver")))?;
        self.step(&format!("unlink {dir}/driver"));
        let back = self.root.join(format!("{drv_dir}/{addr}"));
        if fs::symlink_metadata(&back).is_ok_and(|m| m.file_type().is_symlink()) {
            fs::remove_file(back)?;
            self.step(&format!("unlink {drv_dir}/{addr}"));
        }
        let vfio = self.root.join(format!("{dir}/vfio-dev"));
        if fs::symlink_metadata(&vfio).is_ok_and(|m| m.is_dir()) {
            fs::remove_dir_all(vfio)?;
            self.step(&format!("rmdir {dir}/vfio-dev"));
        }
        Ok(())
    }

    fn probe(&self, sysfs: &Sysfs, addr: &PciAddress) -> io::Result<()> {
        let dir = device_dir(sysfs, addr).map_err(|_| errno(libc::ENODEV))?;
        if current_driver(sysfs, addr)?.is_some() {
            return Ok(());
        }
        let overridden = read_override(sysfs, addr)?;
        let ids = read_ids(sysfs, addr)?;
        let dynamic = self.dynamic_ids().map_err(to_io)?;
        let native = self.native_rules().map_err(to_io)?;
        let candidate: Option<String> = match &overridden {
            Some(o) => Some(o.clone()),
            None => dynamic
                .iter()
                .chain(native.iter())
                .find(|r| r.vendor == ids.0 && r.device == ids.1)
                .map(|r| r.driver.clone()),
        };
        match candidate {
            Some(driver) if driver_exists(sysfs, &driver)? => {
                self.attach_links(sysfs, addr, &dir, &driver)
            }
            _ => Ok(()),
        }
    }

    fn new_id(&self, sysfs: &Sysfs, driver: &str, data: &[u8]) -> io::Result<()> {
        let (vendor, device) = parse_id_pair(data)?;
        let rule = IdRule {
            driver: driver.to_string(),
            vendor,
            device,
        };
        let mut dynamic = self.dynamic_ids().map_err(to_io)?;
        if self.native_rules().map_err(to_io)?.contains(&rule) || dynamic.contains(&rule) {
            return Err(errno(libc::EEXIST));
        }
        dynamic.insert(rule);
        self.store_rules(
            DYNAMIC_IDS_FILE,
            &dynamic,
            "virtpci simulated kernel: dynamic ids",
        )
        .map_err(to_io)?;
        // driver_attach: every unbound device the driver now matches.
        for addr in list_devices(sysfs).map_err(to_io)? {
            if current_driver(sysfs, &addr)?.is_some() {
                continue;
            }
            let ids = read_ids(sysfs, &addr)?;
            let overridden = read_override(sysfs, &addr)?;
            let matches = match &overridden {
                Some(o) => o == driver,
                None => ids == (vendor, device),
            };
            if matches {
                let dir = device_dir(sysfs, &addr)?;
                self.attach_links(sysfs, &addr, &dir, driver)?;
            }
        }
        Ok(())
    }

    fn remove_id(&self, driver: &str, data: &[u8]) -> io::Result<()> {
        let (vendor, device) = parse_id_pair(data)?;
        let mut dynamic = self.dynamic_ids().map_err(to_io)?;
        let rule = IdRule {
            driver: driver.to_string(),
            vendor,
            device,
        };
        if !dynamic.remove(&rule) {
            return Err(errno(libc::ENODEV));
        }
        self.store_rules(
            DYNAMIC_IDS_FILE,
            &dynamic,
            "virtpci simulated kernel: dynamic ids",
        )
        .map_err(to_io)
    }
}

impl SysfsWriter for SimulatedKernel {
    fn write(&self, sysfs: &Sysfs, w: &SysfsWrite<'_>) -> io::Result<()> {
        let mut state = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let _flock = self.flock().map_err(to_io)?;
        let result = self.apply(sysfs, w, &mut state);
        if result.is_ok() {
            let data = if w.kind == WriteKind::Config {
                format!("{} bytes at {:#x}", w.data.len(), w.offset)
            } else {
                String::from_utf8_lossy(w.data).trim_end().to_string()
            };
            state
                .applied
                .push(format!("{} {} {}", w.kind, w.path, data));
        }
        result
    }
}

fn to_io(e: Error) -> io::Error {
    io::Error::other(e.message)
}

fn dev(addr: &PciAddress, attr: &str) -> String {
    if attr.is_empty() {
        format!("{DEVICES_DIR}/{addr}")
    } else {
        format!("{DEVICES_DIR}/{addr}/{attr}")
    }
}

/// The device's real directory (root-relative), checked to exist beneath the root.
fn device_dir(sysfs: &Sysfs, addr: &PciAddress) -> io::Result<String> {
    sysfs.resolve_userland(&dev(addr, ""), true)
}

fn driver_exists(sysfs: &Sysfs, driver: &str) -> io::Result<bool> {
    match sysfs.resolve_userland(&format!("{DRIVERS_DIR}/{driver}"), true) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

fn list_devices(sysfs: &Sysfs) -> Result<Vec<PciAddress>> {
    let mut out: Vec<PciAddress> = sysfs
        .read_dir_opt(DEVICES_DIR)?
        .unwrap_or_default()
        .iter()
        .filter_map(|e| parse_device_name(&e.name))
        .collect();
    out.sort();
    Ok(out)
}

fn current_driver(sysfs: &Sysfs, addr: &PciAddress) -> io::Result<Option<String>> {
    match sysfs.read_link(&dev(addr, "driver")) {
        Ok(None) => Ok(None),
        Ok(Some(t)) => {
            let name = t.trim_end_matches('/').rsplit('/').next().unwrap_or("");
            if is_valid_driver_name(name) {
                Ok(Some(name.to_string()))
            } else {
                Err(errno(libc::EINVAL))
            }
        }
        Err(e) => Err(io::Error::other(e.message)),
    }
}

fn read_override(sysfs: &Sysfs, addr: &PciAddress) -> io::Result<Option<String>> {
    match sysfs.read_attr_opt(&dev(addr, "driver_override")) {
        Ok(None) => Ok(None),
        Ok(Some(t)) if t.is_empty() || t == "(null)" => Ok(None),
        Ok(Some(t)) => Ok(Some(t)),
        Err(e) => Err(io::Error::other(e.message)),
    }
}

fn read_ids(sysfs: &Sysfs, addr: &PciAddress) -> io::Result<(u16, u16)> {
    let one = |attr: &str| -> io::Result<u16> {
        let text = sysfs
            .read_attr(&dev(addr, attr))
            .map_err(|e| io::Error::other(e.message))?;
        let digits = text.strip_prefix("0x").ok_or_else(|| errno(libc::EINVAL))?;
        u16::from_str_radix(digits, 16).map_err(|_| errno(libc::EINVAL))
    };
    Ok((one("vendor")?, one("device")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_and_format() {
        let text = "# comment\ne1000e 8086 10d3\n\nsnd_hda_intel 10de 228b # audio\n";
        let rules = parse_rules(text, "x").unwrap();
        assert_eq!(rules.len(), 2);
        let again = parse_rules(&format_rules(&rules, "h"), "x").unwrap();
        assert_eq!(rules, again);
        assert!(parse_rules("e1000e 8086\n", "f")
            .unwrap_err()
            .message
            .contains("line 1"));
        assert!(parse_rules("../x 8086 10d3\n", "f").is_err());
    }

    #[test]
    fn id_pairs() {
        assert_eq!(parse_id_pair(b"8086 10d3\n").unwrap(), (0x8086, 0x10d3));
        assert!(parse_id_pair(b"8086").is_err());
        assert!(parse_id_pair(b"zz 10d3").is_err());
    }
}
