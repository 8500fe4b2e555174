//! Values that are not JSON, keys and values over the limits, names that are not allowed,
//! caches that do not exist: each must come back as its WIT error, storing nothing. A value of
//! another type than the one asked for comes back as the SDK's `wrong-type`, losing nothing.

use easycaching_guest::bindings::easycaching::cache::types::Entry;
use easycaching_guest::{Cache, Error, Queue, Result};
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
            .and_then(|raw| raw.set_many(&many))
            .map_err(Error::from),
    );
    let queue = Queue::create("input-queue").expect("the test grants queue:input-queue");
    let raw_queue = easycaching_guest::bindings::easycaching::cache::manager::open_queue("input-queue")
        .expect("just created");
    let _ = report("put invalid json", raw_queue.put("nope").map_err(Error::from));
    let _ = report("queue len", queue.len());
    let _ = report("lease for 0 ms", queue.lease::<u64>(std::time::Duration::ZERO));
    let _ = report("ack of text that is not a receipt", queue.ack("not a receipt"));
    let _ = report("release of a receipt never handed out", queue.release("1.0000000000000001"));
    let _ = report("open missing cache", Cache::open("missing"));
    let _ = report("open missing queue", Queue::open("missing"));
    let _ = report("create bad name", Cache::create("no spaces"));
    let _ = report("create sql name", Cache::create("x'); DROP TABLE entries; --"));
    let _ = report("create path name", Cache::create("../../etc/passwd"));
    let _ = report("cache len", cache.len());

    let _ = report("set a string", cache.set("text", "a string"));
    wrong_type("get it as a number", cache.get::<u64>("text"));
    let _ = report("it is still there", cache.get::<String>("text"));
    let items = [serde_json::json!("one"), serde_json::json!(2), serde_json::json!("three")];
    let _ = report("put a string, a number, a string", queue.put_many(&items));
    wrong_type("get the first as a number", queue.get::<u64>());
    wrong_type("get_many of the others as numbers", queue.get_many::<u64>(10));
    let _ = report("queue len after", queue.len());
}

/// Prints `label: wrong-type holding JSON (WHICH)`, WHICH being the reason up to its first
/// colon, or what came instead.
fn wrong_type<T: std::fmt::Debug>(label: &str, result: Result<T>) {
    match result {
        Err(Error::WrongType { value, reason }) => {
            let which = reason.split(':').next().unwrap_or_default();
            println!("{label}: wrong-type holding {value} ({which})");
        }
        other => println!("{label}: expected wrong-type, got {other:?}"),
    }
}
