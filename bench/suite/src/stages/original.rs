//! Against the original Python easycaching 0.108 from PyPI (`make bench-original`): its
//! documented API (`EasyCacheManager.create`, `create_cache`, `set`, `get`) on the same keys
//! and values, and its start-up, run by `bench/original/bench.py` in a virtualenv under
//! `target/bench/original-venv`.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use easycaching::Durability;
use serde::Deserialize;

use super::section;
use crate::fixture::{self, CACHE, Scratch, key};
use crate::measure::{median, run_for};
use crate::report::{Figure, Unit};

/// Operations of each kind the script times (the original answers each over a WebSocket).
const OPERATIONS: u64 = 2000;
/// Keys the operations cycle through: fewer than both LRUs hold, so every get is a hit.
const KEYS: u64 = 100;

/// What `bench/original/bench.py` prints.
#[derive(Debug, Deserialize)]
struct Original {
    /// Seconds from importing the library to a usable cache.
    startup_s: f64,
    /// `await cache.set(key, value)` per second.
    sets_per_sec: f64,
    /// µs per `await cache.get(key)`.
    get_us: f64,
}

/// The figures, with `python` the virtualenv's interpreter.
pub fn run(python: &Path) -> Result<Vec<Figure>> {
    let scratch = Scratch::new()?;
    let script = crate::workspace_dir().join("bench/original/bench.py");
    // The library starts `gunicorn` by name: from the virtualenv, first on the PATH.
    let bin = python.parent().context("the virtualenv's python is in a directory")?;
    let path = std::env::join_paths(
        std::iter::once(bin.to_owned())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )?;
    let output = Command::new(python)
        .env("PATH", path)
        .arg(&script)
        .arg(OPERATIONS.to_string())
        .arg(KEYS.to_string())
        .current_dir(scratch.path())
        .output()
        .with_context(|| format!("cannot run {}", python.display()))?;
    anyhow::ensure!(
        output.status.success(),
        "the original easycaching failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout)?;
    let last = stdout.lines().last().context("bench.py printed nothing")?;
    let original: Original =
        serde_json::from_str(last).with_context(|| format!("bench.py printed {last:?}"))?;

    // The same with easycaching: opening a database and a cache, then the same operations.
    let startups: Vec<f64> = (0..5)
        .map(|run| -> Result<f64> {
            let start = Instant::now();
            let manager = fixture::manager(&scratch.db(&format!("start{run}.db")), Durability::Full)?;
            manager.create_cache(CACHE)?;
            Ok(start.elapsed().as_secs_f64() * 1e3)
        })
        .collect::<Result<_>>()?;
    let cache = fixture::manager(&scratch.db("ours.db"), Durability::Full)?.create_cache(CACHE)?;
    let keys: Vec<String> = (0..KEYS).map(key).collect();
    let sets = run_for(std::time::Duration::from_secs(5), OPERATIONS, |i| {
        cache.set(&keys[(i % KEYS) as usize], fixture::numbered_json(i)).expect("set")
    });
    let gets = run_for(std::time::Duration::from_secs(5), OPERATIONS * 100, |i| {
        assert!(cache.get(&keys[(i % KEYS) as usize]).expect("get").is_some())
    });
    Ok(vec![
        Figure::new(
            section::ORIGINAL,
            "start-up: open a database and a cache",
            median(startups),
            Unit::Millis,
        )
        .against("original: EasyCacheManager.create + create_cache", original.startup_s * 1e3),
        Figure::new(section::ORIGINAL, "set, durable", sets.per_sec(), Unit::OpsPerSec)
            .against("original: await cache.set", original.sets_per_sec),
        Figure::new(section::ORIGINAL, "get, cached key", gets.ns_per_op() / 1e3, Unit::Micros)
            .against("original: await cache.get", original.get_us),
    ])
}
