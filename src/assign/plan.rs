//! libvirt 9.0's guest PCI address assignment (qemuDomainAssignPCIAddresses) over a
//! [`DomainDef`]: a dry run that counts the buses needed and adds controllers for them, then
//! the real pass that places controllers first and devices after, in libvirt's order.
//!
//! One `Planner` holds the definition being completed; its work is split by libvirt's
//! phases, one `impl Planner` block per file:
//! - `levels`: what differs between the libvirt levels reproduced (9.0 and 11.3);
//! - `implicit`: post-parse (controller indexes, default devices, implicit controllers) and
//!   the controller values filled in after assignment; `defaults`: the post-parse rules for
//!   USB companions, default models and disk controllers;
//! - `emulator`: the x86 rules that follow the emulator's capabilities;
//! - `validate`: the checks before and after assignment;
//! - `numa`: devices placed behind expander buses by their NUMA node preference;
//! - `flags`: connect flags and the devices' bus and hotplug preferences;
//! - `passes`: the run and libvirt's two passes; `extended`: extend mode's run;
//! - `chipset`: the chipsets' reserved slots; `slots`: devices placed in libvirt's order;
//! - `virt`: the machines virtpci places, and aarch64/riscv64 `virt` (defaults, virtio-mmio);
//! - `s390`: s390x's CCW addresses and zPCI identifiers;
//! - `pseries`: ppc64 pseries's PHBs and spapr-vio devices.

use super::set::AddressSet;
use super::AssignOptions;
use crate::error::Result;
use crate::pci::PciAddress;
use crate::topology::{ConnectFlags, MachineKind, PciModel};
use crate::xml::ccw::S390Assigned;
use crate::xml::domain::{
    Controller, Device, DeviceAddress, DeviceKind, DomainDef, Multifunction, PciControllerOptions,
};

mod chipset;
mod defaults;
mod emulator;
mod extended;
mod flags;
mod implicit;
mod levels;
mod numa;
mod passes;
mod pseries;
mod s390;
mod slots;
mod validate;
mod virt;

pub use crate::xml::write::FilledDefaults;
pub use flags::{device_flags, preferred_flags};
pub(crate) use s390::{
    ccw_in_use, goes_on_ccw, next_free_ccw, s390_device_default, takes_zpci, ZpciIds, FIRST_CCW,
};

/// The outcome of planning: the domain with its final addresses and controllers.
#[derive(Debug)]
pub struct Plan<'a> {
    pub def: DomainDef<'a>,
    /// Device indexes of the controllers in libvirt's order (which is the order in which
    /// they are written).
    pub controller_order: Vec<usize>,
    /// Per device: which PCI controller options were filled in.
    pub filled: Vec<FilledDefaults>,
    /// Per device: the index attribute was filled in.
    pub index_filled: Vec<bool>,
    /// The final address set (pass 2).
    pub set: AddressSet,
    pub warnings: Vec<String>,
    /// s390x: per device, the CCW address and zPCI identifiers given (empty elsewhere).
    pub s390: Vec<S390Assigned>,
    /// pseries: per device on spapr-vio, its `reg` (empty elsewhere).
    pub spapr_vio_regs: Vec<Option<u32>>,
}

/// Assign every PCI address of `def` as libvirt 9.0 does.
pub fn plan(def: DomainDef<'_>) -> Result<Plan<'_>> {
    plan_with(def, &AssignOptions::default())
}

/// Assign every PCI address of `def` as libvirt 9.0 does, with virtpci's `options` and the
/// devices' address preferences.
pub fn plan_with<'a>(def: DomainDef<'a>, options: &AssignOptions) -> Result<Plan<'a>> {
    plan_isolated(def, options, Vec::new())
}

/// [`plan_with`], keeping pseries host devices apart by `isolation` (per device of `def`,
/// its isolation group, read from a host by [`super::isolation::isolation_groups`]).
pub fn plan_isolated<'a>(
    def: DomainDef<'a>,
    options: &AssignOptions,
    isolation: Vec<u32>,
) -> Result<Plan<'a>> {
    let mut planner = Planner::new(def);
    planner.options = *options;
    planner.isolation = isolation;
    planner.prepare()?;
    if planner.is_s390() {
        planner.s390_defaults();
        planner.check_s390_addresses()?;
        planner.assign_ccw_addresses()?;
    }
    planner.assign_spapr_vio();
    planner.assign_spapr_vio_regs()?;
    let before_placement = planner.def.devices.len();
    // The PCI controllers placement adds get no zPCI identifiers from libvirt 9.0.
    let defined = if options.libvirt.gives_added_controllers_zpci() {
        usize::MAX
    } else {
        planner.def.devices.len()
    };
    planner.run()?;
    planner.fill_phb_defaults(before_placement)?;
    if planner.is_s390() {
        planner.assign_zpci(defined)?;
        planner.check_s390_device_models()?;
    }
    planner.validate_after()?;
    let Planner {
        def,
        controller_order,
        filled,
        index_filled,
        set,
        warnings,
        s390,
        spapr_vio_regs,
        ..
    } = planner;
    Ok(Plan {
        def,
        controller_order,
        filled,
        index_filled,
        set: set.unwrap_or_else(|| AddressSet::new(Vec::new(), false)),
        warnings,
        s390,
        spapr_vio_regs,
    })
}

