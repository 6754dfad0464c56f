//! What the hostdev manager holds, with where each device is now, and the devices on a vfio
//! driver it does not hold: the report of `virtpci status` and of the C API's status JSON.

use super::book::{HeldDevice, OwnershipBook};
use super::moves::is_vfio_driver;
use crate::error::Result;
use crate::host::Host;
use crate::pci::PciAddress;
use serde::Serialize;

/// One held device and the driver sysfs shows it on now.
#[derive(Debug, Clone, Serialize)]
pub struct HeldNow {
    #[serde(flatten)]
    pub held: HeldDevice,
    /// `None` when unbound, or when the device left the host.
    pub bound_to: Option<String>,
}

/// A device on a vfio driver that the manager does not hold (bound by hand, by another tool,
/// or left behind by a lost state directory).
#[derive(Debug, Clone, Serialize)]
pub struct UnheldVfio {
    #[serde(serialize_with = "as_text")]
    pub address: PciAddress,
    pub bound_to: String,
}

fn as_text<S: serde::Serializer>(a: &PciAddress, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&a.to_string())
}

/// Both lists (the active list first), each device with its current driver, and the vfio
/// devices nobody holds.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub state_dir: String,
    pub devices: Vec<HeldNow>,
    pub unheld_vfio: Vec<UnheldVfio>,
}

impl StatusReport {
    /// Read where each device of `book` is on `host`, and look for unheld vfio devices.
    pub fn new(host: &Host, book: &OwnershipBook, state_dir: &str) -> Result<StatusReport> {
        let held = book.held_devices();
        let mut unheld_vfio = Vec::new();
        for address in host.device_addresses()? {
            if held.iter().any(|d| d.address == address) {
                continue;
            }
            if let Some(driver) = host.driver(&address)?.filter(|d| is_vfio_driver(d)) {
                unheld_vfio.push(UnheldVfio {
                    address,
                    bound_to: driver,
                });
            }
        }
        let devices = held
            .into_iter()
            .map(|held| HeldNow {
                bound_to: host.driver(&held.address).unwrap_or(None),
                held,
            })
            .collect();
        Ok(StatusReport {
            state_dir: state_dir.to_string(),
            devices,
            unheld_vfio,
        })
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a status report serializes") + "\n"
    }
}
