//! Each kind of [`Write`] as SQL, run inside the batch's transaction, which holds the writers'
//! advisory lock: no other writer, of any process, runs meanwhile. Mirrors the SQLite store's
//! `writes`: counts on the cache or queue row kept exact, quotas checked against them, every
//! cache key changed logged for other processes' LRUs, expired entries absent to every write
//! that reads.

use std::borrow::Cow;
use std::cell::Cell;

use postgres::types::ToSql;

use super::connection::Connection;
use super::{SWEEP_ROWS, Server};
use crate::limits::MAX_PAGE_BYTES;
use crate::store::rules::{self, EntryWrites, cache_deleted, queue_deleted};
use crate::store::{CacheId, KeyRange, Outcome, PREFIX_DELETE_LOGGED_KEYS, QueueId, Stats, Target, Write};
use crate::{Clock, Error, Json, Leased, Quota, Receipt, Result};

/// `change_log.kind`: one key was written or removed.
pub(super) const KIND_KEY: i16 = 0;
/// `change_log.kind`: the whole cache was cleared.
pub(super) const KIND_CLEARED: i16 = 1;
/// `change_log.kind`: the cache was deleted.
pub(super) const KIND_DROPPED: i16 = 2;

/// A write failed: because of what it asked, or because the server failed.
pub(super) enum WriteError {
    Refused(Error),
    Sql(postgres::Error),
}

impl From<postgres::Error> for WriteError {
    fn from(error: postgres::Error) -> Self {
        WriteError::Sql(error)
    }
}

impl From<Error> for WriteError {
    fn from(error: Error) -> Self {
        WriteError::Refused(error)
    }
}

type WriteResult = std::result::Result<Outcome, WriteError>;

/// A statement on the front of a queue: the CTE `front`, the positions of up to `$2` of the
/// oldest items of queue `$1` waiting at `$4` (not under a lease), each with the bytes of the
/// items before it in `before` (those with `before < $3`, `$3` being [`MAX_PAGE_BYTES`], are
/// a page: what a take takes, the item that crosses it included); then `$rest`, the
/// statement's other CTEs and its query, which may number parameters of their own from `$5`.
macro_rules! concat_front {
    ($rest:literal) => {
        concat!(
            "WITH front AS (SELECT pos, sum(octet_length(value)) OVER (ORDER BY pos) - octet_length(value) AS before
                     FROM (SELECT pos, value FROM queue_items
                           WHERE queue_id = $1 AND (lease_ends IS NULL OR lease_ends <= $4)
                           ORDER BY pos LIMIT $2) AS f),
                 ",
            $rest
        )
    };
}

/// A change to a container's counts.
#[derive(Debug, Clone, Copy, Default)]
struct Delta {
    entries: i64,
    bytes: i64,
}

impl Delta {
    fn is_zero(self) -> bool {
        self.entries == 0 && self.bytes == 0
    }

    /// The counts before this delta was added to reach `after`.
    fn undo(self, after: Stats) -> Stats {
        let back = |count: u64, delta: i64| (count as i64).saturating_sub(delta).max(0) as u64;
        Stats { entries: back(after.entries, self.entries), bytes: back(after.bytes, self.bytes) }
    }
}

/// Caches or queues: the table and its count column.
#[derive(Clone, Copy)]
enum Table {
    Caches,
    Queues,
}

/// The SQL `$sql!(table, count_column)` spells, for `$table`: each table's is fixed at build
/// time, so a connection prepares it once (see `connection`).
macro_rules! per_table {
    ($table:expr, $sql:ident) => {
        match $table {
            Table::Caches => $sql!("caches", "entry_count"),
            Table::Queues => $sql!("queues", "item_count"),
        }
    };
}

macro_rules! find_sql {
    ($table:literal, $count:literal) => {
        concat!("SELECT id FROM ", $table, " WHERE name = $1")
    };
}

macro_rules! create_sql {
    ($table:literal, $count:literal) => {
        concat!("INSERT INTO ", $table, " (name) VALUES ($1) RETURNING id")
    };
}

macro_rules! stats_sql {
    ($table:literal, $count:literal) => {
        concat!("SELECT ", $count, ", byte_count FROM ", $table, " WHERE id = $1")
    };
}

macro_rules! add_stats_sql {
    ($table:literal, $count:literal) => {
        concat!(
            "UPDATE ",
            $table,
            " SET ",
            $count,
            " = greatest(",
            $count,
            " + $2, 0),
             byte_count = greatest(byte_count + $3, 0) WHERE id = $1 RETURNING ",
            $count,
            ", byte_count"
        )
    };
}

macro_rules! group_stats_sql {
    ($table:literal, $count:literal) => {
        concat!(
            "SELECT coalesce(sum(",
            $count,
            "), 0)::bigint, coalesce(sum(byte_count + length(name)), 0)::bigint
             FROM ",
            $table,
            " WHERE starts_with(name, $1)"
        )
    };
}

/// The writes of one transaction.
pub(super) struct Batch<'c> {
    client: &'c mut Connection,
    server: &'c Server,
    writer: i64,
    /// The newest change-log `seq` this batch wrote (the cursor after the commit).
    last_logged: Option<i64>,
    /// Changes of the write under way, logged in one statement when it succeeds.
    pending: Vec<(i64, i16, Option<String>)>,
    now: Cell<Option<i64>>,
    /// The store's clock, read once per batch into `now`.
    clock: &'c Clock,
    /// The result of each write taken so far, in order.
    results: Vec<Result<Outcome>>,
    /// The writes that succeeded since savepoint `write` was set (the transaction begins with
    /// it set, see `PostgresStore::begin`), by their place in `results`. A write that fails
    /// rolls back to the savepoint, and these are applied again: one round trip per write in
    /// the usual batch, where setting a savepoint before each write took two.
    replayable: Vec<(usize, Write)>,
    /// Sets taken but not yet applied, which the next write may join (see [`together`]), and
    /// what [`together`] answers for them.
    gathered: Vec<Write>,
    gathered_as: Option<(i64, Option<i64>)>,
}

