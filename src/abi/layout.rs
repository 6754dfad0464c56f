//! The guest-visible PCI layout of one domain definition, device by device, with what
//! identifies each device across two definitions of the same guest.

use crate::assign::plan::plan;
use crate::error::Result;
use crate::pci::PciAddress;
use crate::topology::PciModel;
use crate::xml::ccw::{CcwAddress, S390Address, S390Assigned, Zpci};
use crate::xml::domain::{Device, DeviceAddress, DeviceKind, DomainDef, Multifunction};
use crate::xml::identity::Identity;
use crate::xml::Document;

/// Which layout of a definition is compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutMode {
    /// What the guest gets: the definition after libvirt's address assignment (addresses,
    /// multifunction bits, controllers and their defaults filled in).
    Effective,
    /// The definition exactly as written; devices without an address have none.
    AsGiven,
}

/// What identifies a device, strongest first. Two devices of the same element name with an
/// equal key of the same kind are the same device.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Key {
    /// `<alias name>` (user aliases `ua-*` are stable across definitions).
    Alias(String),
    /// An interface's `<mac address>`, lower case.
    Mac(String),
    /// A disk's `<target dev>` or a filesystem's `<target dir>`.
    Target(String),
    /// A host device's source: the host PCI address or the mdev UUID.
    Source(String),
    /// A non-PCI controller's type and index (`usb 0`), or a shmem/channel name.
    Name(String),
}

impl Key {
    /// The matching rounds, in order.
    pub(crate) const ROUNDS: usize = 5;

    fn round(&self) -> usize {
        match self {
            Key::Alias(_) => 0,
            Key::Mac(_) => 1,
            Key::Target(_) => 2,
            Key::Source(_) => 3,
            Key::Name(_) => 4,
        }
    }
}

/// A guest-side address as far as the ABI goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum AddressFact {
    /// No PCI address (none at all, or one of another type such as `drive` or `usb`).
    NotPci,
    /// A PCI address with its `multifunction` attribute as written (or as assignment set it).
    Pci {
        addr: PciAddress,
        multi: Multifunction,
    },
    /// `<address type='unassigned'/>`: a host device that the guest does not see.
    Unassigned,
    /// s390x: a channel subsystem address with its numbers (an address without numbers, as
    /// written before assignment, is [`AddressFact::NotPci`]).
    Ccw(CcwAddress),
}

impl AddressFact {
    pub(crate) fn pci(&self) -> Option<(PciAddress, Multifunction)> {
        match self {
            AddressFact::Pci { addr, multi } => Some((*addr, *multi)),
            _ => None,
        }
    }

    /// Whether the guest sees the device at a PCI address.
    pub(crate) fn is_pci(&self) -> bool {
        matches!(self, AddressFact::Pci { .. })
    }

    pub(crate) fn ccw(&self) -> Option<CcwAddress> {
        match self {
            AddressFact::Ccw(addr) => Some(*addr),
            _ => None,
        }
    }

    /// Whether the guest sees the device at an address of its own (PCI or CCW).
    pub(crate) fn is_placed(&self) -> bool {
        self.is_pci() || self.ccw().is_some()
    }

    /// The device has a guest-visible address (a PCI slot, a CCW number, or an explicit
    /// "unassigned").
    pub(crate) fn matters(&self) -> bool {
        !matches!(self, AddressFact::NotPci)
    }
}

impl std::fmt::Display for AddressFact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AddressFact::NotPci => f.write_str("no PCI address"),
            AddressFact::Unassigned => f.write_str("unassigned"),
            AddressFact::Pci { addr, .. } => write!(f, "{addr}"),
            AddressFact::Ccw(addr) => write!(f, "{addr}"),
        }
    }
}

/// A controller's type, index and model (`usb 0 ich9-ehci1`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ControllerId {
    #[serde(rename = "type")]
    pub ctype: String,
    pub index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// The facts of a `<controller type='pci'>` that the guest sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PciControllerFacts {
    pub(crate) index: u32,
    pub(crate) model: PciModel,
    /// `<model name>`.
    pub(crate) model_name: Option<String>,
    /// `<target>` values in a fixed order: chassisNr, chassis, port, busNr, index (the
    /// pSeries target index), hotplug, node.
    pub(crate) target: Vec<(&'static str, Option<String>)>,
}

