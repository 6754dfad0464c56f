//! Kernel modules: the modules directory (`modules.alias`, `modules.dep`), the choice of a
//! VFIO variant driver from a device's `modalias` as libvirt (10.0 and later) makes it, the
//! names of the drivers modules register, and module names safe to hand to modprobe.
//!
//! # The choice of a VFIO driver
//! A device's `modalias` reads `pci:vVVVVVVVVdDDDDDDDDsvSSSSSSSSsdTTTTTTTTbcBBscCCiII`. Prefixed
//! with `vfio_`, it is matched against every `alias vfio_pci:PATTERN MODULE` line of
//! `modules.alias` (the lines a VFIO driver's id table produces). Each pattern has the same
//! seven fields (vendor, device, subsystem vendor, subsystem device, base class, subclass,
//! programming interface), each either the exact value or a wildcard. The match with the most
//! exact fields wins; between equally specific matches, the first line wins. vfio-pci's own
//! line (`vfio_pci:v*d*sv*sd*bc*sc*i*`) matches everything with no exact field, so any
//! variant that names the device is preferred to it, and without a match the choice falls back
//! to vfio-pci. A line that does not have this shape is skipped and reported.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// The VFIO stub's module.
pub(crate) const VFIO_PCI_MODULE: &str = "vfio_pci";

/// Where modules live and whether virtpci may load them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleOptions {
    /// The directory holding `modules.alias` and `modules.dep` (the running kernel's
    /// `/lib/modules/$(uname -r)` by default).
    pub dir: PathBuf,
    /// Load a missing driver's module (with modprobe, or the simulated kernel's loader). When
    /// false, a missing driver is an error naming the module to load.
    pub loading: bool,
}

/// `/lib/modules/$(uname -r)` of the running kernel (the release read from
/// `/proc/sys/kernel/osrelease`, which is what uname reports).
pub(crate) fn default_modules_dir() -> PathBuf {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    Path::new("/lib/modules").join(release.trim())
}

/// A module name modprobe may be given: `[A-Za-z0-9_-]`, 1 to 64 characters, not starting
/// with `-` (it would be read as an option).
pub(crate) fn is_valid_module_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Refuse a module name modprobe should not be given.
pub(crate) fn check_module_name(name: &str) -> Result<()> {
    if is_valid_module_name(name) {
        Ok(())
    } else {
        Err(Error::invalid_arg(format!(
            "invalid kernel module name '{}'",
            name.escape_debug()
        )))
    }
}

/// The kernel treats `-` and `_` in module names alike; modules.alias writes `_`.
pub(crate) fn normalize_module_name(name: &str) -> String {
    name.replace('-', "_")
}

/// The driver name a module registers when the kernel cannot be asked (the module is not
/// loaded): vfio_pci registers `vfio-pci`; the variant drivers register their module name.
pub(crate) fn default_driver_of_module(module: &str) -> String {
    let module = normalize_module_name(module);
    if module == VFIO_PCI_MODULE {
        crate::host::VFIO_PCI.to_string()
    } else {
        module
    }
}

/// The module of a driver name, for a driver asked for by name (`vfio-pci` → `vfio_pci`).
pub(crate) fn module_of_driver(driver: &str) -> String {
    normalize_module_name(driver)
}

/// The seven fields of a PCI modalias, in order.
const FIELDS: [&str; 7] = ["v", "d", "sv", "sd", "bc", "sc", "i"];

/// Split `v...d...sv...sd...bc...sc...i...` into its seven field values. `None` when the text
/// does not have that shape.
fn split_fields(text: &str) -> Option<[&str; 7]> {
    let mut out = [""; 7];
    let mut rest = text;
    for (i, key) in FIELDS.iter().enumerate() {
        rest = rest.strip_prefix(key)?;
        let end = match FIELDS.get(i + 1) {
            // Values are upper-case hex digits or wildcards, keys lower-case letters.
            Some(next) => find_key(rest, next)?,
            None => rest.len(),
        };
        out[i] = &rest[..end];
        if out[i].is_empty() || !out[i].bytes().all(is_value_char) {
            return None;
        }
        rest = &rest[end..];
    }
    Some(out)
}

