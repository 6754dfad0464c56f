//! Reading a sysfs-shaped tree under a root directory without ever leaving it.
//!
//! Every path handed to [`Sysfs`] is relative to the root. Paths are resolved *beneath* the
//! root: a symlink whose target climbs above the root, or is absolute and names a place
//! outside it, is an error (`outside_root`), never followed. An absolute target that names a
//! place beneath the root by the root's own path (a tree faked under a directory, as test
//! harnesses build them, e.g. libvirt's virpcimock) is followed as the root-relative rest. The kernel does the resolution when it can
//! (`openat2(2)` with `RESOLVE_BENEATH`, Linux ≥ 5.6); where `openat2` is missing or filtered
//! (old kernels, strict seccomp profiles) the same rule is applied in user space, one path
//! component at a time.
//!
//! Attribute files are opened with `O_NOFOLLOW | O_NONBLOCK` and must be regular files, so a
//! FIFO, a device node, a directory or a symlink where a file belongs gives a clear error.

use super::files::describe;
use crate::error::{Error, Result};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Most symlinks followed while resolving one path (the kernel's limit is 40).
const MAX_SYMLINKS: usize = 40;

/// How paths are resolved beneath the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// By the kernel: `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`.
    Kernel,
    /// In user space, component by component, with the same rules.
    Userland,
}

/// The kind of a directory entry, as far as sysfs walks care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Directory,
    Symlink,
    Other,
}

/// One directory entry: its name and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub kind: EntryKind,
}

/// A sysfs-shaped tree rooted at a directory, opened once.
#[derive(Debug)]
pub struct Sysfs {
    root: PathBuf,
    dir: OwnedFd,
    resolution: Resolution,
    /// The root's absolute path as given and canonicalised, each ending in '/': an absolute
    /// symlink target starting with one of them stays beneath the root.
    self_prefixes: Vec<String>,
}

/// The error for a path whose resolution would leave the root.
pub(crate) fn outside_root(root: &Path, rel: &str) -> Error {
    Error::internal(format!(
        "'{}' resolves outside the sysfs root '{}' (a symlink leaves the root); not followed",
        root.join(rel).display(),
        root.display()
    ))
}

