//! Guests in other languages: the Python (componentize-py) and JavaScript (componentize-qjs)
//! walkthroughs print exactly what the Rust one prints and leave the same data, the three
//! share one database, errors reach each language as its own exceptions with the WIT case, and
//! `async for` over a cache gives each entry as the original easycaching did.

use easycaching_harness::{Error, Harness, MIN_HANDLES, PluginLimits, Run};
use easycaching_tests::{guest, lines};
use serde_json::json;

const WALKTHROUGH_GRANTS: [&str; 3] = ["cache:test=rwc", "cache:walkthrough=rwc", "queue:jobs=rwc"];
const ERRORS_GRANTS: [&str; 4] =
    ["cache:input=rwc", "cache:readonly=r", "cache:missing=r", "queue:input-queue=rwc"];

/// A harness with `grants`.
fn harness(grants: &[&str]) -> Harness {
    grants.iter().fold(Harness::new().unwrap(), |harness, grant| harness.allow(grant))
}

/// Runs the guest component `name` on `harness`.
fn run(harness: &Harness, name: &str) -> Run {
    harness.run(guest(name)).unwrap()
}

/// The plugin's standard output, failing the test with its output when the run did not succeed.
fn succeeded(run: &Run) -> String {
    if let Err(error) = &run.result {
        panic!(
            "the plugin failed: {error}\n--- stdout\n{}\n--- stderr\n{}",
            run.stdout_text(),
            run.stderr_text()
        );
    }
    run.stdout_text()
}

/// What the Rust walkthrough prints on a fresh database: what every language must print.
fn rust_walkthrough_output() -> String {
    succeeded(&run(&harness(&WALKTHROUGH_GRANTS), "walkthrough"))
}

/// Runs the walkthrough component `name` on a fresh database and checks it line by line against
/// the Rust walkthrough, then what it left behind.
fn prints_what_the_rust_walkthrough_prints_and_leaves_its_data(name: &str) {
    let expected = rust_walkthrough_output();
    let harness = harness(&WALKTHROUGH_GRANTS);
    let stdout = succeeded(&run(&harness, name));
    assert_eq!(lines(&stdout), lines(&expected), "{name} does not print what the Rust walkthrough prints");

    assert_eq!(harness.cache("walkthrough").unwrap().get_value::<u64>("runs").unwrap(), Some(1));
    let test = harness.cache("test").unwrap();
    assert_eq!(test.len().unwrap(), 3);
    assert_eq!(test.get_value::<serde_json::Value>("a").unwrap(), Some(json!(1)));
    assert_eq!(test.get_value::<serde_json::Value>("b").unwrap(), Some(json!([1, 2])));
    assert_eq!(test.get_value::<serde_json::Value>("c").unwrap(), Some(json!({"nested": true})));
    assert_eq!(harness.queue("jobs").unwrap().len().unwrap(), 0, "the walkthrough takes back what it queued");
}

#[test]
fn the_python_walkthrough_prints_what_the_rust_one_prints_and_leaves_its_data() {
    prints_what_the_rust_walkthrough_prints_and_leaves_its_data("python-walkthrough");
}

#[test]
fn the_javascript_walkthrough_prints_what_the_rust_one_prints_and_leaves_its_data() {
    prints_what_the_rust_walkthrough_prints_and_leaves_its_data("js-walkthrough");
}

#[test]
fn every_language_runs_within_the_fewest_handles_allowed_and_one_fewer_is_refused_before_it_starts() {
    let expected = rust_walkthrough_output();
    let fewest = PluginLimits { max_handles: MIN_HANDLES, ..PluginLimits::default() };
    let too_few = PluginLimits { max_handles: MIN_HANDLES - 1, ..PluginLimits::default() };
    for name in ["walkthrough", "python-walkthrough", "js-walkthrough"] {
        let stdout = succeeded(&run(&harness(&WALKTHROUGH_GRANTS).limits(fewest), name));
        assert_eq!(lines(&stdout), lines(&expected), "{name} with {MIN_HANDLES} handles");

        let refused = run(&harness(&WALKTHROUGH_GRANTS).limits(too_few), name);
        match &refused.result {
            Err(Error::Misconfigured(message)) => {
                assert!(message.contains(&format!("at least {MIN_HANDLES}")), "{name}: {message}")
            }
            other => panic!("{name} with {} handles: {other:?}\n{}", MIN_HANDLES - 1, refused.stderr_text()),
        }
        assert_eq!(refused.stdout_text(), "", "{name} must not start with too few handles");
    }
}