/// The most entries one statement of a `set` of many sets: each statement is a round trip, and
/// its arrays are held whole by client and server. (A call sets at most
/// `Limits::max_batch_items` entries, 1,000 by default.)
const SET_ROWS_PER_STATEMENT: usize = 500;

/// The most bytes of keys and values a write may hold to be kept for applying again (see
/// `Batch::replayable`); after a larger one the savepoint is moved instead, a round trip.
const MAX_REPLAYABLE_BYTES: usize = 64 * 1024;

impl<'c> Batch<'c> {
    pub(super) fn new(client: &'c mut Connection, server: &'c Server, writer: i64, clock: &'c Clock) -> Self {
        Batch {
            client,
            server,
            writer,
            clock,
            last_logged: None,
            pending: Vec::new(),
            now: Cell::new(None),
            results: Vec::new(),
            replayable: Vec::new(),
            gathered: Vec::new(),
            gathered_as: None,
        }
    }

    /// The connection, and the result of each write taken.
    pub(super) fn finish(self) -> (&'c mut Connection, Vec<Result<Outcome>>) {
        (self.client, self.results)
    }

    /// Now, in unix ms, read once per batch.
    pub(super) fn now(&self) -> i64 {
        if let Some(now) = self.now.get() {
            return now;
        }
        let now = self.clock.now_ms();
        self.now.set(Some(now));
        now
    }

    pub(super) fn last_logged(&self) -> Option<i64> {
        self.last_logged
    }

    /// Takes `write`, the batch's next. Sets that can go together (concurrent writers' sets of
    /// one cache) wait for the writes after them, to be applied in one statement, a round trip
    /// for all; any other write is applied at once, after them. [`Batch::apply_gathered`]
    /// applies those still waiting once the batch has no more writes.
    pub(super) fn add(&mut self, write: &Write) -> Result<()> {
        let joins = together(write);
        if joins.is_none() || joins != self.gathered_as {
            self.apply_gathered()?;
        }
        match joins {
            Some(_) => {
                self.gathered_as = joins;
                self.gathered.push(write.clone());
                Ok(())
            }
            None => self.apply_alone(Cow::Borrowed(write)),
        }
    }

    /// Applies the sets gathered (see [`Batch::add`]) in one statement (see [`Batch::set`]),
    /// and records a result for each. Should they fail together (a key PostgreSQL cannot hold,
    /// a cache deleted), each is applied alone, for a result of its own.
    pub(super) fn apply_gathered(&mut self) -> Result<()> {
        self.gathered_as = None;
        let mut group = std::mem::take(&mut self.gathered);
        if group.len() <= 1 {
            return group.pop().map_or(Ok(()), |write| self.apply_alone(Cow::Owned(write)));
        }
        if self.attempt(|batch| batch.set_together(&group)).is_err() {
            self.back_to_savepoint()?;
            return group.into_iter().try_for_each(|write| self.apply_alone(Cow::Owned(write)));
        }
        for write in group {
            self.replayable.push((self.results.len(), write));
            self.results.push(Ok(Outcome::Done));
        }
        Ok(())
    }

    /// Applies `write` alone and records its result. A write that fails is undone and leaves
    /// the others (see [`Batch::back_to_savepoint`]); one that succeeds is kept to apply again
    /// (a copy, when borrowed) or, when large, the savepoint moved past it. The outer error is
    /// a failure that dooms the whole transaction, which is then rolled back.
    fn apply_alone(&mut self, write: Cow<'_, Write>) -> Result<()> {
        let index = self.results.len();
        let result = self.attempt(|batch| batch.apply(&write));
        let failed = result.is_err();
        self.results.push(result);
        if failed {
            self.back_to_savepoint()
        } else if replay_bytes(&write) <= MAX_REPLAYABLE_BYTES {
            self.replayable.push((index, write.into_owned()));
            Ok(())
        } else {
            self.move_savepoint()
        }
    }

    /// The sets of `group` as one (a key set by several, to the last value).
    fn set_together(&mut self, group: &[Write]) -> WriteResult {
        let mut entries = Vec::new();
        let mut target = None;
        for write in group {
            refuse_unstorable_keys(write)?;
            let Write::Set { cache, entries: these, expires_at, .. } = write else {
                return Err(Error::Storage("internal error: only sets are applied together".into()).into());
            };
            entries.extend(these.iter().cloned());
            target = Some((cache, *expires_at));
        }
        match target {
            Some((cache, expires_at)) => self.set(cache, &entries, expires_at, &Quota::UNLIMITED),
            None => Ok(Outcome::Done),
        }
    }

    /// Removes expired entries (see [`Batch::sweep_due`]): how many, or why it failed, undone.
    /// The outer error dooms the transaction, as for [`Batch::add`].
    pub(super) fn sweep(&mut self) -> Result<Result<u64>> {
        let result = self.attempt(Self::sweep_due);
        if result.is_err() {
            self.back_to_savepoint()?;
        }
        Ok(result)
    }

    /// Runs one step, then logs its changes: what it returned, or why it failed.
    fn attempt<T>(
        &mut self,
        step: impl FnOnce(&mut Self) -> std::result::Result<T, WriteError>,
    ) -> Result<T> {
        self.pending.clear();
        let result = step(self).and_then(|value| {
            self.flush_log()?;
            Ok(value)
        });
        self.pending.clear();
        result.map_err(|error| match error {
            WriteError::Refused(error) => error,
            WriteError::Sql(error) => self.server.error(error),
        })
    }

