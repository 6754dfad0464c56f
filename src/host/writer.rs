//! The one place that writes to sysfs, and fault injection in front of it.
//!
//! [`Host`](super::Host) builds a [`SysfsWrite`] for every change it makes and hands it to its
//! [`SysfsWriter`]: [`KernelWriter`] writes the file (`O_WRONLY | O_NOFOLLOW`, resolved beneath
//! the root, one `write(2)` as sysfs wants), [`SimulatedKernel`](super::SimulatedKernel)
//! carries the write out on the tree as the kernel would. Before the writer runs, [`Faults`]
//! may turn the write into a failure with a chosen errno; such a write changes nothing.

use super::sysfs::Sysfs;
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What a write does. Each has its own file in sysfs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WriteKind {
    /// `bus/pci/devices/<dev>/driver_override`: a driver name, or `"\n"` to clear.
    DriverOverride,
    /// `bus/pci/drivers/<drv>/bind`: `<dev>`.
    Bind,
    /// `bus/pci/devices/<dev>/driver/unbind` or `bus/pci/drivers/<drv>/unbind`: `<dev>`.
    Unbind,
    /// `bus/pci/drivers/<drv>/new_id`: `"vvvv dddd"`.
    NewId,
    /// `bus/pci/drivers/<drv>/remove_id`: `"vvvv dddd"`.
    RemoveId,
    /// `bus/pci/drivers_probe`: `<dev>`.
    DriversProbe,
    /// `bus/pci/devices/<dev>/reset`: `"1"`.
    Reset,
    /// `bus/pci/devices/<dev>/config` at an offset: raw bytes.
    Config,
    /// A VF's MAC and VLAN set through its PF: `"INDEX MAC VLAN"` to the PF's
    /// `super::vfnet::VF_NET_ATTR`. Only the simulated kernel carries it out (a real host
    /// needs netlink, not done yet; [`KernelWriter`] refuses it with `EOPNOTSUPP`).
    VfNet,
    /// Loading a kernel module (`modprobe MODULE` on a real host): the module's name.
    LoadModule,
    /// `bus/pci/devices/<dev>/reset_method`: the reset methods to use, in order, or `default`.
    ResetMethod,
}

impl WriteKind {
    pub(crate) const ALL: [WriteKind; 11] = [
        WriteKind::DriverOverride,
        WriteKind::Bind,
        WriteKind::Unbind,
        WriteKind::NewId,
        WriteKind::RemoveId,
        WriteKind::DriversProbe,
        WriteKind::Reset,
        WriteKind::Config,
        WriteKind::VfNet,
        WriteKind::LoadModule,
        WriteKind::ResetMethod,
    ];

    /// The name used in the C API, the CLI and the simulator's log.
    pub fn name(self) -> &'static str {
        match self {
            WriteKind::DriverOverride => "driver_override",
            WriteKind::Bind => "bind",
            WriteKind::Unbind => "unbind",
            WriteKind::NewId => "new_id",
            WriteKind::RemoveId => "remove_id",
            WriteKind::DriversProbe => "drivers_probe",
            WriteKind::Reset => "reset",
            WriteKind::Config => "config",
            WriteKind::VfNet => "vf_net",
            WriteKind::LoadModule => "load_module",
            WriteKind::ResetMethod => "reset_method",
        }
    }

    pub fn from_name(name: &str) -> Option<WriteKind> {
        WriteKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl fmt::Display for WriteKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One write: its kind, the root-relative file, the bytes and (for config space) the offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SysfsWrite<'a> {
    pub kind: WriteKind,
    pub path: &'a str,
    pub data: &'a [u8],
    pub offset: u64,
}

