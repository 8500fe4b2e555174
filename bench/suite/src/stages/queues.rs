//! Queues: a durable `put` followed by a `get`, in one process and between two, against the
//! same done with raw rusqlite (an insert, and a delete of the oldest item, each its own
//! transaction); and a consumer in another process that waits for items (`get_wait`) against
//! one that asks again and again (`get`), with what each costs the processor.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use easycaching::Durability;

use super::writes::cpu_per_op;
use super::{Budget, section};
use crate::baseline::RawSqlite;
use crate::fixture::{self, Scratch, VALUE};
use crate::measure::{self, CHILD_START_MILLIS, Rate, alternate, paired};
use crate::report::{Figure, Unit};

/// The queue every queue figure uses.
const QUEUE: &str = "jobs";

/// Both queue figures.
pub fn run(budget: Budget) -> Result<Vec<Figure>> {
    let scratch = Scratch::new()?;
    let queue = fixture::manager(&scratch.db("ours.db"), Durability::Full)?.create_queue(QUEUE)?;
    let raw = RawSqlite::open(&scratch.db("raw.db"), "FULL")?;
    let value = fixture::value();
    let (ours, base) = paired(
        budget.rounds,
        budget.round,
        100_000,
        |_| {
            queue.put(value.clone()).expect("put");
            assert!(queue.get().expect("get").is_some());
        },
        |_| {
            raw.put(VALUE).expect("raw put");
            assert!(raw.take().expect("raw take").is_some());
        },
    );
    let mut figures = vec![
        Figure::new(section::QUEUES, "put + get pairs, 1 process", ours.per_sec(), Unit::OpsPerSec)
            .against("rusqlite insert + delete oldest, autocommit, FULL", base.per_sec()),
    ];

    // A producer and a consumer on `engine`, on a fresh database each round (`file`, with the
    // round), so no round starts with the last one's backlog; the database is made before the
    // children start, so neither races the other to make the schema. What the consumer took,
    // and the processor time it spent.
    let across = |file: &str, round: usize, engine: &str| -> Result<Rate> {
        let db = scratch.db(&format!("{file}-{round}.db"));
        if engine == "rusqlite" {
            RawSqlite::open(&db, "FULL")?;
        } else {
            fixture::manager(&db, Durability::Full)?.create_queue(QUEUE)?;
        }
        let start_at = measure::unix_millis() + CHILD_START_MILLIS;
        let children: Vec<Vec<String>> = ["producer", "consumer"]
            .iter()
            .map(|role| measure::timed_child(role, engine, &db, start_at, budget.round))
            .collect();
        let outputs = measure::run_children(&children)?;
        let (taken, cpu_ns) = outputs[1].trim().split_once(' ').context("a consumer prints two numbers")?;
        let cpu = Duration::from_nanos(cpu_ns.parse()?);
        Ok(Rate { cpu, ..Rate::new(taken.parse()?, budget.round) })
    };
    let (ours, base) = alternate(
        budget.rounds,
        |round| across("across", round, "easycaching"),
        |round| across("raw-across", round, "rusqlite"),
    )?;
    figures.push(
        Figure::new(section::QUEUES, "put in one process, get in another", ours.per_sec(), Unit::OpsPerSec)
            .against("rusqlite, the same between two processes", base.per_sec())
            .note(format!(
                "items through per second; the consumer's processor time per item {}, the baseline's {}",
                cpu_per_op(&ours),
                cpu_per_op(&base)
            )),
    );

    let (waiting, asking) = alternate(
        budget.rounds,
        |round| across("waiting", round, "easycaching-waiting"),
        |round| across("asking", round, "easycaching"),
    )?;
    figures.push(
        Figure::new(
            section::QUEUES,
            "put in one process, get_wait in another",
            waiting.per_sec(),
            Unit::OpsPerSec,
        )
        .against("the same with a consumer that calls get again and again", asking.per_sec())
        .note(format!(
            "items through per second; the consumer's processor time per item {}, asking again's {}",
            cpu_per_op(&waiting),
            cpu_per_op(&asking)
        )),
    );
    figures.push(idle_wait()?);
    Ok(figures)
}

/// The processor time a `get_wait` spends in a second of waiting on an empty queue (what a
/// worker with nothing to do costs), against a second of `thread::sleep`.
fn idle_wait() -> Result<Figure> {
    const WAIT: Duration = Duration::from_secs(1);
    let scratch = Scratch::new()?;
    let queue = fixture::manager(&scratch.db("idle.db"), Durability::Full)?.create_queue(QUEUE)?;
    let cpu_of = |wait: &dyn Fn() -> Result<()>| -> Result<Duration> {
        let before = measure::processor_time();
        wait()?;
        Ok(measure::processor_time().saturating_sub(before))
    };
    let waiting = cpu_of(&|| {
        anyhow::ensure!(queue.get_wait(WAIT)?.is_none(), "nothing was put");
        Ok(())
    })?;
    let sleeping = cpu_of(&|| {
        std::thread::sleep(WAIT);
        Ok(())
    })?;
    let micros = |cpu: Duration| cpu.as_secs_f64() * 1e6;
    Ok(Figure::new(
        section::QUEUES,
        "get_wait on an empty queue, processor time per second",
        micros(waiting),
        Unit::Micros,
    )
    .against("thread::sleep for a second", micros(sleeping).max(1.0))
    .note("the change token read at most every 16 ms, the queue looked at every 100 ms"))
}

/// A child of [`run`]: the producer puts as fast as it can and prints how many it put; the
/// consumer takes as fast as items come and prints how many it took and the processor time
/// it spent meanwhile, in nanoseconds. Engine `easycaching-waiting` is easycaching with a
/// consumer that waits for each item with `get_wait`.
pub fn peer_child(role: &str, engine: &str, db: &Path, start_at: u64, millis: u64) -> Result<String> {
    let end = start_at + millis;
    let mut done = 0;
    let producer = role == "producer";
    let cpu = match engine {
        "easycaching" | "easycaching-waiting" => {
            let queue = fixture::manager(db, Durability::Full)?.create_queue(QUEUE)?;
            let value = fixture::value();
            let waits = engine == "easycaching-waiting";
            measure::sleep_until(start_at);
            let started = measure::processor_time();
            while measure::unix_millis() < end {
                if producer {
                    queue.put(value.clone())?;
                    done += 1;
                } else if waits {
                    let left = end.saturating_sub(measure::unix_millis());
                    if queue.get_wait(Duration::from_millis(left))?.is_some() {
                        done += 1;
                    }
                } else if queue.get()?.is_some() {
                    done += 1;
                }
            }
            measure::processor_time().saturating_sub(started)
        }
        "rusqlite" => {
            let raw = RawSqlite::open(db, "FULL")?;
            measure::sleep_until(start_at);
            let started = measure::processor_time();
            while measure::unix_millis() < end {
                if producer {
                    raw.put(VALUE)?;
                    done += 1;
                } else if raw.take()?.is_some() {
                    done += 1;
                }
            }
            measure::processor_time().saturating_sub(started)
        }
        other => anyhow::bail!("no queue engine {other:?}"),
    };
    Ok(if producer { done.to_string() } else { format!("{done} {}", cpu.as_nanos()) })
}
