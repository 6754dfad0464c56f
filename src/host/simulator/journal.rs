//! All or nothing: a change of several steps is recorded in the pending file before its
//! first step, and a simulator that finds the record finishes the change.

use super::*;

/// A change of several steps, recorded in [`PENDING_FILE`] before its first step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Pending {
    /// Bind the device to the driver: its link back, `vfio-dev/` for vfio-pci, then `driver`.
    Bind(PciAddress, String),
    /// Unbind the device from the driver: `driver`, the link back, `vfio-dev/`.
    Unbind(PciAddress, String),
    /// Add the dynamic id, then bind every unbound device it matches.
    NewId(IdRule),
}

impl Pending {
    pub(super) fn to_line(&self) -> String {
        match self {
            Pending::Bind(a, d) => format!("bind {a} {d}\n"),
            Pending::Unbind(a, d) => format!("unbind {a} {d}\n"),
            Pending::NewId(r) => format!("new_id {} {:04x} {:04x}\n", r.driver, r.vendor, r.device),
        }
    }

    pub(super) fn parse(line: &str) -> Option<Pending> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let driver = |d: &str| is_valid_driver_name(d).then(|| d.to_string());
        match fields.as_slice() {
            ["bind", a, d] => Some(Pending::Bind(parse_device_name(a)?, driver(d)?)),
            ["unbind", a, d] => Some(Pending::Unbind(parse_device_name(a)?, driver(d)?)),
            ["new_id", d, v, p] => Some(Pending::NewId(IdRule {
                driver: driver(d)?,
                vendor: u16::from_str_radix(v, 16).ok()?,
                device: u16::from_str_radix(p, 16).ok()?,
            })),
            _ => None,
        }
    }
}

impl SimulatedKernel {
    /// Replace (or create) the root-relative file `rel` with `content`, by a rename of `temp`
    /// (so that a process killed meanwhile leaves the old content or the new one). A file
    /// that exists keeps its mode.
    pub(super) fn replace_file(&self, temp: &str, rel: &str, content: &[u8]) -> io::Result<()> {
        let path = self.root.join(rel);
        let mode = fs::symlink_metadata(&path)
            .ok()
            .map(|m| m.permissions().mode());
        let tmp = self.root.join(temp);
        let mut f = open_regular(&tmp, Access::CreateTruncate)?;
        f.write_all(content)?;
        if let Some(mode) = mode {
            f.set_permissions(fs::Permissions::from_mode(mode))?;
        }
        self.step(&format!("write {temp}"));
        fs::rename(&tmp, &path)?;
        self.step(&format!("rename {temp} {rel}"));
        Ok(())
    }

    /// Make `change` all or nothing: record it, carry it out, remove the record.
    pub(super) fn journaled(&self, sysfs: &Sysfs, change: &Pending) -> io::Result<()> {
        self.replace_pending(change)?;
        let result = self.carry_out(sysfs, change);
        self.end_pending()?;
        result
    }

    pub(super) fn replace_pending(&self, change: &Pending) -> io::Result<()> {
        self.replace_file(PENDING_TEMP, PENDING_FILE, change.to_line().as_bytes())
    }

    pub(super) fn end_pending(&self) -> io::Result<()> {
        fs::remove_file(self.root.join(PENDING_FILE))?;
        self.step(&format!("remove {PENDING_FILE}"));
        Ok(())
    }

    /// Every step of `change`; each may be done again.
    pub(super) fn carry_out(&self, sysfs: &Sysfs, change: &Pending) -> io::Result<()> {
        match change {
            Pending::Bind(addr, driver) => {
                let dir = device_dir(sysfs, addr)?;
                self.attach_links(sysfs, addr, &dir, driver)
            }
            Pending::Unbind(addr, driver) => {
                let dir = device_dir(sysfs, addr)?;
                self.detach_links(sysfs, addr, &dir, driver)
            }
            Pending::NewId(rule) => self.add_dynamic_id(sysfs, rule),
        }
    }

    /// Finish the change recorded in [`PENDING_FILE`], if any. The caller holds the lock, so
    /// the process that began it is dead.
    pub(super) fn recover(&self, sysfs: &Sysfs) -> Result<()> {
        let path = self.root.join(PENDING_FILE);
        let text = match read_regular(&path) {
            Ok(Some(text)) => text,
            Ok(None) => return Ok(()),
            Err(e) => {
                return Err(Error::system(
                    format!("Failed to read '{}'", path.display()),
                    &e,
                ))
            }
        };
        let change = Pending::parse(&text).ok_or_else(|| {
            Error::internal(format!(
                "'{}': unknown change '{}'",
                path.display(),
                text.trim_end().escape_debug()
            ))
        })?;
        self.carry_out(sysfs, &change)
            .and_then(|()| self.end_pending())
            .map_err(|e| {
                Error::system(
                    format!(
                        "Failed to finish the interrupted change '{}' of '{}'",
                        text.trim_end(),
                        path.display()
                    ),
                    &e,
                )
            })
    }
}