/// Whatever carries out writes. Implementations must be usable from several threads.
pub trait SysfsWriter: Send + Sync + fmt::Debug {
    /// Perform `write` on the tree of `sysfs`. An error means nothing changed.
    fn write(&self, sysfs: &Sysfs, write: &SysfsWrite<'_>) -> io::Result<()>;

    /// Whether [`WriteKind::VfNet`] writes are carried out, and the MAC/VLAN table of the
    /// simulated kernel (`.virtpci-sim/vf-net`) is the truth: only a simulated kernel, or a
    /// writer wrapping one, says yes. The running kernel is asked through netlink instead
    /// (`host::netlink`), never through a writer.
    fn keeps_vf_net(&self) -> bool {
        false
    }

    /// Load `module` from the modules directory `modules_dir` (the module name is checked).
    /// An error means the module is not loaded. The real kernel's: modprobe.
    fn load_module(&self, _sysfs: &Sysfs, modules_dir: &Path, module: &str) -> io::Result<()> {
        super::modules::run_modprobe(modules_dir, module)
    }

    /// Where the rest of the host lives: `/proc`, `/dev` and the modules directory of the
    /// running kernel, and whether resets wait as on hardware. A simulated kernel keeps its own
    /// inside the tree.
    fn environment(&self, _sysfs: &Sysfs) -> Environment {
        Environment::system()
    }
}

/// The parts of a host outside sysfs, and how long resets wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    /// The proc directory: mounts and routes (what the host needs).
    pub proc_dir: PathBuf,
    /// The device directory: `/dev/iommu`, `/dev/vfio/devices/vfioN`.
    pub(crate) dev_dir: PathBuf,
    /// The default modules directory (`modules.alias`, `modules.dep`).
    pub modules_dir: PathBuf,
    /// Whether PM and bus resets wait as libvirt does (10 ms, 200 ms) or not at all.
    pub(crate) reset_waits: bool,
}

impl Environment {
    /// The running system's.
    pub fn system() -> Environment {
        Environment {
            proc_dir: PathBuf::from("/proc"),
            dev_dir: PathBuf::from("/dev"),
            modules_dir: super::modules::default_modules_dir(),
            reset_waits: true,
        }
    }
}

/// The real writer: opens the file beneath the root with `O_WRONLY | O_NOFOLLOW` and writes
/// the whole value in one call (sysfs attributes take their value in a single write).
#[derive(Debug, Default, Clone, Copy)]
pub struct KernelWriter;

impl SysfsWriter for KernelWriter {
    fn write(&self, sysfs: &Sysfs, write: &SysfsWrite<'_>) -> io::Result<()> {
        if matches!(write.kind, WriteKind::VfNet | WriteKind::LoadModule) {
            return Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP));
        }
        // Writing the kernel's values into a copy of sysfs corrupts the copy (a simulated tree
        // read "\nfio-pci" from driver_override afterwards) and moves nothing.
        if let Some(why) = real_write_refusal(sysfs.root()) {
            return Err(io::Error::other(why));
        }
        let file = sysfs.open_for_write(write.path)?;
        let written = file.write_at(write.data, write.offset)?;
        if written != write.data.len() {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        Ok(())
    }
}

/// The filesystem magic number of sysfs (`SYSFS_MAGIC` in the kernel's `linux/magic.h`).
pub(crate) const SYSFS_MAGIC: u64 = 0x6265_6572;

/// Why the real kernel's writes are refused under `root`, or `None` when `root` is a sysfs
/// mount: a tree that holds the simulator's directory, or any other filesystem, is refused.
pub fn real_write_refusal(root: &Path) -> Option<String> {
    let shown = root.display();
    if root.join(super::simulator::SIM_DIR).is_dir() {
        return Some(format!(
            "'{shown}' is a simulated tree (it holds {}/), not a sysfs mount: real writes are \
             refused there; open it with the simulated kernel",
            super::simulator::SIM_DIR
        ));
    }
    match rustix::fs::statfs(root) {
        Ok(fs) if fs.f_type as u64 == SYSFS_MAGIC => None,
        Ok(fs) => Some(format!(
            "'{shown}' is not a sysfs mount (filesystem type 0x{:x}, sysfs is 0x{SYSFS_MAGIC:x}): \
             real writes are refused there; open a sysfs-shaped tree with the simulated kernel",
            fs.f_type as u64
        )),
        Err(e) => Some(format!(
            "cannot tell whether '{shown}' is a sysfs mount: {}",
            io::Error::from(e)
        )),
    }
}

