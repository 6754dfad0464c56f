//! `virtpci host`: record a host's PCI topology as JSON, and build a sysfs-shaped tree from it.

use clap::{Args, Subcommand};
use std::path::PathBuf;
use virtpci::error::quote;
use virtpci::host::class_name;
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
    /// Show everything sysfs says about one device, as JSON (reads only).
    Show {
        /// The device, DDDD:BB:SS.F.
        address: String,
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
        HostCommand::Show { address, sysfs } => {
            let addr = PciAddress::parse(&address)?;
            let host = crate::groups::open_sysfs(sysfs.as_deref())?;
            let d = host.device(&addr)?;
            let cfg = host.config_space(&addr)?;
            // For a VF: its PF, its index, and the MAC and VLAN the PF holds for it (known on
            // the simulated kernel; a real host would need netlink: null there).
            let vf = match host.vf_index(&addr)? {
                Some((pf, index)) => {
                    let net = host.recorded_vf_net(&pf, index)?;
                    serde_json::json!({
                        "pf": pf.to_string(),
                        "index": index,
                        "mac": net.map(|n| n.mac.to_string()),
                        "vlan": net.map(|n| n.vlan),
                    })
                }
                None => serde_json::Value::Null,
            };
            let json = serde_json::json!({
                "address": d.address.to_string(),
                "vendor": format!("0x{:04x}", d.ids.vendor),
                "device": format!("0x{:04x}", d.ids.device),
                "class": format!("0x{:06x}", d.ids.class),
                "class_name": class_name(d.ids.class),
                "driver": d.driver,
                "driver_override": d.driver_override,
                "numa_node": d.numa_node,
                "iommu_group": d.iommu_group,
                "parent_bridge": host.parent_bridge(&addr)?.map(|a| a.to_string()),
                "physfn": d.physfn.map(|a| a.to_string()),
                "virtfns": d.virtfns.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                "vf": vf,
                "header_type": format!("{:?}", cfg.header_type),
                "multifunction": cfg.multifunction,
                "pcie_port_type": cfg.pcie.map(|c| format!("{:?}", c.port_type)),
                "flr": cfg.has_flr() || d.physfn.is_some(),
                "pm_reset": cfg.has_pm_reset(),
                "reset_file": d.has_reset,
                "reset_method": d.reset_methods,
                "sysfs_path": d.sysfs_path,
                "net": d.net,
                "block": d.block,
            });
            let text = serde_json::to_string_pretty(&json).unwrap_or_default();
            crate::groups::write_stdout(&(text + "\n"))
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
