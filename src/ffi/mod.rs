//! The C ABI: the only module with `unsafe`, raw pointers and `extern "C"`.
//!
//! Every exported function runs its body through [`boundary::guard`], which resets the
//! thread-local last error, turns an `Err` into `-1`/`NULL` plus a last error, and turns a panic
//! into `VIRTPCI_ERR_INTERNAL`: nothing unwinds into C. No exported item is made by a macro, so
//! cbindgen sees every signature.

pub mod abi;
pub mod address;
pub mod assign;
pub mod boundary;
pub mod general;
pub mod guest_address;
pub mod host;
pub mod host_vfio;
pub mod hostdev;
pub mod hostdev_extras;
pub mod hostdev_net;
pub mod log;
pub mod slot_plan;
