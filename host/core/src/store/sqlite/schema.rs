//! Opening a database file safely, and the schema with its migrations.
//!
//! A file is only ever changed once it is known to be ours: a new or empty file, or one with
//! our `application_id`. Anything else (another application's database, a file that is not
//! SQLite at all, a schema from a newer easycaching) is refused before a single byte is
//! written, including the switch to WAL.

use std::time::{Duration, Instant};

use rusqlite::{Connection, TransactionBehavior};

use super::DbFile;
use crate::{Error, Result};

/// `PRAGMA application_id` of an easycaching database: "easy" in ASCII.
pub(super) const APPLICATION_ID: i64 = 0x6561_7379;

/// The schema, one migration per version: `MIGRATIONS[n]` takes version `n` to `n + 1`.
/// Append new migrations; never edit one that has shipped.
const MIGRATIONS: &[&str] = &[
    // 1: caches with entries, queues with items, and the change log other processes read to
    // keep their LRUs coherent. Entry and item counts live on their cache or queue row, so
    // `len` and quota checks never count rows.
    //
    // Entries are a rowid table with a unique index on (cache, key), not a `WITHOUT ROWID`
    // table keyed by (cache, key): SQLite keeps at most about 490 bytes of a `WITHOUT ROWID`
    // row in its 2 KiB page (an index b-tree's cell) and the rest on overflow pages, where a
    // rowid table's leaf keeps up to about 2,000. Measured with raw rusqlite on 100,000
    // entries (docs/benchmark-log.md, 2026-11-29): `WITHOUT ROWID` wrote 1.70 pages to the
    // WAL for a new key of a 40-byte value against 2.43 and read it faster, but from 400-byte
    // values on it wrote more pages than the rowid table (3.70 against 2.89) and read 2-4x
    // slower; JSON documents are more often the larger kind.
    "CREATE TABLE caches (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        name        TEXT NOT NULL UNIQUE,
        entry_count INTEGER NOT NULL DEFAULT 0,
        byte_count  INTEGER NOT NULL DEFAULT 0,
        created_at  INTEGER NOT NULL DEFAULT (unixepoch())
    );
    CREATE TABLE entries (
        id       INTEGER PRIMARY KEY,
        cache_id INTEGER NOT NULL,
        key      TEXT NOT NULL,
        value    TEXT NOT NULL,
        UNIQUE (cache_id, key)
    );
    CREATE TABLE queues (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        name       TEXT NOT NULL UNIQUE,
        item_count INTEGER NOT NULL DEFAULT 0,
        byte_count INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL DEFAULT (unixepoch())
    );
    CREATE TABLE queue_items (
        id       INTEGER PRIMARY KEY,
        queue_id INTEGER NOT NULL,
        value    TEXT NOT NULL
    );
    CREATE INDEX queue_items_by_queue ON queue_items (queue_id);
    CREATE TABLE change_log (
        seq      INTEGER PRIMARY KEY,
        writer   INTEGER NOT NULL,
        cache_id INTEGER NOT NULL,
        kind     INTEGER NOT NULL,
        key      TEXT
    );",
    // 2: the writes committed for other processes (see `handoffs`): per slot on the board,
    // the last write committed through it (its poster, the poster's number for it, and how
    // many keys it removed), so a poster whose holder died can tell whether it committed.
    // `slot` is the slot's number with the board's name above it (`Handoffs::row_of`);
    // builds before boards had names used the number alone, which no name collides with.
    "CREATE TABLE handoffs (
        slot   INTEGER PRIMARY KEY,
        writer INTEGER NOT NULL,
        seq    INTEGER NOT NULL,
        count  INTEGER NOT NULL
    );",
    // 3: entries that expire (see `Write::Set::expires_at`). `expires_at` is the unix time in
    // milliseconds from which the entry is gone for every reader; NULL, the default, never
    // expires, so existing entries keep living as they did. Both indexes are partial: an entry
    // without a TTL (the common `set`) is in neither, and costs no index work. The first finds
    // the earliest expiry across the database, cheaply, for the sweep on the write path; the
    // second counts one cache's entries expired but not swept yet, for `len`. An older build
    // opening the file after this refuses it (`SchemaTooNew`); one already running when it is
    // migrated knows nothing of expiry (its reads do not leave expired entries out, its sets
    // keep a TTL), so every process sharing a database is upgraded together.
    "ALTER TABLE entries ADD COLUMN expires_at INTEGER;
    CREATE INDEX entries_by_expiry ON entries (expires_at) WHERE expires_at IS NOT NULL;
    CREATE INDEX entries_expiring_by_cache ON entries (cache_id, expires_at) WHERE expires_at IS NOT NULL;",
    // 4: change-log rows of kind 3 (`writes::KIND_KEYS`): the keys one writer changed in one
    // cache in one transaction, in one row, as a JSON array of strings. No table changes; the
    // version does, so that an older build, which would take the array for one key and keep
    // the keys in it stale in its LRU, refuses the file (`SchemaTooNew`). As for 3, a process
    // already running when the file is migrated does not look at the version again: every
    // process sharing a database is upgraded together.
    "-- the change log's kind 3: no table changes",
    // 5: leases on queue items (`Write::Lease`, for delivery at least once). `lease_ends` is
    // the unix time in milliseconds at which an item's lease ends; NULL, the default, or a
    // time passed means the item waits. `lease_token` is the random token of the item's last
    // lease, which its `Receipt` carries: an acknowledgement or release matches it, and no
    // other lease's. `deliveries` counts the leases the item was handed out under. No index: a
    // take passes over the leased items at the front, which are as many as takers at work. An
    // older build opening the file after this refuses it (`SchemaTooNew`); one already running
    // would hand out leased items to `get`, so, as for 3, every process sharing a database is
    // upgraded together.
    "ALTER TABLE queue_items ADD COLUMN lease_ends INTEGER;
    ALTER TABLE queue_items ADD COLUMN lease_token INTEGER;
    ALTER TABLE queue_items ADD COLUMN deliveries INTEGER NOT NULL DEFAULT 0;",
];

