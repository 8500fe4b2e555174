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

use super::micro_figures::PAIRS;
use crate::measure;
use crate::micro::prepare;
use crate::report::{Figure, Unit};

/// Iterations of a case's loop per call: enough that the call into the loop (and, for a
/// guest loop, into the guest) is lost in them.
const CHUNK: u64 = 1_000;
/// Rounds per side, and the time of each.
const ROUNDS: usize = 15;
const ROUND: Duration = Duration::from_millis(100);

/// Runs in turns every micro pair whose goal is judged that way
/// (`micro_figures::PAIRS`); each is a per-call figure in
/// nanoseconds.
pub fn run(full: bool) -> Result<Vec<Figure>> {
    let rounds = if full { 3 * ROUNDS } else { ROUNDS };
    PAIRS
        .iter()
        .filter(|pair| pair.in_turns)
        .map(|pair| {
            let mut ours = prepare(pair.ours)?;
            let mut baseline = prepare(pair.baseline)?;
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
            let mut figure =
                Figure::new(pair.section, &format!("{}, in turns", pair.name), per_call(ours), Unit::NsPerOp)
                    .against(pair.baseline_name, per_call(baseline));
            if let Some(goal) = pair.goal {
                figure = figure.goal(goal);
            }
            Ok(figure
                .note(format!("{rounds} rounds of {} ms each, the median of each side", ROUND.as_millis())))
        })
        .collect()
}
