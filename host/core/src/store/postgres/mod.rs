//! The PostgreSQL backend (cargo feature `postgres`): [`PostgresStore`].
//!
//! Everything lives in one schema of the database (`easycaching` unless chosen otherwise), so
//! it sits beside other applications' tables: `meta` (schema version, how far the change log was
//! pruned), `caches`/`entries`, `queues`/`queue_items`, `change_log` and two sequences,
//! created on open with `CREATE … IF NOT EXISTS`. Values are `text`, the exact JSON text
//! written (never `jsonb`, which would rewrite it), so they come back byte for byte.
//!
//! How it keeps the guarantees of [`Store`]:
//!
//! - **One writer at a time.** [`Store::apply`] runs a batch in one transaction that first
//!   takes a transaction-level advisory lock (`pg_advisory_xact_lock`) on the schema: writers
//!   of every process commit one at a time. That keeps counts and quotas simple (a read of the
//!   counts is not raced), makes the change log's sequence commit in order (Postgres sequence
//!   values taken by concurrent transactions can otherwise become visible out of order, which
//!   a reader of the log would skip for ever), and gives each commit a number: the next value
//!   of sequence `commit_seq`, taken under the lock just before `COMMIT`. (A sequence, not a
//!   counter in a row: a row updated by every commit grows a chain of versions that each read
//!   of it walks, which cost a lone write about a quarter of its time. A commit that fails
//!   after taking its number leaves a gap, which only makes the next writer's LRU forget the
//!   keys it wrote rather than keep them, see `PostgresStore::transaction`.)
//! - **One failing write leaves the others of its batch.** The batch rolls back to a
//!   `SAVEPOINT` and applies again the writes that succeeded since it (see
//!   `writes::Batch::back_to_savepoint`): a round trip per write, where a savepoint set before
//!   each write took two.
//! - **Durable at commit.** Connections run with `synchronous_commit = on`: a commit is on
//!   the server's disk when it returns, so [`Store::sync`] has nothing to do.
//! - **Change token without I/O.** The commit's transaction `NOTIFY`s its number on a channel
//!   of the schema; a thread of the store `LISTEN`s on a connection of its own and raises an
//!   atomic counter, which [`Store::change_token`] reads. The store raises it itself after its
//!   own commits. This leaves a window SQLite does not have: another host's commit is seen by
//!   this process's LRU only once its notification arrives (typically well under a
//!   millisecond on one network, like Redis's client-side caching), and while the listening
//!   connection is down (it reconnects every second) other hosts' commits are not noticed at
//!   all; reads that miss the LRU always read the server.
//! - **Expiry** is the host's wall clock (`clock::now_ms`), compared in every read, and
//!   expired rows are swept on the write path, [`SWEEP_ROWS`] at a time, as SQLite's are.
//! - **Queues** give items positions that only grow from front to back: a put takes them from
//!   the queue's `next_pos`, a give-back from its `first_pos`, which only falls.
//!
//! - **Keys of any length.** Postgres refuses index entries over a third of a page (2,704
//!   bytes), shorter than the keys allowed (4 KiB by default). So `entries` has no primary
//!   key: its index holds each key's first [`KEY_PREFIX_CHARS`] characters, a lookup compares
//!   the key whole among the rows of that prefix, and a page of keys is read in the index's
//!   order and sorted within a prefix (which is byte order: see `key_prefix!`). Keys are
//!   unique because every write holds the writers' lock and looks before it inserts.
//!
//! - **Connections that drop** (the server restarted, a proxy closed an idle one) are made anew:
//!   a read runs again on a new connection, and a write transaction whose `BEGIN` finds its
//!   connection closed begins on a new one (nothing had run). A connection lost in the middle
//!   of a transaction fails that batch, as its outcome is not known.
//! - **TLS** as libpq's `sslmode` and `sslrootcert` ask, from `disable` to `verify-full`
//!   (see `tls`), on rustls.
//!
//! - **Keys with NUL characters**, which Postgres text cannot hold: a write that would store
//!   one fails with [`Error::InvalidArgument`], which names the key, and every other call
//!   treats such a key as absent (see `storable` in this module), as none can be stored.
//!
//! What it does not do: backups and restores (use `pg_dump`) and client certificates.
//!
//! The client is the synchronous `postgres` crate, which blocks on a runtime of its own. Async
//! code may still call the manager straight from its tasks: the store then runs the call's I/O
//! on threads of its own (see `io_threads`) and blocks the task's thread until it is done, as
//! SQLite's I/O does. (`spawn_blocking` spares the runtime's workers that wait.)

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use postgres::config::Host;
use postgres::types::ToSql;
use postgres::{Client, Config};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{
    Applied, CacheId, Change, ChangeToken, Changes, KeyRange, Listed, OwnCommit, Page, PageStatements,
    QueueId, Stats, Store, Stored, SyncTarget, Target, Writes,
};
use crate::{Clock, Error, Json, Result};

/// The first [`KEY_PREFIX_CHARS`] characters of `$text` as SQL: the index's expression,
/// which a query must spell the same to use the index. Ordering by it and then by the key is
/// ordering by the key: keys are compared byte by byte (`COLLATE "C"`), and a prefix of
/// characters is a prefix of bytes.
macro_rules! key_prefix {
    ($text:literal) => {
        concat!("left(", $text, ", 512)")
    };
}

/// SQL: the row's key is the text of parameter `$param`, found through the index.
macro_rules! key_is {
    ($param:literal) => {
        concat!(key_prefix!("key"), " = ", key_prefix!($param), " AND key = ", $param)
    };
}

/// SQL: the row's key is one of the texts of array parameter `$param`, found through the index.
macro_rules! key_in {
    ($param:literal) => {
        concat!(
            key_prefix!("key"),
            " = ANY(ARRAY(SELECT ",
            key_prefix!("k"),
            " FROM unnest(",
            $param,
            "::text[]) AS k)) AND key = ANY(",
            $param,
            ")"
        )
    };
}