/// The position of the next key in `rest`: where `key` follows a value made of upper-case hex
/// digits and glob characters.
fn find_key(rest: &str, key: &str) -> Option<usize> {
    let bytes = rest.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if rest[i..].starts_with(key) && i > 0 {
            return Some(i);
        }
        let b = bytes[i];
        if !is_value_char(b) {
            return None;
        }
        i += 1;
    }
    None
}

/// A character of a field's value: an upper-case hex digit or a glob character.
fn is_value_char(b: u8) -> bool {
    b.is_ascii_digit() || (b'A'..=b'F').contains(&b) || b == b'*' || b == b'?'
}

/// Glob match of one field (`*` any run, `?` any one character), as fnmatch does.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|i| glob(rest, &text[i..])),
        Some((b'?', rest)) => !text.is_empty() && glob(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && glob(rest, &text[1..]),
    }
}

/// One `alias vfio_pci:...` line that matched a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasMatch {
    /// The module it names (as written in modules.alias).
    pub module: String,
    /// The whole line, for reports.
    pub line: String,
    /// 1-based line number in modules.alias.
    pub(crate) line_number: usize,
    /// How many of the seven fields are exact (not wildcards).
    pub(crate) exact_fields: u8,
}

/// What matching a device against modules.alias found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AliasSearch {
    /// Every matching line, in file order.
    pub matches: Vec<AliasMatch>,
    /// `alias vfio_pci:` lines that could not be read, with their line numbers.
    pub malformed: Vec<(usize, String)>,
}

impl AliasSearch {
    /// The most specific match (most exact fields; the first line among equals).
    pub fn best(&self) -> Option<&AliasMatch> {
        let mut best: Option<&AliasMatch> = None;
        for m in &self.matches {
            if best.map_or(true, |b| m.exact_fields > b.exact_fields) {
                best = Some(m);
            }
        }
        best
    }
}

/// Match a device's `modalias` (`pci:v...`) against the `alias vfio_pci:` lines of
/// `modules_alias` (the file's text). `None` when the modalias is not a PCI one.
pub(crate) fn search_vfio_aliases(modules_alias: &str, modalias: &str) -> Option<AliasSearch> {
    let device = split_fields(modalias.trim().strip_prefix("pci:")?)?;
    let mut out = AliasSearch::default();
    for (i, raw) in modules_alias.lines().enumerate() {
        let line = raw.trim();
        let Some(rest) = line.strip_prefix("alias ") else {
            continue;
        };
        let rest = rest.trim_start();
        let Some(pattern) = rest.strip_prefix("vfio_pci:") else {
            continue;
        };
        let mut words = pattern.split_whitespace();
        let (Some(pattern), Some(module), None) = (words.next(), words.next(), words.next()) else {
            out.malformed.push((i + 1, line.to_string()));
            continue;
        };
        let Some(fields) = split_fields(pattern).filter(|_| is_valid_module_name(module)) else {
            out.malformed.push((i + 1, line.to_string()));
            continue;
        };
        let matched = fields
            .iter()
            .zip(device.iter())
            .all(|(p, d)| glob(p.as_bytes(), d.as_bytes()));
        if matched {
            let exact_fields = fields.iter().filter(|f| !f.contains(['*', '?'])).count() as u8;
            out.matches.push(AliasMatch {
                module: module.to_string(),
                line: line.to_string(),
                line_number: i + 1,
                exact_fields,
            });
        }
    }
    Some(out)
}

