//! `virtpci status`: every device the hostdev manager holds, from its state directory: who
//! uses it (or nobody: detached, in the inactive list), its stub, whether an operation left it
//! half-moved, and the driver sysfs shows it on now. Reads only (like `check`, without the
//! directory's lock: the state file is replaced atomically).

use crate::prepare::{open_host, TargetArgs};
use clap::Args;
use virtpci::hostdev::moves::is_vfio_driver;
use virtpci::hostdev::state::StateStore;
use virtpci::hostdev::OwnershipBook;
use virtpci::{PciAddress, Result};

#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub host: TargetArgs,
    /// Print JSON: {"state_dir": DIR, "devices": [{"address", "driver", "domain", "stub",
    /// "managed", "interrupted", "bound_to"}], "unheld_vfio": [{"address", "bound_to"}]}
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
    let held = book.held_devices();
    // Devices on a vfio driver that the manager does not hold (bound by hand, by another
    // tool, or left by a lost state directory).
    let unheld: Vec<(PciAddress, String)> = host
        .device_addresses()?
        .into_iter()
        .filter(|a| !held.iter().any(|d| d.address == *a))
        .filter_map(|a| {
            let d = host.driver(&a).ok().flatten()?;
            is_vfio_driver(&d).then_some((a, d))
        })
        .collect();
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
        let unheld: Vec<serde_json::Value> = unheld
            .iter()
            .map(|(a, d)| serde_json::json!({"address": a.to_string(), "bound_to": d}))
            .collect();
        let doc = serde_json::json!({
            "state_dir": state_dir.display().to_string(),
            "devices": devices,
            "unheld_vfio": unheld,
        });
        serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
    } else {
        let mut out = String::new();
        if held.is_empty() {
            out += &format!(
                "no device is held (state directory {})\n",
                state_dir.display()
            );
        }
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
                if d.interrupted {
                    "  interrupted: `virtpci reattach --all` recovers it"
                } else {
                    ""
                }
            ));
        }
        for (a, d) in &unheld {
            out += &format!(
                "{a}  on {d}, not held by virtpci (`virtpci nodedev-reattach {a}` gives it back)\n"
            );
        }
        out
    };
    crate::groups::write_stdout(&text)
}
