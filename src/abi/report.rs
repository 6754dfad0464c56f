//! What the ABI check reports: each change, where the device sits, and the report as text,
//! JSON or a strict-mode error.

use super::layout::{ControllerId, LayoutMode};
use crate::error::{Error, ErrorCode};
use serde::Serialize;

/// What changed about one device or controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    /// A device with a PCI address (or an unassigned host device) is only in the old
    /// definition.
    DeviceRemoved,
    /// A device with a PCI address is only in the new definition.
    DeviceAdded,
    /// The device's guest PCI address changed.
    AddressMoved,
    /// The device went from a PCI address to none or `unassigned`, or the other way.
    AddressType,
    /// The multifunction bit of the device's function changed (the guest sees it).
    MultifunctionFlipped,
    /// `multifunction` changed between absent and `off`: the same bit, not guest-visible.
    MultifunctionSpelling,
    /// The device model the guest sees changed (NIC model, controller model, video type).
    DeviceModel,
    /// A PCI controller is only in the old definition.
    ControllerRemoved,
    /// A PCI controller is only in the new definition.
    ControllerAdded,
    /// A PCI controller's index changed.
    ControllerRenumbered,
    /// A PCI controller's model changed.
    ControllerModel,
    /// A PCI controller's `<model name>` changed.
    ControllerModelName,
    /// A PCI controller's `<target>` value changed (chassisNr, chassis, port, busNr, index,
    /// hotplug, node); the attribute is in [`AbiChange::attribute`].
    ControllerTarget,
    /// s390x: a zPCI identifier of a device on PCI changed; `uid` or `fid` is in
    /// [`AbiChange::attribute`].
    ZpciChanged,
    /// The machine type changed.
    Machine,
}

impl ChangeKind {
    fn describe(self) -> &'static str {
        match self {
            ChangeKind::DeviceRemoved => "removed",
            ChangeKind::DeviceAdded => "added",
            ChangeKind::AddressMoved => "address moved",
            ChangeKind::AddressType => "address changed",
            ChangeKind::MultifunctionFlipped => "multifunction bit flipped",
            ChangeKind::MultifunctionSpelling => "multifunction attribute respelled",
            ChangeKind::DeviceModel => "model changed",
            ChangeKind::ControllerRemoved => "controller removed",
            ChangeKind::ControllerAdded => "controller added",
            ChangeKind::ControllerRenumbered => "controller renumbered",
            ChangeKind::ControllerModel => "controller model changed",
            ChangeKind::ControllerModelName => "controller model name changed",
            ChangeKind::ControllerTarget => "controller target changed",
            ChangeKind::ZpciChanged => "zPCI identifier changed",
            ChangeKind::Machine => "machine type changed",
        }
    }
}

/// Where a device is in one definition: its element name and 1-based position among the
/// `<devices>` children with that name (as `pci-layout` counts them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Position {
    pub tag: String,
    pub ordinal: usize,
    /// For a controller: its type, index and model (PCI controllers are known by index).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub controller: Option<ControllerId>,
}

/// One guest-visible (or, for [`ChangeKind::MultifunctionSpelling`], merely written) change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AbiChange {
    pub kind: ChangeKind,
    /// The device, as named in the new definition when it is there, else in the old one.
    pub device: String,
    /// For [`ChangeKind::ControllerTarget`], the `<target>` attribute; for
    /// [`ChangeKind::ZpciChanged`], `uid` or `fid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attribute: Option<String>,
    /// The old value (`None` for an addition or an absent value).
    pub old: Option<String>,
    /// The new value (`None` for a removal or an absent value).
    pub new: Option<String>,
    /// Whether the guest can tell the difference.
    pub guest_visible: bool,
    /// Why it happened or how to avoid it, when that is not obvious.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The device in the old definition, if it is there.
    pub old_position: Option<Position>,
    /// The device in the new definition, if it is there.
    pub new_position: Option<Position>,
}

impl std::fmt::Display for AbiChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.device, self.kind.describe())?;
        if let Some(attr) = &self.attribute {
            write!(f, " ({attr})")?;
        }
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "absent".to_string());
        match self.kind {
            ChangeKind::DeviceAdded | ChangeKind::ControllerAdded => {
                write!(f, " at {}", show(&self.new))?
            }
            ChangeKind::DeviceRemoved | ChangeKind::ControllerRemoved => {
                write!(f, " from {}", show(&self.old))?
            }
            _ => write!(f, ": {} -> {}", show(&self.old), show(&self.new))?,
        }
        if !self.guest_visible {
            f.write_str(" [not guest-visible]")?;
        }
        if let Some(note) = &self.note {
            write!(f, " ({note})")?;
        }
        Ok(())
    }
}

/// How to compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbiOptions {
    pub mode: LayoutMode,
}

impl Default for AbiOptions {
    fn default() -> AbiOptions {
        AbiOptions {
            mode: LayoutMode::Effective,
        }
    }
}

/// The result of [`check_abi_stability`](super::check_abi_stability).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AbiReport {
    /// The guest's name (the new definition's).
    pub guest: Option<String>,
    /// `effective` or `as-given`.
    pub mode: &'static str,
    pub changes: Vec<AbiChange>,
}

impl AbiReport {
    /// The changes the guest can tell.
    pub fn guest_visible(&self) -> impl Iterator<Item = &AbiChange> {
        self.changes.iter().filter(|c| c.guest_visible)
    }

    /// No guest-visible change.
    pub fn is_stable(&self) -> bool {
        self.guest_visible().next().is_none()
    }

    /// A plain-text report: a summary line, then one line per change.
    pub fn to_text(&self) -> String {
        let visible = self.guest_visible().count();
        let guest = self
            .guest
            .as_deref()
            .map(|n| format!("guest '{n}'"))
            .unwrap_or_else(|| "the guest".to_string());
        let mut out = if visible == 0 {
            format!("{guest}: PCI ABI unchanged")
        } else {
            format!("{guest}: {visible} guest-visible PCI change(s)")
        };
        let hidden = self.changes.len() - visible;
        if hidden > 0 {
            out.push_str(&format!(", {hidden} not guest-visible"));
        }
        out.push_str(&format!(" ({} layouts compared)\n", self.mode));
        for c in &self.changes {
            out.push_str("  ");
            out.push_str(&c.to_string());
            out.push('\n');
        }
        out
    }

    /// The report as JSON (`{"guest":..,"mode":..,"stable":..,"changes":[..]}`).
    pub fn to_json(&self) -> String {
        #[derive(Serialize)]
        struct Json<'a> {
            #[serde(flatten)]
            report: &'a AbiReport,
            stable: bool,
            guest_visible_changes: usize,
        }
        serde_json::to_string_pretty(&Json {
            report: self,
            stable: self.is_stable(),
            guest_visible_changes: self.guest_visible().count(),
        })
        .unwrap_or_default()
    }

    /// The strict-mode error: every guest-visible change, one per line.
    pub fn strict_error(&self) -> Option<Error> {
        let lines: Vec<String> = self.guest_visible().map(|c| c.to_string()).collect();
        if lines.is_empty() {
            return None;
        }
        Some(Error::new(
            ErrorCode::ConfigUnsupported,
            format!(
                "guest PCI ABI changed ({} change(s)): {}",
                lines.len(),
                lines.join("; ")
            ),
        ))
    }
}
