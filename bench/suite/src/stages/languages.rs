//! The Python and JavaScript guests the other engineers measured (guest/python/README.md,
//! guest/js/README.md), next to the Rust guest: component size, start-up, and the cost of a
//! cache read through each SDK and raw binding, as their bench plugins print it.
//!
//! Needs the bench plugins (`make guest-python-bench guest-js-bench`); a language whose plugin
//! is not built is left out with a note.

use std::time::Instant;

use anyhow::{Context, Result};
use easycaching::Durability;
use easycaching_host::{EasyCachingCtx, Grant, Kind, Output, Plugin, RunOptions, Runtime, RuntimeConfig};

use super::section;
use crate::fixture::{self, CACHE, Scratch};
use crate::guest::{BenchGuest, guest_path};
use crate::measure::median;
use crate::micro::empty_plugin_path;
use crate::report::{Figure, Unit};

/// Runs of a plugin for its start-up figure; the median is kept.
const STARTS: usize = 50;
/// Calls per round the bench plugins make (they print five rounds).
const CALLS: &str = "2000";

/// The bench plugins, by language.
const PLUGINS: &[(&str, &str)] = &[
    ("Python (componentize-py)", "python-bench.wasm"),
    ("JavaScript (QuickJS)", "js-bench.wasm"),
    ("JavaScript (StarlingMonkey)", "js-bench-starlingmonkey.wasm"),
];

/// Every language figure.
pub fn run() -> Result<Vec<Figure>> {
    let scratch = Scratch::new()?;
    let manager = fixture::manager(&scratch.db("languages.db"), Durability::Full)?;
    let runtime =
        Runtime::new(RuntimeConfig::default().compiled_cache_dir(crate::bench_dir().join("compiled")))?;
    let ctx = EasyCachingCtx::builder(manager.clone()).grant(Grant::manage(Kind::Cache, CACHE)?).build();

    // The Rust figures each language stands next to.
    let rust_size = std::fs::metadata(guest_path())?.len() as f64 / 1e6;
    let rust_start = start_up(&runtime.load(empty_plugin_path())?, &ctx)?;
    let rust_get_us = {
        let guest = BenchGuest::load(&guest_path())?;
        let mut instance = guest.instantiate(manager.clone())?;
        instance.prepare("get-hit")?;
        instance.run("get-hit", 10_000)?;
        let start = Instant::now();
        instance.run("get-hit", 200_000)?;
        start.elapsed().as_secs_f64() * 1e6 / 200_000.0
    };

    let guests = crate::workspace_dir().join("target/guests");
    let mut figures = Vec::new();
    for (language, file) in PLUGINS {
        let path = guests.join(file);
        if !path.exists() {
            figures.push(
                Figure::new(section::LANGUAGES, &format!("{language}: not measured"), 0.0, Unit::MB)
                    .note(format!("{file} is not built (make guest-python-bench guest-js-bench)")),
            );
            continue;
        }
        let size = std::fs::metadata(&path)?.len() as f64 / 1e6;
        figures.push(
            Figure::new(section::LANGUAGES, &format!("{language}: component size"), size, Unit::MB)
                .against("Rust bench guest", rust_size),
        );
        let plugin = runtime.load(&path)?;
        figures.push(
            Figure::new(
                section::LANGUAGES,
                &format!("{language}: start-up (instantiate, empty run)"),
                start_up(&plugin, &ctx)?,
                Unit::Micros,
            )
            .against("Rust, the same", rust_start),
        );
        let options =
            RunOptions { args: vec![CALLS.into()], output: Output::Capture, ..RunOptions::default() };
        let run = plugin.run(ctx.clone(), &options);
        let (stdout, stderr) = (run.stdout_text(), run.stderr_text());
        run.result.with_context(|| format!("{file} failed: {stderr}"))?;
        for (label, us) in per_call(&stdout) {
            if label.starts_with("get") {
                figures.push(
                    Figure::new(section::LANGUAGES, &format!("{language}: {label}"), us, Unit::Micros)
                        .against("Rust guest, raw binding, get hit", rust_get_us),
                );
            }
        }
    }
    Ok(figures)
}

/// The median time of an empty run of `plugin` (argument `0`), in µs.
fn start_up(plugin: &Plugin, ctx: &EasyCachingCtx) -> Result<f64> {
    let options = RunOptions { args: vec!["0".into()], ..RunOptions::default() };
    let times = (0..STARTS)
        .map(|_| {
            let start = Instant::now();
            plugin.run(ctx.clone(), &options).result?;
            Ok(start.elapsed().as_secs_f64() * 1e6)
        })
        .collect::<Result<Vec<f64>>>()?;
    Ok(median(times))
}

/// The lines the bench plugins print, `LABEL   µs/op, 5 rounds of N: A B C D E`, as the
/// label and the median of its rounds.
fn per_call(output: &str) -> Vec<(String, f64)> {
    output
        .lines()
        .filter_map(|line| {
            let (label, rest) = line.split_once(" µs/op")?;
            let rounds: Vec<f64> =
                rest.split_once(": ")?.1.split_whitespace().filter_map(|n| n.parse().ok()).collect();
            (!rounds.is_empty()).then(|| (label.trim().to_owned(), median(rounds)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_what_the_bench_plugins_print() {
        let printed =
            "get hit (SDK)            µs/op, 5 rounds of 2000: 8.50 8.70 8.60 9.10 8.40\nother line\n";
        assert_eq!(super::per_call(printed), vec![("get hit (SDK)".to_owned(), 8.6)]);
    }
}
