//! Durable writes: one writer against raw rusqlite with the same pragmas, and 8 concurrent
//! writers (threads, then processes) where group commit shares one fsync among many writes
//! against one transaction per write. Also Spin's store design, which writes with a rollback
//! journal.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use anyhow::Result;
use easycaching::{Cache, Durability};

use super::{Budget, section};
use crate::baseline::{GATHER_WAIT, PerfectBatches, RawSqlite, SpinStore};
use crate::fixture::{self, CACHE, Scratch, VALUE, key};
use crate::measure::{self, CHILD_START_MILLIS, Rate, alternate, concurrent, in_turns, paired, round_op};
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
    let mut raw = RawSqlite::open(&scratch.db("raw.db"), "FULL")?;
    prefill(&cache, &mut raw)?;
    let (ours, base) = paired(
        budget.rounds,
        budget.round,
        200_000,
        |i| cache.set(&existing_key(0, i), fixture::numbered_json(i)).expect("set"),
        |i| raw.set(&existing_key(0, i), &fixture::numbered_value(i)).expect("raw set"),
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
/// with one transaction per write; every write replaces a value (the keys are written once
/// before). Beside them, in the same turns, raw rusqlite batching the 8 threads' writes
/// perfectly ([`PerfectBatches`], on pages of easycaching's size): a reference for what group
/// commit of writers that wait for their acknowledgement can reach on this machine, as a
/// multiple of one transaction per write, and easycaching against it.
pub fn threads(budget: Budget) -> Result<Vec<Figure>> {
    let scratch = Scratch::new()?;
    let manager = fixture::manager(&scratch.db("ours.db"), Durability::Full)?;
    let cache = manager.create_cache(CACHE)?;
    let mut raw = RawSqlite::open(&scratch.db("raw.db"), "FULL")?;
    prefill(&cache, &mut raw)?;
    let raw = Mutex::new(raw);
    let page_size = fixture::page_size(&scratch.db("ours.db"))?;
    let mut batched = RawSqlite::open_with_pages(&scratch.db("batched.db"), "FULL", Some(page_size))?;
    prefill_raw(&mut batched)?;
    let batched = PerfectBatches::new(batched, WRITERS, GATHER_WAIT);
    let before = manager.write_stats();
    let [ours, base, perfect] = in_turns::<anyhow::Error, 3>(
        budget.rounds,
        [
            &mut |round| Ok(sets_round(&cache, WRITERS, budget, round, existing_key)),
            &mut |round| {
                Ok(concurrent(WRITERS, budget.round, |thread, i| {
                    let i = round_op(round, i);
                    let value = fixture::numbered_value(i);
                    raw.lock().unwrap().set(&existing_key(thread, i), &value).expect("raw set")
                }))
            },
            &mut |round| Ok(perfectly_batched_round(&batched, WRITERS, budget, round, existing_key)),
        ],
    )?;
    let after = manager.write_stats();
    let per_commit = (after.writes - before.writes) as f64 / (after.batches - before.batches).max(1) as f64;
    let name = "set, 8 writer threads, FULL";
    let baseline = ("rusqlite, one transaction per write, FULL", base.per_sec());
    let [reference, against_it] =
        beside_perfect_batching(section::WRITES, (name, ours.per_sec()), &perfect, &batched, baseline)?;
    Ok(vec![
        Figure::new(section::WRITES, name, ours.per_sec(), Unit::OpsPerSec)
            .against(baseline.0, baseline.1)
            .goal(Goal::RatioAtLeast(5.0))
            .note(format!("{per_commit:.1} writes per commit")),
        reference,
        against_it,
    ])
}

/// One round of `writers` threads setting values in `cache`, each cycling through its keys
/// (`key(thread, i)`), a new value every write.
pub(super) fn sets_round(
    cache: &Cache,
    writers: usize,
    budget: Budget,
    round: usize,
    key: impl Fn(usize, u64) -> String + Sync,
) -> Rate {
    concurrent(writers, budget.round, |thread, i| {
        let i = round_op(round, i);
        cache.set(&key(thread, i), fixture::numbered_json(i)).expect("set")
    })
}

/// One round of `writers` threads writing through `batched`, each cycling through its keys
/// (`key(thread, i)`) as the other sides of its figure do, a new value every write.
pub(super) fn perfectly_batched_round(
    batched: &PerfectBatches,
    writers: usize,
    budget: Budget,
    round: usize,
    key: impl Fn(usize, u64) -> String + Sync,
) -> Rate {
    concurrent(writers, budget.round, |thread, i| {
        let i = round_op(round, i);
        batched.set(&key(thread, i), &fixture::numbered_value(i)).expect("batched set")
    })
}

/// The rows that put raw rusqlite batching perfectly beside the figure `ours` (its name and
/// rate): the reference against the figure's `baseline` (its name and rate), and `ours`
/// against the reference. `perfect` is the reference's rate, `batched` its batches.
pub(super) fn beside_perfect_batching(
    section: &str,
    ours: (&str, f64),
    perfect: &Rate,
    batched: &PerfectBatches,
    baseline: (&str, f64),
) -> Result<[Figure; 2]> {
    let writers = batched.writers();
    let page_size = batched.page_size()?;
    Ok([
        Figure::new(
            section,
            &format!("{writers} writers, rusqlite batching perfectly"),
            perfect.per_sec(),
            Unit::OpsPerSec,
        )
        .against(baseline.0, baseline.1)
        .note(format!(
            "{:.1} writes per commit, one of each writer; {page_size}-byte pages as easycaching's",
            batched.writes_per_commit()
        )),
        Figure::new(section, ours.0, ours.1, Unit::OpsPerSec)
            .against("rusqlite batching perfectly, as above", perfect.per_sec()),
    ])
}

/// The key of a writer thread's `i`th write: it cycles through keys of its own.
fn existing_key(thread: usize, i: u64) -> String {
    WriterKeys { index: thread as u64, first_key: 0, new_keys: false }.key(i)
}

/// Writes every key the writers cycle through, on both sides, so that the figures time
/// replacing values, not a mix of inserts and replacements that shifts as a run goes on.
fn prefill(cache: &Cache, raw: &mut RawSqlite) -> Result<()> {
    for thread in 0..WRITERS {
        let keys = || (0..KEYS_PER_WRITER).map(|i| existing_key(thread, i));
        cache.set_many(keys().map(|key| (key, fixture::value())))?;
    }
    prefill_raw(raw)
}

/// [`prefill`]'s keys, in a raw database alone.
fn prefill_raw(raw: &mut RawSqlite) -> Result<()> {
    for thread in 0..WRITERS {
        let keys = (0..KEYS_PER_WRITER).map(|i| existing_key(thread, i));
        raw.set_many(keys.map(|key| (key, VALUE.to_owned())))?;
    }
    Ok(())
}

/// 8 writer processes on one database file, each with its own manager (or connection):
/// replacing values of keys written before, and writing new keys. SQLite lets the process
/// that just committed take the write lock again ahead of those asleep in their busy
/// handlers, so one-transaction-per-write processes run mostly one at a time, at about the
/// rate of a single writer; inserts hold the lock longer and collide more.
pub fn processes(budget: Budget) -> Result<Vec<Figure>> {
    let scratch = Scratch::new()?;
    // How many writes each process got done in a round, by engine: throughput alone hides
    // whether every process got its turn.
    let spread: RefCell<BTreeMap<String, Vec<u64>>> = RefCell::default();
    let rate = |engine: &str, db: &Path, first_key: u64, new_keys: bool| -> Result<Rate> {
        let start_at = measure::unix_millis() + CHILD_START_MILLIS;
        let children: Vec<Vec<String>> = (0..WRITERS)
            .map(|index| {
                let mut args = measure::timed_child("writer", engine, db, start_at, budget.round);
                args.extend([
                    "--index".to_owned(),
                    index.to_string(),
                    "--first-key".to_owned(),
                    first_key.to_string(),
                ]);
                if new_keys {
                    args.push("--new-keys".to_owned());
                }
                args
            })
            .collect();
        let per_process: Vec<u64> = measure::run_children(&children)?
            .iter()
            .map(|out| out.trim().parse::<u64>())
            .collect::<Result<_, _>>()?;
        spread.borrow_mut().entry(engine.to_owned()).or_default().extend(per_process.iter().copied());
        Ok(Rate { ops: per_process.iter().sum(), elapsed: budget.round })
    };
    // Made (and filled) before the children start, so no child races another for the schema.
    let ours_db = scratch.db("ours.db");
    let raw_db = scratch.db("raw.db");
    prefill(
        &fixture::manager(&ours_db, Durability::Full)?.create_cache(CACHE)?,
        &mut RawSqlite::open(&raw_db, "FULL")?,
    )?;
    let mut figures = Vec::new();
    for new_keys in [false, true] {
        // New keys start past every key written so far, in a range of their own each round.
        let first_key = |round: usize| if new_keys { NEW_KEYS_FROM * (round as u64 + 1) } else { 0 };
        let (ours, base) = alternate(
            budget.rounds,
            |round| rate("easycaching", &ours_db, first_key(round), new_keys),
            |round| rate("rusqlite", &raw_db, first_key(round), new_keys),
        )?;
        let name = if new_keys {
            "set, 8 writer processes, FULL, a new key every write"
        } else {
            "set, 8 writer processes, FULL"
        };
        let range = |engine: &str| {
            let spread = spread.borrow();
            let counts = spread.get(engine).map(Vec::as_slice).unwrap_or_default();
            let (least, most) = (counts.iter().min().copied(), counts.iter().max().copied());
            format!("{}-{}", least.unwrap_or(0), most.unwrap_or(0))
        };
        let note = format!(
            "writes per process and round: {}, the baseline's {}",
            range("easycaching"),
            range("rusqlite")
        );
        spread.borrow_mut().clear();
        figures.push(
            Figure::new(section::WRITES, name, ours.per_sec(), Unit::OpsPerSec)
                .against("rusqlite, one transaction per write, FULL", base.per_sec())
                .goal(Goal::RatioAtLeast(5.0))
                .note(note),
        );
    }
    Ok(figures)
}

/// Where the new keys of a round of writer processes start: past any key a writer cycles
/// through, and past the last round's (a writer writes fewer than a million keys a round).
const NEW_KEYS_FROM: u64 = 100_000_000;

/// The keys a writer process writes.
#[derive(Debug, Clone, Copy)]
pub struct WriterKeys {
    /// Which writer: each has keys of its own.
    pub index: u64,
    /// Where the keys start.
    pub first_key: u64,
    /// A new key every write, rather than cycling through `KEYS_PER_WRITER` keys.
    pub new_keys: bool,
}

impl WriterKeys {
    /// The key of the `done`th write.
    pub fn key(&self, done: u64) -> String {
        let nth = if self.new_keys { done } else { done % KEYS_PER_WRITER };
        key(self.first_key + self.index * 1_000_000 + nth)
    }
}

/// A child of [`processes`]: writes from `start_at` for `millis`, prints how many writes.
pub fn writer_child(engine: &str, db: &Path, start_at: u64, millis: u64, keys: WriterKeys) -> Result<u64> {
    let end = start_at + millis;
    let mut done = 0;
    match engine {
        "easycaching" => {
            let cache = fixture::manager(db, Durability::Full)?.create_cache(CACHE)?;
            measure::sleep_until(start_at);
            while measure::unix_millis() < end {
                cache.set(&keys.key(done), fixture::numbered_json(done))?;
                done += 1;
            }
        }
        "rusqlite" => {
            let raw = RawSqlite::open(db, "FULL")?;
            measure::sleep_until(start_at);
            while measure::unix_millis() < end {
                raw.set(&keys.key(done), &fixture::numbered_value(done))?;
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
