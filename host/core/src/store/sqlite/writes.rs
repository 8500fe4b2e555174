//! Each kind of [`Write`] as SQL, run inside the batch's transaction.
//!
//! Every write keeps the entry and byte counts on its cache or queue row exact, checks the
//! quota against them, and logs each cache key it changes for other processes' LRUs.
//!
//! Entries that expire (`entries.expires_at`, unix ms) are absent to every write that reads
//! (increment, compare-and-swap, expire, the count a delete or clear answers) from their
//! expiry on, before their rows are gone. The rows are reclaimed by [`Batch::sweep`], a
//! bounded number per transaction, and by a write that would otherwise go over its cache's
//! quota; either removes them as a delete does, counts and change log included.

use std::cell::Cell;

use rusqlite::{Connection, OptionalExtension, Params, Statement, params};

use super::DbFile;
use super::statements::EntryStatements;
use super::tables::{self, CACHES, Delta, QUEUES, Table};
use crate::limits::MAX_PAGE_BYTES;
use crate::store::rules::{self, EntryWrites, cache_deleted, queue_deleted};
use crate::store::{CacheId, KeyRange, Outcome, PREFIX_DELETE_LOGGED_KEYS, QueueId, Stats, Target, Write};
use crate::{Clock, Error, Json, Leased, Quota, Receipt};

/// `change_log.kind`: one key was written or removed.
pub(super) const KIND_KEY: i64 = 0;
/// `change_log.kind`: the whole cache was cleared.
pub(super) const KIND_CLEARED: i64 = 1;
/// `change_log.kind`: the cache was deleted.
pub(super) const KIND_DROPPED: i64 = 2;
/// `change_log.kind`: several keys of one cache were written or removed in one transaction,
/// by one writer; `key` holds them as a JSON array of strings (see [`Batch::log_changes`]).
/// Such a row's `seq` is the row before it's plus the number of keys, so that `seq` counts
/// changes, not rows, as with one row a key: the pruning keeps as many changes, and a reader
/// tells that it fell behind by the first `seq` the oldest row stands for
/// ([`CHANGE_LOG_SPAN`]).
pub(super) const KIND_KEYS: i64 = 3;

/// The span of the change log: the first `seq` it still stands for (the oldest row's, less
/// the keys before its last in a [`KIND_KEYS`] row; a row that is not a list, which this build
/// never writes, stands for one), and the newest. Both NULL when the log is empty.
pub(super) const CHANGE_LOG_SPAN: &str = "SELECT
        (SELECT seq + 1
            - CASE WHEN kind = 3 AND json_valid(key) THEN max(json_array_length(key), 1) ELSE 1 END
         FROM change_log ORDER BY seq LIMIT 1),
        (SELECT max(seq) FROM change_log)";

/// `change_log.writer` of the changes no process skips when it reads the log: those of writes
/// committed for another process (see `handoffs`). Every process names its own changes with a
/// writer id of its own, never this one.
pub(super) const NOBODY: i64 = 0;

/// A write failed: because of what it asked (ours), or because SQLite failed.
pub(super) enum WriteError {
    Refused(Error),
    Sql(rusqlite::Error),
}

impl From<rusqlite::Error> for WriteError {
    fn from(error: rusqlite::Error) -> Self {
        WriteError::Sql(error)
    }
}

impl From<Error> for WriteError {
    fn from(error: Error) -> Self {
        WriteError::Refused(error)
    }
}

impl WriteError {
    pub(super) fn into_error(self, db: &DbFile) -> Error {
        match self {
            WriteError::Refused(error) => error,
            WriteError::Sql(error) => db.error(error),
        }
    }
}

type WriteResult = Result<Outcome, WriteError>;

/// The writes of one transaction: the connection with its statements, whose changes they
/// log, and where the change log ends.
pub(super) struct Batch<'b, 'c> {
    conn: &'c Connection,
    statements: &'b mut EntryStatements<'c>,
    writer: i64,
    /// The changes of the writes applied so far, oldest first, logged together by
    /// [`Batch::log_changes`] before the commit. A write that fails takes its own back.
    unlogged: Vec<Unlogged>,
    /// The `seq` of the newest change-log row this batch wrote, which is the change-log cursor
    /// after the commit (no need to ask for `max(seq)`).
    last_logged: Option<i64>,
    /// Now, in unix ms, as the batch's writes tell expiry: read once per batch, when first
    /// needed (a batch of plain sets never reads the clock).
    now: Cell<Option<i64>>,
    /// The store's clock, read once per batch into `now`.
    clock: &'b Clock,
}

/// A change a write made, for the change log: its writer, its cache, its kind and the key of
/// a [`KIND_KEY`] change.
struct Unlogged {
    writer: i64,
    cache: CacheId,
    kind: i64,
    key: Option<String>,
}

/// The most expired rows one sweep removes: a transaction never holds an unbounded delete.
pub(super) const SWEEP_ROWS: i64 = 256;

