//! Reading the tree as the simulated kernel needs it: device directories, the bound driver,
//! `driver_override`, ids.

use super::*;

pub(super) fn dev(addr: &PciAddress, attr: &str) -> String {
    if attr.is_empty() {
        format!("{DEVICES_DIR}/{addr}")
    } else {
        format!("{DEVICES_DIR}/{addr}/{attr}")
    }
}

/// The device's real directory (root-relative), checked to exist beneath the root.
pub(super) fn device_dir(sysfs: &Sysfs, addr: &PciAddress) -> io::Result<String> {
    sysfs.resolve_userland(&dev(addr, ""), true)
}

pub(super) fn driver_exists(sysfs: &Sysfs, driver: &str) -> io::Result<bool> {
    match sysfs.resolve_userland(&format!("{DRIVERS_DIR}/{driver}"), true) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

pub(super) fn list_devices(sysfs: &Sysfs) -> Result<Vec<PciAddress>> {
    let mut out: Vec<PciAddress> = sysfs
        .read_dir_opt(DEVICES_DIR)?
        .unwrap_or_default()
        .iter()
        .filter_map(|e| parse_device_name(&e.name))
        .collect();
    out.sort();
    Ok(out)
}

pub(super) fn current_driver(sysfs: &Sysfs, addr: &PciAddress) -> io::Result<Option<String>> {
    match sysfs.read_link(&dev(addr, "driver")) {
        Ok(None) => Ok(None),
        Ok(Some(t)) => {
            let name = t.trim_end_matches('/').rsplit('/').next().unwrap_or("");
            if is_valid_driver_name(name) {
                Ok(Some(name.to_string()))
            } else {
                Err(errno(libc::EINVAL))
            }
        }
        Err(e) => Err(io::Error::other(e.message)),
    }
}

pub(super) fn read_override(sysfs: &Sysfs, addr: &PciAddress) -> io::Result<Option<String>> {
    match sysfs.read_attr_opt(&dev(addr, "driver_override")) {
        Ok(None) => Ok(None),
        Ok(Some(t)) if t.is_empty() || t == "(null)" => Ok(None),
        Ok(Some(t)) => Ok(Some(t)),
        Err(e) => Err(io::Error::other(e.message)),
    }
}

pub(super) fn read_ids(sysfs: &Sysfs, addr: &PciAddress) -> io::Result<(u16, u16)> {
    let one = |attr: &str| -> io::Result<u16> {
        let text = sysfs
            .read_attr(&dev(addr, attr))
            .map_err(|e| io::Error::other(e.message))?;
        let digits = text.strip_prefix("0x").ok_or_else(|| errno(libc::EINVAL))?;
        u16::from_str_radix(digits, 16).map_err(|_| errno(libc::EINVAL))
    };
    Ok((one("vendor")?, one("device")?))
}
