//! Why each device got its address, which controllers were added and why, and the warnings
//! about a guest's PCI layout (a slot used without function 0; see docs/decisions.md).
//!
//! `guest_warnings` is the guest section of `virtpci check`; [`explain`] is
//! `virtpci assign --explain`.

use super::host::{read_host, AssignHost};
use super::mirror::{CellMapping, Mirroring};
use super::plan::{device_flags, plan, plan_isolated};
use super::set::AddressSet;
use super::AssignOptions;
use crate::error::{quote, Error, Result};
use crate::pci::PciAddress;
use crate::topology::{ConnectFlags, MachineKind, PciModel};
use crate::xml::domain::{Device, DeviceAddress, DeviceKind, DomainDef};
use crate::xml::identity::Identity;
use crate::xml::Document;
use serde::Serialize;

/// What a warning is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WarningKind {
    /// A slot has functions above 0 in use but nothing at function 0.
    SlotWithoutFunctionZero,
    /// Anything else the assignment reported (e.g. a non-PCI device with a PCI address).
    Assignment,
}

/// A warning about a guest's PCI layout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Warning {
    pub kind: WarningKind,
    /// The slot concerned (function 0), when there is one.
    #[serde(serialize_with = "serialize_opt_addr")]
    pub slot: Option<PciAddress>,
    pub message: String,
}

fn serialize_opt_addr<S: serde::Serializer>(
    addr: &Option<PciAddress>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match addr {
        Some(a) => s.serialize_str(&a.to_string()),
        None => s.serialize_none(),
    }
}

/// The guest families a machine type stands for, as far as function 0 goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GuestFamily {
    X86,
    PSeries,
    Other,
}

fn family(def: &DomainDef) -> GuestFamily {
    match def.machine_kind {
        MachineKind::I440fx | MachineKind::Q35 => GuestFamily::X86,
        MachineKind::Pseries => GuestFamily::PSeries,
        MachineKind::ArmVirt
        | MachineKind::RiscvVirt
        | MachineKind::S390Ccw
        | MachineKind::Other => GuestFamily::Other,
    }
}

/// A device's name from its kind alone (no XML at hand).
fn kind_name(device: &Device) -> String {
    match &device.kind {
        DeviceKind::Controller(c) => c.describe(),
        DeviceKind::Disk { target, .. } => format!("disk {}", quote(target)),
        DeviceKind::Net { model, .. } => match model {
            Some(m) => format!("interface ({})", quote(m)),
            None => "interface".into(),
        },
        DeviceKind::Hostdev(_) => "hostdev".into(),
        DeviceKind::Sound { model } => format!("sound ({})", quote(model)),
        DeviceKind::Memballoon { .. } => "memballoon".into(),
        DeviceKind::Video { model, .. } => format!("video ({})", quote(model)),
        DeviceKind::Rng { .. } => "rng".into(),
        DeviceKind::Watchdog { .. } => "watchdog".into(),
        DeviceKind::Filesystem { .. } => "filesystem".into(),
        DeviceKind::Input { .. } => "input".into(),
        DeviceKind::Shmem => "shmem".into(),
        _ => "device".into(),
    }
}

/// The slots of the final layout with functions above 0 but no function 0. Function 0 may
/// also be a chipset function the set reserves without a device (q35's 1f.0).
fn slots_missing_function_zero(
    def: &DomainDef,
    set: &AddressSet,
) -> Vec<(PciAddress, Vec<String>)> {
    let mut slots: Vec<(PciAddress, Vec<String>)> = Vec::new();
    for d in &def.devices {
        let Some(a) = d.address.present_pci() else {
            continue;
        };
        if a.function == 0 {
            continue;
        }
        let slot = PciAddress { function: 0, ..a };
        let zero_used = set
            .buses
            .get(a.bus as usize)
            .and_then(|b| b.slots.get(a.slot as usize))
            .is_some_and(|s| s.functions & 1 != 0);
        if zero_used {
            continue;
        }
        let name = format!("{a} ({})", kind_name(d));
        match slots.iter_mut().find(|(s, _)| *s == slot) {
            Some((_, list)) => list.push(name),
            None => slots.push((slot, vec![name])),
        }
    }
    for (_, list) in &mut slots {
        list.sort();
    }
    slots
}

fn slot_name(a: &PciAddress) -> String {
    format!("{:04x}:{:02x}:{:02x}", a.domain, a.bus, a.slot)
}

