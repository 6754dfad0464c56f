//! `virtpci status`: every device the hostdev manager holds, from its state directory: who
//! uses it (or nobody: detached, in the inactive list), its stub, whether an operation left it
//! half-moved, and the driver sysfs shows it on now. Reads only (like `check`, without the
//! directory's lock: the state file is replaced atomically).

use crate::target::{open_host, TargetArgs};
use clap::Args;
use virtpci::hostdev::book::format_since;
use virtpci::hostdev::state::StateStore;
use virtpci::hostdev::status::StatusReport;
use virtpci::hostdev::OwnershipBook;
use virtpci::Result;

#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub host: TargetArgs,
    /// Print JSON: {"state_dir": DIR, "devices": [{"address", "driver", "domain", "stub",
    /// "managed", "interrupted", "since", "bound_to"}], "unheld_vfio": [{"address", "bound_to"}]}
    /// ("driver" and "domain" only for a device in use).
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: StatusArgs) -> Result<()> {
    let (host, state_dir, _) = open_host(&args.host)?;
    let book = if state_dir.is_dir() {
        StateStore::open(&state_dir)?.load()?
    } else {
        OwnershipBook::default()
    };
    let report = StatusReport::new(&host, &book, &state_dir.display().to_string())?;
    let text = if args.json {
        report.to_json()
    } else {
        let mut out = String::new();
        if report.devices.is_empty() {
            out += &format!(
                "no device is held (state directory {})\n",
                state_dir.display()
            );
        }
        for d in &report.devices {
            let held = &d.held;
            let user = match &held.owner {
                Some(o) => format!("used by {}/{}", o.driver, o.domain),
                None => "detached, unused".to_string(),
            };
            let since = held
                .since
                .map(|t| format!("  since {}", format_since(t)))
                .unwrap_or_default();
            out.push_str(&format!(
                "{}  {}  booked on {}  bound to {}{since}{}\n",
                held.address,
                user,
                held.stub,
                d.bound_to.as_deref().unwrap_or("(no driver)"),
                if held.interrupted {
                    "  interrupted: `virtpci reattach --all` recovers it"
                } else {
                    ""
                }
            ));
        }
        for u in &report.unheld_vfio {
            out += &format!(
                "{}  on {}, not held by virtpci (`virtpci nodedev-reattach {}` gives it back)\n",
                u.address, u.bound_to, u.address
            );
        }
        out
    };
    crate::groups::write_stdout(&text)
}
