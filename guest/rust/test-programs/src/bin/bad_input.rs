//! Values that are not JSON, keys and values over the limits, names that are not allowed,
//! caches that do not exist: each must come back as its WIT error, storing nothing.

use easycaching_guest::bindings::easycaching::cache::types::Entry;
use easycaching_guest::{Cache, Queue};
use easycaching_test_programs::report;

fn main() {
    let cache = Cache::create("input").expect("the test grants cache:input");
    let _ = report("set invalid json", cache.set_json("k", "{not json"));
    let _ = report("set empty text", cache.set_json("k", ""));
    let _ = report("set two documents", cache.set_json("k", "1 2"));
    let _ = report("set huge key", cache.set(&"k".repeat(5000), &1));
    let _ = report("get huge key", cache.get::<u32>(&"k".repeat(5000)));
    let _ = report("set huge value", cache.set("k", &"v".repeat(2 * 1024 * 1024)));
    let many =
        [Entry { key: "good".into(), value: "1".into() }, Entry { key: "bad".into(), value: "{".into() }];
    let _ = report(
        "set_many with one bad value",
        easycaching_guest::bindings::easycaching::cache::manager::open_cache("input")
            .and_then(|raw| raw.set_many(&many)),
    );
    let queue = Queue::create("input-queue").expect("the test grants queue:input-queue");
    let raw_queue = easycaching_guest::bindings::easycaching::cache::manager::open_queue("input-queue")
        .expect("just created");
    let _ = report("put invalid json", raw_queue.put("nope"));
    let _ = report("queue len", queue.len());
    let _ = report("open missing cache", Cache::open("missing"));
    let _ = report("open missing queue", Queue::open("missing"));
    let _ = report("create bad name", Cache::create("no spaces"));
    let _ = report("create sql name", Cache::create("x'); DROP TABLE entries; --"));
    let _ = report("create path name", Cache::create("../../etc/passwd"));
    let _ = report("cache len", cache.len());
}
