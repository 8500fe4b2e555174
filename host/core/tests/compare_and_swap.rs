//! `Cache::compare_and_swap`: its semantics, its errors, its coherence between processes
//! (two managers on one file), and threads updating one entry through it losing no update.

use easycaching::{Cache, CacheManager, Error, Json, Limits, Quota};
use serde_json::{Value, json};

mod common;
use common::{json, manager, two_managers};

#[test]
fn an_absent_key_is_expected_as_none_and_a_present_one_is_not() {
    let (_dir, manager) = manager();
    let cache = manager.create_cache("c").unwrap();
    assert!(cache.compare_and_swap("k", None, Some(json("1"))).unwrap(), "absent, as expected");
    assert_eq!(cache.get("k").unwrap(), Some(json("1")));
    assert!(!cache.compare_and_swap("k", None, Some(json("2"))).unwrap(), "present now");
    assert_eq!(cache.get("k").unwrap(), Some(json("1")));
    assert!(!cache.compare_and_swap("other", Some(&json("1")), Some(json("2"))).unwrap(), "absent");
    assert_eq!(cache.get("other").unwrap(), None, "a mismatch stores nothing");
    assert!(!cache.contains("other").unwrap());
    // JSON null is a value, not the absence of one.
    cache.set("null", json("null")).unwrap();
    assert!(!cache.compare_and_swap("null", None, Some(json("1"))).unwrap());
    assert!(!cache.compare_and_swap("never", Some(&json("null")), Some(json("1"))).unwrap());
    assert!(cache.compare_and_swap("null", Some(&json("null")), Some(json("1"))).unwrap());
    assert_eq!(cache.len().unwrap(), 2);
}

