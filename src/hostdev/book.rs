//! The ownership book: libvirt's two PCI lists, as plain data that is saved whole.
//!
//! * **active**: devices a domain uses, each with its owner (driver name, domain name). A device
//!   is "in use" exactly when it is here. An entry marked `interrupted` belongs to an operation
//!   that did not finish (a crash, or a rollback that failed): the device may be anywhere between
//!   its original driver and the stub, and the owner's next re-attach puts it back.
//! * **inactive**: devices on a stub that nobody uses (node-device detach, unmanaged devices
//!   adopted by a domain that has stopped).
//!
//! Every entry remembers where the device was before virtpci first moved it (`original`), so that
//! it can be put back exactly: driver and `driver_override`.

use crate::error::{Error, Result};
use crate::pci::PciAddress;
use serde::{Deserialize, Serialize};

/// Format tag of the saved book.
pub const FORMAT: &str = "virtpci-hostdev-state/1";

/// Where a device was: its driver (None = unbound) and its `driver_override` (None = clear).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DeviceState {
    pub driver: Option<String>,
    pub driver_override: Option<String>,
}

/// Who uses an active device: the daemon's driver name ("QEMU") and the domain name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub driver: String,
    pub domain: String,
}

impl Owner {
    pub fn new(driver: &str, domain: &str) -> Owner {
        Owner {
            driver: driver.to_string(),
            domain: domain.to_string(),
        }
    }

    /// An owner whose names are within [`crate::limits`] (what prepare and the other calls
    /// that book or look up an owner accept).
    pub fn checked(driver: &str, domain: &str) -> Result<Owner> {
        use crate::limits::{check_name, MAX_DOMAIN_NAME_BYTES, MAX_DRIVER_NAME_BYTES};
        check_name("driver name", driver, MAX_DRIVER_NAME_BYTES)?;
        check_name("domain name", domain, MAX_DOMAIN_NAME_BYTES)?;
        Ok(Owner::new(driver, domain))
    }
}

/// One device in either list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookEntry {
    #[serde(with = "address_text")]
    pub address: PciAddress,
    /// The stub driver the device is (to be) bound to: vfio-pci or a vfio variant.
    pub stub: String,
    /// libvirt's `managed` of the entry: whether re-attach gives it back to its host driver.
    /// An entry made by node-device detach or by adopting an unmanaged device is not managed.
    pub managed: bool,
    /// libvirt's `unbind_from_stub`: virtpci moved the device to the stub itself.
    pub unbind_from_stub: bool,
    /// Where the device was before virtpci moved it; `None` when unknown (entries rebuilt by
    /// update-active for devices virtpci never saw before).
    pub original: Option<DeviceState>,
    /// When the manager took the device, in seconds since the Unix epoch; `None` in books
    /// saved before virtpci recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<u64>,
}

/// Now, as [`BookEntry::since`] records it.
pub(crate) fn now_since() -> Option<u64> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

/// An entry of the active list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveEntry {
    #[serde(flatten)]
    pub entry: BookEntry,
    pub owner: Owner,
    /// The domain's UUID, as text, when the caller gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// Declared with `<address type='unassigned'/>`: detached and booked, hidden from the guest.
    #[serde(default)]
    pub unassigned: bool,
    /// Left by an operation that did not finish; see the module documentation.
    #[serde(default)]
    pub interrupted: bool,
    /// For a VF given as `<interface type='hostdev'>`: the MAC and VLAN its PF held for it
    /// before prepare set the domain's, restored by re-attach (libvirt's saved net config).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saved_net: Option<SavedNet>,
}

/// A VF's MAC and VLAN as its PF held them, saved before prepare changed them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedNet {
    #[serde(with = "address_text")]
    pub pf: PciAddress,
    pub index: u32,
    pub mac: String,
    pub vlan: u16,
}

/// Both lists, and the generation of the saved file they came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnershipBook {
    pub format: String,
    /// Incremented by every save; tells a reader whether the file changed.
    pub generation: u64,
    pub active: Vec<ActiveEntry>,
    pub inactive: Vec<BookEntry>,
}

