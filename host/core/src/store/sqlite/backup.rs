//! A copy of the whole database in a new file, made while other processes go on reading and
//! writing; and putting such a copy back in place of a database nobody uses.
//!
//! Copying the file with `cp` is not a backup of a database in WAL mode: the newest commits
//! live in the `-wal` file beside it (up to the checkpoint mark, thousands of pages), and a
//! copy taken while a checkpoint writes is torn. Here SQLite's `VACUUM INTO` writes the copy
//! from one read transaction, so it holds every cache and queue as of one moment, and writers
//! are never held up (in WAL mode a reader blocks nobody). SQLite does not fsync the file it
//! writes, and a crash halfway leaves half a file; so the copy is written under a temporary
//! name beside the destination, checked, fsynced, and only then linked under its own name,
//! which it never takes from a file already there.
//!
//! A restore copies the backup the same way (so the backup itself is left as it was) to a
//! temporary name beside the database, checks it, and only then moves the database it
//! replaces aside, with its `-wal` (so that it stays whole, and nothing is lost by a restore
//! from the wrong file), and renames the copy into place. It refuses while any process has
//! the database open: SQLite's `-wal` and `-shm` of a database in use belong to it, and the
//! processes would go on writing to the file moved aside.

use std::ffi::OsString;
use std::fs::File;
use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rusqlite::{Connection, OpenFlags};

use super::schema::{self, Found, SCHEMA_VERSION};
use super::tables::{CACHES, QUEUES};
use super::{DbFile, sidecar};
use crate::store::Copied;
use crate::{Error, Result};

/// Where SQLite's unix VFS keeps its "dead man switch" in the `-shm` file: every connection
/// to a database in WAL mode holds a shared lock on this byte for as long as it is open.
const SHM_DMS_BYTE: libc::off_t = 128;