/// The page size of a new database file, in bytes (SQLite's default is 4096). A commit writes
/// every page it changed to the WAL, and its fsync costs time in proportion to those bytes on
/// the disks measured here (about 20 µs per 4 KiB): writes of small documents under scattered
/// keys change one page each, so smaller pages make every commit cheaper. Measured back to
/// back, 8 writer threads with keys of their own: 2 KiB pages did 11.9-14.6k writes/s, 4 KiB
/// pages 9.6-12.0k; a lone durable writer 3.6-4.6k against 3.2-3.9k (1 KiB pages about the
/// same as 2 KiB). Documents up to about 2,000 bytes still fit in a page (larger ones continue
/// on overflow pages, as they would at 4 KiB beyond 4,000).
pub(super) const PAGE_SIZE: u32 = 2048;

/// The schema version this build creates and understands.
pub(super) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// What a file turned out to be.
#[derive(PartialEq, Eq)]
pub(super) enum Found {
    /// A new or empty file: ours to initialize.
    Fresh,
    /// An easycaching database at this schema version.
    Ours(i64),
}

/// Checks that the file behind `conn` is ours (or empty), switches it to WAL and brings its
/// schema up to date. Safe against other processes doing the same at the same time.
///
/// Processes that open a new file together race to switch it to WAL. In rollback-journal mode
/// SQLite answers one of them `SQLITE_BUSY` at once, without calling the busy handler, when
/// waiting could deadlock (a reader upgrading while another waits for it to finish). Every
/// step here can be run again, so a busy answer is retried, with short jittered sleeps, for
/// as long as the busy timeout allows.
pub(super) fn prepare(conn: &mut Connection, db: &DbFile) -> Result<()> {
    let started = Instant::now();
    let mut attempt: u32 = 0;
    loop {
        match prepare_once(conn, db) {
            Err(Error::Busy { .. }) if started.elapsed() < db.busy_timeout => {
                attempt += 1;
                let ceiling_us = (100u64 << attempt.min(6)).min(5000);
                std::thread::sleep(Duration::from_micros(fastrand::u64(ceiling_us / 2..=ceiling_us)));
            }
            done => return done,
        }
    }
}

