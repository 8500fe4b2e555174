//! Each kind of [`Write`] as SQL, run inside the batch's transaction.
//!
//! Every write keeps the entry and byte counts on its cache or queue row exact, checks the
//! quota against them, and logs each cache key it changes for other processes' LRUs.

use rusqlite::{Connection, OptionalExtension, params};

use super::DbFile;
use super::tables::{CACHES, QUEUES, Table};
use crate::store::{CacheId, Outcome, QueueId, Stats, Target, Write};
use crate::{Error, Json, Quota};

/// `change_log.kind`: one key was written or removed.
pub(super) const KIND_KEY: i64 = 0;
/// `change_log.kind`: the whole cache was cleared.
pub(super) const KIND_CLEARED: i64 = 1;
/// `change_log.kind`: the cache was deleted.
pub(super) const KIND_DROPPED: i64 = 2;

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

/// Applies one write. The caller wraps it in a savepoint, so an error leaves no trace.
pub(super) fn apply(conn: &Connection, writer: i64, write: &Write) -> WriteResult {
    match write {
        Write::CreateCache { name, quota } => create(conn, &CACHES, name, quota),
        Write::DropCache { name } => drop_cache(conn, writer, name),
        Write::Set { cache, entries, quota } => set(conn, writer, cache, entries, quota),
        Write::Delete { cache, keys } => delete(conn, writer, cache, keys),
        Write::Clear { cache } => clear(conn, writer, cache),
        Write::CreateQueue { name, quota } => create(conn, &QUEUES, name, quota),
        Write::DropQueue { name } => drop_queue(conn, name),
        Write::Put { queue, values, quota } => put(conn, queue, values, quota),
        Write::Take { queue, max } => take(conn, queue, *max),
        Write::ClearQueue { queue } => clear_queue(conn, queue),
    }
}

fn create(conn: &Connection, table: &Table, name: &str, quota: &Quota) -> WriteResult {
    if let Some(id) = table.find(conn, name)? {
        return Ok(Outcome::Created { id, created: false });
    }
    // A new cache or queue counts its name toward a shared quota.
    let named = Stats { entries: 0, bytes: name.len() as u64 };
    check_quota(conn, table, quota, name, Stats::default(), named)?;
    let id = table.insert(conn, name)?;
    Ok(Outcome::Created { id, created: true })
}

/// Checks a write that takes a cache or queue from `before` to `after` against `quota`: the
/// cache's own usage, or its group's when the quota is shared.
fn check_quota(
    conn: &Connection,
    table: &Table,
    quota: &Quota,
    name: &str,
    before: Stats,
    after: Stats,
) -> Result<(), WriteError> {
    if quota.is_unlimited() {
        return Ok(());
    }
    let Some(prefix) = &quota.shared_by_prefix else {
        return Ok(quota.check(
            &format!("{name:?}"),
            (before.entries, before.bytes),
            (after.entries, after.bytes),
        )?);
    };
    let group = table.usage_by_prefix(conn, prefix)?;
    let grown = (
        (group.entries + after.entries).saturating_sub(before.entries),
        (group.bytes + after.bytes).saturating_sub(before.bytes),
    );
    Ok(quota.check(&format!("everything named {prefix}*"), (group.entries, group.bytes), grown)?)
}

fn drop_cache(conn: &Connection, writer: i64, name: &str) -> WriteResult {
    let id = CACHES.delete(conn, name)?;
    if let Some(id) = id {
        log(conn, writer, CacheId(id), KIND_DROPPED, None)?;
    }
    Ok(Outcome::Dropped(id))
}

fn drop_queue(conn: &Connection, name: &str) -> WriteResult {
    Ok(Outcome::Dropped(QUEUES.delete(conn, name)?))
}

fn cache_stats(conn: &Connection, cache: &Target<CacheId>) -> Result<Stats, WriteError> {
    CACHES.stats(conn, cache.id.0)?.ok_or_else(|| Error::NoSuchCache(cache.name.to_string()).into())
}

fn set(
    conn: &Connection,
    writer: i64,
    cache: &Target<CacheId>,
    entries: &[(String, Json)],
    quota: &Quota,
) -> WriteResult {
    let before = cache_stats(conn, cache)?;
    let mut after = before;
    let mut old_size =
        conn.prepare_cached("SELECT octet_length(value) FROM entries WHERE cache_id = ?1 AND key = ?2")?;
    let mut upsert = conn.prepare_cached(
        "INSERT INTO entries (cache_id, key, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (cache_id, key) DO UPDATE SET value = excluded.value",
    )?;
    for (key, value) in entries {
        let old: Option<u64> = old_size.query_row(params![cache.id.0, key], |row| row.get(0)).optional()?;
        upsert.execute(params![cache.id.0, key, value.as_str()])?;
        match old {
            Some(old) => after.bytes = after.bytes.saturating_sub(old) + value.len() as u64,
            None => {
                after.entries += 1;
                after.bytes += (key.len() + value.len()) as u64;
            }
        }
        log(conn, writer, cache.id, KIND_KEY, Some(key))?;
    }
    check_quota(conn, &CACHES, quota, &cache.name, before, after)?;
    CACHES.set_stats(conn, cache.id.0, after)?;
    Ok(Outcome::Done)
}

