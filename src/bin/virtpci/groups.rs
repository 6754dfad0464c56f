//! `virtpci groups`: every IOMMU group of a host with its devices, as a table or JSON.

use clap::Args;
use std::path::PathBuf;
use virtpci::host::facts::{groups_report, GroupDevice};
use virtpci::host::Host;
use virtpci::Result;

#[derive(Args)]
pub struct GroupsArgs {
    /// The sysfs root to read (default /sys).
    #[arg(long, value_name = "ROOT")]
    pub sysfs: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Only IOMMU group N.
    #[arg(long, value_name = "N")]
    pub group: Option<u32>,
    /// Only the IOMMU group of the device ADDR (DDDD:BB:SS.F).
    #[arg(long, value_name = "ADDR")]
    pub device: Option<String>,
}

/// Open the host at `root` for reading; a root without `bus/pci` is no sysfs.
pub fn open_sysfs(root: Option<&std::path::Path>) -> Result<Host> {
    let host = Host::open(root)?;
    if !host.root().join("bus/pci").is_dir() {
        return Err(virtpci::Error::operation_invalid(format!(
            "'{}' has no bus/pci directory: it is not a sysfs root (give --sysfs the directory \
             that holds bus/ and kernel/, such as /sys or a tree made by `virtpci host materialize`)",
            host.root().display()
        )));
    }
    Ok(host)
}

pub fn run(args: GroupsArgs) -> Result<()> {
    let host = open_sysfs(args.sysfs.as_deref())?;
    let mut report = groups_report(&host)?;
    let device = args
        .device
        .as_deref()
        .map(virtpci::PciAddress::parse)
        .transpose()?;
    let filtered = args.group.is_some() || device.is_some();
    if filtered {
        let shown = |a: &str| device.is_some_and(|d| d.to_string() == a);
        report.groups.retain(|g| {
            args.group.map_or(true, |n| n == g.group)
                && (device.is_none() || g.devices.iter().any(|x| shown(&x.address)))
        });
        report
            .no_iommu_group
            .retain(|x| args.group.is_none() && shown(&x.address));
        if report.groups.is_empty() && report.no_iommu_group.is_empty() {
            return Err(virtpci::Error::device_missing(match (args.group, device) {
                (Some(g), Some(d)) => format!("device {d} is not in IOMMU group {g}"),
                (Some(g), None) => format!("no IOMMU group {g} on this host"),
                (None, Some(d)) => format!("no PCI device {d} on this host"),
                (None, None) => unreachable!("filtered"),
            }));
        }
    }
    if args.json {
        return write_stdout(&(report.to_json() + "\n"));
    }
    // One block per group, as ls-iommu prints them; the header in bold on a terminal.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stdout())
        && std::env::var_os("NO_COLOR").is_none();
    let heading = |text: String| {
        if colour {
            format!("\x1b[1m{text}\x1b[0m\n")
        } else {
            format!("{text}\n")
        }
    };
    // ls-iommu's line: address, class, names, [vendor:device]; then the driver.
    let line = |d: &GroupDevice| {
        let names = match (d.vendor_name, d.device_name) {
            (Some(v), Some(n)) => format!("{v} {n} "),
            (Some(v), None) => format!("{v} device "),
            _ => String::new(),
        };
        format!(
            "  {}  {} [{}]: {names}[{}:{}]  driver {}\n",
            d.address,
            d.class_name,
            &d.class[2..6],
            &d.vendor[2..],
            &d.device[2..],
            d.driver.as_deref().unwrap_or("(none)")
        )
    };
    let mut out = String::new();
    for g in &report.groups {
        out += &heading(format!("IOMMU group {}", g.group));
        for d in &g.devices {
            out += &line(d);
        }
    }
    if !report.no_iommu_group.is_empty() {
        out += &heading("no IOMMU group".to_string());
        for d in &report.no_iommu_group {
            out += &line(d);
        }
    }
    if report.groups.is_empty() && !filtered {
        out += &format!(
            "(no IOMMU groups under {}/kernel/iommu_groups: the IOMMU is off or absent)\n",
            host.root().display()
        );
    }
    write_stdout(&out)
}

/// Write to standard output; a closed pipe (`virtpci groups | head`) is not an error.
pub fn write_stdout(text: &str) -> Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(virtpci::Error::system(
            "Failed to write to standard output",
            &e,
        )),
    }
}
