//! Queues: a durable `put` followed by a `get`, in one process and between two, against the
//! same done with raw rusqlite (an insert, and a delete of the oldest item, each its own
//! transaction).

use std::path::Path;

use anyhow::Result;
use easycaching::Durability;

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

    let across = |engine: &str, db: &Path| -> Result<Rate> {
        let start_at = measure::unix_millis() + CHILD_START_MILLIS;
        let children: Vec<Vec<String>> = ["producer", "consumer"]
            .iter()
            .map(|role| measure::timed_child(role, engine, db, start_at, budget.round))
            .collect();
        let outputs = measure::run_children(&children)?;
        Ok(Rate::new(outputs[1].trim().parse()?, budget.round))
    };
    // A fresh pair of databases each round, so no round starts with the last one's backlog;
    // made before the children start, so neither races the other to make the schema.
    let (ours, base) = alternate(
        budget.rounds,
        |round| {
            let db = scratch.db(&format!("across-{round}.db"));
            fixture::manager(&db, Durability::Full)?.create_queue(QUEUE)?;
            across("easycaching", &db)
        },
        |round| {
            let db = scratch.db(&format!("raw-across-{round}.db"));
            RawSqlite::open(&db, "FULL")?;
            across("rusqlite", &db)
        },
    )?;
    figures.push(
        Figure::new(section::QUEUES, "put in one process, get in another", ours.per_sec(), Unit::OpsPerSec)
            .against("rusqlite, the same between two processes", base.per_sec())
            .note("items through per second"),
    );
    Ok(figures)
}

/// A child of [`run`]: the producer puts as fast as it can and prints how many it put; the
/// consumer takes as fast as items come and prints how many it took.
pub fn peer_child(role: &str, engine: &str, db: &Path, start_at: u64, millis: u64) -> Result<u64> {
    let end = start_at + millis;
    let mut done = 0;
    let producer = role == "producer";
    match engine {
        "easycaching" => {
            let queue = fixture::manager(db, Durability::Full)?.create_queue(QUEUE)?;
            let value = fixture::value();
            measure::sleep_until(start_at);
            while measure::unix_millis() < end {
                if producer {
                    queue.put(value.clone())?;
                    done += 1;
                } else if queue.get()?.is_some() {
                    done += 1;
                }
            }
        }
        "rusqlite" => {
            let raw = RawSqlite::open(db, "FULL")?;
            measure::sleep_until(start_at);
            while measure::unix_millis() < end {
                if producer {
                    raw.put(VALUE)?;
                    done += 1;
                } else if raw.take()?.is_some() {
                    done += 1;
                }
            }
        }
        other => anyhow::bail!("no queue engine {other:?}"),
    }
    Ok(done)
}
