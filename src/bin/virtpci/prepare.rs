//! `virtpci prepare` and `virtpci reattach`: give a domain's PCI host devices to it, and back,
//! on the real host or on a simulated one.
//!
//! Crash hooks for tests: see `test_hooks.rs` (a build with the `test-hooks` feature only).

use clap::Args;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use virtpci::error::quote;
use virtpci::host::Host;
use virtpci::hostdev::{ProcUsage, ResetTimings, FORCE, LEGACY_GROUP_CHECK};
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
    /// Print, per hostdev, the driver it is bound to and (with iommufd) its VFIO device cdev,
    /// as JSON.
    #[arg(long)]
    pub json: bool,
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

#[cfg(feature = "test-hooks")]
use crate::test_hooks::simulated_host;

/// The simulated host at `root`.
#[cfg(not(feature = "test-hooks"))]
fn simulated_host(root: &Path) -> Result<Host> {
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
        let host = Host::open(args.sysfs.as_deref())?;
        let state = args
            .state
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
        Ok((host, state, None))
    }
}

pub fn read_input(file: &str) -> Result<String> {
    if file == "-" {
        io::read_to_string(io::stdin())
            .map_err(|e| Error::system("Failed to read standard input", &e))
    } else {
        std::fs::read_to_string(Path::new(file))
            .map_err(|e| Error::system(format!("Failed to read '{}'", quote(file)), &e))
    }
}

pub fn run_prepare(args: PrepareArgs) -> Result<()> {
    let xml = read_input(&args.file)?;
    let mgr = open_manager(&args.host)?;
    mgr.prepare_domain(&args.driver, &xml, args.flags())?;
    if args.json {
        return print_prepared_json(&mgr, &xml);
    }
    print_owned(&mgr, &xml)
}

/// Per hostdev: the driver it is bound to now and, for an iommufd hostdev, its VFIO device
/// cdev (sysfs directory and node).
fn print_prepared_json(mgr: &HostdevManager, xml: &str) -> Result<()> {
    let d = virtpci::hostdev::domain_xml::hostdevs_from_domain_xml(xml)?;
    let mut devices = Vec::new();
    for h in &d.hostdevs {
        let driver = mgr.host().driver(&h.source)?;
        let cdev = if h.iommufd {
            let c = mgr.host().vfio_cdev(&h.source)?;
            serde_json::json!({
                "name": c.name,
                "path": c.node.display().to_string(),
                "sysfs": c.sysfs_dir.display().to_string(),
            })
        } else {
            serde_json::Value::Null
        };
        devices.push(serde_json::json!({
            "source": h.source.to_string(),
            "driver": driver,
            "iommufd": h.iommufd,
            "cdev": cdev,
        }));
    }
    let doc = serde_json::json!({ "hostdevs": devices });
    crate::groups::write_stdout(&(serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"))
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
