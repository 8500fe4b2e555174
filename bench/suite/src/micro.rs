//! The per-call cases, each a loop the caller times: criterion (`benches/micro.rs`) for
//! nanoseconds, callgrind (`easycaching-bench ops`) for instructions. Both run exactly the code
//! below, so the two columns of the table describe the same work.

use std::hint::black_box;
use std::path::Path;

use anyhow::{Context, Result};
use easycaching::Durability;
use easycaching_host::{
    CompiledCache, EasyCachingCtx, Grant, Kind, Plugin, RunOptions, Runtime, RuntimeConfig,
};
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::p2::bindings::sync::CommandPre;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::baseline::{MutexMap, RawSqlite, SpinStore};
use crate::fixture::{self, CACHE, KEY, Scratch, VALUE};
use crate::guest::{BenchGuest, guest_path};
use crate::wasm_error;

/// Keys a miss case cycles through: far more than the LRU's 500, so every read misses it.
pub const MISS_KEYS: u64 = 10_000;

/// A loop to time: runs its case `n` times and returns how many found a value.
pub type Loop = Box<dyn FnMut(u64) -> u64>;

/// Every case, by name: `group/case`.
pub const CASES: &[&str] = &[
    "hit/easycaching-get",
    "hit/mutex-hashmap",
    "hit/coherence-check",
    "guest/easycaching-get",
    "guest/floor-map-get",
    "guest/floor-get",
    "guest/floor-empty",
    "miss/easycaching-get",
    "miss/rusqlite-get",
    "miss/easycaching-get-absent",
    "miss/rusqlite-get-absent",
    "spin/get",
    "write/easycaching-set-normal",
    "write/rusqlite-set-normal",
    "startup/instantiate",
    "startup/instantiate-pooling",
    "startup/wasmtime-bare",
];

/// Sets up `case` and returns its loop. The loop owns everything it needs (its scratch
/// database included), so dropping it cleans up.
pub fn prepare(case: &str) -> Result<Loop> {
    let scratch = Scratch::new()?;
    let db = scratch.db("micro.db");
    Ok(match case {
        "hit/easycaching-get" => {
            let cache = fixture::manager(&db, Durability::Full)?.create_cache(CACHE)?;
            cache.set(KEY, fixture::value())?;
            counted(scratch, move || cache.get(black_box(KEY)).expect("get").is_some())
        }
        "hit/mutex-hashmap" => {
            let map = MutexMap::default();
            map.set(KEY, VALUE);
            counted(scratch, move || map.get(black_box(KEY)).is_some())
        }
        "hit/coherence-check" => {
            let manager = fixture::manager(&db, Durability::Full)?;
            counted(scratch, move || manager.refresh().is_ok())
        }
        "guest/easycaching-get" => guest_loop(scratch, &db, "get-hit")?,
        "guest/floor-map-get" => guest_loop(scratch, &db, "floor-map-get")?,
        "guest/floor-get" => guest_loop(scratch, &db, "floor-get")?,
        "guest/floor-empty" => guest_loop(scratch, &db, "floor-empty")?,
        "miss/easycaching-get" => easycaching_reads(scratch, &db, miss_keys())?,
        "miss/rusqlite-get" => rusqlite_reads(scratch, &db, miss_keys())?,
        "miss/easycaching-get-absent" => easycaching_reads(scratch, &db, absent_keys())?,
        "miss/rusqlite-get-absent" => rusqlite_reads(scratch, &db, absent_keys())?,
        "spin/get" => {
            let spin = SpinStore::open(&db)?;
            spin.set(KEY, VALUE.as_bytes())?;
            counted(scratch, move || spin.get(black_box(KEY)).expect("get").is_some())
        }
        "write/easycaching-set-normal" => {
            let cache = fixture::manager(&db, Durability::Normal)?.create_cache(CACHE)?;
            let keys = write_keys();
            let mut next = 0;
            counted(scratch, move || {
                next += 1;
                cache.set(&keys[next % keys.len()], fixture::numbered_json(next as u64)).is_ok()
            })
        }
        "write/rusqlite-set-normal" => {
            let raw = RawSqlite::open(&db, "NORMAL")?;
            let keys = write_keys();
            let mut next = 0;
            counted(scratch, move || {
                next += 1;
                raw.set(&keys[next % keys.len()], &fixture::numbered_value(next as u64)).is_ok()
            })
        }
        "startup/instantiate" => plugin_loop(scratch, &db, RuntimeConfig::default())?,
        "startup/instantiate-pooling" => {
            plugin_loop(scratch, &db, RuntimeConfig::default().pooling(64 * 1024 * 1024))?
        }
        "startup/wasmtime-bare" => bare_loop()?,
        other => anyhow::bail!("no micro case {other:?}; the cases are {CASES:?}"),
    })
}

/// Keys a write case cycles through: a thousand, so the table stays small however long it runs.
fn write_keys() -> Vec<String> {
    (0..1000).map(fixture::key).collect()
}

