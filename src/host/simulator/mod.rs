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
//!   relative as the kernel writes them; binding to a VFIO driver (vfio-pci or a variant)
//!   also creates `devices/<dev>/vfio-dev/vfioN` (what kernels ≥ 6.1 show and libvirt checks)
//!   and, on a tree whose kernel has VFIO device cdevs, its node (see `vfio_devices.rs`).
//! * `drivers/<drv>/unbind` and `devices/<dev>/driver/unbind`: `ENODEV` unless the device is
//!   bound to that driver; removes both links, `vfio-dev/` and the cdev node.
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
//! * `devices/<pf>/virtpci_vf_net` (`"INDEX MAC VLAN"`, what netlink's RTM_SETLINK with
//!   IFLA_VF_MAC/IFLA_VF_VLAN does on a real PF): `ENODEV` unless the PF has `virtfnINDEX`
//!   and a netdev, `EINVAL` for malformed data; the value is kept in
//!   `.virtpci-sim/vf-net` (replaced by a rename), read with [`SimulatedKernel::vf_net`].
//! * `devices/<dev>/reset_method`: a subset of the offered methods, or `default` (see
//!   `reset_method.rs`).
//!   Any other write: `EACCES`.
//! * Module loading ([`SysfsWriter::load_module`]): a module listed in the modules
//!   directory's `modules.dep` registers its driver (see `kernel_modules.rs`); others fail.
//! * Its own `/proc`, `/dev` and modules directory inside the tree
//!   (`.virtpci-sim/{proc,dev,modules}`), and resets that do not wait
//!   ([`SysfsWriter::environment`]): `/dev/iommu` is `.virtpci-sim/dev/iommu`.
//!
//! Not modelled: `/dev/vfio/<group>`, the real effect of a reset on the device, and
//! `remove`/`rescan`.
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
//!
//! # All or nothing, as in the kernel
//! A write to sysfs is one system call: a process killed with `kill -9` either made it or did
//! not. The simulator carries a write out in the killed process itself, in several steps (a
//! bind creates `driver`, the driver's link back and `vfio-dev/`), so it keeps the same promise
//! itself. `driver_override` is replaced by a rename. A bind, an unbind, a probe that binds and
//! a `new_id` first record themselves in `.virtpci-sim/pending` (also by a rename), then make
//! their changes, then remove the record. Every step may be made twice (a link that is there
//! already is kept, one that is gone already is skipped), so a simulator that takes the lock,
//! when it attaches or before each write, finishes the change whose record it finds: the
//! process that began it died. Before that, a reader may see the change half made. Tests may
//! stop a process between any two steps with [`SimulatedKernel::attach_with_step_hook`].

mod binding;
mod journal;
mod kernel_modules;
mod reset_method;
mod tables;
mod tree;
mod vfio_devices;

use journal::*;
pub use kernel_modules::MODULE_DRIVERS_FILE;
pub use reset_method::RESET_METHODS_FILE;
pub use tables::IdRule;
use tables::*;
use tree::*;
pub use vfio_devices::{SIM_DEV_DIR, SIM_MODULES_DIR};

use super::files::{open_regular, read_regular, Access};
use super::names::{is_stub_driver, is_valid_driver_name, is_vfio_driver, parse_device_name};
use super::sysfs::{relative_link, Sysfs};
use super::vfnet::{format_table, parse_table, VfNet, VF_NET_ATTR, VF_NET_FILE};
use super::writer::{Environment, SysfsWrite, SysfsWriter, WriteKind};
use super::{DEVICES_DIR, DRIVERS_DIR, DRIVERS_PROBE};
use crate::error::{Error, Result};
use crate::pci::PciAddress;
use rustix::fs::{flock, FlockOperation};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The simulator's directory inside the tree.
pub(crate) const SIM_DIR: &str = ".virtpci-sim";
/// Native driver rules, `DRIVER VENDOR DEVICE` per line.
pub(crate) const NATIVE_DRIVERS_FILE: &str = ".virtpci-sim/native-drivers";
/// Dynamic ids added with `new_id`, same format.
pub(crate) const DYNAMIC_IDS_FILE: &str = ".virtpci-sim/dynamic-ids";
const LOCK_FILE: &str = ".virtpci-sim/lock";
/// The change being made, while it is made (see "All or nothing").
pub(crate) const PENDING_FILE: &str = ".virtpci-sim/pending";
const PENDING_TEMP: &str = ".virtpci-sim/pending.tmp";
const OVERRIDE_TEMP: &str = ".virtpci-sim/driver_override.tmp";
const VF_NET_TEMP: &str = ".virtpci-sim/vf-net.tmp";

/// Called after each change the simulator makes to the tree, with a line naming it: lets a
/// test stop the process between two steps of one write.
pub(crate) type StepHook = Arc<dyn Fn(&str) + Send + Sync>;

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

/// The device named by a write's data (`"dddd:bb:ss.f"`, optionally with a newline).
fn data_device(data: &[u8]) -> io::Result<PciAddress> {
    let text = std::str::from_utf8(data).map_err(|_| errno(libc::ENODEV))?;
    parse_device_name(text.trim_end_matches('\n')).ok_or_else(|| errno(libc::ENODEV))
}