/// SQL: the row's key comes after (`>`) or at (`>=`) the text of `$param`, in the order of
/// `key_order!`, read from the index.
macro_rules! key_from {
    ($op:literal, $param:literal) => {
        concat!(key_prefix!("key"), " >= ", key_prefix!($param), " AND key ", $op, " ", $param)
    };
}

/// SQL: byte order of keys, as the index gives it (sorted further only within a prefix).
macro_rules! key_order {
    () => {
        concat!(key_prefix!("key"), ", key")
    };
}

/// SQL: the row's key is before the text of parameter `$param`, bounded through the index (a
/// key before another has a prefix of characters before, or equal to, the other's).
macro_rules! key_before {
    ($param:literal) => {
        concat!(key_prefix!("key"), " <= ", key_prefix!($param), " AND key < ", $param)
    };
}

/// The statements of a page of a cache's keys (`KEYS_PAGE`) or entries (`ENTRIES_PAGE`),
/// one for each kind of [`KeyRange`] (see [`PageStatements`]). Parameters: the cache, the
/// start, the limit, the time (for expiry) and the end.
macro_rules! page_statements {
    ($columns:literal) => {
        PageStatements {
            after: page_statements!($columns, ">", ""),
            from: page_statements!($columns, ">=", ""),
            after_to_end: page_statements!($columns, ">", concat!(" AND ", key_before!("$5"))),
            from_to_end: page_statements!($columns, ">=", concat!(" AND ", key_before!("$5"))),
        }
    };
    ($columns:literal, $from:literal, $to:expr) => {
        concat!(
            "SELECT ",
            $columns,
            " FROM entries WHERE cache_id = $1 AND ",
            key_from!($from, "$2"),
            $to,
            " AND (expires_at IS NULL OR expires_at > $4) ORDER BY ",
            key_order!(),
            " LIMIT $3"
        )
    };
}

const KEYS_PAGE: PageStatements = page_statements!("key");
const ENTRIES_PAGE: PageStatements = page_statements!("key, value");

/// The characters of a key the index of `entries` holds (`key_prefix!` spells it in SQL): at
/// most 4 bytes each, so an index entry stays well under Postgres's 2,704 bytes.
pub const KEY_PREFIX_CHARS: usize = 512;
// At most 4 bytes a character, with room for the cache's id and the index entry's header.
const _: () = assert!(KEY_PREFIX_CHARS * 4 + 64 < 2704);

mod connection;
mod io_threads;
mod tls;
mod writes;

use connection::Connection;
use io_threads::{IoThreads, in_runtime};

/// The schema this build creates and understands (`meta.schema_version`). Version 1 indexed
/// whole keys (a primary key on `entries`); 2 indexes their prefix; 3 numbers commits with
/// sequence `commit_seq` where 1 and 2 counted them in `meta.commits`; 4 adds leases on queue
/// items (`queue_items.lease_ends`, `lease_token` and `deliveries`, as the SQLite schema's
/// version 5 does). Opening a schema of an older version turns it into this one.
pub const SCHEMA_VERSION: i64 = 4;

/// The schema used when none is chosen.
pub const DEFAULT_SCHEMA: &str = "easycaching";

/// The most expired rows one sweep removes.
pub const SWEEP_ROWS: i64 = 256;

/// The change log keeps at least this many recent changes.
const CHANGE_LOG_RETAINED: i64 = 10_000;
/// Old changes are pruned once every this many batches.
const PRUNE_EVERY_BATCHES: u64 = 256;
/// The longest a writer goes without looking for expired entries, in ms.
const SWEEP_LOOK_EVERY_MS: i64 = 1000;
/// Idle read connections kept.
const MAX_IDLE_READERS: usize = 8;