/// Whether `modules.dep` (the file's text) lists `module` (`-` and `_` alike, any compression
/// suffix).
pub(crate) fn modules_dep_lists(modules_dep: &str, module: &str) -> bool {
    let want = normalize_module_name(module);
    modules_dep.lines().any(|line| {
        let Some((path, _)) = line.split_once(':') else {
            return false;
        };
        let base = path.rsplit('/').next().unwrap_or("");
        let Some(stem) = base.split_once(".ko").map(|(s, _)| s) else {
            return false;
        };
        normalize_module_name(stem) == want
    })
}

/// Read a file of the modules directory; `None` when it does not exist.
pub(crate) fn read_modules_file(dir: &Path, name: &str) -> Result<Option<String>> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::system(
            format!("Failed to read '{}'", path.display()),
            &e,
        )),
    }
}

/// `modprobe`'s `--dirname` and `--set-version` for a modules directory of the shape
/// `PREFIX/lib/modules/VERSION`; `None` for another shape.
pub(crate) fn modprobe_location(dir: &Path) -> Option<(PathBuf, String)> {
    let version = dir.file_name()?.to_str()?.to_string();
    let modules = dir.parent()?;
    let lib = modules.parent()?;
    if modules.file_name()? != "modules" || lib.file_name()? != "lib" {
        return None;
    }
    Some((lib.parent()?.to_path_buf(), version))
}

/// Run `modprobe -b MODULE` (the blacklist honoured, as libvirt does) for the modules directory
/// `dir`: plain for the running kernel's, with `--dirname`/`--set-version` for another
/// `PREFIX/lib/modules/VERSION`. The error carries what modprobe said.
pub(crate) fn run_modprobe(dir: &Path, module: &str) -> std::io::Result<()> {
    use std::io::{Error as IoError, ErrorKind};
    if !is_valid_module_name(module) {
        return Err(IoError::from_raw_os_error(libc::EINVAL));
    }
    let mut cmd = std::process::Command::new(modprobe_program());
    cmd.arg("-b");
    if dir != default_modules_dir() {
        let (prefix, version) = modprobe_location(dir).ok_or_else(|| {
            IoError::new(
                ErrorKind::InvalidInput,
                format!(
                    "modprobe can only use a modules directory of the form PREFIX/lib/modules/VERSION, not '{}'",
                    dir.display()
                ),
            )
        })?;
        cmd.arg("-d").arg(prefix).arg("-S").arg(version);
    }
    let out = cmd.arg("--").arg(module).output()?;
    if out.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&out.stderr);
    let said: String = said.trim().chars().take(400).collect();
    Err(IoError::other(if said.is_empty() {
        format!("modprobe exited with {}", out.status)
    } else {
        said
    }))
}

