//! Every cache and queue operation once, checked as it goes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use easycaching_guest::{Cache, Error, Queue, Result, delete_cache, delete_queue, list_caches, list_queues};
use serde_json::{Value, json};

fn main() -> Result<()> {
    let cache = Cache::create("ops")?;
    assert_eq!(cache.name(), "ops");
    assert_eq!(cache.get::<Value>("k")?, None);
    cache.set("k", &json!({"v": 1}))?;
    assert_eq!(cache.get::<Value>("k")?, Some(json!({"v": 1})));
    assert_eq!(cache.get_json("k")?.as_deref(), Some(r#"{"v":1}"#));
    assert!(cache.contains("k")?);
    assert_eq!(cache.len()?, 1);
    assert!(cache.delete("k")?);
    assert!(!cache.delete("k")?);
    assert!(!cache.contains("k")?);

    cache.set_many([("a", &json!(1)), ("b", &json!(2)), ("c", &json!(3))])?;
    assert_eq!(cache.get_many::<Value>(&["a", "x", "c"])?, vec![Some(json!(1)), None, Some(json!(3))]);
    let keys: Vec<String> = cache.keys().collect::<Result<_>>()?;
    assert_eq!(keys, ["a", "b", "c"]);
    let page = cache.entries_page(None, 2)?;
    assert_eq!(page.entries.len(), 2);
    assert_eq!(page.next.as_deref(), Some("b"));
    assert_eq!(cache.delete_many(["a", "b", "nope"])?, 2);
    // Owned keys and values, as a program has them: a map of Strings, a Vec<String>.
    let owned: BTreeMap<String, Value> = [("d".to_owned(), json!(4)), ("e".to_owned(), json!([5]))].into();
    cache.set_many(&owned)?;
    let owned_keys: Vec<String> = owned.keys().cloned().collect();
    assert_eq!(cache.get_many::<Value>(&owned_keys)?, vec![Some(json!(4)), Some(json!([5]))]);
    assert_eq!(cache.delete_many(owned_keys)?, 2);
    assert_eq!(cache.clear()?, 1);
    assert!(cache.is_empty()?);
    assert_eq!(cache.increment("n", 2)?, 2);
    assert_eq!(cache.increment("n", -5)?, -3);
    cache.set("text", "not a number")?;
    match cache.increment("text", 1) {
        Err(easycaching_guest::Error::InvalidJson(message)) => {
            assert!(message.contains("needs an integer"), "{message}")
        }
        other => panic!("increment of a string: {other:?}"),
    }
    assert_eq!(cache.get::<String>("text")?.as_deref(), Some("not a number"));
    assert_eq!(cache.clear()?, 2);

    // Compare-and-swap: absent expected, JSON-value equality, mismatch, delete, bad input.
    assert!(cache.compare_and_swap("cas", None, Some(&json!({"a": 1, "b": [1.5]})))?);
    assert!(!cache.compare_and_swap("cas", None, Some(&json!("taken")))?, "the key is there now");
    assert!(
        cache.compare_and_swap_json("cas", Some(r#"{ "b": [15e-1], "a": 1.0 }"#), Some(r#"{"a":2}"#))?,
        "expected is compared as a JSON value"
    );
    assert!(!cache.compare_and_swap("cas", Some(&json!({"a": 1})), Some(&json!(3)))?);
    assert_eq!(cache.get::<Value>("cas")?, Some(json!({"a": 2})), "a mismatch stores nothing");
    for (expected, value, named) in
        [(Some("{nope"), Some("1"), "expected"), (Some(r#"{"a":2}"#), Some("[1,"), "value")]
    {
        match cache.compare_and_swap_json("cas", expected, value) {
            Err(easycaching_guest::Error::InvalidJson(message)) => {
                assert!(message.contains(&format!("`{named}`")), "{message}")
            }
            other => panic!("compare-and-swap with bad JSON in {named}: {other:?}"),
        }
    }
    assert_eq!(cache.get::<Value>("cas")?, Some(json!({"a": 2})), "bad input stores nothing");
    assert!(cache.compare_and_swap("cas", Some(&json!({"a": 2})), None)?, "none deletes");
    assert!(!cache.contains("cas")?);
    assert!(cache.compare_and_swap::<()>("cas", None, None)?, "absent, and left absent");
    assert_eq!(cache.update("counter", |n: Option<i64>| Some(n.unwrap_or(0) + 1))?, Some(1));
    assert_eq!(cache.update("counter", |n: Option<i64>| Some(n.unwrap_or(0) + 1))?, Some(2));
    assert_eq!(cache.get::<i64>("counter")?, Some(2));
    assert_eq!(cache.update("counter", |_: Option<i64>| None)?, None, "an update to none deletes");
    assert!(cache.is_empty()?);

    // TTL: a short one expires, a long one stays; increment keeps a TTL, set clears it,
    // expire changes it; a TTL of zero or past the longest is invalid-argument.
    let hour = Duration::from_secs(3600);
    cache.set_with_ttl("short", "gone soon", Duration::from_millis(50))?;
    cache.set_with_ttl("long", &1, hour)?;
    assert!(cache.ttl("long")?.is_some_and(|left| left > Duration::ZERO && left <= hour));
    assert_eq!(cache.increment("long", 1)?, 2);
    assert!(cache.ttl("long")?.is_some(), "increment keeps the TTL");
    let deadline = Instant::now() + Duration::from_secs(10);
    while cache.contains("short")? {
        assert!(Instant::now() < deadline, "a 50 ms TTL did not expire within 10 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(cache.get::<String>("short")?, None);
    assert_eq!(cache.ttl("short")?, None);
    assert_eq!(cache.len()?, 1, "len leaves out what expired");
    assert_eq!(cache.keys().collect::<Result<Vec<_>>>()?, ["long"]);
    cache.set("long", &3)?;
    assert_eq!(cache.ttl("long")?, None, "set clears the TTL");
    assert!(cache.expire("long", Some(hour))?);
    assert!(cache.ttl("long")?.is_some());
    assert!(cache.expire("long", None)?);
    assert_eq!(cache.ttl("long")?, None);
    assert!(!cache.expire("absent", Some(hour))?);
    for ttl in [Duration::ZERO, Duration::MAX] {
        match cache.set_with_ttl("bad", &1, ttl) {
            Err(Error::InvalidArgument(message)) => assert!(message.contains("TTL"), "{message}"),
            other => panic!("set_with_ttl with a TTL of {ttl:?}: {other:?}"),
        }
    }
    assert!(!cache.contains("bad")?, "a refused TTL stores nothing");
    cache.set_many_with_ttl([("batch-1", &1), ("batch-2", &2)], hour)?;
    for key in ["batch-1", "batch-2"] {
        assert!(cache.ttl(key)?.is_some_and(|left| left > Duration::ZERO && left <= hour), "{key}");
    }
    assert_eq!(cache.delete_many(["batch-1", "batch-2"])?, 2);
    assert!(matches!(cache.set_many_with_ttl([("bad", &1)], Duration::ZERO), Err(Error::InvalidArgument(_))));
    assert!(!cache.contains("bad")?, "a refused batch TTL stores nothing");
    assert!(cache.delete("long")?);
    cache.set_with_ttl("expiring", "in an hour", hour)?;

    cache.set("kept", "for the host to see")?;

    let again = Cache::open("ops")?;
    assert_eq!(again.get::<String>("kept")?.as_deref(), Some("for the host to see"));

    let queue = Queue::create("ops-queue")?;
    assert_eq!(queue.get::<Value>()?, None);
    queue.put(&1)?;
    queue.put_many([&2, &3])?;
    queue.put_many(vec![4])?;
    assert_eq!(queue.len()?, 4);
    assert_eq!(queue.peek::<u32>()?, Some(1));
    assert_eq!(queue.get::<u32>()?, Some(1));
    assert_eq!(queue.get_many::<u32>(2)?, vec![2, 3]);
    assert_eq!(queue.clear()?, 1);
    queue.put("left for the host")?;

    Cache::create("doomed")?;
    Queue::create("doomed-queue")?;
    assert_eq!(list_caches()?, ["doomed", "ops"]);
    assert_eq!(list_queues()?, ["doomed-queue", "ops-queue"]);
    assert!(delete_cache("doomed")?);
    assert!(!delete_cache("doomed")?);
    assert!(delete_queue("doomed-queue")?);
    assert_eq!(list_caches()?, ["ops"]);

    println!("every operation: ok");
    Ok(())
}