/// Puts a copy of the database in `backup` in place of the one at `database` (which need not
/// exist), moving that one aside with its `-wal`. See the module documentation. Answers what
/// the database holds now, and where the one it replaced went.
pub(super) fn restore(backup: &Path, database: &Path) -> Result<(Copied, Option<PathBuf>)> {
    let source = DbFile { path: backup.to_owned(), busy_timeout: crate::DEFAULT_BUSY_TIMEOUT };
    let refuse = |why: String| Error::path("restore from", backup, why);
    match std::fs::metadata(backup) {
        Ok(_) if same_file(backup, database) => {
            return Err(refuse(format!("it is the database {} itself", database.display())));
        }
        Ok(found) if found.is_file() => {}
        Ok(_) => return Err(refuse("it is not a file".into())),
        Err(error) if error.kind() == ErrorKind::NotFound => {
            return Err(refuse("there is no file there".into()));
        }
        Err(error) => return Err(refuse(error.to_string())),
    }
    // Read-write if it may be, only so that SQLite removes the `-wal` and `-shm` it makes
    // beside the backup when it is done; nothing is written to the backup.
    let open = |flags| Connection::open_with_flags(backup, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX);
    let conn = open(OpenFlags::SQLITE_OPEN_READ_WRITE)
        .or_else(|_| open(OpenFlags::SQLITE_OPEN_READ_ONLY))
        .and_then(|conn| conn.busy_timeout(source.busy_timeout).map(|()| conn))
        .map_err(|e| source.error(e))?;
    match schema::inspect(&conn, &source)? {
        Found::Ours(version) if version > SCHEMA_VERSION => {
            return Err(Error::SchemaTooNew {
                path: backup.to_owned(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        Found::Ours(_) => {}
        Found::Fresh => {
            return Err(Error::NotOurDatabase {
                path: backup.to_owned(),
                reason: "it is empty, which no backup is".into(),
            });
        }
    }
    refuse_in_use(database)?;
    let partial = Partial::in_place_of(database)?;
    partial.copy_from(&conn, &source)?;
    drop(conn);
    let copied = partial.check(database, true)?;
    // Once more, right before the files move: it took a while.
    refuse_in_use(database)?;
    let replaced = move_aside(database)?;
    partial.replace()?;
    Ok((copied, replaced))
}

/// Refuses when a process has the database at `path` open (the error names one).
fn refuse_in_use(path: &Path) -> Result<()> {
    let shm = sidecar(path, "-shm");
    let file = match File::open(&shm) {
        Ok(file) => file,
        // No connection has it open without this file.
        Err(error) if error.kind() == ErrorKind::NotFound => return Ok(()),
        Err(error) => {
            return Err(Error::Storage(format!("cannot tell whether {} is in use: {error}", path.display())));
        }
    };
    // SAFETY: a plain struct of integers, all zero is a valid value.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as _;
    lock.l_whence = libc::SEEK_SET as _;
    lock.l_start = SHM_DMS_BYTE;
    lock.l_len = 1;
    // SAFETY: `file` is open for as long as the call, and `lock` is a valid `flock`.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut lock) } != 0 {
        let error = std::io::Error::last_os_error();
        return Err(Error::Storage(format!("cannot tell whether {} is in use: {error}", path.display())));
    }
    if i32::from(lock.l_type) == libc::F_UNLCK {
        return Ok(());
    }
    let who = match lock.l_pid {
        pid if pid > 0 => format!("process {pid} has it open"),
        _ => "a process has it open".into(),
    };
    Err(failed(
        path,
        true,
        format_args!(
            "{who}; stop every process using it first (a restore puts another file in its place, \
             and they would go on with the old one)"
        ),
    ))
}

/// Moves the database at `path` aside, with its `-wal`, to `<path>.replaced-<seconds since
/// 1970>` (whose `-wal` SQLite finds beside it by that name; `-2` and so on added when that
/// is taken), and removes its `-shm` and `-board`, which describe it alone; answers where it
/// went, or `None` when there was none. A `-wal` left without its database is moved aside
/// too: SQLite would otherwise replay it onto the copy put in place.
fn move_aside(path: &Path) -> Result<Option<PathBuf>> {
    let moving = |error: std::io::Error| {
        Error::Storage(format!("cannot move {} aside to restore in its place: {error}", path.display()))
    };
    let exists = |path: &Path| match std::fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(error) if error.kind() == ErrorKind::NotFound => Ok(false),
        Err(error) => Err(moving(error)),
    };
    let wal = sidecar(path, "-wal");
    let (database_found, wal_found) = (exists(path)?, exists(&wal)?);
    let aside = if database_found || wal_found {
        let seconds =
            SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |since| since.as_secs());
        // A second restore within the second: `-2`, and so on.
        let aside = (1..)
            .map(|n| match n {
                1 => sidecar(path, &format!(".replaced-{seconds}")),
                n => sidecar(path, &format!(".replaced-{seconds}-{n}")),
            })
            .find(|aside| !aside.exists() && !sidecar(aside, "-wal").exists())
            .unwrap_or_default();
        if wal_found {
            std::fs::rename(&wal, sidecar(&aside, "-wal")).map_err(moving)?;
        }
        if database_found {
            std::fs::rename(path, &aside).map_err(moving)?;
        }
        Some(aside)
    } else {
        None
    };
    for stale in ["-shm", "-board"] {
        match std::fs::remove_file(sidecar(path, stale)) {
            Err(error) if error.kind() != ErrorKind::NotFound => return Err(moving(error)),
            _ => {}
        }
    }
    Ok(aside)
}

/// Whether `one` and `other` are the same file (false when either does not exist).
fn same_file(one: &Path, other: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(one), std::fs::metadata(other)) {
        (Ok(one), Ok(other)) => (one.dev(), one.ino()) == (other.dev(), other.ino()),
        _ => false,
    }
}

/// The copy being written, under a temporary name beside its destination until
/// [`Partial::publish`] (a backup) or [`Partial::replace`] (a restore); removed when dropped
/// before that.
pub(super) struct Partial {
    dest: PathBuf,
    /// UTF-8, as SQLite takes it.
    temporary: String,
    /// Whether the copy is to replace the file at `dest` (a restore).
    replacing: bool,
}

impl Partial {
    /// Checks that a backup can go to `dest` (nothing there yet, in a directory that exists)
    /// and picks the temporary name beside it.
    pub(super) fn beside(dest: &Path) -> Result<Partial> {
        Partial::new(dest, false)
    }

    /// Picks the temporary name for a copy to put in place of the database at `dest` (which
    /// need not exist).
    fn in_place_of(dest: &Path) -> Result<Partial> {
        Partial::new(dest, true)
    }

