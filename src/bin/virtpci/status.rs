//! `virtpci status`: every device the hostdev manager holds, from its state directory: who
//! uses it (or nobody: detached, in the inactive list), its stub, whether an operation left it
//! half-moved, and the driver sysfs shows it on now. Reads only (like `check`, without the
//! directory's lock: the state file is replaced atomically).

use crate::prepare::{open_host, TargetArgs};
use clap::Args;
use virtpci::hostdev::state::StateStore;
use virtpci::hostdev::OwnershipBook;
use virtpci::Result;

#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub host: TargetArgs,
    /// Print JSON: {"state_dir": DIR, "devices": [{"address", "driver", "domain", "stub",
    /// "managed", "interrupted", "bound_to"}]} ("driver" and "domain" only for a device in use).
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
    let held = book.held_devices();
    // Where each device is now; a device that left the host is shown unbound.
    let bound: Vec<Option<String>> = held
        .iter()
        .map(|d| host.driver(&d.address).unwrap_or(None))
        .collect();
    let text = if args.json {
        let devices: Vec<serde_json::Value> = held
            .iter()
            .zip(&bound)
            .map(|(d, now)| {
                let mut v = serde_json::to_value(d).unwrap_or_default();
                v["bound_to"] = serde_json::json!(now);
                v
            })
            .collect();
        let doc = serde_json::json!({
            "state_dir": state_dir.display().to_string(),
            "devices": devices,
        });
        serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
    } else if held.is_empty() {
        format!(
            "no device is held (state directory {})\n",
            state_dir.display()
        )
    } else {
        let mut out = String::new();
        for (d, now) in held.iter().zip(&bound) {
            let user = match &d.owner {
                Some(o) => format!("used by {}/{}", o.driver, o.domain),
                None => "detached, unused".to_string(),
            };
            out.push_str(&format!(
                "{}  {}  booked on {}  bound to {}{}\n",
                d.address,
                user,
                d.stub,
                now.as_deref().unwrap_or("(no driver)"),
                if d.interrupted { "  interrupted" } else { "" }
            ));
        }
        out
    };
    crate::groups::write_stdout(&text)
}
