//! Guest PCI address assignment, identical to libvirt 9.0 (or 11.3, by option) for the
//! machines it places (x86 `pc` and `q35`, and those plan/ names), refusing the others.
//!
//! [`assign_domain_xml`] takes a domain definition and returns it with every PCI address
//! filled in and the PCI controllers libvirt would add, keeping every other byte of the input.
//! [`set::AddressSet`] is the address bookkeeping, also used for hotplug by
//! [`HotplugAddressSet`].

pub mod caps;
pub mod explain;
pub mod extend;
pub mod host;
pub mod hotplug;
pub mod hotplug_s390;
mod isolation;
pub mod level;
pub mod mirror;
pub mod plan;
pub mod set;
pub mod slot_plan;

pub use caps::{EmulatorCap, EmulatorCaps};
pub use host::AssignHost;
pub use hotplug::HotplugAddressSet;
pub use level::LibvirtLevel;
pub use plan::{plan, plan_isolated, plan_with, Plan};
pub use set::AddressSet;

use crate::error::Result;
use crate::xml::domain::DomainDef;
use crate::xml::spare;
use crate::xml::write::{write_plan, Assigned, Original};
use crate::xml::Document;
use std::cell::RefCell;

/// The result of [`assign_domain_xml`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignOutput {
    /// The input with addresses and controllers added.
    pub xml: String,
    /// Things worth telling the user that do not stop the assignment, e.g. a device that has
    /// a PCI address although it is not a PCI device, or a slot used without function 0.
    pub warnings: Vec<String>,
}

/// Choices beyond libvirt's behaviour for [`assign_domain_xml_with`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AssignOptions {
    /// On x86 machine types, a slot used without function 0 is an error instead of a
    /// warning: x86 guests do not see such functions (pSeries guests do, and stay accepted).
    pub strict_function0: bool,
    /// Guarantee at least this many free hotplug-capable places after assignment: empty
    /// pcie-root-ports on q35 (packed eight to a slot), free slots on buses with hotplug on
    /// pc. `None`: libvirt's rule (one spare root port on q35 when controllers were added).
    pub hotplug_ports: Option<u32>,
    /// Extend mode: when libvirt's placement runs out of room, place the devices anyway with
    /// PCIe switches, bridges behind bridges and multifunction packing of devices that are
    /// never hot-plugged (see [`extend`]). Domains libvirt can place come out as libvirt
    /// places them.
    pub extend: bool,
    /// The libvirt release whose layout to give (default 9.0).
    pub libvirt: LibvirtLevel,
    /// The emulator's capabilities, which choose controller models and device variants
    /// (default: the emulator of the libvirt level, which has every one virtpci reads).
    pub emulator: EmulatorCaps,
}

/// Assign guest PCI addresses to the domain in `xml` as libvirt 9.0 does on define.
///
/// Errors carry libvirt's code and full message ("XML error: ...", "internal error: ...").
pub fn assign_domain_xml(xml: &str) -> Result<AssignOutput> {
    assign_domain_xml_with(xml, AssignOptions::default())
}

/// [`assign_domain_xml`] with `options` (virtpci's choices beyond libvirt: hotplug room,
/// strict function 0). Devices' `<addressPreferences>` are honoured in both; without
/// preferences and with default options the result is libvirt 9.0's.
pub fn assign_domain_xml_with(xml: &str, options: AssignOptions) -> Result<AssignOutput> {
    assign_domain_xml_on_host(xml, options, None, false)
}

/// [`assign_domain_xml_with`] reading `host` ([`host`]): on pc and q35 each PCI host device
/// whose address is picked automatically goes behind an expander bus on the guest NUMA cell
/// of its host NUMA node ([`mirror`]); on pseries host devices of different host IOMMU groups
/// go on different PHBs, as libvirt does ([`isolation`]). Devices that cannot be mirrored or
/// isolated are named in the warnings.
pub fn assign_domain_xml_mirroring(
    xml: &str,
    options: AssignOptions,
    host: Option<&dyn AssignHost>,
) -> Result<AssignOutput> {
    assign_domain_xml_on_host(xml, options, host, true)
}

/// [`assign_domain_xml_mirroring`], mirroring NUMA nodes only with `mirror_numa` (the
/// pseries isolation groups are libvirt's, so a host given always gives them).
pub fn assign_domain_xml_on_host(
    xml: &str,
    options: AssignOptions,
    host: Option<&dyn AssignHost>,
    mirror_numa: bool,
) -> Result<AssignOutput> {
    let doc = Document::parse(xml)?;
    let mut def = DomainDef::from_document(&doc)?;
    let reading = host::read_host(&doc, &mut def, host, mirror_numa)?;
    let mut original: Vec<Original> = spare::take(&SPARE_ORIGINALS);
    original.extend(def.devices.iter().map(|d| Original {
        element: d.element,
        address_element: d.address_element,
        address: d.address.clone(),
    }));
    let mut plan = plan::plan_isolated(def, &options, reading.isolation)?;
    plan.warnings.splice(0..0, reading.warnings);
    if options.strict_function0 {
        explain::check_function_zero_strict(&plan.def, &plan.set)?;
    }
    let more = explain::function_zero_warnings(&plan.def, &plan.set);
    plan.warnings.extend(more.into_iter().map(|w| w.message));
    let edits = write_plan(
        &doc,
        &original,
        &Assigned {
            def: &plan.def,
            controller_order: &plan.controller_order,
            filled: &plan.filled,
            index_filled: &plan.index_filled,
            s390: &plan.s390,
            spapr_vio_regs: &plan.spapr_vio_regs,
        },
    );
    let warnings = std::mem::take(&mut plan.warnings);
    // Free the document's tables and the plan before the new text is written: for thousands
    // of devices that text then reuses their memory instead of asking the kernel for more.
    let text = doc.text;
    drop(plan);
    spare::give(&SPARE_ORIGINALS, original);
    drop(doc);
    Ok(AssignOutput {
        xml: edits.apply(text),
        warnings,
    })
}

thread_local! {
    // The devices as read, kept for the thread's next assignment (see [`spare`]).
    static SPARE_ORIGINALS: RefCell<Option<Vec<Original>>> = const { RefCell::new(None) };
}