fn delete(conn: &Connection, writer: i64, cache: &Target<CacheId>, keys: &[String]) -> WriteResult {
    let mut stats = cache_stats(conn, cache)?;
    let mut remove = conn.prepare_cached(
        "DELETE FROM entries WHERE cache_id = ?1 AND key = ?2 RETURNING octet_length(key) + octet_length(value)",
    )?;
    let mut removed = 0;
    for key in keys {
        let size: Option<u64> = remove.query_row(params![cache.id.0, key], |row| row.get(0)).optional()?;
        if let Some(size) = size {
            removed += 1;
            stats.entries = stats.entries.saturating_sub(1);
            stats.bytes = stats.bytes.saturating_sub(size);
            log(conn, writer, cache.id, KIND_KEY, Some(key))?;
        }
    }
    if removed > 0 {
        CACHES.set_stats(conn, cache.id.0, stats)?;
    }
    Ok(Outcome::Count(removed))
}

fn clear(conn: &Connection, writer: i64, cache: &Target<CacheId>) -> WriteResult {
    let stats = cache_stats(conn, cache)?;
    CACHES.delete_contents(conn, cache.id.0)?;
    CACHES.set_stats(conn, cache.id.0, Stats::default())?;
    log(conn, writer, cache.id, KIND_CLEARED, None)?;
    Ok(Outcome::Count(stats.entries))
}

fn log(conn: &Connection, writer: i64, cache: CacheId, kind: i64, key: Option<&str>) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT INTO change_log (writer, cache_id, kind, key) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![writer, cache.0, kind, key])?;
    Ok(())
}

/// Forgets all but the newest `retained` changes.
pub(super) fn prune_change_log(conn: &Connection, retained: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM change_log WHERE seq <= (SELECT max(seq) FROM change_log) - ?1")?
        .execute([retained])?;
    Ok(())
}

fn queue_stats(conn: &Connection, queue: &Target<QueueId>) -> Result<Stats, WriteError> {
    QUEUES.stats(conn, queue.id.0)?.ok_or_else(|| Error::NoSuchQueue(queue.name.to_string()).into())
}

fn put(conn: &Connection, queue: &Target<QueueId>, values: &[Json], quota: &Quota) -> WriteResult {
    let before = queue_stats(conn, queue)?;
    let after = Stats {
        entries: before.entries + values.len() as u64,
        bytes: before.bytes + values.iter().map(|v| v.len() as u64).sum::<u64>(),
    };
    check_quota(conn, &QUEUES, quota, &queue.name, before, after)?;
    let mut insert = conn.prepare_cached("INSERT INTO queue_items (queue_id, value) VALUES (?1, ?2)")?;
    for value in values {
        insert.execute(params![queue.id.0, value.as_str()])?;
    }
    QUEUES.set_stats(conn, queue.id.0, after)?;
    Ok(Outcome::Done)
}

fn take(conn: &Connection, queue: &Target<QueueId>, max: usize) -> WriteResult {
    let mut stats = queue_stats(conn, queue)?;
    let mut oldest =
        conn.prepare_cached("SELECT id, value FROM queue_items WHERE queue_id = ?1 ORDER BY id LIMIT ?2")?;
    let taken: Vec<(i64, String)> = oldest
        .query_map(params![queue.id.0, max as i64], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    if let Some((last, _)) = taken.last() {
        // The items taken are exactly this queue's items up to the last one taken.
        conn.prepare_cached("DELETE FROM queue_items WHERE queue_id = ?1 AND id <= ?2")?
            .execute(params![queue.id.0, last])?;
        stats.entries = stats.entries.saturating_sub(taken.len() as u64);
        stats.bytes = stats.bytes.saturating_sub(taken.iter().map(|(_, v)| v.len() as u64).sum());
        QUEUES.set_stats(conn, queue.id.0, stats)?;
    }
    Ok(Outcome::Values(taken.into_iter().map(|(_, value)| Json::trusted(value)).collect()))
}

fn clear_queue(conn: &Connection, queue: &Target<QueueId>) -> WriteResult {
    let stats = queue_stats(conn, queue)?;
    QUEUES.delete_contents(conn, queue.id.0)?;
    QUEUES.set_stats(conn, queue.id.0, Stats::default())?;
    Ok(Outcome::Count(stats.entries))
}