/// The function 0 warnings of a planned definition: every slot used without function 0,
/// naming the slot, its functions and the guests that will not see them.
pub(crate) fn function_zero_warnings(def: &DomainDef, set: &AddressSet) -> Vec<Warning> {
    let fam = family(def);
    slots_missing_function_zero(def, set)
        .into_iter()
        .map(|(slot, functions)| {
            let what = functions.join(", ");
            let who = match fam {
                GuestFamily::X86 => format!(
                    "Linux and Windows guests on x86 scan a slot's other functions only when \
                     function 0 answers, so they will not see {what}"
                ),
                GuestFamily::PSeries => format!(
                    "pSeries guests still find {what} (the firmware lists every function), but \
                     guests that scan a slot's other functions only when function 0 answers \
                     (Linux and Windows on x86) would not"
                ),
                GuestFamily::Other => format!(
                    "guests that scan a slot's other functions only when function 0 answers \
                     (Linux and Windows on x86, for instance) will not see {what}"
                ),
            };
            Warning {
                kind: WarningKind::SlotWithoutFunctionZero,
                slot: Some(slot),
                message: format!(
                    "guest PCI slot {} is used without function 0: {who}",
                    slot_name(&slot)
                ),
            }
        })
        .collect()
}

/// `VIRTPCI_ASSIGN_STRICT_FUNCTION0`: on x86 machine types a slot used without function 0 is
/// an error (`VIRTPCI_ERR_CONFIG_UNSUPPORTED`); other machines (pSeries) stay accepted.
pub(crate) fn check_function_zero_strict(def: &DomainDef, set: &AddressSet) -> Result<()> {
    if family(def) != GuestFamily::X86 {
        return Ok(());
    }
    let slots = slots_missing_function_zero(def, set);
    let Some((slot, functions)) = slots.first() else {
        return Ok(());
    };
    Err(Error::config_unsupported(format!(
        "guest PCI slot {} has functions above 0 but no function 0 ({}): x86 guests will not \
         see them; put a device at function 0 of the slot{}",
        slot_name(slot),
        functions.join(", "),
        if slots.len() > 1 {
            format!(" ({} such slots)", slots.len())
        } else {
            String::new()
        }
    )))
}

/// The warnings of the guest defined by `xml` after libvirt's assignment: the warning for
/// each slot without function 0, and what the assignment itself warned about. This is the
/// guest section of `virtpci check`.
pub(crate) fn guest_warnings(xml: &str) -> Result<Vec<Warning>> {
    let doc = Document::parse(xml)?;
    let done = plan(DomainDef::from_document(&doc)?)?;
    let mut warnings = function_zero_warnings(&done.def, &done.set);
    warnings.extend(done.warnings.iter().map(|w| Warning {
        kind: WarningKind::Assignment,
        slot: None,
        message: w.clone(),
    }));
    Ok(warnings)
}

/// The texts of the guest's warnings (`guest_warnings`), which `virtpci check` and the C
/// API's dry run of a domain add to the hostdev report: a domain the assignment refuses gets
/// one warning saying so, with the refusal.
pub fn guest_warning_messages(xml: &str) -> Vec<String> {
    match guest_warnings(xml) {
        Ok(guest) => guest.into_iter().map(|w| w.message).collect(),
        Err(e) => vec![format!(
            "the guest's PCI slots were not checked: {}",
            e.message
        )],
    }
}