/// The tables, in the schema chosen (the connection's `search_path`).
const SCHEMA: &str = concat!(
    "
    CREATE TABLE IF NOT EXISTS meta (
        id             integer PRIMARY KEY CHECK (id = 1),
        schema_version bigint NOT NULL,
        pruned_through bigint NOT NULL DEFAULT 0
    );
    CREATE SEQUENCE IF NOT EXISTS commit_seq;
    CREATE TABLE IF NOT EXISTS caches (
        id          bigserial PRIMARY KEY,
        name        text COLLATE \"C\" NOT NULL UNIQUE,
        entry_count bigint NOT NULL DEFAULT 0,
        byte_count  bigint NOT NULL DEFAULT 0,
        created_at  bigint NOT NULL DEFAULT extract(epoch FROM now())::bigint
    );
    CREATE TABLE IF NOT EXISTS entries (
        cache_id   bigint NOT NULL,
        key        text COLLATE \"C\" NOT NULL,
        value      text NOT NULL,
        expires_at bigint
    );
    CREATE INDEX IF NOT EXISTS entries_by_key ON entries (cache_id, ",
    key_prefix!("key"),
    ");
    CREATE INDEX IF NOT EXISTS entries_by_expiry ON entries (expires_at) WHERE expires_at IS NOT NULL;
    CREATE INDEX IF NOT EXISTS entries_expiring_by_cache ON entries (cache_id, expires_at)
        WHERE expires_at IS NOT NULL;
    CREATE TABLE IF NOT EXISTS queues (
        id         bigserial PRIMARY KEY,
        name       text COLLATE \"C\" NOT NULL UNIQUE,
        item_count bigint NOT NULL DEFAULT 0,
        byte_count bigint NOT NULL DEFAULT 0,
        next_pos   bigint NOT NULL DEFAULT 1,
        first_pos  bigint NOT NULL DEFAULT 1,
        created_at bigint NOT NULL DEFAULT extract(epoch FROM now())::bigint
    );
    CREATE TABLE IF NOT EXISTS queue_items (
        queue_id bigint NOT NULL,
        pos      bigint NOT NULL,
        value    text NOT NULL,
        PRIMARY KEY (queue_id, pos)
    );
    ALTER TABLE queue_items ADD COLUMN IF NOT EXISTS lease_ends bigint;
    ALTER TABLE queue_items ADD COLUMN IF NOT EXISTS lease_token bigint;
    ALTER TABLE queue_items ADD COLUMN IF NOT EXISTS deliveries bigint NOT NULL DEFAULT 0;
    CREATE SEQUENCE IF NOT EXISTS change_seq;
    CREATE TABLE IF NOT EXISTS change_log (
        seq      bigint PRIMARY KEY,
        writer   bigint NOT NULL,
        cache_id bigint NOT NULL,
        kind     smallint NOT NULL,
        key      text
    );"
);

/// A PostgreSQL server, as messages name it: `postgres://user@host:port/dbname`, never with
/// the password.
#[derive(Clone)]
struct Server {
    config: Config,
    /// Makes the TLS sessions the URL's `sslmode` asks for (see `tls`).
    tls: MakeRustlsConnect,
    /// `sslmode=allow`: a connection refused without TLS is tried again with it.
    retry_with_tls: bool,
    described: String,
    schema: String,
    busy_timeout: Duration,
}

impl Server {
    fn error(&self, error: postgres::Error) -> Error {
        if error.code() == Some(&postgres::error::SqlState::LOCK_NOT_AVAILABLE) {
            return Error::Busy { path: self.described.clone().into(), waited: self.busy_timeout };
        }
        let detail = match error.as_db_error() {
            Some(db) => format!("{}: {}", db.severity(), db.message()),
            None => match std::error::Error::source(&error) {
                Some(source) => format!("{error}: {source}"),
                None => error.to_string(),
            },
        };
        Error::Storage(format!("PostgreSQL at {} (schema {}): {detail}", self.described, self.schema))
    }

    /// A new connection, set up for the schema.
    fn connect(&self) -> Result<Client> {
        let mut client = match self.config.connect(self.tls.clone()) {
            Err(refused) if self.retry_with_tls => {
                tracing::debug!(%refused, "connecting without TLS failed; trying with TLS (sslmode=allow)");
                let mut with_tls = self.config.clone();
                with_tls.ssl_mode(postgres::config::SslMode::Require);
                with_tls.connect(self.tls.clone())
            }
            connected => connected,
        }
        .map_err(|e| self.error(e))?;
        // 0 turns Postgres's timeout off: a busy timeout of 0 waits as little as it can instead.
        let timeout_ms = self.busy_timeout.as_millis().clamp(1, i32::MAX as u128);
        // Every statement of the store finds its rows through an index, and a connection keeps
        // its statements' plans. Planned while a table is young (a new schema, before
        // autovacuum's first `ANALYZE`), a plan may scan the table whole, and keeps doing so as
        // the table grows: 8 writers' sets of 8 keys each took 640 µs a statement that way,
        // against about 100 µs through the index. `enable_seqscan = off` leaves a scan of the
        // table only to statements that have no index to use.
        client
            .batch_execute(&format!(
                "SET search_path TO {}; SET synchronous_commit = on; SET lock_timeout = {timeout_ms};
                 SET standard_conforming_strings = on; SET enable_seqscan = off;",
                quote_ident(&self.schema)
            ))
            .map_err(|e| self.error(e))?;
        Ok(client)
    }

    /// The advisory lock of the schema's writers.
    fn lock_key(&self) -> i64 {
        // FNV-1a over the schema's name: stable across processes and builds.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in b"easycaching:".iter().chain(self.schema.as_bytes()) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hash as i64
    }

    /// The channel commits are announced on.
    fn channel(&self) -> String {
        format!("easycaching.{}", self.schema)
    }
}

/// `name` as an SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Describes the server of a connection URL without its password, or says the URL is none.
pub(crate) fn describe_url(url: &str) -> String {
    tls::take_tls_options(url)
        .ok()
        .and_then(|(rest, _)| Config::from_str(&rest).ok())
        .map_or_else(|| "postgres://(an invalid URL)".to_owned(), |config| describe(&config))
}

/// Describes a server without its password.
fn describe(config: &Config) -> String {
    let user = config.get_user().unwrap_or("");
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(index, host)| {
            let host = match host {
                Host::Tcp(name) => name.clone(),
                #[cfg(unix)]
                Host::Unix(path) => path.display().to_string(),
            };
            match config.get_ports().get(index).or(config.get_ports().first()) {
                Some(port) => format!("{host}:{port}"),
                None => host,
            }
        })
        .collect();
    let db = config.get_dbname().unwrap_or(user);
    format!("postgres://{user}@{}/{db}", hosts.join(","))
}

/// A commit number as a change token (the second word tells tokens from the default).
fn token_of(commits: u64) -> ChangeToken {
    ChangeToken([commits, !commits])
}

/// The writer's connection and its bookkeeping.
struct Writer {
    client: Option<Connection>,
    next_sweep_at: i64,
    batches: u64,
}

/// A store in a PostgreSQL database. See the [module documentation](self).
///
/// ```no_run
/// use easycaching::CacheManager;
/// use easycaching::store::PostgresStore;
///
/// let store = PostgresStore::open("postgres://app@db.internal/app")?;
/// let manager = CacheManager::builder("postgres://app@db.internal/app").open_with_store(store)?;
/// // or, the same: CacheManager::builder_postgres("postgres://app@db.internal/app").open()?
/// # Ok::<(), easycaching::Error>(())
/// ```
pub struct PostgresStore {
    server: Server,
    writer: Mutex<Writer>,
    readers: Mutex<Vec<Connection>>,
    /// This store's id in the change log: it skips its own changes.
    writer_id: i64,
    /// The newest commit number known (see the module docs).
    commits: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    listener: Option<JoinHandle<()>>,
    /// Where I/O runs for callers driving an async runtime.
    io: IoThreads,
    /// What expiry and leases are told by.
    clock: Clock,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("server", &self.server.described)
            .field("schema", &self.server.schema)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Reads a page of `range` in `cache`, at most `limit` rows, with the statement of
    /// `statements` (`KEYS_PAGE` or `ENTRIES_PAGE`) for it.
    fn read_page(
        &self,
        statements: &PageStatements,
        cache: CacheId,
        range: &KeyRange<'_>,
        limit: usize,
    ) -> Result<Vec<postgres::Row>> {
        let (start, inclusive) = range.start();
        if !storable(range.prefix) {
            // No stored key holds a NUL, so none begins with this prefix.
            return Ok(Vec::new());
        }
        // A cursor with a NUL reads the keys its text up to the NUL does (see
        // `storable_cursor`); a start that is the prefix has none.
        let start = if inclusive { start } else { storable_cursor(start) };
        let end = range.end();
        let sql = statements.of(inclusive, end.is_some());
        let now = self.clock.now_ms();
        let limit = limit as i64;
        let mut parameters: Vec<&(dyn postgres::types::ToSql + Sync)> = vec![&cache.0, &start, &limit, &now];
        if let Some(end) = &end {
            parameters.push(end);
        }
        self.read(|client| client.query(sql, &parameters))
    }

