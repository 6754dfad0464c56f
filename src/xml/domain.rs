//! The parts of a domain definition that matter for guest PCI addresses, read from a
//! [`Document`]: the machine type, every controller, and every device that can take a PCI
//! address together with what decides its connect flags.

use super::dom::{Document, ElementId};
use crate::error::{quote, Error, Result};
use crate::pci::{parse_xml_uint, PciAddress};
use crate::topology::{MachineKind, PciModel};

/// The `multifunction` attribute of a PCI address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Multifunction {
    #[default]
    Absent,
    On,
    Off,
}

/// A device's guest address as far as PCI is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceAddress {
    /// No `<address>` element.
    None,
    /// `<address type='pci' .../>`; all zero bus and slot means "pick one for me".
    Pci {
        addr: PciAddress,
        multi: Multifunction,
    },
    /// `<address type='unassigned'/>` (PCI hostdevs only): no guest slot.
    Unassigned,
    /// Any other address type (drive, usb, virtio-serial, ...), by its `type` value.
    Other(String),
}

impl DeviceAddress {
    /// A PCI address is given and not empty (libvirt's "present").
    pub fn present_pci(&self) -> Option<PciAddress> {
        match self {
            DeviceAddress::Pci { addr, .. } if !is_empty_pci(addr) => Some(*addr),
            _ => None,
        }
    }

    /// No address, or an empty PCI address (libvirt's "wanted").
    pub fn wants_pci(&self) -> bool {
        match self {
            DeviceAddress::None => true,
            DeviceAddress::Pci { addr, .. } => is_empty_pci(addr),
            _ => false,
        }
    }

    pub fn type_name(&self) -> &str {
        match self {
            DeviceAddress::None => "none",
            DeviceAddress::Pci { .. } => "pci",
            DeviceAddress::Unassigned => "unassigned",
            DeviceAddress::Other(t) => t,
        }
    }
}

/// libvirt's "empty" address: domain, bus and slot all zero; the function is ignored.
pub fn is_empty_pci(addr: &PciAddress) -> bool {
    addr.domain == 0 && addr.bus == 0 && addr.slot == 0
}

/// The options of a `<controller type='pci'>` (`<model name>`, `<target>`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PciControllerOptions<'a> {
    pub model_name: Option<&'a str>,
    pub chassis_nr: Option<i64>,
    pub chassis: Option<i64>,
    pub port: Option<i64>,
    pub bus_nr: Option<i64>,
    pub target_index: Option<i64>,
    /// `hotplug='on'|'off'`.
    pub hotplug: Option<bool>,
    pub numa_node: Option<i64>,
}

/// A `<controller>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Controller<'a> {
    /// The `type` attribute (pci, usb, scsi, ide, sata, virtio-serial, fdc, ccid, ...).
    pub ctype: &'a str,
    /// The `model` attribute as written.
    pub model: Option<&'a str>,
    /// The index; `None` until libvirt's post-parse rule gives one to a controller without it.
    pub index: Option<u32>,
    /// True when the input had no `index` attribute.
    pub index_missing: bool,
    /// For `type='pci'`: the model and its options.
    pub pci: Option<(PciModel, PciControllerOptions<'a>)>,
}

impl<'a> Controller<'a> {
    pub fn index(&self) -> u32 {
        self.index.unwrap_or(0)
    }

    pub fn pci_model(&self) -> Option<PciModel> {
        self.pci.as_ref().map(|(m, _)| *m)
    }

    pub fn model_is(&self, name: &str) -> bool {
        self.model == Some(name)
    }

    /// A short name for messages, e.g. "controller pci index 1 (pcie-root-port)"; the type
    /// and model as written, quoted short.
    pub fn describe(&self) -> String {
        match self.model {
            Some(m) => format!(
                "controller {} index {} ({})",
                quote(self.ctype),
                self.index(),
                quote(m)
            ),
            None => format!("controller {} index {}", quote(self.ctype), self.index()),
        }
    }
}

