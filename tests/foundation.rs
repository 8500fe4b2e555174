//! The foundation, end to end: real Rust guest components run on the host through the test
//! harness, with the grants each scenario needs.

use easycaching_harness::{Harness, Run};
use easycaching_tests::{guest, lines};
use serde_json::json;

/// Fails the test with the plugin's output when the run did not succeed.
fn succeeded(run: &Run) {
    if let Err(error) = &run.result {
        panic!(
            "the plugin failed: {error}\n--- stdout\n{}\n--- stderr\n{}",
            run.stdout_text(),
            run.stderr_text()
        );
    }
}

#[test]
fn every_operation_works_from_a_guest_and_leaves_what_it_wrote() {
    let harness = Harness::new()
        .unwrap()
        .allow("cache:ops=rwc")
        .allow("cache:doomed=rwc")
        .allow("queue:ops-queue=rwc")
        .allow("queue:doomed-queue=rwc");
    let run = harness.run(guest("every_operation")).unwrap();
    succeeded(&run);
    assert_eq!(run.stdout_text(), "every operation: ok\n");
    let cache = harness.cache("ops").unwrap();
    assert_eq!(cache.get_value::<String>("kept").unwrap().as_deref(), Some("for the host to see"));
    // Stored with a TTL by the guest: the host sees it, with its TTL.
    assert_eq!(cache.get_value::<String>("expiring").unwrap().as_deref(), Some("in an hour"));
    assert!(cache.ttl("expiring").unwrap().is_some_and(|left| left <= std::time::Duration::from_secs(3600)));
    assert_eq!(cache.len().unwrap(), 2);
    assert_eq!(
        harness.queue("ops-queue").unwrap().get_value::<String>().unwrap().as_deref(),
        Some("left for the host")
    );
    let caches: Vec<_> = harness.manager().list_caches().unwrap().into_iter().map(|c| c.name).collect();
    assert_eq!(caches, ["ops"]);
}

const WALKTHROUGH_GRANTS: [&str; 3] = ["cache:test=rwc", "cache:walkthrough=rwc", "queue:jobs=rwc"];

#[test]
fn the_walkthrough_prints_the_original_usage_and_counts_its_runs() {
    let harness = WALKTHROUGH_GRANTS.iter().fold(Harness::new().unwrap(), |h, grant| h.allow(grant));
    let first = harness.run(guest("walkthrough")).unwrap();
    succeeded(&first);
    let stdout = first.stdout_text();
    let expected = [
        "== the easycaching walkthrough ==",
        "create_cache(\"test\")                     -> cache \"test\"",
        "test.set(\"foo\", \"bar\")                   -> ok",
        "test.get(\"foo\")                          -> \"bar\"",
        "test.contains(\"foo\")                     -> true",
        "test.delete(\"foo\")                       -> true",
        "test.get(\"foo\")                          -> null",
        "test.clear()                             -> removed 0",
        "test.set a, b, c                         -> 3 entries",
        "async for item in test:",
        "    {\"a\":1}",
        "    {\"b\":[1,2]}",
        "    {\"c\":{\"nested\":true}}",
        "manager.cache[\"test\"][\"b\"]               -> [1,2]",
        "jobs.put(\"first\"), jobs.put({...})       -> 2 waiting",
        "jobs.get()                               -> \"first\"",
        "jobs.get()                               -> {\"second\":2}",
        "jobs.get()                               -> null",
        "this database has now seen 1 walkthrough run(s); run it again and the count goes on",
    ];
    assert_eq!(lines(&stdout), expected);

    // A second run finds the first run's entries (and clears them) and counts on.
    let harness = harness.reopen().unwrap();
    let second = harness.run(guest("walkthrough")).unwrap();
    succeeded(&second);
    let stdout = second.stdout_text();
    assert!(stdout.contains("test.clear()                             -> removed 3"), "{stdout}");
    assert!(stdout.contains("has now seen 2 walkthrough run(s)"), "{stdout}");
    assert_eq!(harness.cache("walkthrough").unwrap().get_value::<u64>("runs").unwrap(), Some(2));
}

