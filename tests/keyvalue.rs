//! `wasi:keyvalue` over the caches, end to end: the `keyvalue` test program (`0.2.0-draft`) and
//! `keyvalue_draft2` (`0.2.0-draft2`), components that import only the standard interfaces, run
//! by `easycaching run` with the grants each scenario needs, against what the `easycaching
//! cache` commands and the storage engine see in the same database.

use std::path::{Path, PathBuf};
use std::process::Output;

use easycaching::CacheManager;
use easycaching_tests::{cli, guest};

/// One database, and a directory where the component is compiled once for every run.
struct Db {
    dir: tempfile::TempDir,
}

impl Db {
    fn new() -> Db {
        Db { dir: tempfile::tempdir().unwrap() }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("kv.db")
    }

    /// `easycaching run keyvalue.wasm --allow GRANT... -- ARGS...`: `wasi:keyvalue@0.2.0-draft`.
    fn keyvalue(&self, grants: &[&str], args: &[&str]) -> Output {
        self.run("keyvalue", grants, args)
    }

    /// The same with `keyvalue_draft2.wasm`: `wasi:keyvalue@0.2.0-draft2`.
    fn draft2(&self, grants: &[&str], args: &[&str]) -> Output {
        self.run("keyvalue_draft2", grants, args)
    }

    fn run(&self, program: &str, grants: &[&str], args: &[&str]) -> Output {
        let mut command = cli();
        command.arg("--db").arg(self.path()).arg("run").arg(guest(program));
        command.arg("--compiled-cache").arg(self.dir.path().join("compiled"));
        for grant in grants {
            command.args(["--allow", grant]);
        }
        command.arg("--").args(args).output().unwrap()
    }

    /// `easycaching cache ARGS...`.
    fn cache(&self, args: &[&str]) -> Output {
        cli().arg("--db").arg(self.path()).arg("cache").args(args).output().unwrap()
    }