/// What a host device is, as far as connect flags go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hostdev<'a> {
    /// `mode` (subsystem, capabilities).
    pub mode: &'a str,
    /// `type` (pci, usb, scsi, scsi_host, mdev).
    pub htype: &'a str,
    /// `model` attribute (mdev: vfio-pci, vfio-ccw, vfio-ap; scsi_host: virtio, ...).
    pub model: Option<&'a str>,
}

impl<'a> Hostdev<'a> {
    pub fn is_subsystem(&self) -> bool {
        self.mode == "subsystem"
    }
}

/// The kinds of device, with what decides their connect flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceKind<'a> {
    Disk {
        /// The `device` attribute (disk, cdrom, floppy, lun).
        device: &'a str,
        bus: &'a str,
        model: Option<&'a str>,
        target: &'a str,
        /// The `controller` of a `type='drive'` address.
        drive_controller: Option<u32>,
    },
    /// Boxed: a controller's options are large, and every device pays the size of the
    /// largest kind.
    Controller(Box<Controller<'a>>),
    Filesystem {
        driver: Option<&'a str>,
        model: Option<&'a str>,
    },
    Net {
        net_type: &'a str,
        model: Option<&'a str>,
        /// Set for `type='hostdev'`: the interface is a host device in disguise.
        hostdev: Option<Hostdev<'a>>,
    },
    Sound {
        model: &'a str,
    },
    Hostdev(Hostdev<'a>),
    Memballoon {
        model: &'a str,
    },
    Rng {
        model: &'a str,
    },
    Watchdog {
        model: &'a str,
    },
    Video {
        model: &'a str,
        primary: bool,
        /// The definition names the model (`<model type>`); otherwise `model` is the
        /// default, which on x86 the emulator's capabilities decide.
        model_given: bool,
    },
    Shmem,
    Input {
        bus: &'a str,
        model: Option<&'a str>,
    },
    Serial {
        target_type: Option<&'a str>,
    },
    Console {
        target_type: Option<&'a str>,
    },
    Channel {
        target_type: Option<&'a str>,
    },
    Parallel,
    Smartcard,
    Hub,
    Redirdev,
    Tpm {
        model: Option<&'a str>,
    },
    Nvram,
    Iommu {
        model: &'a str,
    },
    Vsock {
        model: Option<&'a str>,
    },
    Memory {
        model: &'a str,
    },
    Crypto {
        model: &'a str,
    },
    Panic {
        model: Option<&'a str>,
    },
    /// Anything else below `<devices>` (graphics, audio, lease, emulator, ...).
    Other,
}

/// One child of `<devices>` (or one that virtpci adds).
#[derive(Clone, Debug)]
pub struct Device<'a> {
    /// The device element, `None` for a device virtpci added.
    pub element: Option<ElementId>,
    /// The device's own `<address>` child, if any.
    pub address_element: Option<ElementId>,
    pub kind: DeviceKind<'a>,
    pub address: DeviceAddress,
    /// The `controller` attribute of a drive or virtio-serial address.
    pub address_controller: Option<u32>,
    /// virtpci's placement preferences (`<addressPreferences>`, `<hotplug require>`).
    pub prefs: AddressPreferences,
}

/// Which kind of bus a device that can use either should get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusPreference {
    /// Conventional PCI.
    Pci,
    /// PCI Express.
    Pcie,
}

/// Where a device would like to be placed when its address is picked automatically
/// (virtpci's, opt-in; see docs/decisions.md):
/// `<addressPreferences hotplug='yes|no' bus='pci|pcie' numa='N'/>`, and
/// `<hotplug require='no'/>` for `hotplug='no'`. None of it changes a configured address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddressPreferences {
    /// `Some(false)`: the device is never unplugged, so it may sit on a bus without hotplug
    /// (pcie-root as an integrated endpoint). `Some(true)`: it must be on a bus with hotplug.
    pub hotplug: Option<bool>,
    pub bus: Option<BusPreference>,
    /// The guest NUMA node whose expander bus the device should sit behind.
    pub numa: Option<u32>,
    /// The line of the device element, for messages.
    pub line: Option<usize>,
}

