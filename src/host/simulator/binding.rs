//! Binding and unbinding: the links a bind makes and an unbind removes, probe, and dynamic
//! ids (`new_id`, `remove_id`).

use super::*;

impl SimulatedKernel {
    pub(super) fn matches(
        &self,
        driver: &str,
        overridden: &Option<String>,
        ids: (u16, u16),
        rules: &[&BTreeSet<IdRule>],
    ) -> bool {
        match overridden {
            Some(o) => o == driver,
            None => rules.iter().any(|set| {
                set.iter()
                    .any(|r| r.driver == driver && r.vendor == ids.0 && r.device == ids.1)
            }),
        }
    }

    pub(super) fn bind(&self, sysfs: &Sysfs, addr: &PciAddress, driver: &str) -> io::Result<()> {
        device_dir(sysfs, addr).map_err(|_| errno(libc::ENODEV))?;
        let ids = read_ids(sysfs, addr)?;
        let overridden = read_override(sysfs, addr)?;
        let dynamic = self.dynamic_ids().map_err(to_io)?;
        let native = self.native_rules().map_err(to_io)?;
        if !self.matches(driver, &overridden, ids, &[&dynamic, &native]) {
            return Err(errno(libc::ENODEV));
        }
        if current_driver(sysfs, addr)?.is_some() {
            return Err(errno(libc::EBUSY));
        }
        self.journaled(sysfs, &Pending::Bind(*addr, driver.to_string()))
    }

    /// Create `link` → `target`, unless it exists already with that target. Returns whether
    /// it was created; `EEXIST` when something else is there.
    pub(super) fn ensure_symlink(&self, target: &str, link: &Path, what: &str) -> io::Result<bool> {
        match fs::read_link(link) {
            Ok(t) if t == Path::new(target) => Ok(false),
            Ok(_) => Err(errno(libc::EEXIST)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::os::unix::fs::symlink(target, link)?;
                self.step(&format!("symlink {what}"));
                Ok(true)
            }
            Err(_) => Err(errno(libc::EEXIST)),
        }
    }

    /// Bind: the driver's link back to the device, for a VFIO driver its VFIO device
    /// (`vfio-dev/vfioN` and, see [`SimulatedKernel::add_vfio_device`], the cdev node), then the
    /// device's `driver` link, which makes the device bound. What exists already is kept, so
    /// that a bind a killed process began can be finished. On failure, what was made is
    /// removed.
    pub(super) fn attach_links(
        &self,
        sysfs: &Sysfs,
        addr: &PciAddress,
        dir: &str,
        driver: &str,
    ) -> io::Result<()> {
        let drv_dir = sysfs.resolve_userland(&format!("{DRIVERS_DIR}/{driver}"), true)?;
        let back = format!("{drv_dir}/{addr}");
        // Fails, changing nothing, when another link is in the way.
        self.ensure_symlink(&relative_link(&drv_dir, dir), &self.root.join(&back), &back)?;
        let rest = || -> io::Result<()> {
            if is_vfio_driver(driver) {
                self.add_vfio_device(sysfs, dir)?;
            }
            let link = format!("{dir}/driver");
            self.ensure_symlink(&relative_link(dir, &drv_dir), &self.root.join(&link), &link)?;
            Ok(())
        };
        rest().inspect_err(|_| {
            let _ = self.detach_links(sysfs, addr, dir, driver);
        })
    }

