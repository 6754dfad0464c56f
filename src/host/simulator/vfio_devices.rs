//! VFIO devices in the simulated kernel: binding a VFIO driver (vfio-pci or a variant) gives
//! the device `vfio-dev/vfioN`, N the lowest number no other device holds, with a `dev` file
//! (`MAJOR:MINOR`); when the tree's kernel has VFIO device cdevs (the directory
//! `.virtpci-sim/dev/vfio/devices/` exists), the node `.virtpci-sim/dev/vfio/devices/vfioN`
//! appears with it. Unbinding removes both. iommufd is there when `.virtpci-sim/dev/iommu`
//! exists.

use super::*;
use crate::host::sysfs::join_lexically;

/// The simulated `/dev`.
pub const SIM_DEV_DIR: &str = ".virtpci-sim/dev";
/// The simulated default modules directory.
pub const SIM_MODULES_DIR: &str = ".virtpci-sim/modules";
/// The major number the simulated kernel gives VFIO device cdevs.
const VFIO_CDEV_MAJOR: u32 = 511;

impl SimulatedKernel {
    /// The numbers held by the devices bound to a VFIO driver now (only those can hold one:
    /// walking the VFIO drivers' device links stays cheap on a tree of thousands of devices).
    fn vfio_numbers_in_use(&self, sysfs: &Sysfs) -> io::Result<BTreeSet<u32>> {
        let mut used = BTreeSet::new();
        let drivers = sysfs
            .read_dir_opt(DRIVERS_DIR)
            .map_err(to_io)?
            .unwrap_or_default();
        for drv in drivers.iter().filter(|d| is_vfio_driver(&d.name)) {
            let drv_dir = sysfs.resolve_userland(&format!("{DRIVERS_DIR}/{}", drv.name), true)?;
            let entries = sysfs
                .read_dir_opt(&drv_dir)
                .map_err(to_io)?
                .unwrap_or_default();
            for e in entries
                .iter()
                .filter(|e| parse_device_name(&e.name).is_some())
            {
                // The driver's link back names the device's directory (the simulator wrote
                // it relative, as the kernel does): no resolution of every component needed.
                let Ok(target) = fs::read_link(self.root.join(format!("{drv_dir}/{}", e.name)))
                else {
                    continue;
                };
                let Some(dir) = target.to_str().and_then(|t| join_lexically(&drv_dir, t)) else {
                    continue;
                };
                if let Some(n) = self.vfio_number(&dir)? {
                    used.insert(n);
                }
            }
        }
        Ok(used)
    }

    /// The N of the device's `vfio-dev/vfioN`, if it has one.
    fn vfio_number(&self, dir: &str) -> io::Result<Option<u32>> {
        let path = self.root.join(format!("{dir}/vfio-dev"));
        let Ok(entries) = fs::read_dir(&path) else {
            return Ok(None);
        };
        for e in entries {
            let name = e?.file_name();
            if let Some(n) = name
                .to_str()
                .and_then(|n| n.strip_prefix("vfio"))
                .and_then(|n| n.parse().ok())
            {
                return Ok(Some(n));
            }
        }
        Ok(None)
    }

    /// Give the device at `dir` its VFIO device (kept when it has one: a bind being finished).
    pub(super) fn add_vfio_device(&self, sysfs: &Sysfs, dir: &str) -> io::Result<()> {
        let n = match self.vfio_number(dir)? {
            Some(n) => n,
            None => {
                let used = self.vfio_numbers_in_use(sysfs)?;
                let n = (0..).find(|n| !used.contains(n)).unwrap_or(0);
                let rel = format!("{dir}/vfio-dev/vfio{n}");
                fs::create_dir_all(self.root.join(&rel))?;
                let mut f = open_regular(
                    &self.root.join(format!("{rel}/dev")),
                    Access::CreateTruncate,
                )?;
                f.write_all(format!("{VFIO_CDEV_MAJOR}:{n}\n").as_bytes())?;
                self.step(&format!("mkdir {rel}"));
                n
            }
        };
        let cdevs = self.root.join(SIM_DEV_DIR).join("vfio/devices");
        if cdevs.is_dir() {
            let node = cdevs.join(format!("vfio{n}"));
            if !node.exists() {
                open_regular(&node, Access::CreateKeep)?;
                self.step(&format!("mknod {SIM_DEV_DIR}/vfio/devices/vfio{n}"));
            }
        }
        Ok(())
    }

    /// Remove the VFIO device of the device at `dir` and its node. What is gone is skipped.
    pub(super) fn remove_vfio_device(&self, dir: &str) -> io::Result<()> {
        if let Some(n) = self.vfio_number(dir)? {
            let node = self
                .root
                .join(SIM_DEV_DIR)
                .join(format!("vfio/devices/vfio{n}"));
            if fs::symlink_metadata(&node).is_ok() {
                fs::remove_file(node)?;
                self.step(&format!("rm {SIM_DEV_DIR}/vfio/devices/vfio{n}"));
            }
        }
        let vfio = format!("{dir}/vfio-dev");
        let path = self.root.join(&vfio);
        if fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            fs::remove_dir_all(path)?;
            self.step(&format!("rmdir {vfio}"));
        }
        Ok(())
    }
}