impl AddressPreferences {
    /// No preference is given.
    pub fn is_empty(&self) -> bool {
        self.hotplug.is_none() && self.bus.is_none() && self.numa.is_none()
    }
}

/// Read the placement preferences of device element `id`.
pub fn read_preferences(doc: &Document<'_>, id: ElementId) -> Result<AddressPreferences> {
    let mut prefs = AddressPreferences::default();
    let device = doc.element(id);
    let line = || doc.line_of(device.start);
    let bad = |what: String| {
        Error::xml(format!(
            "<{}> at line {}: {what}",
            quote(device.name),
            line()
        ))
    };
    if let Some(p) = doc.child(id, "addressPreferences") {
        for attr in doc.element(p).attrs {
            let value: &str = attr.value;
            match attr.name {
                "hotplug" => {
                    prefs.hotplug = Some(match value {
                        "yes" => true,
                        "no" => false,
                        _ => {
                            return Err(bad(format!(
                                "addressPreferences hotplug='{}' is not 'yes' or 'no'",
                                quote(value)
                            )))
                        }
                    })
                }
                "bus" => {
                    prefs.bus = Some(match value {
                        "pci" => BusPreference::Pci,
                        "pcie" => BusPreference::Pcie,
                        _ => {
                            return Err(bad(format!(
                                "addressPreferences bus='{}' is not 'pci' or 'pcie'",
                                quote(value)
                            )))
                        }
                    })
                }
                "numa" => {
                    let node = value.trim().parse::<u32>().map_err(|_| {
                        bad(format!(
                            "addressPreferences numa='{}' is not a NUMA node number",
                            quote(value)
                        ))
                    })?;
                    prefs.numa = Some(node);
                }
                other => {
                    return Err(bad(format!(
                        "unknown address preference '{}' (known: hotplug, bus, numa)",
                        quote(other)
                    )))
                }
            }
        }
    }
    if let Some(h) = doc.child(id, "hotplug") {
        let required = match doc.attr(h, "require") {
            Some("no") => false,
            Some("yes") => true,
            Some(other) => {
                return Err(bad(format!(
                    "<hotplug require='{}'/> is not 'yes' or 'no'",
                    quote(other)
                )))
            }
            None => return Err(bad("<hotplug> without a 'require' attribute".into())),
        };
        if prefs.hotplug.is_some_and(|h| h != required) {
            return Err(bad(
                "<hotplug require> and addressPreferences hotplug contradict each other".into(),
            ));
        }
        prefs.hotplug = Some(required);
    }
    if !prefs.is_empty() {
        prefs.line = Some(line());
    }
    Ok(prefs)
}

impl<'a> Device<'a> {
    pub fn controller(&self) -> Option<&Controller<'a>> {
        match &self.kind {
            DeviceKind::Controller(c) => Some(c),
            _ => None,
        }
    }

    pub fn controller_mut(&mut self) -> Option<&mut Controller<'a>> {
        match &mut self.kind {
            DeviceKind::Controller(c) => Some(c),
            _ => None,
        }
    }

    pub fn pci_controller(&self) -> Option<(&Controller<'a>, PciModel)> {
        self.controller()
            .and_then(|c| c.pci_model().map(|m| (c, m)))
    }
}

/// On aarch64 and riscv64 `virt` a `<video>` without a model type is virtio (libvirt's
/// default there), not x86's cirrus.
fn video_model_default_virtio(doc: &Document<'_>, devices: &mut [Device<'_>]) {
    for d in devices {
        let Some(id) = d.element else { continue };
        if let DeviceKind::Video { model, .. } = &mut d.kind {
            let given = doc
                .child(id, "model")
                .and_then(|m| doc.attr(m, "type"))
                .is_some();
            if !given {
                *model = "virtio";
            }
        }
    }
}