/// Why a device has the address it has.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Reason {
    /// The definition wrote it.
    Explicit,
    /// The chipset fixes it (PIIX3 IDE/USB, ICH9 SATA/USB2/audio, primary video, DMI bridge).
    Chipset { detail: String },
    /// The first free place, searching buses in order, that accepts the device.
    FirstFree { accepts: String },
    /// The device was added by the assignment (a default device or an implicit controller).
    Added { detail: String },
    /// Behind an expander bus on guest NUMA node `node`: the device's `numa` preference, or
    /// (`host_device` set) the NUMA node of its host device, mirrored.
    NumaNode {
        node: u32,
        /// Mirroring: the host device, its host NUMA node and how the cell was found
        /// (`memnode`: a `<numatune><memnode>`; `same-number`: no memnode, same number).
        #[serde(skip_serializing_if = "Option::is_none")]
        host_device: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        host_node: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        mapping: Option<String>,
    },
    /// s390x: a virtio device on the channel subsystem (CCW), not on PCI.
    Ccw { detail: String },
    /// pseries with a host: a host device on the first free place of a PHB kept for its
    /// host IOMMU group (libvirt's isolation groups).
    Isolated { iommu_group: u32 },
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Explicit => f.write_str("written in the definition"),
            Reason::Chipset { detail } => write!(f, "reserved by the chipset: {detail}"),
            Reason::FirstFree { accepts } => write!(
                f,
                "first free place, searching buses in order, accepting its connect flags ({accepts})"
            ),
            Reason::Added { detail } => write!(f, "added: {detail}"),
            Reason::NumaNode {
                node,
                host_device: Some(host),
                host_node: Some(host_node),
                mapping,
            } => {
                let how = if mapping.as_deref() == Some("memnode") {
                    format!("<numatune> maps guest cell {node} to host node {host_node}")
                } else {
                    "no <numatune> memnode, so the cell of the same number".to_string()
                };
                write!(
                    f,
                    "behind the expander bus of guest NUMA node {node}, mirroring host device \
                     {host} on host NUMA node {host_node} ({how})"
                )
            }
            Reason::NumaNode { node, .. } => write!(
                f,
                "behind the expander bus of guest NUMA node {node}, as its addressPreferences \
                 numa='{node}' asks"
            ),
            Reason::Ccw { detail } => write!(f, "on the channel subsystem (s390x CCW): {detail}"),
            Reason::Isolated { iommu_group } => write!(
                f,
                "first free place on a PHB kept for host IOMMU group {iommu_group} (host \
                 devices of different IOMMU groups go on different PHBs, none on the default one)"
            ),
        }
    }
}

/// One device of the explanation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeviceExplanation {
    pub device: String,
    /// The guest PCI address, or `unassigned`.
    pub address: String,
    pub reason: Reason,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason_text: Option<String>,
    /// Why host-NUMA mirroring left the device where the usual placement put it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirroring: Option<String>,
}

/// What `virtpci assign --explain` prints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Explanation {
    pub machine: Option<String>,
    pub devices: Vec<DeviceExplanation>,
    pub warnings: Vec<Warning>,
}

impl Explanation {
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "machine {}\n",
            self.machine.as_deref().unwrap_or("(default: pc)")
        );
        for d in &self.devices {
            out.push_str(&format!("{}  {}: {}\n", d.address, d.device, d.reason));
            if let Some(note) = &d.mirroring {
                out.push_str(&format!("    not mirrored: {note}\n"));
            }
        }
        for w in &self.warnings {
            out.push_str(&format!("warning: {}\n", w.message));
        }
        out
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// A device's name, with its identity when the XML has one.
fn device_name(doc: &Document<'_>, device: &Device) -> String {
    let Some(id) = device.element else {
        return format!("{} (added)", kind_name(device));
    };
    if device.controller().is_some() {
        return kind_name(device);
    }
    let identity = Identity::of(doc, id);
    // Here a filesystem, like the kinds without a key, is named by its model.
    let detail = match identity.tag {
        "interface" | "disk" | "hostdev" => identity.key(),
        _ => identity
            .model_type
            .or_else(|| doc.attr(id, "model"))
            .map(str::to_string),
    };
    identity.label(detail.as_deref())
}

fn describe_flags(flags: ConnectFlags) -> String {
    let mut parts = vec![flags.required_type_name().unwrap_or("device").to_string()];
    if flags.intersects(ConnectFlags::HOTPLUGGABLE) {
        parts.push("hotpluggable".into());
    }
    if flags.intersects(ConnectFlags::AGGREGATE_SLOT) {
        parts.push("may share a slot with other root ports".into());
    }
    parts.join(", ")
}

