//! The HTTP server's figures, as `bench/http.sh` (by the HTTP server's engineer) prints them:
//! `easycaching serve` with the web example against a native axum server answering the same
//! requests from memory, at 1 and 50 connections. `make bench-http` runs the script into
//! `target/bench/http.txt`; this reads that file.

use std::path::Path;

use anyhow::{Context, Result};

use super::section;
use crate::report::{Figure, Unit};

/// One line of `bench/http.sh`'s output.
#[derive(Debug, PartialEq)]
struct Line {
    label: String,
    connections: u32,
    requests_per_sec: f64,
}

/// The figures from `bench/http.sh`'s output in `path`.
pub fn run(path: &Path) -> Result<Vec<Figure>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let lines: Vec<Line> = text.lines().filter_map(parse).collect();
    let mut figures = Vec::new();
    for (request, ours_label, floor_label) in
        [("GET of a stored key", "GET hit", "GET"), ("POST (durable write)", "POST", "POST")]
    {
        for connections in [1, 50] {
            let find = |server: &str, label: &str| {
                lines.iter().find(|line| {
                    line.connections == connections
                        && line.label.starts_with(server)
                        && line.label.ends_with(label)
                })
            };
            if let (Some(ours), Some(floor)) =
                (find("easycaching serve", ours_label), find("floor", floor_label))
            {
                figures.push(
                    Figure::new(
                        section::HTTP,
                        &format!("{request}, {connections} connection(s)"),
                        ours.requests_per_sec,
                        Unit::OpsPerSec,
                    )
                    .against("native axum server, in memory, no wasm", floor.requests_per_sec)
                    .note("requests/s"),
                );
            }
        }
    }
    Ok(figures)
}

/// `LABEL  CONNS conns  RPS req/s ...`.
fn parse(line: &str) -> Option<Line> {
    let (left, right) = line.split_once(" conns ")?;
    let (label, connections) = left.trim_end().rsplit_once(char::is_whitespace)?;
    Some(Line {
        label: label.trim().to_owned(),
        connections: connections.parse().ok()?,
        requests_per_sec: right.split_whitespace().next()?.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_http_sh_prints() {
        let line =
            "easycaching serve (workers 2, reuse 1) GET hit       50 conns    12345.67 req/s   p50 1.2ms";
        assert_eq!(
            parse(line),
            Some(Line {
                label: "easycaching serve (workers 2, reuse 1) GET hit".into(),
                connections: 50,
                requests_per_sec: 12345.67
            })
        );
        assert_eq!(parse("2 CPUs, load average 1.0 0.5 0.2; wrk for 5s per run"), None);
    }
}
