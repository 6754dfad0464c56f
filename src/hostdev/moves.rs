//! Moving one device between drivers, and resetting it, with libvirt's writes and wording.
//!
//! Every move starts from what sysfs says *now*, not from what an earlier step should have
//! left, so the same call finishes a move that a crash or a failed write interrupted.

use super::book::{DeviceState, OwnershipBook};
use crate::error::{Error, Result};
use crate::host::config::{HeaderType, BRIDGE_CONTROL, BRIDGE_CTL_BUS_RESET, PM_CTRL};
use crate::host::Host;
use crate::pci::PciAddress;
use std::time::Duration;

/// The device's driver and `driver_override` now.
pub fn current(host: &Host, addr: &PciAddress) -> Result<DeviceState> {
    Ok(DeviceState {
        driver: host.driver(addr)?,
        driver_override: host.driver_override(addr)?,
    })
}

pub use crate::host::names::is_vfio_driver;

/// libvirt's virPCIDeviceBindToStub: nothing when already on `stub`; else write the override,
/// unbind, probe. Returns whether the device was moved. Does not check where it landed.
pub(crate) fn bind_to_stub(host: &Host, addr: &PciAddress, stub: &str) -> Result<bool> {
    if host.driver(addr)?.as_deref() == Some(stub) {
        return Ok(false);
    }
    host.set_driver_override(addr, Some(stub))?;
    host.unbind(addr)?;
    host.drivers_probe(addr)?;
    Ok(true)
}

/// Fail unless the device is bound to `driver` (None: unbound), naming the device that did
/// not move and where it is.
pub(crate) fn confirm_driver(host: &Host, addr: &PciAddress, driver: Option<&str>) -> Result<()> {
    let now = host.driver(addr)?;
    if now.as_deref() == driver {
        return Ok(());
    }
    let where_now = match &now {
        Some(d) => format!("it is bound to {d}"),
        None => "it has no driver".to_string(),
    };
    Err(match driver {
        Some(want) => Error::operation_failed(format!(
            "PCI device {addr} did not bind to {want}: {where_now}"
        )),
        None => Error::operation_failed(format!(
            "PCI device {addr} did not leave its driver: {where_now}"
        )),
    })
}

/// Put the device back exactly where `orig` says: `driver_override` first (so the probe
/// chooses as before), then the driver. The probe normally brings back the original driver;
/// when it picks another one (the original was bound by hand), bind the original explicitly.
pub fn restore(host: &Host, addr: &PciAddress, orig: &DeviceState) -> Result<()> {
    let now = current(host, addr)?;
    if now.driver_override != orig.driver_override {
        host.set_driver_override(addr, orig.driver_override.as_deref())?;
    }
    if now.driver == orig.driver {
        return Ok(());
    }
    if now.driver.is_some() {
        host.unbind(addr)?;
    }
    if let Some(want) = orig.driver.as_deref() {
        host.drivers_probe(addr)?;
        let landed = host.driver(addr)?;
        if landed.as_deref() != Some(want) {
            if landed.is_some() {
                host.unbind(addr)?;
            }
            host.bind(addr, want)?;
        }
    }
    confirm_driver(host, addr, orig.driver.as_deref())
}

/// libvirt's virPCIDeviceReattach with `unbind_from_stub` for a device whose original driver is
/// unknown: clear the override, unbind, probe; the kernel picks the host driver. Fails when the
/// device is still on `stub` afterwards.
pub(crate) fn release_to_host(host: &Host, addr: &PciAddress, stub: &str) -> Result<()> {
    host.set_driver_override(addr, None)?;
    host.unbind(addr)?;
    host.drivers_probe(addr)?;
    if host.driver(addr)?.as_deref() == Some(stub) {
        return Err(Error::operation_failed(format!(
            "PCI device {addr} did not leave {stub}"
        )));
    }
    Ok(())
}

/// Waits of a PM or secondary bus reset (libvirt: 10 ms and 200 ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResetTimings {
    pub pm: Duration,
    pub bus: Duration,
}

impl ResetTimings {
    pub(crate) const LIBVIRT: ResetTimings = ResetTimings {
        pm: Duration::from_millis(10),
        bus: Duration::from_millis(200),
    };
    pub const NONE: ResetTimings = ResetTimings {
        pm: Duration::ZERO,
        bus: Duration::ZERO,
    };
}

/// What a reset did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResetOutcome {
    /// Bound to vfio-pci or a variant: VFIO resets the device itself.
    LeftToVfio,
    /// FLR capable: the hypervisor does the FLR.
    LeftToFlr,
    /// D3hot → D0 through the PM capability.
    PowerManagement,
    /// Secondary bus reset through the parent bridge.
    SecondaryBus { bridge: PciAddress },
}