#[test]
fn rust_python_and_javascript_plugins_share_one_database() {
    let harness = harness(&WALKTHROUGH_GRANTS);
    for (count, name) in (1..).zip(["walkthrough", "python-walkthrough", "js-walkthrough"]) {
        let stdout = succeeded(&run(&harness, name));
        assert!(stdout.contains(&format!("has now seen {count} walkthrough run(s)")), "{name}:\n{stdout}");
        if count > 1 {
            // Each finds the entries the previous plugin, in another language, wrote.
            assert!(
                stdout.contains("test.clear()                             -> removed 3"),
                "{name}:\n{stdout}"
            );
        }
    }
    assert_eq!(harness.cache("walkthrough").unwrap().get_value::<u64>("runs").unwrap(), Some(3));
}

/// Seeds what the error programs read, runs `name`, and checks that none of the failed writes
/// stored anything.
fn run_errors_program(name: &str) -> String {
    let harness = harness(&ERRORS_GRANTS);
    harness.seed_cache("readonly", [("k", json!("v"))]).unwrap();
    harness.seed_cache("secret", [("password", json!("hunter2"))]).unwrap();
    let stdout = succeeded(&run(&harness, name));

    let input = harness.cache("input").unwrap();
    // What the two increments that succeeded stored, and nothing else: the refused ones
    // changed neither value.
    assert_eq!(input.get_value::<i64>("n").unwrap(), Some(42));
    assert_eq!(input.get_value::<String>("s").unwrap().as_deref(), Some("x"));
    assert_eq!(input.len().unwrap(), 2, "a failed write stored something");
    assert_eq!(input.get("good").unwrap(), None, "half a batch was stored");
    assert_eq!(harness.queue("input-queue").unwrap().len().unwrap(), 0);
    assert_eq!(harness.cache("readonly").unwrap().get_value::<String>("k").unwrap().as_deref(), Some("v"));
    let caches: Vec<_> = harness.manager().list_caches().unwrap().into_iter().map(|c| c.name).collect();
    assert_eq!(caches, ["input", "readonly", "secret"], "a refused create made a cache");
    stdout
}