/// The chipset placement that explains `addr` for `device`, if one does: the slots the
/// chipset or the primary video take before any other device.
fn chipset_reason(
    def: &DomainDef,
    i: usize,
    addr: &PciAddress,
    primary_video: Option<usize>,
) -> Option<String> {
    let device = &def.devices[i];
    let on_root = addr.domain == 0 && addr.bus == 0;
    if !on_root {
        return None;
    }
    let (slot, function) = (addr.slot, addr.function);
    match def.machine_kind {
        MachineKind::I440fx => match &device.kind {
            DeviceKind::Controller(c) if c.ctype == "ide" && c.index() == 0 => {
                Some("the PIIX3 IDE controller is function 1 of slot 1".into())
            }
            DeviceKind::Controller(c)
                if c.ctype == "usb" && c.index() == 0 && slot == 1 && function == 2 =>
            {
                Some("the PIIX3 USB controller is function 2 of slot 1".into())
            }
            DeviceKind::Video { .. } if Some(i) == primary_video && slot == 2 && function == 0 => {
                Some("the primary video goes to slot 2 on i440fx".into())
            }
            _ => None,
        },
        MachineKind::Q35 => match &device.kind {
            DeviceKind::Controller(c) if c.ctype == "sata" && c.index() == 0 => {
                Some("the ICH9 SATA controller is 1f.2".into())
            }
            DeviceKind::Controller(c)
                if c.ctype == "usb"
                    && c.model.is_some_and(|m| m.starts_with("ich9-"))
                    && (slot == 0x1d || slot == 0x1a) =>
            {
                Some(format!(
                    "ICH9 has its USB2 controllers at slots 1d and 1a (function {function})"
                ))
            }
            DeviceKind::Controller(c)
                if c.pci_model() == Some(PciModel::DmiToPciBridge) && slot == 0x1e =>
            {
                Some("the DMI-to-PCI bridge goes to slot 1e on q35".into())
            }
            DeviceKind::Video { .. } if Some(i) == primary_video && slot == 1 && function == 0 => {
                Some("the primary video goes to slot 1 on q35".into())
            }
            DeviceKind::Sound { model } if *model == "ich9" && slot == 0x1b => {
                Some("the first ich9 sound device is ICH9's HD audio at 1b.0".into())
            }
            _ => None,
        },
        MachineKind::ArmVirt
        | MachineKind::RiscvVirt
        | MachineKind::S390Ccw
        | MachineKind::Pseries
        | MachineKind::Other => None,
    }
}

/// Why an added controller is there.
fn added_controller_reason(def: &DomainDef, device: &Device) -> String {
    let Some(c) = device.controller() else {
        return "a default device libvirt adds to every guest of this machine type".into();
    };
    let Some((_, model)) = device.pci_controller() else {
        return format!(
            "the implicit {} controller libvirt adds for this machine type",
            c.ctype
        );
    };
    if model.is_root() {
        return "the root bus of the machine".into();
    }
    let index = c.index();
    let behind: Vec<String> = def
        .devices
        .iter()
        .filter(|d| d.address.present_pci().is_some_and(|a| a.bus == index))
        .map(kind_name)
        .collect();
    if let Some(node) = expander_node(def, index) {
        let what = if matches!(model, PciModel::PciExpanderBus | PciModel::PcieExpanderBus) {
            format!("the expander bus {index} ({model}) of guest NUMA node {node}")
        } else {
            format!("bus {index} ({model}) behind the expander bus of guest NUMA node {node}")
        };
        return format!(
            "{what}, added for devices placed on that node (a numa preference or host-NUMA \
             mirroring): {}",
            if behind.is_empty() {
                "none yet, left for hotplug".to_string()
            } else {
                behind.join(", ")
            }
        );
    }
    if behind.is_empty() {
        return format!(
            "bus {index} ({model}) was added when a bus was needed and is left empty for hotplug"
        );
    }
    format!(
        "bus {index} ({model}) was needed because the buses before it were full or could not \
         take: {}",
        behind.join(", ")
    )
}

/// The guest NUMA node of bus `index`: its own expander's `<node>`, or that of the expander
/// it sits behind.
fn expander_node(def: &DomainDef, index: u32) -> Option<i64> {
    let nbuses = index as usize + 1;
    def.inherited_by_buses(nbuses, |c, m| {
        matches!(m, PciModel::PciExpanderBus | PciModel::PcieExpanderBus)
            .then(|| c.pci.as_ref().and_then(|(_, o)| o.numa_node))
            .flatten()
    })
    .get(index as usize)
    .copied()
    .flatten()
}

/// Assign the guest in `xml` and say why each device got its address.
pub fn explain(xml: &str) -> Result<Explanation> {
    explain_with(xml, &AssignOptions::default())
}

/// [`explain`] for the assignment made with `options` (hotplug room, extend mode).
pub fn explain_with(xml: &str, options: &AssignOptions) -> Result<Explanation> {
    explain_on_host(xml, options, None, false)
}

/// [`explain_with`] for the assignment that reads `host` ([`super::assign_domain_xml_mirroring`]:
/// NUMA mirroring on pc/q35, isolation groups on pseries): each mirrored device says which
/// host node it follows, each device left alone says why.
pub fn explain_mirroring(
    xml: &str,
    options: &AssignOptions,
    host: Option<&dyn AssignHost>,
) -> Result<Explanation> {
    explain_on_host(xml, options, host, true)
}

