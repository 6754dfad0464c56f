//! The checks libvirt makes on a definition: its controllers and devices before
//! assignment (parse and validation time), and the completed definition after it.

use super::Planner;
use crate::error::{quote, Error, Result};
use crate::topology::{MachineKind, PciModel};
use crate::xml::domain::{DeviceAddress, DeviceKind};
use std::collections::HashSet;

impl<'a> Planner<'a> {
    pub(super) fn check_duplicate_controllers(&self) -> Result<()> {
        let mut seen: HashSet<(&str, u32)> = HashSet::new();
        for &i in &self.controller_order {
            let c = self.controller(i);
            // USB2 companion controllers share an index on purpose.
            if c.ctype == "usb" {
                continue;
            }
            let key = (c.ctype, c.index());
            if seen.contains(&key) {
                return Err(Error::xml(format!(
                    "Multiple '{}' controllers with index '{}'",
                    quote(c.ctype),
                    c.index()
                )));
            }
            seen.insert(key);
        }
        Ok(())
    }

    pub(super) fn check_controllers(&self) -> Result<()> {
        let machine = self.machine();
        for &i in &self.controller_order {
            let c = self.controller(i);
            let Some((model, opts)) = &c.pci else {
                if c.ctype == "pci" {
                    return Err(self.pci_controller_without_model(c));
                }
                continue;
            };
            let index = c.index();
            let phb = machine == MachineKind::Pseries && *model == PciModel::PciRoot;
            if model.is_root() && index != 0 && !phb {
                return Err(Error::xml(
                    "pci-root and pcie-root controllers should have index 0",
                ));
            }
            if model.is_root() && self.device(i).address != DeviceAddress::None {
                return Err(Error::config_unsupported(
                    "pci-root and pcie-root controllers should not have an address",
                ));
            }
            if index == 0 && machine != MachineKind::Other && *model != machine.root_model() {
                return Err(Error::xml(format!(
                    "The PCI controller with index='0' must be model='{}' for this machine type, \
                     but model='{}' was found instead",
                    machine.root_model(),
                    model
                )));
            }
            if !model.is_root() && index == 0 {
                return Err(Error::config_unsupported(format!(
                    "Index for '{model}' controllers must be > 0"
                )));
            }
            if index > 255 {
                return Err(Error::config_unsupported(format!(
                    "PCI controller index {index} too high, maximum is 255"
                )));
            }
            match model {
                PciModel::PciExpanderBus if machine != MachineKind::I440fx => {
                    return Err(Error::config_unsupported(
                        "pci-expander-bus controllers are only supported on 440fx-based machinetypes",
                    ))
                }
                PciModel::PcieExpanderBus
                    if !matches!(machine, MachineKind::Q35 | MachineKind::ArmVirt) =>
                {
                    return Err(Error::config_unsupported(
                        "pcie-expander-bus controllers are not supported with this machine type",
                    ))
                }
                _ => {}
            }
            if let Some(node) = opts.numa_node {
                if index == 0 {
                    return Err(Error::config_unsupported(
                        "The PCI controller with index=0 can't be associated with a NUMA node",
                    ));
                }
                if node < 0 || node as usize >= self.def.numa_cells {
                    return Err(Error::xml(format!(
                        "{model} with index {index} is configured for a NUMA node ({node}) not \
                         present in the domain's <cpu><numa> array ({})",
                        self.def.numa_cells
                    )));
                }
            }
        }
        Ok(())
    }

