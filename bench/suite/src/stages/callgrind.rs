//! Instruction counts of the micro cases, by callgrind: unlike times they repeat exactly on a
//! busy machine. Each case runs twice, for N and 2N iterations, in `easycaching-bench ops`;
//! the difference divided by N is the count of one iteration, with the set-up (opening the
//! database, loading the guest) cancelled out.

use std::collections::BTreeMap;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::micro::CASES;

/// Iterations of the first run of a case (the second runs twice as many).
fn iterations(case: &str) -> u64 {
    if case.starts_with("startup/") { 200 } else { 2000 }
}

/// Instructions per iteration of every micro case, two cases at a time (one per core: counts
/// do not depend on what else runs).
pub fn run() -> Result<BTreeMap<String, f64>> {
    if Command::new("valgrind").arg("--version").output().is_err() {
        bail!("valgrind is not installed (apt-get install valgrind)");
    }
    let mut counts = BTreeMap::new();
    for pair in CASES.chunks(2) {
        let results: Vec<Result<(String, f64)>> = std::thread::scope(|scope| {
            let handles: Vec<_> = pair
                .iter()
                .map(|case| {
                    scope.spawn(move || -> Result<(String, f64)> {
                        let n = iterations(case);
                        if loads_a_guest(case) {
                            // Compiles the guest for the processor valgrind shows, which differs
                            // from the real one, into the compiled cache: otherwise the first run
                            // compiles it and the second loads it, and the difference is no
                            // iteration's count (it came out as 0 on a fresh clone).
                            instructions(case, 1)?;
                        }
                        let once = instructions(case, n)?;
                        let twice = instructions(case, 2 * n)?;
                        if twice <= once {
                            bail!(
                                "callgrind of {case}: {twice} instructions for {} iterations, \
                                 {once} for {n}: the set-up did not cancel out",
                                2 * n
                            );
                        }
                        Ok(((*case).to_owned(), (twice - once) as f64 / n as f64))
                    })
                })
                .collect();
            handles.into_iter().map(|handle| handle.join().expect("a callgrind thread panicked")).collect()
        });
        for result in results {
            match result {
                Ok((case, per_op)) => {
                    eprintln!("easycaching-bench: {case}: {per_op:.0} instructions per operation");
                    counts.insert(case, per_op);
                }
                // The pooling allocator reserves more address space than valgrind allows, for one.
                Err(error) => eprintln!("easycaching-bench: no instruction count: {}", first_line(&error)),
            }
        }
    }
    Ok(counts)
}

/// Whether `case` loads a wasm component, compiled once and then kept in the compiled cache.
fn loads_a_guest(case: &str) -> bool {
    case.starts_with("guest/") || case.starts_with("startup/")
}

/// The first line of an error and its cause, for a one-line note.
fn first_line(error: &anyhow::Error) -> String {
    let text = format!("{error:#}");
    text.lines()
        .find(|line| line.contains("Error:") || line.contains("failed"))
        .unwrap_or(&text)
        .trim()
        .to_owned()
}

/// Instructions callgrind counted in a whole run of `ops CASE N`.
fn instructions(case: &str, n: u64) -> Result<u64> {
    let out = tempfile::NamedTempFile::new()?;
    let output = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.path().display()))
        .arg(std::env::current_exe()?)
        .args(["ops", case, &n.to_string()])
        .output()
        .context("cannot run valgrind")?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        let cause = stderr.lines().find(|line| line.starts_with("Error:")).unwrap_or("see valgrind's output");
        bail!("callgrind of {case} failed: {cause}");
    }
    stderr
        .lines()
        .find_map(|line| line.split_once("Collected :").and_then(|(_, n)| n.trim().parse().ok()))
        .with_context(|| format!("callgrind printed no total for {case}: {stderr}"))
}
