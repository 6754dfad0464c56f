//! The checks that run before anything changes, as a report: per hostdev its group and what
//! prepare would do to it, every violation in libvirt's words, and warnings. `prepare` refuses
//! with the first violation; `virtpci check` prints the whole report.

use super::book::{held_error, DeviceState, Owner, OwnershipBook};
use super::critical::{critical_devices, critical_error, CriticalUse, HostUsage};
use super::moves::{is_vfio_driver, ResetCapability};
use super::net::{vf_net_device, vf_net_unsupported_error};
use super::PrepareOptions;
use crate::error::{Error, Result};
use crate::host::config::{ConfigSpace, HeaderType};
use crate::host::modules::module_of_driver;
use crate::host::names::parse_device_name;
use crate::host::{ChoiceReason, DriverChoice, Host, DEVICES_DIR};
use crate::pci::PciAddress;
use crate::xml::hostdevs::HostdevSpec;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// What prepare would do to one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Managed, on a host driver (or none): driver_override, unbind, probe, then confirm.
    Detach { from: Option<String> },
    /// Already bound to the stub: nothing to move (and nothing to give back on re-attach).
    AlreadyOnStub,
    /// In the inactive list (detached earlier through the node-device API): used as it is.
    FromInactive,
    /// Unmanaged and on a vfio driver: adopted into the lists.
    Adopt,
    /// Prepare would fail for this device (see the violations).
    Refused,
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::Detach { .. } => "detach",
            Action::AlreadyOnStub => "already-on-stub",
            Action::FromInactive => "from-inactive",
            Action::Adopt => "adopt",
            Action::Refused => "refused",
        }
    }
}

/// One hostdev of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostdevCheck {
    pub source: PciAddress,
    pub managed: bool,
    pub unassigned: bool,
    /// The stub it must end up on.
    pub stub: String,
    pub exists: bool,
    /// Driver and override now.
    pub current: DeviceState,
    pub iommu_group: Option<u32>,
    pub action: Action,
    /// Which reset the device supports (libvirt resets nothing bound to VFIO: VFIO does).
    pub reset: Option<ResetCapability>,
    /// Why the host needs it, if it does.
    pub critical: Option<CriticalUse>,
    /// The VFIO driver it will use and why (`None` for a device that does not exist).
    pub driver_choice: Option<DriverChoice>,
    /// The module prepare loads first, when the driver is not registered yet.
    pub load_module: Option<String>,
    /// Opened through iommufd and its VFIO device cdev.
    pub iommufd: bool,
    /// The kernel's `reset_method`, when it has one.
    pub reset_methods: Option<Vec<String>>,
}

/// One member of an IOMMU group that a hostdev belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    pub address: PciAddress,
    pub driver: Option<String>,
    /// A PCI bridge or PCIe port (header type 1): exempt from the whole-group rule.
    pub bridge: bool,
    /// Listed in this request.
    pub declared: bool,
    /// Its owner, when active.
    pub owner: Option<Owner>,
}

/// An IOMMU group touched by the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupCheck {
    pub number: u32,
    pub members: Vec<GroupMember>,
}

/// The dry run's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    pub owner: Owner,
    pub hostdevs: Vec<HostdevCheck>,
    pub groups: Vec<GroupCheck>,
    /// In the order prepare meets them; prepare fails with the first.
    pub violations: Vec<Error>,
    pub warnings: Vec<String>,
}