/// A sweep: removes up to `?2` rows expired by `?1`, soonest expired first, through the index
/// of expiries (only rows with an expiry are in it, so this costs nothing for the others).
const SWEEP: &str = "DELETE FROM entries WHERE id IN (
        SELECT id FROM entries INDEXED BY entries_by_expiry
        WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2)
    RETURNING cache_id, key, octet_length(key) + octet_length(value)";

/// A sweep of cache `?3` alone, for a write that would go over its quota.
const SWEEP_CACHE: &str = "DELETE FROM entries WHERE id IN (
        SELECT id FROM entries INDEXED BY entries_expiring_by_cache
        WHERE cache_id = ?3 AND expires_at <= ?1 ORDER BY expires_at LIMIT ?2)
    RETURNING cache_id, key, octet_length(key) + octet_length(value)";

/// Removes a cache's keys from `?2` to before `?3`, answering each one, its size and expiry.
const DELETE_RANGE: &str = "DELETE FROM entries WHERE cache_id = ?1 AND key >= ?2 AND key < ?3
    RETURNING key, octet_length(key) + octet_length(value), expires_at";

/// Removes a cache's keys from `?2` on, answering each one, its size and expiry.
const DELETE_FROM: &str = "DELETE FROM entries WHERE cache_id = ?1 AND key >= ?2
    RETURNING key, octet_length(key) + octet_length(value), expires_at";

/// How many entries of cache `?1` have expired by `?2`, and their bytes, counted through the
/// index of the cache's expiries: as many rows as wait to be swept, however large the cache.
pub(super) const EXPIRED_IN_CACHE: &str =
    "SELECT count(*), coalesce(sum(octet_length(key) + octet_length(value)), 0)
    FROM entries INDEXED BY entries_expiring_by_cache WHERE cache_id = ?1 AND expires_at <= ?2";

impl<'b, 'c> Batch<'b, 'c> {
    /// A batch on `conn`, which is in a write transaction, with the entry statements prepared
    /// on it, logging its changes as `writer`.
    pub(super) fn new(
        conn: &'c Connection,
        statements: &'b mut EntryStatements<'c>,
        writer: i64,
        clock: &'b Clock,
    ) -> Self {
        Batch {
            conn,
            statements,
            writer,
            unlogged: Vec::new(),
            last_logged: None,
            now: Cell::new(None),
            clock,
        }
    }

    /// Now, in unix ms, as this batch tells expiry.
    pub(super) fn now(&self) -> i64 {
        if let Some(now) = self.now.get() {
            return now;
        }
        let now = self.clock.now_ms();
        self.now.set(Some(now));
        now
    }

    /// The `seq` of the newest change-log row this batch wrote, if it wrote any.
    pub(super) fn last_logged(&self) -> Option<i64> {
        self.last_logged
    }

    /// Writes the change-log rows of every change the batch's writes made, once they are all
    /// in, before the commit: a row per cleared or deleted cache, and the keys of one writer
    /// and cache in one row, of [`KIND_KEYS`] when there are several. A batch of many sets
    /// under one cache (every commit of concurrent writers) inserts one row, not one a key:
    /// an `INSERT` costs about as much as the `UPDATE` of the value it logs. The order of the
    /// rows is not the order of the changes: each only tells other processes' LRUs to forget,
    /// which no order changes.
    pub(super) fn log_changes(&mut self) -> rusqlite::Result<()> {
        let unlogged = std::mem::take(&mut self.unlogged);
        // A lone change (a lone `set`, the common batch): its row, with nothing to group.
        if let [Unlogged { writer, cache, kind, key }] = unlogged.as_slice() {
            return self.insert_log_row(*writer, *cache, *kind, key.as_deref());
        }
        // The keys by (writer, cache), in the order each pair first changed one.
        let mut keys: Vec<(i64, CacheId, Vec<String>)> = Vec::new();
        for Unlogged { writer, cache, kind, key } in unlogged {
            match key {
                Some(key) if kind == KIND_KEY => {
                    match keys.iter_mut().find(|(w, c, _)| *w == writer && *c == cache) {
                        Some((_, _, group)) => group.push(key),
                        None => keys.push((writer, cache, vec![key])),
                    }
                }
                key => self.insert_log_row(writer, cache, kind, key.as_deref())?,
            }
        }
        for (writer, cache, mut group) in keys {
            group.sort_unstable();
            group.dedup();
            if let [key] = group.as_slice() {
                self.insert_log_row(writer, cache, KIND_KEY, Some(key))?;
            } else {
                let list = serde_json::to_string(&group)
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
                let seq = self.statements.log_changes.insert(params![
                    writer,
                    cache.0,
                    KIND_KEYS,
                    list,
                    group.len() as i64
                ])?;
                self.last_logged = Some(seq);
            }
        }
        Ok(())
    }

