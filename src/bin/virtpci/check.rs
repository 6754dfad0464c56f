//! `virtpci check`: the dry run of prepare for a domain definition. Per hostdev: its IOMMU
//! group's members, what would be detached, which reset applies; then every violation and
//! warning. Exits 1 with the first violation when prepare would fail. Reads only. `--fix`
//! prints the domain completed with the missing members of its hostdevs' IOMMU groups.

use crate::target::{open_host, read_input, TargetArgs};
use clap::Args;
use virtpci::assign::explain::guest_warning_messages;
use virtpci::hostdev::state::StateStore;
use virtpci::hostdev::{
    plan, Action, CheckReport, HostUsage, Owner, OwnershipBook, PrepareOptions, ProcUsage,
    ResetCapability,
};
use virtpci::xml::hostdevs::{add_unassigned_hostdevs, hostdevs_from_domain_xml};
use virtpci::{Error, Result};

#[derive(Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub host: TargetArgs,
    /// The daemon driver name devices would be booked to.
    #[arg(long, value_name = "NAME", default_value = "virtpci")]
    pub driver: String,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// libvirt 9.0's group rule: only refuse groups another domain uses.
    #[arg(long)]
    pub legacy_group_check: bool,
    /// Allow detaching devices the host needs.
    #[arg(long)]
    pub force: bool,
    /// Print the domain with every undeclared member of its hostdevs' IOMMU groups (bridges
    /// and ports excepted) added as a managed hostdev hidden from the guest
    /// (`<address type='unassigned'/>`), everything else byte for byte, instead of the report.
    #[arg(long, conflicts_with = "json")]
    pub fix: bool,
    /// The domain XML file, or - for standard input.
    pub file: String,
}

/// Run the check; `Ok(Some(error))` when prepare would fail with `error`.
pub fn run(args: CheckArgs) -> Result<Option<Error>> {
    let xml = read_input(&args.file)?;
    let dom = hostdevs_from_domain_xml(&xml)?;
    let name = dom.required_name()?;
    let (host, state_dir, simulated_root) = open_host(&args.host)?;
    // A dry run creates nothing: a state directory that does not exist means empty lists.
    let book = if state_dir.is_dir() {
        StateStore::open(&state_dir)?.load()?
    } else {
        OwnershipBook::default()
    };
    let usage: Box<dyn HostUsage> = match &simulated_root {
        Some(root) => Box::new(ProcUsage::simulated(root)),
        None => Box::new(ProcUsage::system()),
    };
    let options = PrepareOptions {
        legacy_group_check: args.legacy_group_check,
        force: args.force,
    };
    let mut report = plan::check(
        &host,
        &book,
        &*usage,
        &Owner::new(&args.driver, name),
        &dom.hostdevs,
        options,
    )?;
    if args.fix {
        let missing = virtpci::hostdev::group_fix::missing_group_members(&report);
        crate::groups::write_stdout(&add_unassigned_hostdevs(&xml, &missing)?)?;
        return Ok(None);
    }
    report.violations = report
        .violations
        .into_iter()
        .map(crate::cli_words)
        .collect();
    // The guest side: a slot its hostdevs (or other devices) use without function 0.
    report.warnings.extend(guest_warning_messages(&xml));
    let text = if args.json {
        report.to_json()
    } else {
        render(&report)
    };
    crate::groups::write_stdout(&text)?;
    Ok(report.violations.first().cloned())
}

fn render(r: &CheckReport) -> String {
    let mut out = format!(
        "domain {} (driver {}): {} PCI hostdev(s)\n",
        r.owner.domain,
        r.owner.driver,
        r.hostdevs.len()
    );
    let mut shown_groups: Vec<u32> = Vec::new();
    for h in &r.hostdevs {
        let mode = if h.managed { "managed" } else { "unmanaged" };
        let guest = if h.unassigned {
            ", unassigned (hidden from the guest)"
        } else {
            ""
        };
        out.push_str(&format!("\nhostdev {} ({mode}{guest})\n", h.source));
        if !h.exists {
            out.push_str("  does not exist on this host\n");
            continue;
        }
        let now = h.current.driver.as_deref().unwrap_or("no driver");
        let action = match &h.action {
            Action::Detach { .. } => format!("detach: {now} -> {}", h.stub),
            Action::AlreadyOnStub => format!("already on {}: nothing to detach", h.stub),
            Action::FromInactive => format!("detached earlier (inactive list), on {now}"),
            Action::Adopt => format!("unmanaged, on {now}: adopted as it is"),
            Action::Refused => format!("refused (on {now})"),
        };
        out.push_str(&format!("  {action}\n"));
        let reset = match &h.reset {
            Some(ResetCapability::Flr) => "FLR".to_string(),
            Some(ResetCapability::PowerManagement) => "PM reset (D3hot/D0)".to_string(),
            Some(ResetCapability::SecondaryBus { also_resets }) if also_resets.is_empty() => {
                "secondary bus reset".to_string()
            }
            Some(ResetCapability::SecondaryBus { also_resets }) => format!(
                "secondary bus reset, which also resets {}",
                also_resets
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Some(ResetCapability::None) => "no reset method".to_string(),
            None => "unknown".to_string(),
        };
        out.push_str(&format!(
            "  reset: left to VFIO once on {} (device supports: {reset})\n",
            h.stub
        ));
        if let Some(c) = &h.critical {
            out.push_str(&format!("  host-critical: {c}\n"));
        }
        match h
            .iommu_group
            .and_then(|n| r.groups.iter().find(|g| g.number == n))
        {
            None => out.push_str("  IOMMU group: none\n"),
            Some(g) if shown_groups.contains(&g.number) => {
                out.push_str(&format!("  IOMMU group {} (members above)\n", g.number))
            }
            Some(g) => {
                shown_groups.push(g.number);
                out.push_str(&format!("  IOMMU group {}:\n", g.number));
                for m in &g.members {
                    let mut notes: Vec<String> = Vec::new();
                    if m.address == h.source {
                        notes.push("this device".into());
                    } else if m.declared {
                        notes.push("declared".into());
                    }
                    if m.bridge {
                        notes.push("bridge, exempt".into());
                    } else if !m.declared {
                        notes.push("NOT declared".into());
                    }
                    if let Some(o) = &m.owner {
                        notes.push(format!("used by {}/{}", o.driver, o.domain));
                    }
                    out.push_str(&format!(
                        "    {}  {:<14} {}\n",
                        m.address,
                        m.driver.as_deref().unwrap_or("(no driver)"),
                        notes.join(", ")
                    ));
                }
            }
        }
    }
    if !r.warnings.is_empty() {
        out.push_str("\nwarnings:\n");
        for w in &r.warnings {
            out.push_str(&format!("  {w}\n"));
        }
    }
    if r.violations.is_empty() {
        out.push_str("\nprepare would succeed\n");
    } else {
        out.push_str("\nviolations (prepare would fail with the first):\n");
        for v in &r.violations {
            out.push_str(&format!("  {}\n", v.message));
        }
    }
    out
}
