//! virtpci: guest PCI address assignment and host PCI passthrough, with a C ABI.
//!
//! The core modules are safe Rust with no global state; `ffi` is the only unsafe code.
#![deny(unsafe_code)]

pub mod error;
pub mod host;
pub mod pci;

#[allow(unsafe_code)]
pub mod ffi;

pub use error::{Error, ErrorCode, Result};
pub use host::Host;
pub use pci::PciAddress;
