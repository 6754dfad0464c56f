//! `virtpci host`: record a host's PCI topology as JSON, and build a sysfs-shaped tree from it.

use clap::{Args, Subcommand};
use std::path::PathBuf;
use virtpci::error::quote;
use virtpci::host::facts::device_facts;
use virtpci::host::snapshot::HostSnapshot;
use virtpci::{Error, PciAddress, Result};

#[derive(Args)]
pub struct HostArgs {
    #[command(subcommand)]
    pub command: HostCommand,
}

#[derive(Subcommand)]
pub enum HostCommand {
    /// Record the host's PCI devices, drivers and IOMMU groups as JSON on standard output
    /// (reads only).
    Snapshot {
        /// The sysfs root to read (default /sys).
        #[arg(long, value_name = "ROOT")]
        sysfs: Option<PathBuf>,
    },
    /// Show everything sysfs says about one device (reads only).
    Show {
        /// The device, DDDD:BB:SS.F.
        address: String,
        /// Print JSON: {"address", "vendor", "device", "class", "class_name", "vendor_name",
        /// "device_name", "driver", "driver_override", "numa_node", "iommu_group",
        /// "parent_bridge", "physfn", "virtfns", "vf", "header_type", "multifunction",
        /// "pcie_port_type", "flr", "pm_reset", "reset_file", "reset_method", "sysfs_path",
        /// "net", "block"}.
        #[arg(long)]
        json: bool,
        /// The sysfs root to read (default /sys).
        #[arg(long, value_name = "ROOT")]
        sysfs: Option<PathBuf>,
    },
    /// Build a sysfs-shaped tree in DIR (absent or empty) from a snapshot; open it with
    /// `--sysfs DIR`.
    Materialize {
        /// The snapshot (JSON).
        file: PathBuf,
        /// The directory to create.
        dir: PathBuf,
    },
}

pub fn run(args: HostArgs) -> Result<()> {
    match args.command {
        HostCommand::Snapshot { sysfs } => {
            let host = crate::groups::open_sysfs(sysfs.as_deref())?;
            crate::groups::write_stdout(&HostSnapshot::capture(&host)?.to_json())
        }
        HostCommand::Show {
            address,
            json,
            sysfs,
        } => {
            let addr = PciAddress::parse(&address)?;
            let host = crate::groups::open_sysfs(sysfs.as_deref())?;
            let facts = device_facts(&host, &addr)?;
            let text = if json {
                serde_json::to_string_pretty(&facts).unwrap_or_default() + "\n"
            } else {
                facts_text(&facts)
            };
            crate::groups::write_stdout(&text)
        }
        HostCommand::Materialize { file, dir } => {
            let text = std::fs::read_to_string(&file).map_err(|e| {
                Error::system(
                    format!("Failed to read '{}'", quote(&file.to_string_lossy())),
                    &e,
                )
            })?;
            HostSnapshot::from_json(&text)?.materialize(&dir)
        }
    }
}

/// The facts as `key value` lines, in key order; lists joined with ", ", absent
/// values as "-".
fn facts_text(facts: &serde_json::Value) -> String {
    let shown = |v: &serde_json::Value| -> String {
        match v {
            serde_json::Value::Null => "-".to_string(),
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(items) if items.is_empty() => "-".to_string(),
            serde_json::Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
                .collect::<Vec<_>>()
                .join(", "),
            serde_json::Value::Object(map) => map
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{k} {}",
                        v.as_str().map_or_else(|| v.to_string(), str::to_string)
                    )
                })
                .collect::<Vec<_>>()
                .join(", "),
            other => other.to_string(),
        }
    };
    let mut out = String::new();
    if let serde_json::Value::Object(map) = facts {
        for (k, v) in map {
            out += &format!("{k:<16} {}\n", shown(v));
        }
    }
    out
}
