//! The names that may appear in sysfs paths: PCI device names and driver names.

use crate::error::{Error, Result};
use crate::pci::PciAddress;

/// Parse a sysfs device entry name: exactly `dddd:bb:ss.f` in lower-case hexadecimal, as the
/// kernel writes it (so that formatting the address gives back the same name). `None` for
/// anything else, `../../etc` included.
pub(crate) fn parse_device_name(name: &str) -> Option<PciAddress> {
    parse_device_name_bytes(name.as_bytes())
}

/// [`parse_device_name`] on bytes, without allocating (directory walks call it per entry).
pub(crate) fn parse_device_name_bytes(name: &[u8]) -> Option<PciAddress> {
    if name.len() != 12 || name[4] != b':' || name[7] != b':' || name[10] != b'.' {
        return None;
    }
    let hex = |range: std::ops::Range<usize>| -> Option<u32> {
        name[range].iter().try_fold(0u32, |acc, &b| {
            let d = match b {
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                _ => return None,
            };
            Some(acc * 16 + d as u32)
        })
    };
    let addr = PciAddress::new(hex(0..4)?, hex(5..7)?, hex(8..10)?, hex(11..12)?);
    addr.check_ranges().ok()?;
    Some(addr)
}

/// Whether `name` is acceptable as a driver name: `[A-Za-z0-9_.-]+`, at most 64 characters,
/// and not `.` or `..`.
pub(crate) fn is_valid_driver_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

/// Check a driver name given by a caller.
pub(crate) fn check_driver_name(name: &str) -> Result<()> {
    if is_valid_driver_name(name) {
        Ok(())
    } else {
        Err(Error::invalid_arg(format!(
            "driver name '{}' is not valid: only letters, digits, '_', '.' and '-' are allowed",
            name.escape_debug()
        )))
    }
}

/// The stub drivers that take a device away from its host driver for passthrough.
pub(crate) fn is_stub_driver(name: &str) -> bool {
    matches!(name, "vfio-pci" | "pci-stub" | "pciback" | "xen-pciback")
        || name.ends_with("_vfio_pci")
        || name.ends_with("-vfio-pci")
}

/// vfio-pci or a VFIO variant driver (e.g. `mlx5_vfio_pci`), which counts as VFIO.
pub fn is_vfio_driver(name: &str) -> bool {
    name == "vfio-pci" || name.ends_with("_vfio_pci") || name.ends_with("-vfio-pci")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_are_strict() {
        assert_eq!(
            parse_device_name("0000:01:00.0"),
            Some(PciAddress::new(0, 1, 0, 0))
        );
        for bad in [
            "../../etc",
            "0000:01:00.0/",
            "01:00.0",
            "0000:0A:00.0",
            "0000:01:00.8",
            "",
        ] {
            assert_eq!(parse_device_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn driver_names() {
        for good in [
            "vfio-pci",
            "e1000e",
            "snd_hda_intel",
            "i915",
            "mlx5_core",
            "a.b",
        ] {
            assert!(is_valid_driver_name(good), "{good}");
        }
        for bad in ["", ".", "..", "../x", "a b", "a/b", "x\n", &"a".repeat(65)] {
            assert!(!is_valid_driver_name(bad), "{bad:?}");
        }
        assert!(is_stub_driver("vfio-pci"));
        assert!(is_stub_driver("mlx5_vfio_pci"));
        assert!(!is_stub_driver("e1000e"));
    }
}