impl Default for OwnershipBook {
    fn default() -> Self {
        OwnershipBook {
            format: FORMAT.to_string(),
            generation: 0,
            active: Vec::new(),
            inactive: Vec::new(),
        }
    }
}

impl OwnershipBook {
    pub fn from_json(text: &str, what: &str) -> Result<OwnershipBook> {
        let book: OwnershipBook = serde_json::from_str(text)
            .map_err(|e| Error::internal(format!("Failed to parse hostdev state '{what}': {e}")))?;
        if book.format != FORMAT {
            return Err(Error::internal(format!(
                "Failed to parse hostdev state '{what}': format '{}' is not '{FORMAT}'",
                book.format
            )));
        }
        book.check_unique(what)?;
        Ok(book)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    /// A device appears at most once in both lists together: anything else is a corrupt file.
    fn check_unique(&self, what: &str) -> Result<()> {
        let mut seen = std::collections::BTreeSet::new();
        let all = self
            .active
            .iter()
            .map(|a| a.entry.address)
            .chain(self.inactive.iter().map(|e| e.address));
        for a in all {
            if !seen.insert(a) {
                return Err(Error::internal(format!(
                    "Failed to parse hostdev state '{what}': device {a} is listed twice"
                )));
            }
        }
        Ok(())
    }

    pub fn active_entry(&self, addr: &PciAddress) -> Option<&ActiveEntry> {
        self.active.iter().find(|a| a.entry.address == *addr)
    }

    pub(crate) fn inactive_entry(&self, addr: &PciAddress) -> Option<&BookEntry> {
        self.inactive.iter().find(|e| e.address == *addr)
    }

    pub(crate) fn is_active(&self, addr: &PciAddress) -> bool {
        self.active_entry(addr).is_some()
    }

    pub fn is_inactive(&self, addr: &PciAddress) -> bool {
        self.inactive_entry(addr).is_some()
    }

    pub(crate) fn take_active(&mut self, addr: &PciAddress) -> Option<ActiveEntry> {
        let i = self.active.iter().position(|a| a.entry.address == *addr)?;
        Some(self.active.remove(i))
    }

    pub(crate) fn take_inactive(&mut self, addr: &PciAddress) -> Option<BookEntry> {
        let i = self.inactive.iter().position(|e| e.address == *addr)?;
        Some(self.inactive.remove(i))
    }

    /// Drop every record of `addr` (a device that left the host).
    pub(crate) fn forget(&mut self, addr: &PciAddress) {
        self.take_active(addr);
        self.take_inactive(addr);
    }

    /// The same lists without the generation, to compare contents.
    pub fn lists(&self) -> (Vec<ActiveEntry>, Vec<BookEntry>) {
        (self.active.clone(), self.inactive.clone())
    }
}

/// One device the manager holds (in either list), as a status listing shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeldDevice {
    #[serde(with = "address_text")]
    pub address: PciAddress,
    /// The domain using it; `None` in the inactive list (detached, unused).
    #[serde(flatten)]
    pub owner: Option<Owner>,
    /// The stub it is booked on.
    pub stub: String,
    pub managed: bool,
    /// Left half-moved by an operation that did not finish; the owner's re-attach puts it back.
    pub interrupted: bool,
    /// When the manager took it (RFC 3339, UTC), when recorded.
    #[serde(serialize_with = "since_text")]
    pub since: Option<u64>,
}

fn since_text<S: serde::Serializer>(
    since: &Option<u64>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match since {
        Some(secs) => s.serialize_str(&format_since(*secs)),
        None => s.serialize_none(),
    }
}

/// A [`BookEntry::since`] as RFC 3339 text in UTC (`2026-12-07T01:06:09Z`).
pub fn format_since(secs: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    humantime::format_rfc3339_seconds(t).to_string()
}

