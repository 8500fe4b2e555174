//! What every benchmark reads and writes: the same keys and values for easycaching and for
//! each baseline, in databases in a scratch directory that is removed afterwards.

use std::path::{Path, PathBuf};

use anyhow::Result;
use easycaching::{CacheManager, Durability, Json};

/// The key a hit reads.
pub const KEY: &str = "user:1";
/// The value every benchmark stores: a small JSON document, as a session or a user record is
/// (26 bytes). Redis and the other baselines store the same bytes.
pub const VALUE: &str = r#"{"name":"Ada","visits":3}"#;
/// The cache every benchmark uses.
pub const CACHE: &str = "bench";

/// The `i`th key of a benchmark that spreads over many keys.
pub fn key(i: u64) -> String {
    format!("key:{i:09}")
}

/// [`VALUE`] as easycaching's checked JSON.
pub fn value() -> Json {
    Json::parse(VALUE).expect("VALUE is JSON")
}

/// The value the `i`th write stores: [`VALUE`]'s shape with a 9-digit count, so that every
/// write changes the stored bytes (32 of them, whatever `i`). Writing the same bytes again
/// is no write at all for SQLite, which leaves a page it would not change clean: a baseline
/// that stored one value over and over would commit nothing and fsync nothing.
pub fn numbered_value(i: u64) -> String {
    format!(r#"{{"name":"Ada","visits":{}}}"#, 100_000_000 + i % 900_000_000)
}

/// [`numbered_value`] as easycaching's checked JSON.
pub fn numbered_json(i: u64) -> Json {
    Json::parse(numbered_value(i)).expect("a numbered value is JSON")
}

/// A scratch directory for databases, removed when dropped; under `target/bench/tmp` so it
/// is on the same disk as a real database would be (fsync costs depend on it), not in tmpfs.
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    /// A new, empty scratch directory.
    pub fn new() -> Result<Scratch> {
        let parent = crate::bench_dir().join("tmp");
        std::fs::create_dir_all(&parent)?;
        Ok(Scratch { dir: tempfile::tempdir_in(parent)? })
    }

    /// A path for a database called `name` in it.
    pub fn db(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Opens easycaching at `path` with the default settings but `durability`.
pub fn manager(path: &Path, durability: Durability) -> Result<CacheManager> {
    Ok(CacheManager::builder(path).durability(durability).open()?)
}

/// Fills cache [`CACHE`] with `count` entries, `key(0)` to `key(count - 1)`, a thousand per
/// transaction, each holding [`VALUE`].
pub fn fill(manager: &CacheManager, count: u64) -> Result<()> {
    let cache = manager.create_cache(CACHE)?;
    let value = value();
    let mut next = 0;
    while next < count {
        let end = (next + 1000).min(count);
        cache.set_many((next..end).map(|i| (key(i), value.clone())))?;
        next = end;
    }
    Ok(())
}

/// The page size of the SQLite database at `path` (easycaching's own, for a baseline that
/// should write pages of the same size).
pub fn page_size(path: &Path) -> Result<u32> {
    let conn = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    Ok(conn.query_row("PRAGMA page_size", [], |row| row.get(0))?)
}