    fn insert_log_row(
        &mut self,
        writer: i64,
        cache: CacheId,
        kind: i64,
        key: Option<&str>,
    ) -> rusqlite::Result<()> {
        let seq = self.statements.log_change.insert(params![writer, cache.0, kind, key])?;
        self.last_logged = Some(seq);
        Ok(())
    }

    /// Applies one write. The caller wraps it in a savepoint (or rolls the transaction back),
    /// so an error leaves no trace.
    pub(super) fn apply(&mut self, write: &Write) -> WriteResult {
        self.forgetting_log_on_error(|batch| batch.dispatch(write))
    }

    /// Runs `apply`; should it fail, forgets the changes it made, which are rolled back with
    /// it.
    fn forgetting_log_on_error<T, E>(
        &mut self,
        apply: impl FnOnce(&mut Self) -> Result<T, E>,
    ) -> Result<T, E> {
        let changes_before = self.unlogged.len();
        let result = apply(self);
        if result.is_err() {
            self.unlogged.truncate(changes_before);
        }
        result
    }

    /// Runs `write`, by its kind; its callers forget its change-log rows should it fail.
    fn dispatch(&mut self, write: &Write) -> WriteResult {
        let conn = self.conn;
        match write {
            Write::CreateCache { name, quota } => create(conn, &CACHES, name, quota),
            Write::DropCache { name } => self.drop_cache(name),
            Write::Set { cache, entries, expires_at, quota } => self.set(cache, entries, *expires_at, quota),
            Write::Expire { cache, key, expires_at } => self.expire(cache, key, *expires_at),
            Write::Increment { cache, key, by, max_value_bytes, quota } => {
                self.increment(cache, key, *by, *max_value_bytes, quota)
            }
            Write::CompareAndSwap { cache, key, expected, value, quota } => {
                self.compare_and_swap(cache, key, expected.as_ref(), value.as_ref(), quota)
            }
            Write::Delete { cache, keys } => self.delete(cache, keys),
            Write::Clear { cache, prefix } if prefix.is_empty() => self.clear(cache),
            Write::Clear { cache, prefix } => self.clear_prefix(cache, prefix),
            Write::CreateQueue { name, quota } => create(conn, &QUEUES, name, quota),
            Write::DropQueue { name } => drop_queue(conn, name),
            Write::Put { queue, values, quota } => put(conn, queue, values, quota),
            Write::Take { queue, max } => take(conn, queue, self.now(), *max),
            Write::GiveBack { queue, values } => give_back(conn, queue, values),
            Write::ClearQueue { queue } => clear_queue(conn, queue),
            Write::Lease { queue, lease_ms, max } => lease(conn, queue, self.now(), *lease_ms, *max),
            Write::Ack { queue, receipt } => ack(conn, queue, receipt),
            Write::Release { queue, receipt } => release(conn, queue, receipt),
            Write::Extend { queue, receipt, lease_ms } => extend(conn, queue, receipt, self.now(), *lease_ms),
        }
    }

    /// Applies a write handed over by another process (see `handoffs`) and records that it
    /// was committed for `writer` (the poster's id) in the `handoffs` row `row` (see
    /// `Handoffs::row_of`). Its changes are logged
    /// under [`NOBODY`], so that every process's LRU forgets the keys, the poster's too: a
    /// poster that gave up waiting (see `HandedOver::TimedOut`) may have read a key since,
    /// and must not keep serving that. Answers how many keys it removed (0 for a set).
    pub(super) fn apply_handed_over(
        &mut self,
        writer: i64,
        row: i64,
        seq: u64,
        write: &Write,
    ) -> Result<u64, WriteError> {
        self.forgetting_log_on_error(|batch| {
            let own = std::mem::replace(&mut batch.writer, NOBODY);
            let result = batch.dispatch(write);
            batch.writer = own;
            let count = match result? {
                Outcome::Count(count) => count,
                _ => 0,
            };
            batch
                .conn
                .prepare_cached("REPLACE INTO handoffs (slot, writer, seq, count) VALUES (?1, ?2, ?3, ?4)")?
                .execute(params![row, writer, seq as i64, count as i64])?;
            Ok(count)
        })
    }

    fn drop_cache(&mut self, name: &str) -> WriteResult {
        let id = CACHES.delete(self.conn, name)?;
        if let Some(id) = id {
            self.log(CacheId(id), KIND_DROPPED, None);
        }
        Ok(Outcome::Dropped(id))
    }

