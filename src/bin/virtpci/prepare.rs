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
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use virtpci::error::quote;
use virtpci::host::writer::real_write_refusal;
use virtpci::host::{Host, SimulatedKernel, Sysfs, SysfsWrite, SysfsWriter};
use virtpci::hostdev::domain_xml::hostdevs_from_domain_xml;
use virtpci::hostdev::moves::is_vfio_driver;
use virtpci::hostdev::{Action, HostdevSpec, Owner, PrepareOptions, ProcUsage, ResetTimings};
use virtpci::{Error, HostdevManager, PciAddress, Result};

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
    /// Print JSON: {"domain", "driver", "ok", "devices": [{"address", "result", "from",
    /// "to", "message"}], "error"}.
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
    /// Print JSON: {"domain", "driver", "ok", "devices": [{"address", "result", "from",
    /// "to", "message"}], "error"}.
    #[arg(long)]
    pub json: bool,
    /// Give back every device the manager holds, whatever its domain (recovery after a
    /// crash), and the devices detached but unused.
    #[arg(long, conflicts_with = "file")]
    pub all: bool,
    /// The domain XML file, or - for standard input.
    #[arg(required_unless_present = "all")]
    pub file: Option<String>,
}

impl PrepareArgs {
    pub fn options(&self) -> PrepareOptions {
        PrepareOptions {
            legacy_group_check: self.legacy_group_check,
            force: self.force,
        }
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
        let host = crate::groups::open_sysfs(args.sysfs.as_deref())?;
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

/// What happened to one device, as the passthrough commands print it.
pub struct DeviceOutcome {
    pub address: PciAddress,
    /// "detached", "kept", "adopted", "re-attached", "released", "recovered",
    /// "nothing-to-do", "skipped", "not-prepared", "not-re-attached".
    pub result: &'static str,
    pub from: Option<String>,
    pub to: Option<String>,
    /// The line after "ADDR: ".
    pub text: String,
}

impl DeviceOutcome {
    /// Done: anything but a skip or a failure.
    pub fn done(&self) -> bool {
        !matches!(self.result, "skipped" | "not-prepared" | "not-re-attached")
    }
}

/// A driver name as printed: "(no driver)" for none.
pub fn shown(driver: Option<&str>) -> &str {
    driver.unwrap_or("(no driver)")
}

/// Print the outcomes (text or JSON) and turn `error` and skipped devices into the exit
/// status: an error when anything asked was not done.
pub fn report(
    json: bool,
    header: serde_json::Value,
    outcomes: &[DeviceOutcome],
    error: Option<Error>,
    what: &str,
) -> Result<()> {
    let not_done = outcomes.iter().filter(|o| !o.done()).count();
    let error = error.map(crate::cli_words).or_else(|| {
        (not_done > 0).then(|| {
            Error::operation_failed(format!(
                "{not_done} of {} devices were not {what}",
                outcomes.len()
            ))
        })
    });
    let text = if json {
        let mut doc = header;
        doc["ok"] = serde_json::json!(error.is_none());
        doc["devices"] = outcomes
            .iter()
            .map(|o| {
                serde_json::json!({
                    "address": o.address.to_string(),
                    "result": o.result,
                    "from": o.from,
                    "to": o.to,
                    "message": o.text,
                })
            })
            .collect();
        if let Some(e) = &error {
            doc["error"] = serde_json::json!(e.message);
        }
        serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
    } else {
        outcomes
            .iter()
            .map(|o| format!("{}: {}\n", o.address, o.text))
            .collect()
    };
    crate::groups::write_stdout(&text)?;
    match error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

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

pub fn run_prepare(args: PrepareArgs) -> Result<()> {
    let xml = read_input(&args.file)?;
    let d = hostdevs_from_domain_xml(&xml)?;
    let name = d
        .name
        .clone()
        .ok_or_else(|| Error::xml("missing domain name information"))?;
    require_writable(&args.host)?;
    let mgr = open_manager(&args.host)?;
    // What prepare will do to each device, taken just before it does it.
    let plan = mgr.check_domain(&args.driver, &xml, args.options())?;
    let error = mgr.prepare_domain(&args.driver, &xml, args.options()).err();
    let outcomes: Vec<DeviceOutcome> = plan
        .hostdevs
        .iter()
        .map(|h| {
            let now = h.current.driver.clone();
            let (result, text) = match (&error, &h.action) {
                (Some(_), _) => ("not-prepared", "not prepared".to_string()),
                (None, Action::Detach { from }) => (
                    "detached",
                    format!("{} -> {}", shown(from.as_deref()), h.stub),
                ),
                (None, Action::AlreadyOnStub) => {
                    ("kept", format!("already on {}, taken as it is", h.stub))
                }
                (None, Action::FromInactive) => (
                    "kept",
                    format!("on {}, detached earlier (nodedev-detach)", h.stub),
                ),
                (None, Action::Adopt) => (
                    "adopted",
                    format!("unmanaged, on {}: taken as it is", shown(now.as_deref())),
                ),
                (None, Action::Refused) => ("not-prepared", "not prepared".to_string()),
            };
            DeviceOutcome {
                address: h.source,
                result,
                from: now,
                to: error.is_none().then(|| h.stub.clone()),
                text,
            }
        })
        .collect();
    let header = serde_json::json!({"domain": name, "driver": args.driver});
    report(args.json, header, &outcomes, error, "prepared")
}

pub fn run_reattach(args: ReattachArgs) -> Result<()> {
    require_writable(&args.host)?;
    let Some(file) = &args.file else {
        return reattach_all(&args);
    };
    let xml = read_input(file)?;
    let d = hostdevs_from_domain_xml(&xml)?;
    let name = d
        .name
        .clone()
        .ok_or_else(|| Error::xml("missing domain name information"))?;
    let mgr = open_manager(&args.host)?;
    let owner = Owner::new(&args.driver, &name);
    let book = mgr.book()?;
    // The devices the domain holds: those listed, and interrupted ones it left (re-attach
    // recovers those too).
    let mut targets: Vec<PciAddress> = Vec::new();
    let mut outcomes: Vec<DeviceOutcome> = Vec::new();
    let mut other_driver: Option<String> = None;
    for h in &d.hostdevs {
        let now = mgr.host().driver(&h.source).unwrap_or(None);
        let skipped = |text: String| DeviceOutcome {
            address: h.source,
            result: "skipped",
            from: now.clone(),
            to: None,
            text: format!("skipped: {text}"),
        };
        match book.active_entry(&h.source) {
            Some(a) if a.owner == owner => targets.push(h.source),
            Some(a) => {
                if a.owner.domain == name {
                    other_driver = Some(a.owner.driver.clone());
                }
                outcomes.push(skipped(format!(
                    "owned by {}/{}",
                    a.owner.driver, a.owner.domain
                )))
            }
            None if book.is_inactive(&h.source) => outcomes.push(skipped(format!(
                "detached but unused, on {} (nodedev-reattach {} gives it back)",
                shown(now.as_deref()),
                h.source
            ))),
            // Not held and on a host driver: already where re-attach would put it.
            None if !now.as_deref().is_some_and(is_vfio_driver) => outcomes.push(DeviceOutcome {
                result: "nothing-to-do",
                text: format!(
                    "nothing to do: not held by virtpci, on {}",
                    shown(now.as_deref())
                ),
                ..skipped(String::new())
            }),
            None => outcomes.push(skipped(format!(
                "on {}, not held by virtpci (nodedev-reattach {} gives it back)",
                shown(now.as_deref()),
                h.source
            ))),
        }
    }
    for a in book
        .active
        .iter()
        .filter(|a| a.owner == owner && a.interrupted)
    {
        if !targets.contains(&a.entry.address) {
            targets.push(a.entry.address);
        }
    }
    let before: Vec<(PciAddress, Option<String>, bool, bool)> = targets
        .iter()
        .map(|t| {
            let a = book.active_entry(t).expect("listed above");
            let now = mgr.host().driver(t).unwrap_or(None);
            (*t, now, a.entry.managed, a.interrupted)
        })
        .collect();
    let error = mgr.reattach_domain(&args.driver, &xml).err();
    for (addr, from, managed, interrupted) in before {
        outcomes.push(moved_outcome(
            &mgr,
            addr,
            from,
            managed,
            interrupted,
            &error,
        ));
    }
    outcomes.sort_by_key(|o| o.address);
    let error = error.or_else(|| {
        other_driver.map(|d| {
            Error::operation_failed(format!(
                "domain {name}'s devices are held by driver {d}, not {}: use --driver {d}",
                args.driver
            ))
        })
    });
    let header = serde_json::json!({"domain": name, "driver": args.driver});
    report(args.json, header, &outcomes, error, "re-attached")
}

/// The outcome of re-attaching one held device, from where it was before.
fn moved_outcome(
    mgr: &HostdevManager,
    address: PciAddress,
    from: Option<String>,
    managed: bool,
    interrupted: bool,
    error: &Option<Error>,
) -> DeviceOutcome {
    let now = mgr.host().driver(&address).unwrap_or(None);
    let (result, text) = match error {
        Some(_) => ("not-re-attached", "not re-attached".to_string()),
        None if interrupted => (
            "recovered",
            format!(
                "recovered (interrupted): {} -> {}",
                shown(from.as_deref()),
                shown(now.as_deref())
            ),
        ),
        None if !managed => (
            "released",
            format!("released (unmanaged, stays on {})", shown(now.as_deref())),
        ),
        None => (
            "re-attached",
            format!("{} -> {}", shown(from.as_deref()), shown(now.as_deref())),
        ),
    };
    DeviceOutcome {
        address,
        result,
        from,
        to: now,
        text,
    }
}

/// `reattach --all`: every domain's devices, then the devices detached but unused.
fn reattach_all(args: &ReattachArgs) -> Result<()> {
    let mgr = open_manager(&args.host)?;
    let book = mgr.book()?;
    let mut owners: Vec<Owner> = Vec::new();
    for a in &book.active {
        if !owners.contains(&a.owner) {
            owners.push(a.owner.clone());
        }
    }
    let mut outcomes = Vec::new();
    let mut first_error: Option<Error> = None;
    for owner in owners {
        let held: Vec<&virtpci::hostdev::ActiveEntry> =
            book.active.iter().filter(|a| a.owner == owner).collect();
        let specs: Vec<HostdevSpec> = held
            .iter()
            .map(|a| HostdevSpec {
                managed: a.entry.managed,
                ..HostdevSpec::managed(a.entry.address)
            })
            .collect();
        let before: Vec<(PciAddress, Option<String>, bool, bool)> = held
            .iter()
            .map(|a| {
                let now = mgr.host().driver(&a.entry.address).unwrap_or(None);
                (a.entry.address, now, a.entry.managed, a.interrupted)
            })
            .collect();
        let error = mgr
            .reattach_pci_devices(&owner.driver, &owner.domain, &specs)
            .err();
        for (addr, from, managed, interrupted) in before {
            outcomes.push(moved_outcome(
                &mgr,
                addr,
                from,
                managed,
                interrupted,
                &error,
            ));
        }
        first_error = first_error.or(error);
    }
    for e in &book.inactive {
        let from = mgr.host().driver(&e.address).unwrap_or(None);
        let error = mgr.node_device_reattach(&e.address).err();
        outcomes.push(moved_outcome(&mgr, e.address, from, true, false, &error));
        first_error = first_error.or(error);
    }
    let header = serde_json::json!({"all": true});
    report(args.json, header, &outcomes, first_error, "re-attached")
}