#[test]
fn bad_input_comes_back_as_wit_errors_and_stores_nothing() {
    let harness = Harness::new()
        .unwrap()
        .allow("cache:input=rwc")
        .allow("queue:input-queue=rwc")
        .allow("cache:missing=r")
        .allow("queue:missing=r")
        .allow("cache:*=rwc");
    let run = harness.run(guest("bad_input")).unwrap();
    succeeded(&run);
    assert_eq!(
        lines(&run.stdout_text()),
        [
            "set invalid json: invalid-json",
            "set empty text: invalid-json",
            "set two documents: invalid-json",
            "set huge key: too-large",
            "get huge key: too-large",
            "set huge value: too-large",
            "set_many with one bad value: invalid-json",
            "put invalid json: invalid-json",
            "queue len: ok 0",
            "lease for 0 ms: invalid-argument",
            "ack of text that is not a receipt: invalid-argument",
            "release of a receipt never handed out: ok false",
            "open missing cache: no-such-cache",
            "open missing queue: no-such-queue",
            "create bad name: invalid-name",
            "create sql name: invalid-name",
            "create path name: invalid-name",
            "cache len: ok 0",
            "set a string: ok ()",
            r#"get it as a number: wrong-type holding "a string" (invalid type)"#,
            r#"it is still there: ok Some("a string")"#,
            "put a string, a number, a string: ok ()",
            r#"get the first as a number: wrong-type holding "one" (invalid type)"#,
            r#"get_many of the others as numbers: wrong-type holding [2,"three"] (item 1 of 2)"#,
            "queue len after: ok 0",
        ]
    );
    let caches: Vec<_> = harness.manager().list_caches().unwrap().into_iter().map(|c| c.name).collect();
    assert_eq!(caches, ["input"], "nothing but the cache the plugin created may exist");
    let input = harness.cache("input").unwrap();
    assert_eq!(input.get("good").unwrap(), None, "half a batch was stored");
    assert_eq!(input.len().unwrap(), 1, "only the string the plugin set");
}

#[test]
fn grants_decide_what_a_plugin_reaches_and_denials_are_errors_not_traps() {
    let harness = Harness::new()
        .unwrap()
        .allow("cache:open=rw")
        .allow("cache:lazy=rw")
        .allow("cache:readonly=r")
        .allow("cache:team.*=rwc")
        .allow("queue:inbox=r");
    harness.seed_cache("open", [("k", json!(0))]).unwrap();
    harness.seed_cache("readonly", [("k", json!("v"))]).unwrap();
    harness.seed_cache("secret", [("password", json!("hunter2"))]).unwrap();
    harness.seed_queue("inbox", [json!(1)]).unwrap();
    harness.seed_queue("outbox", [json!(2)]).unwrap();

    let run = harness.run(guest("access")).unwrap();
    succeeded(&run);
    assert_eq!(
        lines(&run.stdout_text()),
        [
            "list caches: ok [\"open\", \"readonly\"]",
            "open ungranted: access-denied",
            "create ungranted: access-denied",
            "create without create grant: access-denied",
            "open granted: ok \"open\"",
            "write granted: ok ()",
            "read read-only: ok Some(\"v\")",
            "write read-only: access-denied",
            "delete read-only: access-denied",
            "clear read-only: access-denied",
            "swap read-only: access-denied",
            "update read-only: access-denied",
            "ttl read-only: ok None",
            "set with ttl read-only: access-denied",
            "expire read-only: access-denied",
            "delete without create grant: access-denied",
            "create by prefix: ok \"team.alpha\"",
            "delete by prefix: ok true",
            "create outside prefix: access-denied",
            "open read-only queue: ok \"inbox\"",
            "peek read-only queue: ok Some(1)",
            "take from read-only queue: access-denied",
            "put on read-only queue: access-denied",
            "lease from read-only queue: access-denied",
            "ack on read-only queue: access-denied",
            "release on read-only queue: access-denied",
            "extend on read-only queue: access-denied",
            "open ungranted queue: access-denied",
        ]
    );
    assert_eq!(harness.cache("open").unwrap().get_value::<u32>("k").unwrap(), Some(1));
    assert_eq!(harness.cache("readonly").unwrap().get_value::<String>("k").unwrap().as_deref(), Some("v"));
    assert_eq!(harness.cache("secret").unwrap().len().unwrap(), 1);
    assert!(matches!(harness.manager().open_cache("lazy"), Err(easycaching::Error::NoSuchCache(_))));
    assert_eq!(harness.queue("inbox").unwrap().len().unwrap(), 1);
    assert_eq!(harness.queue("outbox").unwrap().len().unwrap(), 1);
}

