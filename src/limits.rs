//! Limits on the size and shape of what virtpci reads, in one place.
//!
//! virtpci runs inside someone else's daemon, so hostile or broken input must cost a bounded
//! amount of time and memory. Input beyond a limit is refused with an error naming the limit,
//! before work proportional to it is done: an oversized string is refused by its length alone
//! (the C entry points read at most `MAX_XML_BYTES + 1` bytes of it, see
//! `ffi::boundary::xml_arg`), deep nesting when the first element too deep is opened.
//!
//! The values leave room far beyond any real definition: libvirt's own RPC refuses strings
//! over 4 MiB (`REMOTE_STRING_MAX`), libxml2 refuses nesting deeper than 256 by default, a
//! domain has at most 256 PCI buses of 32 slots, and a config space has 4096 bytes.

use crate::error::{Error, Result};

/// Largest XML document (domain or device) accepted, in bytes: 16 MiB, four times what
/// libvirt's RPC carries; room for some 50,000 devices.
pub const MAX_XML_BYTES: usize = 16 << 20;

/// Deepest element nesting accepted in XML (libxml2's default `xmlParserMaxDepth`); a domain
/// definition nests about 6 deep.
pub const MAX_XML_DEPTH: usize = 256;

/// Most elements in one XML document (131,072): some 15,000 devices of eight elements each,
/// about twice what 256 buses of 31 slots take; an assignment at this limit peaks near 128 MiB.
pub const MAX_XML_ELEMENTS: usize = 1 << 17;

/// Most attributes on one XML element (libvirt's elements have at most about ten).
pub const MAX_XML_ATTRIBUTES: usize = 256;

/// Most controllers in one domain (8,192): 256 PCI controllers and every other kind many times
/// over. Placing controllers in libvirt's order is quadratic in their number, so without a
/// bound 40,000 controllers (1.3 MB of XML) took seconds and the element limit minutes.
pub const MAX_DOMAIN_CONTROLLERS: usize = 8192;

/// Largest host snapshot (JSON) accepted, in bytes: 64 MiB.
pub const MAX_SNAPSHOT_BYTES: usize = 64 << 20;

/// Largest config space of a device in a host snapshot: PCI Express's 4096 bytes.
pub const MAX_CONFIG_SPACE_BYTES: usize = 4096;

/// Longest error or log message virtpci gives, in bytes (prefix included, before the C
/// string's NUL): messages are read by people and kept in logs, and input quoted in them is
/// cut to [`MAX_QUOTED_INPUT_BYTES`], so only a bug reaches this bound (then the message is
/// cut, see `crate::error::bounded_message`).
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// Most bytes of one piece of input (an address, a name, an attribute value, a path) that a
/// message quotes; longer input is quoted as its first bytes and `...`.
pub const MAX_QUOTED_INPUT_BYTES: usize = 64;

/// Longest domain name the hostdev manager books, in bytes: a file name's length (NAME_MAX).
/// libvirt keeps each domain of its QEMU driver in a file named after it (`NAME.xml`), so a
/// longer name cannot be a libvirt domain; without a bound a 64 MiB name made a 192 MiB state
/// file.
pub const MAX_DOMAIN_NAME_BYTES: usize = 255;

/// Longest daemon driver name the hostdev manager books, in bytes. libvirt's are short
/// constants ("QEMU", "LXC", "xenlight").
pub const MAX_DRIVER_NAME_BYTES: usize = 64;

/// Check a name the hostdev manager books (`what`: "domain name", "driver name"): 1 to `max`
/// bytes, without a newline (libvirt refuses a newline in any object name).
pub fn check_name(what: &str, name: &str, max: usize) -> Result<()> {
    if name.is_empty() || name.len() > max {
        return Err(Error::invalid_arg(format!(
            "{what} must be 1 to {max} bytes long, not {}",
            name.len()
        )));
    }
    if name.contains('\n') {
        return Err(Error::invalid_arg(format!(
            "invalid char in {what}: newline"
        )));
    }
    Ok(())
}

/// The XML limits [`crate::xml::Document::parse`] applies; tests may use smaller ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XmlLimits {
    pub max_bytes: usize,
    pub max_depth: usize,
    pub max_elements: usize,
    pub max_attributes: usize,
}

impl XmlLimits {
    pub const DEFAULT: XmlLimits = XmlLimits {
        max_bytes: MAX_XML_BYTES,
        max_depth: MAX_XML_DEPTH,
        max_elements: MAX_XML_ELEMENTS,
        max_attributes: MAX_XML_ATTRIBUTES,
    };
}

impl Default for XmlLimits {
    fn default() -> Self {
        XmlLimits::DEFAULT
    }
}

/// The error for an XML document longer than `max` bytes (its length `len` when known).
pub fn xml_too_large(len: Option<usize>, max: usize) -> Error {
    let what = match len {
        Some(n) => format!("document of {n} bytes"),
        None => "document".to_string(),
    };
    Error::xml(format!("{what} is larger than the limit of {max} bytes"))
}
