//! Durable writes: one writer against raw rusqlite with the same pragmas, and 8 concurrent
//! writers (threads, then processes) where group commit shares one fsync among many writes
//! against one transaction per write. Also Spin's store design, which writes with a rollback
//! journal.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Result;
use easycaching::{Cache, Durability};

use super::{Budget, section};
use crate::baseline::{GATHER_WAIT, PerfectBatches, RawSqlite, SpinStore};
use crate::committer::{Committer, CommitterClient};
use crate::fixture::{self, CACHE, Scratch, VALUE, key};
use crate::measure::{self, CHILD_START_MILLIS, Rate, concurrent, in_turns, paired, round_op};
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
    let reference = (&*format!("{WRITERS} writers, rusqlite batching perfectly"), &perfect);
    let [reference, against_it] =
        beside_perfect_batching(section::WRITES, (name, &ours), reference, &batched, baseline)?;
    Ok(vec![
        Figure::new(section::WRITES, name, ours.per_sec(), Unit::OpsPerSec)
            .against(baseline.0, baseline.1)
            .goal(Goal::RatioAtLeast(5.0))
            .note(format!(
                "{per_commit:.1} writes per commit; processor time per write {}, the baseline's {}",
                cpu_per_op(&ours),
                cpu_per_op(&base)
            )),
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
/// rate): the reference (its name and rate) against the figure's `baseline` (its name and
/// rate), and `ours` against the reference. `batched` did the reference's batches.
pub(super) fn beside_perfect_batching(
    section: &str,
    ours: (&str, &Rate),
    (reference, perfect): (&str, &Rate),
    batched: &PerfectBatches,
    baseline: (&str, f64),
) -> Result<[Figure; 2]> {
    let page_size = batched.page_size()?;
    Ok([
        Figure::new(section, reference, perfect.per_sec(), Unit::OpsPerSec)
            .against(baseline.0, baseline.1)
            .note(format!(
                "{:.1} writes per commit, one of each writer; {page_size}-byte pages as easycaching's",
                batched.writes_per_commit()
            )),
        Figure::new(section, ours.0, ours.1.per_sec(), Unit::OpsPerSec)
            .against("rusqlite batching perfectly, as above", perfect.per_sec())
            .note(format!(
                "processor time per write {}, perfect batching's {}",
                cpu_per_op(ours.1),
                cpu_per_op(perfect)
            )),
    ])
}

/// The processor time per operation (a write, an item taken) of `rate`, in microseconds, for a
/// figure's note.
pub(super) fn cpu_per_op(rate: &Rate) -> String {
    rate.cpu_us_per_op().map_or_else(|| "not measured".to_owned(), |us| format!("{us:.1} µs"))
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
/// rate of a single writer; inserts hold the lock longer and collide more. Beside them, in the
/// same turns, raw rusqlite batching the 8 processes' writes perfectly in one committer
/// process ([`Committer`]): the reach of batching writers in other processes that wait for
/// their acknowledgement, as the threads' figure has its own.
pub fn processes(budget: Budget) -> Result<Vec<Figure>> {
    let scratch = Scratch::new()?;
    // What each process did in each round, by engine: throughput alone hides whether every
    // process got its turn, how many writes shared a commit, and what a write cost the processor.
    let spread: RefCell<BTreeMap<String, Vec<WriterRound>>> = RefCell::default();
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
        let per_process: Vec<WriterRound> = measure::run_children(&children)?
            .iter()
            .map(|out| WriterRound::parse(out))
            .collect::<Result<_>>()?;
        spread.borrow_mut().entry(engine.to_owned()).or_default().extend(per_process.iter().copied());
        Ok(round_rate(&per_process, budget.round))
    };
    // Made (and filled) before the children start, so no child races another for the schema.
    let ours_db = scratch.db("ours.db");
    let raw_db = scratch.db("raw.db");
    prefill(
        &fixture::manager(&ours_db, Durability::Full)?.create_cache(CACHE)?,
        &mut RawSqlite::open(&raw_db, "FULL")?,
    )?;
    let batched_db = scratch.db("batched.db");
    let mut batched = RawSqlite::open_with_pages(&batched_db, "FULL", Some(fixture::page_size(&ours_db)?))?;
    prefill_raw(&mut batched)?;
    let batched = PerfectBatches::new(batched, WRITERS, GATHER_WAIT);
    let committer = Committer::bind(&committer_socket(&batched_db))?;
    // The committer's processor time is the bench's own over the round, added to the writers'.
    let perfect_rate = |first_key: u64, new_keys: bool| -> Result<Rate> {
        let cpu = measure::processor_time();
        let mut rate =
            committer.serve(&batched, WRITERS, || rate("perfect", &batched_db, first_key, new_keys))?;
        rate.cpu += measure::processor_time().saturating_sub(cpu);
        Ok(rate)
    };
    let mut figures = Vec::new();
    for new_keys in [false, true] {
        // New keys start past every key written so far, in a range of their own each round.
        let first_key = |round: usize| if new_keys { NEW_KEYS_FROM * (round as u64 + 1) } else { 0 };
        let [ours_rate, base_rate, perfect] = in_turns::<anyhow::Error, 3>(
            budget.rounds,
            [
                &mut |round| rate("easycaching", &ours_db, first_key(round), new_keys),
                &mut |round| rate("rusqlite", &raw_db, first_key(round), new_keys),
                &mut |round| perfect_rate(first_key(round), new_keys),
            ],
        )?;
        let name = if new_keys {
            "set, 8 writer processes, FULL, a new key every write"
        } else {
            "set, 8 writer processes, FULL"
        };
        let note = {
            let spread = spread.borrow();
            let rounds = |engine: &str| spread.get(engine).map(Vec::as_slice).unwrap_or_default();
            let (ours, base) = (rounds("easycaching"), rounds("rusqlite"));
            format!(
                "writes per process and round: {}, the baseline's {}; {:.1} writes per commit; \
                 processor time per write {}, the baseline's {}",
                writes_range(ours),
                writes_range(base),
                writes_per_commit(ours),
                cpu_per_op(&ours_rate),
                cpu_per_op(&base_rate),
            )
        };
        spread.borrow_mut().clear();
        let baseline = ("rusqlite, one transaction per write, FULL", base_rate.per_sec());
        figures.push(
            Figure::new(section::WRITES, name, ours_rate.per_sec(), Unit::OpsPerSec)
                .against(baseline.0, baseline.1)
                .goal(Goal::RatioAtLeast(5.0))
                .note(note),
        );
        let reference = if new_keys {
            "8 writer processes, rusqlite batching perfectly in a committer process, a new key every write"
        } else {
            "8 writer processes, rusqlite batching perfectly in a committer process"
        };
        figures.extend(beside_perfect_batching(
            section::WRITES,
            (name, &ours_rate),
            (reference, &perfect),
            &batched,
            baseline,
        )?);
    }
    Ok(figures)
}

/// Where the committer of the writes to `db` batched perfectly listens.
fn committer_socket(db: &Path) -> std::path::PathBuf {
    db.with_extension("sock")
}

/// The fewest and the most writes a process did in a round, as "least-most".
fn writes_range(rounds: &[WriterRound]) -> String {
    let writes = || rounds.iter().map(|round| round.writes);
    format!("{}-{}", writes().min().unwrap_or(0), writes().max().unwrap_or(0))
}

/// The writes of every process and round over their commits.
fn writes_per_commit(rounds: &[WriterRound]) -> f64 {
    let total = |of: fn(&WriterRound) -> u64| rounds.iter().map(of).sum::<u64>();
    total(|round| round.writes) as f64 / total(|round| round.commits).max(1) as f64
}

/// The rate of one round of writer processes that ran for `elapsed`: their writes, and their
/// processor time, all added up.
fn round_rate(per_process: &[WriterRound], elapsed: Duration) -> Rate {
    Rate {
        ops: per_process.iter().map(|process| process.writes).sum(),
        elapsed,
        cpu: per_process.iter().map(|process| process.cpu).sum(),
    }
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

/// What a child of [`processes`] did in its round.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WriterRound {
    /// Writes acknowledged.
    pub writes: u64,
    /// Transactions this process committed: its own writes', with any handed over to it.
    pub commits: u64,
    /// The processor time the writes took, user and system.
    pub cpu: Duration,
}

impl WriterRound {
    /// The line a child prints: writes, commits, processor time in nanoseconds.
    pub fn line(&self) -> String {
        format!("{} {} {}", self.writes, self.commits, self.cpu.as_nanos())
    }

    /// Reads back [`WriterRound::line`].
    pub fn parse(line: &str) -> Result<WriterRound> {
        let numbers: Vec<u64> = line.split_whitespace().map(str::parse).collect::<Result<_, _>>()?;
        let [writes, commits, cpu_ns] = numbers[..] else {
            anyhow::bail!("a writer child printed {line:?}, not its writes, commits and processor time");
        };
        Ok(WriterRound { writes, commits, cpu: Duration::from_nanos(cpu_ns) })
    }
}

/// A child of [`processes`]: writes from `start_at` for `millis`, and says what it did.
pub fn writer_child(
    engine: &str,
    db: &Path,
    start_at: u64,
    millis: u64,
    keys: WriterKeys,
) -> Result<WriterRound> {
    let end = start_at + millis;
    let mut writes = 0;
    let (commits, cpu) = match engine {
        "easycaching" => {
            let manager = fixture::manager(db, Durability::Full)?;
            let cache = manager.create_cache(CACHE)?;
            measure::sleep_until(start_at);
            let (before, cpu) = (manager.write_stats(), measure::processor_time());
            while measure::unix_millis() < end {
                cache.set(&keys.key(writes), fixture::numbered_json(writes))?;
                writes += 1;
            }
            let (after, cpu) = (manager.write_stats(), measure::processor_time().saturating_sub(cpu));
            // Every write of this process is a batch of its own (each waits for its answer),
            // committed here unless it was handed over to another process.
            let commits = (after.batches - before.batches) - (after.handed_over - before.handed_over);
            (commits, cpu)
        }
        "rusqlite" => {
            let raw = RawSqlite::open(db, "FULL")?;
            measure::sleep_until(start_at);
            let cpu = measure::processor_time();
            while measure::unix_millis() < end {
                raw.set(&keys.key(writes), &fixture::numbered_value(writes))?;
                writes += 1;
            }
            (writes, measure::processor_time().saturating_sub(cpu))
        }
        "perfect" => {
            // The committer commits: this process only sends and waits (its commits are 0).
            let mut committer = CommitterClient::connect(&committer_socket(db))?;
            measure::sleep_until(start_at);
            let cpu = measure::processor_time();
            while measure::unix_millis() < end {
                committer.set(&keys.key(writes), &fixture::numbered_value(writes))?;
                writes += 1;
            }
            (0, measure::processor_time().saturating_sub(cpu))
        }
        other => anyhow::bail!("no writer engine {other:?}"),
    };
    Ok(WriterRound { writes, commits, cpu })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What a writer child prints reads back as what it did, and the note's figures add up
    /// every process: writes over commits, processor time over writes.
    #[test]
    fn writer_rounds_read_back_and_add_up_across_processes() {
        let rounds = [
            WriterRound { writes: 300, commits: 20, cpu: Duration::from_millis(9) },
            WriterRound { writes: 100, commits: 30, cpu: Duration::from_millis(3) },
        ];
        for round in rounds {
            assert_eq!(WriterRound::parse(&format!("{}\n", round.line())).unwrap(), round);
        }
        assert_eq!(writes_range(&rounds), "100-300");
        assert_eq!(writes_per_commit(&rounds), 8.0);
        assert_eq!(cpu_per_op(&round_rate(&rounds, Duration::from_secs(1))), "30.0 µs");
        let error = WriterRound::parse("300 20").unwrap_err().to_string();
        assert!(error.contains("\"300 20\""), "{error}");
    }
}
