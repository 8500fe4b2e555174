//! A copy of the whole database in a new file, made while other processes go on reading and
//! writing.
//!
//! Copying the file with `cp` is not a backup of a database in WAL mode: the newest commits
//! live in the `-wal` file beside it (up to the checkpoint mark, thousands of pages), and a
//! copy taken while a checkpoint writes is torn. Here SQLite's `VACUUM INTO` writes the copy
//! from one read transaction, so it holds every cache and queue as of one moment, and writers
//! are never held up (in WAL mode a reader blocks nobody). SQLite does not fsync the file it
//! writes, and a crash halfway leaves half a file; so the copy is written under a temporary
//! name beside the destination, checked, fsynced, and only then linked under its own name,
//! which it never takes from a file already there.

use std::ffi::OsString;
use std::fs::File;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use super::tables::{CACHES, QUEUES};
use crate::store::Copied;
use crate::{Error, Result};

/// The new file a backup is written to, under a temporary name until [`Partial::publish`];
/// removed when dropped before that.
pub(super) struct Partial {
    dest: PathBuf,
    /// UTF-8, as SQLite takes it.
    temporary: String,
}

impl Partial {
    /// Checks that a backup can go to `dest` (nothing there yet, in a directory that exists)
    /// and picks the temporary name beside it.
    pub(super) fn beside(dest: &Path) -> Result<Partial> {
        let refuse =
            |why: String| Error::Storage(format!("cannot write a backup to {}: {why}", dest.display()));
        let Some(name) = dest.file_name() else {
            return Err(refuse("give the path of the new file to write".into()));
        };
        match std::fs::symlink_metadata(dest) {
            Ok(found) if found.is_dir() => {
                return Err(refuse("it is a directory; give the path of the new file to write".into()));
            }
            Ok(_) => return Err(refuse("it exists, and a backup never replaces a file".into())),
            // Said better of the directory, below.
            Err(error) if matches!(error.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {}
            Err(error) => return Err(refuse(error.to_string())),
        }
        let directory = match dest.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        match std::fs::metadata(directory) {
            Ok(found) if found.is_dir() => {}
            Ok(_) => return Err(refuse(format!("{} is not a directory", directory.display()))),
            Err(error) if error.kind() == ErrorKind::NotFound => {
                return Err(refuse(format!("the directory {} does not exist", directory.display())));
            }
            Err(error) => return Err(refuse(format!("{}: {error}", directory.display()))),
        }
        let mut temporary = OsString::from(".");
        temporary.push(name);
        temporary.push(format!(".partial-{}-{:08x}", std::process::id(), fastrand::u32(..)));
        let Some(temporary) = directory.join(temporary).to_str().map(str::to_owned) else {
            return Err(refuse("the path is not UTF-8 text, which SQLite needs".into()));
        };
        Ok(Partial { dest: dest.to_owned(), temporary })
    }

    /// The temporary file to write the copy to.
    pub(super) fn temporary(&self) -> &str {
        &self.temporary
    }

    /// The error of a copy that could not be written, in words about the destination.
    pub(super) fn write_error(&self, error: &rusqlite::Error) -> Error {
        let dest = self.dest.display();
        match error.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => {
                Error::Storage(format!("cannot write a backup to {dest}: the disk is full"))
            }
            _ => Error::Storage(format!("cannot write a backup to {dest}: {error}")),
        }
    }

    /// Puts the copy in WAL mode, as the database it copies (`VACUUM INTO` writes a rollback
    /// journal's header), checks it (SQLite's `quick_check`: every page and record well
    /// formed), lists what it holds, and makes it durable.
    pub(super) fn check(&self) -> Result<Copied> {
        let dest = self.dest.display();
        let broken = |why: String| Error::Storage(format!("the backup written for {dest} is unsound: {why}"));
        let copied = {
            let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            let copy =
                Connection::open_with_flags(&self.temporary, flags).map_err(|e| broken(e.to_string()))?;
            let mode: String = copy
                .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
                .map_err(|e| self.write_error(&e))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(broken(format!("its journal mode stayed {mode}")));
            }
            let checked: String = copy
                .query_row("PRAGMA quick_check(1)", [], |row| row.get(0))
                .map_err(|e| broken(e.to_string()))?;
            if checked != "ok" {
                return Err(broken(checked));
            }
            let (caches, queues) = (CACHES.list(&copy), QUEUES.list(&copy));
            Copied {
                caches: caches.map_err(|e| broken(e.to_string()))?,
                queues: queues.map_err(|e| broken(e.to_string()))?,
                bytes: 0,
            }
        };
        let file = File::open(&self.temporary).and_then(|file| file.sync_all().map(|()| file));
        let bytes = file.and_then(|file| file.metadata()).map_err(|e| self.io_error(e))?.len();
        Ok(Copied { bytes, ..copied })
    }

    /// Gives the copy its own name (never replacing a file that took it meanwhile) and makes
    /// the name durable.
    pub(super) fn publish(self) -> Result<()> {
        match std::fs::hard_link(&self.temporary, &self.dest) {
            Ok(()) => {}
            Err(error) if error.kind() == ErrorKind::AlreadyExists => {
                return Err(Error::Storage(format!(
                    "cannot write a backup to {}: a file appeared there meanwhile, and a backup \
                     never replaces a file",
                    self.dest.display()
                )));
            }
            // A file system without hard links: a rename, which would replace a file that
            // appeared since the check at the start; so look once more.
            Err(_) if !self.dest.exists() => {
                std::fs::rename(&self.temporary, &self.dest).map_err(|e| self.io_error(e))?
            }
            Err(error) => return Err(self.io_error(error)),
        }
        let _ = std::fs::remove_file(&self.temporary);
        let directory = Path::new(&self.temporary).parent().unwrap_or(Path::new("."));
        File::open(directory).and_then(|directory| directory.sync_all()).map_err(|e| self.io_error(e))
    }

    fn io_error(&self, error: std::io::Error) -> Error {
        Error::Storage(format!("cannot write a backup to {}: {error}", self.dest.display()))
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        // Absent after a rename, and after a copy that failed before it created the file.
        let _ = std::fs::remove_file(&self.temporary);
    }
}