    /// Undoes a step that failed: rolls back to savepoint `write`, which undoes the writes
    /// since it too, applies those again (in the same transaction, under the same lock and
    /// clock, each does what it did the first time, and its result replaces the first), and
    /// moves the savepoint after them.
    fn back_to_savepoint(&mut self) -> Result<()> {
        self.run_or_roll_back("ROLLBACK TO SAVEPOINT write")?;
        let replayed = std::mem::take(&mut self.replayable);
        if replayed.is_empty() {
            return Ok(());
        }
        for (index, write) in &replayed {
            match self.attempt(|batch| batch.apply(write)) {
                Ok(outcome) => self.results[*index] = Ok(outcome),
                Err(error) => {
                    let error = Error::Storage(format!(
                        "internal error: a write that had succeeded failed when applied again, after a later write of its batch failed: {error}"
                    ));
                    return Err(super::rollback_after(self.client, error));
                }
            }
        }
        self.move_savepoint()
    }

    /// Sets savepoint `write` after the writes so far, which need no applying again.
    fn move_savepoint(&mut self) -> Result<()> {
        self.replayable.clear();
        self.run_or_roll_back("RELEASE SAVEPOINT write; SAVEPOINT write")
    }

    fn run_or_roll_back(&mut self, sql: &str) -> Result<()> {
        match self.client.batch_execute(sql) {
            Ok(()) => Ok(()),
            Err(error) => Err(super::rollback(self.client, self.server, error)),
        }
    }

    pub(super) fn apply(&mut self, write: &Write) -> WriteResult {
        refuse_unstorable_keys(write)?;
        match write {
            Write::CreateCache { name, quota } => self.create(Table::Caches, name, quota),
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
            Write::CreateQueue { name, quota } => self.create(Table::Queues, name, quota),
            Write::DropQueue { name } => self.drop_queue(name),
            Write::Put { queue, values, quota } => self.put(queue, values, quota),
            Write::Take { queue, max } => self.take(queue, *max),
            Write::GiveBack { queue, values } => self.give_back(queue, values),
            Write::ClearQueue { queue } => self.clear_queue(queue),
            Write::Lease { queue, lease_ms, max } => self.lease(queue, *lease_ms, *max),
            Write::Ack { queue, receipt } => self.ack(queue, receipt),
            Write::Release { queue, receipt } => self.release(queue, receipt),
            Write::Extend { queue, receipt, lease_ms } => self.extend(queue, receipt, *lease_ms),
        }
    }

    fn log(&mut self, cache: CacheId, kind: i16, key: Option<&str>) {
        self.pending.push((cache.0, kind, key.map(str::to_owned)));
    }

