//! `virtpci nodedev-detach | nodedev-reattach | nodedev-reset ADDR` (virsh's names and
//! semantics, through the hostdev manager's node-device calls) and `virtpci update-active
//! dom.xml` (book a running domain's devices as they are, after the state was lost).

use crate::outcome::{report, shown, DeviceOutcome};
use crate::target::{open_manager, read_input, require_writable, TargetArgs};
use clap::Args;
use virtpci::hostdev::ResetOutcome;
use virtpci::{Error, HostdevManager, PciAddress, Result};

#[derive(Args)]
pub struct DetachArgs {
    #[command(flatten)]
    pub host: TargetArgs,
    /// The stub: vfio-pci (the default) or a vfio variant driver.
    #[arg(long, value_name = "STUB")]
    pub stub: Option<String>,
    /// Detach a device the host needs (a mounted disk, the default route's NIC).
    #[arg(long)]
    pub force: bool,
    /// Print JSON (as prepare does).
    #[arg(long)]
    pub json: bool,
    /// The device, DDDD:BB:SS.F.
    pub address: String,
}

#[derive(Args)]
pub struct DeviceArgs {
    #[command(flatten)]
    pub host: TargetArgs,
    /// Print JSON (as prepare does).
    #[arg(long)]
    pub json: bool,
    /// The device, DDDD:BB:SS.F.
    pub address: String,
}

#[derive(Args)]
pub struct UpdateActiveArgs {
    #[command(flatten)]
    pub host: TargetArgs,
    /// The daemon driver name to book the devices to.
    #[arg(long, value_name = "NAME", default_value = "virtpci")]
    pub driver: String,
    /// The running domain's XML file, or - for standard input.
    pub file: String,
}

/// One device's move, told as prepare tells it.
fn moved(
    address: PciAddress,
    from: Option<String>,
    to: Option<String>,
    error: &Option<Error>,
    done: &'static str,
) -> DeviceOutcome {
    let (result, text) = match error {
        Some(_) => ("skipped", "not done".to_string()),
        None => (
            done,
            format!("{} -> {}", shown(from.as_deref()), shown(to.as_deref())),
        ),
    };
    DeviceOutcome {
        address,
        result,
        from,
        to,
        text,
        cdev: None,
    }
}

pub fn run_detach(args: DetachArgs) -> Result<()> {
    move_one(
        &args.host,
        &args.address,
        args.json,
        "detached",
        |mgr, addr| mgr.node_device_detach(addr, args.stub.as_deref(), args.force),
    )
}

pub fn run_reattach(args: DeviceArgs) -> Result<()> {
    move_one(
        &args.host,
        &args.address,
        args.json,
        "re-attached",
        |mgr, addr| mgr.node_device_reattach(addr),
    )
}

/// Move the device at `address` with `step` and report it: from the driver it was on to the
/// one it is on after, `done` when the step succeeded.
fn move_one(
    host: &TargetArgs,
    address: &str,
    json: bool,
    done: &'static str,
    step: impl FnOnce(&HostdevManager, &PciAddress) -> Result<()>,
) -> Result<()> {
    let addr = PciAddress::parse(address)?;
    require_writable(host)?;
    let mgr = open_manager(host)?;
    let from = mgr.host().driver(&addr).unwrap_or(None);
    let error = step(&mgr, &addr).err();
    let to = mgr.host().driver(&addr).unwrap_or(None);
    let outcome = moved(addr, from, to, &error, done);
    report(json, serde_json::json!({}), &[outcome], error, done)
}

pub fn run_reset(args: DeviceArgs) -> Result<()> {
    let addr = PciAddress::parse(&args.address)?;
    require_writable(&args.host)?;
    let mgr = open_manager(&args.host)?;
    let now = mgr.host().driver(&addr).unwrap_or(None);
    let result = mgr.node_device_reset(&addr);
    let (text, error) = match result {
        Ok(ResetOutcome::LeftToVfio) => (
            format!("not reset: on {}, VFIO resets it", shown(now.as_deref())),
            None,
        ),
        Ok(ResetOutcome::LeftToFlr) => (
            "not reset: it has FLR, the hypervisor resets it".to_string(),
            None,
        ),
        Ok(ResetOutcome::PowerManagement) => ("PM reset (D3hot, D0)".to_string(), None),
        Ok(ResetOutcome::SecondaryBus { .. }) => {
            ("secondary bus reset through its bridge".to_string(), None)
        }
        Err(e) => ("not reset".to_string(), Some(e)),
    };
    let outcome = DeviceOutcome {
        address: addr,
        result: if error.is_some() { "skipped" } else { "reset" },
        from: now.clone(),
        to: now,
        text,
        cdev: None,
    };
    report(args.json, serde_json::json!({}), &[outcome], error, "reset")
}

pub fn run_update_active(args: UpdateActiveArgs) -> Result<()> {
    let xml = read_input(&args.file)?;
    let d = virtpci::xml::hostdevs::hostdevs_from_domain_xml(&xml)?;
    let name = d.required_name()?;
    let mgr = open_manager(&args.host)?;
    mgr.update_active_pci_devices(&args.driver, name, &d.hostdevs)?;
    let book = mgr.book()?;
    let mut out = String::new();
    for h in &d.hostdevs {
        let now = mgr.host().driver(&h.source).unwrap_or(None);
        let held = book
            .active_entry(&h.source)
            .map(|a| format!("held for {}/{}", a.owner.driver, a.owner.domain))
            .unwrap_or_else(|| "not held".to_string());
        out += &format!("{}: {held}, on {}\n", h.source, shown(now.as_deref()));
    }
    crate::groups::write_stdout(&out)
}
