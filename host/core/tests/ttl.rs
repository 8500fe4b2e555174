//! TTL per entry: an entry set to expire is gone for every reader in every process (two
//! managers on one file stand for two processes) and across reopening, to the writes that
//! read as well; a set without a TTL clears it; the sweep reclaims the rows with counts and
//! quota kept right; a database of the schema before expiry is migrated with its data.
//!
//! Expiry is waited for by polling with a generous deadline, never by asserting how long it
//! took: short TTLs (50 ms) must be gone within 10 s, long ones (1 hour) must still be there.

use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use easycaching::store::{CacheId, Change, Changes, Outcome, SqliteStore, Store, Target, Write};
use easycaching::{Cache, CacheManager, Durability, Error, Json, MAX_TTL, Quota};

mod common;
use common::{json, two_managers};

const SHORT: Duration = Duration::from_millis(50);
const HOUR: Duration = Duration::from_secs(3600);
/// For an entry that must outlive the next call or two, even on a loaded machine, and then
/// expire.
const SECOND: Duration = Duration::from_secs(1);

/// Waits, up to 10 s, until `done` holds.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "not within 10 s: {what}");
        sleep(Duration::from_millis(10));
    }
}

fn gone(cache: &Cache, key: &str) -> bool {
    cache.get(key).unwrap().is_none()
}

fn keys(cache: &Cache) -> Vec<String> {
    cache.iter().map(|entry| entry.unwrap().0).collect()
}

/// The rows of the entries table, expired or not, read past the library.
fn rows(path: &Path) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("SELECT count(*) FROM entries", [], |row| row.get(0)).unwrap()
}

