//! The libvirt release whose address assignment is reproduced: 9.0 (Debian 12, QEMU 7.2) or
//! 11.3 (Debian 13, QEMU 10.0).

use crate::error::{Error, Result};
use std::fmt;

/// Which libvirt's layout to give. The default is 9.0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum LibvirtLevel {
    /// libvirt 9.0 with QEMU 7.2 (Debian 12).
    #[default]
    V9_0,
    /// libvirt 11.3 with QEMU 10.0 (Debian 13).
    V11_3,
}

impl LibvirtLevel {
    /// From libvirt's version number (major * 1,000,000 + minor * 1,000 + micro); 0 is the
    /// default. Any micro release of a reproduced minor one is that one.
    pub fn from_version_number(version: u32) -> Result<LibvirtLevel> {
        match (version / 1_000_000, version / 1_000 % 1_000) {
            _ if version == 0 => Ok(LibvirtLevel::default()),
            (9, 0) => Ok(LibvirtLevel::V9_0),
            (11, 3) => Ok(LibvirtLevel::V11_3),
            _ => Err(unsupported(&version.to_string())),
        }
    }

    /// From `MAJOR.MINOR` or `MAJOR.MINOR.MICRO` ("9.0", "11.3.0").
    pub fn parse(text: &str) -> Result<LibvirtLevel> {
        let mut parts = text.split('.');
        let mut number = |scale: u32| -> Option<u32> {
            parts
                .next()
                .and_then(|p| p.parse::<u32>().ok())
                .filter(|&n| n < 1000)
                .map(|n| n * scale)
        };
        let major = number(1_000_000);
        let minor = number(1_000);
        let micro = parts.next().map_or(Some(0), |p| p.parse::<u32>().ok());
        match (major, minor, micro, parts.next()) {
            (Some(a), Some(b), Some(_), None) if a > 0 => {
                Self::from_version_number(a + b).map_err(|_| unsupported(text))
            }
            _ => Err(unsupported(text)),
        }
    }

    pub fn version_number(self) -> u32 {
        match self {
            LibvirtLevel::V9_0 => 9_000_000,
            LibvirtLevel::V11_3 => 11_003_000,
        }
    }

    /// libvirt 11.3 gives the PCI controllers it adds during placement zPCI identifiers on
    /// s390x; 9.0 leaves them without (checked with both).
    pub(crate) fn gives_added_controllers_zpci(self) -> bool {
        self >= LibvirtLevel::V11_3
    }

    /// libvirt 10.0 and later insert the controllers they add in index order
    /// (virDomainControllerInsert); 9.0 appends them to the list.
    pub(crate) fn inserts_added_controllers(self) -> bool {
        self >= LibvirtLevel::V11_3
    }
}

fn unsupported(what: &str) -> Error {
    Error::invalid_arg(format!(
        "unsupported libvirt version '{what}': virtpci reproduces 9.0 (9000000) and 11.3 \
         (11003000)"
    ))
}

impl fmt::Display for LibvirtLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LibvirtLevel::V9_0 => "9.0",
            LibvirtLevel::V11_3 => "11.3",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_read_both_ways() {
        assert_eq!(LibvirtLevel::parse("9.0").unwrap(), LibvirtLevel::V9_0);
        assert_eq!(LibvirtLevel::parse("11.3").unwrap(), LibvirtLevel::V11_3);
        assert_eq!(LibvirtLevel::parse("11.3.0").unwrap(), LibvirtLevel::V11_3);
        assert!(LibvirtLevel::parse("10.0").is_err());
        assert!(LibvirtLevel::parse("11").is_err());
        assert!(LibvirtLevel::parse("11.3.0.1").is_err());
        assert_eq!(
            LibvirtLevel::from_version_number(0).unwrap(),
            LibvirtLevel::V9_0
        );
        assert_eq!(
            LibvirtLevel::from_version_number(11_003_000).unwrap(),
            LibvirtLevel::V11_3
        );
        assert!(LibvirtLevel::from_version_number(8_000_000).is_err());
        for level in [LibvirtLevel::V9_0, LibvirtLevel::V11_3] {
            let n = level.version_number();
            assert_eq!(LibvirtLevel::from_version_number(n).unwrap(), level);
            assert_eq!(LibvirtLevel::parse(&level.to_string()).unwrap(), level);
        }
    }
}