/// One device of the layout.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    /// The element name (`interface`, `disk`, `controller`, ...).
    pub(crate) tag: String,
    /// 1-based position among the `<devices>` children with the same element name, in
    /// document order; devices that assignment adds (implicit controllers, the default
    /// memballoon) come after those of the input, in the order they are written.
    pub(crate) ordinal: usize,
    /// The device was written in the definition (not added by assignment).
    pub(crate) written: bool,
    /// Identity keys, strongest first.
    pub(crate) keys: Vec<Key>,
    /// What the device is, for pairing devices that have no identity key: element name plus
    /// type and model.
    pub(crate) kind: String,
    /// The device model as the guest sees it (NIC model, controller model, video type, ...).
    pub(crate) model: Option<String>,
    /// A short human name: `interface (mac 52:54:00:00:00:01)`, `disk vda`, ...
    pub(crate) label: String,
    pub(crate) address: AddressFact,
    /// s390x: the zPCI identifiers of a device on PCI (none elsewhere).
    pub(crate) zpci: Zpci,
    /// The definition gave both zPCI identifiers.
    pub(crate) zpci_written: bool,
    /// The `multifunction` attribute as written in the definition, when it had a PCI address.
    pub(crate) written_multi: Option<Multifunction>,
    /// The definition gave the PCI address, or on s390x the CCW numbers (it was not assigned
    /// automatically).
    pub(crate) address_written: bool,
    pub(crate) pci_controller: Option<PciControllerFacts>,
    /// For a controller of any type: its type, index and model.
    pub(crate) controller: Option<ControllerId>,
}

/// The PCI layout of one domain definition.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    pub(crate) name: Option<String>,
    pub(crate) uuid: Option<String>,
    pub(crate) machine: Option<String>,
    pub(crate) entries: Vec<Entry>,
}

/// Read the PCI layout of the domain in `xml`.
pub(crate) fn read_layout(xml: &str, mode: LayoutMode) -> Result<Layout> {
    let doc = Document::parse(xml)?;
    let def = DomainDef::from_document(&doc)?;
    let root = doc.root;
    let text_of = |name: &str| {
        doc.child(root, name)
            .map(|id| doc.element(id).text.trim().to_string())
            .filter(|t| !t.is_empty())
    };
    let name = text_of("name");
    let uuid = text_of("uuid");
    let machine = def.machine.map(str::to_string);
    let written: Vec<(DeviceAddress, bool)> = def
        .devices
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let ccw_given = def.s390.get(i).is_some_and(|a| a.ccw.is_some());
            (
                d.address.clone(),
                d.address.present_pci().is_some() || ccw_given,
            )
        })
        .collect();
    let (devices, given, assigned): (Vec<Device>, Vec<S390Address>, Vec<S390Assigned>) = match mode
    {
        LayoutMode::AsGiven => (def.devices, def.s390, Vec::new()),
        LayoutMode::Effective => {
            let done = plan(def)?;
            (done.def.devices, done.def.s390, done.s390)
        }
    };
    let mut counts: Vec<(String, usize)> = Vec::new();
    let mut entries = Vec::with_capacity(devices.len());
    for (i, device) in devices.iter().enumerate() {
        let tag = match device.element {
            Some(id) => doc.element(id).name.to_string(),
            None => implicit_tag(&device.kind).to_string(),
        };
        let ordinal = match counts.iter_mut().find(|(t, _)| *t == tag) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                counts.push((tag.clone(), 1));
                1
            }
        };
        let (written_address, address_written) = written
            .get(i)
            .cloned()
            .unwrap_or((DeviceAddress::None, false));
        let written_multi = match written_address {
            DeviceAddress::Pci { multi, .. } if address_written => Some(multi),
            _ => None,
        };
        let s390_given = given.get(i).cloned().unwrap_or_default();
        let s390 = S390Facts {
            written_zpci: s390_given.zpci,
            now: s390_given.completed(&assigned.get(i).copied().unwrap_or_default()),
        };
        entries.push(entry(
            &doc,
            device,
            &s390,
            tag,
            ordinal,
            written_multi,
            address_written,
        ));
    }
    Ok(Layout {
        name,
        uuid,
        machine,
        entries,
    })
}

/// The element name of a device that assignment added.
fn implicit_tag(kind: &DeviceKind) -> &'static str {
    match kind {
        DeviceKind::Controller(_) => "controller",
        DeviceKind::Memballoon { .. } => "memballoon",
        DeviceKind::Video { .. } => "video",
        _ => "device",
    }
}

/// One device's s390x address: the zPCI identifiers written, and what it ends up with.
struct S390Facts {
    written_zpci: Zpci,
    now: S390Address,
}

fn address_fact(address: &DeviceAddress, s390: &S390Facts) -> AddressFact {
    match address {
        DeviceAddress::Pci { addr, multi } if address.present_pci().is_some() => AddressFact::Pci {
            addr: *addr,
            multi: *multi,
        },
        DeviceAddress::Unassigned => AddressFact::Unassigned,
        DeviceAddress::Other(t) if t == "ccw" => {
            s390.now.ccw.map_or(AddressFact::NotPci, AddressFact::Ccw)
        }
        _ => AddressFact::NotPci,
    }
}