    /// Device checks libvirt makes while parsing and validating the definition.
    pub(super) fn check_devices(&self) -> Result<()> {
        for device in &self.def.devices {
            let has_address = device.address != DeviceAddress::None;
            match &device.kind {
                DeviceKind::Disk { bus, target, .. } => {
                    if matches!(device.address, DeviceAddress::Pci { .. }) && *bus != "virtio" {
                        if *bus == "usb" {
                            return Err(Error::internal("unexpected address type for usb disk"));
                        }
                        return Err(Error::config_unsupported(format!(
                            "Invalid address type 'pci' for the disk '{target}' with the bus type '{bus}'"
                        )));
                    }
                }
                // pvpanic-pci is an ARM virt device: libvirt 9.0 refuses it on x86 machines.
                DeviceKind::Panic { model: Some(m) } if *m == "pvpanic" => {
                    return Err(Error::config_unsupported("unknown panic model 'pvpanic'"));
                }
                DeviceKind::Video { model, .. } if *model == "ramfb" && has_address => {
                    return Err(Error::config_unsupported(
                        "address not supported for video type ramfb",
                    ));
                }
                DeviceKind::Iommu { model } if *model == "virtio" => {
                    if !matches!(
                        device.address,
                        DeviceAddress::None | DeviceAddress::Pci { .. }
                    ) {
                        return Err(Error::config_unsupported(
                            "IOMMU device: 'virtio' needs a PCI address",
                        ));
                    }
                }
                DeviceKind::Hostdev(h) if h.is_subsystem() && h.htype == "pci" => {
                    if !matches!(
                        device.address,
                        DeviceAddress::None | DeviceAddress::Pci { .. } | DeviceAddress::Unassigned
                    ) {
                        return Err(Error::internal(
                            "PCI host devices must use 'pci' or 'unassigned' address type",
                        ));
                    }
                }
                _ => {
                    if device.address == DeviceAddress::Unassigned {
                        return Err(Error::config_unsupported(
                            "address of type 'unassigned' is supported only for hostdevs",
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// The checks libvirt's validation makes on the completed definition.
    pub(super) fn validate_after(&self) -> Result<()> {
        self.validate_devices()?;
        for (_, c, model) in self.pci_controllers() {
            let index = c.index();
            if index > 255 {
                return Err(Error::config_unsupported(format!(
                    "PCI controller index {index} too high, maximum is 255"
                )));
            }
            let Some((_, opts)) = &c.pci else { continue };
            let context = || {
                format!(
                    "for PCI controller with index '{index}', model '{model}' and modelName '{}'",
                    quote(opts.model_name.unwrap_or_default())
                )
            };
            let phb = self.is_pseries() && model == PciModel::PciRoot;
            if let Some(name) = &opts.model_name {
                let phb_name = phb && *name == super::pseries::PHB_MODEL_NAME;
                if !phb_name && (model.is_root() || !model.valid_model_names().contains(name)) {
                    return Err(Error::config_unsupported(format!(
                        "Option 'modelName' has invalid value {}",
                        context()
                    )));
                }
            }
            let options: [(&str, Option<i64>, bool); 4] = [
                ("chassisNr", opts.chassis_nr, model == PciModel::PciBridge),
                (
                    "chassis",
                    opts.chassis,
                    matches!(
                        model,
                        PciModel::PcieRootPort | PciModel::PcieSwitchDownstreamPort
                    ),
                ),
                (
                    "port",
                    opts.port,
                    matches!(
                        model,
                        PciModel::PcieRootPort | PciModel::PcieSwitchDownstreamPort
                    ),
                ),
                (
                    "busNr",
                    opts.bus_nr,
                    matches!(model, PciModel::PciExpanderBus | PciModel::PcieExpanderBus),
                ),
            ];
            for (name, value, allowed) in options {
                match (value, allowed) {
                    (Some(_), false) => {
                        return Err(Error::config_unsupported(format!(
                            "Option '{name}' is not valid {}",
                            context()
                        )))
                    }
                    (None, true) => {
                        return Err(Error::config_unsupported(format!(
                            "Required option '{name}' is not set {}",
                            context()
                        )))
                    }
                    _ => {}
                }
            }
            if opts.hotplug.is_some() && !model.takes_hotplug_option() {
                return Err(Error::config_unsupported(format!(
                    "Option 'hotplug' is not valid {}",
                    context()
                )));
            }
            if opts.hotplug.is_some() {
                self.check_controller_hotplug_option(model, opts.model_name.unwrap_or_default())?;
            }
            if let Some(name) = opts.model_name {
                self.check_controller_device(name)?;
            }
            if let (Some(t), true) = (opts.target_index, phb) {
                if !(0..=30).contains(&t) {
                    return Err(Error::config_unsupported(format!(
                        "PCI controller target index '{t}' out of range - must be 0-30"
                    )));
                }
                if (index == 0) != (t == 0) {
                    return Err(Error::config_unsupported(
                        "Only the PCI controller with index 0 can have target index 0, and vice versa",
                    ));
                }
            } else if opts.target_index.is_some() {
                return Err(Error::config_unsupported(format!(
                    "Option 'targetIndex' is not valid {}",
                    context()
                )));
            }
            let range = |value: Option<i64>, lo: i64, hi: i64, what: &str| -> Result<()> {
                match value {
                    Some(v) if v < lo || v > hi => Err(Error::config_unsupported(format!(
                        "PCI controller {what} '{v}' out of range - must be {lo}-{hi}"
                    ))),
                    _ => Ok(()),
                }
            };
            range(opts.chassis_nr, 1, 255, "chassisNr")?;
            range(opts.chassis, 0, 255, "chassis")?;
            range(opts.port, 0, 255, "port")?;
            range(opts.bus_nr, 1, 254, "busNr")?;
        }
        Ok(())
    }
}
