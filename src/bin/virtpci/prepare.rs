//! `virtpci prepare` and `virtpci reattach`: give a domain's PCI host devices to it, and back,
//! on the real host or on a simulated one.
//!
//! Test hooks (only with `--simulate`): `VIRTPCI_TEST_ABORT_AFTER_WRITES=K` aborts the process
//! (as `kill -9` would: no cleanup) right after the K-th sysfs write, or before the first one
//! when K is 0; `VIRTPCI_TEST_ABORT_AFTER_STEPS=S` aborts right after the S-th change the
//! simulated kernel makes to the tree (a write takes several: links, files, its record), so in
//! the middle of a write; `VIRTPCI_TEST_WRITE_DELAY_US=N` sleeps N µs before each write, so that
//! a harness can kill the process at random points.

use clap::Args;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use virtpci::host::{Host, SimulatedKernel, Sysfs, SysfsWrite, SysfsWriter};
use virtpci::hostdev::{ProcUsage, ResetTimings, FORCE, LEGACY_GROUP_CHECK};
use virtpci::{Error, HostdevManager, Result};

/// The one reader of a domain file or `-` for standard input.
pub use crate::assign::read_input;

/// The state directory of a real host.
pub const DEFAULT_STATE_DIR: &str = "/run/virtpci/hostdevmgr";
/// The state directory of a simulated tree, relative to its root.
pub const SIMULATED_STATE_DIR: &str = ".virtpci-sim/hostdevmgr";

#[derive(Args)]
pub struct TargetArgs {
    /// The sysfs root (default /sys).
    #[arg(long, value_name = "ROOT")]
    pub sysfs: Option<PathBuf>,
    /// Carry writes out with the simulated kernel on the tree at --sysfs (required then).
    /// Mounts and routes are read from ROOT/.virtpci-sim/proc/.
    #[arg(long)]
    pub simulate: bool,
    /// The state directory (default /run/virtpci/hostdevmgr, or ROOT/.virtpci-sim/hostdevmgr
    /// with --simulate).
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
}

#[derive(Args)]
pub struct PrepareArgs {
    #[command(flatten)]
    pub host: TargetArgs,
    /// The daemon driver name recorded as the devices' user.
    #[arg(long, value_name = "NAME", default_value = "virtpci")]
    pub driver: String,
    /// libvirt 9.0's group rule: only refuse groups another domain uses.
    #[arg(long)]
    pub legacy_group_check: bool,
    /// Detach devices the host needs (mounted disks, the default route's NIC).
    #[arg(long)]
    pub force: bool,
    /// The domain XML file, or - for standard input.
    pub file: String,
}

#[derive(Args)]
pub struct ReattachArgs {
    #[command(flatten)]
    pub host: TargetArgs,
    /// The daemon driver name the devices were prepared for.
    #[arg(long, value_name = "NAME", default_value = "virtpci")]
    pub driver: String,
    /// The domain XML file, or - for standard input.
    pub file: String,
}

impl PrepareArgs {
    pub fn flags(&self) -> u32 {
        (if self.legacy_group_check {
            LEGACY_GROUP_CHECK
        } else {
            0
        }) | (if self.force { FORCE } else { 0 })
    }
}

/// The simulated kernel behind the test hooks.
#[derive(Debug)]
struct HookedKernel {
    kernel: SimulatedKernel,
    done: AtomicU64,
    abort_after: Option<u64>,
    delay: Duration,
}

impl SysfsWriter for HookedKernel {
    fn keeps_vf_net(&self) -> bool {
        self.kernel.keeps_vf_net()
    }

    fn write(&self, sysfs: &Sysfs, write: &SysfsWrite<'_>) -> io::Result<()> {
        if self.abort_after == Some(0) {
            std::process::abort();
        }
        std::thread::sleep(self.delay);
        let result = self.kernel.write(sysfs, write);
        let n = self.done.fetch_add(1, Ordering::SeqCst) + 1;
        if self.abort_after == Some(n) {
            std::process::abort();
        }
        result
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Open the host and its manager as the options say.
pub fn open_manager(args: &TargetArgs) -> Result<HostdevManager> {
    let (host, state_dir, simulated_root) = open_host(args)?;
    let mut mgr = HostdevManager::new(Arc::new(host), &state_dir)?
        .with_logger(Arc::new(|m: &str| eprintln!("warning: {m}")));
    if let Some(root) = simulated_root {
        mgr = mgr
            .with_usage(Box::new(ProcUsage::simulated(&root)))
            .with_reset_timings(ResetTimings::NONE);
    }
    Ok(mgr)
}

/// The host, the state directory, and the root when simulated.
pub fn open_host(args: &TargetArgs) -> Result<(Host, PathBuf, Option<PathBuf>)> {
    if args.simulate {
        let root = args
            .sysfs
            .clone()
            .ok_or_else(|| Error::invalid_arg("--simulate needs --sysfs ROOT"))?;
        let sysfs = Sysfs::open(&root)?;
        let kernel = match env_u64("VIRTPCI_TEST_ABORT_AFTER_STEPS") {
            Some(limit) => {
                let steps = AtomicU64::new(0);
                let hook = move |_: &str| {
                    if steps.fetch_add(1, Ordering::SeqCst) + 1 == limit {
                        std::process::abort();
                    }
                };
                SimulatedKernel::attach_with_step_hook(&sysfs, Arc::new(hook))?
            }
            None => SimulatedKernel::attach(&sysfs)?,
        };
        let hooked = HookedKernel {
            kernel,
            done: AtomicU64::new(0),
            abort_after: env_u64("VIRTPCI_TEST_ABORT_AFTER_WRITES"),
            delay: Duration::from_micros(env_u64("VIRTPCI_TEST_WRITE_DELAY_US").unwrap_or(0)),
        };
        let host = Host::with_writer(Some(&root), Arc::new(hooked))?;
        let state = args
            .state
            .clone()
            .unwrap_or_else(|| root.join(SIMULATED_STATE_DIR));
        Ok((host, state, Some(root)))
    } else {
        let host = Host::open(args.sysfs.as_deref())?;
        let state = args
            .state
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
        Ok((host, state, None))
    }
}

pub fn run_prepare(args: PrepareArgs) -> Result<()> {
    let xml = read_input(&args.file)?;
    let mgr = open_manager(&args.host)?;
    mgr.prepare_domain(&args.driver, &xml, args.flags())?;
    print_owned(&mgr, &xml)
}

pub fn run_reattach(args: ReattachArgs) -> Result<()> {
    let xml = read_input(&args.file)?;
    let mgr = open_manager(&args.host)?;
    mgr.reattach_domain(&args.driver, &xml)?;
    print_owned(&mgr, &xml)
}

/// One line per hostdev: where it is now and who owns it.
fn print_owned(mgr: &HostdevManager, xml: &str) -> Result<()> {
    let d = virtpci::hostdev::domain_xml::hostdevs_from_domain_xml(xml)?;
    let book = mgr.book()?;
    let mut out = String::new();
    for h in &d.hostdevs {
        let now = mgr.host().driver(&h.source).unwrap_or(None);
        let owner = match book.active_entry(&h.source) {
            Some(a) => format!("used by {}/{}", a.owner.driver, a.owner.domain),
            None if book.is_inactive(&h.source) => "detached, unused".to_string(),
            None => "not booked".to_string(),
        };
        out.push_str(&format!(
            "{}  {}  {}\n",
            h.source,
            now.as_deref().unwrap_or("(no driver)"),
            owner
        ));
    }
    crate::groups::write_stdout(&out)
}