#[test]
fn python_gets_each_wit_error_as_its_exception_and_nothing_is_stored() {
    let stdout = run_errors_program("python-errors");
    assert_eq!(
        lines(&stdout),
        [
            "set NaN: InvalidJson invalid-json",
            "the refusal names NaN: ok True",
            "set_many with one NaN: InvalidJson invalid-json",
            "put NaN: InvalidJson invalid-json",
            "set huge key: TooLarge too-large",
            "set_json of text that is not JSON: InvalidJson invalid-json",
            "set_json nested 128 deep: InvalidJson invalid-json",
            "set an int key: TypeError",
            "get a lone surrogate key: UnicodeEncodeError",
            "store a lone surrogate value: UnicodeEncodeError",
            "get_many(-1): ValueError",
            "delete_many of a str: TypeError",
            "get_many of a str: TypeError",
            "put_many of a str: TypeError",
            "the batch's keys are still there: ok 3",
            "entries_page of 1: ok 0",
            "use a closed cache: ValueError",
            "get missing key: KeyError 'missing'",
            "get missing key with default: ok 'default'",
            "set, contains and delete as methods: ok [None, True, True]",
            "contains an int key: TypeError",
            "open ungranted cache: AccessDenied access-denied",
            "open missing cache: NoSuchCache no-such-cache",
            "caches[missing]: KeyError 'missing'",
            "caches[ungranted]: AccessDenied access-denied",
            "caches[readonly][k]: ok 'v'",
            "caches listed: ok ['input', 'readonly']",
            "create bad name: InvalidName invalid-name",
            "read read-only: ok 'v'",
            "write read-only: AccessDenied access-denied",
            "delete from read-only: AccessDenied access-denied",
            "delete with a prefix from read-only: AccessDenied access-denied",
            "delete with a prefix: ok (2, ['user:10:name'])",
            "delete with a bytes prefix: TypeError",
            "the rest deleted: ok 1",
            "cache len: ok 0",
            "queue len: ok 0",
            "increment twice: ok (1, 42)",
            "increment a string: InvalidJson invalid-json",
            "the string is left as it was: ok 'x'",
            "increment by a float: TypeError",
            "increment by 2**63: ValueError",
            "increment read-only: AccessDenied access-denied",
            "swap in where absent, twice: ok (True, False)",
            "swap expecting it as Python writes it: ok True",
            "swap on a mismatch: ok (False, {'a': 2})",
            "swap in JSON null: ok (True, None, True)",
            "swap away: ok (True, False)",
            "swap bad JSON: InvalidJson invalid-json",
            "the refusal names expected: ok True",
            "swap NaN: InvalidJson invalid-json",
            "the bad swaps stored nothing: ok False",
            "update twice: ok (1, 2)",
            "update to ABSENT: ok (easycaching.ABSENT, False)",
            "swap read-only: AccessDenied access-denied",
            "update read-only: AccessDenied access-denied",
            "set with a ttl of an hour: ok (None, True)",
            "set with a timedelta ttl: ok (None, True)",
            "increment keeps the ttl: ok (3, True)",
            "set without a ttl clears it: ok (None, None)",
            "expire, then remove the ttl: ok (True, True, True, None)",
            "expire an absent key: ok False",
            "set with a ttl of 0: InvalidArgument invalid-argument",
            "set with a negative ttl: InvalidArgument invalid-argument",
            "set with a ttl of 200 years: InvalidArgument invalid-argument",
            "set with a str ttl: TypeError",
            "a short ttl expires: ok True",
            "the bad ttls stored nothing: ok (False, True)",
            "set with a ttl read-only: AccessDenied access-denied",
            "set_many with a ttl: ok (None, [True, True])",
            "set_many with a ttl of 0: InvalidArgument invalid-argument",
            "the bad batch stored nothing: ok (False, 2)",
            "leases: ok ['a', 1, 'b', 2, True, 'a', 2, True, True, False, False, 'b', None]",
            "waits: ok ['c', 'd', ['e', 'f'], ['g', 'h'], None, 'none', None, [], []]",
            "get with a negative timeout: InvalidArgument invalid-argument",
            "get_many with a negative timeout: InvalidArgument invalid-argument",
            "lease with a str timeout: TypeError",
            "lease for 0 s: InvalidArgument invalid-argument",
            "lease for a str: TypeError",
            "ack of text that is not a receipt: InvalidArgument invalid-argument",
            "ack of a number: TypeError",
            "extend by 0 s: InvalidArgument invalid-argument",
        ]
    );
}

