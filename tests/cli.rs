//! The `easycaching` command, as a user types it.

use std::io::Read;
use std::path::Path;
use std::process::{Child, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use easycaching_tests::{cli, guest, small_disk};

fn easycaching(db: &Path, args: &[&str]) -> Output {
    cli().arg("--db").arg(db).args(args).output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn ok(output: Output) -> String {
    assert!(output.status.success(), "failed: {}\n{}", output.status, stderr(&output));
    stdout(&output)
}

/// `cache swap`: exit status 0 when it swapped, 3 when the key held something else (and it
/// changed nothing), 1 or 2 for an error, which stores nothing either.
#[test]
fn cache_swap_changes_a_key_only_from_the_value_expected_and_says_so_by_its_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("swap.db");
    let swap = |args: &[&str]| easycaching(&db, &[&["cache", "swap", "locks", "report"][..], args].concat());
    assert_eq!(ok(swap(&["--absent", "--value", r#"{"owner": "ada", "n": 1}"#])), "true\n");
    let taken = swap(&["--absent", "--value", r#"{"owner": "bob"}"#]);
    assert_eq!((taken.status.code(), stdout(&taken).as_str()), (Some(3), "false\n"), "{}", stderr(&taken));
    let wrong = swap(&["--expected", r#"{"owner": "bob"}"#, "--delete"]);
    assert_eq!(wrong.status.code(), Some(3), "{}", stderr(&wrong));
    assert_eq!(
        ok(easycaching(&db, &["cache", "get", "locks", "report"])),
        "{\"owner\": \"ada\", \"n\": 1}\n"
    );
    // Expected as a JSON value: other order, spacing and spelling of the number.
    assert_eq!(ok(swap(&["--expected", r#"{"n":1.0,"owner":"ada"}"#, "--value", "2"])), "true\n");
    assert_eq!(ok(easycaching(&db, &["cache", "get", "locks", "report"])), "2\n");
    let bad = swap(&["--expected", "2", "--value", "{nope"]);
    assert_eq!(bad.status.code(), Some(2), "a value that is not JSON: {}", stderr(&bad));
    assert!(stderr(&bad).contains("--value"), "{}", stderr(&bad));
    let neither = swap(&["--value", "3"]);
    assert_eq!(neither.status.code(), Some(2), "--expected or --absent is needed: {}", stderr(&neither));
    let both = swap(&["--absent", "--expected", "2", "--value", "3"]);
    assert_eq!(both.status.code(), Some(2), "{}", stderr(&both));
    assert_eq!(ok(swap(&["--expected", "2", "--delete"])), "true\n");
    let gone = easycaching(&db, &["cache", "get", "locks", "report"]);
    assert_eq!(gone.status.code(), Some(1), "deleted: {}", stderr(&gone));
    assert_eq!(ok(easycaching(&db, &["cache", "len", "locks"])), "0\n");
}

/// `cache set --ttl` and `cache ttl`: a short TTL expires, a long one is printed in ms, a set
/// without --ttl clears it, and a TTL of zero or one that is no duration is refused before
/// anything is stored.
#[test]
fn cache_set_with_a_ttl_expires_and_cache_ttl_says_how_long_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ttl.db");
    let run = |args: &[&str]| easycaching(&db, args);
    ok(run(&["cache", "set", "sessions", "ada", r#"{"user": 1}"#, "--ttl", "1h"]));
    let left = ok(run(&["cache", "ttl", "sessions", "ada"]));
    let ms: u64 = left.trim().strip_suffix("ms").and_then(|n| n.parse().ok()).expect(&left);
    assert!(ms > 0 && ms <= 3_600_000, "{left}");
    ok(run(&["cache", "set", "sessions", "ada", r#"{"user": 1}"#]));
    assert_eq!(ok(run(&["cache", "ttl", "sessions", "ada"])), "none\n", "a set without --ttl clears it");
    let absent = run(&["cache", "ttl", "sessions", "nobody"]);
    assert_eq!(absent.status.code(), Some(1), "{}", stderr(&absent));
    assert!(stderr(&absent).contains("no value under \"nobody\""), "{}", stderr(&absent));
    ok(run(&["cache", "set", "sessions", "bob", "2", "--ttl", "50ms"]));
    let deadline = Instant::now() + Duration::from_secs(10);
    while run(&["cache", "get", "sessions", "bob"]).status.code() != Some(1) {
        assert!(Instant::now() < deadline, "a 50ms TTL did not expire within 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(run(&["cache", "ttl", "sessions", "bob"]).status.code(), Some(1), "expired is absent");
    assert_eq!(ok(run(&["cache", "len", "sessions"])), "1\n");
    for bad in ["0", "0s", "soon", "-5s"] {
        let refused = run(&["cache", "set", "sessions", "carol", "3", &format!("--ttl={bad}")]);
        assert_eq!(refused.status.code(), Some(2), "--ttl {bad}: {}", stderr(&refused));
        assert!(stderr(&refused).contains("--ttl"), "{}", stderr(&refused));
    }
    assert_eq!(run(&["cache", "get", "sessions", "carol"]).status.code(), Some(1), "nothing stored");
}

#[test]
fn caches_can_be_looked_into_and_changed_from_the_shell() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shell.db");
    ok(easycaching(&db, &["cache", "set", "test", "foo", r#""bar""#]));
    ok(easycaching(&db, &["cache", "set", "test", "n", r#"{"a": [1, 2]}"#]));
    assert_eq!(ok(easycaching(&db, &["cache", "get", "test", "foo"])), "\"bar\"\n");
    assert_eq!(ok(easycaching(&db, &["cache", "keys", "test"])), "foo\nn\n");
    assert_eq!(ok(easycaching(&db, &["cache", "keys", "test", "--limit", "1"])), "foo\n");
    assert_eq!(ok(easycaching(&db, &["cache", "keys", "test", "--after", "foo"])), "n\n");
    assert_eq!(
        ok(easycaching(&db, &["cache", "dump", "test"])),
        "{\"foo\": \"bar\"}\n{\"n\": {\"a\": [1, 2]}}\n"
    );
    ok(easycaching(&db, &["cache", "set", "test", "fob", "1"]));
    assert_eq!(ok(easycaching(&db, &["cache", "keys", "test", "--prefix", "fo"])), "fob\nfoo\n");
    assert_eq!(ok(easycaching(&db, &["cache", "keys", "test", "--prefix", "fo", "--after", "fob"])), "foo\n");
    assert_eq!(ok(easycaching(&db, &["cache", "keys", "test", "--prefix", "x"])), "");
    assert_eq!(ok(easycaching(&db, &["cache", "dump", "test", "--prefix", "foo"])), "{\"foo\": \"bar\"}\n");
    assert_eq!(ok(easycaching(&db, &["cache", "clear", "test", "--prefix", "fo"])), "2\n");
    assert_eq!(ok(easycaching(&db, &["cache", "keys", "test"])), "n\n");
    ok(easycaching(&db, &["cache", "set", "test", "foo", r#""bar""#]));
    assert_eq!(ok(easycaching(&db, &["cache", "len", "test"])), "2\n");
    assert_eq!(ok(easycaching(&db, &["cache", "incr", "counts", "hits"])), "1\n");
    assert_eq!(ok(easycaching(&db, &["cache", "incr", "counts", "hits", "-3"])), "-2\n");
    let not_a_number = easycaching(&db, &["cache", "incr", "test", "foo"]);
    assert!(stderr(&not_a_number).contains("increment needs an integer"), "{}", stderr(&not_a_number));
    assert_eq!(ok(easycaching(&db, &["cache", "get", "test", "foo"])), "\"bar\"\n");
    ok(easycaching(&db, &["cache", "drop", "counts"]));

    let listing = ok(easycaching(&db, &["ls"]));
    assert!(
        listing
            .lines()
            .any(|line| line.split_whitespace().collect::<Vec<_>>() == ["cache", "test", "2", "22"]),
        "{listing}"
    );

    assert_eq!(ok(easycaching(&db, &["cache", "del", "test", "foo", "nope"])), "1\n");
    let missing = easycaching(&db, &["cache", "get", "test", "foo"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("no value under \"foo\""), "{}", stderr(&missing));
    assert_eq!(ok(easycaching(&db, &["cache", "clear", "test"])), "1\n");
    ok(easycaching(&db, &["cache", "drop", "test"]));
    assert!(!easycaching(&db, &["cache", "drop", "test"]).status.success());
}

#[test]
fn queues_can_be_used_from_the_shell() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shell.db");
    ok(easycaching(&db, &["queue", "put", "jobs", "1"]));
    ok(easycaching(&db, &["queue", "put", "jobs", r#"{"second": true}"#]));
    assert_eq!(ok(easycaching(&db, &["queue", "len", "jobs"])), "2\n");
    assert_eq!(ok(easycaching(&db, &["queue", "peek", "jobs"])), "1\n");
    assert_eq!(ok(easycaching(&db, &["queue", "get", "jobs"])), "1\n");
    assert_eq!(ok(easycaching(&db, &["queue", "get", "jobs"])), "{\"second\": true}\n");
    let empty = easycaching(&db, &["queue", "get", "jobs"]);
    assert_eq!(empty.status.code(), Some(1));
    assert!(stderr(&empty).contains("is empty"));
}

#[test]
fn queue_lease_hands_out_an_item_that_ack_removes_and_release_hands_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shell.db");
    ok(easycaching(&db, &["queue", "put", "jobs", r#""first""#]));
    ok(easycaching(&db, &["queue", "put", "jobs", r#"{"n": 2}"#]));
    let leased = |lease: &str| {
        let printed = ok(easycaching(&db, &["queue", "lease", "jobs", "--for", lease]));
        let (receipt, item) = printed.trim_end().split_once(' ').expect("a receipt, a space and the item");
        (receipt.to_owned(), item.to_owned())
    };
    let (first, item) = leased("10m");
    assert_eq!(item, r#""first""#);
    assert_eq!(ok(easycaching(&db, &["queue", "peek", "jobs"])), "{\"n\": 2}\n", "hidden while leased");
    assert_eq!(ok(easycaching(&db, &["queue", "len", "jobs"])), "2\n", "and still held");
    let (second, item) = leased("10m");
    assert_eq!(item, r#"{"n": 2}"#);
    let nothing = easycaching(&db, &["queue", "get", "jobs"]);
    assert_eq!(nothing.status.code(), Some(1));
    assert!(stderr(&nothing).contains("has no item waiting (2 under a lease)"), "{}", stderr(&nothing));

    ok(easycaching(&db, &["queue", "extend", "jobs", &second, "--for", "1h"]));
    ok(easycaching(&db, &["queue", "ack", "jobs", &second]));
    assert_eq!(easycaching(&db, &["queue", "extend", "jobs", &second, "--for", "1h"]).status.code(), Some(3));
    let again = easycaching(&db, &["queue", "ack", "jobs", &second]);
    assert_eq!(again.status.code(), Some(3), "acknowledged once");
    assert!(stderr(&again).contains("is under the lease"), "{}", stderr(&again));
    ok(easycaching(&db, &["queue", "release", "jobs", &first]));
    assert_eq!(easycaching(&db, &["queue", "release", "jobs", &first]).status.code(), Some(3));
    let (_, item) = leased("1ms");
    assert_eq!(item, r#""first""#, "released, it is handed out again");

    let bad = easycaching(&db, &["queue", "ack", "jobs", "not-a-receipt"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("is not a receipt"), "{}", stderr(&bad));
    let zero = easycaching(&db, &["queue", "lease", "jobs", "--for", "0s"]);
    assert_eq!(zero.status.code(), Some(2));
    assert!(stderr(&zero).contains("a lease is at least 1ms"), "{}", stderr(&zero));
    // The 1 ms lease ended: `get` takes the item, and the queue is empty.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let got = easycaching(&db, &["queue", "get", "jobs"]);
        if got.status.success() {
            assert_eq!(String::from_utf8_lossy(&got.stdout), "\"first\"\n");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the lease never ended");
    }
    let empty = easycaching(&db, &["queue", "lease", "jobs", "--for", "1m"]);
    assert_eq!(empty.status.code(), Some(1));
    assert!(stderr(&empty).contains("is empty"), "{}", stderr(&empty));
}

#[test]
fn queue_dump_prints_every_item_oldest_first_and_takes_none() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shell.db");
    ok(easycaching(&db, &["queue", "create", "jobs"]));
    assert_eq!(ok(easycaching(&db, &["queue", "dump", "jobs"])), "", "an empty queue prints nothing");
    for item in ["0", r#""taken""#, r#"{"n": [1, 2]}"#, r#""line\nbreak""#] {
        ok(easycaching(&db, &["queue", "put", "jobs", item]));
    }
    ok(easycaching(&db, &["queue", "get", "jobs"]));
    let dumped = ok(easycaching(&db, &["queue", "dump", "jobs"]));
    assert_eq!(dumped, "\"taken\"\n{\"n\": [1, 2]}\n\"line\\nbreak\"\n");
    assert_eq!(ok(easycaching(&db, &["queue", "len", "jobs"])), "3\n", "nothing was taken");
    assert_eq!(ok(easycaching(&db, &["queue", "dump", "jobs"])), dumped);
    assert_eq!(ok(easycaching(&db, &["queue", "peek", "jobs"])), "\"taken\"\n");

    // A queue that does not exist: as `queue peek` says it, with what to type.
    let peek = easycaching(&db, &["queue", "peek", "nope"]);
    let unknown = easycaching(&db, &["queue", "dump", "nope"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(stderr(&unknown).contains("no queue named \"nope\""), "{}", stderr(&unknown));
    assert!(stderr(&unknown).contains("hint: easycaching queue create nope"), "{}", stderr(&unknown));
    assert_eq!(stderr(&unknown), stderr(&peek));
    assert_eq!(stdout(&unknown), "");
}

/// `queue get --wait` and `queue lease --wait` wait for an item another process puts, and
/// give up (exit status 1) when none comes in time.
#[test]
fn queue_get_and_lease_wait_for_an_item_put_by_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shell.db");
    ok(easycaching(&db, &["queue", "create", "jobs"]));
    for (waiting, put) in [
        (&["queue", "get", "jobs", "--wait", "60s"][..], r#""first""#),
        (&["queue", "lease", "jobs", "--for", "1m", "--wait", "1m"], r#""second""#),
        (&["queue", "get", "jobs", "--max", "10", "--wait", "60s"], r#""third""#),
    ] {
        let child =
            cli().arg("--db").arg(&db).args(waiting).stdout(std::process::Stdio::piped()).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        ok(easycaching(&db, &["queue", "put", "jobs", put]));
        let taken = child.wait_with_output().unwrap();
        let printed = ok(taken);
        assert!(printed.ends_with(&format!("{put}\n")), "{waiting:?}: {printed:?}");
    }
    assert_eq!(ok(easycaching(&db, &["queue", "len", "jobs"])), "1\n", "the leased item is held");
    for nothing_comes in
        [&["queue", "get", "jobs", "--wait", "50ms"][..], &["queue", "get", "jobs", "--max", "5"]]
    {
        let nothing = easycaching(&db, nothing_comes);
        assert_eq!(nothing.status.code(), Some(1), "{nothing_comes:?}: {}", stderr(&nothing));
        assert_eq!(stdout(&nothing), "");
    }
}

/// `queue get --max N` takes up to N items in one write and prints them a line each, oldest
/// first.
#[test]
fn queue_get_takes_several_items_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shell.db");
    for item in ["1", "2", "3"] {
        ok(easycaching(&db, &["queue", "put", "jobs", item]));
    }
    assert_eq!(ok(easycaching(&db, &["queue", "get", "jobs", "--max", "2"])), "1\n2\n");
    assert_eq!(ok(easycaching(&db, &["queue", "get", "jobs", "--max", "1000", "--wait", "10s"])), "3\n");
    for refused in ["0", "1001", "some"] {
        let refused = easycaching(&db, &["queue", "get", "jobs", "--max", refused]);
        assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
        assert!(stderr(&refused).contains("--max"), "{}", stderr(&refused));
    }
}

/// `queue get` removes the item before it prints it: when it cannot be printed (stdout is a
/// full disk, a closed pipe), the item goes back to the front of the queue and the command
/// says so, rather than panicking with the item gone.
#[test]
fn an_item_that_queue_get_cannot_print_goes_back_to_the_front() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shell.db");
    ok(easycaching(&db, &["queue", "put", "jobs", r#""first""#]));
    ok(easycaching(&db, &["queue", "put", "jobs", r#""second""#]));
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let failed = cli().arg("--db").arg(&db).args(["queue", "get", "jobs"]).stdout(full).output().unwrap();
    assert_eq!(failed.status.code(), Some(1), "{}", stderr(&failed));
    assert!(stderr(&failed).contains("put back at the front of queue \"jobs\""), "{}", stderr(&failed));
    assert_eq!(ok(easycaching(&db, &["queue", "len", "jobs"])), "2\n");
    // Several taken at once: every one not printed goes back, in its order.
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let failed = cli()
        .arg("--db")
        .arg(&db)
        .args(["queue", "get", "jobs", "--max", "5"])
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(failed.status.code(), Some(1), "{}", stderr(&failed));
    assert!(stderr(&failed).contains("could not print 2 items"), "{}", stderr(&failed));
    assert_eq!(ok(easycaching(&db, &["queue", "get", "jobs", "--max", "5"])), "\"first\"\n\"second\"\n");
}

/// `queue lease` that cannot print the item it leased hands it back at once, rather than
/// leave it hidden until its lease ends.
#[test]
fn an_item_that_queue_lease_cannot_print_is_handed_back_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shell.db");
    ok(easycaching(&db, &["queue", "put", "jobs", r#""first""#]));
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let lease = ["queue", "lease", "jobs", "--for", "1h"];
    let failed = cli().arg("--db").arg(&db).args(lease).stdout(full).output().unwrap();
    assert_eq!(failed.status.code(), Some(1), "{}", stderr(&failed));
    assert!(stderr(&failed).contains("it was handed back"), "{}", stderr(&failed));
    assert_eq!(ok(easycaching(&db, &["queue", "peek", "jobs"])), "\"first\"\n", "waiting again");
    let jobs = easycaching::CacheManager::open(&db).unwrap().open_queue("jobs").unwrap();
    let again = jobs.lease(std::time::Duration::from_secs(60)).unwrap().expect("the item");
    assert_eq!(again.deliveries, 2);
    assert!(jobs.release(&again.receipt).unwrap());

    // Several leased at once: every one not printed is handed back.
    ok(easycaching(&db, &["queue", "put", "jobs", r#""second""#]));
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let lease = ["queue", "lease", "jobs", "--for", "1h", "--max", "5"];
    let failed = cli().arg("--db").arg(&db).args(lease).stdout(full).output().unwrap();
    assert_eq!(failed.status.code(), Some(1), "{}", stderr(&failed));
    assert!(stderr(&failed).contains("could not print 2 items"), "{}", stderr(&failed));
    assert!(stderr(&failed).contains("they were handed back"), "{}", stderr(&failed));
    // Leased a line each, with a receipt of its own.
    let printed = ok(easycaching(&db, &["queue", "lease", "jobs", "--for", "1h", "--max", "5"]));
    let lines: Vec<(&str, &str)> = printed.lines().map(|line| line.split_once(' ').unwrap()).collect();
    assert_eq!(lines.iter().map(|(_, item)| *item).collect::<Vec<_>>(), [r#""first""#, r#""second""#]);
    assert_ne!(lines[0].0, lines[1].0);
    for (receipt, _) in lines {
        ok(easycaching(&db, &["queue", "ack", "jobs", receipt]));
    }
    assert_eq!(ok(easycaching(&db, &["queue", "len", "jobs"])), "0\n");
}

/// An item larger than the CLI's value limit (1 MiB), put by a process that allows more, goes
/// back when `queue get` cannot print it: it was refused as "over the limit" and lost.
#[test]
fn an_item_over_the_cli_s_value_limit_that_cannot_be_printed_goes_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shell.db");
    let big = easycaching::Json::from_value(&"x".repeat(2 << 20)).unwrap();
    let limits = easycaching::Limits { max_value_bytes: 4 << 20, ..Default::default() };
    let roomy = easycaching::CacheManager::builder(&db).limits(limits).open().unwrap();
    roomy.create_queue("jobs").unwrap().put(big.clone()).unwrap();
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let failed = cli().arg("--db").arg(&db).args(["queue", "get", "jobs"]).stdout(full).output().unwrap();
    assert_eq!(failed.status.code(), Some(1), "{}", stderr(&failed));
    assert!(stderr(&failed).contains("put back at the front of queue \"jobs\""), "{}", stderr(&failed));
    assert_eq!(roomy.open_queue("jobs").unwrap().get().unwrap(), Some(big));
}

/// Every command that prints reports a stdout that takes nothing as an error, exit status 1;
/// `queue len` and `queue clear` printed with `println!`, which panicked (exit status 101 and a
/// backtrace), `queue clear` once the queue was cleared.
#[test]
fn commands_that_cannot_print_say_so_rather_than_panic() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shell.db");
    ok(easycaching(&db, &["queue", "put", "jobs", "1"]));
    ok(easycaching(&db, &["cache", "set", "test", "k", "1"]));
    for args in [
        &["queue", "len", "jobs"][..],
        &["queue", "peek", "jobs"],
        &["queue", "dump", "jobs"],
        &["queue", "clear", "jobs"],
        &["cache", "get", "test", "k"],
        &["cache", "len", "test"],
        &["cache", "keys", "test"],
        &["ls"],
    ] {
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
        let failed = cli().arg("--db").arg(&db).args(args).stdout(full).output().unwrap();
        assert_eq!(failed.status.code(), Some(1), "{args:?}: {}", stderr(&failed));
        assert!(stderr(&failed).contains("No space left on device"), "{args:?}: {}", stderr(&failed));
        assert!(!stderr(&failed).contains("panicked"), "{args:?}: {}", stderr(&failed));
    }
    // An increment is stored before it is printed: the error says so, lest it be run again.
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let failed =
        cli().arg("--db").arg(&db).args(["cache", "incr", "test", "k"]).stdout(full).output().unwrap();
    assert_eq!(failed.status.code(), Some(1), "{}", stderr(&failed));
    assert!(stderr(&failed).contains("which now holds 2, but could not print it"), "{}", stderr(&failed));
    assert_eq!(ok(easycaching(&db, &["cache", "get", "test", "k"])), "2\n");
    // So is a swap.
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let swap = ["cache", "swap", "test", "k", "--expected", "2", "--value", "3"];
    let failed = cli().arg("--db").arg(&db).args(swap).stdout(full).output().unwrap();
    assert_eq!(failed.status.code(), Some(1), "{}", stderr(&failed));
    assert!(
        stderr(&failed).contains("swapped \"k\" in cache \"test\", but could not print it"),
        "{}",
        stderr(&failed)
    );
    assert_eq!(ok(easycaching(&db, &["cache", "get", "test", "k"])), "3\n");
}

/// A reader that stops early (`easycaching cache keys big | head`) leaves a closed pipe behind.
/// A command that only reads then ends quietly with exit status 0, as `cat` and `grep` do (it
/// said "Broken pipe" and failed); one that changed something still fails saying what it did,
/// and `queue get` puts its item back.
#[test]
fn a_reader_that_stops_early_ends_a_listing_quietly_and_a_change_says_what_it_did() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shell.db");
    ok(easycaching(&db, &["cache", "set", "test", "k", "1"]));
    ok(easycaching(&db, &["cache", "set", "test", "j", "2"]));
    ok(easycaching(&db, &["queue", "put", "jobs", r#""first""#]));
    let closed_pipe = || {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        writer
    };
    let run = |args: &[&str]| cli().arg("--db").arg(&db).args(args).stdout(closed_pipe()).output().unwrap();
    for args in [
        &["ls"][..],
        &["cache", "get", "test", "k"],
        &["cache", "ttl", "test", "k"],
        &["cache", "len", "test"],
        &["cache", "keys", "test"],
        &["cache", "dump", "test"],
        &["queue", "len", "jobs"],
        &["queue", "peek", "jobs"],
        &["queue", "dump", "jobs"],
    ] {
        let quiet = run(args);
        assert!(quiet.status.success(), "{args:?}: {}\n{}", quiet.status, stderr(&quiet));
        assert_eq!(stderr(&quiet), "", "{args:?}");
    }
    for (args, said) in [
        (&["cache", "del", "test", "k", "gone"][..], r#"removed 1 of the 2 keys given from cache "test""#),
        (&["cache", "incr", "test", "n"], "which now holds 1, but could not print it"),
        (&["cache", "clear", "test"], r#"cleared cache "test" (entries removed: 2)"#),
        (&["queue", "get", "jobs"], r#"put back at the front of queue "jobs""#),
        (&["queue", "clear", "jobs"], r#"cleared queue "jobs" (items removed: 1)"#),
    ] {
        let failed = run(args);
        assert_eq!(failed.status.code(), Some(1), "{args:?}: {}", stderr(&failed));
        assert!(stderr(&failed).contains(said), "{args:?}: {}", stderr(&failed));
        assert!(stderr(&failed).contains("broken pipe"), "{args:?}: {}", stderr(&failed));
    }
    assert_eq!(ok(easycaching(&db, &["cache", "len", "test"])), "0\n");
    assert_eq!(ok(easycaching(&db, &["queue", "len", "jobs"])), "0\n");
}

/// `ls` counts the bytes of keys and values; when most of the file is pages a clear freed,
/// which it keeps, a note on stderr says so and how to give them back, and the table on
/// stdout stays as it was.
#[test]
fn ls_notes_a_file_that_is_mostly_free_pages_and_how_to_shrink_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shell.db");
    let value = format!("\"{}\"", "x".repeat(1000));
    let dump: String = (0..3000).map(|i| format!("{{\"key{i:05}\": {value}}}\n")).collect();
    ok(load(&db, &["big"], dump.as_bytes()));
    let full = easycaching(&db, &["ls"]);
    assert_eq!(stderr(&full), "");
    ok(easycaching(&db, &["cache", "clear", "big"]));
    let cleared = easycaching(&db, &["ls"]);
    assert!(cleared.status.success());
    assert_eq!(
        stdout(&cleared).lines().nth(1).unwrap().split_whitespace().collect::<Vec<_>>(),
        ["cache", "big", "0", "0"]
    );
    assert!(
        stderr(&cleared).contains("MiB of it free pages that later writes reuse"),
        "{}",
        stderr(&cleared)
    );
    let backup = dir.path().join("compact.db");
    ok(easycaching(&db, &["backup", backup.to_str().unwrap()]));
    ok(easycaching(&db, &["restore", backup.to_str().unwrap()]));
    let restored = easycaching(&db, &["ls"]);
    assert_eq!(stdout(&restored), stdout(&cleared));
    assert_eq!(stderr(&restored), "");
    assert!(std::fs::metadata(&db).unwrap().len() < 1 << 20);
}

#[test]
fn durability_can_be_chosen_per_command_and_the_file_is_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shell.db");
    ok(easycaching(&db, &["--durability", "normal", "cache", "set", "test", "fast", "1"]));
    ok(cli()
        .env("EASYCACHING_DURABILITY", "normal")
        .arg("--db")
        .arg(&db)
        .args(["queue", "put", "jobs", "2"])
        .output()
        .unwrap());
    assert_eq!(ok(easycaching(&db, &["--durability", "full", "cache", "get", "test", "fast"])), "1\n");
    assert_eq!(ok(easycaching(&db, &["queue", "get", "jobs"])), "2\n");

    let wrong = easycaching(&db, &["--durability", "eventually", "ls"]);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(stderr(&wrong).contains("[possible values: full, normal]"), "{}", stderr(&wrong));
}

#[test]
fn mistakes_get_errors_that_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shell.db");
    let bad_json = easycaching(&db, &["cache", "set", "test", "foo", "bar"]);
    assert!(!bad_json.status.success());
    assert!(stderr(&bad_json).contains("must be JSON"), "{}", stderr(&bad_json));
    assert!(stderr(&bad_json).contains("'\"bar\"'"), "{}", stderr(&bad_json));
    assert!(!db.exists(), "a value that is not JSON stores nothing, not even an empty file");
    let bad_item = easycaching(&db, &["queue", "put", "jobs", "{oops"]);
    assert!(stderr(&bad_item).contains("must be JSON"), "{}", stderr(&bad_item));
    ok(easycaching(&db, &["cache", "set", "test", "foo", "\"bar\""]));
    assert_eq!(
        ok(easycaching(&db, &["ls"])).lines().count(),
        2,
        "one cache, no queue:\n{}",
        ok(easycaching(&db, &["ls"]))
    );

    let unknown = easycaching(&db, &["cache", "get", "nope", "k"]);
    assert!(stderr(&unknown).contains("no cache named \"nope\""), "{}", stderr(&unknown));
    assert!(stderr(&unknown).contains("hint: easycaching cache create nope"), "{}", stderr(&unknown));

    let bad_name = easycaching(&db, &["cache", "set", "no way", "k", "1"]);
    assert!(stderr(&bad_name).contains("invalid name"), "{}", stderr(&bad_name));

    let bad_grant = cli().args(["run", "x.wasm", "--allow", "tables:*"]).output().unwrap();
    assert_eq!(bad_grant.status.code(), Some(2));
    assert!(stderr(&bad_grant).contains("KIND:PATTERN"), "{}", stderr(&bad_grant));

    let not_ours = dir.path().join("notes.txt");
    std::fs::write(&not_ours, "just some notes, not a database at all, really").unwrap();
    let refused = easycaching(&not_ours, &["ls"]);
    assert!(stderr(&refused).contains("not an SQLite database"), "{}", stderr(&refused));
    assert_eq!(std::fs::read_to_string(&not_ours).unwrap(), "just some notes, not a database at all, really");

    let not_a_component = dir.path().join("plugin.wasm");
    std::fs::write(&not_a_component, b"\0asm\x01\0\0\0").unwrap();
    let output = easycaching(&db, &["run", not_a_component.to_str().unwrap(), "--no-compiled-cache"]);
    assert!(stderr(&output).contains("not a WebAssembly component"), "{}", stderr(&output));
}

/// A command that stores something makes the database when there is none, and says so once: a
/// mistyped --db, or a plugin run from another directory, would otherwise seem to have lost its
/// data.
#[test]
fn a_new_database_is_announced_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("new.db");
    let first = easycaching(&db, &["cache", "set", "test", "foo", "1"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let note = format!("easycaching: note: created a new database at {}\n", db.display());
    assert_eq!(stderr(&first), note);
    let again = easycaching(&db, &["cache", "set", "test", "foo", "2"]);
    assert_eq!(stderr(&again), "", "the file is there now");

    let plugin = guest("read_write");
    let elsewhere = dir.path().join("typo.db");
    let run = easycaching(
        &elsewhere,
        &["run", plugin.to_str().unwrap(), "--allow", "cache:data=rwc", "--", "get", "k"],
    );
    assert!(
        stderr(&run).contains(&format!("created a new database at {}", elsewhere.display())),
        "{}",
        stderr(&run)
    );
}

#[test]
fn help_teaches_the_commands_and_the_grant_syntax() {
    let help = ok(cli().arg("--help").output().unwrap());
    for expected in ["run", "ls", "cache", "queue", "--db", "EASYCACHING_DB", "Examples:"] {
        assert!(help.contains(expected), "--help lacks {expected:?}:\n{help}");
    }
    let run_help = ok(cli().args(["run", "--help"]).output().unwrap());
    for expected in ["--allow", "KIND:PATTERN", "rwc", "--memory", "--timeout", "no network"] {
        assert!(run_help.contains(expected), "run --help lacks {expected:?}:\n{run_help}");
    }
}

/// The prose after the options reads as paragraphs: `serve --help` had lines broken after a
/// word or two ("(503 past" / "it), the plugin's answer ...") where its text was wrapped by hand.
#[test]
fn help_text_is_wrapped_into_whole_lines() {
    let commands: [&[&str]; 7] =
        [&[], &["run"], &["serve"], &["backup"], &["restore"], &["cache", "set"], &["cache", "load"]];
    for command in commands {
        let help = ok(cli().args(command).arg("--help").output().unwrap());
        let lines: Vec<&str> = help.lines().collect();
        for pair in lines.windows(2) {
            let (line, next) = (pair[0], pair[1]);
            let prose = |line: &str| !line.is_empty() && !line.starts_with(' ');
            assert!(
                !(prose(line) && prose(next) && line.len() < 40 && !line.ends_with(':')),
                "{command:?} --help breaks a line short at {line:?}, then {next:?}:\n{help}"
            );
        }
    }
}

/// Every argument of every command says in `--help` what it is: `cache get --help` listed
/// `<CACHE>` and `<KEY>` with nothing beside them.
#[test]
fn help_describes_every_positional_argument() {
    // Every subcommand, as the top --help and each group's --help list them.
    let listed = |args: &[&str]| -> Vec<String> {
        let help = ok(cli().args(args).arg("--help").output().unwrap());
        help.lines()
            .skip_while(|line| *line != "Commands:")
            .skip(1)
            .take_while(|line| !line.is_empty())
            // Names start two spaces in; wrapped descriptions further.
            .filter(|line| line.starts_with("  ") && !line.starts_with("   "))
            .filter_map(|line| line.split_whitespace().next())
            .filter(|name| *name != "help")
            .map(str::to_owned)
            .collect()
    };
    let mut commands: Vec<Vec<String>> = Vec::new();
    for top in listed(&[]) {
        match listed(&[&top]) {
            subcommands if subcommands.is_empty() => commands.push(vec![top]),
            subcommands => commands.extend(subcommands.into_iter().map(|sub| vec![top.clone(), sub])),
        }
    }
    assert!(commands.len() > 15, "{commands:?}");
    for command in &commands {
        let help = ok(cli().args(command).arg("--help").output().unwrap());
        let arguments: Vec<&str> = help
            .lines()
            .skip_while(|line| *line != "Arguments:")
            .skip(1)
            .take_while(|line| !line.is_empty())
            .filter(|line| line.starts_with("  [") || line.starts_with("  <"))
            .collect();
        for line in arguments {
            let described = line.trim_start().split_once(|c: char| c.is_whitespace());
            assert!(
                described.is_some_and(|(_, text)| !text.trim().is_empty()),
                "{command:?} --help: {line:?} has no description:\n{help}"
            );
        }
    }
}

/// A count flag given 0 says what it takes; clap's own parser said "number would be zero for
/// non-zero type".
#[test]
fn count_flags_given_zero_say_they_take_at_least_1() {
    for flag in ["--workers", "--instances", "--requests-per-instance", "--max-connections"] {
        let refused = cli().args(["serve", "plugin.wasm", flag, "0"]).output().unwrap();
        assert_eq!(refused.status.code(), Some(2), "{flag}: {}", stderr(&refused));
        let expected = format!("invalid value '0' for '{flag} <N>': must be at least 1");
        assert!(stderr(&refused).contains(&expected), "{flag}: {}", stderr(&refused));
        let not_a_count = cli().args(["serve", "plugin.wasm", flag, "some"]).output().unwrap();
        assert!(
            stderr(&not_a_count).contains("whole number of at least 1"),
            "{flag}: {}",
            stderr(&not_a_count)
        );
    }
}

#[test]
fn run_gives_a_plugin_exactly_its_grants_and_the_data_outlives_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("run.db");
    let cache_dir = dir.path().join("compiled");
    let plugin = guest("read_write");
    let run = |args: &[&str]| {
        let mut command = cli();
        command.env("EASYCACHING_LOG", "easycaching_host=debug");
        command.arg("--db").arg(&db).arg("run").arg(&plugin).arg("--compiled-cache").arg(&cache_dir);
        command.args(args).output().unwrap()
    };
    ok(run(&["--allow", "cache:data=rwc", "--", "set", "k", "[1, 2, 3]"]));
    assert_eq!(ok(run(&["--allow", "cache:data=r", "--", "get", "k"])), "[1,2,3]\n");
    assert!(
        std::fs::read_dir(&cache_dir).unwrap().any(|e| e
            .unwrap()
            .path()
            .extension()
            .is_some_and(|x| x == "cwasm"))
    );

    let denied = run(&["--allow", "cache:other=rwc", "--", "get", "k"]);
    assert!(!denied.status.success());
    assert!(stderr(&denied).contains("AccessDenied"), "{}", stderr(&denied));

    let read_only = run(&["--allow", "cache:data=r", "--", "set", "k", "0"]);
    assert!(!read_only.status.success());
    assert!(stderr(&read_only).contains("may only read"), "{}", stderr(&read_only));
    assert_eq!(ok(easycaching(&db, &["cache", "get", "data", "k"])), "[1, 2, 3]\n");
}

#[test]
fn a_mistyped_path_or_the_wrong_kind_of_file_is_named_and_creates_no_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("typo.db");
    let path = |p: &Path| p.to_str().unwrap().to_owned();

    let listed = easycaching(&db, &["ls"]);
    assert_eq!(listed.status.code(), Some(1));
    assert!(stderr(&listed).contains("there is no database at"), "{}", stderr(&listed));
    assert!(stderr(&listed).contains("hint: give the file with --db"), "{}", stderr(&listed));
    // Every command that creates the file is named, as the README lists them.
    assert!(
        stderr(&listed).contains("`cache set`, `cache incr`, `cache swap`, `cache create`"),
        "{}",
        stderr(&listed)
    );
    let read = easycaching(&db, &["cache", "get", "test", "k"]);
    assert!(stderr(&read).contains("there is no database at"), "{}", stderr(&read));

    let missing = easycaching(&db, &["run", &path(&dir.path().join("missing.wasm"))]);
    assert!(stderr(&missing).contains("missing.wasm: No such file"), "{}", stderr(&missing));
    let text = dir.path().join("notes.wasm");
    std::fs::write(&text, "just some notes").unwrap();
    let not_wasm = easycaching(&db, &["run", &path(&text), "--no-compiled-cache"]);
    assert!(stderr(&not_wasm).contains("not a WebAssembly file"), "{}", stderr(&not_wasm));
    let handler = easycaching(&db, &["run", &path(&guest("http_cache")), "--allow", "cache:web=rwc"]);
    assert!(!handler.status.success());
    assert!(stderr(&handler).contains("it is an HTTP handler"), "{}", stderr(&handler));
    assert!(stderr(&handler).contains("serve it with `easycaching serve`"), "{}", stderr(&handler));
    let served_missing =
        easycaching(&db, &["serve", &path(&dir.path().join("missing.wasm")), "--listen", "127.0.0.1:0"]);
    assert!(!served_missing.status.success());
    assert!(stderr(&served_missing).contains("missing.wasm: No such file"), "{}", stderr(&served_missing));
    let command = easycaching(&db, &["serve", &path(&guest("read_write")), "--listen", "127.0.0.1:0"]);
    assert!(!command.status.success());
    assert!(stderr(&command).contains("run it with `easycaching run`"), "{}", stderr(&command));
    assert!(!db.exists(), "no command above stores anything, so none creates the database");

    ok(easycaching(&db, &["cache", "create", "test"]));
    assert_eq!(ok(easycaching(&db, &["ls"])).lines().count(), 1 + 1, "a header and the cache");
}

#[test]
fn a_busy_port_is_reported_once_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let db = dir.path().join("web.db");
    let output = easycaching(&db, &["serve", guest("http_cache").to_str().unwrap(), "--listen", &address]);
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert_eq!(text.matches("in use").count(), 1, "the reason is said once: {text}");
    assert!(text.contains(&format!("cannot listen on {address}")), "{text}");
    assert!(text.contains("hint: another process listens there"), "{text}");
}

#[test]
fn a_plugin_denied_a_cache_it_would_create_is_told_the_grant_that_creates() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("run.db");
    let plugin = guest("read_write");
    let denied = easycaching(&db, &["run", plugin.to_str().unwrap(), "--", "set", "k", "1"]);
    assert!(!denied.status.success());
    assert!(stderr(&denied).contains("--allow cache:data=rwc"), "{}", stderr(&denied));
    ok(easycaching(
        &db,
        &["run", plugin.to_str().unwrap(), "--allow", "cache:data=rwc", "--", "set", "k", "1"],
    ));
}

/// `run plugin.wasm -- ARGS --allow GRANT`: the grant went to the plugin as an argument, and the
/// plugin was denied with nothing saying why the --allow did not count.
#[test]
fn an_option_after_the_double_dash_is_said_to_be_the_plugin_s() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("run.db");
    let plugin = guest("read_write");
    let denied = easycaching(
        &db,
        &["run", plugin.to_str().unwrap(), "--", "set", "k", "1", "--allow", "cache:data=rwc"],
    );
    assert!(!denied.status.success());
    let said = stderr(&denied);
    assert!(
        said.contains("note: --allow comes after --, so it is an argument of the plugin, not an option of easycaching run"),
        "{said}"
    );
}

/// `run plugin.wasm add x`, as `wasmtime run` takes it: refused, with the -- the plugin's
/// arguments come after.
#[test]
fn plugin_arguments_without_the_double_dash_are_refused_with_a_tip() {
    let refused = cli().args(["run", "plugin.wasm", "add", "x"]).output().unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let said = stderr(&refused);
    assert!(said.contains("unexpected argument 'add'"), "{said}");
    assert!(said.contains("tip: the plugin's arguments go after --"), "{said}");
    // A mistyped option is not a plugin argument: clap's own words.
    let typo = cli().args(["run", "plugin.wasm", "--alow", "cache:x"]).output().unwrap();
    assert!(!stderr(&typo).contains("the plugin's arguments go after --"), "{}", stderr(&typo));
}

/// Two grants of one name that say different things were taken silently, the last deciding.
#[test]
fn grants_of_one_name_that_disagree_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("run.db");
    let plugin = guest("read_write");
    let plugin = plugin.to_str().unwrap();
    for command in ["run", "serve"] {
        let refused =
            easycaching(&db, &[command, plugin, "--allow", "cache:data=rwc", "--allow", "cache:data=r"]);
        assert_eq!(refused.status.code(), Some(1), "{command}");
        let said = stderr(&refused);
        assert!(
            said.contains("--allow cache:data=rwc and --allow cache:data=r grant the same names differently"),
            "{command}: {said}"
        );
    }
    assert!(!db.exists(), "refused before anything is opened");
    // The same grant twice, or grants of other names, are fine.
    let allowed = ["--allow", "cache:data=rwc", "--allow", "cache:data=rwc", "--allow", "cache:d*=r"];
    let mut args = vec!["run", plugin];
    args.extend(allowed);
    args.extend(["--", "set", "k", "1"]);
    ok(easycaching(&db, &args));
}

/// A Rust plugin that panics ends in a wasm `unreachable`, which alone reads like the host's
/// fault: the hint says it was the plugin's panic, whose message is above.
#[test]
fn a_plugin_that_panics_is_told_apart_from_a_fault_of_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("panic.db");
    let plugin = guest("read_write");
    let output = easycaching(
        &db,
        &["run", plugin.to_str().unwrap(), "--allow", "cache:data=rwc", "--", "no-such-command"],
    );
    assert_eq!(output.status.code(), Some(1));
    let said = stderr(&output);
    assert!(said.contains("panicked") && said.contains("usage: read_write"), "{said}");
    assert!(said.contains("the plugin crashed: wasm trap: wasm `unreachable`"), "{said}");
    assert!(said.trim_end().ends_with("hint: the plugin panicked or aborted: its own message, if it printed one, is above; the backtrace shows where"), "{said}");
}

/// Waits for `child` to exit, at most `limit`: past it, kills it and fails the test.
fn exits_within(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The bytes `stdio_flood write` writes: numbered lines of 12 bytes.
fn flood(bytes: usize) -> Vec<u8> {
    let mut text: Vec<u8> =
        (0..bytes.div_ceil(12)).flat_map(|line| format!("{line:011}\n").into_bytes()).collect();
    text.truncate(bytes);
    text
}

#[test]
fn a_plugin_writing_to_a_stdout_nobody_reads_is_stopped_at_its_time_limit() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flood.db");
    // 4 MB to a pipe that is never read: the pipe fills, and the plugin waits for it in a host
    // call, where no epoch deadline reaches.
    let mut child = cli()
        .arg("--db")
        .arg(&db)
        .arg("run")
        .arg(guest("stdio_flood"))
        .args(["--timeout", "1s", "--", "write", "stdout", "4000000"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = exits_within(&mut child, Duration::from_secs(20));
    let elapsed = started.elapsed();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("the plugin ran past its time limit of 1s and was stopped"), "{stderr}");
    assert!(!stderr.contains("wrote"), "{stderr}");
    // Loading the plugin (compiling it, the first time) comes before its time starts; after
    // it, the output it wrote but the pipe never took is given its grace.
    let limit = Duration::from_secs(6) + easycaching_host::OUTPUT_GRACE;
    assert!(elapsed < limit, "stopped after {elapsed:?}");
    // What it wrote before it waited is there, from the start and in order.
    let mut stdout = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut stdout).unwrap();
    assert!(!stdout.is_empty() && flood(4_000_000).starts_with(&stdout), "{} bytes", stdout.len());
}

#[test]
fn a_plugin_writing_megabytes_to_a_stdout_that_keeps_up_writes_them_all_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flood.db");
    let plugin = guest("stdio_flood");
    let run = |stream: &str| {
        let plugin = plugin.to_str().unwrap();
        easycaching(&db, &["run", plugin, "--timeout", "60s", "--", "write", stream, "4000000"])
    };
    let output = run("stdout");
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(output.stdout == flood(4_000_000), "{} bytes, not as written", output.stdout.len());
    assert!(stderr(&output).ends_with("wrote 4000000\n"), "{}", stderr(&output));
    let output = run("stderr");
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(output.stderr.ends_with(&flood(4_000_000)), "{} bytes, not as written", output.stderr.len());
    assert_eq!(stdout(&output), "wrote 4000000\n");
}

#[test]
fn run_gives_a_plugin_no_stdin_so_reading_it_ends_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("stdin.db");
    // The CLI's own stdin stays open and empty: the plugin does not see it.
    let mut child = cli()
        .arg("--db")
        .arg(&db)
        .arg("run")
        .arg(guest("stdio_flood"))
        .args(["--", "read"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = exits_within(&mut child, Duration::from_secs(20));
    let mut stdout = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    assert!(status.success(), "{status}");
    assert_eq!(stdout, "read 0 bytes\n");
}

#[test]
fn serve_whose_reader_has_gone_stops_cleanly_on_sigterm() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("web.db");
    // As `easycaching serve ... | head -1` in a script that only wants the address.
    let mut child = cli()
        .arg("--db")
        .arg(&db)
        .args(["serve", guest("http_cache").to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert!(first.contains("serving"), "{first}");
    // The reader is dropped: the pipe is closed before the summary is printed.
    easycaching_tests::terminate(&child);
    let status = exits_within(&mut child, Duration::from_secs(60));
    let mut errors = String::new();
    child.stderr.take().unwrap().read_to_string(&mut errors).unwrap();
    assert!(!errors.contains("panicked"), "{errors}");
    assert!(status.success(), "{status}: {errors}");
}

#[test]
fn what_a_plugin_wrote_before_its_time_limit_stopped_it_still_reaches_a_slow_stdout() {
    use std::io::BufRead;

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("queued.db");
    // 100 kB written without waiting for it, to a pipe not read until the plugin is stopped:
    // the pipe takes 64 kB, the rest waits in the host's queue while the plugin loops until
    // its time limit stops it.
    let mut child = cli()
        .env("EASYCACHING_LOG", "warn,easycaching_host=debug")
        .arg("--db")
        .arg(&db)
        .arg("run")
        .arg(guest("stdio_flood"))
        .args(["--timeout", "1s", "--", "queue", "stdout", "100000"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The host says (at debug level) when the run is over with output still to write: only
    // then does the reader start reading, slowly (200 kB/s: half a second for all of it), as
    // a terminal or a pipe to a slow consumer would.
    let (over, run_over) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        for line in std::io::BufReader::new(stderr).lines() {
            let line = line.unwrap();
            if line.contains("output still to write") {
                let _ = over.send(());
            }
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    let waited = run_over.recv_timeout(Duration::from_secs(20));
    let mut stdout = Vec::new();
    let mut pipe = child.stdout.take().unwrap();
    let mut page = [0; 4096];
    loop {
        match pipe.read(&mut page).unwrap() {
            0 => break,
            read => stdout.extend_from_slice(&page[..read]),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = exits_within(&mut child, Duration::from_secs(20));
    let stderr = stderr.join().unwrap();
    assert!(waited.is_ok(), "the host did not wait for the output: {stderr}");
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("wrote 100000"), "{stderr}");
    assert!(stderr.contains("the plugin ran past its time limit of 1s and was stopped"), "{stderr}");
    assert!(stdout == flood(100_000), "{} of 100000 bytes, or not as written", stdout.len());
}

#[test]
fn a_database_another_process_holds_fails_after_the_busy_timeout_given_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("held.db");
    ok(easycaching(&db, &["cache", "set", "c", "before", "1"]));
    // Someone holds the write lock, as an sqlite3 shell with an open transaction would.
    let holder = rusqlite::Connection::open(&db).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE;").unwrap();
    for command in [&["cache", "set", "c", "k", "1"][..], &["queue", "put", "q", "1"]] {
        let started = Instant::now();
        let held = easycaching(&db, &[&["--busy-timeout", "300ms"], command].concat());
        assert!(started.elapsed() < Duration::from_secs(5), "{command:?} waited {:?}", started.elapsed());
        assert_eq!(held.status.code(), Some(1), "{command:?}");
        let said = stderr(&held);
        assert!(said.contains("held.db stayed locked by another process for 300ms"), "{said}");
        assert!(said.contains("hint: ") && said.contains("--busy-timeout"), "{said}");
    }
    holder.execute_batch("ROLLBACK;").unwrap();
    assert_eq!(ok(easycaching(&db, &["cache", "keys", "c"])), "before\n", "nothing was half-written");
    assert!(!easycaching(&db, &["queue", "len", "q"]).status.success(), "no queue was made");
}

#[test]
fn a_nearly_full_disk_gives_a_clear_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let Some((small, _unmount)) = small_disk(dir.path(), "512k") else { return };
    let db = small.join("full.db");
    // Less room left than the board beside the database takes (260 KiB), then hardly any.
    let mut acknowledged = Vec::new();
    for (round, left) in [(0, 128 << 10), (1, 8 << 10)] {
        let filler = small.join(format!("filler-{round}"));
        let free =
            std::fs::read_dir(&small).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum::<u64>();
        let room = (512u64 << 10).saturating_sub(free).saturating_sub(left);
        std::fs::write(&filler, vec![1u8; room as usize]).unwrap_or(());
        for i in 0..4 {
            let key = format!("k{round}-{i}");
            let set = easycaching(&db, &["cache", "set", "c", &key, "1"]);
            assert!(
                set.status.code().is_some(),
                "{key}: killed by a signal: {}\n{}",
                set.status,
                stderr(&set)
            );
            match set.status.success() {
                true => acknowledged.push(key),
                false => assert!(stderr(&set).contains("is full"), "{key}: {}", stderr(&set)),
            }
        }
    }
    for entry in std::fs::read_dir(&small).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap().to_string_lossy().starts_with("filler") {
            std::fs::remove_file(path).unwrap();
        }
    }
    let keys = ok(easycaching(&db, &["cache", "keys", "c"]));
    assert_eq!(keys.lines().collect::<Vec<_>>(), acknowledged, "exactly the writes acknowledged are there");
}

/// `cache load FILE`, or stdin, given `input`.
fn load(db: &Path, args: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = cli()
        .arg("--db")
        .arg(db)
        .args(["cache", "load"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command that fails before reading all of stdin closes it: that is no test failure.
    let _ = child.stdin.take().unwrap().write_all(input);
    child.wait_with_output().unwrap()
}

/// The `ls` line of `name`, split in words.
fn listed(db: &Path, name: &str) -> Option<Vec<String>> {
    let listing = ok(easycaching(db, &["ls"]));
    listing
        .lines()
        .map(|line| line.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .find(|words| words.get(1).is_some_and(|word| word == name))
}

/// `cache dump` then `cache load` copies a cache exactly: keys of any characters, values of
/// every JSON kind, as their text was stored (whitespace and newlines included: such a value
/// dumps over several lines), more entries than one batch call takes, and an empty cache.
#[test]
fn cache_load_copies_a_dump_into_another_database_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (from, to) = (dir.path().join("from.db"), dir.path().join("to.db"));
    let source = easycaching::CacheManager::open(&from).unwrap();
    let cache = source.create_cache("test").unwrap();
    let deepest = format!("{}{}", "[".repeat(127), "]".repeat(127));
    let tricky = [
        ("", "null"),
        ("new\nline", "true"),
        ("quote\" and \\ back", "false"),
        ("ünïcødé ✓ 🦀", "-1.5e3"),
        ("tab\tand\u{1}control", r#""a string with \"quotes\", \\, \n and é""#),
        ("{\"looks\": \"like json\"}", "[]"),
        ("empty object", "{}"),
        ("nested", r#"{"a": [1, {"b": null}], "c": "d"}"#),
        ("spaced", " {\"a\" :\n [ 1 ]\r\n} "),
        ("deep", &deepest),
        ("big number", "123456789012345678901234567890"),
    ];
    for (key, value) in tricky {
        cache.set(key, easycaching::Json::parse(value).unwrap()).unwrap();
    }
    // More than one `set_many` takes (max_batch_items, 1000).
    let many: Vec<(String, easycaching::Json)> =
        (0..1500).map(|i| (format!("k{i:05}"), easycaching::Json::from_value(&i).unwrap())).collect();
    for chunk in many.chunks(500) {
        cache.set_many(chunk.to_vec()).unwrap();
    }
    source.create_cache("empty").unwrap();
    drop(source);

    let dump = cli().arg("--db").arg(&from).args(["cache", "dump", "test"]).output().unwrap();
    let dump = dump.stdout;
    let loaded = load(&to, &["test"], &dump);
    assert_eq!(ok(loaded), "1511\n");
    assert_eq!(cli().arg("--db").arg(&to).args(["cache", "dump", "test"]).output().unwrap().stdout, dump);
    assert_eq!(listed(&to, "test"), listed(&from, "test"), "as many entries and bytes");
    let copy = easycaching::CacheManager::open(&to).unwrap().open_cache("test").unwrap();
    for (key, value) in tricky {
        assert_eq!(copy.get(key).unwrap().as_deref(), Some(value), "under {key:?}");
    }

    // An empty cache dumps to nothing, which loads as an empty cache.
    let empty = ok(easycaching(&from, &["cache", "dump", "empty"]));
    assert_eq!(empty, "");
    assert_eq!(ok(load(&to, &["empty"], empty.as_bytes())), "0\n");
    assert_eq!(listed(&to, "empty").unwrap()[2..], ["0", "0"]);

    // From a file, and from stdin named `-`.
    let file = dir.path().join("dump.jsonl");
    std::fs::write(&file, &dump).unwrap();
    let third = dir.path().join("third.db");
    assert_eq!(ok(easycaching(&third, &["cache", "load", "test", file.to_str().unwrap()])), "1511\n");
    assert_eq!(ok(load(&third, &["dashed", "-"], &dump)), "1511\n");
    for name in ["test", "dashed"] {
        let copied = cli().arg("--db").arg(&third).args(["cache", "dump", name]).output().unwrap();
        assert_eq!(copied.stdout, dump, "{name}");
    }
}

/// Keys in the input replace the cache's; its other entries stay; a key given twice takes its
/// later value, and counts once.
#[test]
fn cache_load_replaces_the_keys_given_and_keeps_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shell.db");
    ok(easycaching(&db, &["cache", "set", "test", "k1", "1"]));
    ok(easycaching(&db, &["cache", "set", "test", "k2", "2"]));
    let input = "{\"k2\": 20}\n\n{\"k3\": 3}\r\n  {\"k3\":30}  \n";
    assert_eq!(ok(load(&db, &["test"], input.as_bytes())), "2\n");
    assert_eq!(ok(easycaching(&db, &["cache", "dump", "test"])), "{\"k1\": 1}\n{\"k2\": 20}\n{\"k3\": 30}\n");
}

/// Input that is not what `cache dump` prints is refused whole, naming the line and what is
/// wrong with it: nothing is stored, no cache and no database file is created.
#[test]
fn cache_load_refuses_bad_input_naming_the_line_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shell.db");
    let fresh = dir.path().join("fresh.db");
    ok(easycaching(&db, &["cache", "set", "test", "kept", "1"]));
    let long_key = format!("{{\"{}\": 1}}", "k".repeat(4097));
    let long_value = format!("{{\"big\": \"{}\"}}", "v".repeat(1 << 20));
    // Named by its first 40 characters.
    let long_key_said =
        format!("line 3: the key \"{}…\" is 4097 bytes, over the limit of 4096", "k".repeat(40));
    let cases: [(&[u8], &str); 12] = [
        (b"{\"a\" 1}", "line 3: expected `:` (column 6)"),
        (b"5", "line 3: invalid type: integer `5`, expected a JSON object"),
        (b"[\"a\", 1]", "line 3: invalid type: sequence, expected a JSON object"),
        (b"{}", "line 3: an object with no member"),
        (b"{\"a\": 1, \"b\": 2}", "line 3: an object of 2 members (\"a\", \"b\")"),
        (b"{\"a\": 1} {\"b\": 2}", "line 3: \"{\\\"b\\\": 2}\" follows the entry"),
        (b"{\"a\": 1e999}", "line 3: the value under \"a\": invalid JSON: number out of range"),
        (b"\n\n{\"a\":\n [1,", "line 5: the input ends inside this entry"),
        (b"{\"a\": \"\xff\"}", "line 3: byte 8 (0xff) is not UTF-8"),
        (long_key.as_bytes(), &long_key_said),
        (
            long_value.as_bytes(),
            "line 3: the value under \"big\" is 1048578 bytes, over the limit of 1048576",
        ),
        (b"{\"a\": 1}\n{\"b\": ", "line 4: the input ends inside this entry"),
    ];
    for (bad, expected) in cases {
        let input = [&b"{\"first\": 1}\n\n"[..], bad, b"\n{\"last\": 2}\n"].concat();
        for target in [&db, &fresh] {
            let refused = load(target, &["loaded"], &input);
            let said = stderr(&refused);
            assert_eq!(refused.status.code(), Some(1), "{expected}: {said}");
            assert!(said.contains(&format!("stdin, {expected}")), "wanted {expected:?}, got: {said}");
            assert!(said.contains("nothing was stored"), "{said}");
        }
        assert!(!fresh.exists(), "{expected}: bad input created the database");
        assert_eq!(listed(&db, "loaded"), None, "{expected}: bad input created the cache");
    }
    // Into a cache that exists, nothing either.
    let refused = load(&db, &["test"], b"{\"new\": 1}\n{\"kept\": 2}\n{oops}\n");
    assert!(stderr(&refused).contains("line 3: key must be a string (column 2)"), "{}", stderr(&refused));
    assert_eq!(ok(easycaching(&db, &["cache", "dump", "test"])), "{\"kept\": 1}\n");

    // A FILE that is not there, and a cache name that is not allowed, are said before reading.
    let missing = dir.path().join("missing.jsonl");
    let absent = easycaching(&fresh, &["cache", "load", "test", missing.to_str().unwrap()]);
    assert_eq!(absent.status.code(), Some(1));
    assert!(
        stderr(&absent).contains("cannot read") && stderr(&absent).contains("missing.jsonl: No such file")
    );
    let bad_name = load(&fresh, &["no way"], b"{\"a\": 1}\n");
    assert!(stderr(&bad_name).contains("invalid name"), "{}", stderr(&bad_name));
    assert!(!fresh.exists());
}

/// A load is one write: when the database cannot take it all, none of it is there. (Stored a
/// batch call at a time, the first batches stayed.)
#[test]
fn a_load_the_disk_cannot_hold_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let Some((small, _unmount)) = small_disk(dir.path(), "4m") else { return };
    let db = small.join("full.db");
    ok(easycaching(&db, &["cache", "set", "test", "kept", "1"]));
    let value = "v".repeat(500);
    let input: String = (0..10_000).map(|i| format!("{{\"k{i:05}\": \"{value}\"}}\n")).collect();
    let refused = load(&db, &["test"], input.as_bytes());
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("is full"), "{}", stderr(&refused));
    let keys = ok(easycaching(&db, &["cache", "keys", "test"]));
    assert!(keys == "kept\n", "{} keys stored, where only \"kept\" was", keys.lines().count());
}

#[test]
fn backup_copies_everything_into_a_new_file_and_never_over_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    ok(easycaching(&db, &["cache", "set", "test", "foo", r#"{"bar": 1}"#]));
    ok(easycaching(&db, &["cache", "set", "test", "n", "2"]));
    ok(easycaching(&db, &["queue", "put", "jobs", r#""resize""#]));
    let copy = dir.path().join("copy.db");
    let said = ok(easycaching(&db, &["backup", copy.to_str().unwrap()]));
    assert!(said.starts_with("backed up 1 cache (2 entries) and 1 queue (1 item) to "), "{said}");
    for args in [&["cache", "dump", "test"][..], &["queue", "peek", "jobs"], &["ls"]] {
        assert_eq!(ok(easycaching(&copy, args)), ok(easycaching(&db, args)), "{args:?}");
    }

    ok(easycaching(&db, &["cache", "set", "test", "foo", "3"]));
    let again = easycaching(&db, &["backup", copy.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("it exists, and a backup never replaces a file"), "{}", stderr(&again));
    assert_eq!(
        ok(easycaching(&copy, &["cache", "get", "test", "foo"])),
        "{\"bar\": 1}\n",
        "the copy is untouched"
    );

    let none =
        easycaching(&dir.path().join("nothere.db"), &["backup", dir.path().join("x.db").to_str().unwrap()]);
    assert!(stderr(&none).contains("there is no database at"), "{}", stderr(&none));
    assert!(!dir.path().join("nothere.db").exists() && !dir.path().join("x.db").exists());
    let help = stdout(&cli().args(["backup", "--help"]).output().unwrap());
    assert!(help.contains("To restore, stop every process"), "{help}");
}

#[test]
fn a_backup_that_does_not_fit_its_disk_says_so_and_leaves_nothing_there() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("big.db");
    let value = format!("\"{}\"", "x".repeat(60_000));
    for i in 0..12 {
        ok(easycaching(&db, &["cache", "set", "big", &format!("k{i}"), &value]));
    }
    let Some((small, _unmount)) = small_disk(dir.path(), "512k") else { return };
    let full = easycaching(&db, &["backup", small.join("copy.db").to_str().unwrap()]);
    assert_eq!(full.status.code(), Some(1), "{}", stdout(&full));
    assert!(stderr(&full).contains("the disk is full"), "{}", stderr(&full));
    let left: Vec<_> = std::fs::read_dir(&small).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "left on the small disk: {left:?}");
    assert_eq!(ok(easycaching(&db, &["cache", "len", "big"])), "12\n");
}

/// The README's `easycaching backup backups/cache-$(date +%F).db`, before any `mkdir backups`,
/// and a `--db` in a directory not made yet: the error names the directory, and the hint makes it.
#[test]
fn a_missing_directory_is_named_with_the_mkdir_that_makes_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    ok(easycaching(&db, &["cache", "set", "test", "foo", "1"]));
    let backups = dir.path().join("backups");
    let dest = backups.join("cache.db");
    let refused = easycaching(&db, &["backup", dest.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1));
    let said = stderr(&refused);
    assert!(said.contains(&format!("the directory {} does not exist", backups.display())), "{said}");
    assert!(
        said.contains(&format!("hint: create the directory first: mkdir -p {}", backups.display())),
        "{said}"
    );
    std::fs::create_dir(&backups).unwrap();
    ok(easycaching(&db, &["backup", dest.to_str().unwrap()]));

    let elsewhere = dir.path().join("data").join("app.db");
    let refused = easycaching(&elsewhere, &["cache", "set", "test", "foo", "1"]);
    assert_eq!(refused.status.code(), Some(1));
    let said = stderr(&refused);
    let data = dir.path().join("data");
    assert!(
        said.contains(&format!("hint: create the directory first: mkdir -p {}", data.display())),
        "{said}"
    );
    // A command that creates nothing says there is no database, as it does anywhere.
    let listed = easycaching(&elsewhere, &["ls"]);
    assert!(stderr(&listed).contains("there is no database at"), "{}", stderr(&listed));
    // Another mistake is told first, without a word of the directory.
    let typo = easycaching(&elsewhere, &["run", dir.path().join("typo.wasm").to_str().unwrap()]);
    assert!(stderr(&typo).contains("typo.wasm: No such file"), "{}", stderr(&typo));
    assert!(!stderr(&typo).contains("mkdir"), "{}", stderr(&typo));
}

#[test]
fn restore_refuses_while_a_process_has_the_database_open_then_puts_the_backup_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    let backup = dir.path().join("backup.db");
    ok(easycaching(&db, &["cache", "set", "test", "foo", r#""kept""#]));
    ok(easycaching(&db, &["backup", backup.to_str().unwrap()]));
    ok(easycaching(&db, &["cache", "set", "test", "foo", r#""newer""#]));

    // This test's process has the database open: restore refuses, naming it.
    let open = easycaching::CacheManager::open(&db).unwrap();
    let refused = easycaching(&db, &["restore", backup.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1));
    let said = stderr(&refused);
    assert!(said.contains(&format!("process {} has it open", std::process::id())), "{said}");
    assert!(said.contains("stop every process using it first"), "{said}");
    assert_eq!(ok(easycaching(&db, &["cache", "get", "test", "foo"])), "\"newer\"\n", "nothing changed");
    drop(open);

    let said = ok(easycaching(&db, &["restore", backup.to_str().unwrap()]));
    let mut lines = said.lines();
    assert!(lines.next().unwrap().starts_with("restored 1 cache (1 entry) and no queues from "), "{said}");
    let replaced = lines.next().unwrap().strip_prefix("the database it replaced is now ").unwrap();
    assert_eq!(ok(easycaching(&db, &["cache", "get", "test", "foo"])), "\"kept\"\n");
    assert_eq!(ok(easycaching(Path::new(replaced), &["cache", "get", "test", "foo"])), "\"newer\"\n");

    // What the backup is for: a damaged database, whose error says how to put one back.
    let mut bytes = std::fs::read(&db).unwrap();
    bytes[100..4096].fill(0xA5);
    std::fs::write(&db, &bytes).unwrap();
    let damaged = easycaching(&db, &["cache", "get", "test", "foo"]);
    assert!(stderr(&damaged).contains("is corrupt"), "{}", stderr(&damaged));
    assert!(
        stderr(&damaged).contains("hint: stop every process using it, then put a backup"),
        "{}",
        stderr(&damaged)
    );
    ok(easycaching(&db, &["restore", backup.to_str().unwrap()]));
    assert_eq!(ok(easycaching(&db, &["cache", "get", "test", "foo"])), "\"kept\"\n");
}
