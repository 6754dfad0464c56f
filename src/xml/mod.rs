//! Domain XML in and out: a span-keeping element tree ([`dom`]), the PCI-relevant model read
//! from it ([`domain`]), a device's identity for labels and pairing (`identity`), and
//! byte-preserving edits (`edit`); references in text are decoded by `text`; `write` prints
//! addresses and controllers and splices an assignment's results into the text; `spare` keeps
//! each thread's large buffers for its next call; `hostdevs` reads the PCI host devices into
//! the specs the hostdev manager takes and adds hidden ones. `ccw`, `dom`, `domain` and
//! `hostdevs` are public.

pub mod ccw;
pub mod dom;
pub mod domain;
pub(crate) mod edit;
pub(crate) mod host_numa;
pub mod hostdevs;
pub(crate) mod identity;
pub(crate) mod spare;
pub(crate) mod text;
pub(crate) mod write;

pub use dom::{Document, ElementId};
pub use domain::{DeviceAddress, DomainDef, Multifunction};
