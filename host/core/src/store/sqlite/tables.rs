//! Caches and queues are stored alike: a row with a name and the counts of what it holds, and
//! rows of contents. The statements that differ are gathered here, so the code that handles
//! both is written once.

use rusqlite::{Connection, OptionalExtension, Statement, params};

use crate::store::{Listed, Stats};

/// A change to a container's counts.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Delta {
    pub(super) entries: i64,
    pub(super) bytes: i64,
}

impl Delta {
    /// Whether it changes nothing.
    pub(super) fn is_zero(self) -> bool {
        self.entries == 0 && self.bytes == 0
    }

    /// The counts before this delta was added to reach `after`.
    pub(super) fn undo(self, after: Stats) -> Stats {
        let back = |count: u64, delta: i64| (count as i64).saturating_sub(delta).max(0) as u64;
        Stats { entries: back(after.entries, self.entries), bytes: back(after.bytes, self.bytes) }
    }
}

/// The statements for one kind of container.
pub(super) struct Table {
    /// Creates one unless it exists; returns the new id.
    insert: &'static str,
    /// Finds one by name.
    find: &'static str,
    /// Its counts.
    stats: &'static str,
    /// Sets its counts.
    set_stats: &'static str,
    /// Adds to its counts (held prepared for caches: see `statements`).
    pub(super) add_stats: &'static str,
    /// All of them, by name.
    list: &'static str,
    /// Deletes one by name, returning its id.
    delete: &'static str,
    /// Deletes its contents.
    delete_contents: &'static str,
    /// What everything named with a prefix holds, names included: a shared quota's usage.
    usage_by_prefix: &'static str,
}

pub(super) const CACHES: Table = Table {
    insert: "INSERT INTO caches (name) VALUES (?1) ON CONFLICT (name) DO NOTHING RETURNING id",
    find: "SELECT id FROM caches WHERE name = ?1",
    stats: "SELECT entry_count, byte_count FROM caches WHERE id = ?1",
    set_stats: "UPDATE caches SET entry_count = ?2, byte_count = ?3 WHERE id = ?1",
    add_stats:
        "UPDATE caches SET entry_count = max(entry_count + ?2, 0), byte_count = max(byte_count + ?3, 0)
                WHERE id = ?1",
    list: "SELECT id, name, entry_count, byte_count FROM caches ORDER BY name",
    delete: "DELETE FROM caches WHERE name = ?1 RETURNING id",
    delete_contents: "DELETE FROM entries WHERE cache_id = ?1",
    usage_by_prefix: "SELECT coalesce(sum(entry_count), 0), coalesce(sum(byte_count + length(name)), 0)
                      FROM caches WHERE substr(name, 1, length(?1)) = ?1",
};

pub(super) const QUEUES: Table = Table {
    insert: "INSERT INTO queues (name) VALUES (?1) ON CONFLICT (name) DO NOTHING RETURNING id",
    find: "SELECT id FROM queues WHERE name = ?1",
    stats: "SELECT item_count, byte_count FROM queues WHERE id = ?1",
    set_stats: "UPDATE queues SET item_count = ?2, byte_count = ?3 WHERE id = ?1",
    add_stats: "UPDATE queues SET item_count = max(item_count + ?2, 0), byte_count = max(byte_count + ?3, 0)
                WHERE id = ?1",
    list: "SELECT id, name, item_count, byte_count FROM queues ORDER BY name",
    delete: "DELETE FROM queues WHERE name = ?1 RETURNING id",
    delete_contents: "DELETE FROM queue_items WHERE queue_id = ?1",
    usage_by_prefix: "SELECT coalesce(sum(item_count), 0), coalesce(sum(byte_count + length(name)), 0)
                      FROM queues WHERE substr(name, 1, length(?1)) = ?1",
};

impl Table {
    pub(super) fn insert(&self, conn: &Connection, name: &str) -> rusqlite::Result<i64> {
        conn.prepare_cached(self.insert)?.query_row([name], |row| row.get(0))
    }

    pub(super) fn find(&self, conn: &Connection, name: &str) -> rusqlite::Result<Option<i64>> {
        conn.prepare_cached(self.find)?.query_row([name], |row| row.get(0)).optional()
    }

    /// The counts of container `id`, or `None` when it does not exist.
    pub(super) fn stats(&self, conn: &Connection, id: i64) -> rusqlite::Result<Option<Stats>> {
        conn.prepare_cached(self.stats)?
            .query_row([id], |row| Ok(Stats { entries: row.get(0)?, bytes: row.get(1)? }))
            .optional()
    }

    pub(super) fn set_stats(&self, conn: &Connection, id: i64, stats: Stats) -> rusqlite::Result<()> {
        conn.prepare_cached(self.set_stats)?.execute(params![id, stats.entries, stats.bytes])?;
        Ok(())
    }

    pub(super) fn list(&self, conn: &Connection) -> rusqlite::Result<Vec<Listed>> {
        let mut statement = conn.prepare_cached(self.list)?;
        let rows = statement.query_map([], listed)?;
        rows.collect()
    }

    /// Deletes the container called `name` and its contents; its id when it existed.
    pub(super) fn delete(&self, conn: &Connection, name: &str) -> rusqlite::Result<Option<i64>> {
        let id: Option<i64> =
            conn.prepare_cached(self.delete)?.query_row([name], |row| row.get(0)).optional()?;
        if let Some(id) = id {
            self.delete_contents(conn, id)?;
        }
        Ok(id)
    }

    pub(super) fn delete_contents(&self, conn: &Connection, id: i64) -> rusqlite::Result<()> {
        conn.prepare_cached(self.delete_contents)?.execute([id])?;
        Ok(())
    }

    pub(super) fn usage_by_prefix(&self, conn: &Connection, prefix: &str) -> rusqlite::Result<Stats> {
        conn.prepare_cached(self.usage_by_prefix)?
            .query_row([prefix], |row| Ok(Stats { entries: row.get(0)?, bytes: row.get(1)? }))
    }
}

/// Adds `delta` to the counts of container `id` with a table's `add_stats` statement, prepared
/// as `statement`; `false` when it does not exist. (An `UPDATE … RETURNING` would save reading
/// the counts for a quota, but costs three times a plain update: SQLite runs it through a
/// temporary table.)
pub(super) fn add_stats_with(statement: &mut Statement<'_>, id: i64, delta: Delta) -> rusqlite::Result<bool> {
    Ok(statement.execute(params![id, delta.entries, delta.bytes])? == 1)
}

/// A row of a listing, `id, name, count, bytes`, as [`Listed`].
pub(super) fn listed(row: &rusqlite::Row<'_>) -> rusqlite::Result<Listed> {
    Ok(Listed {
        id: row.get(0)?,
        name: row.get(1)?,
        stats: Stats { entries: row.get(2)?, bytes: row.get(3)? },
    })
}