/// The reset libvirt would use for a device that is not on VFIO, without doing it: for
/// reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResetCapability {
    Flr,
    PowerManagement,
    /// A secondary bus reset, which also resets these other devices of the bus.
    SecondaryBus {
        also_resets: Vec<PciAddress>,
    },
    None,
}

/// As libvirt's virPCIDeviceReset: refuse non-endpoints and active devices; nothing for
/// VFIO-bound or FLR-capable devices; else a PM reset, else a secondary bus reset when no other
/// device on the bus is in use (everything not in the inactive list counts as in use).
pub fn reset(
    host: &Host,
    addr: &PciAddress,
    book: &OwnershipBook,
    timings: ResetTimings,
) -> Result<ResetOutcome> {
    let cfg = host.config_space(addr)?;
    if cfg.header_type != HeaderType::Endpoint {
        return Err(Error::internal(format!(
            "Invalid attempt to reset PCI device {addr}. Only PCI endpoint devices can be reset"
        )));
    }
    if book.is_active(addr) {
        return Err(Error::internal(format!(
            "Not resetting active device {addr}"
        )));
    }
    if host.bound_to_vfio(addr)? || host.driver(addr)?.as_deref().is_some_and(is_vfio_driver) {
        return Ok(ResetOutcome::LeftToVfio);
    }
    if cfg.has_flr() || host.physical_function(addr)?.is_some() {
        return Ok(ResetOutcome::LeftToFlr);
    }
    let mut failure: Option<Error> = None;
    if let Some(pm) = cfg.pm.filter(|p| !p.no_soft_reset) {
        match pm_reset(host, addr, pm.offset, timings) {
            Ok(()) => return Ok(ResetOutcome::PowerManagement),
            Err(e) => failure = Some(e),
        }
    }
    if addr.bus != 0 {
        match bus_reset(host, addr, book, timings) {
            Ok(bridge) => return Ok(ResetOutcome::SecondaryBus { bridge }),
            Err(e) => failure = Some(e),
        }
    }
    let detail = failure
        .map(|e| e.message)
        .unwrap_or_else(|| "no FLR, PM reset or bus reset available".to_string());
    Err(Error::internal(format!(
        "Unable to reset PCI device {addr}: {detail}"
    )))
}

fn saved_header(host: &Host, addr: &PciAddress) -> Result<Vec<u8>> {
    let mut bytes = host
        .read_config_bytes(addr)
        .map_err(|_| Error::internal(format!("Failed to read PCI config space for {addr}")))?;
    bytes.truncate(256);
    if bytes.len() < 64 {
        return Err(Error::internal(format!(
            "Failed to read PCI config space for {addr}"
        )));
    }
    Ok(bytes)
}

fn restore_header(host: &Host, addr: &PciAddress, saved: &[u8]) -> Result<()> {
    host.write_config(addr, 0, saved)
        .map_err(|_| Error::internal(format!("Failed to restore PCI config space for {addr}")))
}

fn pm_reset(host: &Host, addr: &PciAddress, cap: usize, timings: ResetTimings) -> Result<()> {
    let saved = saved_header(host, addr)?;
    let off = cap + PM_CTRL;
    let ctrl = u16::from_le_bytes([
        *saved.get(off).unwrap_or(&0),
        *saved.get(off + 1).unwrap_or(&0),
    ]);
    let d3hot = (ctrl & !3) | 3;
    let d0 = ctrl & !3;
    host.write_config(addr, off as u64, &d3hot.to_le_bytes())?;
    std::thread::sleep(timings.pm);
    host.write_config(addr, off as u64, &d0.to_le_bytes())?;
    std::thread::sleep(timings.pm);
    restore_header(host, addr, &saved)
}

fn bus_reset(
    host: &Host,
    addr: &PciAddress,
    book: &OwnershipBook,
    timings: ResetTimings,
) -> Result<PciAddress> {
    for other in super::plan::bus_neighbours(host, addr)? {
        if !book.is_inactive(&other) {
            return Err(Error::internal(format!(
                "Active {other} devices on bus with {addr}, not doing bus reset"
            )));
        }
    }
    let bridge = host
        .parent_bridge(addr)?
        .ok_or_else(|| Error::internal(format!("Failed to find parent device for {addr}")))?;
    let saved = saved_header(host, addr)?;
    let bcfg = host.config_space(&bridge)?;
    let ctl = bcfg.read_u16(BRIDGE_CONTROL).unwrap_or(0);
    host.write_config(
        &bridge,
        BRIDGE_CONTROL as u64,
        &(ctl | BRIDGE_CTL_BUS_RESET).to_le_bytes(),
    )?;
    std::thread::sleep(timings.bus);
    host.write_config(&bridge, BRIDGE_CONTROL as u64, &ctl.to_le_bytes())?;
    std::thread::sleep(timings.bus);
    restore_header(host, addr, &saved)?;
    Ok(bridge)
}
