//! PCI addresses: the one parser and formatter of `DDDD:BB:SS.F`, and the numbers of XML
//! address attributes.

use crate::error::{quote, Error, Result};
use std::fmt;
use std::str::FromStr;

/// Highest valid values of each part of a PCI address.
pub(crate) const DOMAIN_MAX: u32 = 0xFFFF;
pub(crate) const BUS_MAX: u32 = 0xFF;
pub(crate) const SLOT_MAX: u32 = 0x1F;
pub(crate) const FUNCTION_MAX: u32 = 7;

/// A PCI address, host or guest side. Ordered as the kernel lists devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct PciAddress {
    pub domain: u32,
    pub bus: u32,
    pub slot: u32,
    pub function: u32,
}

impl PciAddress {
    pub const fn new(domain: u32, bus: u32, slot: u32, function: u32) -> PciAddress {
        PciAddress {
            domain,
            bus,
            slot,
            function,
        }
    }

    /// Parse `DDDD:BB:SS.F` or `BB:SS.F` (hexadecimal digits only), checking every range.
    /// The message names the string, the bad part and its allowed range.
    pub fn parse(text: &str) -> Result<PciAddress> {
        let bad = |why: String| Error::invalid_arg(format!("PCI address '{}': {why}", quote(text)));
        let (head, function) = text
            .rsplit_once('.')
            .ok_or_else(|| bad("expected DDDD:BB:SS.F or BB:SS.F".into()))?;
        let parts: Vec<&str> = head.split(':').collect();
        let (domain, bus, slot) = match parts.as_slice() {
            [d, b, s] => (Some(*d), *b, *s),
            [b, s] => (None, *b, *s),
            _ => return Err(bad("expected DDDD:BB:SS.F or BB:SS.F".into())),
        };
        let field = |name: &str, digits: &str, width: usize, max: u32| -> Result<u32> {
            if digits.is_empty()
                || digits.len() > width
                || !digits.chars().all(|c| c.is_ascii_hexdigit())
            {
                return Err(bad(format!(
                    "{name} '{}' is not a hexadecimal number of at most {width} digits",
                    quote(digits)
                )));
            }
            let value = u32::from_str_radix(digits, 16).map_err(|_| bad(format!("bad {name}")))?;
            if value > max {
                return Err(bad(format!(
                    "{name} 0x{value:x} is out of range, must be <= 0x{max:X}"
                )));
            }
            Ok(value)
        };
        Ok(PciAddress {
            domain: match domain {
                Some(d) => field("domain", d, 4, DOMAIN_MAX)?,
                None => 0,
            },
            bus: field("bus", bus, 2, BUS_MAX)?,
            slot: field("slot", slot, 2, SLOT_MAX)?,
            function: field("function", function, 1, FUNCTION_MAX)?,
        })
    }

    /// Check every part against its range, for addresses that did not come from `parse`.
    pub fn check_ranges(&self) -> Result<()> {
        let checks = [
            ("domain", self.domain, DOMAIN_MAX),
            ("bus", self.bus, BUS_MAX),
            ("slot", self.slot, SLOT_MAX),
            ("function", self.function, FUNCTION_MAX),
        ];
        for (name, value, max) in checks {
            if value > max {
                return Err(Error::invalid_arg(format!(
                    "PCI address {name} 0x{value:x} is out of range, must be <= 0x{max:X}"
                )));
            }
        }
        Ok(())
    }

    /// Same domain, bus and slot.
    pub fn same_slot(&self, other: &PciAddress) -> bool {
        self.domain == other.domain && self.bus == other.bus && self.slot == other.slot
    }
}

impl FromStr for PciAddress {
    type Err = Error;
    fn from_str(s: &str) -> Result<PciAddress> {
        PciAddress::parse(s)
    }
}

/// `%04x:%02x:%02x.%x`, the kernel's and libvirt's device name.
impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.slot, self.function
        )
    }
}

/// Parse an unsigned XML attribute value the way libvirt's `virStrToLong_uip` does: base
/// auto-detection (`0x` hexadecimal, leading `0` octal, otherwise decimal), surrounding
/// whitespace refused. `None` when the text is not such a number or does not fit in 32 bits.
pub fn parse_xml_uint(text: &str) -> Option<u32> {
    let (digits, radix) =
        if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
            (hex, 16)
        } else if text.len() > 1 && text.starts_with('0') {
            (&text[1..], 8)
        } else {
            (text, 10)
        };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u32::from_str_radix(digits, radix).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_forms() {
        assert_eq!(
            PciAddress::parse("0000:0a:1f.7").unwrap(),
            PciAddress::new(0, 0x0a, 0x1f, 7)
        );
        assert_eq!(
            PciAddress::parse("ffff:ff:00.0").unwrap(),
            PciAddress::new(0xffff, 0xff, 0, 0)
        );
        assert_eq!(
            PciAddress::parse("06:12.2").unwrap(),
            PciAddress::new(0, 6, 0x12, 2)
        );
    }

    #[test]
    fn refuses_out_of_range_parts_naming_them() {
        let e = PciAddress::parse("0000:00:20.0").unwrap_err();
        assert_eq!(
            e.message,
            "invalid argument: PCI address '0000:00:20.0': slot 0x20 is out of range, must be <= 0x1F"
        );
        let e = PciAddress::parse("0000:00:1f.8").unwrap_err();
        assert!(e
            .message
            .contains("function 0x8 is out of range, must be <= 0x7"));
        let e = PciAddress::parse("10000:00:00.0").unwrap_err();
        assert!(e.message.contains("domain '10000'"), "{}", e.message);
        let e = PciAddress::parse("0000:100:00.0").unwrap_err();
        assert!(e.message.contains("bus '100'"), "{}", e.message);
    }

    #[test]
    fn refuses_garbage() {
        for bad in [
            "",
            ".",
            "0000:00:00",
            "00.0",
            "0000:00:00:00.0",
            "0000:0g:00.0",
            "+0:00:00.0",
            " 00:00.0",
            "00:00.0 ",
            "0000:00:00.",
            "0000::00.0",
            "../../etc",
        ] {
            assert!(PciAddress::parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn formats_like_the_kernel() {
        assert_eq!(
            PciAddress::new(0, 0x0a, 0x1f, 7).to_string(),
            "0000:0a:1f.7"
        );
        let a = PciAddress::new(0x12, 3, 4, 5);
        assert_eq!(PciAddress::parse(&a.to_string()).unwrap(), a);
    }

    #[test]
    fn xml_numbers_detect_their_base() {
        assert_eq!(parse_xml_uint("0x1f"), Some(31));
        assert_eq!(parse_xml_uint("31"), Some(31));
        assert_eq!(parse_xml_uint("010"), Some(8));
        assert_eq!(parse_xml_uint("0"), Some(0));
        assert_eq!(parse_xml_uint("0x"), None);
        assert_eq!(parse_xml_uint("09"), None);
        assert_eq!(parse_xml_uint("-1"), None);
        assert_eq!(parse_xml_uint("abc"), None);
        assert_eq!(parse_xml_uint("0x100000000"), None);
    }
}