impl Sysfs {
    /// Open the tree rooted at `root`, which must be a directory. The resolution method is
    /// chosen by probing `openat2` once.
    pub fn open(root: &Path) -> Result<Sysfs> {
        let dir = rfs::open(
            root,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            Error::system(
                format!("Failed to open sysfs root '{}'", root.display()),
                &e.into(),
            )
        })?;
        let resolution = match rfs::openat2(
            &dir,
            ".",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
        ) {
            Ok(_) => Resolution::Kernel,
            Err(_) => Resolution::Userland,
        };
        Ok(Sysfs {
            root: root.to_path_buf(),
            dir,
            resolution,
            self_prefixes: self_prefixes(root),
        })
    }

    /// Open with a given resolution method (tests use this to exercise the user-space path).
    pub(crate) fn open_with(root: &Path, resolution: Resolution) -> Result<Sysfs> {
        let mut sysfs = Sysfs::open(root)?;
        sysfs.resolution = resolution;
        Ok(sysfs)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn resolution(&self) -> Resolution {
        self.resolution
    }

    /// The full path of `rel`, for messages.
    pub fn display(&self, rel: &str) -> String {
        self.root.join(rel).display().to_string()
    }

    /// Open `rel` beneath the root with `flags` (`O_CLOEXEC` is always added). With
    /// `O_NOFOLLOW` the last component must not be a symlink. `EXDEV` means the path leaves
    /// the root.
    pub(crate) fn open_at(&self, rel: &str, flags: OFlags) -> io::Result<OwnedFd> {
        let flags = flags | OFlags::CLOEXEC;
        let rel = if rel.is_empty() { "." } else { rel };
        match self.resolution {
            Resolution::Kernel => {
                // EAGAIN: a concurrent rename anywhere made the kernel unsure that a ".." stayed
                // beneath; openat2(2) says to retry. After a few tries, resolve in user space.
                for _ in 0..8 {
                    match rfs::openat2(
                        &self.dir,
                        rel,
                        flags,
                        Mode::empty(),
                        ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
                    ) {
                        Err(rustix::io::Errno::AGAIN) => continue,
                        // The kernel refuses every absolute link; one naming the root by its
                        // own path is resolved in user space, which refuses real escapes.
                        Err(rustix::io::Errno::XDEV) => break,
                        r => return r.map_err(io::Error::from),
                    }
                }
                let follow_last = !flags.contains(OFlags::NOFOLLOW);
                let resolved = self.resolve_userland(rel, follow_last)?;
                let resolved = if resolved.is_empty() { "." } else { &resolved };
                rfs::openat(&self.dir, resolved, flags, Mode::empty()).map_err(io::Error::from)
            }
            Resolution::Userland => {
                let follow_last = !flags.contains(OFlags::NOFOLLOW);
                let resolved = self.resolve_userland(rel, follow_last)?;
                let resolved = if resolved.is_empty() { "." } else { &resolved };
                rfs::openat(&self.dir, resolved, flags, Mode::empty()).map_err(io::Error::from)
            }
        }
    }

    /// Resolve `rel` beneath the root in user space and return the equivalent path without
    /// symlinks (relative to the root; empty for the root itself). With `follow_last` false, a
    /// symlink in the last position is kept as it is.
    pub(crate) fn resolve_userland(&self, rel: &str, follow_last: bool) -> io::Result<String> {
        let mut done: Vec<String> = Vec::new();
        let mut pending: VecDeque<String> = rel.split('/').map(str::to_string).collect();
        if rel.starts_with('/') {
            return Err(io::Error::from_raw_os_error(libc::EXDEV));
        }
        let mut links = 0;
        while let Some(part) = pending.pop_front() {
            match part.as_str() {
                "" | "." => continue,
                ".." => {
                    if done.pop().is_none() {
                        return Err(io::Error::from_raw_os_error(libc::EXDEV));
                    }
                    continue;
                }
                _ => {}
            }
            let last = pending.iter().all(|p| p.is_empty() || p == ".");
            let candidate = if done.is_empty() {
                part.clone()
            } else {
                format!("{}/{}", done.join("/"), part)
            };
            if last && !follow_last {
                done.push(part);
                break;
            }
            let stat = rfs::statat(&self.dir, candidate.as_str(), AtFlags::SYMLINK_NOFOLLOW)?;
            if FileType::from_raw_mode(stat.st_mode) == FileType::Symlink {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                let target = rfs::readlinkat(&self.dir, candidate.as_str(), Vec::new())?;
                let mut target = target.to_string_lossy().into_owned();
                if target.starts_with('/') {
                    let Some(rest) = self.beneath_by_own_path(&target) else {
                        return Err(io::Error::from_raw_os_error(libc::EXDEV));
                    };
                    target = rest.to_string();
                    done.clear();
                }
                for piece in target.split('/').rev() {
                    pending.push_front(piece.to_string());
                }
            } else {
                if !last && FileType::from_raw_mode(stat.st_mode) != FileType::Directory {
                    return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
                }
                done.push(part);
            }
        }
        Ok(done.join("/"))
    }

    /// The root-relative rest of an absolute symlink target that names a place beneath the
    /// root by the root's own path; `None` for any other absolute target.
    fn beneath_by_own_path<'t>(&self, target: &'t str) -> Option<&'t str> {
        self.self_prefixes
            .iter()
            .find_map(|prefix| target.strip_prefix(prefix.as_str()))
            .or_else(|| {
                let bare = target.trim_end_matches('/');
                self.self_prefixes
                    .iter()
                    .any(|p| p.trim_end_matches('/') == bare)
                    .then_some("")
            })
    }

    /// Resolve `rel` (following every symlink, the last one included) to its real location
    /// beneath the root, as a root-relative path without symlinks. Errors name the path.
    pub(crate) fn real_path(&self, rel: &str) -> Result<String> {
        self.resolve_userland(rel, true)
            .map_err(|e| self.io_error("Failed to resolve", rel, e))
    }

    /// Turn an I/O error about `rel` into an [`Error`]: leaving the root gets its own message.
    pub(crate) fn io_error(&self, what: &str, rel: &str, err: io::Error) -> Error {
        if err.raw_os_error() == Some(libc::EXDEV) {
            outside_root(&self.root, rel)
        } else {
            Error::system(format!("{what} '{}'", self.display(rel)), &err)
        }
    }

    /// Whether `rel` exists beneath the root (following symlinks, which must stay beneath it).
    /// A symlink leaving the root is an error.
    pub fn exists(&self, rel: &str) -> Result<bool> {
        match self.open_at(rel, OFlags::PATH) {
            Ok(_) => Ok(true),
            Err(e) if is_absent(&e) => Ok(false),
            Err(e) => Err(self.io_error("Failed to access", rel, e)),
        }
    }

    /// Whether `rel` exists, without following a symlink in the last position.
    pub(crate) fn exists_nofollow(&self, rel: &str) -> Result<bool> {
        match self.open_at(rel, OFlags::PATH | OFlags::NOFOLLOW) {
            Ok(_) => Ok(true),
            Err(e) if is_absent(&e) => Ok(false),
            Err(e) => Err(self.io_error("Failed to access", rel, e)),
        }
    }

    /// Read at most `limit` bytes of the regular file `rel`. `Ok(None)` when it does not exist.
    pub(crate) fn read_file_opt(&self, rel: &str, limit: usize) -> Result<Option<Vec<u8>>> {
        let fd = match self.open_at(rel, OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(Error::internal(format!(
                    "'{}' is a symlink where a file was expected",
                    self.display(rel)
                )))
            }
            Err(e) => return Err(self.io_error("Failed to open", rel, e)),
        };
        let stat = rfs::fstat(&fd).map_err(|e| self.io_error("Failed to stat", rel, e.into()))?;
        let kind = FileType::from_raw_mode(stat.st_mode);
        if kind != FileType::RegularFile {
            return Err(Error::internal(format!(
                "'{}' is {} where a regular file was expected",
                self.display(rel),
                describe(kind)
            )));
        }
        let mut file = File::from(fd);
        let mut data = Vec::with_capacity(limit.min(4096));
        (&mut file)
            .take(limit as u64)
            .read_to_end(&mut data)
            .map_err(|e| self.io_error("Failed to read", rel, e))?;
        Ok(Some(data))
    }

    /// Read the regular file `rel`; a missing file is an error naming it.
    pub(crate) fn read_file(&self, rel: &str, limit: usize) -> Result<Vec<u8>> {
        self.read_file_opt(rel, limit)?.ok_or_else(|| {
            Error::system(
                format!("Failed to open '{}'", self.display(rel)),
                &io::Error::from_raw_os_error(libc::ENOENT),
            )
        })
    }

    /// Read a short text attribute, without its trailing newline. `Ok(None)` when absent.
    pub(crate) fn read_attr_opt(&self, rel: &str) -> Result<Option<String>> {
        match self.read_file_opt(rel, 4096)? {
            None => Ok(None),
            Some(bytes) => {
                let text = String::from_utf8(bytes).map_err(|_| {
                    Error::internal(format!("'{}' does not hold text", self.display(rel)))
                })?;
                Ok(Some(text.trim_end_matches('\n').to_string()))
            }
        }
    }

    /// Read a short text attribute that must exist.
    pub(crate) fn read_attr(&self, rel: &str) -> Result<String> {
        self.read_attr_opt(rel)?.ok_or_else(|| {
            Error::system(
                format!("Failed to open '{}'", self.display(rel)),
                &io::Error::from_raw_os_error(libc::ENOENT),
            )
        })
    }

    /// The text of the symlink `rel`, checked to lead somewhere beneath the root.
    /// `Ok(None)` when `rel` does not exist; an error when it is not a symlink, when its
    /// target leaves the root, or when the target does not exist.
    pub fn read_link(&self, rel: &str) -> Result<Option<String>> {
        // First let the kernel follow the link beneath the root: this refuses every escape,
        // through the link itself or through any component before it. Only then read the
        // link's text (its basename is what callers use).
        let followed = self.open_at(rel, OFlags::PATH);
        let text = match rfs::readlinkat(&self.dir, rel, Vec::new()) {
            Ok(t) => t.to_string_lossy().into_owned(),
            Err(rustix::io::Errno::NOENT) | Err(rustix::io::Errno::NOTDIR) => {
                return match followed {
                    Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                        Err(outside_root(&self.root, rel))
                    }
                    _ => Ok(None),
                }
            }
            Err(rustix::io::Errno::INVAL) => {
                return match followed {
                    Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                        Err(outside_root(&self.root, rel))
                    }
                    _ => Err(Error::internal(format!(
                        "'{}' is not a symlink",
                        self.display(rel)
                    ))),
                }
            }
            Err(e) => return Err(self.io_error("Failed to read link", rel, e.into())),
        };
        match followed {
            Ok(_) => Ok(Some(text)),
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => Err(outside_root(&self.root, rel)),
            Err(e) => Err(Error::system(
                format!(
                    "Unable to resolve symlink '{}' (-> '{}')",
                    self.display(rel),
                    text
                ),
                &e,
            )),
        }
    }

    /// Call `f` with the name and kind of every entry of the directory `rel` (without `.` and
    /// `..`), in directory order, without allocating per entry. `Ok(false)` when the directory
    /// does not exist; the first error of `f` stops the walk and is returned.
    pub(crate) fn for_each_entry(
        &self,
        rel: &str,
        mut f: impl FnMut(&[u8], EntryKind) -> Result<()>,
    ) -> Result<bool> {
        let fd = match self.open_at(rel, OFlags::RDONLY | OFlags::DIRECTORY) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(false),
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
                return Err(Error::internal(format!(
                    "'{}' is not a directory",
                    self.display(rel)
                )))
            }
            Err(e) => return Err(self.io_error("Failed to open directory", rel, e)),
        };
        let mut buf = [const { std::mem::MaybeUninit::<u8>::uninit() }; 8192];
        let mut dir = rfs::RawDir::new(&fd, &mut buf);
        while let Some(entry) = dir.next() {
            let entry = entry.map_err(|e| self.io_error("Failed to read", rel, e.into()))?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let kind = match entry.file_type() {
                FileType::RegularFile => EntryKind::File,
                FileType::Directory => EntryKind::Directory,
                FileType::Symlink => EntryKind::Symlink,
                _ => EntryKind::Other,
            };
            f(name, kind)?;
        }
        Ok(true)
    }

    /// The entries of the directory `rel` (without `.` and `..`), in directory order.
    /// `Ok(None)` when it does not exist.
    pub(crate) fn read_dir_opt(&self, rel: &str) -> Result<Option<Vec<DirEntry>>> {
        let mut out = Vec::new();
        let found = self.for_each_entry(rel, |name, kind| {
            out.push(DirEntry {
                name: String::from_utf8_lossy(name).into_owned(),
                kind,
            });
            Ok(())
        })?;
        Ok(found.then_some(out))
    }

    /// The entries of the directory `rel`, which must exist.
    pub fn read_dir(&self, rel: &str) -> Result<Vec<DirEntry>> {
        self.read_dir_opt(rel)?.ok_or_else(|| {
            Error::system(
                format!("Failed to open directory '{}'", self.display(rel)),
                &io::Error::from_raw_os_error(libc::ENOENT),
            )
        })
    }

    /// Open `rel` for writing with `O_WRONLY | O_NOFOLLOW` beneath the root. Used only by the
    /// kernel writer.
    pub(crate) fn open_for_write(&self, rel: &str) -> io::Result<File> {
        let fd = self.open_at(rel, OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK)?;
        let stat = rfs::fstat(&fd)?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        Ok(File::from(fd))
    }

    /// The root directory's descriptor (for `*at` calls by the simulator).
    pub fn dir_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.dir.as_fd()
    }
}

