//! The HTTP server's figures, as `bench/http.sh` (by the HTTP server's engineer) prints them:
//! `easycaching serve` with the web example against a native axum server answering the same
//! requests from memory, at 1 and 50 connections. `make bench-http` runs the script into
//! `target/bench/http.txt`; this reads that file. The script runs every measurement once a
//! round, in turns with the others, for a few rounds: each figure is the median of its runs.

use std::path::Path;

use anyhow::{Context, Result};

use super::section;
use crate::report::{Figure, Goal, Unit};

/// One line of `bench/http.sh`'s output.
#[derive(Debug, PartialEq)]
struct Line {
    label: String,
    connections: u32,
    requests_per_sec: f64,
    /// The median latency, in milliseconds, when wrk printed one.
    p50_ms: Option<f64>,
}

/// The label of `easycaching serve`'s lines; the floors' lines start with theirs.
const OURS: &str = "easycaching serve";
const NATIVE_FLOOR: &str = "floor: axum";
const WASMTIME_FLOOR: &str = "wasmtime serve";
/// The cache-less path both servers answer with the same handler (`--wasmtime` only).
const CACHE_LESS: &str = "cache-less /counter";

/// The figures from `bench/http.sh`'s output in `path`.
pub fn run(path: &Path) -> Result<Vec<Figure>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let lines: Vec<Line> = text.lines().filter_map(parse).collect();
    // Each measurement ran once a round, in turns with the others: the median of its runs.
    let find = |server: &str, request: &str, connections: u32| {
        median_run(lines.iter().filter(|line| {
            line.connections == connections && line.label.starts_with(server) && line.label.ends_with(request)
        }))
    };
    let mut figures = Vec::new();
    for (request, ours_label, floor_label, goal_at_50) in
        [("GET of a stored key", "GET hit", "GET", 2.0), ("POST (durable write)", "POST", "POST", 1.0)]
    {
        for connections in [1, 50] {
            let Some(ours) = find(OURS, ours_label, connections) else { continue };
            let name = format!("{request}, {connections} connection(s)");
            if let Some(native) = find(NATIVE_FLOOR, floor_label, connections) {
                figures.push(
                    Figure::new(section::HTTP, &name, ours.requests_per_sec, Unit::OpsPerSec)
                        .against("native axum server, in memory, no wasm", native.requests_per_sec)
                        .note("requests/s"),
                );
            }
            if let Some(wasmtime) = find(WASMTIME_FLOOR, CACHE_LESS, connections) {
                let figure = Figure::new(section::HTTP, &name, ours.requests_per_sec, Unit::OpsPerSec)
                    .against("wasmtime serve, a handler that uses no cache", wasmtime.requests_per_sec)
                    .note("requests/s");
                figures.push(if connections == 50 {
                    figure.goal(Goal::RatioAtLeast(goal_at_50))
                } else {
                    figure
                });
            }
        }
    }
    if let Some(p50) = find(OURS, "GET hit", 1).and_then(|line| line.p50_ms) {
        let figure = Figure::new(
            section::HTTP,
            "GET of a stored key, 1 connection, median latency",
            p50,
            Unit::Millis,
        )
        .goal(Goal::Below(0.5));
        figures.push(match find(NATIVE_FLOOR, "GET", 1).and_then(|line| line.p50_ms) {
            Some(native) => figure.against("native axum server, in memory, no wasm", native),
            None => figure,
        });
    }
    for connections in [1, 50] {
        if let (Some(ours), Some(wasmtime)) =
            (find(OURS, CACHE_LESS, connections), find(WASMTIME_FLOOR, CACHE_LESS, connections))
        {
            figures.push(
                Figure::new(
                    section::HTTP,
                    &format!("the same cache-less handler, {connections} connection(s)"),
                    ours.requests_per_sec,
                    Unit::OpsPerSec,
                )
                .against("wasmtime serve", wasmtime.requests_per_sec)
                .note("requests/s"),
            );
        }
    }
    Ok(figures)
}

/// One line made of several runs of the same measurement: the median of their request rates,
/// and of their median latencies. `None` for no runs.
fn median_run<'a>(runs: impl Iterator<Item = &'a Line>) -> Option<Line> {
    let runs: Vec<&Line> = runs.collect();
    let first = runs.first()?;
    let median = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values.get(values.len() / 2).copied()
    };
    Some(Line {
        label: first.label.clone(),
        connections: first.connections,
        requests_per_sec: median(runs.iter().map(|run| run.requests_per_sec).collect())?,
        p50_ms: median(runs.iter().filter_map(|run| run.p50_ms).collect()),
    })
}

/// `LABEL  CONNS conns  RPS req/s   p50 LATENCY ...`, with wrk's latencies (`812.00us`,
/// `1.20ms`, `2.00s`).
fn parse(line: &str) -> Option<Line> {
    let (left, right) = line.split_once(" conns ")?;
    let (label, connections) = left.trim_end().rsplit_once(char::is_whitespace)?;
    let mut words = right.split_whitespace();
    let requests_per_sec = words.next()?.parse().ok()?;
    let p50_ms = words.skip_while(|word| *word != "p50").nth(1).and_then(milliseconds);
    Some(Line {
        label: label.trim().to_owned(),
        connections: connections.parse().ok()?,
        requests_per_sec,
        p50_ms,
    })
}

/// wrk's `812.00us`, `1.20ms` or `2.00s`, in milliseconds.
fn milliseconds(latency: &str) -> Option<f64> {
    let (number, scale) = if let Some(us) = latency.strip_suffix("us") {
        (us, 1e-3)
    } else if let Some(ms) = latency.strip_suffix("ms") {
        (ms, 1.0)
    } else {
        (latency.strip_suffix('s')?, 1e3)
    };
    number.parse::<f64>().ok().map(|n| n * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_http_sh_prints() {
        let line = "easycaching serve (workers 2, reuse 1) GET hit       50 conns    12345.67 req/s   p50 1.20ms    p90 2.00ms";
        assert_eq!(
            parse(line),
            Some(Line {
                label: "easycaching serve (workers 2, reuse 1) GET hit".into(),
                connections: 50,
                requests_per_sec: 12345.67,
                p50_ms: Some(1.2),
            })
        );
        let line =
            "wasmtime serve, cache-less /counter            1 conns     6300.00 req/s   p50 150.00us  p90 1s";
        assert_eq!(parse(line).and_then(|line| line.p50_ms), Some(0.15));
        assert_eq!(parse("2 CPUs, load average 1.0 0.5 0.2; wrk for 5s per run, 3 rounds"), None);
    }

    #[test]
    fn the_runs_of_one_measurement_give_their_median() {
        let runs = [("900.0", "1.00ms"), ("1500.0", "3.00ms"), ("1200.0", "2.00ms")].map(|(rps, p50)| {
            parse(&format!("easycaching serve POST   50 conns {rps} req/s   p50 {p50}  p90 5ms"))
                .expect("a run")
        });
        let median = median_run(runs.iter()).expect("runs");
        assert_eq!((median.requests_per_sec, median.p50_ms), (1200.0, Some(2.0)));
        assert_eq!(median_run(runs[..1].iter()).map(|line| line.requests_per_sec), Some(900.0));
        assert_eq!(median_run(std::iter::empty()), None);
    }
}
