//! Where the passthrough commands act: the sysfs root, real or simulated, its hostdev
//! manager and state directory, and the input file.
//!
//! Crash hooks for tests: see `test_hooks.rs` (a build with the `test-hooks` feature only).

use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;
use virtpci::host::writer::real_write_refusal;
use virtpci::host::Host;
use virtpci::hostdev::{ProcUsage, ResetTimings};
use virtpci::{Error, HostdevManager, Result};

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
    /// The kernel modules directory whose modules.alias and modules.dep choose and load VFIO
    /// drivers (default /lib/modules/$(uname -r), or ROOT/.virtpci-sim/modules with
    /// --simulate).
    #[arg(long, value_name = "DIR")]
    pub modules_dir: Option<PathBuf>,
    /// Never load a kernel module: a missing driver is an error naming the module to load.
    #[arg(long)]
    pub no_module_loading: bool,
}

#[cfg(feature = "test-hooks")]
use crate::test_hooks::simulated_host;

/// The simulated host at `root`.
#[cfg(not(feature = "test-hooks"))]
fn simulated_host(root: &std::path::Path) -> Result<Host> {
    Host::open_simulated(root)
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
    let opened = open_host_only(args)?;
    opened.0.set_modules_dir(args.modules_dir.as_deref());
    opened.0.set_module_loading(!args.no_module_loading);
    Ok(opened)
}

fn open_host_only(args: &TargetArgs) -> Result<(Host, PathBuf, Option<PathBuf>)> {
    if args.simulate {
        let root = args
            .sysfs
            .clone()
            .ok_or_else(|| Error::invalid_arg("--simulate needs --sysfs ROOT"))?;
        let host = simulated_host(&root)?;
        let state = args
            .state
            .clone()
            .unwrap_or_else(|| root.join(SIMULATED_STATE_DIR));
        Ok((host, state, Some(root)))
    } else {
        let host = crate::groups::open_sysfs(args.sysfs.as_deref())?;
        let state = args
            .state
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
        Ok((host, state, None))
    }
}

/// The one reader of a domain file or `-` for standard input.
pub use crate::assign::read_input;

/// Refuse real-mode writes where they would not reach the kernel (see
/// [`real_write_refusal`]), naming the option that simulates them.
pub fn require_writable(args: &TargetArgs) -> Result<()> {
    if args.simulate {
        return Ok(());
    }
    let root = args.sysfs.clone().unwrap_or_else(|| PathBuf::from("/sys"));
    match real_write_refusal(&root) {
        None => Ok(()),
        Some(why) => Err(Error::operation_invalid(format!(
            "{why} (use --simulate for a tree made by `virtpci host materialize`)"
        ))),
    }
}
