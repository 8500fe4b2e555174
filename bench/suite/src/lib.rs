//! easycaching's benchmarks: every figure stands next to a baseline measured in the same run
//! on the same machine, because on a shared machine the ratio holds where absolute times do not.
//!
//! - [`micro`]: the per-call cases (a hit, a miss, a call from a guest, an instantiation), run
//!   by criterion (`benches/micro.rs`) for times and under callgrind (`easycaching-bench ops`)
//!   for instruction counts, which repeat exactly on a busy machine.
//! - The `easycaching-bench` binary: bounded, self-stopping loops for everything bound by
//!   fsync, processes or the network (durable writes, concurrent writers, Redis, queues,
//!   start-up, scale), and the report that gathers every figure into a table and
//!   `target/bench/results.json`.
//!
//! `make bench` runs it all; `bench/README.md` says what each figure means.

pub mod baseline;
pub mod committer;
pub mod fixture;
pub mod guest;
pub mod measure;
pub mod micro;
pub mod redis;
pub mod report;
pub mod stages;

use std::path::PathBuf;

/// The workspace root, where `target/` is.
pub fn workspace_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")))
}

/// `target/bench`: figures, compiled components and scratch databases of the benchmarks.
pub fn bench_dir() -> PathBuf {
    workspace_dir().join("target").join("bench")
}

/// Turns wasmtime's error (its own type, not anyhow's, in wasmtime 48 without the `anyhow`
/// feature) into anyhow's, keeping the whole chain of causes.
pub fn wasm_error(error: wasmtime::Error) -> anyhow::Error {
    anyhow::anyhow!("{error:?}")
}
