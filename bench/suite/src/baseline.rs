//! What a user would otherwise pick, each doing the same job as easycaching in the plainest way:
//! a `HashMap` behind a `Mutex`, SQLite through rusqlite with easycaching's own schema and
//! pragmas, and the store design of Spin's SQLite key-value store.

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use rusqlite::{Connection, OptionalExtension, params};

/// The busy timeout of every baseline connection: easycaching's default.
const BUSY_TIMEOUT: Duration = easycaching::DEFAULT_BUSY_TIMEOUT;

/// Waits for another connection's lock as easycaching does: short, jittered sleeps growing to
/// 2 ms, for up to [`BUSY_TIMEOUT`]. SQLite's own `busy_timeout` sleeps up to 100 ms at a time,
/// which would make the baseline slower for a reason that has nothing to do with batching.
fn short_waits() -> impl FnMut(i32) -> bool + Send + 'static {
    let mut started = Instant::now();
    move |attempt| {
        if attempt == 0 {
            started = Instant::now();
        }
        let ceiling_us = (50u64 << attempt.clamp(0, 6) as u32).min(2000);
        std::thread::sleep(Duration::from_micros(fastrand::u64(ceiling_us / 2..=ceiling_us)));
        started.elapsed() < BUSY_TIMEOUT
    }
}

/// The in-memory floor of a shared cache: a `HashMap` behind a `Mutex`, holding values as
/// `Arc<str>` so a read clones no bytes (what easycaching's LRU hands out too).
#[derive(Default)]
pub struct MutexMap {
    map: Mutex<HashMap<String, Arc<str>>>,
}

impl MutexMap {
    /// Stores `value` under `key`.
    pub fn set(&self, key: &str, value: &str) {
        self.map.lock().unwrap().insert(key.to_owned(), value.into());
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<Arc<str>> {
        self.map.lock().unwrap().get(key).cloned()
    }
}

/// SQLite through rusqlite as one would write it by hand, with easycaching's `entries` and
/// `queue_items` tables and pragmas (WAL, `synchronous` as given, the same way of waiting for
/// locks): one connection, one cached prepared statement per operation, autocommit (one
/// transaction per write). Page size and checkpoint interval are SQLite's defaults, what a
/// user of plain SQLite gets.
pub struct RawSqlite {
    conn: Connection,
}

/// The cache id every raw row uses, as if it were easycaching's first cache.
const RAW_CACHE_ID: i64 = 1;

impl RawSqlite {
    /// Opens (creating) the database at `path`; `synchronous` is `"FULL"` or `"NORMAL"`.
    pub fn open(path: &Path, synchronous: &str) -> Result<RawSqlite> {
        RawSqlite::open_with_pages(path, synchronous, None)
    }

    /// As [`RawSqlite::open`], creating a new file with pages of `page_size` bytes, or of
    /// SQLite's default size when `None`.
    pub fn open_with_pages(path: &Path, synchronous: &str, page_size: Option<u32>) -> Result<RawSqlite> {
        let mut conn = Connection::open(path)?;
        conn.busy_handler(Some(short_waits()))?;
        if let Some(page_size) = page_size {
            // Before WAL is set: a database in WAL mode keeps the page size it has.
            conn.execute_batch(&format!("PRAGMA page_size = {page_size}"))?;
        }
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        anyhow::ensure!(mode.eq_ignore_ascii_case("wal"), "the raw baseline needs WAL, got {mode}");
        conn.execute_batch(&format!(
            "PRAGMA synchronous = {synchronous};
             CREATE TABLE IF NOT EXISTS entries (
                 id       INTEGER PRIMARY KEY,
                 cache_id INTEGER NOT NULL,
                 key      TEXT NOT NULL,
                 value    TEXT NOT NULL,
                 UNIQUE (cache_id, key)
             );
             CREATE TABLE IF NOT EXISTS queue_items (
                 id       INTEGER PRIMARY KEY,
                 queue_id INTEGER NOT NULL,
                 value    TEXT NOT NULL
             );
             CREATE INDEX IF NOT EXISTS queue_items_by_queue ON queue_items (queue_id);"
        ))?;
        Ok(RawSqlite { conn })
    }

    /// Appends an item to a queue, in its own transaction.
    pub fn put(&self, value: &str) -> Result<()> {
        self.conn
            .prepare_cached("INSERT INTO queue_items (queue_id, value) VALUES (?1, ?2)")?
            .execute(params![RAW_CACHE_ID, value])?;
        Ok(())
    }