    /// Writes the pending changes to the change log, in one statement.
    fn flush_log(&mut self) -> std::result::Result<(), WriteError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let caches: Vec<i64> = self.pending.iter().map(|(cache, _, _)| *cache).collect();
        let kinds: Vec<i16> = self.pending.iter().map(|(_, kind, _)| *kind).collect();
        let keys: Vec<Option<&str>> = self.pending.iter().map(|(_, _, key)| key.as_deref()).collect();
        let row = self.client.query_one(
            "WITH logged AS (
                 INSERT INTO change_log (seq, writer, cache_id, kind, key)
                 SELECT nextval('change_seq'), $1, c, k, key
                 FROM unnest($2::bigint[], $3::smallint[], $4::text[]) AS u(c, k, key)
                 RETURNING seq)
             SELECT max(seq) FROM logged",
            &[&self.writer, &caches, &kinds, &keys],
        )?;
        self.logged(row.try_get(0)?);
        Ok(())
    }

    /// Notes `seq`, when there is one, as the newest change-log row this batch wrote.
    fn logged(&mut self, seq: Option<i64>) {
        self.last_logged = self.last_logged.max(seq);
    }

    fn stats(&mut self, table: Table, id: i64) -> std::result::Result<Option<Stats>, WriteError> {
        Ok(self
            .client
            .query_opt(per_table!(table, stats_sql), &[&id])?
            .map(|row| -> std::result::Result<Stats, postgres::Error> {
                Ok(super::stats_of(row.try_get(0)?, row.try_get(1)?))
            })
            .transpose()?)
    }

    fn cache_stats(&mut self, cache: &Target<CacheId>) -> std::result::Result<Stats, WriteError> {
        self.stats(Table::Caches, cache.id.0)?.ok_or_else(|| cache_deleted(cache).into())
    }

    fn queue_stats(&mut self, queue: &Target<QueueId>) -> std::result::Result<Stats, WriteError> {
        self.stats(Table::Queues, queue.id.0)?.ok_or_else(|| queue_deleted(queue).into())
    }

    fn create(&mut self, table: Table, name: &str, quota: &Quota) -> WriteResult {
        let found = self.client.query_opt(per_table!(table, find_sql), &[&name])?;
        if let Some(row) = found {
            return Ok(Outcome::Created { id: row.try_get(0)?, created: false });
        }
        let id: i64 = self.client.query_one(per_table!(table, create_sql), &[&name])?.try_get(0)?;
        // A new cache or queue counts its name toward a shared quota.
        let named = Stats { entries: 0, bytes: name.len() as u64 };
        self.check_quota(table, quota, name, Stats::default(), named)?;
        Ok(Outcome::Created { id, created: true })
    }

    fn drop_cache(&mut self, name: &str) -> WriteResult {
        let id: Option<i64> = self
            .client
            .query_opt("DELETE FROM caches WHERE name = $1 RETURNING id", &[&name])?
            .map(|row| row.try_get(0))
            .transpose()?;
        if let Some(id) = id {
            self.client.execute("DELETE FROM entries WHERE cache_id = $1", &[&id])?;
            self.log(CacheId(id), KIND_DROPPED, None);
        }
        Ok(Outcome::Dropped(id))
    }

    fn drop_queue(&mut self, name: &str) -> WriteResult {
        let id: Option<i64> = self
            .client
            .query_opt("DELETE FROM queues WHERE name = $1 RETURNING id", &[&name])?
            .map(|row| row.try_get(0))
            .transpose()?;
        if let Some(id) = id {
            self.client.execute("DELETE FROM queue_items WHERE queue_id = $1", &[&id])?;
        }
        Ok(Outcome::Dropped(id))
    }

    fn expire(&mut self, cache: &Target<CacheId>, key: &str, expires_at: Option<i64>) -> WriteResult {
        if !super::storable(key) {
            self.cache_stats(cache)?;
            return Ok(Outcome::Found(false));
        }
        let now = self.now();
        let changed = self.client.execute(
            concat!(
                "UPDATE entries SET expires_at = $3 WHERE cache_id = $1 AND ",
                key_is!("$2"),
                " AND (expires_at IS NULL OR expires_at > $4)"
            ),
            &[&cache.id.0, &key, &expires_at, &now],
        )?;
        if changed == 0 {
            self.cache_stats(cache)?;
            return Ok(Outcome::Found(false));
        }
        self.log(cache.id, KIND_KEY, Some(key));
        Ok(Outcome::Found(true))
    }

    /// Checks a write that added `delta` to the counts of `cache`, which are now `after`,
    /// against `quota`; over it, the cache's expired entries are swept first and the quota
    /// checked again.
    fn check_cache_quota(
        &mut self,
        cache: &Target<CacheId>,
        delta: Delta,
        after: Stats,
        quota: &Quota,
    ) -> std::result::Result<(), WriteError> {
        match self.check_quota(Table::Caches, quota, &cache.name, delta.undo(after), after) {
            Err(WriteError::Refused(Error::QuotaExceeded(_))) if self.sweep_cache(cache.id)? > 0 => {
                let after = self.cache_stats(cache)?;
                self.check_quota(Table::Caches, quota, &cache.name, delta.undo(after), after)
            }
            other => other,
        }
    }

    fn add_stats(
        &mut self,
        table: Table,
        id: i64,
        delta: Delta,
    ) -> std::result::Result<Option<Stats>, postgres::Error> {
        self.client
            .query_opt(per_table!(table, add_stats_sql), &[&id, &delta.entries, &delta.bytes])?
            .map(|row| Ok(super::stats_of(row.try_get(0)?, row.try_get(1)?)))
            .transpose()
    }

    /// Checks a write that took a cache or queue from `before` to `after` against `quota`:
    /// its own usage, or its group's when the quota is shared (read with the write in place).
    fn check_quota(
        &mut self,
        table: Table,
        quota: &Quota,
        name: &str,
        before: Stats,
        after: Stats,
    ) -> std::result::Result<(), WriteError> {
        let client = &mut *self.client;
        rules::check_quota(quota, name, before, after, |prefix| {
            let row = client.query_one(per_table!(table, group_stats_sql), &[&prefix])?;
            Ok(super::stats_of(row.try_get(0)?, row.try_get(1)?))
        })
    }

    /// Removes up to [`SWEEP_ROWS`] entries expired by now, from every cache, soonest expired
    /// first, as a delete removes entries (counts and change log kept). Answers how many.
    fn sweep_due(&mut self) -> std::result::Result<u64, WriteError> {
        let now = self.now();
        self.remove_expired(
            "DELETE FROM entries WHERE ctid = ANY(ARRAY(
                 SELECT ctid FROM entries WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2))
             RETURNING cache_id, key, octet_length(key) + octet_length(value)",
            &[&now, &SWEEP_ROWS],
        )
    }

    fn sweep_cache(&mut self, cache: CacheId) -> std::result::Result<u64, WriteError> {
        let now = self.now();
        self.remove_expired(
            "DELETE FROM entries WHERE ctid = ANY(ARRAY(
                 SELECT ctid FROM entries WHERE cache_id = $3 AND expires_at <= $1 ORDER BY expires_at LIMIT $2))
             RETURNING cache_id, key, octet_length(key) + octet_length(value)",
            &[&now, &SWEEP_ROWS, &cache.0],
        )
    }

    fn remove_expired(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> std::result::Result<u64, WriteError> {
        let rows = self.client.query(sql, params)?;
        let mut deltas: std::collections::BTreeMap<i64, Delta> = Default::default();
        for row in &rows {
            let cache: i64 = row.try_get(0)?;
            let key: String = row.try_get(1)?;
            let size: i32 = row.try_get(2)?;
            let delta = deltas.entry(cache).or_default();
            delta.entries -= 1;
            delta.bytes -= i64::from(size);
            self.log(CacheId(cache), KIND_KEY, Some(&key));
        }
        for (cache, delta) in deltas {
            self.add_stats(Table::Caches, cache, delta)?;
        }
        Ok(rows.len() as u64)
    }

    fn clear(&mut self, cache: &Target<CacheId>) -> WriteResult {
        let stats = self.cache_stats(cache)?;
        let now = self.now();
        let expired: i64 = self
            .client
            .query_one(
                "SELECT count(*) FROM entries WHERE cache_id = $1 AND expires_at <= $2",
                &[&cache.id.0, &now],
            )?
            .try_get(0)?;
        self.client.execute("DELETE FROM entries WHERE cache_id = $1", &[&cache.id.0])?;
        self.client
            .execute("UPDATE caches SET entry_count = 0, byte_count = 0 WHERE id = $1", &[&cache.id.0])?;
        self.log(cache.id, KIND_CLEARED, None);
        Ok(Outcome::Count(stats.entries.saturating_sub(expired.max(0) as u64)))
    }

    /// Removes the entries whose keys begin with `prefix` (not empty), one range of the index,
    /// in one statement that also takes their counts off the cache's. Other hosts forget the
    /// keys removed, or the cache's whole LRU when there were many (see
    /// `PREFIX_DELETE_LOGGED_KEYS`).
    fn clear_prefix(&mut self, cache: &Target<CacheId>, prefix: &str) -> WriteResult {
        if !super::storable(prefix) {
            // No stored key holds a NUL, so none begins with this prefix.
            self.cache_stats(cache)?;
            return Ok(Outcome::Count(0));
        }
        macro_rules! delete_range {
            ($to:expr) => {
                concat!(
                    "WITH deleted AS (DELETE FROM entries WHERE cache_id = $1 AND ",
                    key_from!(">=", "$2"),
                    $to,
                    " RETURNING key, octet_length(key) + octet_length(value) AS size, expires_at),
                     counted AS (UPDATE caches
                         SET entry_count = greatest(entry_count - (SELECT count(*) FROM deleted), 0),
                             byte_count = greatest(byte_count - (SELECT coalesce(sum(size), 0) FROM deleted), 0)
                         WHERE id = $1 AND EXISTS (SELECT 1 FROM deleted))
                     SELECT (SELECT count(*) FROM deleted WHERE expires_at IS NULL OR expires_at > $3),
                            (SELECT count(*) FROM deleted),
                            EXISTS (SELECT 1 FROM caches WHERE id = $1),
                            (SELECT CASE WHEN count(*) <= $4 THEN array_agg(key) END FROM deleted)"
                )
            };
        }
        let now = self.now();
        let logged_keys = PREFIX_DELETE_LOGGED_KEYS as i64;
        let row = match KeyRange::new(prefix, None).end() {
            Some(end) => self.client.query_one(
                delete_range!(concat!(" AND ", key_before!("$5"))),
                &[&cache.id.0, &prefix, &now, &logged_keys, &end],
            )?,
            None => self.client.query_one(delete_range!(""), &[&cache.id.0, &prefix, &now, &logged_keys])?,
        };
        if !row.try_get::<_, bool>(2)? {
            return Err(cache_deleted(cache).into());
        }
        let (live, removed): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        if removed > 0 {
            match row.try_get::<_, Option<Vec<String>>>(3)? {
                Some(keys) => keys.iter().for_each(|key| self.log(cache.id, KIND_KEY, Some(key))),
                None => self.log(cache.id, KIND_CLEARED, None),
            }
        }
        Ok(Outcome::Count(live.max(0) as u64))
    }

    /// One statement counts the values in, numbers them after the queue's last item and
    /// inserts them; the quota is checked on the counts it answers.
    fn put(&mut self, queue: &Target<QueueId>, values: &[Json], quota: &Quota) -> WriteResult {
        let delta =
            Delta { entries: values.len() as i64, bytes: values.iter().map(|v| v.len() as i64).sum() };
        let texts: Vec<&str> = values.iter().map(Json::as_str).collect();
        let after = self
            .client
            .query_opt(
                "WITH counted AS (UPDATE queues
                     SET item_count = greatest(item_count + $2, 0), byte_count = greatest(byte_count + $3, 0),
                         next_pos = next_pos + $2
                     WHERE id = $1 RETURNING item_count, byte_count, next_pos - $2 AS first),
                 inserted AS (INSERT INTO queue_items (queue_id, pos, value)
                     SELECT $1, counted.first + n - 1, v
                     FROM counted, unnest($4::text[]) WITH ORDINALITY AS u(v, n))
                 SELECT item_count, byte_count FROM counted",
                &[&queue.id.0, &delta.entries, &delta.bytes, &texts],
            )?
            .map(|row| -> std::result::Result<Stats, postgres::Error> {
                Ok(super::stats_of(row.try_get(0)?, row.try_get(1)?))
            })
            .transpose()?
            .ok_or_else(|| queue_deleted(queue))?;
        self.check_quota(Table::Queues, quota, &queue.name, delta.undo(after), after)?;
        Ok(Outcome::Done)
    }

    fn insert_items(&mut self, queue: &Target<QueueId>, first: i64, values: &[Json]) -> WriteResult {
        let texts: Vec<&str> = values.iter().map(Json::as_str).collect();
        self.client.execute(
            "INSERT INTO queue_items (queue_id, pos, value)
             SELECT $1, $2 + n - 1, v FROM unnest($3::text[]) WITH ORDINALITY AS u(v, n)",
            &[&queue.id.0, &first, &texts],
        )?;
        Ok(Outcome::Done)
    }

    /// One statement takes up to `max` items from the front, stopping once those taken hold
    /// [`MAX_PAGE_BYTES`] (the item that crosses it included), and takes them off the queue's
    /// counts; the queue's existence comes back with them.
    fn take(&mut self, queue: &Target<QueueId>, max: usize) -> WriteResult {
        let rows = self.client.query(
            concat_front!(
                "taken AS (DELETE FROM queue_items
                     WHERE queue_id = $1 AND pos = ANY(ARRAY(SELECT pos FROM front WHERE before < $3))
                     RETURNING pos, value),
                 counted AS (UPDATE queues
                     SET item_count = greatest(item_count - (SELECT count(*) FROM taken), 0),
                         byte_count = greatest(byte_count - (SELECT coalesce(sum(octet_length(value)), 0) FROM taken), 0)
                     WHERE id = $1 AND EXISTS (SELECT 1 FROM taken))
             SELECT pos, value FROM taken
             UNION ALL SELECT NULL, NULL WHERE EXISTS (SELECT 1 FROM queues WHERE id = $1)"
            ),
            &[&queue.id.0, &(max.min(i64::MAX as usize) as i64), &(MAX_PAGE_BYTES as i64), &self.now()],
        )?;
        // Besides the items, one row without an item says that the queue exists.
        let mut exists = false;
        let mut taken: Vec<(i64, Json)> = Vec::with_capacity(rows.len());
        for row in &rows {
            match row.try_get::<_, Option<i64>>(0)? {
                Some(pos) => taken.push((pos, Json::trusted(row.try_get::<_, String>(1)?))),
                None => exists = true,
            }
        }
        if !exists {
            return Err(queue_deleted(queue).into());
        }
        taken.sort_unstable_by_key(|(pos, _)| *pos);
        let taken = taken.into_iter().map(|(_, value)| value).collect();
        Ok(Outcome::Values(taken))
    }

    /// Puts `values` before every item of the queue, in order, at positions below its
    /// `first_pos`, which only falls: new items still go after the largest.
    fn give_back(&mut self, queue: &Target<QueueId>, values: &[Json]) -> WriteResult {
        if values.is_empty() {
            self.queue_stats(queue)?;
            return Ok(Outcome::Done);
        }
        let delta =
            Delta { entries: values.len() as i64, bytes: values.iter().map(|v| v.len() as i64).sum() };
        // Given back, not put: no quota applies.
        self.add_stats(Table::Queues, queue.id.0, delta)?.ok_or_else(|| queue_deleted(queue))?;
        let count = values.len() as i64;
        let first: i64 = self
            .client
            .query_one(
                "UPDATE queues SET first_pos = least(first_pos,
                     coalesce((SELECT min(pos) FROM queue_items WHERE queue_id = $1), first_pos)) - $2
                 WHERE id = $1 RETURNING first_pos",
                &[&queue.id.0, &count],
            )?
            .try_get(0)?;
        self.insert_items(queue, first, values)
    }

    /// Leases the items [`take`](Self::take) would take (see [`Write::Lease`]) in one
    /// statement, which also tells whether the queue exists.
    fn lease(&mut self, queue: &Target<QueueId>, lease_ms: u64, max: usize) -> WriteResult {
        let now = self.now();
        let ends = crate::clock::expiry(now, lease_ms);
        let token = crate::lease::new_token();
        let rows = self.client.query(
            concat_front!(
                "leased AS (UPDATE queue_items SET lease_ends = $5, lease_token = $6, deliveries = deliveries + 1
                     WHERE queue_id = $1 AND pos = ANY(ARRAY(SELECT pos FROM front WHERE before < $3))
                     RETURNING pos, deliveries, value)
             SELECT pos, deliveries, value FROM leased
             UNION ALL SELECT NULL, NULL, NULL WHERE EXISTS (SELECT 1 FROM queues WHERE id = $1)"
            ),
            &[&queue.id.0, &(max.min(i64::MAX as usize) as i64), &(MAX_PAGE_BYTES as i64), &now, &ends, &token],
        )?;
        // Besides the items, one row without an item says that the queue exists.
        let mut exists = false;
        let mut leased: Vec<Leased> = Vec::with_capacity(rows.len());
        for row in &rows {
            let Some(item) = row.try_get::<_, Option<i64>>(0)? else {
                exists = true;
                continue;
            };
            let deliveries: i64 = row.try_get(1)?;
            leased.push(Leased {
                value: Json::trusted(row.try_get::<_, String>(2)?),
                receipt: Receipt { item, token },
                deliveries: deliveries.max(0) as u64,
                lease_ends: crate::lease::unix_ms(ends),
            });
        }
        if !exists {
            return Err(queue_deleted(queue).into());
        }
        leased.sort_unstable_by_key(|leased| leased.receipt.item);
        Ok(Outcome::Leased(leased))
    }

    /// Removes the item under the lease `receipt` names and takes it off the counts, in one
    /// statement.
    fn ack(&mut self, queue: &Target<QueueId>, receipt: &Receipt) -> WriteResult {
        let row = self.client.query_opt(
            "WITH acked AS (DELETE FROM queue_items WHERE queue_id = $1 AND pos = $2 AND lease_token = $3
                     RETURNING octet_length(value) AS bytes),
                 counted AS (UPDATE queues
                     SET item_count = greatest(item_count - 1, 0),
                         byte_count = greatest(byte_count - (SELECT bytes FROM acked), 0)
                     WHERE id = $1 AND EXISTS (SELECT 1 FROM acked))
             SELECT EXISTS (SELECT 1 FROM acked) FROM queues WHERE id = $1",
            &[&queue.id.0, &receipt.item, &receipt.token],
        )?;
        let acked: bool = row.ok_or_else(|| queue_deleted(queue))?.try_get(0)?;
        Ok(Outcome::Found(acked))
    }

    fn release(&mut self, queue: &Target<QueueId>, receipt: &Receipt) -> WriteResult {
        self.change_lease(queue, receipt, None)
    }

    fn extend(&mut self, queue: &Target<QueueId>, receipt: &Receipt, lease_ms: u64) -> WriteResult {
        let ends = crate::clock::expiry(self.now(), lease_ms);
        self.change_lease(queue, receipt, Some(ends))
    }

    /// Makes the lease `receipt` names end at `ends`, or ends it now (`None`: its token goes
    /// with it), if the item is still under it; in one statement, which also tells whether the
    /// queue exists.
    fn change_lease(&mut self, queue: &Target<QueueId>, receipt: &Receipt, ends: Option<i64>) -> WriteResult {
        let row = self.client.query_opt(
            "WITH changed AS (UPDATE queue_items
                     SET lease_ends = $4, lease_token = CASE WHEN $4::bigint IS NULL THEN NULL ELSE lease_token END
                     WHERE queue_id = $1 AND pos = $2 AND lease_token = $3 RETURNING pos)
             SELECT EXISTS (SELECT 1 FROM changed) FROM queues WHERE id = $1",
            &[&queue.id.0, &receipt.item, &receipt.token, &ends],
        )?;
        let changed: bool = row.ok_or_else(|| queue_deleted(queue))?.try_get(0)?;
        Ok(Outcome::Found(changed))
    }

    fn clear_queue(&mut self, queue: &Target<QueueId>) -> WriteResult {
        let stats = self.queue_stats(queue)?;
        self.client.execute("DELETE FROM queue_items WHERE queue_id = $1", &[&queue.id.0])?;
        self.client
            .execute("UPDATE queues SET item_count = 0, byte_count = 0 WHERE id = $1", &[&queue.id.0])?;
        Ok(Outcome::Count(stats.entries))
    }
}