fn entry(
    doc: &Document<'_>,
    device: &Device,
    s390: &S390Facts,
    tag: String,
    ordinal: usize,
    written_multi: Option<Multifunction>,
    address_written: bool,
) -> Entry {
    let mut keys = Vec::new();
    let mut model: Option<String> = None;
    let mut kind = tag.clone();
    let mut label: Option<String> = None;
    if let Some(id) = device.element {
        let el = doc.element(id);
        let identity = Identity::of(doc, id);
        if let Some(alias) = identity.alias {
            keys.push(Key::Alias(alias.to_string()));
        }
        if let Some(t) = el.attr("type") {
            kind.push(' ');
            kind.push_str(t);
        }
        match tag.as_str() {
            "interface" => {
                if let Some(mac) = identity.mac {
                    let mac = mac.to_ascii_lowercase();
                    label = Some(format!("interface (mac {mac})"));
                    keys.push(Key::Mac(mac));
                }
                if let Some(source) = identity.host_source {
                    keys.push(Key::Source(source.to_string()));
                }
                model = identity.model_type.map(str::to_string);
            }
            "disk" => {
                if let Some(dev) = identity.target_dev {
                    label = Some(format!("disk {dev}"));
                    keys.push(Key::Target(dev.to_string()));
                }
                model = doc.child_attr(id, "target", "bus").map(str::to_string);
            }
            "filesystem" => {
                if let Some(dir) = identity.target_dir {
                    label = Some(format!("filesystem {dir}"));
                    keys.push(Key::Target(dir.to_string()));
                }
            }
            "hostdev" => {
                if let Some(source) = identity.host_source {
                    label = Some(format!("hostdev ({source})"));
                    keys.push(Key::Source(source.to_string()));
                }
            }
            "shmem" => {
                if let Some(name) = el.attr("name") {
                    label = Some(format!("shmem {name}"));
                    keys.push(Key::Name(format!("shmem {name}")));
                }
            }
            "video" | "sound" | "watchdog" | "memballoon" | "rng" | "input" | "iommu" | "vsock"
            | "panic" | "crypto" | "memory" => {
                model = el
                    .attr("model")
                    .map(str::to_string)
                    .or_else(|| identity.model_type.map(str::to_string));
            }
            _ => {}
        }
        if tag != "interface" && tag != "disk" {
            if let Some(m) = &model {
                kind.push(' ');
                kind.push_str(m);
            }
        }
    }
    if let DeviceKind::Controller(c) = &device.kind {
        // USB2 companions share one index: the model tells them apart.
        let name = format!("{} {} {}", c.ctype, c.index(), c.model.unwrap_or_default());
        model = c.model.map(str::to_string);
        kind = format!("controller {}", c.ctype);
        label = Some(match &c.model {
            Some(m) => format!("controller {} index {} ({m})", c.ctype, c.index()),
            None => format!("controller {} index {}", c.ctype, c.index()),
        });
        if c.pci.is_none() {
            keys.push(Key::Name(name));
        }
    } else if device.element.is_none() {
        model = match &device.kind {
            DeviceKind::Memballoon { model } => Some(model.to_string()),
            DeviceKind::Video { model, .. } => Some(model.to_string()),
            _ => None,
        };
        if let Some(m) = &model {
            kind = format!("{tag} {m}");
        }
    }
    let pci_controller = device.pci_controller().map(|(c, m)| {
        let opts = c.pci.as_ref().map(|(_, o)| o.clone()).unwrap_or_default();
        let num = |v: Option<i64>| v.map(|n| n.to_string());
        PciControllerFacts {
            index: c.index(),
            model: m,
            model_name: opts.model_name.map(str::to_string),
            target: vec![
                ("chassisNr", num(opts.chassis_nr)),
                ("chassis", num(opts.chassis)),
                ("port", num(opts.port)),
                ("busNr", num(opts.bus_nr)),
                ("index", num(opts.target_index)),
                (
                    "hotplug",
                    opts.hotplug
                        .map(|h| if h { "on" } else { "off" }.to_string()),
                ),
                ("node", num(opts.numa_node)),
            ],
        }
    });
    let label = label.unwrap_or_else(|| {
        let base = match &model {
            Some(m) => format!("{tag} {m}"),
            None => tag.clone(),
        };
        format!("{base} #{ordinal}")
    });
    keys.sort_by_key(Key::round);
    Entry {
        tag,
        ordinal,
        written: device.element.is_some(),
        keys,
        kind,
        model,
        label,
        address: address_fact(&device.address, s390),
        zpci: if device.address.present_pci().is_some() {
            s390.now.zpci
        } else {
            Zpci::default()
        },
        zpci_written: s390.written_zpci.uid.is_some() && s390.written_zpci.fid.is_some(),
        written_multi,
        address_written,
        pci_controller,
        controller: device.controller().map(|c| ControllerId {
            ctype: c.ctype.to_string(),
            index: c.index(),
            model: c.model.map(str::to_string),
        }),
    }
}

impl Entry {
    /// The key of `round`, if the device has one.
    pub(crate) fn key(&self, round: usize) -> Option<&Key> {
        self.keys.iter().find(|k| k.round() == round)
    }

    /// Whether this device matters for the PCI ABI at all.
    pub(crate) fn matters(&self) -> bool {
        self.pci_controller.is_some() || self.address.matters()
    }
}
