//! Durable writes: one writer against raw rusqlite with the same pragmas, and 8 concurrent
//! writers (threads, then processes) where group commit shares one fsync among many writes
//! against one transaction per write. Also Spin's store design, which writes with a rollback
//! journal.

use std::path::Path;
use std::sync::Mutex;

use anyhow::Result;
use easycaching::Durability;

use super::{Budget, section};
use crate::baseline::{RawSqlite, SpinStore};
use crate::fixture::{self, CACHE, Scratch, key};
use crate::measure::{self, concurrent, paired};
use crate::report::{Figure, Goal, Unit};

/// Concurrent writers, as issue 7 asks.
pub const WRITERS: usize = 8;
/// Every writer cycles through this many keys of its own, so the tables stay small.
const KEYS_PER_WRITER: u64 = 1000;

/// One writer with the default durability (the CPU cost of a write without its fsync is a
/// micro case: `write/*-set-normal`).
pub fn single(budget: Budget) -> Result<Figure> {
    let scratch = Scratch::new()?;
    let cache = fixture::manager(&scratch.db("ours.db"), Durability::Full)?.create_cache(CACHE)?;
    let raw = RawSqlite::open(&scratch.db("raw.db"), "FULL")?;
    let (ours, base) = paired(
        budget.rounds,
        budget.round,
        200_000,
        |i| cache.set(&key(i % KEYS_PER_WRITER), fixture::numbered_json(i)).expect("set"),
        |i| raw.set(&key(i % KEYS_PER_WRITER), &fixture::numbered_value(i)).expect("raw set"),
    );
    Ok(Figure::new(
        section::WRITES,
        "set, 1 writer, default durability (fsync per commit)",
        ours.per_sec(),
        Unit::OpsPerSec,
    )
    .against("rusqlite autocommit upsert, WAL, synchronous=FULL", base.per_sec())
    .goal(Goal::RatioAtLeast(0.8)))
}

/// 8 writer threads sharing one manager, against 8 threads taking turns on one connection
/// with one transaction per write.
pub fn threads(budget: Budget) -> Result<Figure> {
    let scratch = Scratch::new()?;
    let manager = fixture::manager(&scratch.db("ours.db"), Durability::Full)?;
    let cache = manager.create_cache(CACHE)?;
    let ours = concurrent(WRITERS, budget.concurrent, |thread, i| {
        cache
            .set(&key(thread as u64 * 1_000_000 + i % KEYS_PER_WRITER), fixture::numbered_json(i))
            .expect("set")
    });
    let stats = manager.write_stats();
    let raw = Mutex::new(RawSqlite::open(&scratch.db("raw.db"), "FULL")?);
    let base = concurrent(WRITERS, budget.concurrent, |thread, i| {
        let value = fixture::numbered_value(i);
        raw.lock()
            .unwrap()
            .set(&key(thread as u64 * 1_000_000 + i % KEYS_PER_WRITER), &value)
            .expect("raw set")
    });
    Ok(Figure::new(section::WRITES, "set, 8 writer threads, FULL", ours.per_sec(), Unit::OpsPerSec)
        .against("rusqlite, one transaction per write, FULL", base.per_sec())
        .goal(Goal::RatioAtLeast(5.0))
        .note(format!("{:.1} writes per commit", stats.writes as f64 / stats.batches.max(1) as f64)))
}

/// 8 writer processes on one database file, each with its own manager (or connection).
pub fn processes(budget: Budget) -> Result<Figure> {
    let scratch = Scratch::new()?;
    let rate = |engine: &str, db: &Path| -> Result<f64> {
        let start_at = measure::unix_millis() + 1500;
        let children: Vec<Vec<String>> = (0..WRITERS)
            .map(|index| {
                let mut args = measure::timed_child("writer", engine, db, start_at, budget.concurrent);
                args.extend(["--index".to_owned(), index.to_string()]);
                args
            })
            .collect();
        let ops: u64 = measure::run_children(&children)?
            .iter()
            .map(|out| out.trim().parse::<u64>())
            .sum::<Result<_, _>>()?;
        Ok(ops as f64 / budget.concurrent.as_secs_f64())
    };
    // Create both databases first, so no child races another to make the schema.
    fixture::manager(&scratch.db("ours.db"), Durability::Full)?.create_cache(CACHE)?;
    RawSqlite::open(&scratch.db("raw.db"), "FULL")?;
    let ours = rate("easycaching", &scratch.db("ours.db"))?;
    let base = rate("rusqlite", &scratch.db("raw.db"))?;
    Ok(Figure::new(section::WRITES, "set, 8 writer processes, FULL", ours, Unit::OpsPerSec)
        .against("rusqlite, one transaction per write, FULL", base)
        .goal(Goal::RatioAtLeast(5.0)))
}

/// A child of [`processes`]: writes from `start_at` for `millis`, prints how many writes.
pub fn writer_child(engine: &str, db: &Path, start_at: u64, millis: u64, index: u64) -> Result<u64> {
    let end = start_at + millis;
    let mut done = 0;
    let keys = (0..KEYS_PER_WRITER).map(|i| key(index * 1_000_000 + i)).collect::<Vec<_>>();
    match engine {
        "easycaching" => {
            let cache = fixture::manager(db, Durability::Full)?.create_cache(CACHE)?;
            measure::sleep_until(start_at);
            while measure::unix_millis() < end {
                cache.set(&keys[(done % KEYS_PER_WRITER) as usize], fixture::numbered_json(done))?;
                done += 1;
            }
        }
        "rusqlite" => {
            let raw = RawSqlite::open(db, "FULL")?;
            measure::sleep_until(start_at);
            while measure::unix_millis() < end {
                raw.set(&keys[(done % KEYS_PER_WRITER) as usize], &fixture::numbered_value(done))?;
                done += 1;
            }
        }
        other => anyhow::bail!("no writer engine {other:?}"),
    }
    Ok(done)
}

/// Durable `set` against Spin's design: one table keyed by (store, key), one connection behind
/// a `Mutex`, SQLite's defaults (rollback journal, `synchronous = FULL`).
pub fn spin(budget: Budget) -> Result<Figure> {
    let scratch = Scratch::new()?;
    let cache = fixture::manager(&scratch.db("ours.db"), Durability::Full)?.create_cache(CACHE)?;
    let spin = SpinStore::open(&scratch.db("spin.db"))?;
    let (journal, synchronous) = spin.settings()?;
    let (ours, base) = paired(
        budget.rounds,
        budget.round,
        200_000,
        |i| cache.set(&key(i % KEYS_PER_WRITER), fixture::numbered_json(i)).expect("set"),
        |i| spin.set(&key(i % KEYS_PER_WRITER), fixture::numbered_value(i).as_bytes()).expect("spin set"),
    );
    Ok(Figure::new(section::SPIN, "set, 1 writer, durable", ours.per_sec(), Unit::OpsPerSec)
        .against(&format!("Spin design: journal_mode={journal}, synchronous={synchronous}"), base.per_sec()))
}
