//! Start-up beyond what criterion times (instantiation): compiling a plugin afresh, and
//! `easycaching run` of an already compiled plugin end to end, as a new process.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result};
use easycaching::Durability;
use easycaching_host::{EasyCachingCtx, RunOptions, Runtime, RuntimeConfig};

use super::section;
use crate::fixture::{self, Scratch};
use crate::measure::median;
use crate::micro::empty_plugin_path;
use crate::report::{Figure, Goal, Unit};

/// Runs of a process-level figure; the median is kept.
const RUNS: usize = 21;

/// Both start-up figures.
pub fn run() -> Result<Vec<Figure>> {
    let scratch = Scratch::new()?;
    let plugin = empty_plugin_path();
    let wasm = std::fs::read(&plugin).context("make bench builds bench-empty.wasm")?;

    // Compile and run once, as a first run with no compiled cache does.
    let manager = fixture::manager(&scratch.db("compile.db"), Durability::Full)?;
    let compile_ms: Vec<f64> = (0..5)
        .map(|_| -> Result<f64> {
            let runtime = Runtime::new(RuntimeConfig::default().no_compiled_cache())?;
            let start = Instant::now();
            let loaded = runtime.load_bytes(&wasm, "bench-empty")?;
            loaded.run(EasyCachingCtx::builder(manager.clone()).build(), &RunOptions::default()).result?;
            Ok(start.elapsed().as_secs_f64() * 1e3)
        })
        .collect::<Result<_>>()?;
    let mut figures = vec![
        Figure::new(
            section::STARTUP,
            "compile a Rust plugin and run it (no compiled cache)",
            median(compile_ms),
            Unit::Millis,
        )
        .note(format!("{} KB component", wasm.len() / 1000)),
    ];

    // `easycaching run`, compiled code cached on disk (one run first to fill the cache).
    let easycaching = crate::workspace_dir().join("target/release/easycaching");
    let compiled = scratch.path().join("compiled");
    let db = scratch.db("run.db");
    let run_args = |command: &mut Command| {
        command.arg("--db").arg(&db).arg("run").arg(&plugin).arg("--compiled-cache").arg(&compiled);
    };
    time_process(&easycaching, run_args)?;
    let run_ms = median((0..RUNS).map(|_| time_process(&easycaching, run_args)).collect::<Result<_>>()?);
    let floor_ms = median(
        (0..RUNS)
            .map(|_| {
                time_process(&easycaching, |c| {
                    c.arg("--version");
                })
            })
            .collect::<Result<_>>()?,
    );
    figures.push(
        Figure::new(
            section::STARTUP,
            "easycaching run, compiled Rust plugin, end to end",
            run_ms,
            Unit::Millis,
        )
        .against("easycaching --version (starting the process)", floor_ms)
        .goal(Goal::Below(20.0)),
    );
    Ok(figures)
}

/// Milliseconds from spawning `program` (with `args` applied) to its successful exit.
fn time_process(program: &Path, args: impl Fn(&mut Command)) -> Result<f64> {
    let mut command = Command::new(program);
    args(&mut command);
    command.stdout(Stdio::null()).stderr(Stdio::null());
    let start = Instant::now();
    let status = command.status().with_context(|| format!("cannot run {}", program.display()))?;
    let elapsed = start.elapsed().as_secs_f64() * 1e3;
    anyhow::ensure!(status.success(), "{} failed: {status}", program.display());
    Ok(elapsed)
}