/// One armed fault: the `nth` (1-based) write of `kind` (any kind when `None`) counted from
/// the moment it was armed fails with `errno`, without reaching the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub kind: Option<WriteKind>,
    pub nth: u64,
    pub(crate) errno: i32,
}

#[derive(Debug, Default)]
struct FaultState {
    /// Writes attempted, per kind, since the host was opened (failed ones included).
    attempted: HashMap<WriteKind, u64>,
    attempted_total: u64,
    /// Armed faults with the count they wait for.
    armed: Vec<(Fault, u64)>,
    /// Faults that fired.
    fired: u64,
}

/// Counters of attempted writes and the armed faults. Thread-safe.
#[derive(Debug, Default)]
pub struct Faults {
    state: Mutex<FaultState>,
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, FaultState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Arm a fault: the `nth` write of `kind` (of any kind for `None`) from now fails with
    /// `errno`. `nth` 0 is taken as 1.
    pub fn inject(&self, kind: Option<WriteKind>, nth: u64, errno: i32) {
        let mut s = self.lock();
        let base = match kind {
            Some(k) => s.attempted.get(&k).copied().unwrap_or(0),
            None => s.attempted_total,
        };
        s.armed.push((
            Fault {
                kind,
                nth: nth.max(1),
                errno,
            },
            base + nth.max(1),
        ));
    }

    /// Disarm every fault; returns how many were armed and had not fired.
    pub fn clear(&self) -> usize {
        let mut s = self.lock();
        let n = s.armed.len();
        s.armed.clear();
        n
    }

    /// Count a write about to happen; `Err` when an armed fault fires for it.
    pub(crate) fn before_write(&self, kind: WriteKind) -> io::Result<()> {
        let mut s = self.lock();
        let n_kind = {
            let c = s.attempted.entry(kind).or_insert(0);
            *c += 1;
            *c
        };
        s.attempted_total += 1;
        let total = s.attempted_total;
        let hit = s.armed.iter().position(|(f, at)| match f.kind {
            Some(k) => k == kind && *at == n_kind,
            None => *at == total,
        });
        if let Some(i) = hit {
            let (fault, _) = s.armed.remove(i);
            s.fired += 1;
            return Err(io::Error::from_raw_os_error(fault.errno));
        }
        Ok(())
    }

    /// Writes of `kind` attempted so far (including those that failed).
    pub fn attempted(&self, kind: WriteKind) -> u64 {
        self.lock().attempted.get(&kind).copied().unwrap_or(0)
    }

    /// Writes of every kind attempted so far.
    pub fn attempted_total(&self) -> u64 {
        self.lock().attempted_total
    }

    /// Faults armed and not yet fired.
    pub fn armed(&self) -> Vec<Fault> {
        self.lock().armed.iter().map(|(f, _)| *f).collect()
    }

    /// How many faults fired.
    pub fn fired(&self) -> u64 {
        self.lock().fired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nth_write_of_a_kind_fails_once() {
        let f = Faults::default();
        f.before_write(WriteKind::Bind).unwrap();
        f.inject(Some(WriteKind::Bind), 2, libc::EIO);
        f.before_write(WriteKind::Bind).unwrap();
        f.before_write(WriteKind::Unbind).unwrap();
        let e = f.before_write(WriteKind::Bind).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EIO));
        f.before_write(WriteKind::Bind).unwrap();
        assert_eq!(f.attempted(WriteKind::Bind), 4);
        assert_eq!(f.fired(), 1);
    }

    #[test]
    fn any_kind_counts_every_write() {
        let f = Faults::default();
        f.inject(None, 3, libc::ENODEV);
        f.before_write(WriteKind::Bind).unwrap();
        f.before_write(WriteKind::Reset).unwrap();
        assert!(f.before_write(WriteKind::Config).is_err());
        assert!(f.armed().is_empty());
    }
}
