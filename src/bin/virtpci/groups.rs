//! `virtpci groups`: every IOMMU group of a host with its devices, as a table or JSON.

use clap::Args;
use serde::Serialize;
use std::path::PathBuf;
use virtpci::host::{class_name, DeviceSummary, Host};
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

#[derive(Serialize)]
struct JsonDevice {
    address: String,
    vendor: String,
    device: String,
    class: String,
    driver: Option<String>,
}

#[derive(Serialize)]
struct JsonGroup {
    group: u32,
    devices: Vec<JsonDevice>,
}

#[derive(Serialize)]
struct JsonReport {
    groups: Vec<JsonGroup>,
    no_iommu_group: Vec<JsonDevice>,
}

impl From<&DeviceSummary> for JsonDevice {
    fn from(d: &DeviceSummary) -> JsonDevice {
        JsonDevice {
            address: d.address.to_string(),
            vendor: format!("0x{:04x}", d.ids.vendor),
            device: format!("0x{:04x}", d.ids.device),
            class: format!("0x{:06x}", d.ids.class),
            driver: d.driver.clone(),
        }
    }
}

/// The groups of the host, each with its device summaries, and the devices without a group.
type Report = (Vec<(u32, Vec<DeviceSummary>)>, Vec<DeviceSummary>);

fn collect(host: &Host) -> Result<Report> {
    let all = host.iommu_groups()?;
    let mut groups = Vec::with_capacity(all.groups.len());
    for g in &all.groups {
        let devices = g
            .devices
            .iter()
            .map(|a| host.summary(a))
            .collect::<Result<Vec<_>>>()?;
        groups.push((g.number, devices));
    }
    let none = all
        .no_group
        .iter()
        .map(|a| host.summary(a))
        .collect::<Result<Vec<_>>>()?;
    Ok((groups, none))
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
    let (mut groups, mut none) = collect(&host)?;
    let device = args
        .device
        .as_deref()
        .map(virtpci::PciAddress::parse)
        .transpose()?;
    let filtered = args.group.is_some() || device.is_some();
    if filtered {
        groups.retain(|(n, devs)| {
            args.group.map_or(true, |g| g == *n)
                && device.map_or(true, |d| devs.iter().any(|x| x.address == d))
        });
        none.retain(|x| args.group.is_none() && device.is_some_and(|d| x.address == d));
        if groups.is_empty() && none.is_empty() {
            return Err(virtpci::Error::device_missing(match (args.group, device) {
                (Some(g), Some(d)) => format!("device {d} is not in IOMMU group {g}"),
                (Some(g), None) => format!("no IOMMU group {g} on this host"),
                (None, Some(d)) => format!("no PCI device {d} on this host"),
                (None, None) => unreachable!("filtered"),
            }));
        }
    }
    if args.json {
        let report = JsonReport {
            groups: groups
                .iter()
                .map(|(n, devs)| JsonGroup {
                    group: *n,
                    devices: devs.iter().map(JsonDevice::from).collect(),
                })
                .collect(),
            no_iommu_group: none.iter().map(JsonDevice::from).collect(),
        };
        let text = serde_json::to_string(&report)
            .map_err(|e| virtpci::Error::internal(format!("cannot write JSON: {e}")))?;
        return write_stdout(&(text + "\n"));
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
    let line = |d: &DeviceSummary| {
        format!(
            "  {}  {} [{:04x}]  [{:04x}:{:04x}]  driver {}\n",
            d.address,
            class_name(d.ids.class),
            d.ids.class >> 8,
            d.ids.vendor,
            d.ids.device,
            d.driver.as_deref().unwrap_or("(none)")
        )
    };
    let mut out = String::new();
    for (n, devs) in &groups {
        out += &heading(format!("IOMMU group {n}"));
        for d in devs {
            out += &line(d);
        }
    }
    if !none.is_empty() {
        out += &heading("no IOMMU group".to_string());
        for d in &none {
            out += &line(d);
        }
    }
    if groups.is_empty() && !filtered {
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
