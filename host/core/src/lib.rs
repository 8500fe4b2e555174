//! A shared, persistent cache of JSON documents: named caches and FIFO queues in one SQLite
//! file, with an in-memory LRU in front of each cache.
//!
//! This is the storage engine behind the easycaching WebAssembly host, and it stands on its
//! own: a Rust application embeds it with no wasm at all. It is not on crates.io: depend on it
//! by path in a checkout, `easycaching = { path = "../easycaching/host/core" }`.
//!
//! ```
//! use easycaching::CacheManager;
//! use serde_json::json;
//!
//! # let dir = tempfile::tempdir()?;
//! let manager = CacheManager::open(dir.path().join("easycaching.db"))?;
//! let test = manager.create_cache("test")?;
//! test.set_value("foo", &json!({"bar": 1}))?;
//! assert_eq!(test.get("foo")?.unwrap().as_str(), r#"{"bar":1}"#);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Guarantees
//!
//! - **Durable**: a write is in the database when it returns; with the default
//!   [`Durability::Full`] it is fsynced and survives `kill -9` and power loss alike.
//! - **Shared**: many threads and many processes may use one database file at once. A write
//!   that returned in one process is seen by reads in every other, even those that had the old
//!   value in their LRU. Lock waits are absorbed (up to the busy timeout) and never surface as
//!   "database is locked".
//! - **Atomic**: each call that writes is applied whole or not at all. [`Cache::increment`]
//!   reads a counter and writes the sum in one such call, so workers counting on one key lose
//!   no count; a `get` then a `set` are two calls, and another process's write can come
//!   between them. [`Cache::compare_and_swap`] makes any other change safe the same way: it
//!   stores a value only if the entry still holds the one that was read.
//! - **Fast**: a hit in the LRU costs a mutex and two memory loads to check that no other
//!   process committed; concurrent writers share commits (group commit).
//! - **Checked**: values must be JSON ([`Error::InvalidJson`]), keys and values are bounded by
//!   [`Limits`] ([`Error::TooLarge`]), names by [`validate_name`]; a failed write stores
//!   nothing.
//!
//! # PostgreSQL
//!
//! With the cargo feature `postgres`, the caches and queues can live in a PostgreSQL database
//! instead of a file, for processes on several machines:
//! `CacheManager::builder_postgres("postgres://user:pw@host/db").open()`, or
//! `store::PostgresStore` with [`open_with_store`](CacheManagerBuilder::open_with_store). The
//! guarantees above hold, with one difference: another host's write reaches this process's
//! LRU when the server's notification of it arrives, not at once; and backups are
//! `pg_dump`'s. The module `store::postgres` has the details.
//!
//! # Layout
//!
//! [`CacheManager`] opens a database and hands out [`Cache`] and [`Queue`] handles. Under
//! them, every write goes through a group commit to a [`store::Store`] (the shipped one is
//! [`store::SqliteStore`]; `store::PostgresStore` with the feature `postgres`), and reads
//! consult the LRU first.
#![deny(missing_docs)]

mod cache;
mod clock;
mod error;
mod group_commit;
mod json;
mod lease;
mod limits;
mod manager;
mod names;
mod options;
mod paging;
mod queue;
mod queue_wait;
pub mod store;

pub use cache::{Cache, Entries};
pub use clock::{Clock, MAX_TTL, ManualClock};
pub use error::{Error, Result};
pub use group_commit::WriteStats;
pub use json::Json;
pub use lease::{Leased, Receipt};
pub use limits::{
    DEFAULT_MAX_BATCH_ITEMS, DEFAULT_MAX_KEY_BYTES, DEFAULT_MAX_VALUE_BYTES, Limits, MAX_PAGE_BYTES,
    MAX_PAGE_ITEMS, MAX_RESPONSE_BYTES, Quota,
};
pub use manager::{Backup, CacheManager, Restored, Summary};
pub use names::{MAX_NAME_BYTES, validate_name};
pub use options::{
    CacheManagerBuilder, DEFAULT_BUSY_TIMEOUT, DEFAULT_CHECKPOINT_PAGES, DEFAULT_LRU_CAPACITY,
    DEFAULT_MAX_BATCH_WRITES, DEFAULT_MAX_CACHED_VALUE_BYTES, Durability,
};
pub use queue::{Items, Queue};
pub use store::{DiskUsage, Page};
