//! virtpci: guest PCI address assignment and host PCI passthrough, with a C ABI.
//!
//! The core modules are safe Rust; `ffi` is the only unsafe code.
//!
//! The modules: [`pci`] (addresses), [`xml`] (domain XML in and out, and the PCI hostdevs of a
//! definition), [`topology`] (controller models and what each bus accepts), [`assign`] (guest
//! PCI addresses as libvirt gives them, hotplug, whole-slot plans, explanations), [`abi`] (the
//! guest ABI check), [`host`] (sysfs, IOMMU groups, modules, VFIO, the simulated kernel,
//! snapshots), [`hostdev`] (prepare and re-attach of host devices, their book and status),
//! [`error`], [`limits`], and [`ffi`] (the C ABI). The README's layout section lists the files.
//!
//! State kept between calls, and nothing else: each thread's spare buffers (the largest
//! tables of the XML reader, the devices as read and the editor's buffers, emptied and reused
//! by that thread's next call so that large domains do not fault in fresh pages every time;
//! `src/xml/spare.rs`, bounded there), and in `ffi` each thread's last error and the one log
//! callback of the process. The buffers are emptied before reuse, so no result depends on an
//! earlier call; everything else lives in the values and handles the caller holds.
#![deny(unsafe_code)]

pub mod abi;
pub mod assign;
pub mod error;
pub mod host;
pub mod hostdev;
pub mod limits;
pub mod pci;
pub mod topology;
pub mod xml;

#[allow(unsafe_code)]
pub mod ffi;

pub use assign::{assign_domain_xml, assign_domain_xml_with, AssignOptions, AssignOutput};
pub use error::{Error, ErrorCode, Result};
pub use host::Host;
pub use hostdev::HostdevManager;
pub use pci::PciAddress;
pub use xml::hostdevs::HostdevSpec;