impl CheckReport {
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }

    /// The report as JSON (what `virtpci check --json` prints).
    pub fn to_json(&self) -> String {
        use serde_json::json;
        let owner = |o: &Option<Owner>| {
            o.as_ref()
                .map(|o| json!({"driver": o.driver, "domain": o.domain}))
        };
        let hostdevs: Vec<_> = self
            .hostdevs
            .iter()
            .map(|h| {
                let (reset, also) = match &h.reset {
                    Some(ResetCapability::Flr) => ("flr", vec![]),
                    Some(ResetCapability::PowerManagement) => ("pm", vec![]),
                    Some(ResetCapability::SecondaryBus { also_resets }) => {
                        ("bus", also_resets.iter().map(|a| a.to_string()).collect())
                    }
                    Some(ResetCapability::None) => ("none", vec![]),
                    None => ("unknown", vec![]),
                };
                json!({
                    "source": h.source.to_string(),
                    "managed": h.managed,
                    "unassigned": h.unassigned,
                    "stub": h.stub,
                    "exists": h.exists,
                    "driver": h.current.driver,
                    "driver_override": h.current.driver_override,
                    "iommu_group": h.iommu_group,
                    "action": h.action.name(),
                    "reset": reset,
                    "bus_reset_also_resets": also,
                    "critical": h.critical.as_ref().map(|c| c.to_string()),
                    "driver_choice": h.driver_choice.as_ref().map(|c| {
                        let (line, number) = match &c.reason {
                            ChoiceReason::Alias { line, line_number } => {
                                (Some(line.clone()), Some(*line_number))
                            }
                            _ => (None, None),
                        };
                        json!({
                            "driver": c.driver,
                            "module": c.module,
                            "reason": c.reason.name(),
                            "alias_line": line,
                            "alias_line_number": number,
                        })
                    }),
                    "load_module": h.load_module,
                    "iommufd": h.iommufd,
                    "reset_methods": h.reset_methods,
                })
            })
            .collect();
        let groups: Vec<_> = self
            .groups
            .iter()
            .map(|g| {
                json!({
                    "number": g.number,
                    "members": g.members.iter().map(|m| json!({
                        "address": m.address.to_string(),
                        "driver": m.driver,
                        "bridge": m.bridge,
                        "declared": m.declared,
                        "owner": owner(&m.owner),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let violations: Vec<_> = self
            .violations
            .iter()
            .map(|e| json!({"code": e.code as i32, "message": e.message}))
            .collect();
        let doc = json!({
            "driver": self.owner.driver,
            "domain": self.owner.domain,
            "ok": self.ok(),
            "hostdevs": hostdevs,
            "groups": groups,
            "violations": violations,
            "warnings": self.warnings,
        });
        serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
    }

    /// The devices prepare would move to their stub.
    pub fn detaching(&self) -> impl Iterator<Item = &HostdevCheck> {
        self.hostdevs
            .iter()
            .filter(|h| matches!(h.action, Action::Detach { .. }))
    }
}

/// Resolve the stub driver a hostdev asks for: NULL, `vfio` or `vfio-pci` is vfio-pci; the
/// name of a vfio variant driver is that driver; anything else is libvirt's
/// "pci backend driver '%s' is not supported".
pub(crate) fn stub_for(spec: &HostdevSpec) -> Result<String> {
    match spec.driver.as_deref() {
        None | Some("vfio") | Some("vfio-pci") | Some("default") => Ok("vfio-pci".to_string()),
        Some(d) if is_vfio_driver(d) && crate::host::names::is_valid_driver_name(d) => {
            Ok(d.to_string())
        }
        Some(d) => Err(Error::config_unsupported(format!(
            "pci backend driver '{}' is not supported",
            d.escape_debug()
        ))),
    }
}

/// The driver a hostdev forces, if it does: `<driver model='NAME'/>` (refused unless NAME is
/// a VFIO driver), or a `<driver name>` that names a VFIO variant driver. `None`: the driver is
/// chosen for the device (see [`Host::choose_vfio_driver`]).
pub(crate) fn forced_driver(spec: &HostdevSpec) -> Result<Option<DriverChoice>> {
    let stub = stub_for(spec)?;
    let forced = match spec.model.as_deref() {
        Some(m) if !is_vfio_driver(m) || !crate::host::names::is_valid_driver_name(m) => {
            return Err(Error::config_unsupported(format!(
                "hostdev driver model '{}' of PCI device {} is not a VFIO driver (vfio-pci or a VFIO variant driver such as mlx5_vfio_pci)",
                m.escape_debug(),
                spec.source
            )))
        }
        Some(m) => m.to_string(),
        None if stub != crate::host::VFIO_PCI => stub,
        None => return Ok(None),
    };
    Ok(Some(DriverChoice {
        module: module_of_driver(&forced),
        driver: forced,
        reason: ChoiceReason::Forced,
        notes: Vec::new(),
    }))
}

/// Refuse a request that lists a device twice.
pub(crate) fn check_duplicates(hostdevs: &[HostdevSpec]) -> Result<()> {
    let mut seen = BTreeSet::new();
    for h in hostdevs {
        h.source.check_ranges()?;
        if !seen.insert(h.source) {
            return Err(Error::invalid_arg(format!(
                "Hostdev already exists in the domain configuration (PCI device {} is listed twice)",
                h.source
            )));
        }
    }
    Ok(())
}

/// The devices on the same domain:bus as `addr`: its siblings in the sysfs hierarchy (the
/// kernel nests a bus's devices under their bridge), without a scan of every device.
pub(crate) fn bus_neighbours(host: &Host, addr: &PciAddress) -> Result<Vec<PciAddress>> {
    let path = host.device_sysfs_path(addr)?;
    let parent = match path.rsplit_once('/') {
        Some((p, _)) if p != DEVICES_DIR => p.to_string(),
        _ => {
            return Ok(host
                .device_addresses()?
                .into_iter()
                .filter(|o| o.domain == addr.domain && o.bus == addr.bus && o != addr)
                .collect())
        }
    };
    let mut out: Vec<PciAddress> = host
        .sysfs()
        .read_dir_opt(&parent)?
        .unwrap_or_default()
        .iter()
        .filter_map(|e| parse_device_name(&e.name))
        .filter(|o| o.domain == addr.domain && o.bus == addr.bus && o != addr)
        .collect();
    out.sort();
    Ok(out)
}

fn reset_capability_of(
    host: &Host,
    addr: &PciAddress,
    cfg: &ConfigSpace,
) -> Result<ResetCapability> {
    if cfg.has_flr() || host.physical_function(addr)?.is_some() {
        return Ok(ResetCapability::Flr);
    }
    if cfg.has_pm_reset() {
        return Ok(ResetCapability::PowerManagement);
    }
    if addr.bus != 0 {
        return Ok(ResetCapability::SecondaryBus {
            also_resets: bus_neighbours(host, addr)?,
        });
    }
    Ok(ResetCapability::None)
}

/// The message for a device that does not exist (libvirt's virPCIDeviceNew).
pub(crate) fn missing_device_error(host: &Host, addr: &PciAddress) -> Error {
    Error::system(
        format!(
            "Device {addr} not found: could not access {}",
            host.sysfs()
                .display(&format!("{DEVICES_DIR}/{addr}/config"))
        ),
        &std::io::Error::from_raw_os_error(libc::ENOENT),
    )
}

/// How the whole-group refusal names its second remedy.
const LEGACY_REMEDY: &str = "the legacy group check (libvirt 9.0's rule)";

/// `err` with the front end's name for the legacy group check (`--legacy-group-check`, a C
/// flag's name) when it is the whole-group refusal; any other error unchanged.
pub fn name_legacy_group_option(err: Error, option: &str) -> Error {
    match err.message.strip_suffix(LEGACY_REMEDY) {
        Some(head) if err.code == crate::error::ErrorCode::OperationInvalid => {
            let detail = head.strip_prefix(err.code.prefix()).unwrap_or(head);
            Error::new(err.code, format!("{detail}{option} (libvirt 9.0's rule)"))
        }
        _ => err,
    }
}

/// The whole-group rule's refusal: libvirt's words, then the members the domain does not
/// declare and the two remedies.
fn whole_group_error(
    group: u32,
    addr: &PciAddress,
    domain: &str,
    undeclared: &[&GroupMember],
) -> Error {
    let names: Vec<String> = undeclared.iter().map(|m| m.address.to_string()).collect();
    Error::operation_invalid(format!(
        "All devices of the same IOMMU group {group} of the PCI device {addr} must belong to domain {domain}: \
         not declared: {}; declare each as a managed hostdev hidden from the guest with \
         <address type='unassigned'/>, or use {LEGACY_REMEDY}",
        names.join(", ")
    ))
}

/// Run every check of prepare for `owner` and `hostdevs` against the host and the book.
/// Errors reading sysfs abort the check; violations are collected.
pub fn check(
    host: &Host,
    book: &OwnershipBook,
    usage: &dyn HostUsage,
    owner: &Owner,
    hostdevs: &[HostdevSpec],
    options: PrepareOptions,
) -> Result<CheckReport> {
    check_duplicates(hostdevs)?;
    let forced: Vec<Option<DriverChoice>> =
        hostdevs.iter().map(forced_driver).collect::<Result<_>>()?;
    let stubs: Vec<String> = forced
        .iter()
        .map(|f| {
            f.as_ref()
                .map_or(crate::host::VFIO_PCI.to_string(), |c| c.driver.clone())
        })
        .collect();
    let declared: BTreeSet<PciAddress> = hostdevs.iter().map(|h| h.source).collect();
    let mut report = CheckReport {
        owner: owner.clone(),
        hostdevs: Vec::with_capacity(hostdevs.len()),
        groups: Vec::new(),
        violations: Vec::new(),
        warnings: Vec::new(),
    };
    // Each device is read once per check, whether it comes up as a hostdev or a group member.
    let mut configs: HashMap<PciAddress, ConfigSpace> = HashMap::new();
    let mut drivers: HashMap<PciAddress, Option<String>> = HashMap::new();
    let mut group_of: HashMap<PciAddress, crate::host::IommuGroup> = HashMap::new();
    let mut checked_groups: BTreeSet<u32> = BTreeSet::new();
    let mut critical: Option<BTreeMap<PciAddress, CriticalUse>> = None;
    let mut loaded: HashMap<String, bool> = HashMap::new();

    let mut iommufd_refused = false;
    // modules.alias and modules.dep, read at most once per check (a real modules.alias is
    // megabytes).
    let mut modules_files = None;
    for ((spec, stub), forced) in hostdevs.iter().zip(stubs).zip(forced) {
        let addr = spec.source;
        let mut item = HostdevCheck {
            source: addr,
            managed: spec.managed,
            unassigned: spec.unassigned,
            stub,
            exists: true,
            current: DeviceState::default(),
            iommu_group: None,
            action: Action::Refused,
            reset: None,
            critical: None,
            driver_choice: None,
            load_module: None,
            iommufd: spec.iommufd,
            reset_methods: None,
        };
        if !host.device_exists(&addr)? {
            item.exists = false;
            report.violations.push(missing_device_error(host, &addr));
            report.hostdevs.push(item);
            continue;
        }
        let cfg = match configs.remove(&addr) {
            Some(c) => c,
            None => host.config_space(&addr)?,
        };
        if cfg.header_type != HeaderType::Endpoint {
            report.violations.push(Error::internal(
                "Non-endpoint PCI devices cannot be assigned to guests",
            ));
        }
        if let Some(net) = &spec.net {
            match vf_net_device(host, &addr)? {
                Err(e) => report.violations.push(e),
                Ok(_) if (net.mac.is_some() || net.vlan.is_some()) && !host.vf_net_supported() => {
                    report.violations.push(vf_net_unsupported_error(host))
                }
                Ok(_) => {}
            }
        }
        if let Some(a) = book.active_entry(&addr) {
            report.violations.push(held_error(&addr, a));
        }
        let group = match group_of.get(&addr) {
            Some(g) => Some(g.clone()),
            None => host.iommu_group(&addr)?,
        };
        match group {
            None => report.warnings.push(format!(
                "PCI device {addr} has no IOMMU group: VFIO cannot assign it on this host"
            )),
            Some(group) => {
                item.iommu_group = Some(group.number);
                for m in group.devices.iter().filter(|m| **m != addr) {
                    if let Some(a) = book.active_entry(m) {
                        if a.owner != *owner {
                            report.violations.push(held_error(m, a));
                        }
                    }
                }
                if checked_groups.insert(group.number) {
                    let mut members = Vec::with_capacity(group.devices.len());
                    for m in &group.devices {
                        let ht = if *m == addr {
                            cfg.header_type
                        } else {
                            let c = host.config_space(m)?;
                            let t = c.header_type;
                            if declared.contains(m) {
                                configs.insert(*m, c);
                                group_of.insert(*m, group.clone());
                            }
                            t
                        };
                        let driver = host.driver(m)?;
                        drivers.insert(*m, driver.clone());
                        members.push(GroupMember {
                            address: *m,
                            driver,
                            bridge: ht == HeaderType::PciBridge,
                            declared: declared.contains(m),
                            owner: book.active_entry(m).map(|a| a.owner.clone()),
                        });
                    }
                    let undeclared: Vec<&GroupMember> = members
                        .iter()
                        .filter(|m| !m.declared && !m.bridge)
                        .collect();
                    if !undeclared.is_empty() {
                        if !options.legacy_group_check {
                            report.violations.push(whole_group_error(
                                group.number,
                                &addr,
                                &owner.domain,
                                &undeclared,
                            ));
                        } else {
                            for m in undeclared.iter().filter(|m| {
                                m.owner.is_none()
                                    && !m.driver.as_deref().is_some_and(is_vfio_driver)
                            }) {
                                report.warnings.push(format!(
                                    "PCI device {} of IOMMU group {} stays on {}: VFIO will not open the group while it does",
                                    m.address,
                                    group.number,
                                    m.driver.as_deref().unwrap_or("no driver")
                                ));
                            }
                        }
                    }
                    report.groups.push(GroupCheck {
                        number: group.number,
                        members,
                    });
                }
            }
        }
        item.current = DeviceState {
            driver: match drivers.get(&addr) {
                Some(d) => d.clone(),
                None => host.driver(&addr)?,
            },
            driver_override: host.driver_override(&addr)?,
        };
        let current_vfio = item.current.driver.clone().filter(|d| is_vfio_driver(d));
        let choice = match (forced, current_vfio) {
            (Some(f), _) => f,
            (None, Some(d)) => DriverChoice {
                module: module_of_driver(&d),
                driver: d,
                reason: ChoiceReason::Kept,
                notes: Vec::new(),
            },
            (None, None) if spec.managed => {
                let files = match modules_files.take() {
                    Some(f) => f,
                    None => host.read_modules_files()?,
                };
                let choice = host.choose_vfio_driver_with(&files, &addr)?;
                modules_files = Some(files);
                choice
            }
            (None, None) => DriverChoice::vfio_pci(ChoiceReason::Default),
        };
        for note in &choice.notes {
            // The same unreadable alias line would otherwise be reported once per device.
            if !report.warnings.contains(note) {
                report.warnings.push(note.clone());
            }
        }
        item.stub = choice.driver.clone();
        item.reset_methods = host.reset_methods(&addr)?;
        if spec.iommufd && !iommufd_refused {
            if let Err(e) = host.require_iommufd() {
                iommufd_refused = true;
                report.violations.push(e);
            }
        }
        let on_stub = item.current.driver.as_deref() == Some(item.stub.as_str());
        if spec.managed {
            item.action = if book.is_inactive(&addr) && on_stub {
                Action::FromInactive
            } else if on_stub {
                Action::AlreadyOnStub
            } else {
                Action::Detach {
                    from: item.current.driver.clone(),
                }
            };
        } else if book.is_inactive(&addr) && on_stub {
            item.action = Action::FromInactive;
        } else if item.current.driver.as_deref().is_some_and(is_vfio_driver)
            || host.bound_to_vfio(&addr)?
        {
            // Adopted with the driver it is on (a vfio variant keeps its name).
            if let Some(d) = &item.current.driver {
                item.stub = d.clone();
            }
            item.action = Action::Adopt;
        } else {
            report.violations.push(Error::operation_invalid(format!(
                "Unmanaged PCI device {addr} must be manually detached from the host"
            )));
        }
        if let Action::Detach { .. } = item.action {
            let is_loaded = match loaded.get(&item.stub) {
                Some(v) => *v,
                None => {
                    let v = host.driver_loaded(&item.stub)?;
                    loaded.insert(item.stub.clone(), v);
                    v
                }
            };
            if !is_loaded {
                match host.check_loadable(&choice.module, &host.module_options()) {
                    Ok(()) => item.load_module = Some(choice.module.clone()),
                    Err(e) => report.violations.push(e),
                }
            }
            if critical.is_none() {
                critical = Some(critical_devices(host, usage)?);
            }
            if let Some(why) = critical.as_ref().and_then(|c| c.get(&addr)) {
                item.critical = Some(why.clone());
                if !options.force {
                    report.violations.push(critical_error(&addr, why));
                } else {
                    report.warnings.push(format!(
                        "PCI device {addr} is critical to the host ({why}); detaching it anyway (forced)"
                    ));
                }
            }
        }
        item.driver_choice = Some(choice);
        item.reset = Some(reset_capability_of(host, &addr, &cfg)?);
        report.hostdevs.push(item);
    }
    Ok(report)
}
