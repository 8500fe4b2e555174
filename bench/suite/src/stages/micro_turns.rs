//! The per-call figures that carry a target, taken in turns with their baselines.
//!
//! Criterion times each micro case for seconds on end, one case after the other, so load from
//! elsewhere on a shared machine that comes or goes between two cases moves their ratio: the
//! guest hit of one unchanged build measured 0.82x, 1.00x, 1.33x and 1.51x of its floor in
//! four runs, while its instruction counts stayed within 1%. Here the same loops
//! ([`crate::micro`]) run in short rounds, ours and the baseline's in turns, many rounds each,
//! and the median round of each side is kept, as the stages of fsync-bound figures do: a
//! burst of load falls on both sides. The criterion rows stay in the table for their times
//! and instruction counts; the targets are judged on these.

use std::hint::black_box;
use std::time::Duration;

use anyhow::Result;

use super::section;
use crate::measure;
use crate::micro::prepare;
use crate::report::{Figure, Goal, Unit};

/// Iterations of a case's loop per call: enough that the call into the loop (and, for a
/// guest loop, into the guest) is lost in them.
const CHUNK: u64 = 1_000;
/// Rounds per side, and the time of each.
const ROUNDS: usize = 15;
const ROUND: Duration = Duration::from_millis(100);

/// One target figure: two micro cases and what the ratio must be.
struct Turns {
    section: &'static str,
    name: &'static str,
    ours: &'static str,
    baseline: &'static str,
    baseline_name: &'static str,
    goal: Goal,
}

const TURNS: &[Turns] = &[
    Turns {
        section: section::HIT,
        name: "get, LRU hit (Cache::get), in turns",
        ours: "hit/easycaching-get",
        baseline: "hit/mutex-hashmap",
        baseline_name: "HashMap<String, Arc<str>> behind a Mutex",
        goal: Goal::RatioAtMost(3.0),
    },
    Turns {
        section: section::GUEST,
        name: "get, LRU hit, from a Rust guest, in turns",
        ours: "guest/easycaching-get",
        baseline: "guest/floor-map-get",
        baseline_name: "host method of the same signature answering from a HashMap",
        goal: Goal::RatioAtMost(1.2),
    },
    Turns {
        section: section::MISS,
        name: "get, LRU miss, reads SQLite, in turns",
        ours: "miss/easycaching-get",
        baseline: "miss/rusqlite-get",
        baseline_name: "rusqlite, same schema, cached statement",
        goal: Goal::RatioAtMost(1.3),
    },
];

/// Runs every pair in turns.
pub fn run(full: bool) -> Result<Vec<Figure>> {
    let rounds = if full { 3 * ROUNDS } else { ROUNDS };
    TURNS
        .iter()
        .map(|turns| {
            let mut ours = prepare(turns.ours)?;
            let mut baseline = prepare(turns.baseline)?;
            // Warm: the LRU filled, the guest's memory touched, the statements prepared.
            black_box(ours(CHUNK));
            black_box(baseline(CHUNK));
            let (ours, baseline) = measure::paired(
                rounds,
                ROUND,
                u64::MAX,
                |_| {
                    black_box(ours(CHUNK));
                },
                |_| {
                    black_box(baseline(CHUNK));
                },
            );
            let per_call = |rate: measure::Rate| rate.ns_per_op() / CHUNK as f64;
            Ok(Figure::new(turns.section, turns.name, per_call(ours), Unit::NsPerOp)
                .against(turns.baseline_name, per_call(baseline))
                .goal(turns.goal)
                .note(format!("{rounds} rounds of {} ms each, the median of each side", ROUND.as_millis())))
        })
        .collect()
}