fn prepare_once(conn: &mut Connection, db: &DbFile) -> Result<()> {
    let path = &db.path;
    let found = inspect(conn, db)?;
    match found {
        Found::Ours(version) if version > SCHEMA_VERSION => {
            return Err(Error::SchemaTooNew {
                path: path.to_owned(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        Found::Ours(_) => {}
        // Only a file with nothing in it yet takes a page size; a file that has one keeps it.
        Found::Fresh => {
            conn.execute_batch(&format!("PRAGMA page_size = {PAGE_SIZE};")).map_err(|e| db.error(e))?
        }
    }
    let mode: String =
        conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0)).map_err(|e| db.error(e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::Storage(format!(
            "{} cannot use write-ahead logging (journal mode stayed {mode:?}); \
             is it on a network file system?",
            path.display()
        )));
    }
    if found == Found::Ours(SCHEMA_VERSION) {
        // Nothing to migrate, so no write lock to take: a database someone is writing opens
        // at once, for reading at least.
        return Ok(());
    }
    migrate(conn, db)
}

/// Reads what the file is without changing it.
pub(super) fn inspect(conn: &Connection, db: &DbFile) -> Result<Found> {
    let path = &db.path;
    // One statement, so one snapshot: read apart, another process's migration could commit
    // between them and make our own file look like another application's (tables, no id).
    let read = || -> rusqlite::Result<(i64, i64, i64)> {
        conn.query_row(
            "SELECT (SELECT application_id FROM pragma_application_id),
                    (SELECT user_version FROM pragma_user_version),
                    (SELECT count(*) FROM sqlite_schema)",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
    };
    let (application_id, version, objects) = read().map_err(|e| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => Error::NotOurDatabase {
            path: path.to_owned(),
            reason: "it is not an SQLite database file".into(),
        },
        _ => db.error(e),
    })?;
    match (application_id, objects) {
        (APPLICATION_ID, _) => Ok(Found::Ours(version)),
        (0, 0) if version == 0 => Ok(Found::Fresh),
        // Empty, but another application set its version: it may be about to fill it.
        (0, 0) => Err(Error::NotOurDatabase {
            path: path.to_owned(),
            reason: format!(
                "it is an empty SQLite database with user_version {version}, set by another application"
            ),
        }),
        (0, _) => Err(Error::NotOurDatabase {
            path: path.to_owned(),
            reason: match objects {
                1 => "it is an SQLite database of another application, with a table of its own".into(),
                _ => format!(
                    "it is an SQLite database of another application, with {objects} tables and indexes"
                ),
            },
        }),
        (other, _) => Err(Error::NotOurDatabase {
            path: path.to_owned(),
            reason: format!("it is an SQLite database with application_id {other:#x}"),
        }),
    }
}

/// Applies the migrations the file lacks, in one transaction.
fn migrate(conn: &mut Connection, db: &DbFile) -> Result<()> {
    let path = &db.path;
    let fail = |e| db.error(e);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(fail)?;
    // Read again under the write lock: another process may have migrated meanwhile.
    let version: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0)).map_err(fail)?;
    if version > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew { path: path.to_owned(), found: version, supported: SCHEMA_VERSION });
    }
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    for (from, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tracing::info!(path = %path.display(), from, to = from + 1, "migrating the schema");
        tx.execute_batch(migration).map_err(fail)?;
    }
    tx.execute_batch(&format!(
        "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {SCHEMA_VERSION};"
    ))
    .map_err(fail)?;
    tx.commit().map_err(fail)
}
