//! The example plugin: the original easycaching's documented usage, step by step, on the
//! caches and queues its host grants it.
//!
//! Run it with `make demo`, or by hand:
//!
//! ```text
//! easycaching run target/wasm32-wasip2/release/walkthrough.wasm --db easycaching.db \
//!     --allow 'cache:test=rwc' --allow 'cache:walkthrough=rwc' --allow 'queue:jobs=rwc'
//! ```

use easycaching_guest::{Cache, Queue, Result};
use serde_json::{Value, json};

fn main() {
    if let Err(error) = walk_through() {
        eprintln!("walkthrough failed ({}): {}", error.case(), error.message());
        std::process::exit(1);
    }
}

fn step(call: &str, result: impl std::fmt::Display) {
    println!("{call:<40} -> {result}");
}

fn walk_through() -> Result<()> {
    println!("== the easycaching walkthrough ==");

    // cache = await EasyCacheManager.create(...); test = await cache.create_cache('test')
    let test = Cache::create("test")?;
    step("create_cache(\"test\")", format!("cache {:?}", test.name()));

    test.set("foo", "bar")?;
    step("test.set(\"foo\", \"bar\")", "ok");
    step("test.get(\"foo\")", json!(test.get::<Value>("foo")?));
    step("test.contains(\"foo\")", test.contains("foo")?);
    step("test.delete(\"foo\")", test.delete("foo")?);
    step("test.get(\"foo\")", json!(test.get::<Value>("foo")?));
    step("test.clear()", format!("removed {}", test.clear()?));

    test.set("a", &1)?;
    test.set("b", &json!([1, 2]))?;
    test.set("c", &json!({"nested": true}))?;
    step("test.set a, b, c", format!("{} entries", test.len()?));

    // async for item in test: print(item)
    println!("async for item in test:");
    for entry in test.iter::<Value>() {
        let (key, value) = entry?;
        println!("    {}", json!({ key: value }));
    }

    // manager.cache['test']['b']
    let again = Cache::open("test")?;
    step("manager.cache[\"test\"][\"b\"]", json!(again.get::<Value>("b")?));

    let jobs = Queue::create("jobs")?;
    jobs.put("first")?;
    jobs.put(&json!({"second": 2}))?;
    step("jobs.put(\"first\"), jobs.put({...})", format!("{} waiting", jobs.len()?));
    step("jobs.get()", json!(jobs.get::<Value>()?));
    step("jobs.get()", json!(jobs.get::<Value>()?));
    step("jobs.get()", json!(jobs.get::<Value>()?));

    // Something that outlives the run: how many times this database has seen the walkthrough,
    // counted with `increment`, so runs at the same time each count (a get then a set would
    // lose one).
    let stats = Cache::create("walkthrough")?;
    let runs = stats.increment("runs", 1)?;
    println!("this database has now seen {runs} walkthrough run(s); run it again and the count goes on");
    Ok(())
}