    /// Removes and returns the oldest item of the queue, in its own transaction.
    pub fn take(&self) -> Result<Option<String>> {
        Ok(self
            .conn
            .prepare_cached(
                "DELETE FROM queue_items WHERE id =
                   (SELECT id FROM queue_items WHERE queue_id = ?1 ORDER BY id LIMIT 1)
                 RETURNING value",
            )?
            .query_row([RAW_CACHE_ID], |row| row.get(0))
            .optional()?)
    }

    /// Upserts one entry in its own transaction.
    pub fn set(&self, key: &str, value: &str) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO entries (cache_id, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (cache_id, key) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![RAW_CACHE_ID, key, value])?;
        Ok(())
    }

    /// Upserts many entries in one transaction (for filling).
    pub fn set_many(&mut self, entries: impl IntoIterator<Item = (String, String)>) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut upsert = tx.prepare_cached(
                "INSERT INTO entries (cache_id, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (cache_id, key) DO UPDATE SET value = excluded.value",
            )?;
            for (key, value) in entries {
                upsert.execute(params![RAW_CACHE_ID, key, value])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The size of the database's pages, in bytes.
    pub fn page_size(&self) -> Result<u32> {
        Ok(self.conn.query_row("PRAGMA page_size", [], |row| row.get(0))?)
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .prepare_cached("SELECT value FROM entries WHERE cache_id = ?1 AND key = ?2")?
            .query_row(params![RAW_CACHE_ID, key], |row| row.get(0))
            .optional()?)
    }
}

/// Raw rusqlite batching as well as writers that wait for their acknowledgement allow, a
/// reference for what group commit can reach on a machine: each of `writers` threads hands its
/// upsert in and waits, and every commit carries one write of each of them, the most such
/// writers can offer it. The first writer to find no batch running leads the next one: it
/// yields the processor until every writer has queued its write (or the gathering wait has
/// passed, which happens only once the writers stop), commits them in one transaction of
/// [`RawSqlite`]'s upserts, and wakes the others with one call. No change log, no counts, no
/// LRU: only the batching and the SQLite work every durable write must do.
pub struct PerfectBatches {
    raw: Mutex<RawSqlite>,
    gather: Mutex<Gather>,
    committed: Condvar,
    writers: usize,
    gather_wait: Duration,
}

/// The longest a leader of [`PerfectBatches`] waits for the writers of its batch by default:
/// as long as easycaching's group commit waits at most.
pub const GATHER_WAIT: Duration = Duration::from_millis(2);

/// The writes of [`PerfectBatches`] waiting for a commit, and how far commits have come.
#[derive(Default)]
struct Gather {
    queued: Vec<(String, String)>,
    /// The number of the last write queued; writes are numbered from 1 as they are queued.
    last_queued: u64,
    /// Every write numbered up to this one has been committed.
    committed_up_to: u64,
    leading: bool,
    /// The batches committed so far.
    commits: u64,
    /// The numbers of the writes of the last batch that failed to commit, and why, for its
    /// writers.
    failed: Option<(RangeInclusive<u64>, String)>,
}

impl PerfectBatches {
    /// Batches the writes of `writers` threads into `raw`, a leader waiting at most
    /// `gather_wait` for them.
    pub fn new(raw: RawSqlite, writers: usize, gather_wait: Duration) -> PerfectBatches {
        PerfectBatches {
            raw: Mutex::new(raw),
            gather: Mutex::new(Gather::default()),
            committed: Condvar::new(),
            writers,
            gather_wait,
        }
    }

    /// The size of the database's pages, in bytes.
    pub fn page_size(&self) -> Result<u32> {
        self.raw.lock().unwrap().page_size()
    }

    /// The writes committed so far, on average, by each commit.
    pub fn writes_per_commit(&self) -> f64 {
        let gather = self.gather.lock().unwrap();
        gather.committed_up_to as f64 / gather.commits.max(1) as f64
    }

    /// The value under `key`, read outside any batch.
    pub fn get(&self, key: &str) -> Result<Option<String>> {
        self.raw.lock().unwrap().get(key)
    }

