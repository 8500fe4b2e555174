//! Scale: the cost of a `get` and a durable `set` as the database grows from a thousand
//! entries to a million (ten million with `--full`), and the memory the process holds, which
//! the LRU bounds whatever the size of the database.
//!
//! Each size is filled once (kept in `target/bench/scale/` for the next run, and flushed to the
//! disk before it is first measured) and measured in a fresh process, so its memory figures are
//! its own. Before timing, that process reads the database file through once, so every size is
//! measured with its file in the kernel's page cache: the figures are SQLite's B-tree at that
//! size, not whether the machine's other work has pushed the file out of memory since the
//! last run (which made the 1M-entry reads 4x to 66x the 1k ones from one run to the next). The
//! read goes through a small buffer and adds nothing to the process's memory.
//!
//! On the largest database it also takes the 99th percentile and the longest of 8 writer
//! threads' durable `set`s, with the default checkpoint interval and with SQLite's: a larger
//! interval makes writes faster in all but its checkpoints, which some write waits for, longer.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Result;
use easycaching::{CacheManager, Durability};
use serde::{Deserialize, Serialize};

use super::section;
use crate::fixture::{self, CACHE, key};
use crate::measure::{self, run_for};
use crate::report::{Figure, Goal, Unit};

/// What a measuring child reports.
#[derive(Debug, Serialize, Deserialize)]
pub struct Measured {
    /// ns per `get` of a random key.
    pub get_ns: f64,
    /// Durable `set`s of random existing keys per second.
    pub sets_per_sec: f64,
    /// Resident memory after the measurement, bytes.
    pub rss: u64,
    /// Peak resident memory, bytes.
    pub peak_rss: u64,
    /// The database file, bytes.
    pub db_bytes: u64,
}

/// The database of `entries` entries, filled when missing.
fn database(entries: u64) -> Result<PathBuf> {
    let dir = crate::bench_dir().join("scale");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{entries}.db"));
    let done = dir.join(format!("{entries}.filled"));
    if !done.exists() {
        for stale in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{stale}", path.display()));
        }
        eprintln!("easycaching-bench: filling a database of {entries} entries (kept for later runs)");
        fixture::fill(&fixture::manager(&path, Durability::Normal)?, entries)?;
        // Written back now, not while the first run measures.
        std::fs::File::open(&path)?.sync_all()?;
        std::fs::write(&done, b"")?;
    }
    Ok(path)
}

/// The figures at each size, each against the smallest.
pub fn run(full: bool) -> Result<Vec<Figure>> {
    let mut sizes = vec![1_000u64, 100_000, 1_000_000];
    if full {
        sizes.push(10_000_000);
    }
    let budget = Duration::from_millis(if full { 3000 } else { 1500 });
    let mut measured = Vec::new();
    for &entries in &sizes {
        let db = database(entries)?;
        let args = vec![
            "child".into(),
            "scale".into(),
            "--db".into(),
            db.display().to_string(),
            "--entries".into(),
            entries.to_string(),
            "--millis".into(),
            budget.as_millis().to_string(),
        ];
        let output = measure::run_children(&[args])?;
        measured.push((entries, serde_json::from_str::<Measured>(output[0].trim())?));
    }
    let (_, smallest) = &measured[0];
    let mut figures = Vec::new();
    for (entries, m) in &measured[1..] {
        let size = format!("{} entries", crate::report::number(*entries as f64));
        figures.push(
            Figure::new(section::SCALE, &format!("get, random key, {size}"), m.get_ns, Unit::NsPerOp)
                .against("the same at 1,000 entries", smallest.get_ns)
                .note("LRU off: every get reads SQLite"),
        );
        figures.push(
            Figure::new(
                section::SCALE,
                &format!("set, random key, durable, {size}"),
                m.sets_per_sec,
                Unit::OpsPerSec,
            )
            .against("the same at 1,000 entries", smallest.sets_per_sec),
        );
        figures.push(
            Figure::new(
                section::SCALE,
                &format!("memory (RSS), {size}"),
                m.rss as f64 / 1048576.0,
                Unit::MiB,
            )
            .against("the same at 1,000 entries", smallest.rss as f64 / 1048576.0)
            .goal(Goal::RatioAtMost(2.0))
            .note(format!(
                "peak {:.0} MiB; database {:.0} MB",
                m.peak_rss as f64 / 1048576.0,
                m.db_bytes as f64 / 1e6
            )),
        );
    }
    // The tail of durable writes on the largest database: what the checkpoint interval trades
    // against throughput (see `CacheManagerBuilder::checkpoint_pages`).
    let (largest, _) = measured[measured.len() - 1];
    let db = database(largest)?;
    let sqlite_default = set_latencies(&db, largest, SQLITE_CHECKPOINT_PAGES, budget * 2)?;
    let ours = set_latencies(&db, largest, easycaching::DEFAULT_CHECKPOINT_PAGES, budget * 2)?;
    let number = crate::report::number;
    let size = format!("{} entries", number(largest as f64));
    let against = format!(
        "the same, checkpoints every {} pages (SQLite's default)",
        number(f64::from(SQLITE_CHECKPOINT_PAGES))
    );
    let rates = format!("{} writes/s against {}", number(ours.per_sec), number(sqlite_default.per_sec));
    for (name, value, baseline) in [
        ("99th percentile", ours.p99_ms, sqlite_default.p99_ms),
        ("longest", ours.max_ms, sqlite_default.max_ms),
    ] {
        figures.push(
            Figure::new(
                section::SCALE,
                &format!("set latency, {TAIL_WRITERS} writers, random keys, {size}: {name}"),
                value,
                Unit::Millis,
            )
            .against(&against, baseline)
            .note(format!(
                "checkpoints every {} pages; {rates}",
                number(f64::from(easycaching::DEFAULT_CHECKPOINT_PAGES))
            )),
        );
    }
    Ok(figures)
}

