//! The figures of the micro cases: criterion's median time of each case next to its baseline's,
//! with callgrind's instruction counts beside them.

use std::collections::BTreeMap;
use std::path::Path;

use super::section;
use crate::report::{Figure, Goal, Unit, criterion_median};

/// One figure made of two micro cases.
pub(super) struct Pair {
    pub(super) section: &'static str,
    pub(super) name: &'static str,
    pub(super) ours: &'static str,
    pub(super) baseline: &'static str,
    pub(super) baseline_name: &'static str,
    pub(super) goal: Option<Goal>,
    /// The goal is judged on the two cases taken in turns (`micro_turns`), not on criterion's
    /// back-to-back times.
    pub(super) in_turns: bool,
    pub(super) unit: Unit,
}

pub(super) const PAIRS: &[Pair] = &[
    Pair {
        section: section::HIT,
        name: "get, LRU hit (Cache::get)",
        ours: "hit/easycaching-get",
        baseline: "hit/mutex-hashmap",
        baseline_name: "HashMap<String, Arc<str>> behind a Mutex",
        goal: Some(Goal::RatioAtMost(3.0)),
        in_turns: true,
        unit: Unit::NsPerOp,
    },
    Pair {
        section: section::HIT,
        name: "coherence check alone (wal-index token compare)",
        ours: "hit/coherence-check",
        baseline: "hit/easycaching-get",
        baseline_name: "the whole hit",
        goal: None,
        in_turns: false,
        unit: Unit::NsPerOp,
    },
    Pair {
        section: section::GUEST,
        name: "get, LRU hit, from a Rust guest",
        ours: "guest/easycaching-get",
        baseline: "guest/floor-map-get",
        baseline_name: "host method of the same signature (borrowed handle, result<option<json>, error>) answering from a HashMap",
        goal: Some(Goal::RatioAtMost(1.2)),
        in_turns: true,
        unit: Unit::NsPerOp,
    },
    Pair {
        section: section::GUEST,
        name: "get, LRU hit, from a Rust guest",
        ours: "guest/easycaching-get",
        baseline: "guest/floor-get",
        baseline_name: "host fn get(string) -> option<string> answering from a HashMap (no handle, no error)",
        goal: None,
        in_turns: false,
        unit: Unit::NsPerOp,
    },
    Pair {
        section: section::GUEST,
        name: "get, LRU hit, from a Rust guest",
        ours: "guest/easycaching-get",
        baseline: "hit/easycaching-get",
        baseline_name: "the same get, native",
        goal: None,
        in_turns: false,
        unit: Unit::NsPerOp,
    },
    Pair {
        section: section::GUEST,
        name: "get, LRU hit, from a Rust guest",
        ours: "guest/easycaching-get",
        baseline: "guest/floor-empty",
        baseline_name: "empty host fn (the floor of a call)",
        goal: None,
        in_turns: false,
        unit: Unit::NsPerOp,
    },
    Pair {
        section: section::MISS,
        name: "get, LRU miss, reads SQLite",
        ours: "miss/easycaching-get",
        baseline: "miss/rusqlite-get",
        baseline_name: "rusqlite, same schema, cached statement",
        goal: Some(Goal::RatioAtMost(1.3)),
        in_turns: true,
        unit: Unit::NsPerOp,
    },
    Pair {
        section: section::MISS,
        name: "get of an absent key, asked again (remembered absent)",
        ours: "miss/easycaching-get-absent",
        baseline: "miss/rusqlite-get-absent",
        baseline_name: "rusqlite, same schema, cached statement",
        goal: None,
        in_turns: false,
        unit: Unit::NsPerOp,
    },
    Pair {
        section: section::WRITES,
        name: "set, 1 writer, Durability::Normal (the CPU cost of a write: no fsync)",
        ours: "write/easycaching-set-normal",
        baseline: "write/rusqlite-set-normal",
        baseline_name: "rusqlite autocommit upsert, WAL, synchronous=NORMAL",
        goal: None,
        in_turns: false,
        unit: Unit::NsPerOp,
    },
    Pair {
        section: section::STARTUP,
        name: "instantiate and run an empty plugin, pooling",
        ours: "startup/instantiate-pooling",
        baseline: "startup/wasmtime-bare",
        baseline_name: "bare wasmtime-wasi host, same component",
        goal: Some(Goal::Below(100.0)),
        in_turns: false,
        unit: Unit::Micros,
    },
    Pair {
        section: section::STARTUP,
        name: "instantiate and run an empty plugin, from InstancePre",
        ours: "startup/instantiate",
        baseline: "startup/wasmtime-bare",
        baseline_name: "bare wasmtime-wasi host, same component",
        goal: None,
        in_turns: false,
        unit: Unit::Micros,
    },
    Pair {
        section: section::SPIN,
        name: "get, LRU hit",
        ours: "hit/easycaching-get",
        baseline: "spin/get",
        baseline_name: "Spin design: SELECT through one Mutex'd connection",
        goal: None,
        in_turns: false,
        unit: Unit::NsPerOp,
    },
    Pair {
        section: section::SPIN,
        name: "get, LRU miss (reads SQLite)",
        ours: "miss/easycaching-get",
        baseline: "spin/get",
        baseline_name: "Spin design: SELECT through one Mutex'd connection",
        goal: None,
        in_turns: false,
        unit: Unit::NsPerOp,
    },
];

/// The micro figures from criterion's results under `criterion_home` and the instruction
/// counts; a pair criterion has no result for is left out.
pub fn figures(criterion_home: &Path, instructions: &BTreeMap<String, f64>) -> Vec<Figure> {
    PAIRS
        .iter()
        .filter_map(|pair| {
            let scale = if pair.unit == Unit::Micros { 1e-3 } else { 1.0 };
            let ours = criterion_median(criterion_home, pair.ours)? * scale;
            let baseline = criterion_median(criterion_home, pair.baseline)? * scale;
            let mut figure = Figure::new(pair.section, pair.name, ours, pair.unit)
                .against(pair.baseline_name, baseline)
                .instructions(instructions.get(pair.ours).copied(), instructions.get(pair.baseline).copied());
            if let Some(goal) = pair.goal.filter(|_| !pair.in_turns) {
                figure = figure.goal(goal);
            }
            Some(figure)
        })
        .collect()
}
