//! Against Redis on loopback, the usual choice for a cache shared by processes: one client
//! reading, one client writing with fsync before every acknowledgement (`appendfsync always`,
//! easycaching's default durability), and 50 concurrent writers.

use std::sync::Mutex;

use anyhow::Result;
use easycaching::Durability;

use super::writes::{beside_perfect_batching, perfectly_batched_round, sets_round};
use super::{Budget, section};
use crate::baseline::{GATHER_WAIT, PerfectBatches, RawSqlite};
use crate::fixture::{self, CACHE, KEY, Scratch, VALUE, key};
use crate::measure::{concurrent, in_turns, paired, round_op};
use crate::micro::MISS_KEYS;
use crate::redis::{Persistence, RedisServer};
use crate::report::{Figure, Goal, Unit};

/// Concurrent writers, as issue 7 asks.
const WRITERS: usize = 50;

/// Every Redis figure, or one line saying why there are none.
pub fn run(budget: Budget) -> Result<Vec<Figure>> {
    let scratch = Scratch::new()?;
    let server = match RedisServer::start(scratch.path(), Persistence::None) {
        Ok(server) => server,
        Err(error) => {
            eprintln!("easycaching-bench: skipping Redis: {error:#}");
            return Ok(vec![
                Figure::new(section::REDIS, "not measured", 0.0, Unit::OpsPerSec)
                    .note(format!("redis-server could not start: {error:#}")),
            ]);
        }
    };
    let mut figures = Vec::new();

    // Reads: a hit in the LRU, and a miss that reads SQLite, against GET on one connection.
    let manager = fixture::manager(&scratch.db("ours.db"), Durability::Full)?;
    fixture::fill(&manager, MISS_KEYS)?;
    let cache = manager.open_cache(CACHE)?;
    cache.set(KEY, fixture::value())?;
    let mut client = server.connect()?;
    client.set(KEY, VALUE)?;
    let (ours, base) = paired(
        budget.rounds,
        budget.round,
        5_000_000,
        |_| assert!(cache.get(KEY).expect("get").is_some()),
        |_| assert!(client.get(KEY).expect("redis get").is_some()),
    );
    figures.push(
        Figure::new(section::REDIS, "get, 1 client, LRU hit", ours.ns_per_op(), Unit::NsPerOp)
            .against("Redis GET over loopback", base.ns_per_op())
            .goal(Goal::RatioAtMost(1.0)),
    );
    let keys: Vec<String> = (0..MISS_KEYS).map(key).collect();
    let (ours, base) = paired(
        budget.rounds,
        budget.round,
        5_000_000,
        |i| assert!(cache.get(&keys[(i % MISS_KEYS) as usize]).expect("get").is_some()),
        |_| assert!(client.get(KEY).expect("redis get").is_some()),
    );
    figures.push(
        Figure::new(
            section::REDIS,
            "get, 1 client, LRU miss (reads SQLite)",
            ours.ns_per_op(),
            Unit::NsPerOp,
        )
        .against("Redis GET over loopback", base.ns_per_op()),
    );
    drop(server);

    // Durable writes: one client, then 50.
    let server = RedisServer::start(scratch.path(), Persistence::FsyncAlways)?;
    let mut client = server.connect()?;
    let (ours, base) = paired(
        budget.rounds,
        budget.round,
        200_000,
        |i| cache.set(&key(i % 1000), fixture::numbered_json(i)).expect("set"),
        |i| client.set(&key(i % 1000), &fixture::numbered_value(i)).expect("redis set"),
    );
    figures.push(
        Figure::new(section::REDIS, "set, 1 client, fsync before ack", ours.per_sec(), Unit::OpsPerSec)
            .against("Redis SET, appendfsync always", base.per_sec())
            .goal(Goal::RatioAtLeast(1.0)),
    );
    // Every key written before, as in the other write figures: each write replaces a value.
    // Beside Redis, raw rusqlite batching the 50 writers perfectly, on easycaching's page size:
    // what batching alone makes of SQLite's writes here, with none of easycaching's own work.
    let writer_key = |thread: usize, i: u64| key(thread as u64 * 1_000_000 + i % 1000);
    let page_size = fixture::page_size(&scratch.db("ours.db"))?;
    let mut raw = RawSqlite::open_with_pages(&scratch.db("batched.db"), "FULL", Some(page_size))?;
    for thread in 0..WRITERS {
        cache.set_many((0..1000).map(|i| (writer_key(thread, i), fixture::value())))?;
        raw.set_many((0..1000).map(|i| (writer_key(thread, i), VALUE.to_owned())))?;
    }
    let batched = PerfectBatches::new(raw, WRITERS, GATHER_WAIT);
    let clients = (0..WRITERS).map(|_| server.connect().map(Mutex::new)).collect::<Result<Vec<_>>>()?;
    let [ours, base, perfect] = in_turns::<anyhow::Error, 3>(
        budget.rounds,
        [
            &mut |round| Ok(sets_round(&cache, WRITERS, budget, round, writer_key)),
            &mut |round| {
                Ok(concurrent(WRITERS, budget.round, |thread, i| {
                    let value = fixture::numbered_value(round_op(round, i));
                    clients[thread].lock().unwrap().set(&writer_key(thread, i), &value).expect("redis set")
                }))
            },
            &mut |round| Ok(perfectly_batched_round(&batched, WRITERS, budget, round, writer_key)),
        ],
    )?;
    let name = "set, 50 concurrent writers, fsync before ack";
    let redis = ("Redis SET, appendfsync always, 50 clients", base.per_sec());
    figures.push(
        Figure::new(section::REDIS, name, ours.per_sec(), Unit::OpsPerSec)
            .against(redis.0, redis.1)
            .goal(Goal::RatioAtLeast(1.0)),
    );
    let reference = (&*format!("{WRITERS} writers, rusqlite batching perfectly"), &perfect);
    figures.extend(beside_perfect_batching(section::REDIS, (name, &ours), reference, &batched, redis)?);
    Ok(figures)
}