/// Writer threads of the latency figures.
const TAIL_WRITERS: usize = 8;
/// SQLite's own `wal_autocheckpoint`.
const SQLITE_CHECKPOINT_PAGES: u32 = 1000;

/// The latencies of durable `set`s of random keys.
struct Latencies {
    p99_ms: f64,
    max_ms: f64,
    per_sec: f64,
}

/// [`TAIL_WRITERS`] threads setting random keys of the database at `db` for `budget`, with the
/// WAL checkpointed every `checkpoint_pages` pages: every `set`'s latency.
fn set_latencies(db: &Path, entries: u64, checkpoint_pages: u32, budget: Duration) -> Result<Latencies> {
    let cache = CacheManager::builder(db).checkpoint_pages(checkpoint_pages).open()?.open_cache(CACHE)?;
    let mut rng = fastrand::Rng::with_seed(7);
    let keys: Vec<String> = (0..100_000).map(|_| key(rng.u64(..entries))).collect();
    // One list a thread, each pushed to by its thread alone: its lock is never contended.
    let per_thread: Vec<Mutex<Vec<Duration>>> = (0..TAIL_WRITERS).map(|_| Mutex::default()).collect();
    let rate = measure::concurrent(TAIL_WRITERS, budget, |thread, i| {
        let key = &keys[(i as usize * TAIL_WRITERS + thread) % keys.len()];
        let set = Instant::now();
        cache.set(key, fixture::numbered_json(i)).expect("set");
        let latency = set.elapsed();
        per_thread[thread].lock().expect("a writer panicked").push(latency);
    });
    let mut latencies: Vec<Duration> =
        per_thread.into_iter().flat_map(|list| list.into_inner().expect("a writer panicked")).collect();
    latencies.sort();
    let ms = |latency: Duration| latency.as_secs_f64() * 1e3;
    let count = latencies.len();
    anyhow::ensure!(count > 0, "no set finished in {budget:?}");
    Ok(Latencies {
        p99_ms: ms(latencies[(count * 99 / 100).min(count - 1)]),
        max_ms: ms(latencies[count - 1]),
        per_sec: rate.per_sec(),
    })
}

/// A child of [`run`]: measures one database in a fresh process.
pub fn child(db: &Path, entries: u64, millis: u64) -> Result<Measured> {
    let budget = Duration::from_millis(millis);
    let mut rng = fastrand::Rng::with_seed(7);
    let keys: Vec<String> = (0..100_000).map(|_| key(rng.u64(..entries))).collect();
    std::io::copy(&mut std::fs::File::open(db)?, &mut std::io::sink())?;
    // Reads with the LRU off, so that every size measures a read of SQLite (with the LRU on, a
    // thousand entries would half fit in it).
    let uncached = CacheManager::builder(db).lru_capacity(0).open()?.open_cache(CACHE)?;
    let gets = run_for(budget, u64::MAX, |i| {
        assert!(uncached.get(&keys[i as usize % keys.len()]).expect("get").is_some());
    });
    drop(uncached);
    // Writes and memory with the default LRU, filled by reads first.
    let cache = fixture::manager(db, Durability::Full)?.open_cache(CACHE)?;
    for key in keys.iter().take(10_000) {
        cache.get(key)?;
    }
    let sets = run_for(budget, u64::MAX, |i| {
        cache.set(&keys[i as usize % keys.len()], fixture::numbered_json(i)).expect("set");
    });
    let (rss, peak_rss) = measure::rss();
    Ok(Measured {
        get_ns: gets.ns_per_op(),
        sets_per_sec: sets.per_sec(),
        rss,
        peak_rss,
        db_bytes: std::fs::metadata(db)?.len(),
    })
}
