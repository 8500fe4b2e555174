//! Two managers on one file stand for two processes: each has its own LRU, connections and
//! change-log position, and must see the other's writes as soon as they return. (Real
//! processes are tested end to end in tests/.)

use easycaching::{CacheManager, Error};

mod common;
use common::{json, two_managers};

#[test]
fn a_write_in_one_is_read_in_the_other_even_over_a_cached_value() {
    let (_dir, a, b) = two_managers();
    let in_a = a.create_cache("shared").unwrap();
    let in_b = b.open_cache("shared").unwrap();
    in_a.set("k", json("1")).unwrap();
    assert_eq!(in_b.get("k").unwrap(), Some(json("1")));
    assert_eq!(in_b.cached_len(), 1, "b should now hold k in its LRU");
    for round in 2..50 {
        in_a.set("k", json(&round.to_string())).unwrap();
        assert_eq!(in_b.get("k").unwrap(), Some(json(&round.to_string())));
        assert!(in_b.contains("k").unwrap());
    }
    in_a.delete("k").unwrap();
    assert_eq!(in_b.get("k").unwrap(), None);
    assert!(!in_b.contains("k").unwrap());
}

#[test]
fn own_writes_stay_cached_while_nobody_else_writes() {
    let (_dir, a, _b) = two_managers();
    let cache = a.create_cache("own").unwrap();
    cache.set("k", json("1")).unwrap();
    assert_eq!(cache.cached_len(), 1);
    assert_eq!(cache.get("k").unwrap(), Some(json("1")));
    assert_eq!(cache.cached_len(), 1);
}

#[test]
fn clear_and_delete_in_one_reach_the_other() {
    let (_dir, a, b) = two_managers();
    let in_a = a.create_cache("c").unwrap();
    in_a.set_many((0..10).map(|i| (i.to_string(), json("1")))).unwrap();
    let in_b = b.open_cache("c").unwrap();
    for i in 0..10 {
        assert!(in_b.get(&i.to_string()).unwrap().is_some());
    }
    in_a.clear().unwrap();
    for i in 0..10 {
        assert_eq!(in_b.get(&i.to_string()).unwrap(), None);
    }
    in_a.set("again", json("1")).unwrap();
    assert!(a.delete_cache("c").unwrap());
    assert!(matches!(in_b.get("again"), Err(Error::CacheDeleted(_))));
    assert!(matches!(b.open_cache("c"), Err(Error::NoSuchCache(_))));
    // Made anew under the same name, it is a different, empty cache everywhere.
    a.create_cache("c").unwrap().set("fresh", json("1")).unwrap();
    let new_in_b = b.open_cache("c").unwrap();
    assert_eq!(new_in_b.get("again").unwrap(), None);
    assert_eq!(new_in_b.get("fresh").unwrap(), Some(json("1")));
    assert!(matches!(in_b.get("fresh"), Err(Error::CacheDeleted(_))));
}

#[test]
fn falling_far_behind_the_change_log_forgets_everything_rather_than_serve_stale() {
    let (_dir, a, b) = two_managers();
    let in_a = a.create_cache("c").unwrap();
    in_a.set("watched", json("1")).unwrap();
    let in_b = b.open_cache("c").unwrap();
    assert_eq!(in_b.get("watched").unwrap(), Some(json("1")));
    // Far more changes than the log keeps, in many batches so pruning runs.
    in_a.set("watched", json("2")).unwrap();
    for round in 0..300 {
        in_a.set_many((0..100).map(|i| (format!("noise-{round}-{i}"), json("0")))).unwrap();
    }
    assert_eq!(in_b.get("watched").unwrap(), Some(json("2")));
}

