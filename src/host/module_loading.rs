//! Drivers and their modules on a host: the modules directory in use, whether loading is
//! allowed, loading the module of a driver that is not there, and the choice of the VFIO
//! driver of a device from its `modalias` and `modules.alias` (see [`super::modules`]).

use super::modules::{
    check_module_name, default_driver_of_module, modules_dep_lists, read_modules_file,
    search_vfio_aliases, ModuleOptions, VFIO_PCI_MODULE,
};
use super::names::check_driver_name;
use super::{dev_path, Host, WriteKind, VFIO_PCI};
use crate::error::{Error, Result};
use crate::pci::PciAddress;
use std::path::{Path, PathBuf};

/// Why a VFIO driver was chosen for a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChoiceReason {
    /// The most specific `alias vfio_pci:` line of modules.alias that matched the device.
    Alias { line: String, line_number: usize },
    /// `<driver model='...'/>` (or a driver name) asked for it.
    Forced,
    /// The device is bound to a VFIO driver already, and stays there.
    Kept,
    /// No variant driver matched: vfio-pci.
    Default,
}

impl ChoiceReason {
    pub fn name(&self) -> &'static str {
        match self {
            ChoiceReason::Alias { .. } => "alias",
            ChoiceReason::Forced => "forced",
            ChoiceReason::Kept => "kept",
            ChoiceReason::Default => "default",
        }
    }
}

/// The VFIO driver a device will use, the module providing it, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverChoice {
    /// The driver name (what `bus/pci/drivers/` and `driver_override` use).
    pub driver: String,
    /// The module to load when the driver is not there.
    pub module: String,
    pub reason: ChoiceReason,
    /// What the choice skipped and why (unreadable lines, modules missing from modules.dep).
    pub notes: Vec<String>,
}

impl DriverChoice {
    /// vfio-pci, for the reason given.
    pub fn vfio_pci(reason: ChoiceReason) -> DriverChoice {
        DriverChoice {
            driver: VFIO_PCI.to_string(),
            module: VFIO_PCI_MODULE.to_string(),
            reason,
            notes: Vec::new(),
        }
    }
}

/// A modules directory's files, read once (see `Host::read_modules_files`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModulesFiles {
    pub options: ModuleOptions,
    /// `modules.alias`, `None` when absent.
    pub alias: Option<String>,
    /// `modules.dep`, `None` when absent.
    pub dep: Option<String>,
}