    /// Opens the store in schema [`DEFAULT_SCHEMA`] of the database at `url`
    /// (`postgres://user:password@host:port/dbname`, or the key-value form libpq takes),
    /// creating its tables when they do not exist.
    pub fn open(url: &str) -> Result<PostgresStore> {
        Self::open_in_schema(url, DEFAULT_SCHEMA, crate::DEFAULT_BUSY_TIMEOUT)
    }

    /// Opens the store in `schema` (created when missing), waiting up to `busy_timeout` for
    /// another writer's lock before failing with [`Error::Busy`].
    pub fn open_in_schema(url: &str, schema: &str, busy_timeout: Duration) -> Result<PostgresStore> {
        let (url, tls) = tls::take_tls_options(url)?;
        let mut config = Config::from_str(&url).map_err(|e| {
            // The URL is not repeated: it may hold a password.
            Error::InvalidArgument(format!("not a PostgreSQL connection URL: {e}"))
        })?;
        config.ssl_mode(tls.ssl_mode());
        if schema.is_empty() || schema.len() > 48 {
            return Err(Error::InvalidArgument(format!(
                "a PostgreSQL schema name of {} bytes: it takes 1 to 48",
                schema.len()
            )));
        }
        let server = Server {
            described: describe(&config),
            config,
            tls: tls.connector()?,
            retry_with_tls: tls.retry_with_tls(),
            schema: schema.to_owned(),
            busy_timeout,
        };
        let io = IoThreads::default();
        let (client, commits, stop, listener) = io.run(|| -> Result<_> {
            let mut client = server.connect()?;
            let commits = Arc::new(AtomicU64::new(prepare(&server, &mut client)?));
            let stop = Arc::new(AtomicBool::new(false));
            let listener = listen(&server, commits.clone(), stop.clone())?;
            Ok((client, commits, stop, listener))
        })??;
        Ok(PostgresStore {
            server,
            writer: Mutex::new(Writer {
                client: Some(Connection::new(client)),
                next_sweep_at: 0,
                batches: 0,
            }),
            readers: Mutex::new(Vec::new()),
            writer_id: fastrand::i64(1..i64::MAX),
            commits,
            stop,
            listener: Some(listener),
            io,
            clock: Clock::system(),
        })
    }

    /// Tells expiry and leases by `clock` rather than the system's wall clock (see
    /// [`ManualClock`](crate::ManualClock)).
    pub fn with_clock(mut self, clock: impl Into<Clock>) -> PostgresStore {
        self.clock = clock.into();
        self
    }

    /// The server, as messages name it (no password).
    pub fn server(&self) -> &str {
        &self.server.described
    }

    /// The schema the store's tables are in.
    pub fn schema(&self) -> &str {
        &self.server.schema
    }

    /// Runs `read` on a read connection of the pool.
    fn read<T: Send>(
        &self,
        read: impl FnMut(&mut Connection) -> std::result::Result<T, postgres::Error> + Send,
    ) -> Result<T> {
        self.io.run(|| self.read_here(read))?
    }

    fn read_here<T>(
        &self,
        mut read: impl FnMut(&mut Connection) -> std::result::Result<T, postgres::Error>,
    ) -> Result<T> {
        let pooled = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let (mut client, pooled) = match pooled {
            Some(client) if !client.is_closed() => (client, true),
            _ => (Connection::new(self.server.connect()?), false),
        };
        let mut result = read(&mut client);
        if result.is_err() && client.is_closed() && pooled {
            // A pooled connection closed since (see `begin`): a read runs again on a new one.
            client = Connection::new(self.server.connect()?);
            result = read(&mut client);
        }
        let result = result.map_err(|e| self.server.error(e));
        if !client.is_closed() {
            let mut readers = self.readers.lock().unwrap_or_else(|p| p.into_inner());
            if readers.len() < MAX_IDLE_READERS {
                readers.push(client);
            }
        }
        result
    }

