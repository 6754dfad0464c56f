//! `virtpci prepare` and `virtpci reattach`: give a domain's PCI host devices to it, and back,
//! on the real host or on a simulated one.

use crate::outcome::{report, shown, DeviceOutcome};
use crate::target::{open_manager, read_input, require_writable, TargetArgs};
use clap::Args;
use virtpci::hostdev::moves::is_vfio_driver;
use virtpci::hostdev::{Action, ActiveEntry, Owner, PrepareOptions};
use virtpci::xml::hostdevs::hostdevs_from_domain_xml;
use virtpci::{Error, HostdevManager, HostdevSpec, PciAddress, Result};

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

pub fn run_prepare(args: PrepareArgs) -> Result<()> {
    let xml = read_input(&args.file)?;
    let d = hostdevs_from_domain_xml(&xml)?;
    let name = d.required_name()?;
    require_writable(&args.host)?;
    let mgr = open_manager(&args.host)?;
    // What prepare will do to each device, taken just before it does it.
    let plan = mgr.check(&args.driver, name, &d.hostdevs, args.options())?;
    let iommufd: Vec<PciAddress> = d
        .hostdevs
        .iter()
        .filter(|h| h.iommufd)
        .map(|h| h.source)
        .collect();
    let error = mgr
        .prepare_pci_devices(
            &args.driver,
            name,
            d.uuid.as_ref(),
            &d.hostdevs,
            args.options(),
        )
        .err();
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
                cdev: if error.is_none() && iommufd.contains(&h.source) {
                    cdev_of(&mgr, &h.source)
                } else {
                    None
                },
            }
        })
        .collect();
    let header = serde_json::json!({"domain": name, "driver": args.driver});
    report(args.json, header, &outcomes, error, "prepared")
}

/// The VFIO device cdev of a device prepared for iommufd, as JSON (`name`, `path`, `sysfs`);
/// a cdev that cannot be found is reported in its place.
fn cdev_of(mgr: &HostdevManager, addr: &PciAddress) -> Option<serde_json::Value> {
    Some(match mgr.host().vfio_cdev(addr) {
        Ok(c) => serde_json::json!({
            "name": c.name,
            "path": c.node.display().to_string(),
            "sysfs": c.sysfs_dir.display().to_string(),
        }),
        Err(e) => serde_json::json!({ "error": e.message }),
    })
}

pub fn run_reattach(args: ReattachArgs) -> Result<()> {
    require_writable(&args.host)?;
    let Some(file) = &args.file else {
        return reattach_all(&args);
    };
    let xml = read_input(file)?;
    let d = hostdevs_from_domain_xml(&xml)?;
    let name = d.required_name()?;
    let mgr = open_manager(&args.host)?;
    let owner = Owner::new(&args.driver, name);
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
            cdev: None,
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
    let held = targets
        .iter()
        .map(|t| book.active_entry(t).expect("listed above"));
    let error = reattach_reporting(&mgr, held, &mut outcomes, || {
        mgr.reattach_pci_devices(&args.driver, name, &d.hostdevs)
    });
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

/// Run `reattach`, then push the outcome of each of the `held` devices, judged from the
/// driver each was on before; the error of `reattach`, if any.
fn reattach_reporting<'a>(
    mgr: &HostdevManager,
    held: impl IntoIterator<Item = &'a ActiveEntry>,
    outcomes: &mut Vec<DeviceOutcome>,
    reattach: impl FnOnce() -> Result<()>,
) -> Option<Error> {
    let before: Vec<(&ActiveEntry, Option<String>)> = held
        .into_iter()
        .map(|a| (a, mgr.host().driver(&a.entry.address).unwrap_or(None)))
        .collect();
    let error = reattach().err();
    for (a, from) in before {
        let (managed, interrupted) = (a.entry.managed, a.interrupted);
        outcomes.push(moved_outcome(
            mgr,
            a.entry.address,
            from,
            managed,
            interrupted,
            &error,
        ));
    }
    error
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
        cdev: None,
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
        let held: Vec<&ActiveEntry> = book.active.iter().filter(|a| a.owner == owner).collect();
        let specs: Vec<HostdevSpec> = held
            .iter()
            .map(|a| HostdevSpec {
                managed: a.entry.managed,
                ..HostdevSpec::managed(a.entry.address)
            })
            .collect();
        let error = reattach_reporting(&mgr, held, &mut outcomes, || {
            mgr.reattach_pci_devices(&owner.driver, &owner.domain, &specs)
        });
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
