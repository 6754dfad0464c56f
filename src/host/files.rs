//! Opening virtpci's own files (the hostdev state directory, the simulated kernel's records)
//! so that whatever sits at their paths cannot hang or fool the caller: every open uses
//! `O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC` (a FIFO does not block the open, a symlink is not
//! followed) and the file must then be a regular file. Anything else is an error whose text
//! names the path and says what was found there (see `describe`).

use rustix::fs::FileType;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// How a file is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Read an existing file.
    Read,
    /// Write to an existing file.
    Write,
    /// Create when missing (mode 0600), keep the content (lock files).
    CreateKeep,
    /// Create when missing (mode 0600), truncate (temporary files written whole).
    CreateTruncate,
}

/// Open `path` as `access` says; `Err` unless it is a regular file.
pub(crate) fn open_regular(path: &Path, access: Access) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    match access {
        Access::Read => opts.read(true),
        Access::Write => opts.write(true),
        Access::CreateKeep => opts.write(true).create(true).truncate(false).mode(0o600),
        Access::CreateTruncate => opts.write(true).create(true).mode(0o600),
    };
    opts.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC);
    let file = opts.open(path).map_err(|e| explain_open_error(path, e))?;
    let kind = kind_of(&file.metadata()?);
    if kind != FileType::RegularFile {
        return Err(not_regular(path, describe(kind)));
    }
    // Truncate only once the file is known to be regular (O_TRUNC would act on a device).
    if access == Access::CreateTruncate {
        file.set_len(0)?;
    }
    Ok(file)
}

/// The whole text of `path`, or `None` when it does not exist.
pub(crate) fn read_regular(path: &Path) -> io::Result<Option<String>> {
    let mut file = match open_regular(path, Access::Read) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    Ok(Some(text))
}

/// What a non-regular file is, in words (also for the sysfs reader).
pub(crate) fn describe(kind: FileType) -> &'static str {
    match kind {
        FileType::Directory => "a directory",
        FileType::Symlink => "a symlink",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        _ => "not a regular file",
    }
}

/// The kind of file `metadata` describes, as [`describe`] takes it.
fn kind_of(metadata: &fs::Metadata) -> FileType {
    FileType::from_raw_mode(metadata.mode())
}

fn not_regular(path: &Path, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("'{}' is {what}, not a regular file", path.display()),
    )
}

/// A refused open (`ELOOP` for a symlink under `O_NOFOLLOW`, `ENXIO` for a FIFO without a
/// reader opened for writing, `EISDIR`) says what is at the path instead of the errno's text.
fn explain_open_error(path: &Path, e: io::Error) -> io::Error {
    if !matches!(
        e.raw_os_error(),
        Some(libc::ELOOP) | Some(libc::ENXIO) | Some(libc::EISDIR)
    ) {
        return e;
    }
    match fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_file() => not_regular(path, describe(kind_of(&m))),
        _ => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("virtpci-files-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn fifos_symlinks_and_directories_are_refused_without_blocking() {
        let dir = scratch("kinds");
        let fifo = dir.join("fifo");
        use rustix::fs::{mknodat, FileType, Mode, CWD};
        mknodat(CWD, &fifo, FileType::Fifo, Mode::RUSR | Mode::WUSR, 0).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", dir.join("link")).unwrap();
        fs::create_dir(dir.join("sub")).unwrap();
        for (name, what) in [
            ("fifo", "a FIFO"),
            ("link", "a symlink"),
            ("sub", "a directory"),
        ] {
            for access in [
                Access::Read,
                Access::Write,
                Access::CreateKeep,
                Access::CreateTruncate,
            ] {
                let path = dir.join(name);
                let e = open_regular(&path, access).unwrap_err();
                assert_eq!(
                    e.to_string(),
                    format!("'{}' is {what}, not a regular file", path.display()),
                    "{name} {access:?}"
                );
            }
        }
        fs::write(dir.join("file"), "text").unwrap();
        assert_eq!(
            read_regular(&dir.join("file")).unwrap().as_deref(),
            Some("text")
        );
        assert_eq!(read_regular(&dir.join("missing")).unwrap(), None);
        fs::remove_dir_all(&dir).unwrap();
    }
}