#[test]
fn a_match_replaces_and_a_mismatch_stores_nothing() {
    let (dir, manager) = manager();
    let cache = manager.create_cache("c").unwrap();
    cache.set("k", json(r#"{"v":1}"#)).unwrap();
    assert!(!cache.compare_and_swap("k", Some(&json(r#"{"v":2}"#)), Some(json(r#"{"v":3}"#))).unwrap());
    assert_eq!(cache.get("k").unwrap(), Some(json(r#"{"v":1}"#)));
    assert!(cache.compare_and_swap("k", Some(&json(r#"{"v":1}"#)), Some(json(r#"{"v":22}"#))).unwrap());
    assert_eq!(cache.get("k").unwrap(), Some(json(r#"{"v":22}"#)));
    // Counts are kept as set keeps them: one entry, of the new value's size.
    assert_eq!(cache.len().unwrap(), 1);
    assert_eq!(cache.size_bytes().unwrap(), ("k".len() + r#"{"v":22}"#.len()) as u64);
    // And it is in the file, not only in this process's LRU.
    let reopened = CacheManager::open(dir.path().join("test.db")).unwrap();
    assert_eq!(reopened.open_cache("c").unwrap().get("k").unwrap(), Some(json(r#"{"v":22}"#)));
}

#[test]
fn a_value_of_none_deletes_the_key() {
    let (_dir, manager) = manager();
    let cache = manager.create_cache("c").unwrap();
    cache.set_many([("k".to_owned(), json("[1]")), ("kept".to_owned(), json("2"))]).unwrap();
    assert!(!cache.compare_and_swap("k", Some(&json("[2]")), None).unwrap());
    assert!(cache.contains("k").unwrap(), "a mismatch deletes nothing");
    assert!(cache.compare_and_swap("k", Some(&json("[1]")), None).unwrap());
    assert!(!cache.contains("k").unwrap());
    assert_eq!(cache.len().unwrap(), 1);
    assert_eq!(cache.size_bytes().unwrap(), ("kept".len() + 1) as u64);
    // Absent and left absent: a swap that changes nothing, but a match.
    assert!(cache.compare_and_swap("k", None, None).unwrap());
    assert!(!cache.compare_and_swap("kept", None, None).unwrap());
    assert_eq!(cache.len().unwrap(), 1);
}

#[test]
fn expected_is_compared_as_a_json_value_not_as_text() {
    let (_dir, manager) = manager();
    let cache = manager.create_cache("c").unwrap();
    // As Rust's serde_json writes it, then expected as Python's json.dumps writes it.
    cache.set_value("user", &json!({"name": "Ada", "visits": 1, "tags": ["a", "b"]})).unwrap();
    let as_python = json(r#"{"tags": ["a", "b"], "visits": 1.0, "name": "Ada"}"#);
    assert!(cache.compare_and_swap("user", Some(&as_python), Some(json(r#"{"visits":2}"#))).unwrap());
    for (stored, expected) in [("1", "1e0"), ("100", "1.0E2"), ("0", "-0"), ("\"A\"", r#""\u0041""#)] {
        cache.set("n", json(stored)).unwrap();
        assert!(cache.compare_and_swap("n", Some(&json(expected)), Some(json("true"))).unwrap(), "{stored}");
    }
    for (stored, expected) in [("1", "\"1\""), ("[1,2]", "[2,1]"), ("{}", r#"{"a":null}"#), ("0", "false")] {
        cache.set("n", json(stored)).unwrap();
        assert!(!cache.compare_and_swap("n", Some(&json(expected)), Some(json("true"))).unwrap(), "{stored}");
        assert_eq!(cache.get("n").unwrap(), Some(json(stored)));
    }
    // Integers compare exactly, past where f64 tells them apart.
    cache.set("big", json("9007199254740993")).unwrap();
    assert!(!cache.compare_and_swap("big", Some(&json("9007199254740992")), None).unwrap());
    assert!(cache.compare_and_swap("big", Some(&json("9007199254740993")), None).unwrap());
}

#[test]
fn bad_input_is_refused_as_set_refuses_it_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits { max_key_bytes: 8, max_value_bytes: 16, ..Limits::default() };
    let manager = CacheManager::builder(dir.path().join("t.db")).limits(limits).open().unwrap();
    let cache = manager.create_cache("c").unwrap();
    cache.set("k", json("1")).unwrap();
    let long = json(&format!("\"{}\"", "x".repeat(20)));
    let error = cache.compare_and_swap("k", Some(&json("1")), Some(long.clone())).unwrap_err();
    assert!(matches!(error, Error::TooLarge { what: "value", limit: 16, .. }), "{error:?}");
    let error = cache.compare_and_swap("a-long-key", None, Some(json("1"))).unwrap_err();
    assert!(matches!(error, Error::TooLarge { what: "key", limit: 8, .. }), "{error:?}");
    // Refused before anything is compared: a mismatch would not have hidden it.
    let error = cache.compare_and_swap("k", Some(&json("2")), Some(long.clone())).unwrap_err();
    assert!(matches!(error, Error::TooLarge { what: "value", .. }), "{error:?}");
    // `expected` is only compared, so it is held to no size limit.
    assert!(!cache.compare_and_swap("k", Some(&long), Some(json("2"))).unwrap());
    let spaced = json(&format!("{}1{}", " ".repeat(20), " ".repeat(20)));
    assert!(cache.compare_and_swap("k", Some(&spaced), Some(json("2"))).unwrap());
    assert_eq!(cache.get("k").unwrap(), Some(json("2")));
    assert_eq!(cache.len().unwrap(), 1);
}

#[test]
fn a_swap_is_held_to_the_quota_and_one_over_it_stores_nothing() {
    let (_dir, manager) = manager();
    let quota = Quota { max_entries: Some(1), max_bytes: Some(10), ..Quota::UNLIMITED };
    let cache = manager.create_cache_within("small", &quota).unwrap();
    assert!(cache.compare_and_swap("a", None, Some(json("1"))).unwrap());
    let error = cache.compare_and_swap("b", None, Some(json("1"))).unwrap_err();
    assert!(matches!(error, Error::QuotaExceeded(_)), "{error:?}");
    assert_eq!(cache.get("b").unwrap(), None);
    let error = cache.compare_and_swap("a", Some(&json("1")), Some(json("123456789012"))).unwrap_err();
    assert!(matches!(error, Error::QuotaExceeded(_)), "{error:?}");
    assert_eq!(cache.get("a").unwrap(), Some(json("1")));
    // A mismatch is not held to the quota: it stores nothing.
    assert!(!cache.compare_and_swap("b", Some(&json("1")), Some(json("2"))).unwrap());
    assert!(cache.compare_and_swap("a", Some(&json("1")), Some(json("2"))).unwrap(), "no growth");
    assert!(cache.compare_and_swap("a", Some(&json("2")), None).unwrap(), "a delete always fits");
    assert_eq!(cache.len().unwrap(), 0);
}

#[test]
fn a_swap_on_a_deleted_cache_is_an_error_match_or_not() {
    let (_dir, a, b) = two_managers();
    let in_a = a.create_cache("c").unwrap();
    in_a.set("k", json("1")).unwrap();
    assert!(b.delete_cache("c").unwrap());
    // Its entries are gone with it: "k" would read as absent, and must not match `None`.
    for expected in [None, Some(json("1"))] {
        let error = in_a.compare_and_swap("k", expected.as_ref(), Some(json("2"))).unwrap_err();
        assert!(matches!(error, Error::CacheDeleted(_)), "{error:?}");
    }
    assert!(b.list_caches().unwrap().is_empty(), "nothing was stored");
}

#[test]
fn a_swap_in_one_process_is_read_in_the_other_over_its_cached_value() {
    let (_dir, a, b) = two_managers();
    let (in_a, in_b) = (a.create_cache("c").unwrap(), b.create_cache("c").unwrap());
    in_a.set("k", json("1")).unwrap();
    assert_eq!(in_b.get("k").unwrap(), Some(json("1")));
    assert_eq!(in_b.cached_len(), 1, "b holds k in its LRU");
    assert!(in_a.compare_and_swap("k", Some(&json("1")), Some(json("2"))).unwrap());
    assert_eq!(in_b.get("k").unwrap(), Some(json("2")));
    assert!(in_a.compare_and_swap("k", Some(&json("2")), None).unwrap());
    assert_eq!(in_b.get("k").unwrap(), None);
    assert!(in_b.compare_and_swap("k", None, Some(json("3"))).unwrap());
    assert_eq!(in_a.get("k").unwrap(), Some(json("3")));
}

/// The comparison is made with the database inside the write, never with the LRU: a value
/// another process replaced cannot be swapped out, even by a process that has the old value
/// in memory and has not read since.
#[test]
fn a_stale_lru_cannot_make_a_swap_succeed_against_a_value_another_process_replaced() {
    let (_dir, a, b) = two_managers();
    let (in_a, in_b) = (a.create_cache("c").unwrap(), b.create_cache("c").unwrap());
    in_a.set("k", json("1")).unwrap();
    assert_eq!(in_a.get("k").unwrap(), Some(json("1")));
    assert_eq!(in_a.cached_len(), 1, "a holds the value in its LRU");
    in_b.set("k", json("2")).unwrap();
    // a has not read since b's write: its LRU still says 1.
    assert!(!in_a.compare_and_swap("k", Some(&json("1")), Some(json("10"))).unwrap());
    assert_eq!(in_b.get("k").unwrap(), Some(json("2")), "b's value stays");
    assert_eq!(in_a.get("k").unwrap(), Some(json("2")));
    assert!(in_a.compare_and_swap("k", Some(&json("2")), Some(json("10"))).unwrap());
    assert_eq!(in_b.get("k").unwrap(), Some(json("10")));

    // A value changed behind every LRU's back (no change-log row): a's LRU goes on answering
    // the old value to reads, yet the swap compares with the file, and after the mismatch a
    // reads the file again.
    let conn = rusqlite::Connection::open(a.path()).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    conn.execute("UPDATE entries SET value = '11' WHERE key = 'k'", ()).unwrap();
    assert_eq!(in_a.get("k").unwrap(), Some(json("10")), "stale, as no change was logged");
    assert!(!in_a.compare_and_swap("k", Some(&json("10")), Some(json("12"))).unwrap());
    assert_eq!(in_a.get("k").unwrap(), Some(json("11")), "a mismatch makes the next read fresh");
    assert!(in_a.compare_and_swap("k", Some(&json("11")), Some(json("12"))).unwrap());
    assert_eq!(in_b.get("k").unwrap(), Some(json("12")));
}

/// Reads the counter under "counter" (`{"n": N, "by": [...]}`), and swaps in N + 1 until a
/// swap goes through; returns the N + 1 stored. Every other call expects the value written
/// out again, spaced and reordered, as another SDK would send it, and not the text read.
fn add_one(cache: &Cache, thread: usize, attempt: usize) -> i64 {
    loop {
        let read = cache.get("counter").unwrap();
        let current: Value = read.as_ref().map_or(json!({"n": 0}), |value| value.deserialize().unwrap());
        let n = current["n"].as_i64().unwrap() + 1;
        let expected = match (&read, attempt % 2) {
            (Some(_), 1) => Some(json(&serde_json::to_string_pretty(&current).unwrap())),
            _ => read.clone(),
        };
        let value = Json::from_value(&json!({"by": [thread], "n": n})).unwrap();
        if cache.compare_and_swap("counter", expected.as_ref(), Some(value)).unwrap() {
            return n;
        }
    }
}

#[test]
fn threads_updating_one_counter_through_compare_and_swap_lose_no_update() {
    const THREADS: usize = 8;
    const TIMES: usize = 40;
    // Two managers, as two processes would be, four threads each.
    let (_dir, a, b) = two_managers();
    let managers = [a, b];
    let caches: Vec<Cache> = managers.iter().map(|m| m.create_cache("counters").unwrap()).collect();
    let stored: Vec<i64> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..THREADS)
            .map(|thread| {
                let cache = caches[thread % 2].clone();
                scope.spawn(move || (0..TIMES).map(|i| add_one(&cache, thread, i)).collect::<Vec<_>>())
            })
            .collect();
        threads.into_iter().flat_map(|thread| thread.join().unwrap()).collect()
    });
    let mut sorted = stored.clone();
    sorted.sort_unstable();
    let all = (THREADS * TIMES) as i64;
    assert_eq!(sorted, (1..=all).collect::<Vec<i64>>(), "each update stored a count of its own");
    for cache in &caches {
        let counter: Value = cache.get_value("counter").unwrap().unwrap();
        assert_eq!(counter["n"], all);
    }
}

#[test]
fn threads_counting_through_update_lose_no_count() {
    const THREADS: usize = 8;
    const TIMES: usize = 40;
    let (_dir, a, b) = two_managers();
    let managers = [a, b];
    let caches: Vec<Cache> = managers.iter().map(|m| m.create_cache("counters").unwrap()).collect();
    let calls = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let (cache, calls) = (&caches[thread % 2], &calls);
            scope.spawn(move || {
                for _ in 0..TIMES {
                    let stored = cache
                        .update("hits", |hits: Option<i64>| {
                            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            Some(hits.unwrap_or(0) + 1)
                        })
                        .unwrap();
                    assert!(stored.is_some_and(|hits| hits >= 1));
                }
            });
        }
    });
    let all = (THREADS * TIMES) as i64;
    for cache in &caches {
        assert_eq!(cache.get_value::<i64>("hits").unwrap(), Some(all), "every count kept");
    }
    assert!(calls.into_inner() >= THREADS * TIMES, "change ran at least once per update");
}

#[test]
fn update_deletes_on_none_and_stores_nothing_when_the_value_is_not_its_type() {
    let (_dir, manager) = manager();
    let cache = manager.create_cache("c").unwrap();
    assert_eq!(cache.update("n", |n: Option<i64>| Some(n.unwrap_or(41) + 1)).unwrap(), Some(42));
    assert_eq!(cache.get("n").unwrap(), Some(json("42")));
    assert_eq!(cache.update("n", |_: Option<i64>| None).unwrap(), None);
    assert!(!cache.contains("n").unwrap(), "None removes the key");
    assert_eq!(cache.len().unwrap(), 0);

    cache.set("word", json(r#""tea""#)).unwrap();
    let mut called = false;
    let refused = cache.update("word", |n: Option<i64>| {
        called = true;
        n
    });
    assert!(refused.is_err(), "a string is no i64: {refused:?}");
    assert!(!called, "change is not called with what it cannot read");
    assert_eq!(cache.get("word").unwrap(), Some(json(r#""tea""#)), "nothing stored");
}