    /// Sets when the entry under `key` expires, unless it is absent or already expired.
    fn expire(&mut self, cache: &Target<CacheId>, key: &str, expires_at: Option<i64>) -> WriteResult {
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE entries SET expires_at = ?3
                 WHERE cache_id = ?1 AND key = ?2 AND (expires_at IS NULL OR expires_at > ?4)",
            )?
            .execute(params![cache.id.0, key, expires_at, self.now()])?;
        if changed == 0 {
            // Nothing to change: still an error when the cache is gone.
            cache_stats(self.conn, cache)?;
            return Ok(Outcome::Found(false));
        }
        self.log(cache.id, KIND_KEY, Some(key));
        Ok(Outcome::Found(true))
    }

    /// Adds `delta` to the counts of `cache` and checks `quota` against them (see
    /// [`add_stats_within`]), through the statement held prepared. Should the write go over
    /// the quota, the cache's expired entries (up to [`SWEEP_ROWS`]) are swept first and the
    /// quota checked again: entries that have expired hold no room. (The sweep is undone with
    /// the write, should it still be refused.)
    fn add_cache_stats(
        &mut self,
        cache: &Target<CacheId>,
        delta: Delta,
        quota: &Quota,
    ) -> Result<(), WriteError> {
        let of = CountsOf { table: &CACHES, id: cache.id.0, name: &cache.name };
        let add_stats = &mut self.statements.add_cache_stats;
        match add_stats_within(self.conn, of, add_stats, delta, quota, || cache_deleted(cache)) {
            Err(WriteError::Refused(Error::QuotaExceeded(_))) if self.sweep_cache(cache.id)? > 0 => {
                let after = cache_stats(self.conn, cache)?;
                check_quota(self.conn, &CACHES, quota, &cache.name, delta.undo(after), after)
            }
            other => other,
        }
    }

    /// Removes up to [`SWEEP_ROWS`] entries expired by now, from every cache, soonest expired
    /// first, as [`Batch::delete`] removes entries: each cache's counts go down by what it
    /// lost, and each key is logged for other processes' LRUs. Answers how many it removed.
    pub(super) fn sweep(&mut self) -> rusqlite::Result<u64> {
        let now = self.now();
        self.forgetting_log_on_error(|batch| batch.remove_expired(SWEEP, params![now, SWEEP_ROWS]))
    }

    /// [`Batch::sweep`] of one cache.
    fn sweep_cache(&mut self, cache: CacheId) -> rusqlite::Result<u64> {
        let now = self.now();
        self.remove_expired(SWEEP_CACHE, params![now, SWEEP_ROWS, cache.0])
    }

    fn remove_expired(&mut self, sql: &str, params: impl Params) -> rusqlite::Result<u64> {
        let removed: Vec<(i64, String, i64)> = self
            .conn
            .prepare_cached(sql)?
            .query_map(params, |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut deltas: std::collections::BTreeMap<i64, Delta> = Default::default();
        for (cache, key, size) in &removed {
            let delta = deltas.entry(*cache).or_default();
            delta.entries -= 1;
            delta.bytes -= size;
            self.log(CacheId(*cache), KIND_KEY, Some(key));
        }
        for (cache, delta) in deltas {
            // A cache deleted meanwhile took its entries with it: nothing to count.
            tables::add_stats_with(&mut self.statements.add_cache_stats, cache, delta)?;
        }
        Ok(removed.len() as u64)
    }

    fn clear(&mut self, cache: &Target<CacheId>) -> WriteResult {
        let stats = cache_stats(self.conn, cache)?;
        // Entries that had expired were not there to clear.
        let expired: i64 = self
            .conn
            .prepare_cached(EXPIRED_IN_CACHE)?
            .query_row(params![cache.id.0, self.now()], |row| row.get(0))?;
        CACHES.delete_contents(self.conn, cache.id.0)?;
        CACHES.set_stats(self.conn, cache.id.0, Stats::default())?;
        self.log(cache.id, KIND_CLEARED, None);
        Ok(Outcome::Count(stats.entries.saturating_sub(expired.max(0) as u64)))
    }

    /// Removes the entries whose keys begin with `prefix` (not empty): one range of the index,
    /// in one statement; their counts come off the cache's. Other processes forget the keys
    /// removed, or the cache's whole LRU when there were many (see
    /// `PREFIX_DELETE_LOGGED_KEYS`).
    fn clear_prefix(&mut self, cache: &Target<CacheId>, prefix: &str) -> WriteResult {
        cache_stats(self.conn, cache)?;
        let end = KeyRange::new(prefix, None).end();
        let mut statement =
            self.conn.prepare_cached(if end.is_some() { DELETE_RANGE } else { DELETE_FROM })?;
        let mut parameters: Vec<&dyn rusqlite::ToSql> = vec![&cache.id.0, &prefix];
        if let Some(end) = &end {
            parameters.push(end);
        }
        let mut rows = statement.query(&*parameters)?;
        let (mut removed, mut bytes, mut live) = (0, 0, 0);
        // The keys to log, while few enough (see `PREFIX_DELETE_LOGGED_KEYS`).
        let mut logged = Some(Vec::new());
        let now = self.now();
        while let Some(row) = rows.next()? {
            removed += 1;
            bytes += row.get::<_, i64>(1)?;
            // Entries that had expired were not there to remove.
            live += u64::from(row.get::<_, Option<i64>>(2)?.is_none_or(|at| at > now));
            logged = logged.filter(|keys: &Vec<String>| keys.len() < PREFIX_DELETE_LOGGED_KEYS);
            if let Some(keys) = &mut logged {
                keys.push(row.get(0)?);
            }
        }
        drop(rows);
        if removed == 0 {
            return Ok(Outcome::Count(0));
        }
        tables::add_stats_with(
            &mut self.statements.add_cache_stats,
            cache.id.0,
            Delta { entries: -removed, bytes: -bytes },
        )?;
        match logged {
            Some(keys) => keys.iter().for_each(|key| self.log(cache.id, KIND_KEY, Some(key))),
            None => self.log(cache.id, KIND_CLEARED, None),
        }
        Ok(Outcome::Count(live))
    }

    /// Notes a change for the change log, written by [`Batch::log_changes`].
    fn log(&mut self, cache: CacheId, kind: i64, key: Option<&str>) {
        self.unlogged.push(Unlogged { writer: self.writer, cache, kind, key: key.map(str::to_owned) });
    }
}