impl Host {
    /// The modules directory and whether loading is allowed, as set now.
    pub(crate) fn module_options(&self) -> ModuleOptions {
        self.modules
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Use `dir` as the modules directory (`None`: the default of the host, the running
    /// kernel's `/lib/modules/$(uname -r)`, or the simulated kernel's own).
    pub fn set_modules_dir(&self, dir: Option<&Path>) {
        let dir = dir
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.environment.modules_dir.clone());
        self.modules.write().unwrap_or_else(|p| p.into_inner()).dir = dir;
    }

    /// Allow or forbid loading modules (allowed by default, as libvirt loads them).
    pub fn set_module_loading(&self, allowed: bool) {
        self.modules
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .loading = allowed;
    }

    /// The parts of the host outside sysfs (see [`super::Environment`]).
    pub fn environment(&self) -> &super::Environment {
        &self.environment
    }

    /// The device's `modalias` (`pci:v...`), `None` when absent.
    pub fn modalias(&self, addr: &PciAddress) -> Result<Option<String>> {
        self.require_device(addr)?;
        self.sysfs.read_attr_opt(&dev_path(addr, "modalias"))
    }

    /// The PCI driver `module` registers: the `pci:NAME` entry of `module/MODULE/drivers/`
    /// when the module is loaded, else what such modules register (vfio_pci: `vfio-pci`;
    /// the variant drivers: their module name).
    pub(crate) fn driver_of_module(&self, module: &str) -> Result<String> {
        check_module_name(module)?;
        let rel = format!(
            "module/{}/drivers",
            super::modules::normalize_module_name(module)
        );
        if let Some(entries) = self.sysfs.read_dir_opt(&rel)? {
            if let Some(name) = entries
                .iter()
                .filter_map(|e| e.name.strip_prefix("pci:"))
                .find(|n| super::names::is_valid_driver_name(n))
            {
                return Ok(name.to_string());
            }
        }
        Ok(default_driver_of_module(module))
    }

    /// Make sure `driver` is registered, loading `module` when it is not, as libvirt's
    /// virPCIProbeStubDriver does. Returns whether the module was loaded now. When loading is
    /// forbidden, or the module is not in the directory's modules.dep, or it registers no such
    /// driver, the error names the module. The load counts as a [`WriteKind::LoadModule`]
    /// write for fault injection.
    pub(crate) fn ensure_driver_loaded(&self, driver: &str, module: &str) -> Result<bool> {
        check_driver_name(driver)?;
        check_module_name(module)?;
        if self.driver_loaded(driver)? {
            return Ok(false);
        }
        let options = self.module_options();
        self.check_loadable(module, &options)?;
        self.faults
            .before_write(WriteKind::LoadModule)
            .and_then(|()| self.writer.load_module(&self.sysfs, &options.dir, module))
            .map_err(|e| {
                Error::internal(format!("Failed to load PCI driver module {module}: {e}"))
            })?;
        if !self.driver_loaded(driver)? {
            return Err(Error::internal(format!(
                "Failed to load PCI driver module {module}: it registered no PCI driver '{driver}'"
            )));
        }
        Ok(true)
    }

    /// Why `module` cannot be loaded here, if it cannot: loading forbidden, or (when the
    /// directory has a modules.dep) not listed there.
    pub(crate) fn check_loadable(&self, module: &str, options: &ModuleOptions) -> Result<()> {
        if !options.loading {
            return Err(Error::internal(format!(
                "Failed to load PCI driver module {module}: loading modules is forbidden on this host; load it first (modprobe {module})"
            )));
        }
        match read_modules_file(&options.dir, "modules.dep")? {
            Some(dep) if !modules_dep_lists(&dep, module) => Err(Error::internal(format!(
                "Failed to load PCI driver module {module}: it is not in {}",
                options.dir.join("modules.dep").display()
            ))),
            _ => Ok(()),
        }
    }

    /// The VFIO driver for a managed device with no forced model, as libvirt 10.0 chooses it:
    /// the device's modalias against modules.alias, the most specific match, else vfio-pci.
    /// A match whose module can be neither found (modules.dep) nor is loaded is skipped, with a
    /// note. Reads only.
    pub fn choose_vfio_driver(&self, addr: &PciAddress) -> Result<DriverChoice> {
        self.require_device(addr)?;
        self.choose_vfio_driver_with(&self.read_modules_files()?, addr)
    }

    /// The modules directory's modules.alias and modules.dep, read once for several choices.
    pub(crate) fn read_modules_files(&self) -> Result<ModulesFiles> {
        let options = self.module_options();
        Ok(ModulesFiles {
            alias: read_modules_file(&options.dir, "modules.alias")?,
            dep: read_modules_file(&options.dir, "modules.dep")?,
            options,
        })
    }

    /// [`Host::choose_vfio_driver`] with the files read already, for a device known to exist.
    pub(crate) fn choose_vfio_driver_with(
        &self,
        files: &ModulesFiles,
        addr: &PciAddress,
    ) -> Result<DriverChoice> {
        let options = &files.options;
        let mut notes = Vec::new();
        // The caller knows the device exists: read the attribute without checking again.
        let Some(modalias) = self.sysfs.read_attr_opt(&dev_path(addr, "modalias"))? else {
            let mut c = DriverChoice::vfio_pci(ChoiceReason::Default);
            c.notes.push(format!("PCI device {addr} has no modalias"));
            return Ok(c);
        };
        let alias_path: PathBuf = options.dir.join("modules.alias");
        let Some(aliases) = files.alias.as_deref() else {
            // Said only when the directory is there: a host (or a simulated tree) without a
            // modules directory simply has no variant drivers.
            let mut c = DriverChoice::vfio_pci(ChoiceReason::Default);
            if options.dir.is_dir() {
                c.notes
                    .push(format!("no modules.alias at {}", alias_path.display()));
            }
            return Ok(c);
        };
        let Some(search) = search_vfio_aliases(aliases, &modalias) else {
            let mut c = DriverChoice::vfio_pci(ChoiceReason::Default);
            c.notes.push(format!(
                "PCI device {addr} has an unusual modalias '{}'",
                modalias.escape_debug()
            ));
            return Ok(c);
        };
        for (n, line) in &search.malformed {
            notes.push(format!(
                "{} line {n} skipped (not 'alias vfio_pci:PATTERN MODULE'): {}",
                alias_path.display(),
                line.escape_debug()
            ));
        }
        let dep = files.dep.as_deref();
        let mut candidates = search.matches.clone();
        // Most exact fields first; the file's order among equals (a stable sort keeps it).
        candidates.sort_by_key(|m| std::cmp::Reverse(m.exact_fields));
        for m in candidates {
            let driver = self.driver_of_module(&m.module)?;
            let listed = dep.map_or(true, |d| modules_dep_lists(d, &m.module));
            if !listed && !self.driver_loaded(&driver)? {
                notes.push(format!(
                    "{} matched line {} but is not in {}",
                    m.module,
                    m.line_number,
                    options.dir.join("modules.dep").display()
                ));
                continue;
            }
            return Ok(DriverChoice {
                driver,
                module: m.module.clone(),
                reason: ChoiceReason::Alias {
                    line: m.line,
                    line_number: m.line_number,
                },
                notes,
            });
        }
        let mut c = DriverChoice::vfio_pci(ChoiceReason::Default);
        c.notes = notes;
        Ok(c)
    }
}