/// modprobe from the usual places (a daemon's PATH may lack /sbin), else from PATH.
fn modprobe_program() -> PathBuf {
    ["/usr/sbin/modprobe", "/sbin/modprobe", "/usr/bin/modprobe"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("modprobe"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MLX5_VF: &str = "pci:v000015B3d0000101Esv000015B3sd00000001bc02sc00i00";

    #[test]
    fn exact_beats_wildcard_and_first_wins_ties() {
        let aliases = "\
alias pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_core
alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci
alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_vfio_pci
alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* other_vfio_pci
alias vfio_pci:v000015B3d*sv*sd*bc*sc*i* vendor_vfio_pci
";
        let s = search_vfio_aliases(aliases, MLX5_VF).unwrap();
        assert_eq!(s.matches.len(), 4);
        let best = s.best().unwrap();
        assert_eq!(best.module, "mlx5_vfio_pci");
        assert_eq!(best.line_number, 3);
        assert_eq!(best.exact_fields, 2);
        assert!(s.malformed.is_empty());
    }

    #[test]
    fn more_exact_fields_win_whatever_the_order() {
        let aliases = "\
alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_vfio_pci
alias vfio_pci:v000015B3d0000101Esv000015B3sd00000001bc*sc*i* board_vfio_pci
";
        let s = search_vfio_aliases(aliases, MLX5_VF).unwrap();
        assert_eq!(s.best().unwrap().module, "board_vfio_pci");
        assert_eq!(s.best().unwrap().exact_fields, 4);
    }

    #[test]
    fn no_match_and_other_devices() {
        let aliases = "alias vfio_pci:v000010DEd00002342sv*sd*bc*sc*i* nvgrace_gpu_vfio_pci\n";
        let s = search_vfio_aliases(aliases, MLX5_VF).unwrap();
        assert!(s.best().is_none());
        assert!(search_vfio_aliases(aliases, "usb:v1234").is_none());
    }

    #[test]
    fn malformed_lines_are_reported_and_skipped() {
        let aliases = "\
alias vfio_pci:v000015B3d0000101E mlx5_vfio_pci
alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i*
alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* ../evil
alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* a b
alias vfio_pci:vZZd*sv*sd*bc*sc*i* bad_vfio_pci
garbage line
alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_vfio_pci
";
        let s = search_vfio_aliases(aliases, MLX5_VF).unwrap();
        assert_eq!(
            s.malformed.iter().map(|m| m.0).collect::<Vec<_>>(),
            vec![1, 2, 3, 4, 5]
        );
        assert_eq!(s.best().unwrap().line_number, 7);
    }

    #[test]
    fn class_wildcards_in_one_field() {
        let aliases = "alias vfio_pci:v*d*sv*sd*bc02sc*i* net_vfio_pci\n\
                       alias vfio_pci:v*d*sv*sd*bc03sc*i* gpu_vfio_pci\n";
        let s = search_vfio_aliases(aliases, MLX5_VF).unwrap();
        assert_eq!(s.best().unwrap().module, "net_vfio_pci");
        assert_eq!(s.best().unwrap().exact_fields, 1);
    }

    #[test]
    fn modules_dep_lookup() {
        let dep = "\
kernel/drivers/vfio/pci/mlx5/mlx5-vfio-pci.ko.xz: kernel/drivers/vfio/pci/vfio-pci-core.ko.xz
kernel/drivers/vfio/pci/vfio-pci.ko: kernel/drivers/vfio/pci/vfio-pci-core.ko
";
        assert!(modules_dep_lists(dep, "mlx5_vfio_pci"));
        assert!(modules_dep_lists(dep, "vfio_pci"));
        assert!(modules_dep_lists(dep, "vfio-pci"));
        assert!(!modules_dep_lists(dep, "hisi_acc_vfio_pci"));
        assert!(!modules_dep_lists(dep, "vfio_pci_core_x"));
    }

    #[test]
    fn driver_names_differ_from_module_names() {
        assert_eq!(default_driver_of_module("vfio_pci"), "vfio-pci");
        assert_eq!(default_driver_of_module("vfio-pci"), "vfio-pci");
        assert_eq!(default_driver_of_module("mlx5_vfio_pci"), "mlx5_vfio_pci");
        assert_eq!(module_of_driver("vfio-pci"), "vfio_pci");
    }

    #[test]
    fn module_names() {
        assert!(is_valid_module_name("mlx5_vfio_pci"));
        assert!(is_valid_module_name("vfio-pci"));
        assert!(!is_valid_module_name("-r"));
        assert!(!is_valid_module_name("a/b"));
        assert!(!is_valid_module_name(""));
        assert!(!is_valid_module_name(&"a".repeat(65)));
    }

    #[test]
    fn modprobe_locations() {
        assert_eq!(
            modprobe_location(Path::new("/run/k/lib/modules/6.12.1")),
            Some((PathBuf::from("/run/k"), "6.12.1".to_string()))
        );
        assert_eq!(
            modprobe_location(Path::new("/lib/modules/6.12.1")),
            Some((PathBuf::from("/"), "6.12.1".to_string()))
        );
        assert_eq!(modprobe_location(Path::new("/opt/mods")), None);
    }
}