    /// Runs `read` in one read-only snapshot.
    fn snapshot<T: Send>(
        &self,
        mut read: impl FnMut(&mut postgres::Transaction<'_>) -> std::result::Result<T, postgres::Error> + Send,
    ) -> Result<T> {
        self.read(|client| {
            let mut transaction = client
                .client()
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let value = read(&mut transaction)?;
            transaction.commit()?;
            Ok(value)
        })
    }

    /// Begins a write transaction on the writer's connection, made first when there is none,
    /// in one round trip: takes the writers' lock and sets savepoint `write` for the first
    /// write (see `writes::Batch::add`). A connection found dead (the server
    /// restarted, or a proxy or an administrator closed it) is made anew once: nothing it was
    /// sent had run.
    fn begin<'w>(&self, connection: &'w mut Option<Connection>) -> Result<&'w mut Connection> {
        let sql = format!("BEGIN; SELECT pg_advisory_xact_lock({}); SAVEPOINT write", self.server.lock_key());
        let mut attempts = 0;
        loop {
            attempts += 1;
            if connection.as_ref().is_none_or(Connection::is_closed) {
                *connection = None;
                *connection = Some(Connection::new(self.server.connect()?));
            }
            let Some(client) = connection.as_mut() else {
                return Err(Error::Storage("internal error: no writer connection".into()));
            };
            match client.client().batch_execute(&sql) {
                Ok(()) => break,
                Err(error) if attempts == 1 && client.is_closed() => {
                    tracing::info!(%error, "the writer's connection was closed; connecting again");
                }
                Err(error) => return Err(rollback(client, &self.server, error)),
            }
        }
        connection.as_mut().ok_or_else(|| Error::Storage("internal error: no writer connection".into()))
    }

    fn transaction(
        &self,
        writer: &mut Writer,
        writes: &mut dyn Writes,
        taken: &mut usize,
    ) -> Result<Applied> {
        let Some(first) = writes.next_write() else {
            return Ok(Applied { results: Vec::new(), sync: SyncTarget::Visible, own_commit: None });
        };
        *taken = 1;
        let client = self.begin(&mut writer.client)?;
        let server = &self.server;
        let mut batch = writes::Batch::new(client, server, self.writer_id, &self.clock);
        let mut next = Some(first);
        while let Some(write) = next {
            batch.add(write)?;
            next = writes.next_write();
            *taken += usize::from(next.is_some());
        }
        batch.apply_gathered()?;
        writer.batches += 1;
        let now = batch.now();
        if now >= writer.next_sweep_at {
            writer.next_sweep_at = match batch.sweep()? {
                Ok(removed) if removed >= SWEEP_ROWS as u64 => now,
                Ok(_) => now + SWEEP_LOOK_EVERY_MS,
                Err(error) => {
                    tracing::warn!(%error, "sweeping expired entries failed");
                    now + SWEEP_LOOK_EVERY_MS
                }
            };
        }
        let prune = writer.batches.is_multiple_of(PRUNE_EVERY_BATCHES);
        let cursor = batch.last_logged();
        let (client, results) = batch.finish();
        let committed = (|| -> std::result::Result<Option<i64>, postgres::Error> {
            if prune {
                client.execute(
                    "WITH pruned AS (DELETE FROM change_log
                         WHERE seq <= (SELECT max(seq) FROM change_log) - $1 RETURNING seq)
                     UPDATE meta SET pruned_through = greatest(pruned_through, (SELECT max(seq) FROM pruned))
                     WHERE id = 1 AND EXISTS (SELECT 1 FROM pruned)",
                    &[&CHANGE_LOG_RETAINED],
                )?;
            }
            // Numbers the commit, announces it and commits, in one round trip.
            let messages = client.client().simple_query(&format!(
                "SELECT number, pg_notify({}, number::text) FROM (SELECT nextval('commit_seq') AS number) AS numbered;
                 COMMIT",
                quote_literal(&server.channel())
            ))?;
            Ok(last_number(&messages))
        })();
        let after = match committed {
            Ok(Some(after)) => after as u64,
            Ok(None) => {
                return Err(rollback_after(client, Error::Storage("the commit was not numbered".into())));
            }
            Err(error) => return Err(rollback(client, server, error)),
        };
        self.commits.fetch_max(after, Ordering::AcqRel);
        // Numbers are taken under the writers' lock, so the number before this one is the
        // commit just before it, unless that one failed after taking it: then no commit
        // carries it, the LRU's token cannot equal it, and the LRU forgets the keys written
        // here rather than keep their values, which is always safe.
        let own_commit = Some(OwnCommit {
            before: token_of(after - 1),
            after: token_of(after),
            cursor,
            others_keys: Vec::new(),
        });
        Ok(Applied { results, sync: SyncTarget::Commit { token: token_of(after), mark: 0 }, own_commit })
    }
}

/// Whether PostgreSQL can hold `key`: its text cannot hold NUL characters. Since no stored key
/// holds one, a key that does is absent to every read, and writes that would store it are
/// refused.
pub(super) fn storable(key: &str) -> bool {
    !key.contains('\0')
}

/// `keys` without those PostgreSQL cannot hold, for a query that looks them up (none of them
/// can be stored); `None` when it can hold them all, so that the caller passes `keys` as they
/// are, without a copy.
pub(super) fn storable_only<K: AsRef<str>>(keys: &[K]) -> Option<Vec<&str>> {
    keys.iter()
        .any(|key| !storable(key.as_ref()))
        .then(|| keys.iter().map(AsRef::as_ref).filter(|key| storable(key)).collect())
}

/// A page cursor that reads the same keys as `after`: the keys after `after` are, since no
/// stored key holds a NUL, those after its text up to its first NUL (which sorts first).
fn storable_cursor(after: &str) -> &str {
    after.split('\0').next().unwrap_or(after)
}

/// The number in the first column of the last row of a simple query's answer.
fn last_number(messages: &[postgres::SimpleQueryMessage]) -> Option<i64> {
    messages.iter().rev().find_map(|message| match message {
        postgres::SimpleQueryMessage::Row(row) => row.get(0).and_then(|text| text.parse().ok()),
        _ => None,
    })
}

/// `text` as an SQL string literal (connections run with `standard_conforming_strings`).
fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Rolls back a transaction that cannot go on, answering `error`.
fn rollback_after(client: &mut Connection, error: Error) -> Error {
    if !client.is_closed()
        && let Err(rollback) = client.batch_execute("ROLLBACK")
    {
        tracing::error!(%rollback, "rolling back a failed write transaction failed too");
    }
    error
}

/// Rolls back after a failure that dooms the transaction, keeping the first error.
fn rollback(client: &mut Connection, server: &Server, error: postgres::Error) -> Error {
    rollback_after(client, server.error(error))
}