/// The definition being completed, with what the phases keep beside it (per device: connect
/// flags and filled-in values; the controllers in libvirt's order; the final address set).
struct Planner<'a> {
    def: DomainDef<'a>,
    options: AssignOptions,
    flags: Vec<ConnectFlags>,
    controller_order: Vec<usize>,
    filled: Vec<FilledDefaults>,
    index_filled: Vec<bool>,
    set: Option<AddressSet>,
    warnings: Vec<String>,
    s390: Vec<S390Assigned>,
    /// pseries: per device, the `reg` of its spapr-vio address.
    spapr_vio_regs: Vec<Option<u32>>,
    /// pseries: per device of the input, its isolation group (0 for those not isolated and
    /// for every device added later); see [`super::isolation`].
    isolation: Vec<u32>,
}

const PCI_FLAGS: ConnectFlags = ConnectFlags::PCI_AUTO;

impl<'a> Planner<'a> {
    fn new(def: DomainDef<'a>) -> Planner<'a> {
        let n = def.devices.len();
        Planner {
            def,
            options: AssignOptions::default(),
            flags: vec![ConnectFlags::NONE; n],
            controller_order: Vec::new(),
            filled: vec![FilledDefaults::default(); n],
            index_filled: vec![false; n],
            set: None,
            warnings: Vec::new(),
            s390: Vec::new(),
            spapr_vio_regs: Vec::new(),
            isolation: Vec::new(),
        }
    }

    fn machine(&self) -> MachineKind {
        self.def.machine_kind
    }

    fn device(&self, i: usize) -> &Device<'a> {
        &self.def.devices[i]
    }

    fn controller(&self, i: usize) -> &Controller<'a> {
        self.def.devices[i]
            .controller()
            .expect("controller_order holds controllers only")
    }

    fn pci_controllers(&self) -> impl Iterator<Item = (usize, &Controller<'a>, PciModel)> + '_ {
        self.controller_order.iter().filter_map(move |&i| {
            let c = self.controller(i);
            c.pci_model().map(|m| (i, c, m))
        })
    }

    fn root_model(&self) -> Option<PciModel> {
        self.pci_controllers()
            .find(|(_, c, _)| c.index == Some(0))
            .map(|(_, _, m)| m)
    }

    /// The highest PCI controller index, -1 without PCI controllers.
    fn max_pci_index(&self) -> i64 {
        self.pci_controllers()
            .map(|(_, c, _)| i64::from(c.index()))
            .max()
            .unwrap_or(-1)
    }

    fn has_pcie_root(&self) -> bool {
        self.root_model() == Some(PciModel::PcieRoot)
    }

    fn has_pci_root(&self) -> bool {
        self.root_model() == Some(PciModel::PciRoot)
    }

    /// Add a device that is not in the input; returns its index.
    fn push_device(&mut self, device: Device<'a>) -> usize {
        self.def.devices.push(device);
        self.flags.push(ConnectFlags::NONE);
        self.filled.push(FilledDefaults::default());
        self.index_filled.push(false);
        self.def.devices.len() - 1
    }

    /// Insert controller `i` into the controller list where libvirt's
    /// virDomainControllerInsertPreAlloced puts it: among its type, ordered by index.
    fn insert_controller(&mut self, i: usize) {
        let new = self.controller(i).clone();
        let key = |c: &Controller| c.index.map_or(-1, i64::from);
        let new_key = key(&new);
        let mut insert_at: Option<usize> = None;
        for pos in (0..self.controller_order.len()).rev() {
            let cur = self.controller(self.controller_order[pos]);
            if cur.ctype != new.ctype {
                continue;
            }
            // A controller without an index goes after every controller of its type, so
            // index-less ones keep their document order (and get indexes in that order).
            if new.index.is_none() {
                insert_at = Some(pos + 1);
                break;
            }
            if key(cur) > new_key {
                insert_at = Some(pos);
            } else if key(cur) < new_key && insert_at.is_none() {
                insert_at = Some(pos + 1);
            }
        }
        let at = insert_at.unwrap_or(self.controller_order.len());
        self.controller_order.insert(at, i);
    }

    /// Add a PCI controller that virtpci decided on (not libvirt).
    fn add_pci_controller(
        &mut self,
        index: u32,
        model: PciModel,
        options: PciControllerOptions<'a>,
        address: DeviceAddress,
    ) {
        let i = self.push_device(new_pci_controller(index, model, options, address));
        self.controller_order.push(i);
    }

    fn filled_last(&mut self) -> &mut FilledDefaults {
        self.filled.last_mut().expect("a device was just added")
    }

    fn set_address(&mut self, i: usize, addr: PciAddress, multi: Multifunction) {
        self.def.devices[i].address = DeviceAddress::Pci { addr, multi };
    }

    /// The isolation group of device `i` (0: placed with the emulated devices).
    fn isolation_of(&self, i: usize) -> u32 {
        self.isolation.get(i).copied().unwrap_or(0)
    }

    fn wants(&self, i: usize) -> bool {
        self.def.devices[i].address.wants_pci()
    }
}

/// A PCI controller of `model` for bus `index` that is not in the input.
fn new_pci_controller<'a>(
    index: u32,
    model: PciModel,
    options: PciControllerOptions<'a>,
    address: DeviceAddress,
) -> Device<'a> {
    Device {
        element: None,
        address_element: None,
        kind: DeviceKind::Controller(Box::new(Controller {
            ctype: "pci",
            model: Some(model.name()),
            index: Some(index),
            index_missing: false,
            pci: Some((model, options)),
        })),
        address,
        address_controller: None,
        prefs: Default::default(),
    }
}