fn create(conn: &Connection, table: &Table, name: &str, quota: &Quota) -> WriteResult {
    if let Some(id) = table.find(conn, name)? {
        return Ok(Outcome::Created { id, created: false });
    }
    // A new cache or queue counts its name toward a shared quota.
    let named = Stats { entries: 0, bytes: name.len() as u64 };
    let id = table.insert(conn, name)?;
    check_quota(conn, table, quota, name, Stats::default(), named)?;
    Ok(Outcome::Created { id, created: true })
}

/// Checks a write that took a cache or queue from `before` to `after` against `quota`: the
/// cache's own usage, or its group's when the quota is shared. Called once the write is in
/// place (the caller undoes it on an error), so the group's usage read here includes it.
fn check_quota(
    conn: &Connection,
    table: &Table,
    quota: &Quota,
    name: &str,
    before: Stats,
    after: Stats,
) -> Result<(), WriteError> {
    rules::check_quota(quota, name, before, after, |prefix| Ok(table.usage_by_prefix(conn, prefix)?))
}

fn drop_queue(conn: &Connection, name: &str) -> WriteResult {
    Ok(Outcome::Dropped(QUEUES.delete(conn, name)?))
}

/// The batch's reads and writes of entries, of which increments and compare-and-swaps are made
/// (see [`EntryWrites`]): they read inside the batch's transaction, never from an LRU.
impl EntryWrites for Batch<'_, '_> {
    type Error = WriteError;