#[test]
fn an_expired_entry_is_gone_for_every_reader_of_every_process_and_a_long_ttl_stays() {
    let (_dir, a, b) = two_managers();
    let (ca, cb) = (a.create_cache("c").unwrap(), b.create_cache("c").unwrap());
    ca.set_with_ttl("short", json(r#""s""#), SECOND).unwrap();
    // Both LRUs hold the short entry (a's from its write, b's from a read), with its expiry.
    assert_eq!(cb.get("short").unwrap(), Some(json(r#""s""#)));
    ca.set_with_ttl("long", json(r#""l""#), HOUR).unwrap();
    ca.set("kept", json(r#""k""#)).unwrap();
    eventually("the short entry is gone in both processes", || gone(&ca, "short") && gone(&cb, "short"));
    for cache in [&ca, &cb] {
        assert!(!cache.contains("short").unwrap());
        assert_eq!(cache.len().unwrap(), 2, "len leaves out what expired, swept or not");
        assert_eq!(cache.size_bytes().unwrap(), ("long".len() + 3 + "kept".len() + 3) as u64);
        assert_eq!(keys(cache), ["kept", "long"]);
        assert_eq!(cache.keys(None, 10).unwrap().items, ["kept", "long"]);
        assert_eq!(cache.get_many(&["short", "long"]).unwrap(), [None, Some(json(r#""l""#))]);
        assert_eq!(cache.ttl("short").unwrap(), None);
        assert_eq!(cache.ttl("kept").unwrap(), None, "no TTL");
        let left = cache.ttl("long").unwrap().expect("a TTL");
        assert!(left > Duration::ZERO && left <= HOUR, "{left:?}");
    }
    assert_eq!(a.list_caches().unwrap()[0].entries, 2);
    // A delete of an entry that expired finds nothing to delete.
    assert!(!cb.delete("short").unwrap());
}

#[test]
fn an_expired_entry_stays_gone_across_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reopened.db");
    {
        let manager = CacheManager::open(&path).unwrap();
        let cache = manager.create_cache("c").unwrap();
        cache.set_with_ttl("short", json("1"), SHORT).unwrap();
        cache.set_with_ttl("long", json("2"), HOUR).unwrap();
    }
    sleep(SHORT * 2);
    let manager = CacheManager::open(&path).unwrap();
    let cache = manager.open_cache("c").unwrap();
    eventually("the short entry is gone", || gone(&cache, "short"));
    assert_eq!(cache.get("long").unwrap(), Some(json("2")));
    assert!(cache.ttl("long").unwrap().is_some(), "the expiry is stored, not kept in memory");
    assert_eq!(cache.len().unwrap(), 1);
}

#[test]
fn increment_and_compare_and_swap_see_an_expired_entry_as_absent() {
    let (_dir, a, b) = two_managers();
    let (ca, cb) = (a.create_cache("c").unwrap(), b.create_cache("c").unwrap());
    ca.set_with_ttl("count", json("41"), SHORT).unwrap();
    ca.set_with_ttl("lock", json(r#""ada""#), SHORT).unwrap();
    eventually("both entries are gone", || gone(&ca, "count") && gone(&ca, "lock"));
    // The other process writes over them as over absent keys; what it stores has no TTL.
    assert_eq!(cb.increment("count", 1).unwrap(), 1);
    assert!(!cb.compare_and_swap("lock", Some(&json(r#""ada""#)), None).unwrap(), "not ada's any more");
    assert!(cb.compare_and_swap("lock", None, Some(json(r#""bob""#))).unwrap());
    for cache in [&ca, &cb] {
        assert_eq!(cache.get("count").unwrap(), Some(json("1")));
        assert_eq!(cache.get("lock").unwrap(), Some(json(r#""bob""#)));
        assert_eq!(cache.ttl("count").unwrap(), None);
        assert_eq!(cache.ttl("lock").unwrap(), None);
        assert_eq!(cache.len().unwrap(), 2);
    }
    // An increment of a key expired but not swept stores the sum in place: the counts stay
    // exact.
    assert_eq!(ca.size_bytes().unwrap(), ("count".len() + 1 + "lock".len() + 5) as u64);
}

#[test]
fn increment_and_compare_and_swap_keep_the_expiry_and_set_without_a_ttl_clears_it() {
    let (_dir, a, b) = two_managers();
    let (ca, cb) = (a.create_cache("c").unwrap(), b.create_cache("c").unwrap());
    ca.set_with_ttl("n", json("5"), HOUR).unwrap();
    assert_eq!(ca.increment("n", 1).unwrap(), 6);
    assert!(ca.compare_and_swap("n", Some(&json("6")), Some(json("7"))).unwrap());
    assert_eq!(ca.update("n", |n: Option<i64>| n.map(|n| n + 1)).unwrap(), Some(8));
    for cache in [&ca, &cb] {
        assert_eq!(cache.get("n").unwrap(), Some(json("8")));
        assert!(cache.ttl("n").unwrap().is_some(), "increment and swap keep the TTL");
    }
    // A short TTL kept through an increment still expires, for the writer's LRU too.
    ca.set_with_ttl("m", json("1"), SECOND).unwrap();
    assert_eq!(ca.increment("m", 1).unwrap(), 2);
    eventually("the incremented entry expires", || gone(&ca, "m") && gone(&cb, "m"));
    // A set without a TTL clears it, as Redis's SET does.
    cb.set("n", json("1")).unwrap();
    for cache in [&ca, &cb] {
        assert_eq!(cache.ttl("n").unwrap(), None);
        assert_eq!(cache.get("n").unwrap(), Some(json("1")));
    }
    // And a set with one replaces a TTL with its own.
    ca.set_with_ttl("n", json("2"), SHORT).unwrap();
    eventually("the entry set again with a short TTL expires", || gone(&cb, "n"));
}

#[test]
fn expire_sets_changes_and_removes_a_ttl_of_an_entry_that_is_there() {
    let (_dir, a, b) = two_managers();
    let (ca, cb) = (a.create_cache("c").unwrap(), b.create_cache("c").unwrap());
    assert!(!ca.expire("absent", Some(HOUR)).unwrap());
    assert!(!ca.contains("absent").unwrap(), "expire creates nothing");
    ca.set("k", json("1")).unwrap();
    assert_eq!(cb.ttl("k").unwrap(), None);
    assert!(ca.expire("k", Some(HOUR)).unwrap());
    assert!(cb.ttl("k").unwrap().is_some(), "the other process sees the new TTL");
    assert!(cb.expire("k", None).unwrap());
    assert_eq!(ca.ttl("k").unwrap(), None, "and its removal");
    assert!(cb.expire("k", Some(SHORT)).unwrap());
    eventually("the entry expires", || gone(&ca, "k") && gone(&cb, "k"));
    assert!(!ca.expire("k", None).unwrap(), "an expired entry cannot be brought back");
    assert!(!ca.contains("k").unwrap());
}

#[test]
fn a_ttl_of_zero_or_past_the_longest_is_refused_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let manager = CacheManager::open(dir.path().join("t.db")).unwrap();
    let cache = manager.create_cache("c").unwrap();
    for ttl in [Duration::ZERO, MAX_TTL + Duration::from_millis(1), Duration::MAX] {
        let error = cache.set_with_ttl("k", json("1"), ttl).unwrap_err();
        assert!(matches!(error, Error::InvalidArgument(_)), "{error:?}");
        assert!(error.to_string().contains("TTL"), "{error}");
        cache.set("other", json("1")).unwrap();
        assert!(matches!(cache.expire("other", Some(ttl)), Err(Error::InvalidArgument(_))));
    }
    assert!(!cache.contains("k").unwrap());
    assert_eq!(cache.ttl("other").unwrap(), None, "a refused expire changed nothing");
    // The longest is taken, and so is less than a millisecond (rounded up to one).
    cache.set_with_ttl("longest", json("1"), MAX_TTL).unwrap();
    assert!(cache.ttl("longest").unwrap().is_some());
    cache.set_with_ttl("shortest", json("1"), Duration::from_micros(1)).unwrap();
    eventually("a 1 µs TTL expires", || gone(&cache, "shortest"));
}

#[test]
fn a_batch_set_with_a_ttl_expires_whole_for_every_process_and_a_bad_ttl_stores_none_of_it() {
    let (_dir, a, b) = two_managers();
    let (ca, cb) = (a.create_cache("c").unwrap(), b.create_cache("c").unwrap());
    ca.set("kept", json("0")).unwrap();
    ca.set_many_with_ttl([("s1".to_owned(), json("1")), ("s2".to_owned(), json("2"))], SECOND).unwrap();
    ca.set_many_with_ttl([("h1".to_owned(), json("3"))], HOUR).unwrap();
    for key in ["s1", "s2", "h1"] {
        assert!(cb.ttl(key).unwrap().is_some(), "the other process sees {key}'s TTL");
    }
    eventually("the batch is gone in both processes", || {
        ["s1", "s2"].iter().all(|key| gone(&ca, key) && gone(&cb, key))
    });
    assert_eq!(keys(&cb), ["h1", "kept"]);

    let refused =
        ca.set_many_with_ttl([("z1".to_owned(), json("1")), ("kept".to_owned(), json("9"))], Duration::ZERO);
    assert!(matches!(refused, Err(Error::InvalidArgument(_))), "{refused:?}");
    assert!(!cb.contains("z1").unwrap());
    assert_eq!(cb.get("kept").unwrap(), Some(json("0")), "nothing of a refused batch is stored");
    assert_eq!(cb.ttl("kept").unwrap(), None);
}

#[test]
fn the_sweep_reclaims_expired_rows_in_bounded_batches_with_counts_and_log_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sweep.db");
    let manager = CacheManager::builder(&path).durability(Durability::Normal).open().unwrap();
    let other = CacheManager::open(&path).unwrap();
    let cache = manager.create_cache("c").unwrap();
    let elsewhere = other.create_cache("c").unwrap();
    // More than one sweep's worth (256 rows), and entries that stay. A TTL long enough for the
    // last of them to be read by the other process first, however slow the machine.
    for i in 0..600 {
        cache.set_with_ttl(&format!("e{i:03}"), json("1"), Duration::from_secs(1)).unwrap();
    }
    cache.set("stays", json("2")).unwrap();
    cache.set_with_ttl("long", json("3"), HOUR).unwrap();
    assert_eq!(elsewhere.get("e599").unwrap(), Some(json("1")), "in the other process's LRU");
    eventually("the entries expire", || cache.len().unwrap() == 2);
    // Writes of another cache sweep every cache (some of the rows may have been swept already,
    // by the writes that came after them: the sweep's bounds are tested on the store below).
    let writer = manager.create_cache("writer").unwrap();
    let mut writes = 0;
    eventually("the expired rows are swept", || {
        writer.set("w", json(&writes.to_string())).unwrap();
        writes += 1;
        rows(&path) == 3
    });
    // Counts kept as a delete keeps them, read raw as well as through len.
    let raw = |name: &str| manager.list_caches().unwrap().into_iter().find(|c| c.name == name).unwrap();
    assert_eq!((raw("c").entries, raw("c").bytes), (2, ("stays".len() + 1 + "long".len() + 1) as u64));
    let conn = rusqlite::Connection::open(&path).unwrap();
    let counted: (i64, i64) = conn
        .query_row("SELECT entry_count, byte_count FROM caches WHERE name = 'c'", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .unwrap();
    assert_eq!(counted, (2, 11), "the row's counts, with nothing left to subtract");
    // The other process learnt of the sweep from the change log, and reads what is there.
    assert_eq!(elsewhere.get("e599").unwrap(), None);
    assert_eq!(keys(&elsewhere), ["long", "stays"]);
}

/// On the store, where what each transaction does is seen: a store opened anew looks for
/// expired rows at its first write, and each transaction removes at most 256 of them, with the
/// cache's counts and the change log kept as a delete keeps them.
#[test]
fn a_sweep_removes_at_most_256_expired_rows_per_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bounded.db");
    let open = || SqliteStore::open(&path, Durability::Normal, Duration::from_secs(10)).unwrap();
    let apply = |store: &SqliteStore, write: Write| {
        let applied = store.apply(&mut std::slice::from_ref(&write).iter());
        store.sync(applied.sync).unwrap();
        applied.results.into_iter().next().expect("one result").unwrap()
    };
    let create = |store: &SqliteStore, name: &str| match apply(
        store,
        Write::CreateCache { name: name.into(), quota: Quota::UNLIMITED },
    ) {
        Outcome::Created { id, .. } => Target { id: CacheId(id), name: name.into() },
        other => panic!("{other:?}"),
    };
    let set = |cache: &Target<CacheId>, entries: Vec<(String, Json)>, expires_at| Write::Set {
        cache: cache.clone(),
        entries,
        expires_at,
        quota: Quota::UNLIMITED,
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    let first = open();
    let cache = create(&first, "c");
    let writer = create(&first, "writer");
    // 600 rows expired an hour ago, in one write (the store takes any expiry), and two that
    // stay. This store looked for expired rows at its first write (there were none), and
    // looks again no sooner than a second or 16 writes later.
    let expired: Vec<(String, Json)> = (0..600).map(|i| (format!("e{i:03}"), json("1"))).collect();
    apply(&first, set(&cache, expired, Some(now - 3_600_000)));
    apply(&first, set(&cache, vec![("stays".into(), json("2"))], None));
    apply(&first, set(&cache, vec![("long".into(), json("3"))], Some(now + 3_600_000)));
    assert_eq!(rows(&path), 602);
    assert_eq!(first.cache_stats(cache.id).unwrap().map(|stats| stats.entries), Some(2));
    let cursor = first.change_cursor().unwrap();

    let second = open();
    let mut left = Vec::new();
    for i in 0..4 {
        apply(&second, set(&writer, vec![("w".into(), json(&i.to_string()))], None));
        left.push(rows(&path) - 1);
    }
    assert_eq!(left, [602 - 256, 602 - 512, 2, 2], "256 a transaction, until none are left");
    let raw: (i64, i64) = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT entry_count, byte_count FROM caches WHERE name = 'c'", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .unwrap();
    assert_eq!(raw, (2, 11), "the counts went down by what was swept");
    let Changes::Since { changes, .. } = first.changes_since(cursor).unwrap() else {
        panic!("the change log overflowed")
    };
    let swept = changes.iter().filter(|change| matches!(change, Change::Key(id, _) if *id == cache.id));
    assert_eq!(swept.count(), 600, "each key swept is logged for other processes' LRUs");
}

#[test]
fn entries_that_expired_hold_no_room_under_a_quota() {
    let dir = tempfile::tempdir().unwrap();
    let manager = CacheManager::open(dir.path().join("quota.db")).unwrap();
    let quota = Quota { max_entries: Some(3), ..Quota::UNLIMITED };
    let cache = manager.create_cache_within("c", &quota).unwrap();
    for key in ["a", "b", "c"] {
        cache.set_with_ttl(key, json("1"), SECOND).unwrap();
    }
    assert!(matches!(cache.set("d", json("1")), Err(Error::QuotaExceeded(_))), "full while they live");
    eventually("the entries expire", || cache.is_empty().unwrap());
    // The write that would go over sweeps the cache's expired entries first.
    for key in ["d", "e", "f"] {
        cache.set(key, json("1")).unwrap();
    }
    assert_eq!(cache.len().unwrap(), 3);
    assert!(matches!(cache.set("g", json("1")), Err(Error::QuotaExceeded(_))), "live entries count");
    assert_eq!(keys(&cache), ["d", "e", "f"]);
    // Clear answers the entries that were there, not those that had expired.
    cache.set_with_ttl("d", json("1"), SHORT).unwrap();
    eventually("d expires", || cache.len().unwrap() == 2);
    assert_eq!(cache.clear().unwrap(), 2);
}

/// The schema of version 2, the last before expiry, as it shipped (`MIGRATIONS[0..2]`).
const SCHEMA_2: &str = "
    CREATE TABLE caches (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        name        TEXT NOT NULL UNIQUE,
        entry_count INTEGER NOT NULL DEFAULT 0,
        byte_count  INTEGER NOT NULL DEFAULT 0,
        created_at  INTEGER NOT NULL DEFAULT (unixepoch())
    );
    CREATE TABLE entries (
        id       INTEGER PRIMARY KEY,
        cache_id INTEGER NOT NULL,
        key      TEXT NOT NULL,
        value    TEXT NOT NULL,
        UNIQUE (cache_id, key)
    );
    CREATE TABLE queues (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        name       TEXT NOT NULL UNIQUE,
        item_count INTEGER NOT NULL DEFAULT 0,
        byte_count INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL DEFAULT (unixepoch())
    );
    CREATE TABLE queue_items (
        id       INTEGER PRIMARY KEY,
        queue_id INTEGER NOT NULL,
        value    TEXT NOT NULL
    );
    CREATE INDEX queue_items_by_queue ON queue_items (queue_id);
    CREATE TABLE change_log (
        seq      INTEGER PRIMARY KEY,
        writer   INTEGER NOT NULL,
        cache_id INTEGER NOT NULL,
        kind     INTEGER NOT NULL,
        key      TEXT
    );
    CREATE TABLE handoffs (
        slot   INTEGER PRIMARY KEY,
        writer INTEGER NOT NULL,
        seq    INTEGER NOT NULL,
        count  INTEGER NOT NULL
    );
    PRAGMA application_id = 1700885369; -- 0x65617379, easy
    PRAGMA user_version = 2;";

#[test]
fn a_database_of_the_schema_before_expiry_is_migrated_in_place_with_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(SCHEMA_2).unwrap();
        conn.execute_batch(
            "INSERT INTO caches (id, name, entry_count, byte_count) VALUES (1, 'old', 2, 6);
             INSERT INTO entries (cache_id, key, value) VALUES (1, 'a', '1'), (1, 'b', '\"x\"');
             INSERT INTO queues (id, name, item_count, byte_count) VALUES (1, 'jobs', 2, 2);
             INSERT INTO queue_items (queue_id, value) VALUES (1, '1'), (1, '2');",
        )
        .unwrap();
    }
    let manager = CacheManager::open(&path).unwrap();
    let cache = manager.open_cache("old").unwrap();
    assert_eq!(cache.get("a").unwrap(), Some(json("1")));
    assert_eq!(cache.get("b").unwrap(), Some(json(r#""x""#)));
    assert_eq!((cache.len().unwrap(), cache.size_bytes().unwrap()), (2, 6));
    assert_eq!(cache.ttl("a").unwrap(), None, "entries from before expiry never expire");
    cache.set_with_ttl("a", json("2"), SHORT).unwrap();
    eventually("an entry given a TTL after the migration expires", || gone(&cache, "a"));
    assert_eq!(keys(&cache), ["b"]);
    // Items from before leases wait, and are leased and acknowledged as any other.
    let jobs = manager.open_queue("jobs").unwrap();
    let leased = jobs.lease(Duration::from_secs(60)).unwrap().expect("an item from before");
    assert_eq!((leased.value, leased.deliveries), (json("1"), 1));
    assert_eq!(jobs.get().unwrap(), Some(json("2")));
    assert!(jobs.ack(&leased.receipt).unwrap());
    assert_eq!(jobs.len().unwrap(), 0);
    drop((cache, jobs, manager));
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0)).unwrap();
    assert_eq!(version, 5);
}

#[test]
fn a_database_of_a_schema_newer_than_this_build_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    drop(CacheManager::open(&path).unwrap());
    rusqlite::Connection::open(&path).unwrap().execute_batch("PRAGMA user_version = 6;").unwrap();
    assert!(matches!(CacheManager::open(&path), Err(Error::SchemaTooNew { found: 6, supported: 5, .. })));
}
