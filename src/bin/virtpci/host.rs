//! `virtpci host`: record a host's PCI topology as JSON, and build a sysfs-shaped tree from it.

use clap::{Args, Subcommand};
use std::path::PathBuf;
use virtpci::host::snapshot::HostSnapshot;
use virtpci::host::Host;
use virtpci::{Error, Result};

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
            let host = Host::open(sysfs.as_deref())?;
            crate::groups::write_stdout(&HostSnapshot::capture(&host)?.to_json())
        }
        HostCommand::Materialize { file, dir } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| Error::system(format!("Failed to read '{}'", file.display()), &e))?;
            HostSnapshot::from_json(&text)?.materialize(&dir)
        }
    }
}