#[test]
fn javascript_gets_each_wit_error_as_a_thrown_error_and_nothing_is_stored() {
    let stdout = run_errors_program("js-errors");
    assert_eq!(
        lines(&stdout),
        [
            "set huge key: CacheError too-large",
            "setMany with one huge key: CacheError too-large",
            "set undefined: TypeError",
            "setJson of text that is not JSON: CacheError invalid-json",
            "setJson and getJson: ok \"{\\\"a\\\": [1]}true\"",
            "set a lone surrogate value: CacheError invalid-json",
            "put a BigInt: TypeError",
            "set a number key: TypeError",
            "get an undefined key: TypeError",
            "set a lone surrogate key: TypeError",
            "getMany(-1): RangeError",
            "deleteMany of a string: TypeError",
            "getMany of a string: TypeError",
            "putMany of a string: TypeError",
            "setMany of null: TypeError",
            "deleteMany of a number: TypeError",
            "getMany of a plain object: TypeError",
            "setMany of a number: TypeError",
            "the batch's keys are still there: ok 3",
            "entriesPage of 1: ok 0",
            "the last page has no next: ok true",
            r#"entries with a prefix: ok [["user:1:lang","en"],["user:1:name","Ada"]]"#,
            r#"keys with a prefix: ok ["user:10:name","user:1:lang","user:1:name","user:2:name"]"#,
            r#"a page with a prefix: ok [["user:10:name"],"user:10:name"]"#,
            "keys with a number for a prefix: TypeError",
            r#"delete with a prefix: ok [2,["user:10:name","user:2:name"]]"#,
            "delete with a number for a prefix: TypeError",
            "the prefixed entries removed: ok 2",
            "use a closed cache: TypeError",
            "open and close 10,001 times: ok \"no handle left open\"",
            "get missing key: ok \"undefined\"",
            "open ungranted cache: CacheError access-denied",
            "open missing cache: CacheError no-such-cache",
            "create bad name: CacheError invalid-name",
            "read read-only: ok \"v\"",
            "write read-only: CacheError access-denied",
            "delete from read-only: CacheError access-denied",
            "delete with a prefix from read-only: CacheError access-denied",
            "cache size: ok 0",
            "queue size: ok 0",
            "increment twice: ok [1,42]",
            "increment a string: CacheError invalid-json",
            "the string is left as it was: ok \"x\"",
            "increment by 1.5: RangeError",
            "increment by 2n ** 63n: RangeError",
            "increment read-only: CacheError access-denied",
            "swap in where absent, twice: ok [true,false]",
            "swap expecting it written otherwise: ok true",
            "swap on a mismatch: ok [false,{\"a\":2}]",
            "swap in JSON null: ok [true,null,true]",
            "swap away: ok [true,false]",
            "swap bad JSON: CacheError invalid-json",
            "the refusal names expected: ok true",
            "swap a BigInt: TypeError",
            "the bad swaps stored nothing: ok false",
            "update twice: ok [1,2]",
            "update to undefined: ok [\"absent\",false]",
            "swap read-only: CacheError access-denied",
            "update read-only: CacheError access-denied",
            "set with a ttl of an hour: ok true",
            "increment keeps the ttl: ok [2,true]",
            "set without a ttl clears it: ok \"none\"",
            "expire, then remove the ttl: ok [true,true,true,\"none\"]",
            "expire an absent key: ok false",
            "set with a ttl of 0: CacheError invalid-argument",
            "set with a negative ttl: CacheError invalid-argument",
            "set with a ttl of 200 years: CacheError invalid-argument",
            "set with a string ttl: TypeError",
            "a short ttl expires: ok true",
            "the bad ttls stored nothing: ok [false,true]",
            "set with a ttl read-only: CacheError access-denied",
            "setMany with a ttl: ok [true,true]",
            "setMany with a ttl of 0: CacheError invalid-argument",
            "the bad batch stored nothing: ok [false,2]",
            r#"leases: ok ["a",1,"b",2,true,"a",2,true,true,false,false,"b","none"]"#,
            r#"waits: ok ["c","d",["e","f"],["g","h"],"none","none","none",[],[]]"#,
            "get with a negative timeout: CacheError invalid-argument",
            "getMany with a negative timeout: CacheError invalid-argument",
            "lease with a string timeout: TypeError",
            "lease for 0 ms: CacheError invalid-argument",
            "lease for a string: TypeError",
            "ack of text that is not a receipt: CacheError invalid-argument",
            "ack of a number: TypeError",
            "extend by 0 ms: CacheError invalid-argument",
        ]
    );
}

/// Runs the walkthrough component `name` with no grants: it must exit with status 1 and say
/// which WIT error stopped it, having stored nothing.
fn an_uncaught_error_ends_the_plugin_with_status_1(name: &str, says: &str) {
    let harness = Harness::new().unwrap();
    let run = run(&harness, name);
    let (stdout, stderr) = (run.stdout_text(), run.stderr_text());
    let error = run.result.expect_err("the walkthrough must fail without grants");
    assert!(matches!(error, easycaching_harness::Error::Exited { code: 1 }), "{name}: {error}\n{stderr}");
    assert!(stderr.contains(says), "{name}:\n{stderr}");
    assert_eq!(stdout, "== the easycaching walkthrough ==\n", "it went on after the error");
    assert!(harness.manager().list_caches().unwrap().is_empty());
}

#[test]
fn an_uncaught_error_ends_a_python_plugin_with_status_1_and_names_the_wit_case() {
    an_uncaught_error_ends_the_plugin_with_status_1("python-walkthrough", "error (access-denied): ");
}

#[test]
fn an_uncaught_error_ends_a_javascript_plugin_with_status_1_and_names_the_wit_case() {
    an_uncaught_error_ends_the_plugin_with_status_1("js-walkthrough", "error (access-denied): ");
}

/// More entries than the Python SDK fetches in one page (256).
const ITERATION_ENTRIES: usize = 600;