/// The root's absolute path as given and canonicalised, each with a trailing '/' (only
/// absolute paths count: a relative root has no own absolute name to match).
fn self_prefixes(root: &Path) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let canonical = std::fs::canonicalize(root).ok();
    for path in std::iter::once(root.to_path_buf()).chain(canonical) {
        let Some(text) = path.to_str() else { continue };
        if !text.starts_with('/') || text == "/" {
            continue;
        }
        let prefix = format!("{}/", text.trim_end_matches('/'));
        if !out.contains(&prefix) {
            out.push(prefix);
        }
    }
    out
}

fn is_absent(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR))
}

/// Join a root-relative directory and a relative symlink target lexically, refusing to climb
/// above the root. Returns the normalised root-relative path.
pub(crate) fn join_lexically(base_dir: &str, target: &str) -> Option<String> {
    if target.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = base_dir.split('/').filter(|p| !p.is_empty()).collect();
    for piece in target.split('/') {
        match piece {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

/// The relative path that leads from the directory `from` to `to` (both root-relative,
/// without symlinks), as the kernel writes its sysfs links.
pub(crate) fn relative_link(from_dir: &str, to: &str) -> String {
    let from: Vec<&str> = from_dir.split('/').filter(|p| !p.is_empty()).collect();
    let to_parts: Vec<&str> = to.split('/').filter(|p| !p.is_empty()).collect();
    let common = from
        .iter()
        .zip(to_parts.iter())
        .take_while(|(a, b)| a == b)
        .count();
    let mut out: Vec<&str> = vec![".."; from.len() - common];
    out.extend_from_slice(&to_parts[common..]);
    if out.is_empty() {
        ".".to_string()
    } else {
        out.join("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_join_stays_beneath() {
        assert_eq!(
            join_lexically(
                "bus/pci/devices",
                "../../../devices/pci0000:00/0000:00:01.0"
            ),
            Some("devices/pci0000:00/0000:00:01.0".into())
        );
        assert_eq!(join_lexically("a", "../../x"), None);
        assert_eq!(join_lexically("a", "/etc"), None);
    }

    #[test]
    fn relative_links_like_the_kernel() {
        assert_eq!(
            relative_link("bus/pci/devices", "devices/pci0000:00/0000:00:01.0"),
            "../../../devices/pci0000:00/0000:00:01.0"
        );
        assert_eq!(
            relative_link("devices/pci0000:00/0000:00:01.0", "bus/pci/drivers/e1000e"),
            "../../../bus/pci/drivers/e1000e"
        );
    }
}
