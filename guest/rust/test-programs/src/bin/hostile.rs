//! Hostile and odd names, oversized keys and values, quota overflow, a handle whose cache was
//! deleted, and too many open handles: one line per attempt, each expected to be an error
//! value (never a crash). Run with `cache:*=rwc,entries=100` and a low handle limit.

use easycaching_guest::{Cache, Queue};
use easycaching_test_programs::report;

fn main() {
    let huge_name = "n".repeat(1024 * 1024);
    for (label, name) in [
        ("empty name", ""),
        ("sql name", "a'; DELETE FROM entries; --"),
        ("quote name", "a\"b"),
        ("path name", "../../../../etc/passwd"),
        ("absolute name", "/tmp/evil"),
        ("backslash name", "a\\b"),
        ("nul name", "a\0b"),
        ("newline name", "a\nb"),
        ("escape name", "\x1b[31mred"),
        ("unicode name", "café"),
        ("wildcard name", "a*"),
        ("huge name", huge_name.as_str()),
    ] {
        let _ = report(label, Cache::create(name).map(|_| ()));
    }

    let cache = Cache::create("hostile").expect("granted");
    let _ = report("huge key", cache.set(&"k".repeat(1024 * 1024), &1));
    let _ = report("huge value", cache.set("k", &"v".repeat(8 * 1024 * 1024)));
    let _ = report("huge batch", cache.get_many::<u32>(&vec!["k"; 5000]));
    let _ = report("key with nul", cache.set("a\0b", &1));
    let _ = report("read key with nul", cache.get::<u32>("a\0b"));

    // With the one entry above, 99 more fill the quota of 100 exactly.
    let filled = (0..99).map(|i| i.to_string()).collect::<Vec<_>>();
    let _ = report("fill to quota", cache.set_many(filled.iter().map(|k| (k.as_str(), &0))));
    let _ = report("one over quota", cache.set("one-more", &0));
    let _ = report("replace within quota", cache.set("0", &1));
    let _ = report("len after quota", cache.len());

    let doomed = Cache::create("doomed").expect("granted");
    let _ = report("delete cache under a handle", easycaching_guest::delete_cache("doomed"));
    let _ = report("get after delete", doomed.get::<u32>("k"));
    let _ = report("set after delete", doomed.set("k", &1));
    let doomed_queue = Queue::create("doomed-queue").expect("granted");
    let _ = report("delete queue under a handle", easycaching_guest::delete_queue("doomed-queue"));
    let _ = report("put after delete", doomed_queue.put(&1));

    let mut hoard = Vec::new();
    let result = loop {
        match Cache::open("hostile") {
            Ok(handle) => hoard.push(handle),
            Err(error) => break Err::<(), _>(error),
        }
    };
    let _ = report("hoard handles", result);
    drop(hoard);
    let _ = report("open after dropping the hoard", Cache::open("hostile").map(|_| ()));
}