/// Creates the schema and tables unless they exist, checks the schema version, and answers the
/// commit number. Under the writers' lock, so processes opening together do not race.
fn prepare(server: &Server, client: &mut Client) -> Result<u64> {
    let fail = |e| server.error(e);
    let mut transaction = client.transaction().map_err(fail)?;
    transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&server.lock_key()]).map_err(fail)?;
    // The catalog, not information_schema, which shows only the tables this role may use.
    let (schema_exists, tables, has_meta): (bool, i64, bool) = transaction
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1),
                    (SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = $1 AND tablename <> 'meta'),
                    EXISTS (SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = $1 AND tablename = 'meta')",
            &[&server.schema],
        )
        .and_then(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
        .map_err(fail)?;
    if !schema_exists {
        transaction
            .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(&server.schema)))
            .map_err(fail)?;
    }
    if !has_meta && tables > 0 {
        return Err(Error::NotOurDatabase {
            path: server.described.clone().into(),
            reason: format!(
                "schema {} holds {tables} tables of another application; choose another schema",
                server.schema
            ),
        });
    }
    let version: Option<i64> = match has_meta {
        true => transaction
            .query_opt("SELECT schema_version FROM meta WHERE id = 1", &[])
            .map_err(fail)?
            .map(|row| row.try_get(0))
            .transpose()
            .map_err(fail)?,
        false => None,
    };
    if let Some(found) = version
        && found > SCHEMA_VERSION
    {
        return Err(Error::SchemaTooNew {
            path: server.described.clone().into(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    // A schema of this version is used as it is: a role that does not own its tables (one
    // granted only reads and writes) may open it. Creating or upgrading takes its owner.
    if version != Some(SCHEMA_VERSION) {
        transaction.batch_execute(SCHEMA).map_err(fail)?;
        // Version 1's primary key held whole keys; the index made just now holds their prefix.
        transaction
            .batch_execute("ALTER TABLE entries DROP CONSTRAINT IF EXISTS entries_pkey")
            .map_err(fail)?;
        // Versions 1 and 2 counted commits in `meta.commits`: the sequence made just now goes on
        // from there, so numbers never go back. The column goes, so that a process of an older
        // build still writing fails rather than numbering commits apart from this one's.
        if version.is_some_and(|version| version < 3) {
            transaction
                .batch_execute(
                    "SELECT setval('commit_seq', greatest(commits, 1), commits > 0) FROM meta WHERE id = 1;
                     ALTER TABLE meta DROP COLUMN commits",
                )
                .map_err(fail)?;
        }
        transaction
            .execute("UPDATE meta SET schema_version = $1 WHERE id = 1", &[&SCHEMA_VERSION])
            .map_err(fail)?;
        transaction
            .execute(
                "INSERT INTO meta (id, schema_version) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
                &[&SCHEMA_VERSION],
            )
            .map_err(fail)?;
    }
    let commits: i64 = transaction.query_one(LAST_COMMIT, &[]).and_then(|r| r.try_get(0)).map_err(fail)?;
    transaction.commit().map_err(fail)?;
    Ok(commits as u64)
}

/// The number of the newest commit (0 before the first). `pg_sequence_last_value` rather than
/// `SELECT last_value FROM commit_seq`, which would take `SELECT` on the sequence where
/// numbering commits takes only `USAGE`.
const LAST_COMMIT: &str = "SELECT coalesce(pg_sequence_last_value('commit_seq'), 0)";

/// Starts the thread that listens for commits and raises `commits` (see the module docs).
fn listen(server: &Server, commits: Arc<AtomicU64>, stop: Arc<AtomicBool>) -> Result<JoinHandle<()>> {
    let mut client = Some(listening(server)?);
    let server = server.clone();
    std::thread::Builder::new()
        .name("easycaching-pg-listen".into())
        .spawn(move || {
            while !stop.load(Ordering::Acquire) {
                let Some(connected) = client.as_mut() else {
                    std::thread::sleep(Duration::from_secs(1));
                    match listening(&server) {
                        Ok(mut fresh) => {
                            // Commits made while we were not listening: noticed now.
                            if let Ok(row) = fresh.query_one(LAST_COMMIT, &[])
                                && let Ok(newest) = row.try_get::<_, i64>(0)
                            {
                                commits.fetch_max(newest as u64, Ordering::AcqRel);
                            }
                            client = Some(fresh);
                        }
                        Err(error) => tracing::debug!(%error, "reconnecting to listen for commits failed"),
                    }
                    continue;
                };
                let failed = !wait_for_commits(connected, &commits);
                if failed || connected.is_closed() {
                    client = None;
                }
            }
        })
        .map_err(|e| Error::Storage(format!("cannot start the thread listening for commits: {e}")))
}

/// Raises `commits` to the numbers the notifications that come within the next 200 ms carry,
/// then returns, however many keep coming, so that the caller sees in time that its store was
/// dropped (a wait that lasted while notifications came kept the thread and its connection
/// alive for as long as other hosts wrote); `false` when the connection failed (to be made
/// again).
fn wait_for_commits(connected: &mut Client, commits: &AtomicU64) -> bool {
    let deadline = Instant::now() + Duration::from_millis(200);
    let mut notifications = connected.notifications();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        match postgres::fallible_iterator::FallibleIterator::next(&mut notifications.timeout_iter(left)) {
            Ok(Some(notification)) => {
                if let Ok(number) = notification.payload().parse::<u64>() {
                    commits.fetch_max(number, Ordering::AcqRel);
                }
            }
            Ok(None) => return true,
            Err(error) => {
                tracing::warn!(%error, "listening for other hosts' commits failed; reconnecting");
                return false;
            }
        }
    }
}

fn listening(server: &Server) -> Result<Client> {
    let mut client = server.connect()?;
    client
        .batch_execute(&format!("LISTEN {}", quote_ident(&server.channel())))
        .map_err(|e| server.error(e))?;
    Ok(client)
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // The listener sees this within its poll (200 ms) and closes its connection; not
        // waited for, so dropping a store (ending a command) does not wait either.
        self.stop.store(true, Ordering::Release);
        drop(self.listener.take());
        // Closing a connection blocks on the client's runtime: not on a thread driving one
        // (a manager dropped as `easycaching serve` shuts down).
        let writer = self.writer.get_mut().unwrap_or_else(|p| p.into_inner()).client.take();
        let readers = std::mem::take(self.readers.get_mut().unwrap_or_else(|p| p.into_inner()));
        if in_runtime() {
            let _ = std::thread::Builder::new().spawn(move || drop((writer, readers)));
        }
    }
}

/// A value read back: only checked JSON is ever stored, so it is not parsed again.
fn json(text: String) -> Json {
    Json::trusted(text)
}

fn stats_of(entries: i64, bytes: i64) -> Stats {
    Stats { entries: entries.max(0) as u64, bytes: bytes.max(0) as u64 }
}

fn listed(row: &postgres::Row) -> std::result::Result<Listed, postgres::Error> {
    Ok(Listed {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        stats: stats_of(row.try_get(2)?, row.try_get(3)?),
    })
}

impl Store for PostgresStore {
    /// Writes on the calling thread, or, when it drives an async runtime, on one of the
    /// store's (see the module docs).
    fn apply(&self, writes: &mut dyn Writes) -> Applied {
        let mut taken = 0;
        let applied = self.io.run(|| {
            let mut writer = self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            self.transaction(&mut writer, writes, &mut taken)
        });
        applied.and_then(|applied| applied).unwrap_or_else(|error| {
            while writes.next_write().is_some() {
                taken += 1;
            }
            Applied { results: vec![Err(error); taken], sync: SyncTarget::Visible, own_commit: None }
        })
    }

    /// Nothing to do: commits are durable when they return (`synchronous_commit = on`).
    fn sync(&self, _target: SyncTarget) -> Result<()> {
        Ok(())
    }

    fn get(&self, cache: CacheId, key: &str) -> Result<Option<Stored>> {
        if !storable(key) {
            return Ok(None);
        }
        let row = self.read(|client| {
            client.query_opt(
                concat!("SELECT value, expires_at FROM entries WHERE cache_id = $1 AND ", key_is!("$2")),
                &[&cache.0, &key],
            )
        })?;
        let stored = row
            .map(|row| -> Result<Stored> {
                let value: String = row.try_get(0).map_err(|e| self.server.error(e))?;
                Ok(Stored {
                    value: json(value),
                    expires_at: row.try_get(1).map_err(|e| self.server.error(e))?,
                })
            })
            .transpose()?;
        Ok(stored.filter(|stored| !self.clock.expired(stored.expires_at)))
    }

    fn get_many(&self, cache: CacheId, keys: &[&str], max_bytes: usize) -> Result<Vec<Option<Stored>>> {
        let storable = storable_only(keys);
        let asked: &(dyn ToSql + Sync) = match &storable {
            Some(storable) => storable,
            None => &keys,
        };
        let rows = self.read(|client| {
            client.query(
                concat!("SELECT key, value, expires_at FROM entries WHERE cache_id = $1 AND ", key_in!("$2")),
                &[&cache.0, asked],
            )
        })?;
        let mut found = std::collections::HashMap::with_capacity(rows.len());
        for row in rows {
            let fail = |e| self.server.error(e);
            let key: String = row.try_get(0).map_err(fail)?;
            let expires_at: Option<i64> = row.try_get(2).map_err(fail)?;
            if !self.clock.expired(expires_at) {
                found.insert(key, Stored { value: json(row.try_get(1).map_err(fail)?), expires_at });
            }
        }
        let mut bytes = 0;
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            let value = found.get(*key).cloned();
            bytes += value.as_ref().map_or(0, |stored| stored.value.len());
            if bytes > max_bytes {
                return Err(super::too_many_bytes(bytes, max_bytes));
            }
            values.push(value);
        }
        Ok(values)
    }

    fn contains(&self, cache: CacheId, key: &str) -> Result<bool> {
        if !storable(key) {
            return Ok(false);
        }
        let row = self.read(|client| {
            client.query_opt(
                concat!("SELECT expires_at FROM entries WHERE cache_id = $1 AND ", key_is!("$2")),
                &[&cache.0, &key],
            )
        })?;
        match row {
            None => Ok(false),
            Some(row) => Ok(!self.clock.expired(row.try_get(0).map_err(|e| self.server.error(e))?)),
        }
    }

    fn entries(
        &self,
        cache: CacheId,
        range: KeyRange<'_>,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Page<(String, Json)>> {
        // One more row than asked tells whether another page follows.
        let rows = self.read_page(&ENTRIES_PAGE, cache, &range, limit + 1)?;
        let entries = rows.iter().map(|row| {
            let fail = |e| self.server.error(e);
            Ok((row.try_get(0).map_err(fail)?, json(row.try_get::<_, String>(1).map_err(fail)?)))
        });
        super::entry_page(entries, limit, max_bytes)
    }

    fn keys(&self, cache: CacheId, range: KeyRange<'_>, limit: usize) -> Result<Page<String>> {
        let rows = self.read_page(&KEYS_PAGE, cache, &range, limit + 1)?;
        let keys = rows
            .iter()
            .map(|row| row.try_get(0))
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| self.server.error(e))?;
        Ok(super::key_page(keys, limit))
    }

    fn cache_stats(&self, cache: CacheId) -> Result<Option<Stats>> {
        let now = self.clock.now_ms();
        self.read(|client| {
            let row = client.query_opt(
                "SELECT entry_count - coalesce(expired.entries, 0), byte_count - coalesce(expired.bytes, 0)
                 FROM caches, LATERAL (
                     SELECT count(*) AS entries, sum(octet_length(key) + octet_length(value))::bigint AS bytes
                     FROM entries WHERE cache_id = $1 AND expires_at <= $2) AS expired
                 WHERE id = $1",
                &[&cache.0, &now],
            )?;
            row.map(|row| Ok(stats_of(row.try_get(0)?, row.try_get(1)?))).transpose()
        })
    }

    fn find_cache(&self, name: &str) -> Result<Option<CacheId>> {
        self.read(|client| {
            client
                .query_opt("SELECT id FROM caches WHERE name = $1", &[&name])?
                .map(|row| row.try_get(0))
                .transpose()
        })
        .map(|id| id.map(CacheId))
    }

    fn list_caches(&self) -> Result<Vec<Listed>> {
        let now = self.clock.now_ms();
        self.read(|client| {
            client
                .query(
                    "SELECT id, name, entry_count - coalesce(expired.entries, 0),
                            byte_count - coalesce(expired.bytes, 0)
                     FROM caches LEFT JOIN (
                         SELECT cache_id, count(*) AS entries,
                                sum(octet_length(key) + octet_length(value))::bigint AS bytes
                         FROM entries WHERE expires_at <= $1 GROUP BY cache_id
                     ) AS expired ON expired.cache_id = caches.id
                     ORDER BY name",
                    &[&now],
                )?
                .iter()
                .map(listed)
                .collect()
        })
    }

    fn peek(&self, queue: &Target<QueueId>) -> Result<Option<Json>> {
        let now = self.clock.now_ms();
        let row = self.read(|client| {
            client.query_opt(
                "SELECT (SELECT value FROM queue_items
                         WHERE queue_id = q.id AND (lease_ends IS NULL OR lease_ends <= $2) ORDER BY pos LIMIT 1)
                 FROM queues q WHERE q.id = $1",
                &[&queue.id.0, &now],
            )
        })?;
        let row = row.ok_or_else(|| Error::QueueDeleted(queue.name.to_string()))?;
        let value: Option<String> = row.try_get(0).map_err(|e| self.server.error(e))?;
        Ok(value.map(json))
    }

    fn queue_items(
        &self,
        queue: &Target<QueueId>,
        after: Option<i64>,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Page<Json, i64>> {
        let page = self.snapshot(|transaction| {
            if transaction.query_opt("SELECT 1 FROM queues WHERE id = $1", &[&queue.id.0])?.is_none() {
                return Ok(None);
            }
            let sql = if after.is_some() {
                "SELECT pos, value FROM queue_items WHERE queue_id = $1 AND pos > $2 ORDER BY pos LIMIT $3"
            } else {
                "SELECT pos, value FROM queue_items WHERE queue_id = $1 AND pos >= $2 ORDER BY pos LIMIT $3"
            };
            let rows =
                transaction.query(sql, &[&queue.id.0, &after.unwrap_or(i64::MIN), &((limit + 1) as i64)])?;
            let mut items = Vec::new();
            let mut last = None;
            let mut bytes = 0;
            for row in rows {
                if items.len() == limit || bytes >= max_bytes {
                    return Ok(Some(Page { items, next: last }));
                }
                let pos: i64 = row.try_get(0)?;
                let value: String = row.try_get(1)?;
                bytes += value.len();
                items.push(json(value));
                last = Some(pos);
            }
            Ok(Some(Page { items, next: None }))
        })?;
        page.ok_or_else(|| Error::QueueDeleted(queue.name.to_string()))
    }

    fn queue_stats(&self, queue: QueueId) -> Result<Option<Stats>> {
        self.read(|client| {
            client
                .query_opt("SELECT item_count, byte_count FROM queues WHERE id = $1", &[&queue.0])?
                .map(|row| Ok(stats_of(row.try_get(0)?, row.try_get(1)?)))
                .transpose()
        })
    }

    fn find_queue(&self, name: &str) -> Result<Option<QueueId>> {
        self.read(|client| {
            client
                .query_opt("SELECT id FROM queues WHERE name = $1", &[&name])?
                .map(|row| row.try_get(0))
                .transpose()
        })
        .map(|id| id.map(QueueId))
    }

    fn list_queues(&self) -> Result<Vec<Listed>> {
        self.read(|client| {
            client
                .query("SELECT id, name, item_count, byte_count FROM queues ORDER BY name", &[])?
                .iter()
                .map(listed)
                .collect()
        })
    }

    /// Refused: a PostgreSQL database is backed up with the server's own tools (`pg_dump`).
    fn backup(&self, dest: &std::path::Path) -> Result<super::Copied> {
        Err(Error::Storage(format!(
            "cannot write a backup of {} to {}: back a PostgreSQL database up with pg_dump \
             (e.g. pg_dump --schema={} …)",
            self.server.described,
            dest.display(),
            self.server.schema
        )))
    }

    fn change_token(&self) -> ChangeToken {
        token_of(self.commits.load(Ordering::Acquire))
    }

    fn change_cursor(&self) -> Result<i64> {
        self.read(|client| {
            client
                .query_one(
                    "SELECT greatest(coalesce((SELECT max(seq) FROM change_log), 0),
                                     (SELECT pruned_through FROM meta WHERE id = 1))",
                    &[],
                )?
                .try_get(0)
        })
    }

    fn changes_since(&self, cursor: i64) -> Result<Changes> {
        let writer = self.writer_id;
        self.snapshot(|transaction| {
            let row = transaction.query_one(
                "SELECT (SELECT max(seq) FROM change_log), (SELECT pruned_through FROM meta WHERE id = 1)",
                &[],
            )?;
            let newest: Option<i64> = row.try_get(0)?;
            let pruned: i64 = row.try_get(1)?;
            let newest = newest.unwrap_or(0).max(pruned).max(cursor);
            if cursor < pruned {
                return Ok(Changes::Overflow { cursor: newest });
            }
            let rows = transaction.query(
                "SELECT cache_id, kind, key FROM change_log WHERE seq > $1 AND writer <> $2 ORDER BY seq",
                &[&cursor, &writer],
            )?;
            let mut changes = Vec::with_capacity(rows.len());
            for row in rows {
                let cache = CacheId(row.try_get(0)?);
                changes.push(match row.try_get::<_, i16>(1)? {
                    writes::KIND_CLEARED => Change::Cleared(cache),
                    writes::KIND_DROPPED => Change::Dropped(cache),
                    _ => Change::Key(cache, row.try_get(2)?),
                });
            }
            Ok(Changes::Since { changes, cursor: newest })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_is_described_without_its_password() {
        let config = Config::from_str("postgres://ada:s3cret@db.example:5433/app").expect("a URL");
        let described = describe(&config);
        assert_eq!(described, "postgres://ada@db.example:5433/app");
        assert!(!described.contains("s3cret"));
        let with_tls =
            describe_url("postgres://ada:s3cret@db.example/app?sslmode=verify-full&sslrootcert=/ca.pem");
        assert_eq!(with_tls, "postgres://ada@db.example:5432/app");
        assert_eq!(describe_url("mysql://nope"), "postgres://(an invalid URL)");
    }

    #[test]
    fn the_sql_indexes_the_prefix_the_constant_names() {
        assert_eq!(key_prefix!("key"), format!("left(key, {KEY_PREFIX_CHARS})"));
        assert!(SCHEMA.contains(&format!("ON entries (cache_id, left(key, {KEY_PREFIX_CHARS}))")));
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