    fn new(dest: &Path, replacing: bool) -> Result<Partial> {
        let refuse = |why: String| failed(dest, replacing, why);
        let Some(name) = dest.file_name() else {
            return Err(refuse("give the path of a file".into()));
        };
        match std::fs::symlink_metadata(dest) {
            Ok(found) if found.is_dir() => {
                return Err(refuse("it is a directory; give the path of a file".into()));
            }
            Ok(found) if replacing && found.is_file() => {}
            Ok(_) if replacing => return Err(refuse("it is not a file".into())),
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
        Ok(Partial { dest: dest.to_owned(), temporary, replacing })
    }

    /// Writes the copy of the database `conn` reads (the file `source`) with `VACUUM INTO`,
    /// in one read transaction of its own. `conn` must not be query-only.
    pub(super) fn copy_from(&self, conn: &Connection, source: &DbFile) -> Result<()> {
        use rusqlite::ErrorCode::{CannotOpen, DiskFull, ReadOnly, SystemIoFailure};
        match conn.execute("VACUUM INTO ?1", [&self.temporary]) {
            Ok(_) => Ok(()),
            // Said of the copy: the file it could not make or grow.
            Err(error) if matches!(error.sqlite_error_code(), Some(CannotOpen | DiskFull | ReadOnly)) => {
                Err(self.write_error(&error))
            }
            // An I/O error may be either side's; named both.
            Err(error) if error.sqlite_error_code() == Some(SystemIoFailure) => {
                Err(self
                    .failed(format_args!("reading {} or writing the copy: {error}", source.path.display())))
            }
            // Of the database read: locked, damaged.
            Err(error) => Err(source.error(error)),
        }
    }

    /// The error of a copy that could not be written, in words about the destination.
    fn write_error(&self, error: &rusqlite::Error) -> Error {
        match error.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => self.failed("the disk is full"),
            _ => self.failed(error),
        }
    }

    /// Puts the copy in WAL mode, as the database it copies (`VACUUM INTO` writes a rollback
    /// journal's header), checks it (SQLite's `quick_check`: every page and record well
    /// formed), lists what it holds, gives it the permissions of the database at
    /// `permissions_of` (see [`Partial::keep_permissions_of`]), and makes all that durable.
    pub(super) fn check(&self, permissions_of: &Path, owner: bool) -> Result<Copied> {
        let broken = |why: String| self.failed(format!("the copy written is unsound: {why}"));
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
        // After the connection is closed: it must open the copy to write.
        self.keep_permissions_of(permissions_of, owner)?;
        let file = File::open(&self.temporary).and_then(|file| file.sync_all().map(|()| file));
        let bytes = file.and_then(|file| file.metadata()).map_err(|e| self.failed(e))?.len();
        Ok(Copied { bytes, ..copied })
    }

    /// Gives the copy its own name (never replacing a file that took it meanwhile) and makes
    /// the name durable.
    pub(super) fn publish(self) -> Result<()> {
        match std::fs::hard_link(&self.temporary, &self.dest) {
            Ok(()) => {}
            Err(error) if error.kind() == ErrorKind::AlreadyExists => {
                return Err(
                    self.failed("a file appeared there meanwhile, and a backup never replaces a file")
                );
            }
            // A file system without hard links: a rename, which would replace a file that
            // appeared since the check at the start; so look once more.
            Err(_) if !self.dest.exists() => {
                std::fs::rename(&self.temporary, &self.dest).map_err(|e| self.failed(e))?
            }
            Err(error) => return Err(self.failed(error)),
        }
        let _ = std::fs::remove_file(&self.temporary);
        self.sync_directory()
    }

    /// Gives the copy the permissions of the database at `path`, if there is one (a backup
    /// of a database only its owner may read is no more readable), and with `owner` its owner
    /// and group too where this process may set them (a restore: a database restored by root
    /// for a service's user stays that user's to write).
    fn keep_permissions_of(&self, path: &Path, owner: bool) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        let original = match std::fs::metadata(path) {
            Ok(original) => original,
            Err(error) if error.kind() == ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(self.failed(error)),
        };
        std::fs::set_permissions(&self.temporary, original.permissions()).map_err(|e| self.failed(e))?;
        if owner {
            match std::os::unix::fs::chown(&self.temporary, Some(original.uid()), Some(original.gid())) {
                // Only root may give a file away: anyone else's copy is theirs, as the
                // database was if they could write it.
                Err(error) if error.kind() == ErrorKind::PermissionDenied => {}
                done => done.map_err(|e| self.failed(e))?,
            }
        }
        Ok(())
    }

    /// Renames the copy into place, replacing what is there, and makes the name durable.
    fn replace(self) -> Result<()> {
        std::fs::rename(&self.temporary, &self.dest).map_err(|e| self.failed(e))?;
        self.sync_directory()
    }

    fn sync_directory(&self) -> Result<()> {
        let directory = Path::new(&self.temporary).parent().unwrap_or(Path::new("."));
        File::open(directory).and_then(|directory| directory.sync_all()).map_err(|e| self.failed(e))
    }

    fn failed(&self, why: impl std::fmt::Display) -> Error {
        failed(&self.dest, self.replacing, why)
    }
}

/// "cannot write a backup to DEST: WHY", or for a restore "cannot restore into DEST: WHY".
fn failed(dest: &Path, replacing: bool, why: impl std::fmt::Display) -> Error {
    match replacing {
        true => Error::path("restore into", dest, why),
        false => Error::path("write a backup to", dest, why),
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        // Absent after a rename, and after a copy that failed before it created the file.
        let _ = std::fs::remove_file(&self.temporary);
    }
}