    fn stored(
        &mut self,
        cache: &Target<CacheId>,
        key: &str,
    ) -> Result<Option<(Json, Option<i64>)>, WriteError> {
        let stored: Option<(String, Option<i64>)> = self
            .conn
            .prepare_cached(
                "SELECT value, expires_at FROM entries
                 WHERE cache_id = ?1 AND key = ?2 AND (expires_at IS NULL OR expires_at > ?3)",
            )?
            .query_row(params![cache.id.0, key, self.now()], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?;
        let Some((value, expires_at)) = stored else { return Ok(None) };
        Ok(Some((super::stored_json(value)?, expires_at)))
    }

    /// Per entry, one index lookup and then either an update by rowid or an insert (an
    /// upsert would look the key up twice), and one change-log row; the counts once. Each
    /// entry gets `expires_at` (`None`: never), in the same statement that stores its value.
    /// A row found expired is replaced in place: it was still counted.
    fn set(
        &mut self,
        cache: &Target<CacheId>,
        entries: &[(String, Json)],
        expires_at: Option<i64>,
        quota: &Quota,
    ) -> WriteResult {
        let mut delta = Delta::default();
        for (key, value) in entries {
            let statements = &mut *self.statements;
            let found: Option<(i64, i64, bool)> = statements
                .find
                .query_row(params![cache.id.0, key], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
                .optional()?;
            match found {
                // Neither the entry nor the write has an expiry (the common case): the value
                // alone is updated, and SQLite leaves the indexes of expiries alone.
                Some((row, old_size, false)) if expires_at.is_none() => {
                    execute_releasing(&mut statements.update, params![row, value.as_str()], value)?;
                    delta.bytes += value.len() as i64 - old_size;
                }
                Some((row, old_size, _)) => {
                    execute_releasing(
                        &mut statements.update_expiring,
                        params![row, value.as_str(), expires_at],
                        value,
                    )?;
                    delta.bytes += value.len() as i64 - old_size;
                }
                None => {
                    execute_releasing(
                        &mut statements.insert,
                        params![cache.id.0, key, value.as_str(), expires_at],
                        value,
                    )?;
                    delta.entries += 1;
                    delta.bytes += (key.len() + value.len()) as i64;
                }
            }
            self.log(cache.id, KIND_KEY, Some(key));
        }
        // Values replaced by values of the same size change no count, and a write that does
        // not grow the usage passes any quota: the counts row is left alone, one statement and
        // one WAL page fewer. The cache exists, since its entries were found (they never
        // outlive it); with no entry at all, the update below is what finds out.
        if delta.is_zero() && !entries.is_empty() {
            return Ok(Outcome::Done);
        }
        self.add_cache_stats(cache, delta, quota)?;
        Ok(Outcome::Done)
    }

    fn delete(&mut self, cache: &Target<CacheId>, keys: &[String]) -> WriteResult {
        let mut remove = self.conn.prepare_cached(
            "DELETE FROM entries WHERE cache_id = ?1 AND key = ?2
             RETURNING octet_length(key) + octet_length(value), expires_at",
        )?;
        let mut delta = Delta::default();
        // The entries removed that had not expired: an expired one is reclaimed here all the
        // same, but was not there for the caller to remove.
        let mut live = 0u64;
        for key in keys {
            let removed: Option<(i64, Option<i64>)> = remove
                .query_row(params![cache.id.0, key], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?;
            if let Some((size, expires_at)) = removed {
                delta.entries -= 1;
                delta.bytes -= size;
                live += u64::from(!crate::clock::expired(expires_at, self.now()));
                self.log(cache.id, KIND_KEY, Some(key));
            }
        }
        if delta.entries == 0 {
            // Nothing removed: still an error when the cache is gone.
            cache_stats(self.conn, cache)?;
        } else {
            self.add_cache_stats(cache, delta, &Quota::UNLIMITED)?;
        }
        Ok(Outcome::Count(live))
    }

    fn check_cache(&mut self, cache: &Target<CacheId>) -> Result<(), WriteError> {
        cache_stats(self.conn, cache).map(drop)
    }
}

fn cache_stats(conn: &Connection, cache: &Target<CacheId>) -> Result<Stats, WriteError> {
    CACHES.stats(conn, cache.id.0)?.ok_or_else(|| cache_deleted(cache).into())
}

/// The counts row of one cache or queue, and the name its errors give.
struct CountsOf<'a> {
    table: &'a Table,
    id: i64,
    name: &'a str,
}

/// Adds `delta` to the counts of a cache or queue with `add_stats` (its table's statement),
/// then checks `quota` against them, reading them back only when there is a quota to check.
fn add_stats_within(
    conn: &Connection,
    of: CountsOf<'_>,
    add_stats: &mut Statement<'_>,
    delta: Delta,
    quota: &Quota,
    missing: impl FnOnce() -> Error,
) -> Result<(), WriteError> {
    if !tables::add_stats_with(add_stats, of.id, delta)? {
        return Err(missing().into());
    }
    if quota.is_unlimited() {
        return Ok(());
    }
    let after = of.table.stats(conn, of.id)?.ok_or_else(missing)?;
    check_quota(conn, of.table, quota, of.name, delta.undo(after), after)
}

/// [`add_stats_within`] for a queue, through the statement cache.
fn add_queue_stats_within(
    conn: &Connection,
    queue: &Target<QueueId>,
    delta: Delta,
    quota: &Quota,
) -> Result<(), WriteError> {
    let of = CountsOf { table: &QUEUES, id: queue.id.0, name: &queue.name };
    let mut add_stats = conn.prepare_cached(QUEUES.add_stats)?;
    add_stats_within(conn, of, &mut add_stats, delta, quota, || queue_deleted(queue))
}

/// Forgets all but the newest `retained` changes (a row of several keys goes once its last
/// key would, so at least `retained` are kept).
pub(super) fn prune_change_log(conn: &Connection, retained: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM change_log WHERE seq <= (SELECT max(seq) FROM change_log) - ?1")?
        .execute([retained])?;
    Ok(())
}

fn queue_stats(conn: &Connection, queue: &Target<QueueId>) -> Result<Stats, WriteError> {
    QUEUES.stats(conn, queue.id.0)?.ok_or_else(|| queue_deleted(queue).into())
}

fn put(conn: &Connection, queue: &Target<QueueId>, values: &[Json], quota: &Quota) -> WriteResult {
    let delta = Delta { entries: values.len() as i64, bytes: values.iter().map(|v| v.len() as i64).sum() };
    add_queue_stats_within(conn, queue, delta, quota)?;
    let mut insert = conn.prepare_cached("INSERT INTO queue_items (queue_id, value) VALUES (?1, ?2)")?;
    for value in values {
        execute_releasing(&mut insert, params![queue.id.0, value.as_str()], value)?;
    }
    Ok(Outcome::Done)
}

/// Values at least this long are unbound from a statement once it has run.
const LARGE_BINDING_BYTES: usize = 16 * 1024;

/// Runs `statement`, which binds `value` among `params`, and then unbinds `value` if it is
/// large, whether the statement succeeded or not. SQLite keeps its copy of a bound value until
/// the statement is bound again or finalized, and the statements of the write path live as
/// long as their connection: unbound, one large value would stay in memory once per statement
/// for as long as the process runs. Small values stay bound, as freeing them costs more than
/// keeping them.
fn execute_releasing(
    statement: &mut Statement<'_>,
    params: impl Params,
    value: &Json,
) -> rusqlite::Result<usize> {
    let executed = statement.execute(params);
    if value.len() >= LARGE_BINDING_BYTES {
        statement.clear_bindings();
    }
    executed
}

/// The ids and values of up to `max` of the oldest items of `queue` waiting at `now` (not
/// under a lease), stopping after the item that takes them to [`MAX_PAGE_BYTES`], as a page of
/// a scan: at least one item, however large. What [`take`] takes and [`lease`] leases.
fn front(
    conn: &Connection,
    queue: &Target<QueueId>,
    now: i64,
    max: usize,
) -> Result<Vec<(i64, Json)>, WriteError> {
    let mut oldest = conn.prepare_cached(
        "SELECT id, value FROM queue_items
         WHERE queue_id = ?1 AND (lease_ends IS NULL OR lease_ends <= ?3) ORDER BY id LIMIT ?2",
    )?;
    let mut rows = oldest.query(params![queue.id.0, max as i64, now])?;
    let mut front: Vec<(i64, Json)> = Vec::new();
    let mut bytes = 0;
    while bytes < MAX_PAGE_BYTES
        && let Some(row) = rows.next()?
    {
        // Checked before anything changes: a damaged item fails the write, and stays.
        let (id, value): (i64, Json) = (row.get(0)?, super::stored_json(row.get::<_, String>(1)?)?);
        bytes += value.len();
        front.push((id, value));
    }
    Ok(front)
}

fn take(conn: &Connection, queue: &Target<QueueId>, now: i64, max: usize) -> WriteResult {
    let taken = front(conn, queue, now, max)?;
    match taken.last() {
        None => {
            // Nothing taken: still an error when the queue is gone.
            queue_stats(conn, queue)?;
        }
        Some((last, _)) => {
            // The items taken are exactly this queue's items waiting up to the last one taken.
            conn.prepare_cached(
                "DELETE FROM queue_items
                 WHERE queue_id = ?1 AND id <= ?2 AND (lease_ends IS NULL OR lease_ends <= ?3)",
            )?
            .execute(params![queue.id.0, last, now])?;
            let delta = Delta {
                entries: -(taken.len() as i64),
                bytes: -taken.iter().map(|(_, v)| v.len() as i64).sum::<i64>(),
            };
            add_queue_stats_within(conn, queue, delta, &Quota::UNLIMITED)?;
        }
    }
    Ok(Outcome::Values(taken.into_iter().map(|(_, value)| value).collect()))
}

/// Inserts `values` before every item of every queue: below the smallest id in the table,
/// so they come out first, in order. Ids are the table's rowids, never reused while a row holds
/// one, so these collide with none; new items still go after the largest.
fn give_back(conn: &Connection, queue: &Target<QueueId>, values: &[Json]) -> WriteResult {
    if values.is_empty() {
        queue_stats(conn, queue)?;
        return Ok(Outcome::Done);
    }
    let delta = Delta { entries: values.len() as i64, bytes: values.iter().map(|v| v.len() as i64).sum() };
    add_queue_stats_within(conn, queue, delta, &Quota::UNLIMITED)?;
    let smallest: i64 =
        conn.query_row("SELECT COALESCE(MIN(id), 1) FROM queue_items", [], |row| row.get(0))?;
    let first = smallest
        .checked_sub(values.len() as i64)
        .ok_or_else(|| Error::Storage("no item ids are left below the oldest item".into()))?;
    let mut insert =
        conn.prepare_cached("INSERT INTO queue_items (id, queue_id, value) VALUES (?1, ?2, ?3)")?;
    for (id, value) in (first..).zip(values) {
        execute_releasing(&mut insert, params![id, queue.id.0, value.as_str()], value)?;
    }
    Ok(Outcome::Done)
}

/// Leases the items [`front`] finds (see [`Write::Lease`]): the items waiting up to the last
/// of them, in one statement.
fn lease(conn: &Connection, queue: &Target<QueueId>, now: i64, lease_ms: u64, max: usize) -> WriteResult {
    let items = front(conn, queue, now, max)?;
    let Some(&(last, _)) = items.last() else {
        // Nothing waits: still an error when the queue is gone.
        queue_stats(conn, queue)?;
        return Ok(Outcome::Leased(Vec::new()));
    };
    let ends = crate::clock::expiry(now, lease_ms);
    let token = crate::lease::new_token();
    let mut deliveries = conn
        .prepare_cached(
            "UPDATE queue_items SET lease_ends = ?4, lease_token = ?5, deliveries = deliveries + 1
             WHERE queue_id = ?1 AND id <= ?2 AND (lease_ends IS NULL OR lease_ends <= ?3)
             RETURNING id, deliveries",
        )?
        .query_map(params![queue.id.0, last, now, ends, token], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    deliveries.sort_unstable();
    if deliveries.iter().map(|&(id, _)| id).ne(items.iter().map(|&(id, _)| id)) {
        return Err(
            Error::Storage(format!("queue {:?}: the items leased are not those read", queue.name)).into()
        );
    }
    let leased = items.into_iter().zip(deliveries).map(|((item, value), (_, deliveries))| Leased {
        value,
        receipt: Receipt { item, token },
        deliveries: deliveries.max(0) as u64,
        lease_ends: crate::lease::unix_ms(ends),
    });
    Ok(Outcome::Leased(leased.collect()))
}

/// Removes item `?2` of queue `?1` if it is still under the lease of token `?3`.
const ACK: &str = "DELETE FROM queue_items WHERE id = ?2 AND queue_id = ?1 AND lease_token = ?3
    RETURNING octet_length(value)";

/// Ends the lease of token `?3` on item `?2` of queue `?1`, if the item is still under it.
const RELEASE: &str = "UPDATE queue_items SET lease_ends = NULL, lease_token = NULL
    WHERE id = ?2 AND queue_id = ?1 AND lease_token = ?3";

fn ack(conn: &Connection, queue: &Target<QueueId>, receipt: &Receipt) -> WriteResult {
    let removed: Option<i64> = conn
        .prepare_cached(ACK)?
        .query_row(params![queue.id.0, receipt.item, receipt.token], |row| row.get(0))
        .optional()?;
    let Some(bytes) = removed else {
        queue_stats(conn, queue)?;
        return Ok(Outcome::Found(false));
    };
    add_queue_stats_within(conn, queue, Delta { entries: -1, bytes: -bytes }, &Quota::UNLIMITED)?;
    Ok(Outcome::Found(true))
}

/// Makes the lease of token `?3` on item `?2` of queue `?1` end at `?4`, if the item is still
/// under it.
const EXTEND: &str = "UPDATE queue_items SET lease_ends = ?4
    WHERE id = ?2 AND queue_id = ?1 AND lease_token = ?3";

fn release(conn: &Connection, queue: &Target<QueueId>, receipt: &Receipt) -> WriteResult {
    let released = conn.prepare_cached(RELEASE)?.execute(params![queue.id.0, receipt.item, receipt.token])?;
    under_lease(conn, queue, released)
}

fn extend(
    conn: &Connection,
    queue: &Target<QueueId>,
    receipt: &Receipt,
    now: i64,
    lease_ms: u64,
) -> WriteResult {
    let ends = crate::clock::expiry(now, lease_ms);
    let extended =
        conn.prepare_cached(EXTEND)?.execute(params![queue.id.0, receipt.item, receipt.token, ends])?;
    under_lease(conn, queue, extended)
}

/// The outcome of a write that changed `changed` items under a lease: whether it found one,
/// and when it found none, still an error should the queue be gone.
fn under_lease(conn: &Connection, queue: &Target<QueueId>, changed: usize) -> WriteResult {
    if changed == 0 {
        queue_stats(conn, queue)?;
    }
    Ok(Outcome::Found(changed > 0))
}

fn clear_queue(conn: &Connection, queue: &Target<QueueId>) -> WriteResult {
    let stats = queue_stats(conn, queue)?;
    QUEUES.delete_contents(conn, queue.id.0)?;
    QUEUES.set_stats(conn, queue.id.0, Stats::default())?;
    Ok(Outcome::Count(stats.entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_value_is_unbound_after_its_statement_runs_and_a_small_one_stays() -> rusqlite::Result<()> {
        let conn = Connection::open_in_memory()?;
        conn.execute_batch("CREATE TABLE t (v TEXT)")?;
        let mut insert = conn.prepare("INSERT INTO t (v) VALUES (?1)")?;
        let bound = |statement: &Statement<'_>| statement.expanded_sql().unwrap_or_default();

        let small = Json::parse(r#""small""#).expect("JSON");
        execute_releasing(&mut insert, [small.as_str()], &small)?;
        assert!(bound(&insert).contains("small"), "{}", bound(&insert));

        let large = Json::parse(format!("\"{}\"", "x".repeat(LARGE_BINDING_BYTES))).expect("JSON");
        execute_releasing(&mut insert, [large.as_str()], &large)?;
        assert_eq!(bound(&insert), "INSERT INTO t (v) VALUES (NULL)");
        let stored: i64 = conn.query_row("SELECT sum(length(v)) FROM t", [], |row| row.get(0))?;
        assert_eq!(stored as usize, small.len() + large.len());

        // Unbound too when the statement fails.
        conn.execute_batch("CREATE TABLE checked (v TEXT CHECK (v NOT LIKE '\"y%'))")?;
        let mut refused = conn.prepare("INSERT INTO checked (v) VALUES (?1)")?;
        let large = Json::parse(format!("\"{}\"", "y".repeat(LARGE_BINDING_BYTES))).expect("JSON");
        assert!(execute_releasing(&mut refused, [large.as_str()], &large).is_err());
        assert_eq!(bound(&refused), "INSERT INTO checked (v) VALUES (NULL)");
        Ok(())
    }
}