    /// Unbind: the device's `driver` link (the device is unbound from then on), the driver's
    /// link back, `vfio-dev/`. What is gone already is skipped.
    pub(super) fn detach_links(
        &self,
        sysfs: &Sysfs,
        addr: &PciAddress,
        dir: &str,
        driver: &str,
    ) -> io::Result<()> {
        let drv_dir = sysfs.resolve_userland(&format!("{DRIVERS_DIR}/{driver}"), true)?;
        let link = format!("{dir}/driver");
        if current_driver(sysfs, addr)?.as_deref() == Some(driver) {
            fs::remove_file(self.root.join(&link))?;
            self.step(&format!("unlink {link}"));
        }
        let back = format!("{drv_dir}/{addr}");
        let path = self.root.join(&back);
        if fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
            fs::remove_file(path)?;
            self.step(&format!("unlink {back}"));
        }
        self.remove_vfio_device(dir)
    }

    pub(super) fn unbind(&self, sysfs: &Sysfs, addr: &PciAddress, driver: &str) -> io::Result<()> {
        device_dir(sysfs, addr).map_err(|_| errno(libc::ENODEV))?;
        if current_driver(sysfs, addr)?.as_deref() != Some(driver) {
            return Err(errno(libc::ENODEV));
        }
        self.journaled(sysfs, &Pending::Unbind(*addr, driver.to_string()))
    }

    pub(super) fn probe(&self, sysfs: &Sysfs, addr: &PciAddress) -> io::Result<()> {
        device_dir(sysfs, addr).map_err(|_| errno(libc::ENODEV))?;
        if current_driver(sysfs, addr)?.is_some() {
            return Ok(());
        }
        let overridden = read_override(sysfs, addr)?;
        let ids = read_ids(sysfs, addr)?;
        let dynamic = self.dynamic_ids().map_err(to_io)?;
        let native = self.native_rules().map_err(to_io)?;
        let candidate: Option<String> = match &overridden {
            Some(o) => Some(o.clone()),
            None => dynamic
                .iter()
                .chain(native.iter())
                .find(|r| r.vendor == ids.0 && r.device == ids.1)
                .map(|r| r.driver.clone()),
        };
        match candidate {
            Some(driver) if driver_exists(sysfs, &driver)? => {
                self.journaled(sysfs, &Pending::Bind(*addr, driver))
            }
            _ => Ok(()),
        }
    }

    pub(super) fn new_id(&self, sysfs: &Sysfs, driver: &str, data: &[u8]) -> io::Result<()> {
        let (vendor, device) = parse_id_pair(data)?;
        let rule = IdRule {
            driver: driver.to_string(),
            vendor,
            device,
        };
        let dynamic = self.dynamic_ids().map_err(to_io)?;
        if self.native_rules().map_err(to_io)?.contains(&rule) || dynamic.contains(&rule) {
            return Err(errno(libc::EEXIST));
        }
        self.journaled(sysfs, &Pending::NewId(rule))
    }

    /// `new_id`'s steps: store the id (unless stored already), then driver_attach: bind every
    /// unbound device the driver now matches.
    pub(super) fn add_dynamic_id(&self, sysfs: &Sysfs, rule: &IdRule) -> io::Result<()> {
        let mut dynamic = self.dynamic_ids().map_err(to_io)?;
        if dynamic.insert(rule.clone()) {
            self.store_rules(
                DYNAMIC_IDS_FILE,
                &dynamic,
                "virtpci simulated kernel: dynamic ids",
            )
            .map_err(to_io)?;
        }
        for addr in list_devices(sysfs).map_err(to_io)? {
            if current_driver(sysfs, &addr)?.is_some() {
                continue;
            }
            let ids = read_ids(sysfs, &addr)?;
            let overridden = read_override(sysfs, &addr)?;
            let matches = match &overridden {
                Some(o) => *o == rule.driver,
                None => ids == (rule.vendor, rule.device),
            };
            if matches {
                let dir = device_dir(sysfs, &addr)?;
                self.attach_links(sysfs, &addr, &dir, &rule.driver)?;
            }
        }
        Ok(())
    }

    pub(super) fn remove_id(&self, driver: &str, data: &[u8]) -> io::Result<()> {
        let (vendor, device) = parse_id_pair(data)?;
        let mut dynamic = self.dynamic_ids().map_err(to_io)?;
        let rule = IdRule {
            driver: driver.to_string(),
            vendor,
            device,
        };
        if !dynamic.remove(&rule) {
            return Err(errno(libc::ENODEV));
        }
        self.store_rules(
            DYNAMIC_IDS_FILE,
            &dynamic,
            "virtpci simulated kernel: dynamic ids",
        )
        .map_err(to_io)
    }
}
