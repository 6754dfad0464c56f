//! The book on disk: one file in the state directory, replaced atomically.
//!
//! `hostdev-state.json` holds both lists. A save writes `.hostdev-state.json.tmp`, fsyncs it,
//! renames it over the file and fsyncs the directory, so a reader (or a manager created after
//! `kill -9`) sees either the old book or the new one, never a mix. Every operation holds an
//! exclusive `flock` on `lock` while it reads the book, moves devices and saves, so several
//! processes (a daemon and the CLI) may share a state directory; a lock held by a process that
//! died is released by the kernel. All three files must be regular files (see
//! [`crate::host::files`]): a FIFO or a symlink there is an error naming it, never a hang.

use super::book::OwnershipBook;
use crate::error::{Error, Result};
use crate::host::files::{open_regular, read_regular, Access};
use rustix::fs::{flock, FlockOperation};
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

pub(crate) const STATE_FILE: &str = "hostdev-state.json";
const TEMP_FILE: &str = ".hostdev-state.json.tmp";
const LOCK_FILE: &str = "lock";

/// The state directory.
#[derive(Debug)]
pub struct StateStore {
    dir: PathBuf,
}

/// The exclusive lock of a state directory, released on drop.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

impl StateStore {
    /// Use `dir`, creating it (mode 0700) when missing.
    pub fn open(dir: &Path) -> Result<StateStore> {
        // An empty path would put the files in the working directory.
        if dir.as_os_str().is_empty() {
            return Err(Error::invalid_arg(
                "the hostdev state directory must not be empty",
            ));
        }
        if !dir.is_dir() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| {
                    Error::system(
                        format!("Failed to create state dir '{}'", dir.display()),
                        &e,
                    )
                })?;
        }
        Ok(StateStore {
            dir: dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn state_path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// Take the directory's lock (blocks while another process holds it).
    pub fn lock(&self) -> Result<StateLock> {
        let path = self.dir.join(LOCK_FILE);
        let file = open_regular(&path, Access::CreateKeep)
            .map_err(|e| Error::system(format!("Failed to open '{}'", path.display()), &e))?;
        flock(&file, FlockOperation::LockExclusive).map_err(|e| {
            Error::system(format!("Failed to lock '{}'", path.display()), &e.into())
        })?;
        Ok(StateLock { _file: file })
    }

    /// The saved book; an empty one when nothing was saved yet.
    pub fn load(&self) -> Result<OwnershipBook> {
        let path = self.state_path();
        match read_regular(&path) {
            Ok(Some(text)) => OwnershipBook::from_json(&text, &path.display().to_string()),
            Ok(None) => Ok(OwnershipBook::default()),
            Err(e) => Err(Error::system(
                format!("Failed to read hostdev state '{}'", path.display()),
                &e,
            )),
        }
    }

    /// Replace the saved book with `book` (write a temporary file, fsync, rename, fsync the
    /// directory).
    pub(crate) fn save(&self, book: &OwnershipBook) -> Result<()> {
        let path = self.state_path();
        let tmp = self.dir.join(TEMP_FILE);
        let text = book.to_json();
        let mut f = open_regular(&tmp, Access::CreateTruncate).map_err(|e| {
            Error::system(
                format!("Failed to save hostdev state '{}'", tmp.display()),
                &e,
            )
        })?;
        let mut write = || -> io::Result<()> {
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            File::open(&self.dir)?.sync_all()
        };
        write().map_err(|e| {
            Error::system(
                format!("Failed to save hostdev state '{}'", path.display()),
                &e,
            )
        })
    }
}