    fn manager(&self) -> CacheManager {
        CacheManager::open(self.path()).unwrap()
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The one line the program printed, when it ran and succeeded.
fn ok(output: Output) -> String {
    assert!(output.status.success(), "failed: {output:?}\n{}", stderr(&output));
    stdout(&output).trim_end().to_owned()
}

/// The one line the program printed, when it ran and its command failed (status 1).
fn failed(output: Output) -> String {
    assert_eq!(output.status.code(), Some(1), "{}\n{}", stdout(&output), stderr(&output));
    stdout(&output).trim_end().to_owned()
}

const RWC: &[&str] = &["cache:kv=rwc"];

fn exists(db: &Path, cache: &str) -> bool {
    CacheManager::open(db).unwrap().list_caches().unwrap().iter().any(|summary| summary.name == cache)
}

#[test]
fn a_value_set_through_wasi_keyvalue_is_read_by_the_cli_and_back() {
    let db = Db::new();
    assert_eq!(ok(db.keyvalue(RWC, &["set", "kv", "k", r#"{"a": [1, 2]}"#])), "set: ok");
    // The bytes are the JSON text, exactly as written.
    assert_eq!(ok(db.cache(&["get", "kv", "k"])), r#"{"a": [1, 2]}"#);

    ok(db.cache(&["set", "kv", "from-cli", r#""hello""#]));
    assert_eq!(ok(db.keyvalue(RWC, &["get", "kv", "from-cli"])), r#"get: ok "hello""#);
    assert_eq!(ok(db.keyvalue(RWC, &["get", "kv", "absent"])), "get: ok none");

    assert_eq!(ok(db.keyvalue(RWC, &["exists", "kv", "from-cli"])), "exists: ok true");
    assert_eq!(ok(db.keyvalue(RWC, &["exists", "kv", "absent"])), "exists: ok false");
    assert_eq!(ok(db.keyvalue(RWC, &["delete", "kv", "from-cli"])), "delete: ok");
    assert!(!db.cache(&["get", "kv", "from-cli"]).status.success(), "deleted, still there");
    assert_eq!(ok(db.keyvalue(RWC, &["exists", "kv", "from-cli"])), "exists: ok false");
    // Deleting what is not there does nothing, and is no error.
    assert_eq!(ok(db.keyvalue(RWC, &["delete", "kv", "from-cli"])), "delete: ok");
    assert_eq!(ok(db.cache(&["keys", "kv"])), "k");
}

#[test]
fn a_component_may_import_both_wasi_keyvalue_and_easycaching_and_they_share_the_data() {
    let db = Db::new();
    assert_eq!(ok(db.keyvalue(RWC, &["mixed", "kv", "k", r#"{"b":2}"#])), r#"mixed: ok {"b":2} 5"#);
    assert_eq!(ok(db.cache(&["get", "kv", "k.count"])), "5");
}

#[test]
fn a_value_that_is_not_json_is_refused_naming_its_key_and_nothing_is_stored() {
    let db = Db::new();
    ok(db.cache(&["set", "kv", "k", "1"]));
    for bad in ["not json", "", "{\"a\": 1", "1 2"] {
        let refused = failed(db.keyvalue(RWC, &["set", "kv", "k", bad]));
        assert!(refused.starts_with("set: error other: "), "{refused}");
        assert!(refused.contains("the value for key \"k\" is not a JSON document"), "{refused}");
    }
    assert_eq!(ok(db.cache(&["get", "kv", "k"])), "1");
    let refused = failed(db.keyvalue(RWC, &["set", "kv", "new", "nope"]));
    assert!(refused.contains("\"new\" is not a JSON document"), "{refused}");
    assert_eq!(ok(db.cache(&["keys", "kv"])), "k");
}

#[test]
fn list_keys_pages_through_more_keys_than_one_page_holds() {
    let db = Db::new();
    let cache = db.manager().create_cache("kv").unwrap();
    for chunk in (0..2500).collect::<Vec<_>>().chunks(1000) {
        cache
            .set_many(chunk.iter().map(|n| (format!("key-{n:05}"), easycaching::Json::parse("0").unwrap())))
            .unwrap();
    }
    // The program checks that the keys come in order, none twice, and pages but the last full.
    assert_eq!(ok(db.keyvalue(RWC, &["list", "kv"])), "list: ok 2500 keys in 3 pages");
    ok(db.cache(&["del", "kv", "key-00000"]));
    assert_eq!(ok(db.keyvalue(RWC, &["list", "kv"])), "list: ok 2499 keys in 3 pages");
    assert_eq!(ok(db.keyvalue(&["cache:empty=rwc"], &["list", "empty"])), "list: ok 0 keys in 1 pages");

    // A cursor this handle did not give out is refused, not taken for some place in the scan.
    let refused = failed(db.keyvalue(RWC, &["cursor", "kv", "1"]));
    assert!(refused.starts_with("cursor: error other: "), "{refused}");
    assert!(refused.contains("start the scan again"), "{refused}");
}

#[test]
fn increments_from_wasi_keyvalue_and_from_the_cli_add_up() {
    let db = Db::new();
    assert_eq!(ok(db.keyvalue(RWC, &["incr", "kv", "n", "5"])), "incr: ok 5");
    assert_eq!(ok(db.cache(&["incr", "kv", "n", "3"])), "8");
    assert_eq!(ok(db.keyvalue(RWC, &["incr", "kv", "n", "1"])), "incr: ok 9");
    assert_eq!(ok(db.keyvalue(RWC, &["incr", "kv", "n", "0"])), "incr: ok 9");
    assert_eq!(ok(db.cache(&["get", "kv", "n"])), "9");
    assert_eq!(ok(db.keyvalue(RWC, &["get", "kv", "n"])), "get: ok 9");

    // Past the signed counters both share, or on what is no counter: refused, nothing stored.
    let too_big = failed(db.keyvalue(RWC, &["incr", "kv", "n", &(1u64 << 63).to_string()]));
    assert!(too_big.contains("a delta of at most 9223372036854775807"), "{too_big}");
    ok(db.cache(&["set", "kv", "below", "--", "-5"]));
    let negative = failed(db.keyvalue(RWC, &["incr", "kv", "below", "1"]));
    assert!(negative.contains("cannot be negative"), "{negative}");
    ok(db.cache(&["set", "kv", "word", r#""five""#]));
    let word = failed(db.keyvalue(RWC, &["incr", "kv", "word", "1"]));
    assert!(word.starts_with("incr: error other: "), "{word}");
    assert_eq!(ok(db.cache(&["get", "kv", "n"])), "9");
    assert_eq!(ok(db.cache(&["get", "kv", "below"])), "-5");
    assert_eq!(ok(db.cache(&["get", "kv", "word"])), r#""five""#);
}

#[test]
fn buckets_are_opened_and_created_under_the_grants_and_read_only_ones_cannot_write() {
    let db = Db::new();
    ok(db.cache(&["set", "kv", "k", "1"]));

    // Outside the grants: access-denied, whether the cache exists or not, and the host's log
    // names the grant that would allow it, as the easycaching interfaces' message does.
    for name in ["kv", "secret"] {
        let denied = db.keyvalue(&["cache:other=rwc"], &["get", name, "k"]);
        assert_eq!(failed(denied.clone()), "get: error access-denied");
        let log = stderr(&denied);
        assert!(log.contains(&format!("--allow cache:{name}`")), "{log}");
    }
    assert!(!exists(&db.path(), "secret"));
    // A guest refused again and again gets its answer every time, but cannot fill the host's
    // log: ten lines a minute at warning level, then one saying that the rest of the minute's
    // go out at debug level only.
    let denied = db.keyvalue(&["cache:kv=r"], &["set-repeatedly", "kv", "k", "2", "500"]);
    assert_eq!(ok(denied.clone()), "set-repeatedly: ok 500 access-denied");
    let log = stderr(&denied);
    assert_eq!(
        log.matches("wasi:keyvalue access-denied: access denied: this plugin may only read").count(),
        10,
        "{log}"
    );
    assert_eq!(log.matches("the rest of that minute's go out at debug level only").count(), 1, "{log}");
    assert_eq!(log.matches("wasi:keyvalue access-denied").count(), 11, "{log}");
    assert_eq!(
        db.manager().open_cache("kv").unwrap().get("k").unwrap().map(|v| v.as_str().to_owned()),
        Some("1".into())
    );

    // Missing: created with the create grant, no-such-store without, as is a name no cache has.
    assert_eq!(failed(db.keyvalue(&["cache:lazy=rw"], &["open", "lazy"])), "open: error no-such-store");
    assert!(!exists(&db.path(), "lazy"));
    assert_eq!(ok(db.keyvalue(&["cache:lazy=rwc"], &["open", "lazy"])), "open: ok");
    assert!(exists(&db.path(), "lazy"));
    assert_eq!(ok(db.keyvalue(&["cache:team.*=rc"], &["open", "team.a"])), "open: ok");
    // The empty identifier, wasmtime's one store, is the cache `default`, under its grant.
    assert_eq!(failed(db.keyvalue(&["cache:kv=rwc"], &["set", "", "k", "7"])), "set: error access-denied");
    assert!(!exists(&db.path(), "default"));
    assert_eq!(ok(db.keyvalue(&["cache:default=rwc"], &["set", "", "k", "7"])), "set: ok");
    assert_eq!(ok(db.cache(&["get", "default", "k"])), "7");
    assert_eq!(failed(db.keyvalue(&["cache:*=rwc"], &["open", "no spaces"])), "open: error no-such-store");

    // Read-only: every read works, every write is access-denied and changes nothing.
    let read_only = &["cache:kv=r"];
    assert_eq!(ok(db.keyvalue(read_only, &["get", "kv", "k"])), "get: ok 1");
    assert_eq!(ok(db.keyvalue(read_only, &["exists", "kv", "k"])), "exists: ok true");
    assert_eq!(ok(db.keyvalue(read_only, &["list", "kv"])), "list: ok 1 keys in 1 pages");
    assert_eq!(ok(db.keyvalue(read_only, &["get-many", "kv", "k"])), "get-many: ok k=1");
    for write in [
        &["set", "kv", "k", "2"][..],
        &["delete", "kv", "k"],
        &["incr", "kv", "k", "1"],
        &["set-many", "kv", "k=2", "j=3"],
        &["delete-many", "kv", "k"],
    ] {
        let denied = db.keyvalue(read_only, write);
        assert_eq!(failed(denied.clone()), format!("{}: error access-denied", write[0]));
        assert!(stderr(&denied).contains("may only read cache \"kv\""), "{}", stderr(&denied));
    }
    // A read-and-create grant creates, and cannot write either.
    assert_eq!(
        failed(db.keyvalue(&["cache:team.*=rc"], &["set", "team.a", "k", "1"])),
        "set: error access-denied"
    );
    assert_eq!(ok(db.cache(&["keys", "kv"])), "k");
    assert_eq!(ok(db.cache(&["get", "kv", "k"])), "1");
}

#[test]
fn batches_store_read_and_delete_many_keys_and_a_bad_value_stores_none() {
    let db = Db::new();
    assert_eq!(ok(db.keyvalue(RWC, &["set-many", "kv", "a=1", "b=[true]", "c=\"x\""])), "set-many: ok");
    assert_eq!(ok(db.cache(&["get", "kv", "b"])), "[true]");
    assert_eq!(
        ok(db.keyvalue(RWC, &["get-many", "kv", "a", "nope", "c", "a"])),
        r#"get-many: ok a=1 nope=none c="x" a=1"#
    );

    // Every value is checked before any is stored.
    let refused = failed(db.keyvalue(RWC, &["set-many", "kv", "a=2", "d=4", "e=oops", "f=6"]));
    assert!(refused.contains("the value for key \"e\" is not a JSON document"), "{refused}");
    assert_eq!(ok(db.cache(&["get", "kv", "a"])), "1");
    assert_eq!(ok(db.cache(&["keys", "kv"])), "a\nb\nc");

    assert_eq!(ok(db.keyvalue(RWC, &["delete-many", "kv", "a", "c", "never"])), "delete-many: ok");
    assert_eq!(ok(db.cache(&["keys", "kv"])), "b");
}

#[test]
fn the_grant_s_quota_and_the_store_s_limits_hold_for_wasi_keyvalue() {
    let db = Db::new();
    let grant = &["cache:kv=rwc,entries=2"];
    assert_eq!(ok(db.keyvalue(grant, &["set-many", "kv", "a=1", "b=2"])), "set-many: ok");
    let over = failed(db.keyvalue(grant, &["set", "kv", "c", "3"]));
    assert!(over.starts_with("set: error other: quota exceeded"), "{over}");
    let over = failed(db.keyvalue(grant, &["incr", "kv", "c", "1"]));
    assert!(over.starts_with("incr: error other: quota exceeded"), "{over}");
    // A write that does not grow the cache passes.
    assert_eq!(ok(db.keyvalue(grant, &["set", "kv", "a", "10"])), "set: ok");
    assert_eq!(ok(db.cache(&["keys", "kv"])), "a\nb");

    // The store's limits too, with its message.
    let long_key = "k".repeat(5000);
    for args in [&["set", "kv", &long_key, "1"][..], &["get", "kv", &long_key]] {
        let over = failed(db.keyvalue(RWC, args));
        assert!(over.contains("error other: key is 5000 bytes, over the limit of 4096"), "{over}");
    }
}

/// Every line a run printed, when it exited with `status`.
fn lines_of(output: Output, status: i32) -> Vec<String> {
    assert_eq!(output.status.code(), Some(status), "{}\n{}", stdout(&output), stderr(&output));
    stdout(&output).lines().map(str::to_owned).collect()
}

#[test]
fn draft2_sets_gets_counts_down_and_shares_the_caches_with_the_first_draft() {
    let db = Db::new();
    let printed = lines_of(db.draft2(RWC, &["basics", "kv"]), 1);
    assert_eq!(
        printed[..5],
        ["set: ok ", r#"get: ok {"n": 1}"#, "incr down: ok -5", "incr up: ok 2", "delete: ok exists false"]
    );
    assert!(
        printed[5].starts_with("not json: error other: ")
            && printed[5].contains(r#"the value for key "bad" is not a JSON document"#),
        "{printed:?}"
    );
    assert_eq!(printed.len(), 6, "{printed:?}");
    assert_eq!(ok(db.cache(&["get", "kv", "n"])), "2");
    assert!(!db.cache(&["get", "kv", "bad"]).status.success(), "a value that is not JSON was stored");
    // What one draft stores, the other reads.
    assert_eq!(ok(db.keyvalue(RWC, &["incr", "kv", "n", "3"])), "incr: ok 5");
}

#[test]
fn draft2_compare_and_swap_swaps_what_it_read_and_hands_back_what_it_found() {
    let db = Db::new();
    let printed = lines_of(db.draft2(RWC, &["cas", "kv"]), 1);
    let expected = [
        "set: ok ",
        "swap: ok swapped",
        "get: ok 2",
        "set meanwhile: ok ",
        "stale swap: ok cas-failed, current 3; retried: swapped",
        "get: ok 4",
        "absent: ok current none",
        "swap absent: ok swapped",
    ];
    assert_eq!(printed[..expected.len()], expected, "{printed:?}");
    assert!(printed[8].starts_with("swap not json: error other: "), "{printed:?}");
    assert_eq!(printed[9..], ["get: ok 4"], "a swap of a value that is not JSON changed the key");
    assert_eq!(ok(db.cache(&["get", "kv", "fresh"])), r#""x""#);

    // A read-only grant reads, and neither makes a `cas` nor counts.
    let printed = lines_of(db.draft2(&["cache:kv=r"], &["denied", "kv"]), 1);
    assert_eq!(printed, ["get: ok 4", "cas: error access-denied", "incr: error access-denied"]);
}

#[test]
fn draft2_list_keys_pages_with_the_last_key_as_its_cursor() {
    let db = Db::new();
    let printed = lines_of(db.draft2(RWC, &["list", "kv", "2500"]), 0);
    assert_eq!(printed, ["list: ok 2500 keys in 3 pages, in order true"]);
    assert_eq!(db.manager().open_cache("kv").unwrap().len().unwrap(), 2500);
}
