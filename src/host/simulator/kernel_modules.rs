//! Loading modules in the simulated kernel: a module listed in the modules directory's
//! `modules.dep` loads (its PCI driver appears under `bus/pci/drivers/` and
//! `module/MODULE/drivers/pci:DRIVER` points at it); any other is refused, as modprobe refuses
//! a module it cannot find. The driver a module registers is its module name, `vfio-pci` for
//! vfio_pci, or what `.virtpci-sim/module-drivers` says (`MODULE DRIVER` per line), for
//! modules whose driver is named otherwise.

use super::*;
use crate::host::modules::{
    default_driver_of_module, is_valid_module_name, modules_dep_lists, normalize_module_name,
};

/// `MODULE DRIVER` lines: drivers named otherwise than their module.
pub const MODULE_DRIVERS_FILE: &str = ".virtpci-sim/module-drivers";

/// The files of a driver directory the kernel creates and virtpci writes.
const DRIVER_FILES: [&str; 4] = ["bind", "unbind", "new_id", "remove_id"];

impl SimulatedKernel {
    /// The driver `module` registers in this simulated kernel.
    pub(crate) fn driver_of_module(&self, module: &str) -> io::Result<String> {
        let module = normalize_module_name(module);
        let path = self.root.join(MODULE_DRIVERS_FILE);
        if let Some(text) = read_regular(&path)? {
            for line in text.lines() {
                let line = line.split('#').next().unwrap_or("").trim();
                if let [m, d] = line.split_whitespace().collect::<Vec<_>>().as_slice() {
                    if normalize_module_name(m) == module && is_valid_driver_name(d) {
                        return Ok(d.to_string());
                    }
                }
            }
        }
        Ok(default_driver_of_module(&module))
    }

    /// Load `module` from `modules_dir`: `ENOENT` unless its modules.dep lists it. Loading a
    /// loaded module changes nothing; every step may be made again.
    pub(super) fn load(&self, sysfs: &Sysfs, modules_dir: &Path, module: &str) -> io::Result<()> {
        if !is_valid_module_name(module) {
            return Err(errno(libc::EINVAL));
        }
        let dep_path = modules_dir.join("modules.dep");
        let dep = read_regular(&dep_path)?.unwrap_or_default();
        if !modules_dep_lists(&dep, module) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "module {module} not found in {} (simulated modprobe)",
                    dep_path.display()
                ),
            ));
        }
        let module = normalize_module_name(module);
        let driver = self.driver_of_module(&module)?;
        let drivers = sysfs.resolve_userland(DRIVERS_DIR, true)?;
        let drv_dir = format!("{drivers}/{driver}");
        if !self.root.join(&drv_dir).is_dir() {
            fs::create_dir(self.root.join(&drv_dir))?;
            self.step(&format!("mkdir {drv_dir}"));
        }
        for file in DRIVER_FILES {
            let path = self.root.join(format!("{drv_dir}/{file}"));
            if !path.exists() {
                open_regular(&path, Access::CreateKeep)?;
                fs::set_permissions(&path, fs::Permissions::from_mode(0o200))?;
            }
        }
        let mod_dir = format!("module/{module}/drivers");
        fs::create_dir_all(self.root.join(&mod_dir))?;
        let link = format!("{mod_dir}/pci:{driver}");
        self.ensure_symlink(
            &relative_link(&mod_dir, &drv_dir),
            &self.root.join(&link),
            &link,
        )?;
        Ok(())
    }
}