/// What virtpci read from a domain definition.
#[derive(Clone, Debug)]
pub struct DomainDef<'a> {
    /// `<os><type arch=...>`.
    pub arch: Option<&'a str>,
    pub machine: Option<&'a str>,
    pub machine_kind: MachineKind,
    /// Number of `<cpu><numa><cell>` elements.
    pub numa_cells: usize,
    /// The domain has a `<graphics>` device (libvirt then adds a video if there is none).
    pub has_graphics: bool,
    /// Guest memory is shared (`<memoryBacking><access mode='shared'/>`, or every NUMA cell
    /// with `memAccess='shared'`), as vhost-user needs from libvirt 11.3 on.
    pub shared_memory: bool,
    /// The `<devices>` element.
    pub devices_element: Option<ElementId>,
    pub devices: Vec<Device<'a>>,
    /// On s390x: per device read from the input, its CCW address and zPCI identifiers.
    pub s390: Vec<super::ccw::S390Address>,
    /// On pseries: per device, the `reg` of its `<address type='spapr-vio'>` when given.
    pub spapr_vio_regs: Vec<Option<u32>>,
}

impl<'a> DomainDef<'a> {
    /// Per bus number below `nbuses`: the first value `own` gives for the PCI controller of
    /// the bus or of a bus above it, walking up through the buses the controllers plug into
    /// (`None` when no controller on the way gives one). A controller without an address ends
    /// the walk, and so does a loop in the input.
    pub fn inherited_by_buses<T: Copy>(
        &self,
        nbuses: usize,
        own: impl Fn(&Controller<'a>, PciModel) -> Option<T>,
    ) -> Vec<Option<T>> {
        let mut parent: Vec<Option<u32>> = vec![None; nbuses];
        let mut value: Vec<Option<T>> = vec![None; nbuses];
        for d in &self.devices {
            if let Some((c, model)) = d.pci_controller() {
                let index = c.index() as usize;
                if index < nbuses {
                    parent[index] = d.address.present_pci().map(|a| a.bus);
                    value[index] = own(c, model);
                }
            }
        }
        (0..nbuses)
            .map(|mut bus| {
                for _ in 0..nbuses {
                    if value[bus].is_some() {
                        return value[bus];
                    }
                    match parent[bus] {
                        Some(p) if (p as usize) < nbuses && p as usize != bus => bus = p as usize,
                        _ => return None,
                    }
                }
                None
            })
            .collect()
    }

    /// Read a domain definition from a parsed document.
    pub fn from_document(doc: &'a Document<'_>) -> Result<DomainDef<'a>> {
        let root = doc.element(doc.root);
        if root.name != "domain" {
            return Err(Error::xml(format!(
                "expecting root element of 'domain', not '{}'",
                quote(root.name)
            )));
        }
        let os_type = doc
            .child(doc.root, "os")
            .and_then(|os| doc.child(os, "type"));
        let machine = os_type.and_then(|t| doc.attr(t, "machine"));
        let arch = os_type.and_then(|t| doc.attr(t, "arch"));
        let machine_kind = MachineKind::from_os(arch, machine);
        let numa_cells = doc
            .child(doc.root, "cpu")
            .and_then(|cpu| doc.child(cpu, "numa"))
            .map_or(0, |numa| doc.children_named(numa, "cell").count());
        let devices_element = doc.child(doc.root, "devices");
        let mut devices = Vec::new();
        if let Some(devs) = devices_element {
            // Room for the controllers placement may add: at most one per bus number of
            // PCI domain 0, and a few others (USB, IDE, SATA, video, ...).
            devices.reserve(doc.children(devs).len() + 256 + 16);
            for &child in doc.children(devs) {
                devices.push(read_device(doc, child)?);
            }
        }
        if machine_kind.is_virt() {
            video_model_default_virtio(doc, &mut devices);
        }
        let shared_memory = shared_memory(doc);
        let has_graphics = devices_element
            .is_some_and(|devs| doc.children_named(devs, "graphics").next().is_some());
        let s390 = if machine_kind == MachineKind::S390Ccw {
            // s390x's only video is virtio too.
            video_model_default_virtio(doc, &mut devices);
            devices
                .iter()
                .map(|d| {
                    d.address_element.map_or(Ok(Default::default()), |a| {
                        super::ccw::read_s390_address(doc, a)
                    })
                })
                .collect::<Result<Vec<_>>>()?
        } else {
            Vec::new()
        };
        let spapr_vio_regs = if machine_kind == MachineKind::Pseries {
            devices
                .iter()
                .map(|d| {
                    d.address_element
                        .filter(|&a| doc.attr(a, "type") == Some("spapr-vio"))
                        .and_then(|a| doc.attr(a, "reg"))
                        .and_then(crate::pci::parse_xml_uint)
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(DomainDef {
            arch,
            s390,
            spapr_vio_regs,
            machine,
            machine_kind,
            numa_cells,
            has_graphics,
            shared_memory,
            devices_element,
            devices,
        })
    }
}

/// Whether the guest's memory is shared with other processes.
fn shared_memory(doc: &Document<'_>) -> bool {
    let backing = doc
        .child(doc.root, "memoryBacking")
        .and_then(|m| doc.child(m, "access"))
        .and_then(|a| doc.attr(a, "mode"));
    let cells: Vec<ElementId> = doc
        .child(doc.root, "cpu")
        .and_then(|cpu| doc.child(cpu, "numa"))
        .map(|numa| doc.children_named(numa, "cell").collect())
        .unwrap_or_default();
    let cell_shared = |&c: &ElementId| match doc.attr(c, "memAccess") {
        Some(mode) => mode == "shared",
        None => backing == Some("shared"),
    };
    if cells.is_empty() {
        backing == Some("shared")
    } else {
        cells.iter().all(cell_shared)
    }
}

pub fn read_device<'a>(doc: &'a Document<'_>, id: ElementId) -> Result<Device<'a>> {
    let el = doc.element(id);
    let attr = |name: &str| el.attr(name);
    let child_attr = |child: &str, name: &str| doc.child(id, child).and_then(|c| doc.attr(c, name));
    let kind = match el.name {
        "disk" => {
            let target = child_attr("target", "dev").unwrap_or_default();
            let bus = child_attr("target", "bus").unwrap_or_else(|| default_disk_bus(target));
            let drive_controller = doc
                .child(id, "address")
                .filter(|&a| doc.attr(a, "type") == Some("drive"))
                .and_then(|a| doc.attr(a, "controller"))
                .and_then(parse_xml_uint);
            DeviceKind::Disk {
                device: attr("device").unwrap_or("disk"),
                bus,
                model: attr("model"),
                target,
                drive_controller,
            }
        }
        "controller" => DeviceKind::Controller(Box::new(read_controller(doc, id)?)),
        "filesystem" => DeviceKind::Filesystem {
            driver: child_attr("driver", "type"),
            model: attr("model"),
        },
        "interface" => {
            let net_type = attr("type").unwrap_or_default();
            let hostdev = (net_type == "hostdev").then_some(Hostdev {
                mode: "subsystem",
                htype: "pci",
                model: None,
            });
            DeviceKind::Net {
                model: child_attr("model", "type"),
                net_type,
                hostdev,
            }
        }
        "sound" => DeviceKind::Sound {
            model: attr("model").unwrap_or_default(),
        },
        "hostdev" => DeviceKind::Hostdev(Hostdev {
            mode: attr("mode").unwrap_or("subsystem"),
            htype: attr("type").unwrap_or_default(),
            model: attr("model"),
        }),
        "memballoon" => DeviceKind::Memballoon {
            model: attr("model").unwrap_or_default(),
        },
        "rng" => DeviceKind::Rng {
            model: attr("model").unwrap_or("virtio"),
        },
        "watchdog" => DeviceKind::Watchdog {
            model: attr("model").unwrap_or_default(),
        },
        "video" => DeviceKind::Video {
            // libvirt 9.0 with QEMU 7.2 picks cirrus for a video without a model type.
            model: child_attr("model", "type").unwrap_or("cirrus"),
            primary: child_attr("model", "primary") == Some("yes"),
            model_given: child_attr("model", "type").is_some(),
        },
        "shmem" => DeviceKind::Shmem,
        "input" => DeviceKind::Input {
            bus: attr("bus").unwrap_or("ps2"),
            model: attr("model"),
        },
        "serial" => DeviceKind::Serial {
            target_type: child_attr("target", "type"),
        },
        "console" => DeviceKind::Console {
            target_type: child_attr("target", "type"),
        },
        "channel" => DeviceKind::Channel {
            target_type: child_attr("target", "type"),
        },
        "parallel" => DeviceKind::Parallel,
        "smartcard" => DeviceKind::Smartcard,
        "hub" => DeviceKind::Hub,
        "redirdev" => DeviceKind::Redirdev,
        "tpm" => DeviceKind::Tpm {
            model: attr("model"),
        },
        "nvram" => DeviceKind::Nvram,
        "iommu" => DeviceKind::Iommu {
            model: attr("model").unwrap_or_default(),
        },
        "vsock" => DeviceKind::Vsock {
            model: attr("model"),
        },
        "memory" => DeviceKind::Memory {
            model: attr("model").unwrap_or_default(),
        },
        "crypto" => DeviceKind::Crypto {
            model: attr("model").unwrap_or_default(),
        },
        "panic" => DeviceKind::Panic {
            model: attr("model"),
        },
        _ => DeviceKind::Other,
    };
    let address_element = doc.child(id, "address");
    let address = match address_element {
        Some(a) => read_address(doc, a)?,
        None => DeviceAddress::None,
    };
    let address_controller = address_element
        .filter(|&a| matches!(doc.attr(a, "type"), Some("drive" | "virtio-serial")))
        .and_then(|a| doc.attr(a, "controller"))
        .and_then(parse_xml_uint);
    let prefs = read_preferences(doc, id)?;
    Ok(Device {
        element: Some(id),
        address_element,
        kind,
        address,
        address_controller,
        prefs,
    })
}

/// The bus libvirt derives from a disk's target name when `bus` is missing.
fn default_disk_bus(target: &str) -> &'static str {
    (if target.starts_with("hd") {
        "ide"
    } else if target.starts_with("sd") {
        "scsi"
    } else if target.starts_with("vd") {
        "virtio"
    } else if target.starts_with("xvd") {
        "xen"
    } else if target.starts_with("ubd") {
        "uml"
    } else if target.starts_with("fd") {
        "fdc"
    } else {
        "ide"
    }) as _
}

/// Parse an `<address>` element (libvirt's virPCIDeviceAddressParseXML for type='pci').
pub fn read_address(doc: &Document<'_>, id: ElementId) -> Result<DeviceAddress> {
    let el = doc.element(id);
    let Some(atype) = el.attr("type") else {
        return Err(Error::xml(format!(
            "No type specified for device address (line {})",
            doc.line_of(el.start)
        )));
    };
    match atype {
        "pci" => {
            let part = |name: &str| -> Result<u32> {
                match el.attr(name) {
                    None => Ok(0),
                    Some(text) => parse_xml_uint(text).ok_or_else(|| {
                        Error::xml(format!(
                            "Invalid value for attribute '{name}' in element 'address': '{}'. \
                             Expected non-negative integer value",
                            quote(text)
                        ))
                    }),
                }
            };
            let addr = PciAddress::new(
                part("domain")?,
                part("bus")?,
                part("slot")?,
                part("function")?,
            );
            let multi = match el.attr("multifunction") {
                None => Multifunction::Absent,
                Some("on") => Multifunction::On,
                Some("off") => Multifunction::Off,
                Some(other) => {
                    return Err(Error::xml(format!(
                        "Invalid value for attribute 'multifunction' in element 'address': \
                         '{}'.",
                        quote(other)
                    )))
                }
            };
            if !is_empty_pci(&addr) {
                check_guest_address(&addr)?;
            }
            Ok(DeviceAddress::Pci { addr, multi })
        }
        "unassigned" => Ok(DeviceAddress::Unassigned),
        other => Ok(DeviceAddress::Other(other.to_string())),
    }
}

/// libvirt's virPCIDeviceAddressIsValid with its XML-error wording.
fn check_guest_address(addr: &PciAddress) -> Result<()> {
    if addr.bus > 0xFF {
        return Err(Error::xml(format!(
            "Invalid PCI address bus='0x{:x}', must be <= 0xFF",
            addr.bus
        )));
    }
    if addr.slot > 0x1F {
        return Err(Error::xml(format!(
            "Invalid PCI address slot='0x{:x}', must be <= 0x1F",
            addr.slot
        )));
    }
    if addr.function > 7 {
        return Err(Error::xml(format!(
            "Invalid PCI address function=0x{:x}, must be <= 7",
            addr.function
        )));
    }
    Ok(())
}

fn read_controller<'a>(doc: &'a Document<'_>, id: ElementId) -> Result<Controller<'a>> {
    let el = doc.element(id);
    let ctype = el.attr("type").unwrap_or("pci");
    let (index, index_missing) = match el.attr("index") {
        None => (None, true),
        Some(text) => (Some(parse_controller_index(text)?), false),
    };
    let model = el.attr("model");
    let pci = if ctype == "pci" {
        let pci_model = match model {
            Some(name) => PciModel::from_name(name).ok_or_else(|| {
                Error::internal(format!(
                    "Unknown PCI controller model '{}' in <controller type='pci'> (line {})",
                    quote(name),
                    doc.line_of(el.start)
                ))
            })?,
            // Refused by the planner once the index is known (libvirt's words depend on it).
            None => {
                return Ok(Controller {
                    ctype,
                    model,
                    index,
                    index_missing,
                    pci: None,
                })
            }
        };
        Some((pci_model, read_pci_options(doc, id)?))
    } else {
        None
    };
    Ok(Controller {
        ctype,
        model,
        index,
        index_missing,
        pci,
    })
}

/// The controller `index` attribute: a non-negative decimal integer.
fn parse_controller_index(text: &str) -> Result<u32> {
    let bad = |expected: &str| {
        Error::xml(format!(
            "Invalid value for attribute 'index' in element 'controller': '{}'. Expected {expected}",
            quote(text)
        ))
    };
    match text.trim().parse::<i64>() {
        Ok(v) if v < 0 => Err(bad("non-negative value")),
        Ok(v) => u32::try_from(v).map_err(|_| bad("integer value")),
        Err(_) => Err(bad("integer value")),
    }
}

fn read_pci_options<'a>(doc: &'a Document<'_>, id: ElementId) -> Result<PciControllerOptions<'a>> {
    let mut opts = PciControllerOptions {
        model_name: doc.child(id, "model").and_then(|m| doc.attr(m, "name")),
        ..Default::default()
    };
    let Some(target) = doc.child(id, "target") else {
        return Ok(opts);
    };
    let el = doc.element(target);
    let number = |name: &str| -> Result<Option<i64>> {
        match el.attr(name) {
            None => Ok(None),
            Some(text) => parse_signed(text).map(Some).ok_or_else(|| {
                Error::xml(format!(
                    "Invalid value for attribute '{name}' in element 'target': '{}'. Expected integer value",
                    quote(text)
                ))
            }),
        }
    };
    opts.chassis_nr = number("chassisNr")?;
    opts.chassis = number("chassis")?;
    opts.port = number("port")?;
    opts.bus_nr = number("busNr")?;
    opts.target_index = number("index")?;
    opts.hotplug = match el.attr("hotplug") {
        None => None,
        Some("on") => Some(true),
        Some("off") => Some(false),
        Some(other) => {
            return Err(Error::config_unsupported(format!(
                "Invalid value for attribute 'hotplug' in element 'target': '{}'",
                quote(other)
            )))
        }
    };
    if let Some(node) = doc.child(target, "node") {
        let text = doc.element(node).text.trim().to_string();
        opts.numa_node = Some(parse_signed(&text).ok_or_else(|| {
            Error::xml(format!(
                "invalid NUMA node in target of PCI controller: '{}'",
                quote(&text)
            ))
        })?);
    }
    Ok(opts)
}

/// An integer with base auto-detection and an optional sign, as libvirt's virStrToLong_i.
fn parse_signed(text: &str) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let value = i64::from(parse_xml_uint(digits)?);
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(xml: &str) -> Result<()> {
        let doc = Document::parse(xml)?;
        DomainDef::from_document(&doc).map(|_| ())
    }

    #[test]
    fn reads_devices_and_addresses() {
        let doc = Document::parse(
            "<domain><os><type machine='pc-q35-7.2'>hvm</type></os><devices>\
             <controller type='pci' index='1' model='pcie-root-port'><target chassis='5' port='0x10' hotplug='off'/></controller>\
             <interface type='user'><model type='virtio'/><address type='pci' bus='1' slot='010'/></interface>\
             <hostdev mode='subsystem' type='pci'><address type='unassigned'/></hostdev>\
             </devices></domain>",
        )
        .unwrap();
        let def = DomainDef::from_document(&doc).unwrap();
        assert_eq!(def.machine_kind, MachineKind::Q35);
        assert_eq!(def.devices.len(), 3);
        let (c, model) = def.devices[0].pci_controller().unwrap();
        assert_eq!(model, PciModel::PcieRootPort);
        let opts = &c.pci.as_ref().unwrap().1;
        assert_eq!(
            (opts.chassis, opts.port, opts.hotplug),
            (Some(5), Some(16), Some(false))
        );
        assert_eq!(
            def.devices[1].address,
            DeviceAddress::Pci {
                addr: PciAddress::new(0, 1, 8, 0),
                multi: Multifunction::Absent
            }
        );
        assert_eq!(def.devices[2].address, DeviceAddress::Unassigned);
    }

    #[test]
    fn address_errors_use_libvirt_words() {
        let wrap = |a: &str| {
            format!(
                "<domain><devices><memballoon model='virtio'>{a}</memballoon></devices></domain>"
            )
        };
        let msg = |a: &str| parse(&wrap(a)).unwrap_err().message;
        assert_eq!(
            msg("<address type='pci' bus='0x100' slot='1'/>"),
            "XML error: Invalid PCI address bus='0x100', must be <= 0xFF"
        );
        assert_eq!(
            msg("<address type='pci' slot='0x20'/>"),
            "XML error: Invalid PCI address slot='0x20', must be <= 0x1F"
        );
        assert_eq!(
            msg("<address type='pci' slot='1' function='8'/>"),
            "XML error: Invalid PCI address function=0x8, must be <= 7"
        );
        assert_eq!(
            msg("<address type='pci' slot='x'/>"),
            "XML error: Invalid value for attribute 'slot' in element 'address': 'x'. \
             Expected non-negative integer value"
        );
        assert_eq!(
            msg("<address type='pci' slot='1' multifunction='yes'/>"),
            "XML error: Invalid value for attribute 'multifunction' in element 'address': 'yes'."
        );
    }

    #[test]
    fn controller_index_errors() {
        let err = parse("<domain><devices><controller type='pci' index='-1' model='pci-bridge'/></devices></domain>")
            .unwrap_err();
        assert_eq!(
            err.message,
            "XML error: Invalid value for attribute 'index' in element 'controller': '-1'. Expected non-negative value"
        );
        let err = parse("<domain><devices><controller type='pci' index='1' model='pci-foo'/></devices></domain>")
            .unwrap_err();
        assert!(err.message.contains("pci-foo"), "{}", err.message);
    }
}