    /// Upserts `value` under `key` with the next batch, and returns once it has committed.
    pub fn set(&self, key: &str, value: &str) -> Result<()> {
        let mut gather = self.gather.lock().unwrap();
        gather.queued.push((key.to_owned(), value.to_owned()));
        gather.last_queued += 1;
        let mine = gather.last_queued;
        loop {
            if gather.committed_up_to >= mine {
                return match &gather.failed {
                    Some((writes, error)) if writes.contains(&mine) => {
                        Err(anyhow::anyhow!("the batch failed to commit: {error}"))
                    }
                    _ => Ok(()),
                };
            }
            if gather.leading {
                gather = self.committed.wait(gather).unwrap();
                continue;
            }
            gather.leading = true;
            let deadline = Instant::now() + self.gather_wait;
            while gather.queued.len() < self.writers && Instant::now() < deadline {
                drop(gather);
                std::thread::yield_now();
                gather = self.gather.lock().unwrap();
            }
            let batch = std::mem::take(&mut gather.queued);
            let writes = gather.committed_up_to + 1..=gather.last_queued;
            drop(gather);
            let outcome = self.raw.lock().unwrap().set_many(batch);
            gather = self.gather.lock().unwrap();
            gather.commits += 1;
            gather.committed_up_to = *writes.end();
            if let Err(error) = outcome {
                gather.failed = Some((writes, error.to_string()));
            }
            gather.leading = false;
            self.committed.notify_all();
        }
    }
}

/// The design of Spin's SQLite key-value store (`spin-key-value-sqlite`): one table keyed by
/// (store, key) with bytes values, one connection behind a `Mutex`, and SQLite's defaults: a
/// rollback journal and `synchronous = FULL`, so every write is a transaction with its own
/// journal file and several fsyncs. No in-memory cache in front.
pub struct SpinStore {
    conn: Mutex<Connection>,
}

/// The store name every Spin row uses.
const SPIN_STORE: &str = "default";

impl SpinStore {
    /// Opens (creating) the database at `path` as Spin does.
    pub fn open(path: &Path) -> Result<SpinStore> {
        let conn = Connection::open(path)?;
        conn.execute(
            "CREATE TABLE IF NOT EXISTS spin_key_value (
                 store TEXT NOT NULL,
                 key   TEXT NOT NULL,
                 value BLOB NOT NULL,
                 PRIMARY KEY (store, key)
             )",
            [],
        )?;
        Ok(SpinStore { conn: Mutex::new(conn) })
    }

    /// The journal mode and `synchronous` level in force, to show they are SQLite's defaults.
    pub fn settings(&self) -> Result<(String, i64)> {
        let conn = self.conn.lock().unwrap();
        let journal = conn.query_row("PRAGMA journal_mode", [], |row| row.get(0))?;
        let synchronous = conn.query_row("PRAGMA synchronous", [], |row| row.get(0))?;
        Ok((journal, synchronous))
    }

    /// Stores `value` under `key`.
    pub fn set(&self, key: &str, value: &[u8]) -> Result<()> {
        self.conn
            .lock()
            .unwrap()
            .prepare_cached(
                "INSERT INTO spin_key_value (store, key, value) VALUES ($1, $2, $3)
                 ON CONFLICT(store, key) DO UPDATE SET value = $3",
            )?
            .execute(params![SPIN_STORE, key, value])?;
        Ok(())
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .conn
            .lock()
            .unwrap()
            .prepare_cached("SELECT value FROM spin_key_value WHERE store = $1 AND key = $2")?
            .query_row(params![SPIN_STORE, key], |row| row.get(0))
            .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every commit of [`PerfectBatches`] carries one write of each writer, and every write is
    /// stored.
    #[test]
    fn perfect_batches_commit_one_write_of_every_writer_at_once() -> Result<()> {
        const WRITERS: usize = 4;
        const WRITES: u64 = 25;
        let dir = tempfile::tempdir()?;
        let raw = RawSqlite::open_with_pages(&dir.path().join("batched.db"), "FULL", Some(2048))?;
        // A wait no writer of this test outlasts, however busy the machine: it ends only
        // when every writer has queued.
        let batched = PerfectBatches::new(raw, WRITERS, Duration::from_secs(30));
        std::thread::scope(|scope| {
            for writer in 0..WRITERS {
                let batched = &batched;
                scope.spawn(move || {
                    for i in 0..WRITES {
                        batched.set(&format!("key-{writer}"), &format!("{i}")).expect("set");
                    }
                });
            }
        });
        assert_eq!(batched.writes_per_commit(), WRITERS as f64);
        for writer in 0..WRITERS {
            assert_eq!(batched.get(&format!("key-{writer}"))?, Some(format!("{}", WRITES - 1)));
        }
        Ok(())
    }
}