fn miss_keys() -> Vec<String> {
    (0..MISS_KEYS).map(fixture::key).collect()
}

/// Keys that were never written, asked for again and again: a hundred, fewer than the LRU
/// remembers as absent, as a "get, else compute" that keeps missing asks for them.
fn absent_keys() -> Vec<String> {
    (MISS_KEYS..MISS_KEYS + 100).map(fixture::key).collect()
}

/// easycaching `get`s cycling through `keys`, over a cache of [`MISS_KEYS`] entries.
fn easycaching_reads(scratch: Scratch, db: &Path, keys: Vec<String>) -> Result<Loop> {
    let manager = fixture::manager(db, Durability::Full)?;
    fixture::fill(&manager, MISS_KEYS)?;
    let cache = manager.open_cache(CACHE)?;
    Ok(cycling(scratch, keys, move |key| cache.get(key).expect("get").is_some()))
}

/// The same reads through raw rusqlite, over a table of the same entries.
fn rusqlite_reads(scratch: Scratch, db: &Path, keys: Vec<String>) -> Result<Loop> {
    let mut raw = RawSqlite::open(db, "FULL")?;
    raw.set_many((0..MISS_KEYS).map(|i| (fixture::key(i), VALUE.to_owned())))?;
    Ok(cycling(scratch, keys, move |key| raw.get(key).expect("get").is_some()))
}

/// A loop calling `read` with the next of `keys` once per iteration.
fn cycling(scratch: Scratch, keys: Vec<String>, mut read: impl FnMut(&str) -> bool + 'static) -> Loop {
    let mut next = 0;
    counted(scratch, move || {
        next = (next + 1) % keys.len();
        read(&keys[next])
    })
}

/// A loop calling `call` once per iteration, keeping `scratch` until it is dropped.
fn counted(scratch: Scratch, mut call: impl FnMut() -> bool + 'static) -> Loop {
    Box::new(move |n| {
        let _keep = &scratch;
        (0..n).map(|_| u64::from(black_box(call()))).sum()
    })
}

/// A loop run inside the bench guest: one call from the host runs all `n` iterations.
fn guest_loop(scratch: Scratch, db: &Path, case: &str) -> Result<Loop> {
    let manager = fixture::manager(db, Durability::Full)?;
    let guest = BenchGuest::load(&guest_path())?;
    let mut instance = guest.instantiate(manager)?;
    instance.prepare(case)?;
    let case = case.to_owned();
    Ok(Box::new(move |n| {
        let _keep = (&scratch, &guest);
        instance.run(&case, n).expect("the bench guest runs")
    }))
}

/// The command component that does nothing, as `make bench` builds it.
pub fn empty_plugin_path() -> std::path::PathBuf {
    crate::workspace_dir().join("target/wasm32-wasip2/release/bench-empty.wasm")
}

/// Runs the empty plugin once per iteration through [`Plugin::run`]: a WASI context, a store
/// with the limits in force, instantiation from the pre-linked component, the call, teardown.
fn plugin_loop(scratch: Scratch, db: &Path, config: RuntimeConfig) -> Result<Loop> {
    let manager = fixture::manager(db, Durability::Full)?;
    let runtime = Runtime::new(config.compiled_cache_dir(crate::bench_dir().join("compiled")))?;
    let plugin: Plugin = runtime.load(empty_plugin_path())?;
    let ctx = EasyCachingCtx::builder(manager).grant(Grant::manage(Kind::Cache, CACHE)?).build();
    let options = RunOptions::default();
    Ok(Box::new(move |n| {
        let _keep = (&scratch, &runtime);
        (0..n).map(|_| u64::from(plugin.run(ctx.clone(), &options).result.is_ok())).sum()
    }))
}

/// The store data of a bare wasmtime-wasi host.
struct BareState {
    table: ResourceTable,
    wasi: WasiCtx,
}

impl WasiView for BareState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// The floor of start-up: the same empty command run by a bare wasmtime-wasi host (default
/// engine, WASI only, no limits, no easycaching), instantiated from its pre-linked form.
fn bare_loop() -> Result<Loop> {
    let engine = Engine::default();
    let wasm = std::fs::read(empty_plugin_path()).context("make bench builds bench-empty.wasm")?;
    let component =
        CompiledCache::new(crate::bench_dir().join("compiled")).load(&engine, &wasm).map_err(wasm_error)?;
    let mut linker: Linker<BareState> = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(wasm_error)?;
    let command = linker.instantiate_pre(&component).and_then(CommandPre::new).map_err(wasm_error)?;
    Ok(Box::new(move |n| {
        (0..n)
            .map(|_| {
                let state = BareState { table: ResourceTable::new(), wasi: WasiCtx::builder().build() };
                let mut store = Store::new(&engine, state);
                let ran = command.instantiate(&mut store).and_then(|c| c.wasi_cli_run().call_run(&mut store));
                u64::from(matches!(ran, Ok(Ok(()))))
            })
            .sum()
    }))
}