#[test]
fn python_async_for_gives_every_entry_as_a_one_entry_dict_across_pages_and_lists_a_prefix() {
    let harness = harness(&["cache:pages=r"]);
    let entries: Vec<_> = (0..ITERATION_ENTRIES).map(|n| (format!("k{n:04}"), json!({"n": n}))).collect();
    harness.seed_cache("pages", entries.clone()).unwrap();
    let stdout = succeeded(&run(&harness, "python-iteration"));

    // The program prints each item as compact JSON, as serde_json writes it.
    let mut expected: Vec<String> =
        entries.iter().map(|(key, value)| json!({ key.as_str(): value }).to_string()).collect();
    expected.extend(
        [
            r#"first again: {"k0000":{"n":0}}"#,
            "sleep(0): ok",
            "a real wait: RuntimeError True",
            &format!("run_async returned {ITERATION_ENTRIES}"),
            "prefix k0: 600, k0000 to k0599",
            &format!(
                "prefix k059: [{}]",
                (590..600).map(|n| format!("'k{n:04}'")).collect::<Vec<_>>().join(", ")
            ),
            "a page of k05: 30, next k0529",
            "prefix x: []",
            "run_async of a function: TypeError",
        ]
        .map(String::from),
    );
    assert_eq!(lines(&stdout), expected);
}

/// Nothing after an `await` runs in a JavaScript plugin: QuickJS runs no promise job once `run`
/// returns. A `main` written with async/await used to end with status 0 having silently done
/// only what came before its first `await`; `command` now refuses it.
#[test]
fn javascript_command_refuses_an_async_main_rather_than_silently_stopping_at_its_first_await() {
    let harness = harness(&["cache:async=rwc"]);
    let run = run(&harness, "js-async-main");
    let (stdout, stderr) = (run.stdout_text(), run.stderr_text());
    assert_eq!(
        lines(&stdout),
        [
            "command of an async function: TypeError",
            "command of an async generator function: TypeError",
            "command of a generator function: TypeError",
            "command of a string: TypeError",
            "command of a function: accepted"
        ]
    );
    let error = run.result.expect_err("a main that returns a promise must fail the plugin");
    assert!(matches!(error, Error::Exited { code: 1 }), "{error}\n{stderr}");
    assert!(stderr.contains("main returned a promise"), "{stderr}");
    let cache = harness.cache("async").unwrap();
    assert_eq!(cache.get_value::<bool>("before").unwrap(), Some(true));
    assert_eq!(cache.get_value::<bool>("after").unwrap(), None, "what came after the await ran");
}

/// `guest/python/build.py` says in one line what a new user got wrong, before componentize-py
/// (whose answer to a missing module or a syntax error is a long backtrace) starts: a folder
/// without `app.py`, an `app.py` that does not compile. Nothing is built either time.
#[test]
fn the_python_build_script_names_a_missing_or_broken_app_in_one_line() {
    let build = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest/python/build.py");
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    std::fs::write(broken.join("app.py"), "def run(self:\n    pass\n").unwrap();
    let out = dir.path().join("out.wasm");
    let build = |plugin: &std::path::Path| {
        let done = std::process::Command::new("python3").arg(&build).arg(plugin).arg(&out).output().unwrap();
        assert_eq!(done.status.code(), Some(1), "{done:?}");
        let said = String::from_utf8(done.stderr).unwrap();
        assert_eq!(said.lines().count(), 1, "one line: {said}");
        said
    };
    let missing = build(&dir.path().join("myplugin"));
    assert!(missing.contains("no plugin at") && missing.contains("myplugin/app.py"), "{missing}");
    let syntax = build(&broken);
    assert!(syntax.contains("app.py, line 1") && syntax.contains("syntax error"), "{syntax}");
    assert!(!out.exists(), "nothing built");
    assert!(!broken.join("__pycache__").exists(), "nothing written beside the plugin");
}

/// `guest/js/build.mjs` hands on what the engine says is wrong with a plugin (here an import
/// that names no file), without Node's dump of an uncaught error around it, and builds nothing.
#[test]
fn the_javascript_build_script_says_what_the_engine_found_wrong_without_a_node_stack() {
    let build = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest/js/build.mjs");
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("plugin.js");
    std::fs::write(&plugin, "import { missing } from './nowhere.js';\nexport const run = missing;\n")
        .unwrap();
    let out = dir.path().join("out.wasm");
    let done = std::process::Command::new("node").arg(&build).arg(&plugin).arg(&out).output().unwrap();
    assert_eq!(done.status.code(), Some(1), "{done:?}");
    let said = String::from_utf8(done.stderr).unwrap();
    assert!(said.starts_with("build.mjs: cannot build ") && said.contains("plugin.js:\n"), "{said}");
    assert!(said.contains("./nowhere.js"), "the engine's message names the import: {said}");
    assert!(!said.contains("node:internal") && !said.contains("    at "), "no Node stack: {said}");
    assert!(!out.exists(), "nothing built");
}