impl OwnershipBook {
    /// Every device of both lists, the active list first, each in address order.
    pub(crate) fn held_devices(&self) -> Vec<HeldDevice> {
        let mut active: Vec<HeldDevice> = self
            .active
            .iter()
            .map(|a| HeldDevice {
                address: a.entry.address,
                owner: Some(a.owner.clone()),
                stub: a.entry.stub.clone(),
                managed: a.entry.managed,
                interrupted: a.interrupted,
                since: a.entry.since,
            })
            .collect();
        let mut inactive: Vec<HeldDevice> = self
            .inactive
            .iter()
            .map(|e| HeldDevice {
                address: e.address,
                owner: None,
                stub: e.stub.clone(),
                managed: e.managed,
                interrupted: false,
                since: e.since,
            })
            .collect();
        active.sort_by_key(|d| d.address);
        inactive.sort_by_key(|d| d.address);
        active.extend(inactive);
        active
    }
}

/// libvirt's used-by error: `%s` is the device found in the list (a group sibling for the
/// group check).
/// What the message about a device an unfinished operation left half-moved says after the
/// owner; front ends add the command that recovers it.
pub const INTERRUPTED_NOTE: &str =
    "interrupted: an operation on it did not finish; re-attaching that domain's devices puts it back";

/// [`in_use_error`] for an active entry: an interrupted one says so.
pub(crate) fn held_error(addr: &PciAddress, held: &ActiveEntry) -> Error {
    let e = in_use_error(addr, &held.owner);
    if held.interrupted {
        Error::new(e.code, format!("{} ({INTERRUPTED_NOTE})", e.detail()))
    } else {
        e
    }
}

pub(crate) fn in_use_error(addr: &PciAddress, owner: &Owner) -> Error {
    Error::operation_invalid(format!(
        "PCI device {addr} is in use by driver {}, domain {}",
        owner.driver, owner.domain
    ))
}

mod address_text {
    use crate::pci::PciAddress;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(a: &PciAddress, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&a.to_string())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PciAddress, D::Error> {
        let text = String::deserialize(d)?;
        PciAddress::parse(&text).map_err(|e| serde::de::Error::custom(e.message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_duplicates() {
        let entry = BookEntry {
            address: PciAddress::new(0, 2, 0, 1),
            stub: "vfio-pci".into(),
            managed: true,
            unbind_from_stub: true,
            original: Some(DeviceState {
                driver: Some("tg3".into()),
                driver_override: None,
            }),
            since: now_since(),
        };
        let mut book = OwnershipBook::default();
        book.active.push(ActiveEntry {
            entry: entry.clone(),
            owner: Owner::new("QEMU", "vm1"),
            uuid: None,
            unassigned: true,
            interrupted: false,
            saved_net: None,
        });
        let again = OwnershipBook::from_json(&book.to_json(), "x").unwrap();
        assert_eq!(again, book);
        assert!(book.to_json().contains("\"address\": \"0000:02:00.1\""));
        book.inactive.push(entry);
        let e = OwnershipBook::from_json(&book.to_json(), "f").unwrap_err();
        assert!(e.message.contains("listed twice"), "{}", e.message);
        assert!(OwnershipBook::from_json("{", "f").is_err());
    }

    #[test]
    fn held_devices_list_both_lists() {
        let entry = |f| BookEntry {
            address: PciAddress::new(0, 2, 0, f),
            stub: "vfio-pci".into(),
            managed: true,
            unbind_from_stub: true,
            original: None,
            since: None,
        };
        let mut book = OwnershipBook::default();
        book.inactive.push(entry(0));
        book.active.push(ActiveEntry {
            entry: entry(1),
            owner: Owner::new("QEMU", "vm1"),
            uuid: None,
            unassigned: false,
            interrupted: true,
            saved_net: None,
        });
        let held = book.held_devices();
        assert_eq!(held.len(), 2);
        assert_eq!(held[0].owner, Some(Owner::new("QEMU", "vm1")));
        assert!(held[0].interrupted);
        assert_eq!(
            (held[1].address, held[1].owner.clone()),
            (PciAddress::new(0, 2, 0, 0), None)
        );
        let json = serde_json::to_value(&held).unwrap();
        assert_eq!(json[0]["domain"], "vm1");
        assert_eq!(json[0]["driver"], "QEMU");
        assert!(json[1].get("domain").is_none());
    }
}