#[test]
fn threads_of_both_read_and_write_and_never_see_an_older_value_after_a_newer_one() {
    let (_dir, a, b) = two_managers();
    let writer = a.create_cache("counter").unwrap();
    writer.set("n", json("0")).unwrap();
    let reader = b.open_cache("counter").unwrap();
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let reader = reader.clone();
            std::thread::spawn(move || {
                let mut last = 0u64;
                for _ in 0..3000 {
                    let value: u64 = reader.get("n").unwrap().unwrap().as_str().parse().unwrap();
                    assert!(value >= last, "went back from {last} to {value}");
                    last = value;
                }
            })
        })
        .collect();
    for n in 1..=300u64 {
        writer.set("n", json(&n.to_string())).unwrap();
        // Once set returned, the other manager sees it.
        let seen: u64 = reader.get("n").unwrap().unwrap().as_str().parse().unwrap();
        assert!(seen >= n, "wrote {n}, read {seen}");
    }
    for reader in readers {
        reader.join().unwrap();
    }
}

/// Adds an entry behind every manager's back: straight into the entries table, with no
/// change-log row, so no LRU hears of it. A read that still answers "absent" afterwards was
/// answered from memory.
fn insert_unannounced(path: &std::path::Path, cache: &str, key: &str, value: &str) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    conn.execute(
        "INSERT INTO entries (cache_id, key, value) SELECT id, ?2, ?3 FROM caches WHERE name = ?1",
        (cache, key, value),
    )
    .unwrap();
}

#[test]
fn an_absent_key_is_answered_from_memory_until_a_write_of_it_is_seen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let a = CacheManager::open(&path).unwrap();
    let b = CacheManager::open(&path).unwrap();
    let in_a = a.create_cache("c").unwrap();
    let in_b = b.open_cache("c").unwrap();

    // get: remembered absent, then invalidated by another process's set of that key.
    assert_eq!(in_a.get("k").unwrap(), None);
    insert_unannounced(&path, "c", "k", "0");
    assert_eq!(in_a.get("k").unwrap(), None, "the second get should not have read the store");
    assert_eq!(in_a.get_many(&["k"]).unwrap(), vec![None]);
    in_b.set("k", json("1")).unwrap();
    assert_eq!(in_a.get("k").unwrap(), Some(json("1")));

    // contains and get_many remember absence too; a clear elsewhere forgets it.
    assert!(!in_a.contains("m").unwrap());
    assert_eq!(in_a.get_many(&["n"]).unwrap(), vec![None]);
    insert_unannounced(&path, "c", "m", "0");
    insert_unannounced(&path, "c", "n", "0");
    assert!(!in_a.contains("m").unwrap());
    assert_eq!(in_a.get("n").unwrap(), None);
    in_b.clear().unwrap();
    in_b.set_many([("m".to_owned(), json("2")), ("n".to_owned(), json("3"))]).unwrap();
    assert!(in_a.contains("m").unwrap());
    assert_eq!(in_a.get("n").unwrap(), Some(json("3")));

    // This process's own set replaces what it remembered, and its own delete is remembered.
    assert_eq!(in_a.get("own").unwrap(), None);
    in_a.set("own", json("4")).unwrap();
    assert_eq!(in_a.get("own").unwrap(), Some(json("4")));
    assert_eq!(in_b.get("own").unwrap(), Some(json("4")));
    assert!(in_a.delete("own").unwrap());
    insert_unannounced(&path, "c", "own", "0");
    assert_eq!(in_a.get("own").unwrap(), None, "a's own delete should be remembered");
    in_b.set("own", json("5")).unwrap();
    assert_eq!(in_a.get("own").unwrap(), Some(json("5")));
}

#[test]
fn an_increment_in_one_is_read_in_the_other_over_a_cached_value() {
    let (_dir, a, b) = two_managers();
    let (in_a, in_b) = (a.create_cache("c").unwrap(), b.create_cache("c").unwrap());
    assert_eq!(in_a.increment("n", 5).unwrap(), 5);
    assert_eq!(in_b.get("n").unwrap().as_deref(), Some("5"), "b reads it and keeps it in its LRU");
    assert_eq!(in_a.increment("n", 1).unwrap(), 6);
    assert_eq!(in_b.get("n").unwrap().as_deref(), Some("6"));
    assert_eq!(in_b.increment("n", 1).unwrap(), 7);
    assert_eq!(in_a.get("n").unwrap().as_deref(), Some("7"));
}