impl SimulatedKernel {
    /// Attach to the tree of `sysfs`: create `.virtpci-sim/` if needed, finish a write that a
    /// killed process left half done, and learn native drivers from the devices bound now (see
    /// the module documentation).
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
    pub(crate) fn learn(&self, sysfs: &Sysfs) -> Result<usize> {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let _flock = self.flock()?;
        self.recover(sysfs)?;
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
        let file = open_regular(&path, Access::CreateKeep)
            .map_err(|e| Error::system(format!("Failed to open '{}'", path.display()), &e))?;
        flock(&file, FlockOperation::LockExclusive).map_err(|e| {
            Error::system(format!("Failed to lock '{}'", path.display()), &e.into())
        })?;
        Ok(file)
    }

    /// Tell the step hook that `what` was done.
    fn step(&self, what: &str) {
        if let Some(hook) = &self.step_hook {
            hook(what);
        }
    }

    /// The native driver rules known now.
    pub(crate) fn native_rules(&self) -> Result<BTreeSet<IdRule>> {
        self.read_rules(NATIVE_DRIVERS_FILE)
    }

    /// The dynamic ids added with `new_id` and not removed.
    pub(crate) fn dynamic_ids(&self) -> Result<BTreeSet<IdRule>> {
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
                VF_NET_ATTR => self.set_vf_net(sysfs, &addr, &dir, w.data),
                "reset_method" => self.set_reset_method(&addr, &dir, w.data),
                "config" => {
                    let file =
                        open_regular(&self.root.join(format!("{dir}/config")), Access::Write)?;
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

    /// The MAC and VLAN the PF `pf` holds for its VF `index` (zero MAC, VLAN 0 when never set).
    pub fn vf_net(&self, pf: &PciAddress, index: u32) -> Result<VfNet> {
        Ok(self
            .vf_net_table()?
            .get(&(*pf, index))
            .copied()
            .unwrap_or_default())
    }

    fn vf_net_table(&self) -> Result<BTreeMap<(PciAddress, u32), VfNet>> {
        read_vf_net_table(&self.root)
    }

    fn set_vf_net(&self, sysfs: &Sysfs, pf: &PciAddress, dir: &str, data: &[u8]) -> io::Result<()> {
        let text = std::str::from_utf8(data).map_err(|_| errno(libc::EINVAL))?;
        let (index, net) = VfNet::from_data(text).ok_or_else(|| errno(libc::EINVAL))?;
        let has_vf = self
            .root
            .join(format!("{dir}/virtfn{index}"))
            .symlink_metadata()
            .is_ok();
        let has_netdev = sysfs
            .read_dir_opt(&format!("{dir}/net"))
            .map_err(|e| io::Error::other(e.message))?
            .is_some_and(|entries| !entries.is_empty());
        if !has_vf || !has_netdev {
            return Err(errno(libc::ENODEV));
        }
        let mut table = self.vf_net_table().map_err(to_io)?;
        table.insert((*pf, index), net);
        self.replace_file(VF_NET_TEMP, VF_NET_FILE, format_table(&table).as_bytes())
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
        let rel = format!("{dir}/driver_override");
        if !fs::symlink_metadata(self.root.join(&rel))?.is_file() {
            return Err(errno(libc::EACCES));
        }
        self.replace_file(OVERRIDE_TEMP, &rel, &content)
    }
}

impl SysfsWriter for SimulatedKernel {
    fn keeps_vf_net(&self) -> bool {
        true
    }

    fn load_module(&self, sysfs: &Sysfs, modules_dir: &Path, module: &str) -> io::Result<()> {
        let _state = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let _flock = self.flock().map_err(to_io)?;
        self.recover(sysfs).map_err(to_io)?;
        self.load(sysfs, modules_dir, module)
    }

    /// Inside the tree: `.virtpci-sim/proc`, `.virtpci-sim/dev`, `.virtpci-sim/modules`; resets
    /// do not wait.
    fn environment(&self, _sysfs: &Sysfs) -> Environment {
        Environment {
            proc_dir: self.root.join(SIM_DIR).join("proc"),
            dev_dir: self.root.join(SIM_DEV_DIR),
            modules_dir: self.root.join(SIM_MODULES_DIR),
            reset_waits: false,
        }
    }

    fn write(&self, sysfs: &Sysfs, w: &SysfsWrite<'_>) -> io::Result<()> {
        let mut state = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let _flock = self.flock().map_err(to_io)?;
        self.recover(sysfs).map_err(to_io)?;
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

/// The per-VF MAC/VLAN table of the tree at `root` (empty when never written).
pub(crate) fn read_vf_net_table(root: &Path) -> Result<BTreeMap<(PciAddress, u32), VfNet>> {
    read_table(root, VF_NET_FILE, parse_table)
}

fn to_io(e: Error) -> io::Error {
    io::Error::other(e.message)
}
