//! The PostgreSQL backend against plain PostgreSQL on the same server: what a user who already
//! runs PostgreSQL would otherwise write. The baseline is a table of its own (`key text
//! PRIMARY KEY, value text`), a prepared statement per call, one connection per thread, and
//! autocommit writes with the server's durability (`synchronous_commit = on`), as
//! easycaching's; both over plain TCP. Runs when `EASYCACHING_BENCH_POSTGRES` names a server (`make bench-postgres`
//! starts one with `.ci/postgres.sh`); otherwise one row says why there are no figures.

use std::sync::Mutex;

use anyhow::{Context, Result};
use easycaching::CacheManager;
use postgres::{Client, NoTls, Statement};

use super::{Budget, section};
use crate::fixture::{self, CACHE, KEY, VALUE, key};
use crate::measure::{alternate, concurrent, paired, round_op};
use crate::report::{Figure, Unit};

/// The variable naming the server.
pub const SERVER_ENV: &str = "EASYCACHING_BENCH_POSTGRES";
/// The schema easycaching's tables go in, and the plain table's.
const SCHEMA: &str = "easycaching_bench";
const PLAIN_SCHEMA: &str = "easycaching_bench_plain";
/// Keys read and written.
const KEYS: u64 = 1000;
/// Concurrent writers, as in the SQLite write figures.
const WRITERS: usize = 8;

/// One connection to plain PostgreSQL, with its two statements prepared.
struct Plain {
    client: Client,
    get: Statement,
    set: Statement,
}

impl Plain {
    fn connect(url: &str) -> Result<Plain> {
        let mut client = Client::connect(url, NoTls)?;
        client.batch_execute(&format!("SET search_path TO {PLAIN_SCHEMA}; SET synchronous_commit = on"))?;
        let get = client.prepare("SELECT value FROM kv WHERE key = $1")?;
        let set = client.prepare(
            "INSERT INTO kv (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )?;
        Ok(Plain { client, get, set })
    }

    fn get(&mut self, key: &str) -> Option<String> {
        let row = self.client.query_opt(&self.get, &[&key]).expect("plain get");
        row.map(|row| row.get(0))
    }

    fn set(&mut self, key: &str, value: &str) {
        self.client.execute(&self.set, &[&key, &value]).expect("plain set");
    }
}

/// Every PostgreSQL figure, or one line saying why there are none.
pub fn run(budget: Budget) -> Result<Vec<Figure>> {
    let Some(url) = std::env::var(SERVER_ENV).ok().filter(|url| !url.is_empty()) else {
        return Ok(vec![Figure::new(section::POSTGRES, "not measured", 0.0, Unit::OpsPerSec).note(format!(
            "{SERVER_ENV} names no server: `make bench-postgres` starts one (.ci/postgres.sh) and takes these"
        ))]);
    };
    // Both sides over plain TCP: TLS would cost easycaching (which uses it when the server
    // offers it) a little on every round trip that the baseline does not pay.
    let separator = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{separator}sslmode=disable");
    let mut admin = Client::connect(&url, NoTls).with_context(|| format!("connecting to {SERVER_ENV}"))?;
    admin.batch_execute(&format!(
        "DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; DROP SCHEMA IF EXISTS {PLAIN_SCHEMA} CASCADE;
         CREATE SCHEMA {PLAIN_SCHEMA};
         CREATE TABLE {PLAIN_SCHEMA}.kv (key text COLLATE \"C\" PRIMARY KEY, value text NOT NULL);"
    ))?;
    let figures = measure(&url, budget);
    admin.batch_execute(&format!("DROP SCHEMA {SCHEMA} CASCADE; DROP SCHEMA {PLAIN_SCHEMA} CASCADE"))?;
    figures
}

fn measure(url: &str, budget: Budget) -> Result<Vec<Figure>> {
    let manager = CacheManager::builder_postgres(url).postgres_schema(SCHEMA).open()?;
    fixture::fill(&manager, KEYS)?;
    let cache = manager.open_cache(CACHE)?;
    cache.set(KEY, fixture::value())?;
    // No LRU: every read asks the server, as the baseline's do.
    let unbuffered = CacheManager::builder_postgres(url).postgres_schema(SCHEMA).lru_capacity(0).open()?;
    let misses = unbuffered.open_cache(CACHE)?;
    let mut plain = Plain::connect(url)?;
    for i in 0..KEYS {
        plain.set(&key(i), VALUE);
    }
    plain.set(KEY, VALUE);
    let keys: Vec<String> = (0..KEYS).map(key).collect();
    let mut figures = Vec::new();

    let (ours, base) = paired(
        budget.rounds,
        budget.round,
        5_000_000,
        |_| assert!(cache.get(KEY).expect("get").is_some()),
        |_| assert!(plain.get(KEY).is_some()),
    );
    figures.push(
        Figure::new(section::POSTGRES, "get, LRU hit", ours.ns_per_op(), Unit::NsPerOp)
            .against("PostgreSQL SELECT, prepared, over loopback", base.ns_per_op()),
    );
    let (ours, base) = paired(
        budget.rounds,
        budget.round,
        1_000_000,
        |i| assert!(misses.get(&keys[(i % KEYS) as usize]).expect("get").is_some()),
        |i| assert!(plain.get(&keys[(i % KEYS) as usize]).is_some()),
    );
    figures.push(
        Figure::new(section::POSTGRES, "get, LRU miss (reads PostgreSQL)", ours.ns_per_op(), Unit::NsPerOp)
            .against("PostgreSQL SELECT, prepared, over loopback", base.ns_per_op()),
    );
    let (ours, base) = paired(
        budget.rounds,
        budget.round,
        100_000,
        |i| cache.set(&key(i % KEYS), fixture::numbered_json(i)).expect("set"),
        |i| plain.set(&key(i % KEYS), &fixture::numbered_value(i)),
    );
    figures.push(
        Figure::new(section::POSTGRES, "set, 1 writer, durable at commit", ours.per_sec(), Unit::OpsPerSec)
            .against("PostgreSQL upsert, autocommit, synchronous_commit on", base.per_sec()),
    );

    let connections =
        (0..WRITERS).map(|_| Plain::connect(url).map(Mutex::new)).collect::<Result<Vec<_>>>()?;
    let (ours, base) = alternate(
        budget.rounds,
        |round| {
            Ok::<_, anyhow::Error>(concurrent(WRITERS, budget.round, |thread, i| {
                let i = round_op(round, i);
                cache.set(&key(thread as u64 * KEYS + i % KEYS), fixture::numbered_json(i)).expect("set")
            }))
        },
        |round| {
            Ok(concurrent(WRITERS, budget.round, |thread, i| {
                let value = fixture::numbered_value(round_op(round, i));
                connections[thread]
                    .lock()
                    .expect("a writer")
                    .set(&key(thread as u64 * KEYS + i % KEYS), &value)
            }))
        },
    )?;
    figures.push(
        Figure::new(
            section::POSTGRES,
            "set, 8 writer threads, durable at commit",
            ours.per_sec(),
            Unit::OpsPerSec,
        )
        .against("PostgreSQL upsert, autocommit, one connection per thread", base.per_sec()),
    );
    Ok(figures)
}
