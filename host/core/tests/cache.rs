//! The cache operations through the embedding API.

use easycaching::{CacheManager, Error, Json, Limits, Quota};
use serde_json::json;

mod common;
use common::{json, manager};

#[test]
fn every_operation_does_what_it_says() {
    let (_dir, manager) = manager();
    let cache = manager.create_cache("test").unwrap();
    assert_eq!(cache.name(), "test");
    assert_eq!(cache.get("foo").unwrap(), None);
    assert!(!cache.contains("foo").unwrap());

    cache.set("foo", json(r#""bar""#)).unwrap();
    assert_eq!(cache.get("foo").unwrap(), Some(json(r#""bar""#)));
    assert!(cache.contains("foo").unwrap());
    assert_eq!(cache.len().unwrap(), 1);

    cache.set("foo", json(r#"{"replaced": true}"#)).unwrap();
    assert_eq!(cache.get("foo").unwrap().unwrap().as_str(), r#"{"replaced": true}"#);
    assert_eq!(cache.len().unwrap(), 1);

    assert!(cache.delete("foo").unwrap());
    assert!(!cache.delete("foo").unwrap());
    assert_eq!(cache.get("foo").unwrap(), None);
    assert_eq!(cache.len().unwrap(), 0);

    cache.set_many((0..5).map(|i| (format!("k{i}"), json(&i.to_string())))).unwrap();
    assert_eq!(cache.len().unwrap(), 5);
    let got = cache.get_many(&["k0", "missing", "k4"]).unwrap();
    assert_eq!(got, vec![Some(json("0")), None, Some(json("4"))]);
    assert_eq!(cache.delete_many(&["k0", "k1", "missing"]).unwrap(), 2);
    assert_eq!(cache.len().unwrap(), 3);
    assert_eq!(cache.clear().unwrap(), 3);
    assert!(cache.is_empty().unwrap());
}

#[test]
fn the_empty_key_is_a_key_like_any_other() {
    let (_dir, manager) = manager();
    let cache = manager.create_cache("test").unwrap();
    cache.set("", json("1")).unwrap();
    cache.set("a", json("2")).unwrap();
    assert_eq!(cache.get("").unwrap(), Some(json("1")));
    let keys = cache.keys(None, 10).unwrap();
    assert_eq!(keys.items, vec!["".to_owned(), "a".to_owned()]);
}

#[test]
fn typed_values_round_trip_through_serde() {
    let (_dir, manager) = manager();
    let cache = manager.create_cache("typed").unwrap();
    cache.set_value("user", &json!({"name": "Ada", "langs": ["en", "fr"]})).unwrap();
    let user: serde_json::Value = cache.get_value("user").unwrap().unwrap();
    assert_eq!(user["langs"][1], "fr");
    assert_eq!(cache.get_value::<serde_json::Value>("nobody").unwrap(), None);

    let err = cache.get_value::<u64>("user").unwrap_err();
    let Error::WrongType { reason, value } = &err else { panic!("{err:?}") };
    assert!(reason.contains("expected u64"), "{reason}");
    assert_eq!(value, &cache.get("user").unwrap().unwrap(), "the error holds the value read");
    assert!(err.to_string().starts_with("the value does not fit the type asked for"), "{err}");
}

#[test]
fn invalid_json_is_refused_and_nothing_is_stored() {
    let (_dir, manager) = manager();
    let cache = manager.create_cache("test").unwrap();
    assert!(matches!(Json::parse("{oops"), Err(Error::InvalidJson(_))));
    let err = Json::try_from("not json").unwrap_err();
    assert!(err.to_string().contains("invalid JSON"), "{err}");
    assert_eq!(cache.len().unwrap(), 0);
}

#[test]
fn oversized_keys_values_and_batches_are_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits { max_key_bytes: 8, max_value_bytes: 16, max_batch_items: 3 };
    let manager = CacheManager::builder(dir.path().join("t.db")).limits(limits).open().unwrap();
    let cache = manager.create_cache("test").unwrap();

    let err = cache.set("123456789", json("1")).unwrap_err();
    assert!(matches!(err, Error::TooLarge { what: "key", size: 9, limit: 8, .. }), "{err:?}");
    assert!(err.to_string().contains("over the limit of 8"), "{err}");
    let err = cache.set("k", json(&format!("\"{}\"", "x".repeat(20)))).unwrap_err();
    assert!(matches!(err, Error::TooLarge { what: "value", .. }), "{err:?}");
    let err = cache.set_many((0..4).map(|i| (i.to_string(), json("1")))).unwrap_err();
    assert!(matches!(err, Error::TooLarge { what: "batch", .. }), "{err:?}");
    // One bad entry in a batch stores none of it.
    let err = cache.set_many([("ok".into(), json("1")), ("way-too-long".into(), json("2"))]).unwrap_err();
    assert!(matches!(err, Error::TooLarge { what: "key", .. }), "{err:?}");
    assert!(matches!(cache.get("123456789"), Err(Error::TooLarge { .. })));
    assert_eq!(cache.len().unwrap(), 0);
}

#[test]
fn quota_refuses_growth_and_stores_nothing() {
    let (_dir, manager) = manager();
    let cache =
        manager.create_cache("small").unwrap().with_quota(Quota { max_entries: Some(2), ..Quota::UNLIMITED });
    cache.set("a", json("1")).unwrap();
    cache.set("b", json("2")).unwrap();
    let err = cache.set("c", json("3")).unwrap_err();
    assert!(matches!(err, Error::QuotaExceeded(_)), "{err:?}");
    // Replacing within the quota still works.
    cache.set("a", json("10")).unwrap();
    assert_eq!(cache.len().unwrap(), 2);
    assert_eq!(cache.get("c").unwrap(), None);

    let bytes =
        manager.create_cache("bytes").unwrap().with_quota(Quota { max_bytes: Some(10), ..Quota::UNLIMITED });
    bytes.set("k", json("12345678")).unwrap(); // 1 + 8 bytes
    assert!(matches!(bytes.set("k", json("1234567890")), Err(Error::QuotaExceeded(_))));
    assert_eq!(bytes.get("k").unwrap(), Some(json("12345678")));
    assert_eq!(bytes.size_bytes().unwrap(), 9);
}

#[test]
fn unknown_caches_and_bad_names_are_clear_errors() {
    let (_dir, manager) = manager();
    let err = manager.open_cache("nope").unwrap_err();
    assert!(matches!(&err, Error::NoSuchCache(name) if name == "nope"), "{err:?}");
    assert!(err.to_string().contains("create it first"), "{err}");
    for bad in ["", "a b", "x'); DROP TABLE entries; --", "../../etc/passwd"] {
        assert!(matches!(manager.create_cache(bad), Err(Error::InvalidName { .. })), "{bad:?}");
    }
    assert!(manager.list_caches().unwrap().is_empty());
}

#[test]
fn create_opens_an_existing_cache_and_lists_show_sizes() {
    let (_dir, manager) = manager();
    manager.create_cache("b").unwrap().set("k", json("1")).unwrap();
    let again = manager.create_cache("b").unwrap();
    assert_eq!(again.get("k").unwrap(), Some(json("1")));
    manager.create_cache("a").unwrap();
    let listed = manager.list_caches().unwrap();
    let names: Vec<_> = listed.iter().map(|s| (s.name.as_str(), s.entries, s.bytes)).collect();
    assert_eq!(names, vec![("a", 0, 0), ("b", 1, 2)]);
}

#[test]
fn a_deleted_cache_fails_its_open_handles_and_can_be_made_anew() {
    let (_dir, manager) = manager();
    let cache = manager.create_cache("doomed").unwrap();
    cache.set("k", json("1")).unwrap();
    assert!(manager.delete_cache("doomed").unwrap());
    assert!(!manager.delete_cache("doomed").unwrap());
    assert!(matches!(cache.get("k"), Err(Error::CacheDeleted(_))));
    assert!(matches!(cache.set("k", json("2")), Err(Error::CacheDeleted(_))));
    assert!(matches!(cache.len(), Err(Error::CacheDeleted(_))));
    assert!(matches!(manager.open_cache("doomed"), Err(Error::NoSuchCache(_))));
    let fresh = manager.create_cache("doomed").unwrap();
    assert_eq!(fresh.get("k").unwrap(), None);
    // The old handle never reaches the new cache of the same name, and says why.
    let stale = cache.get("k").unwrap_err();
    assert!(matches!(stale, Error::CacheDeleted(_)), "{stale:?}");
    assert!(stale.to_string().contains("was deleted while this handle to it was open"), "{stale}");
}

#[test]
fn data_survives_reopening_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("persist.db");
    {
        let manager = CacheManager::open(&path).unwrap();
        manager.create_cache("test").unwrap().set("foo", json(r#""bar""#)).unwrap();
        manager.create_queue("q").unwrap().put(json("1")).unwrap();
    }
    let manager = CacheManager::open(&path).unwrap();
    assert_eq!(manager.open_cache("test").unwrap().get("foo").unwrap(), Some(json(r#""bar""#)));
    assert_eq!(manager.open_queue("q").unwrap().get().unwrap(), Some(json("1")));
}

#[test]
fn the_lru_stays_within_its_capacity_and_keeps_the_recently_used() {
    let dir = tempfile::tempdir().unwrap();
    let manager = CacheManager::builder(dir.path().join("lru.db")).lru_capacity(10).open().unwrap();
    let cache = manager.create_cache("test").unwrap();
    for i in 0..100 {
        cache.set(&format!("k{i}"), json(&i.to_string())).unwrap();
        assert!(cache.cached_len() <= 10);
    }
    assert_eq!(cache.cached_len(), 10);
    // Everything is still there, from the database.
    for i in 0..100 {
        assert_eq!(cache.get(&format!("k{i}")).unwrap(), Some(json(&i.to_string())));
    }
    assert_eq!(cache.cached_len(), 10);
    // Keys found absent are remembered apart: misses push no value out.
    let hot = cache.get("k99").unwrap();
    for i in 0..100 {
        assert_eq!(cache.get(&format!("absent{i}")).unwrap(), None);
    }
    assert_eq!(cache.cached_len(), 10);
    assert_eq!(cache.get("k99").unwrap(), hot);

    let default = CacheManager::open(dir.path().join("default.db")).unwrap().create_cache("d").unwrap();
    default.set_many((0..1000).map(|i| (i.to_string(), json("0")))).unwrap();
    assert_eq!(default.cached_len(), easycaching::DEFAULT_LRU_CAPACITY);
}

#[test]
fn large_values_are_served_but_not_kept_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let manager = CacheManager::builder(dir.path().join("big.db")).max_cached_value_bytes(16).open().unwrap();
    let cache = manager.create_cache("test").unwrap();
    let big = json(&format!("\"{}\"", "x".repeat(100)));
    cache.set("big", big.clone()).unwrap();
    cache.set("small", json("1")).unwrap();
    assert_eq!(cache.get("big").unwrap(), Some(big));
    assert_eq!(cache.cached_len(), 1);
}

#[test]
fn a_paged_scan_of_ten_thousand_entries_sees_each_exactly_once() {
    let (_dir, manager) = manager();
    let cache = manager.create_cache("big").unwrap();
    for chunk in (0..10_000).collect::<Vec<_>>().chunks(1000) {
        cache.set_many(chunk.iter().map(|i| (format!("key-{i:05}"), json(&i.to_string())))).unwrap();
    }
    let mut seen = std::collections::HashSet::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = cache.entries(cursor.as_deref(), 333).unwrap();
        assert!(page.items.len() <= 333);
        for (key, value) in page.items {
            let n: usize = key[4..].parse().unwrap();
            assert_eq!(value.as_str(), n.to_string());
            assert!(seen.insert(key), "an entry was seen twice");
        }
        pages += 1;
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), 10_000);
    assert_eq!(pages, 31);
    assert_eq!(cache.iter().count(), 10_000);

    let mut keys = 0;
    let mut cursor: Option<String> = None;
    loop {
        let page = cache.keys(cursor.as_deref(), 1000).unwrap();
        keys += page.items.len();
        cursor = page.next;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(keys, 10_000);
}

#[test]
fn a_page_stops_early_on_bytes_but_always_makes_progress() {
    let (_dir, manager) = manager();
    let cache = manager.create_cache("fat").unwrap();
    let value = json(&format!("\"{}\"", "v".repeat(900_000)));
    for i in 0..10 {
        cache.set(&format!("k{i}"), value.clone()).unwrap();
    }
    let first = cache.entries(None, 1000).unwrap();
    assert!(first.items.len() < 10 && !first.items.is_empty(), "{} entries", first.items.len());
    assert_eq!(cache.iter().count(), 10);
}

#[test]
fn a_scan_sees_entries_present_throughout_exactly_once_while_others_write() {
    let (_dir, manager) = manager();
    let cache = manager.create_cache("moving").unwrap();
    cache.set_many((0..1000).map(|i| (format!("stable-{i:04}"), json("1")))).unwrap();
    let mut seen = std::collections::HashMap::new();
    let mut cursor: Option<String> = None;
    let mut round = 0;
    loop {
        let page = cache.entries(cursor.as_deref(), 50).unwrap();
        for (key, _) in page.items {
            *seen.entry(key).or_insert(0) += 1;
        }
        // Between pages: insert before and after the cursor, delete some transient keys.
        round += 1;
        cache.set(&format!("a-new-{round}"), json("2")).unwrap();
        cache.set(&format!("zz-new-{round}"), json("2")).unwrap();
        cache.delete(&format!("zz-new-{}", round - 1)).unwrap();
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    for i in 0..1000 {
        assert_eq!(seen.get(&format!("stable-{i:04}")), Some(&1), "stable-{i:04}");
    }
    assert!(seen.values().all(|&n| n == 1), "something was seen twice");
}

#[test]
fn concurrent_writers_share_commits() {
    let (_dir, manager) = manager();
    let cache = manager.create_cache("busy").unwrap();
    std::thread::scope(|scope| {
        for thread in 0..8 {
            let cache = cache.clone();
            scope.spawn(move || {
                for i in 0..50 {
                    cache.set(&format!("{thread}-{i}"), json("1")).unwrap();
                }
            });
        }
    });
    assert_eq!(cache.len().unwrap(), 400);
    let stats = manager.write_stats();
    // One write created the cache; the 400 sets shared far fewer commits.
    assert_eq!(stats.writes, 401);
    assert!(stats.batches < 300, "400 concurrent writes took {} commits", stats.batches);
}

#[test]
fn get_many_reads_a_repeated_key_once_and_refuses_values_past_the_response_limit() {
    let (_dir, manager) = manager();
    // Values over the LRU's size limit are read from the database on every get.
    let cache = manager.create_cache("big").unwrap();
    let value = Json::from_value(&"x".repeat((1 << 20) - 2)).unwrap();
    cache.set("big", value.clone()).unwrap();
    cache.set("small", json("1")).unwrap();
    let values = cache.get_many(&["big", "small", "big", "none"]).unwrap();
    assert_eq!(values, vec![Some(value.clone()), Some(json("1")), Some(value.clone()), None]);
    let (first, second) = (values[0].as_ref().unwrap(), values[2].as_ref().unwrap());
    assert!(std::ptr::eq(first.as_str(), second.as_str()), "a repeated key was read twice");

    let error = cache.get_many(&["big"; 17]).unwrap_err();
    assert!(matches!(error, Error::TooLarge { limit: easycaching::MAX_RESPONSE_BYTES, .. }), "{error}");
    assert!(error.to_string().contains("the total of the values asked for"), "{error}");
    assert_eq!(cache.get_many(&["big"; 15]).unwrap().len(), 15);

    // Distinct keys too: the store stops reading once past the limit.
    let keys: Vec<String> = (0..17).map(|i| format!("big-{i:02}")).collect();
    cache.set_many(keys.iter().map(|key| (key.clone(), value.clone()))).unwrap();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let error = cache.get_many(&keys).unwrap_err();
    assert!(matches!(error, Error::TooLarge { limit: easycaching::MAX_RESPONSE_BYTES, .. }), "{error}");
    assert_eq!(cache.get_many(&keys[..16]).unwrap().len(), 16);
}

#[test]
fn increment_adds_to_the_integer_stored_and_counts_an_absent_key_as_zero() {
    let (_dir, manager) = manager();
    let cache = manager.create_cache("counts").unwrap();
    assert_eq!(cache.increment("hits", 1).unwrap(), 1);
    assert_eq!(cache.increment("hits", 41).unwrap(), 42);
    assert_eq!(cache.increment("hits", -50).unwrap(), -8);
    assert_eq!(cache.get("hits").unwrap().as_deref(), Some("-8"));
    cache.set("written", json(" 7 ")).unwrap();
    assert_eq!(cache.increment("written", 0).unwrap(), 7);
    assert_eq!(cache.get("written").unwrap().as_deref(), Some("7"));
    // `-0` is a JSON integer too (serde_json reads it only as a float, to keep its sign).
    cache.set("zero", json(" -0 ")).unwrap();
    assert_eq!(cache.increment("zero", 1).unwrap(), 1);
    cache.delete("zero").unwrap();
    assert_eq!(cache.len().unwrap(), 2);
    assert_eq!(cache.size_bytes().unwrap(), ("hits-8".len() + "written7".len()) as u64);
}

#[test]
fn increment_refuses_what_is_not_a_64_bit_integer_and_leaves_it_as_it_was() {
    let (_dir, manager) = manager();
    let cache = manager.create_cache("counts").unwrap();
    for stored in [r#""12""#, "1.5", "1e3", "18446744073709551615", "[1]", "null", "true"] {
        cache.set("k", json(stored)).unwrap();
        match cache.increment("k", 1) {
            Err(easycaching::Error::WrongType { reason, value }) => {
                assert!(reason.contains("increment needs an integer"), "{stored}: {reason}");
                assert_eq!(value.as_str(), stored);
            }
            other => panic!("{stored}: expected WrongType, got {other:?}"),
        }
        assert_eq!(cache.get("k").unwrap().as_deref(), Some(stored));
    }
    cache.set("k", json(&i64::MAX.to_string())).unwrap();
    let overflow = cache.increment("k", 1).unwrap_err().to_string();
    assert!(overflow.contains("does not fit a 64-bit integer"), "{overflow}");
    assert_eq!(cache.increment("k", -1).unwrap(), i64::MAX - 1);
    let long_key = "k".repeat(easycaching::DEFAULT_MAX_KEY_BYTES + 1);
    assert!(matches!(cache.increment(&long_key, 1), Err(easycaching::Error::TooLarge { what: "key", .. })));
}

/// A sum whose JSON text is longer than `max_value_bytes` is refused as `set` would refuse it,
/// and nothing is stored: with a limit of 2 bytes, 99 + 1 stored "100".
#[test]
fn increment_refuses_a_sum_longer_than_the_value_limit_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits { max_value_bytes: 2, ..Limits::default() };
    let manager = CacheManager::builder(dir.path().join("test.db")).limits(limits).open().unwrap();
    let cache = manager.create_cache("counts").unwrap();
    assert_eq!(cache.increment("n", 99).unwrap(), 99);
    let error = cache.increment("n", 1).unwrap_err();
    assert!(matches!(error, Error::TooLarge { what: "value", size: 3, limit: 2, .. }), "{error:?}");
    assert_eq!(error.to_string(), "value is 3 bytes, over the limit of 2");
    assert!(matches!(cache.set("n", json("100")), Err(Error::TooLarge { what: "value", .. })), "as set");
    assert!(matches!(cache.increment("m", -10), Err(Error::TooLarge { .. })), "nor an absent key");
    // Nothing stored, in the LRU or the file.
    assert_eq!(cache.get("n").unwrap().as_deref(), Some("99"));
    assert_eq!(cache.get("m").unwrap(), None);
    let reopened = CacheManager::open(dir.path().join("test.db")).unwrap();
    assert_eq!(reopened.open_cache("counts").unwrap().get("n").unwrap().as_deref(), Some("99"));
    assert_eq!(reopened.open_cache("counts").unwrap().len().unwrap(), 1);
    assert_eq!(cache.increment("n", -100).unwrap(), -1, "a sum that fits is stored");
}

#[test]
fn increment_is_held_to_the_quota_of_its_handle() {
    let (_dir, manager) = manager();
    let quota = easycaching::Quota { max_entries: Some(1), ..easycaching::Quota::UNLIMITED };
    let cache = manager.create_cache_within("small", &quota).unwrap();
    assert_eq!(cache.increment("a", 1).unwrap(), 1);
    assert!(matches!(cache.increment("b", 1), Err(easycaching::Error::QuotaExceeded(_))));
    assert_eq!(cache.get("b").unwrap(), None);
    assert_eq!(cache.increment("a", 1).unwrap(), 2, "a key already there grows no count");
}

#[test]
fn threads_incrementing_one_key_lose_no_count() {
    let (_dir, manager) = manager();
    let cache = manager.create_cache("counts").unwrap();
    let sums: Vec<i64> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let cache = cache.clone();
                scope.spawn(move || (0..50).map(|_| cache.increment("hits", 1).unwrap()).collect::<Vec<_>>())
            })
            .collect();
        threads.into_iter().flat_map(|thread| thread.join().unwrap()).collect()
    });
    let mut sorted = sums.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (1..=400).collect::<Vec<i64>>(), "each increment saw a sum of its own");
    assert_eq!(cache.get_value::<i64>("hits").unwrap(), Some(400));
}

/// A write larger than the disk's room is refused as a full disk, and stores nothing. SQLite
/// rolls such a transaction back itself; the store rolled it back again, and the error of that
/// ("cannot rollback - no transaction is active") was all the caller heard.
#[path = "../../../tests/support/small_disk.rs"]
mod small_disk;
use small_disk::small_disk;

#[test]
fn a_write_the_disk_cannot_hold_says_the_disk_is_full_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let Some((small, _unmount)) = small_disk(dir.path(), "2m") else { return };
    let manager = CacheManager::open(small.join("full.db")).unwrap();
    let cache = manager.create_cache("c").unwrap();
    cache.set("kept", json("1")).unwrap();
    let value = Json::from_value(&"v".repeat(4000)).unwrap();
    let entries = (0..1000).map(|i| (format!("k{i:04}"), value.clone()));
    let error = cache.set_many(entries).unwrap_err();
    assert!(error.to_string().contains("is full"), "{error}");
    assert_eq!(cache.len().unwrap(), 1);
    assert_eq!(cache.get("k0000").unwrap(), None);
}

/// The same write, not the first of its transaction (a group commit's later writes each run in
/// a savepoint): SQLite rolls the whole transaction back, and the batch fails with the full
/// disk, not with "no such savepoint" from rolling back to a savepoint that is gone.
#[test]
fn a_later_write_of_a_batch_the_disk_cannot_hold_fails_the_batch_as_a_full_disk() {
    use easycaching::store::{CacheId, Outcome, SqliteStore, Store, Target, Write};
    let dir = tempfile::tempdir().unwrap();
    let Some((small, _unmount)) = small_disk(dir.path(), "2m") else { return };
    let store = SqliteStore::open(
        &small.join("full.db"),
        easycaching::Durability::Full,
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    let create = [Write::CreateCache { name: "c".into(), quota: easycaching::Quota::UNLIMITED }];
    let Ok(Outcome::Created { id, .. }) = store.apply(&mut create.iter()).results.remove(0) else {
        panic!("the cache was not created")
    };
    let cache = Target { id: CacheId(id), name: "c".into() };
    let value = Json::from_value(&"v".repeat(4000)).unwrap();
    let batch = [
        Write::Set {
            cache: cache.clone(),
            entries: vec![("first".into(), json("1"))],
            expires_at: None,
            quota: easycaching::Quota::UNLIMITED,
        },
        Write::Set {
            cache: cache.clone(),
            entries: (0..1000).map(|i| (format!("k{i:04}"), value.clone())).collect(),
            expires_at: None,
            quota: easycaching::Quota::UNLIMITED,
        },
    ];
    let results = store.apply(&mut batch.iter()).results;
    assert_eq!(results.len(), 2);
    for result in results {
        let error = result.unwrap_err();
        assert!(error.to_string().contains("is full"), "{error}");
    }
    assert_eq!(store.get(CacheId(id), "first").unwrap(), None, "the transaction was rolled back whole");
    assert_eq!(store.get(CacheId(id), "k0000").unwrap(), None);
}
