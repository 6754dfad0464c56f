//! virtpci: guest PCI address assignment and host PCI passthrough, with a C ABI.
//!
//! The core modules are safe Rust with no global state; `ffi` is the only unsafe code.
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
pub use hostdev::{HostdevManager, HostdevSpec};
pub use pci::PciAddress;