#[test]
fn a_paged_scan_of_ten_thousand_entries_from_a_guest_sees_each_exactly_once_and_a_prefix_lists_and_deletes_only_its_own()
 {
    let harness = Harness::new().unwrap().allow("cache:scan=rwc");
    let run = harness.run(guest("scan")).unwrap();
    succeeded(&run);
    assert_eq!(
        run.stdout_text(),
        "scanned 10000 entries in 15 pages; iterated 10000\n\
         prefix key-01: 1000 entries in 4 pages; key-012: 100; key-0999: 10 keys, key-09990 to key-09999; other-: 0\n\
         deleted prefix key-01: 1000; 0 left of it, 9000 in all\n"
    );
    let cache = harness.cache("scan").unwrap();
    assert_eq!(cache.len().unwrap(), 9_000);
    assert_eq!(cache.get("key-00999").unwrap().map(|value| value.to_string()), Some("999".to_owned()));
    assert_eq!(cache.get("key-02000").unwrap().map(|value| value.to_string()), Some("2000".to_owned()));
    assert_eq!(cache.get("key-01500").unwrap(), None);
}

#[test]
fn what_a_plugin_writes_is_still_there_after_the_host_restarts() {
    let harness = Harness::new().unwrap().allow("cache:data=rwc");
    let harness = harness.args(["set", "greeting", r#"{"hello": "world"}"#]);
    succeeded(&harness.run(guest("read_write")).unwrap());
    let harness = harness.reopen().unwrap().args(["get", "greeting"]);
    let run = harness.run(guest("read_write")).unwrap();
    succeeded(&run);
    assert_eq!(run.stdout_text(), "{\"hello\":\"world\"}\n");
}

#[test]
fn the_lru_stays_bounded_at_its_capacity_while_a_guest_touches_many_keys() {
    let harness = Harness::with_database(|db| db.lru_capacity(50))
        .unwrap()
        .allow("cache:data=rwc")
        .args(["touch", "1000"]);
    let run = harness.run(guest("read_write")).unwrap();
    succeeded(&run);
    assert_eq!(run.stdout_text(), "touched 1000\n");
    let cache = harness.cache("data").unwrap();
    assert_eq!(cache.len().unwrap(), 1000);
    assert_eq!(cache.cached_len(), 50);
}

#[test]
fn a_guest_without_grants_reaches_nothing() {
    let harness = Harness::new().unwrap().args(["get", "anything"]);
    harness.seed_cache("data", [("anything", json!(1))]).unwrap();
    let run = harness.run(guest("read_write")).unwrap();
    let stderr = run.stderr_text();
    let error = run.result.expect_err("the plugin must fail without grants");
    assert!(matches!(error, easycaching_harness::Error::Exited { code: 1 }), "{error}");
    // The SDK's error as `main` prints it: the case, then the host's message as it is, its
    // quotes unescaped (a derived `Debug` wrote `AccessDenied("... cache \"data\" ...")`).
    assert!(stderr.contains("Error: AccessDenied: "), "{stderr}");
    assert!(stderr.contains(r#"cache "data""#), "{stderr}");
}

#[test]
fn plugins_run_on_the_pooling_allocator_instance_after_instance() {
    use easycaching_host::{EasyCachingCtx, Grants, Output, RunOptions, Runtime, RuntimeConfig};
    let dir = tempfile::tempdir().unwrap();
    let manager = easycaching::CacheManager::open(dir.path().join("pool.db")).unwrap();
    let runtime = Runtime::new(RuntimeConfig::default().pooling(64 << 20)).unwrap();
    let plugin = runtime.load(guest("read_write")).unwrap();
    for i in 0..20 {
        let args = vec!["set".to_owned(), format!("k{i}"), i.to_string()];
        let options = RunOptions { args, output: Output::Capture, ..RunOptions::default() };
        let ctx = EasyCachingCtx::builder(manager.clone()).grants(Grants::everything()).build();
        let run = plugin.run(ctx, &options);
        assert!(run.result.is_ok(), "instance {i}: {:?}", run.result);
    }
    assert_eq!(manager.open_cache("data").unwrap().len().unwrap(), 20);
}