/// The batch's reads and writes of entries, of which increments and compare-and-swaps are made
/// (see [`EntryWrites`]): they read inside the batch's transaction, which holds the writers'
/// advisory lock, never from an LRU.
impl EntryWrites for Batch<'_> {
    type Error = WriteError;

    fn stored(
        &mut self,
        cache: &Target<CacheId>,
        key: &str,
    ) -> std::result::Result<Option<(Json, Option<i64>)>, WriteError> {
        let now = self.now();
        let Some(row) = self.client.query_opt(
            concat!(
                "SELECT value, expires_at FROM entries WHERE cache_id = $1 AND ",
                key_is!("$2"),
                " AND (expires_at IS NULL OR expires_at > $3)"
            ),
            &[&cache.id.0, &key, &now],
        )?
        else {
            return Ok(None);
        };
        Ok(Some((Json::trusted(row.try_get::<_, String>(0)?), row.try_get(1)?)))
    }

    /// One entry: one statement upserts it, adds what it changed to the cache's counts and
    /// logs the key, answering the counts after it. Several: one statement per
    /// [`SET_ROWS_PER_STATEMENT`] entries upserts and logs them, and the counts are added once
    /// at the end (a row updated once per entry of a large set would grow a chain of versions
    /// that each update walks). The quota is checked once.
    fn set(
        &mut self,
        cache: &Target<CacheId>,
        entries: &[(String, Json)],
        expires_at: Option<i64>,
        quota: &Quota,
    ) -> WriteResult {
        // Updates the key's row or, when it has none, inserts one: no other writer runs
        // meanwhile (see the module docs), so the key stays unique. Logs the key. `$5` and `$6`
        // are the key's and the value's sizes in bytes, as Rust counts them everywhere else.
        macro_rules! upsert_and_log {
            () => {
                concat!(
                    "WITH old AS (SELECT octet_length(value) AS size FROM entries WHERE cache_id = $1 AND ",
                    key_is!("$2"),
                    "), updated AS (UPDATE entries SET value = $3, expires_at = $4 WHERE cache_id = $1 AND ",
                    key_is!("$2"),
                    "), inserted AS (INSERT INTO entries (cache_id, key, value, expires_at)
                         SELECT $1, $2, $3, $4 WHERE NOT EXISTS (SELECT 1 FROM old)),
                     delta AS (SELECT (CASE WHEN EXISTS (SELECT 1 FROM old) THEN 0 ELSE 1 END)::bigint AS entries,
                                      coalesce($6::bigint - (SELECT size FROM old), $5::bigint + $6::bigint) AS bytes),
                     logged AS (INSERT INTO change_log (seq, writer, cache_id, kind, key)
                         VALUES (nextval('change_seq'), $7, $1, 0, $2) RETURNING seq)"
                )
            };
        }
        const SET_ONE: &str = concat!(
            upsert_and_log!(),
            ", counted AS (UPDATE caches SET entry_count = greatest(entry_count + delta.entries, 0),
                                            byte_count = greatest(byte_count + delta.bytes, 0)
                 FROM delta WHERE id = $1 AND (delta.entries <> 0 OR delta.bytes <> 0)
                 RETURNING entry_count, byte_count)
             SELECT delta.entries, delta.bytes, (SELECT seq FROM logged),
                    coalesce((SELECT entry_count FROM counted), (SELECT entry_count FROM caches WHERE id = $1)),
                    coalesce((SELECT byte_count FROM counted), (SELECT byte_count FROM caches WHERE id = $1))
             FROM delta"
        );
        // Many entries, the same way, a chunk at a time: `$2`..`$5` are arrays of keys, values
        // and their sizes. Where a key comes more than once, its last value is the one set, as
        // if each were set in turn.
        //
        // Each key is looked up through the index on its own (`OFFSET 0` keeps the planner
        // from joining the whole cache instead, which it did for a cache of 200k entries whose
        // statistics were not yet updated) and its row, when found, updated by its `ctid`.
        const SET_MANY: &str = concat!(
            "WITH input AS (
                 SELECT last.k, last.v, last.kb, last.vb, old.found, old.size
                 FROM (SELECT DISTINCT ON (k) k, v, kb, vb
                       FROM unnest($2::text[], $3::text[], $4::bigint[], $5::bigint[])
                            WITH ORDINALITY AS u(k, v, kb, vb, ord)
                       ORDER BY k, ord DESC) AS last
                 LEFT JOIN LATERAL (SELECT ctid AS found, octet_length(value) AS size FROM entries
                                    WHERE cache_id = $1 AND ",
            key_is!("last.k"),
            " OFFSET 0) AS old ON true),
             updated AS (UPDATE entries SET value = input.v, expires_at = $6 FROM input
                 WHERE entries.ctid = input.found),
             inserted AS (INSERT INTO entries (cache_id, key, value, expires_at)
                 SELECT $1, k, v, $6 FROM input WHERE found IS NULL),
             logged AS (INSERT INTO change_log (seq, writer, cache_id, kind, key)
                 SELECT nextval('change_seq'), $7, $1, 0, k FROM input RETURNING seq)
             SELECT count(*) FILTER (WHERE found IS NULL),
                    coalesce(sum(vb + CASE WHEN found IS NULL THEN kb ELSE -size END), 0)::bigint,
                    (SELECT max(seq) FROM logged)
             FROM input"
        );
        if entries.is_empty() {
            self.cache_stats(cache)?;
            return Ok(Outcome::Done);
        }
        let mut delta = Delta::default();
        let mut counted = None;
        if let [(key, value)] = entries {
            let row = self.client.query_one(
                SET_ONE,
                &[
                    &cache.id.0,
                    key,
                    &value.as_str(),
                    &expires_at,
                    &(key.len() as i64),
                    &(value.len() as i64),
                    &self.writer,
                ],
            )?;
            delta = Delta { entries: row.try_get(0)?, bytes: row.try_get(1)? };
            self.logged(row.try_get(2)?);
            counted = Some(match (row.try_get::<_, Option<i64>>(3)?, row.try_get::<_, Option<i64>>(4)?) {
                (Some(entries), Some(bytes)) => Some(super::stats_of(entries, bytes)),
                _ => None,
            });
        } else {
            for chunk in entries.chunks(SET_ROWS_PER_STATEMENT) {
                let keys: Vec<&str> = chunk.iter().map(|(key, _)| key.as_str()).collect();
                let values: Vec<&str> = chunk.iter().map(|(_, value)| value.as_str()).collect();
                let key_bytes: Vec<i64> = chunk.iter().map(|(key, _)| key.len() as i64).collect();
                let value_bytes: Vec<i64> = chunk.iter().map(|(_, value)| value.len() as i64).collect();
                let row = self.client.query_one(
                    SET_MANY,
                    &[&cache.id.0, &keys, &values, &key_bytes, &value_bytes, &expires_at, &self.writer],
                )?;
                delta.entries += row.try_get::<_, i64>(0)?;
                delta.bytes += row.try_get::<_, i64>(1)?;
                self.logged(row.try_get(2)?);
            }
        }
        let after = match counted {
            Some(after) => after,
            None if delta.is_zero() => return Ok(Outcome::Done),
            None => self.add_stats(Table::Caches, cache.id.0, delta)?,
        };
        let after = after.ok_or_else(|| cache_deleted(cache))?;
        if !delta.is_zero() {
            self.check_cache_quota(cache, delta, after, quota)?;
        }
        Ok(Outcome::Done)
    }

    /// One statement deletes the keys, takes them off the cache's counts and logs them,
    /// answering how many were live (not expired by now) and whether the cache exists.
    fn delete(&mut self, cache: &Target<CacheId>, keys: &[String]) -> WriteResult {
        let storable = super::storable_only(keys);
        let keys: &(dyn ToSql + Sync) = match &storable {
            Some(storable) => storable,
            None => &keys,
        };
        let row = self.client.query_one(
            concat!(
                "WITH deleted AS (DELETE FROM entries WHERE cache_id = $1 AND ",
                key_in!("$2"),
                " RETURNING key, octet_length(key) + octet_length(value) AS size, expires_at),
                 counted AS (UPDATE caches
                     SET entry_count = greatest(entry_count - (SELECT count(*) FROM deleted), 0),
                         byte_count = greatest(byte_count - (SELECT coalesce(sum(size), 0) FROM deleted), 0)
                     WHERE id = $1 AND EXISTS (SELECT 1 FROM deleted)),
                 logged AS (INSERT INTO change_log (seq, writer, cache_id, kind, key)
                     SELECT nextval('change_seq'), $3, $1, 0, key FROM deleted RETURNING seq)
                 SELECT (SELECT count(*) FROM deleted WHERE expires_at IS NULL OR expires_at > $4),
                        EXISTS (SELECT 1 FROM caches WHERE id = $1),
                        (SELECT max(seq) FROM logged)"
            ),
            &[&cache.id.0, keys, &self.writer, &self.now()],
        )?;
        if !row.try_get::<_, bool>(1)? {
            return Err(cache_deleted(cache).into());
        }
        self.logged(row.try_get(2)?);
        let live: i64 = row.try_get(0)?;
        Ok(Outcome::Count(live.max(0) as u64))
    }

    fn check_cache(&mut self, cache: &Target<CacheId>) -> std::result::Result<(), WriteError> {
        self.cache_stats(cache).map(drop)
    }
}