/// [`explain_mirroring`] for [`super::assign_domain_xml_on_host`]: NUMA mirroring only with
/// `mirror_numa`.
pub fn explain_on_host(
    xml: &str,
    options: &AssignOptions,
    host: Option<&dyn AssignHost>,
    mirror_numa: bool,
) -> Result<Explanation> {
    let doc = Document::parse(xml)?;
    let mut def = DomainDef::from_document(&doc)?;
    let reading = read_host(&doc, &mut def, host, mirror_numa)?;
    let mirrored: &[Mirroring] = &reading.mirrored;
    let asked_numa: Vec<Option<u32>> = def.devices.iter().map(|d| d.prefs.numa).collect();
    let written: Vec<bool> = def
        .devices
        .iter()
        .map(|d| d.address.present_pci().is_some() || d.address == DeviceAddress::Unassigned)
        .collect();
    let machine = def.machine.map(str::to_string);
    let done = plan_isolated(def, options, reading.isolation.clone())?;
    let def = &done.def;
    let pcie = if def.devices.iter().any(|d| {
        d.pci_controller()
            .is_some_and(|(c, m)| m == PciModel::PcieRoot && c.index() == 0)
    }) {
        ConnectFlags::PCIE_AUTO
    } else {
        ConnectFlags::PCI_AUTO
    };
    let primary_video = {
        let videos: Vec<usize> = (0..def.devices.len())
            .filter(|&i| matches!(def.devices[i].kind, DeviceKind::Video { .. }))
            .collect();
        videos
            .iter()
            .copied()
            .find(|&i| matches!(def.devices[i].kind, DeviceKind::Video { primary: true, .. }))
            .or(videos.first().copied())
    };
    let mut devices = Vec::new();
    for (i, device) in def.devices.iter().enumerate() {
        let s390 = done.s390.get(i).copied().unwrap_or_default();
        let given_ccw = def.s390.get(i).and_then(|a| a.ccw);
        if let Some(ccw) = s390.ccw.or(given_ccw) {
            let detail = if s390.ccw.is_some() {
                "virtio devices without an address go on CCW: the lowest free device number of \
                 channel subsystem 0xfe, subchannel set 0, in device order"
            } else {
                "written in the definition"
            };
            devices.push(DeviceExplanation {
                device: device_name(&doc, device),
                address: ccw.to_string(),
                reason_text: Some(format!("on the channel subsystem (s390x CCW): {detail}")),
                reason: Reason::Ccw {
                    detail: detail.to_string(),
                },
                mirroring: None,
            });
            continue;
        }
        let address = match &device.address {
            DeviceAddress::Unassigned => "unassigned".to_string(),
            a => match a.present_pci() {
                Some(addr) => addr.to_string(),
                None => continue,
            },
        };
        let reason = if device.element.is_none() {
            Reason::Added {
                detail: added_controller_reason(def, device),
            }
        } else if written.get(i).copied().unwrap_or(false) {
            Reason::Explicit
        } else if let Some(node) = asked_numa.get(i).copied().flatten() {
            let m = mirrored.iter().find(|m| m.device == i);
            Reason::NumaNode {
                node,
                host_device: m.map(|m| m.host.to_string()),
                host_node: m.and_then(|m| m.host_node),
                mapping: m.and_then(|m| m.guest_cell).map(|(_, how)| {
                    match how {
                        CellMapping::Memnode => "memnode",
                        CellMapping::SameNumber => "same-number",
                    }
                    .to_string()
                }),
            }
        } else if let Some(&group) = reading.isolation.get(i).filter(|&&g| g > 0) {
            Reason::Isolated {
                iommu_group: group - 1,
            }
        } else {
            let addr = device.address.present_pci().unwrap_or_default();
            match chipset_reason(def, i, &addr, primary_video) {
                Some(detail) => Reason::Chipset { detail },
                None => Reason::FirstFree {
                    accepts: describe_flags(device_flags(device, pcie, pcie)),
                },
            }
        };
        let not_mirrored = mirrored
            .iter()
            .find(|m| m.device == i)
            .and_then(|m| m.warning.clone());
        // s390x: the zPCI identifiers given with the address (lowest free uid from 1, fid
        // from 0, in device order).
        let address = match s390.zpci {
            Some((uid, fid)) => format!("{address} zpci uid 0x{uid:04x} fid 0x{fid:08x}"),
            None => address,
        };
        devices.push(DeviceExplanation {
            device: device_name(&doc, device),
            address,
            reason_text: Some(reason.to_string()),
            reason,
            mirroring: not_mirrored,
        });
    }
    let mut warnings: Vec<Warning> = reading
        .warnings
        .iter()
        .cloned()
        .map(|message| Warning {
            kind: WarningKind::Assignment,
            slot: None,
            message,
        })
        .collect();
    warnings.extend(function_zero_warnings(def, &done.set));
    for w in &done.warnings {
        warnings.push(Warning {
            kind: WarningKind::Assignment,
            slot: None,
            message: w.clone(),
        });
    }
    Ok(Explanation {
        machine,
        devices,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dom(machine: &str, devices: &str) -> String {
        format!(
            "<domain type='qemu'><name>g</name><os><type machine='{machine}'>hvm</type></os>\
             <devices>{devices}</devices></domain>"
        )
    }

    const LONE_F2: &str = "<interface type='user'><model type='e1000'/>\
        <address type='pci' bus='0' slot='5' function='2'/></interface>";

    #[test]
    fn x86_warning_names_the_slot_and_the_guests() {
        let w = guest_warnings(&dom("pc", LONE_F2)).unwrap();
        let s1: Vec<_> = w
            .iter()
            .filter(|w| w.kind == WarningKind::SlotWithoutFunctionZero)
            .collect();
        assert_eq!(s1.len(), 1, "{w:?}");
        assert_eq!(s1[0].slot, Some(PciAddress::new(0, 0, 5, 0)));
        let m = &s1[0].message;
        assert!(
            m.contains("guest PCI slot 0000:00:05 is used without function 0"),
            "{m}"
        );
        assert!(m.contains("Linux and Windows guests on x86"), "{m}");
        assert!(m.contains("0000:00:05.2 (interface (e1000))"), "{m}");
    }

    #[test]
    fn strict_function_zero_on_x86_and_unplaced_machines_refused() {
        // A machine virtpci does not place (pseries without its PHB rules here) is refused
        // instead of being returned with its devices unplaced.
        let devices = format!("<controller type='pci' index='0' model='pci-root'/>{LONE_F2}");
        let err = guest_warnings(&dom("pseries", &devices)).unwrap_err();
        assert!(
            err.message.contains("does not place PCI addresses"),
            "{}",
            err.message
        );
        let strict = super::super::AssignOptions {
            strict_function0: true,
            ..Default::default()
        };
        let err = super::super::assign_domain_xml_with(&dom("pc", LONE_F2), strict).unwrap_err();
        assert_eq!(err.code, crate::error::ErrorCode::ConfigUnsupported);
        assert!(
            err.message
                .contains("guest PCI slot 0000:00:05 has functions above 0 but no function 0"),
            "{}",
            err.message
        );
    }

    #[test]
    fn chipset_function_zero_counts() {
        // q35's 1f.0 is the LPC bridge: a device at 1f.4 is seen.
        let dev = "<interface type='user'><model type='e1000e'/>\
            <address type='pci' bus='0' slot='0x1f' function='4'/></interface>";
        let w = guest_warnings(&dom("q35", dev)).unwrap();
        assert!(
            w.iter()
                .all(|w| w.kind != WarningKind::SlotWithoutFunctionZero),
            "{w:?}"
        );
    }

    #[test]
    fn explain_gives_reasons() {
        let x = explain(&dom(
            "q35",
            "<controller type='pci' index='0' model='pcie-root'/>\
             <interface type='user'><mac address='52:54:00:00:00:01'/><model type='virtio'/></interface>\
             <video><model type='qxl' primary='yes'/></video>\
             <memballoon model='none'/>",
        ))
        .unwrap();
        let find = |name: &str| {
            x.devices
                .iter()
                .find(|d| d.device.starts_with(name))
                .unwrap_or_else(|| panic!("{name} not in {x:?}"))
        };
        assert_eq!(find("interface (mac").address, "0000:01:00.0");
        assert!(matches!(
            find("interface (mac").reason,
            Reason::FirstFree { .. }
        ));
        assert!(find("interface (mac")
            .reason
            .to_string()
            .contains("PCI Express device"));
        assert!(matches!(find("video").reason, Reason::Chipset { .. }));
        let port = find("controller pci index 1 (pcie-root-port) (added)");
        assert!(
            port.reason
                .to_string()
                .contains("bus 1 (pcie-root-port) was needed"),
            "{port:?}"
        );
        assert!(matches!(
            find("controller sata").reason,
            Reason::Added { .. }
        ));
        assert!(x.to_text().contains("0000:00:1f.2"));
        assert!(x.to_json().contains("\"kind\": \"first-free\""));
    }
}
