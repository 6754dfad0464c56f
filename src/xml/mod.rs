//! Domain XML in and out: a span-keeping element tree ([`dom`]), the PCI-relevant model read
//! from it ([`domain`]), and byte-preserving edits ([`edit`]); references in text are
//! decoded by [`text`]; [`mod@write`] prints addresses and controllers and splices an
//! assignment's results into the text.

pub mod dom;
pub mod domain;
pub mod edit;
pub mod identity;
pub mod spare;
pub mod text;
pub mod write;

pub use dom::{Document, ElementId};
pub use domain::{DeviceAddress, DomainDef, Multifunction};
