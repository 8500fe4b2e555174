//! The Rust guest of the benchmarks: runs loops of calls into the host for the host to time
//! (see `bench/wit/floor.wit`). Built for `wasm32-wasip2` by `make bench`.

wit_bindgen::generate!({
    path: ["../../wit", "../wit"],
    world: "bench:floor/guest",
    generate_all,
});

use std::cell::RefCell;

use bench::floor::calls;
use easycaching::cache::caches::Cache;
use easycaching::cache::manager;
use exports::bench::floor::runner::Guest;

/// The cache every case reads, and the key it reads.
const CACHE: &str = "bench";
const KEY: &str = "user:1";
/// The value stored under `KEY`: a small JSON document, as a session or a user record is.
const VALUE: &str = r#"{"name":"Ada","visits":3}"#;

thread_local! {
    /// The open cache, kept between calls of `run` as a plugin keeps its handles.
    static OPEN: RefCell<Option<Cache>> = const { RefCell::new(None) };
    /// The floor's map, kept the same way.
    static MAP: RefCell<Option<calls::HashMap>> = const { RefCell::new(None) };
}

struct Runner;

impl Guest for Runner {
    fn prepare(case: String) {
        if case == "get-hit" {
            let cache = manager::create_cache(CACHE).expect("the host grants cache:bench");
            cache.set(KEY, VALUE).expect("the value is JSON");
            OPEN.with(|open| *open.borrow_mut() = Some(cache));
        }
        if case == "floor-map-get" {
            MAP.with(|map| *map.borrow_mut() = Some(calls::HashMap::new()));
        }
    }

    fn run(case: String, iterations: u64) -> u64 {
        match case.as_str() {
            "get-hit" => OPEN.with(|open| {
                let open = open.borrow();
                let cache = open.as_ref().expect("prepare(\"get-hit\") opens the cache first");
                count(iterations, || cache.get(KEY).ok().flatten().is_some())
            }),
            "floor-empty" => count(iterations, || {
                calls::empty();
                true
            }),
            "floor-get" => count(iterations, || calls::get(KEY).is_some()),
            "floor-map-get" => MAP.with(|map| {
                let map = map.borrow();
                let map = map.as_ref().expect("prepare(\"floor-map-get\") makes the map first");
                count(iterations, || map.get(KEY).ok().flatten().is_some())
            }),
            "loop" => count(iterations, || std::hint::black_box(true)),
            other => panic!("no bench case {other:?}"),
        }
    }
}

/// Runs `call` `iterations` times; how many times it answered `true`.
fn count(iterations: u64, mut call: impl FnMut() -> bool) -> u64 {
    (0..iterations).map(|_| u64::from(call())).sum()
}

export!(Runner);
