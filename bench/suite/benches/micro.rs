//! The per-call figures, timed by criterion: every case of `easycaching_bench::micro`, each
//! next to its baseline. `make bench` runs this and reads the medians back for the table.
//!
//! Each case is one loop whose every iteration is one operation, timed with `iter_custom` so
//! that a case run inside the wasm guest (one call from the host for all `n` iterations) and a
//! native case are timed alike.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use easycaching_bench::micro::{CASES, prepare};

fn micro(c: &mut Criterion) {
    for case in CASES {
        let (group, name) = case.split_once('/').expect("cases are group/name");
        let mut run = prepare(case).unwrap_or_else(|e| panic!("cannot set up {case}: {e:#}"));
        c.benchmark_group(group).bench_function(name, |b| {
            b.iter_custom(|n| {
                let start = Instant::now();
                black_box(run(n));
                start.elapsed()
            })
        });
    }
}

/// Short enough for `make bench` to stay within its budget, long enough for a stable median;
/// criterion's own flags (`--measurement-time`, `--sample-size`) override it.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
        .configure_from_args()
}

criterion_group! {
    name = benches;
    config = config();
    targets = micro
}
criterion_main!(benches);