/// Writes with the same answer here may be applied in one statement ([`Batch::add`]):
/// sets of one cache with the same expiry, under no quota (a quota is checked after each write,
/// so one that would go over must fail alone, while the writes after it may pass), and small
/// enough to keep a copy of. `None` for any other write.
fn together(write: &Write) -> Option<(i64, Option<i64>)> {
    match write {
        Write::Set { cache, expires_at, quota, .. }
            if quota.is_unlimited() && replay_bytes(write) <= MAX_REPLAYABLE_BYTES =>
        {
            Some((cache.id.0, *expires_at))
        }
        _ => None,
    }
}

/// The bytes of keys and values `write` holds, which keeping it to apply again would copy.
fn replay_bytes(write: &Write) -> usize {
    match write {
        Write::Set { entries, .. } => entries.iter().map(|(key, value)| key.len() + value.len()).sum(),
        Write::Delete { keys, .. } => keys.iter().map(String::len).sum(),
        Write::Put { values, .. } | Write::GiveBack { values, .. } => values.iter().map(Json::len).sum(),
        Write::CompareAndSwap { key, expected, value, .. } => {
            key.len() + expected.as_ref().map_or(0, Json::len) + value.as_ref().map_or(0, Json::len)
        }
        Write::Expire { key, .. } | Write::Increment { key, .. } => key.len(),
        Write::CreateCache { name, .. }
        | Write::DropCache { name }
        | Write::CreateQueue { name, .. }
        | Write::DropQueue { name } => name.len(),
        Write::Clear { prefix, .. } => prefix.len(),
        Write::Take { .. }
        | Write::ClearQueue { .. }
        | Write::Lease { .. }
        | Write::Ack { .. }
        | Write::Release { .. }
        | Write::Extend { .. } => 0,
    }
}

/// Refuses a write that would store a key PostgreSQL cannot hold (see [`super::storable`]).
fn refuse_unstorable_keys(write: &Write) -> std::result::Result<(), Error> {
    let refuse = |key: &str| {
        Err(Error::InvalidArgument(format!(
            "key {:?} holds a NUL character, which the PostgreSQL backend cannot store",
            crate::error::shortened(key, 64)
        )))
    };
    match write {
        Write::Set { entries, .. } => match entries.iter().find(|(key, _)| !super::storable(key)) {
            Some((key, _)) => refuse(key),
            None => Ok(()),
        },
        Write::Increment { key, .. } | Write::CompareAndSwap { key, .. } if !super::storable(key) => {
            refuse(key)
        }
        _ => Ok(()),
    }
}
