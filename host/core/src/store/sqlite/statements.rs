//! Connections that own the statements they run most, prepared once for their lifetime.
//!
//! rusqlite's statement cache (`prepare_cached`) hashes the SQL text into an LRU to find the
//! statement, takes it out while it runs and puts it back after: about 900 instructions a
//! statement, a seventh of a durable `set` (which runs seven) and a tenth of a `get` that
//! reads SQLite. The statements of those two paths, and of `contains`, are held here instead,
//! next to the connection they belong to; everything else still goes through the cache.
//!
//! A held statement is always reset after it runs (rusqlite resets it when `execute` returns
//! and when the rows of a query are dropped), so an idle connection holds no read snapshot.
//! It keeps its last bound values until the next call binds new ones, except values of 16 KiB
//! and more, which the write path unbinds once they are stored (`writes.rs`).

use rusqlite::{Connection, Statement};
use self_cell::self_cell;

use super::tables::CACHES;

/// The statements of the write path, on the writing connection.
pub(super) struct WriteStatements<'c> {
    /// Opening, closing and nesting the batch's transaction.
    pub(super) transaction: TransactionStatements<'c>,
    /// Storing entries.
    pub(super) entries: EntryStatements<'c>,
}

/// Opening, closing and nesting a write transaction.
pub(super) struct TransactionStatements<'c> {
    pub(super) begin: Statement<'c>,
    pub(super) commit: Statement<'c>,
    pub(super) rollback: Statement<'c>,
    pub(super) savepoint: Statement<'c>,
    pub(super) rollback_to_savepoint: Statement<'c>,
    pub(super) release_savepoint: Statement<'c>,
}

/// What a `set` runs for each entry, and once for its cache's counts.
pub(super) struct EntryStatements<'c> {
    /// `(rowid, octet_length(value), whether it has an expiry)` of entry `(?1, ?2)`.
    pub(super) find: Statement<'c>,
    /// Sets the value of the entry with rowid `?1` to `?2`, when neither it nor the write has
    /// an expiry: the column of the indexes of expiries is left out, so SQLite does not look at
    /// those indexes.
    pub(super) update: Statement<'c>,
    /// Sets the value of the entry with rowid `?1` to `?2`, and its expiry to `?3` (a `set`
    /// replaces the expiry with its own, none when it has none; still one statement a write).
    pub(super) update_expiring: Statement<'c>,
    /// Inserts the entry `(?1, ?2)` with value `?3`, expiring at `?4` (NULL: never).
    pub(super) insert: Statement<'c>,
    /// Logs a change for other processes' LRUs: writer, cache, kind, key.
    pub(super) log_change: Statement<'c>,
    /// Logs several changes in one row (see `writes::KIND_KEYS`): writer, cache, kind, the keys
    /// as a JSON array, and their number `?5`, by which its `seq` passes the newest row's.
    pub(super) log_changes: Statement<'c>,
    /// Adds to a cache's counts (see `Table::add_stats`).
    pub(super) add_cache_stats: Statement<'c>,
}

impl<'c> WriteStatements<'c> {
    fn prepare(conn: &'c Connection) -> rusqlite::Result<WriteStatements<'c>> {
        Ok(WriteStatements {
            transaction: TransactionStatements {
                begin: conn.prepare("BEGIN IMMEDIATE")?,
                commit: conn.prepare("COMMIT")?,
                rollback: conn.prepare("ROLLBACK")?,
                savepoint: conn.prepare("SAVEPOINT write")?,
                rollback_to_savepoint: conn.prepare("ROLLBACK TO write")?,
                release_savepoint: conn.prepare("RELEASE write")?,
            },
            entries: EntryStatements {
                find: conn.prepare(
                    "SELECT id, octet_length(value), expires_at IS NOT NULL FROM entries
                     WHERE cache_id = ?1 AND key = ?2",
                )?,
                update: conn.prepare("UPDATE entries SET value = ?2 WHERE id = ?1")?,
                update_expiring: conn
                    .prepare("UPDATE entries SET value = ?2, expires_at = ?3 WHERE id = ?1")?,
                insert: conn.prepare(
                    "INSERT INTO entries (cache_id, key, value, expires_at) VALUES (?1, ?2, ?3, ?4)",
                )?,
                log_change: conn.prepare(
                    "INSERT INTO change_log (writer, cache_id, kind, key) VALUES (?1, ?2, ?3, ?4)",
                )?,
                log_changes: conn.prepare(
                    "INSERT INTO change_log (seq, writer, cache_id, kind, key)
                     VALUES ((SELECT coalesce(max(seq), 0) FROM change_log) + ?5, ?1, ?2, ?3, ?4)",
                )?,
                add_cache_stats: conn.prepare(CACHES.add_stats)?,
            },
        })
    }
}

self_cell!(
    /// The writing connection with its [`WriteStatements`].
    pub(super) struct WriterConnection {
        owner: Connection,
        #[covariant]
        dependent: WriteStatements,
    }
);

// SAFETY: a `Connection` is `Send` (SQLite is built thread-safe and opened without its
// per-connection mutex, which lets a connection move between threads while one thread at a
// time uses it). Its statements are `!Send` only because each borrows its connection; here they
// never leave the connection that owns them (the cell hands them out only by reference, with
// the owner), so they move with it as one, and without `Sync` one thread at a time uses both.
unsafe impl Send for WriterConnection {}

impl WriterConnection {
    /// Prepares the write statements on `conn`, whose schema must be up to date.
    pub(super) fn prepare(conn: Connection) -> rusqlite::Result<WriterConnection> {
        WriterConnection::try_new(conn, |conn| WriteStatements::prepare(conn))
    }
}

/// The statements of the read path, on a read connection.
pub(super) struct ReadStatements<'c> {
    /// The value of entry `(?1, ?2)` and its expiry; the reader leaves it out when it has
    /// expired (see `SqliteStore::get`).
    pub(super) value: Statement<'c>,
    /// The expiry of entry `(?1, ?2)`: a row when the entry exists, expired or not.
    pub(super) exists: Statement<'c>,
}

self_cell!(
    /// A read connection with its [`ReadStatements`].
    pub(super) struct ReaderConnection {
        owner: Connection,
        #[covariant]
        dependent: ReadStatements,
    }
);

// SAFETY: as for `WriterConnection`.
unsafe impl Send for ReaderConnection {}

impl ReaderConnection {
    /// Prepares the read statements on `conn`.
    pub(super) fn prepare(conn: Connection) -> rusqlite::Result<ReaderConnection> {
        ReaderConnection::try_new(conn, |conn| {
            Ok(ReadStatements {
                value: conn
                    .prepare("SELECT value, expires_at FROM entries WHERE cache_id = ?1 AND key = ?2")?,
                exists: conn.prepare("SELECT expires_at FROM entries WHERE cache_id = ?1 AND key = ?2")?,
            })
        })
    }
}
