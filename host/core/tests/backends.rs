//! One set of behavioural tests, run against every backend: SQLite, and PostgreSQL when the
//! `postgres` feature is on and `EASYCACHING_TEST_POSTGRES` names a server
//! (`postgres://postgres@127.0.0.1:54329/postgres`; see the README). Each test is written once,
//! as a function of a [`Db`], and `backend_tests!` runs it on each, so the two cannot drift.
//! Every Postgres test works in a schema of its own, dropped at its end, so they run in
//! parallel on one server.

use std::time::{Duration, Instant};

use easycaching::store::{CacheId, Outcome, QueueId, SqliteStore, Store, Target, Write};
use easycaching::{CacheManager, CacheManagerBuilder, Durability, Error, Json, ManualClock, Quota};

mod common;
use common::json;
#[path = "backends/model.rs"]
mod model;
use model::random_operations_agree_with_a_model;

/// The environment variable naming the PostgreSQL server of the tests.
#[cfg(feature = "postgres")]
const POSTGRES_ENV: &str = "EASYCACHING_TEST_POSTGRES";

/// A fresh database of one backend.
enum Db {
    Sqlite(tempfile::TempDir),
    #[cfg(feature = "postgres")]
    Postgres {
        url: String,
        schema: String,
    },
}

impl Db {
    fn sqlite() -> Db {
        Db::Sqlite(tempfile::tempdir().unwrap())
    }

    /// A new schema on the test server, or `None` (with a note) when there is none.
    #[cfg(feature = "postgres")]
    fn postgres(test: &str) -> Option<Db> {
        let Ok(url) = std::env::var(POSTGRES_ENV) else {
            eprintln!("note: skipping {test} on PostgreSQL: set {POSTGRES_ENV} to a server's URL to run it");
            return None;
        };
        let schema = format!("t_{}_{}", std::process::id(), fastrand_suffix());
        Some(Db::Postgres { url, schema })
    }

    /// A manager on this database; call again for another "process" on the same database.
    fn open(&self) -> CacheManager {
        self.builder().open().unwrap()
    }

    /// A builder of a manager on this database, to open one with options of its own.
    fn builder(&self) -> CacheManagerBuilder {
        match self {
            Db::Sqlite(dir) => CacheManager::builder(dir.path().join("test.db")),
            #[cfg(feature = "postgres")]
            Db::Postgres { url, schema } => CacheManager::builder_postgres(url).postgres_schema(schema),
        }
    }

    fn is_postgres(&self) -> bool {
        !matches!(self, Db::Sqlite(_))
    }

    /// The raw store of this database.
    fn store(&self) -> Box<dyn Store> {
        match self {
            Db::Sqlite(dir) => Box::new(
                SqliteStore::open(&dir.path().join("test.db"), Durability::Full, Duration::from_secs(10))
                    .unwrap(),
            ),
            #[cfg(feature = "postgres")]
            Db::Postgres { url, schema } => Box::new(
                easycaching::store::PostgresStore::open_in_schema(url, schema, Duration::from_secs(10))
                    .unwrap(),
            ),
        }
    }
}

#[cfg(feature = "postgres")]
fn fastrand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{nanos}_{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

#[cfg(feature = "postgres")]
impl Drop for Db {
    fn drop(&mut self) {
        if let Db::Postgres { url, schema } = self
            && let Ok(mut client) = ::postgres::Client::connect(url, ::postgres::NoTls)
        {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"));
        }
    }
}

/// Runs each test on SQLite and on PostgreSQL.
macro_rules! backend_tests {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $test() { super::$test(&super::Db::sqlite()); })*
        }
        #[cfg(feature = "postgres")]
        mod postgres {
            $(#[test] fn $test() {
                if let Some(db) = super::Db::postgres(stringify!($test)) { super::$test(&db); }
            })*
        }
    };
}

backend_tests!(
    values_come_back_byte_for_byte_and_keys_are_counted,
    entries_and_keys_page_in_byte_order,
    increment_counts_and_refuses_what_is_not_an_integer,
    compare_and_swap_matches_json_values,
    entries_with_a_ttl_expire,
    quotas_refuse_growth_past_them,
    queues_are_fifo_and_give_back_goes_first,
    handles_to_deleted_caches_and_queues_fail,
    two_managers_see_each_others_writes,
    a_reopened_database_keeps_its_data,
    a_failing_write_leaves_the_rest_of_its_batch,
    async_code_calls_the_manager_directly,
    keys_up_to_the_limit_work_whatever_their_length,
    each_write_keeps_the_counts_and_tells_other_managers,
    a_queue_get_stops_after_a_page_of_bytes,
    a_key_with_a_nul_character,
    a_set_of_many_entries_counts_each_key_once,
    disk_usage_tells_the_free_pages_a_clear_leaves_in_the_file,
    a_write_that_finds_its_cache_deleted_elsewhere_forgets_it,
    random_operations_agree_with_a_model,
    leased_items_come_back_unless_acknowledged,
    leases_hand_out_batches,
    a_manual_clock_tells_expiry_and_leases,
    a_prefix_lists_and_deletes_only_its_own_keys,
    a_waiting_taker_gets_what_comes_in_time,
);

/// Polls `check` until it holds, for at most 10 s.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within 10 s");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn values_come_back_byte_for_byte_and_keys_are_counted(db: &Db) {
    let manager = db.open();
    let cache = manager.create_cache("basics").unwrap();
    let text = r#"{"b": 1,   "a" : [1.0, "é\u00e9"]}"#;
    cache.set("doc", json(text)).unwrap();
    cache.set("n", json("2")).unwrap();
    assert_eq!(cache.get("doc").unwrap().unwrap().as_str(), text);
    assert_eq!(
        cache.get_many(&["n", "missing", "doc"]).unwrap(),
        vec![Some(json("2")), None, Some(json(text))]
    );
    assert!(cache.contains("n").unwrap());
    assert!(!cache.contains("missing").unwrap());
    assert_eq!(cache.len().unwrap(), 2);
    assert_eq!(cache.size_bytes().unwrap(), ("doc".len() + text.len() + "n".len() + 1) as u64);
    cache.set("n", json("30")).unwrap();
    assert_eq!(cache.size_bytes().unwrap(), ("doc".len() + text.len() + "n".len() + 2) as u64);
    assert!(cache.delete("n").unwrap());
    assert!(!cache.delete("n").unwrap());
    assert_eq!(cache.len().unwrap(), 1);
    assert_eq!(cache.clear().unwrap(), 1);
    assert_eq!(cache.len().unwrap(), 0);
    assert_eq!(cache.get("doc").unwrap(), None);
    let listed = manager.list_caches().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].name.as_str(), listed[0].entries), ("basics", 0));
    // A long key (a URL, say): 2 KB fits the index of either backend.
    let long = format!("https://example.com/{}", "x".repeat(2000));
    cache.set(&long, json("1")).unwrap();
    assert_eq!(cache.get(&long).unwrap(), Some(json("1")));
    assert!(cache.delete(&long).unwrap());
    assert!(manager.delete_cache("basics").unwrap());
    assert!(matches!(manager.open_cache("basics"), Err(Error::NoSuchCache(_))));
}

fn entries_and_keys_page_in_byte_order(db: &Db) {
    let manager = db.open();
    let cache = manager.create_cache("paged").unwrap();
    let mut keys: Vec<String> = (0..25).map(|i| format!("k{i:02}")).collect();
    keys.extend(["B".to_owned(), "a".to_owned(), "Z".to_owned(), "é".to_owned()]);
    for (i, key) in keys.iter().enumerate() {
        cache.set(key, json(&i.to_string())).unwrap();
    }
    keys.sort(); // byte order, as SQLite compares text
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = cache.entries(cursor.as_deref(), 10).unwrap();
        assert!(page.items.len() <= 10);
        seen.extend(page.items.into_iter().map(|(key, _)| key));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, keys);
    let first = cache.keys(None, 3).unwrap();
    assert_eq!(first.items, keys[..3].to_vec());
    assert_eq!(first.next.as_deref(), Some(keys[2].as_str()));
    let all: Vec<String> = cache.iter().map(|entry| entry.unwrap().0).collect();
    assert_eq!(all, keys);
}

fn increment_counts_and_refuses_what_is_not_an_integer(db: &Db) {
    let manager = db.open();
    let cache = manager.create_cache("counters").unwrap();
    assert_eq!(cache.increment("hits", 1).unwrap(), 1);
    assert_eq!(cache.increment("hits", 41).unwrap(), 42);
    assert_eq!(cache.increment("hits", -2).unwrap(), 40);
    assert_eq!(cache.get("hits").unwrap(), Some(json("40")));
    cache.set("text", json(r#""x""#)).unwrap();
    assert!(matches!(cache.increment("text", 1), Err(Error::WrongType { .. })));
    cache.set("big", json(&i64::MAX.to_string())).unwrap();
    assert!(matches!(cache.increment("big", 1), Err(Error::WrongType { .. })));
    cache.set("zero", json("-0")).unwrap();
    assert_eq!(cache.increment("zero", 5).unwrap(), 5);
    // Many threads counting on one key lose no count.
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let cache = cache.clone();
            std::thread::spawn(move || {
                (0..25).for_each(|_| {
                    cache.increment("shared", 1).unwrap();
                })
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    assert_eq!(cache.get("shared").unwrap(), Some(json("100")));
}

fn compare_and_swap_matches_json_values(db: &Db) {
    let manager = db.open();
    let cache = manager.create_cache("cas").unwrap();
    assert!(cache.compare_and_swap("k", None, Some(json(r#"{"a":1,"b":2}"#))).unwrap());
    assert!(!cache.compare_and_swap("k", None, Some(json("0"))).unwrap());
    assert!(cache.compare_and_swap("k", Some(&json(r#"{ "b": 2.0, "a": 1 }"#)), Some(json("3"))).unwrap());
    assert_eq!(cache.get("k").unwrap(), Some(json("3")));
    assert!(!cache.compare_and_swap("k", Some(&json("4")), None).unwrap());
    assert!(cache.compare_and_swap("k", Some(&json("3")), None).unwrap());
    assert_eq!(cache.get("k").unwrap(), None);
    assert_eq!(cache.len().unwrap(), 0);
}

fn entries_with_a_ttl_expire(db: &Db) {
    let manager = db.open();
    let cache = manager.create_cache("ttl").unwrap();
    cache.set_with_ttl("short", json("1"), Duration::from_millis(300)).unwrap();
    cache.set_with_ttl("long", json("2"), Duration::from_secs(3600)).unwrap();
    cache.set("forever", json("3")).unwrap();
    let left = cache.ttl("long").unwrap().unwrap();
    assert!(left > Duration::from_secs(3590) && left <= Duration::from_secs(3600), "{left:?}");
    assert_eq!(cache.ttl("forever").unwrap(), None);
    assert!(cache.expire("forever", Some(Duration::from_secs(60))).unwrap());
    assert!(cache.ttl("forever").unwrap().is_some());
    assert!(cache.expire("forever", None).unwrap());
    assert_eq!(cache.ttl("forever").unwrap(), None);
    assert!(!cache.expire("missing", None).unwrap());
    eventually("the short entry expires", || cache.get("short").unwrap().is_none());
    assert!(!cache.contains("short").unwrap());
    assert_eq!(cache.len().unwrap(), 2, "an expired entry is not counted");
    let keys = cache.keys(None, 10).unwrap().items;
    assert_eq!(keys, ["forever", "long"]);
    // An expired counter counts as absent, and a delete of it answers that nothing was there.
    assert!(!manager.open_cache("ttl").unwrap().delete("short").unwrap());
    cache.set_with_ttl("c", json("10"), Duration::from_millis(100)).unwrap();
    eventually("the counter expires", || !cache.contains("c").unwrap());
    assert_eq!(cache.increment("c", 1).unwrap(), 1);
    assert_eq!(cache.ttl("c").unwrap(), None);
}

fn quotas_refuse_growth_past_them(db: &Db) {
    let manager = db.open();
    let quota = Quota { max_entries: Some(2), max_bytes: None, shared_by_prefix: None };
    let cache = manager.create_cache("small").unwrap().with_quota(quota);
    cache.set("a", json("1")).unwrap();
    cache.set("b", json("2")).unwrap();
    assert!(matches!(cache.set("c", json("3")), Err(Error::QuotaExceeded(_))));
    cache.set("a", json("11")).unwrap();
    assert_eq!(cache.len().unwrap(), 2);
    assert_eq!(cache.get("c").unwrap(), None);
    // A shared quota counts every cache of the prefix, names included.
    let shared = Quota { max_entries: None, max_bytes: Some(40), shared_by_prefix: Some("t.".into()) };
    let one = manager.create_cache_within("t.one", &shared).unwrap();
    let two = manager.create_cache_within("t.two", &shared).unwrap();
    one.set("k", json(r#""0123456789""#)).unwrap();
    assert!(matches!(two.set("k", json(r#""0123456789abcdef""#)), Err(Error::QuotaExceeded(_))));
    two.set("k", json("1")).unwrap();
    // Queues too.
    let queue =
        manager.create_queue("q").unwrap().with_quota(Quota { max_entries: Some(1), ..Quota::default() });
    queue.put(json("1")).unwrap();
    assert!(matches!(queue.put(json("2")), Err(Error::QuotaExceeded(_))));
    assert_eq!(queue.len().unwrap(), 1);
}

fn queues_are_fifo_and_give_back_goes_first(db: &Db) {
    let manager = db.open();
    let queue = manager.create_queue("jobs").unwrap();
    assert_eq!(queue.get().unwrap(), None);
    queue.put_many((1..=5).map(|i| json(&i.to_string()))).unwrap();
    assert_eq!(queue.len().unwrap(), 5);
    assert_eq!(queue.peek().unwrap(), Some(json("1")));
    assert_eq!(queue.get().unwrap(), Some(json("1")));
    assert_eq!(queue.get_many(2).unwrap(), vec![json("2"), json("3")]);
    queue.give_back(vec![json("2"), json("3")]).unwrap();
    queue.give_back(vec![json("0")]).unwrap();
    let waiting: Vec<Json> = queue.items().map(|item| item.unwrap()).collect();
    assert_eq!(waiting, ["0", "2", "3", "4", "5"].map(json));
    assert_eq!(queue.len().unwrap(), 5);
    queue.put(json("6")).unwrap();
    assert_eq!(queue.get_many(10).unwrap(), ["0", "2", "3", "4", "5", "6"].map(json));
    assert!(queue.is_empty().unwrap());
    queue.put(json("7")).unwrap();
    assert_eq!(queue.clear().unwrap(), 1);
    assert_eq!(queue.size_bytes().unwrap(), 0);
    let listed = manager.list_queues().unwrap();
    assert_eq!((listed[0].name.as_str(), listed[0].entries), ("jobs", 0));
}

/// A leased item stays in its queue, hidden from every taker of every manager, until it is
/// acknowledged (gone), released (handed out again in its place, one delivery more) or its
/// lease ends; a receipt names one lease of one item, and no later lease or other item.
fn leased_items_come_back_unless_acknowledged(db: &Db) {
    const LONG: Duration = Duration::from_secs(3600);
    let manager = db.open();
    let other = db.open();
    let queue = manager.create_queue("jobs").unwrap();
    let theirs = other.open_queue("jobs").unwrap();
    let items = |queue: &easycaching::Queue| queue.items().map(|item| item.unwrap()).collect::<Vec<_>>();
    assert_eq!(queue.lease(LONG).unwrap(), None);
    queue.put_many(["1", "2", "3", "4"].map(json)).unwrap();

    let first = queue.lease(LONG).unwrap().expect("an item waits");
    assert_eq!((&first.value, first.deliveries), (&json("1"), 1));
    assert!(first.lease_ends > std::time::SystemTime::now() + LONG - Duration::from_secs(60));
    assert_eq!(theirs.peek().unwrap(), Some(json("2")), "hidden from the other manager");
    let second = theirs.lease(LONG).unwrap().expect("an item waits");
    assert_eq!(second.value, json("2"));
    assert_eq!((queue.len().unwrap(), queue.size_bytes().unwrap()), (4, 4), "leased items are held");
    assert_eq!(items(&queue), ["1", "2", "3", "4"].map(json));
    // `get` passes over the leased items, and removes only what it hands out.
    assert_eq!(queue.get_many(10).unwrap(), ["3", "4"].map(json));
    assert_eq!(items(&theirs), ["1", "2"].map(json));
    assert_eq!((queue.get().unwrap(), queue.peek().unwrap()), (None, None));

    assert!(queue.ack(&second.receipt).unwrap(), "any handle acknowledges");
    assert!(!theirs.ack(&second.receipt).unwrap(), "acknowledged once");
    assert_eq!((queue.len().unwrap(), queue.size_bytes().unwrap()), (1, 1));
    let elsewhere = manager.create_queue("elsewhere").unwrap();
    elsewhere.put(json("1")).unwrap();
    assert!(!elsewhere.ack(&first.receipt).unwrap(), "a receipt names an item of its own queue");
    assert_eq!(elsewhere.len().unwrap(), 1);

    // Released: it waits again, ahead of items put after it, and the old receipt is spent.
    queue.put(json("5")).unwrap();
    assert!(theirs.release(&first.receipt).unwrap());
    assert!(!queue.release(&first.receipt).unwrap());
    assert!(!queue.ack(&first.receipt).unwrap());
    let again = theirs.lease(LONG).unwrap().expect("the released item");
    assert_eq!((&again.value, again.deliveries), (&json("1"), 2));
    assert_ne!(again.receipt, first.receipt);

    // A lease that ends: the item waits again, and the ended lease's receipt no longer
    // acknowledges once another taker has it...
    // (Whether it is hidden meanwhile is not asked here: on a slow disk the lease's fsync alone
    // can outlast 50 ms. The leases above are long for that.)
    let short = queue.lease(Duration::from_millis(50)).unwrap().expect("item 5");
    assert_eq!(short.value, json("5"));
    eventually("the item of an ended lease waits again", || queue.peek().unwrap() == Some(json("5")));
    let retaken = theirs.lease(LONG).unwrap().expect("item 5 again");
    assert_eq!((&retaken.value, retaken.deliveries), (&json("5"), 2));
    assert!(!queue.ack(&short.receipt).unwrap());
    assert!(theirs.release(&retaken.receipt).unwrap());
    // ...but does while nobody has taken it over; `get` takes one whose lease ended.
    let short = queue.lease(Duration::from_millis(50)).unwrap().expect("item 5");
    eventually("the item of an ended lease waits again", || queue.peek().unwrap() == Some(json("5")));
    assert!(queue.ack(&short.receipt).unwrap());
    queue.put(json("6")).unwrap();
    let short = queue.lease(Duration::from_millis(50)).unwrap().expect("item 6");
    eventually("the item of an ended lease waits again", || queue.peek().unwrap() == Some(json("6")));
    assert_eq!(queue.get().unwrap(), Some(json("6")));
    assert!(!queue.ack(&short.receipt).unwrap());
    assert_eq!(items(&queue), [json("1")]);

    // Extended before it ends, a lease outlasts its first end, under the same receipt.
    queue.put(json("9")).unwrap();
    let long_job = queue.lease(Duration::from_millis(100)).unwrap().expect("item 9");
    assert!(theirs.extend(&long_job.receipt, LONG).unwrap());
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(queue.peek().unwrap(), None, "an extended lease ended at its first end");
    assert!(queue.ack(&long_job.receipt).unwrap());
    assert!(!queue.extend(&long_job.receipt, LONG).unwrap(), "nothing to extend once acknowledged");
    assert!(matches!(queue.extend(&again.receipt, Duration::ZERO), Err(Error::InvalidArgument(_))));

    // A receipt names one lease, and no lease of a later item the store puts in the same place
    // (SQLite numbers a new item after the largest left, which was the acknowledged one).
    queue.put(json("7")).unwrap();
    let acked = queue.lease(LONG).unwrap().expect("item 7");
    assert!(queue.ack(&acked.receipt).unwrap());
    queue.put(json("8")).unwrap();
    let later = queue.lease(LONG).unwrap().expect("item 8");
    let place =
        |leased: &easycaching::Leased| leased.receipt.to_string().split('.').next().unwrap().to_owned();
    if !db.is_postgres() {
        assert_eq!(place(&later), place(&acked), "the later item is in the same place");
    }
    assert!(!queue.ack(&acked.receipt).unwrap(), "an old receipt acknowledged a later item");
    assert!(!queue.release(&acked.receipt).unwrap());
    assert!(queue.ack(&later.receipt).unwrap());

    for refused in [Duration::ZERO, easycaching::MAX_TTL + Duration::from_millis(1)] {
        assert!(matches!(queue.lease(refused), Err(Error::InvalidArgument(_))), "{refused:?}");
    }
    assert_eq!(queue.clear().unwrap(), 1, "a clear removes leased items");
    assert!(!theirs.ack(&again.receipt).unwrap());
    assert_eq!((queue.len().unwrap(), queue.size_bytes().unwrap()), (0, 0));
    assert!(manager.delete_queue("jobs").unwrap());
    assert!(matches!(queue.lease(LONG), Err(Error::QueueDeleted(_))));
    assert!(matches!(theirs.ack(&again.receipt), Err(Error::QueueDeleted(_))));
    assert!(matches!(theirs.release(&again.receipt), Err(Error::QueueDeleted(_))));
    assert!(matches!(theirs.extend(&again.receipt, LONG), Err(Error::QueueDeleted(_))));
}

/// Queue `jobs`, created through a manager on `clock`, and opened through another manager on
/// it (another "process": a manager of its own, which rings no bell of the first's): the
/// first manager, and the two handles.
fn jobs_of_two_managers(
    db: &Db,
    clock: &ManualClock,
) -> (CacheManager, easycaching::Queue, easycaching::Queue) {
    let manager = db.builder().clock(clock).open().unwrap();
    let other = db.builder().clock(clock).open().unwrap();
    let queue = manager.create_queue("jobs").unwrap();
    let theirs = other.open_queue("jobs").unwrap();
    (manager, queue, theirs)
}

fn leases_hand_out_batches(db: &Db) {
    const LONG: Duration = Duration::from_secs(3600);
    let clock = ManualClock::new();
    let (manager, queue, theirs) = jobs_of_two_managers(db, &clock);
    let handed = |leased: &[easycaching::Leased]| -> Vec<(Json, u64)> {
        leased.iter().map(|item| (item.value.clone(), item.deliveries)).collect()
    };
    assert_eq!(queue.lease_many(LONG, 5).unwrap(), []);
    queue.put_many(["1", "2", "3", "4", "5"].map(json)).unwrap();

    // A batch passes over an item leased alone, and stops at `max`.
    let alone = queue.lease(LONG).unwrap().expect("item 1");
    let batch = theirs.lease_many(LONG, 3).unwrap();
    assert_eq!(handed(&batch), [(json("2"), 1), (json("3"), 1), (json("4"), 1)]);
    assert!(batch.iter().all(|item| item.lease_ends == batch[0].lease_ends));
    let receipts: std::collections::HashSet<String> =
        batch.iter().map(|item| item.receipt.to_string()).collect();
    assert_eq!(receipts.len(), 3, "a receipt for each item");
    assert_eq!((queue.peek().unwrap(), queue.len().unwrap()), (Some(json("5")), 5));
    // Each item of the batch is acknowledged or released alone.
    assert!(queue.ack(&batch[1].receipt).unwrap());
    assert!(queue.release(&batch[0].receipt).unwrap());
    assert_eq!(queue.len().unwrap(), 4);

    // `max` 0 leases nothing; a bad lease is refused all the same.
    assert_eq!(queue.lease_many(LONG, 0).unwrap(), []);
    assert!(matches!(queue.lease_many(Duration::ZERO, 0), Err(Error::InvalidArgument(_))));
    assert!(matches!(queue.lease_many_wait(Duration::ZERO, 1, LONG), Err(Error::InvalidArgument(_))));
    // What waits, in order: the released item (its second delivery) and the last.
    let rest = queue.lease_many(LONG, 10).unwrap();
    assert_eq!(handed(&rest), [(json("2"), 2), (json("5"), 1)]);
    assert_eq!(queue.lease_many(LONG, 10).unwrap(), []);
    // Every lease ends: all come back in their places, and the old receipts are spent.
    clock.advance(LONG);
    let again = theirs.lease_many(LONG, 10).unwrap();
    assert_eq!(handed(&again), [(json("1"), 2), (json("2"), 3), (json("4"), 2), (json("5"), 2)]);
    assert!(!queue.ack(&alone.receipt).unwrap());
    assert!(!queue.ack(&batch[2].receipt).unwrap());
    assert!(again.iter().all(|item| queue.ack(&item.receipt).unwrap()));
    assert_eq!(queue.len().unwrap(), 0);

    // Waiting: nothing comes, then another manager's items, all of them.
    let started = Instant::now();
    assert_eq!(queue.lease_many_wait(LONG, 10, Duration::from_millis(50)).unwrap(), []);
    assert!(started.elapsed() >= Duration::from_millis(50), "gave up early");
    std::thread::scope(|scope| {
        let waiting = scope.spawn(|| queue.lease_many_wait(LONG, 10, Duration::from_secs(60)));
        std::thread::sleep(Duration::from_millis(30));
        theirs.put_many(["6", "7"].map(json)).unwrap();
        assert_eq!(handed(&waiting.join().unwrap().unwrap()), [(json("6"), 1), (json("7"), 1)]);
    });
    assert!(manager.delete_queue("jobs").unwrap());
    assert!(matches!(queue.lease_many(LONG, 1), Err(Error::QueueDeleted(_))));
}

fn a_manual_clock_tells_expiry_and_leases(db: &Db) {
    const HOUR: Duration = Duration::from_secs(3600);
    let clock = ManualClock::new();
    let manager = db.builder().clock(&clock).open().unwrap();
    // Another manager on the database, on the system's clock, without an LRU: it reads the store.
    let system = db.builder().lru_capacity(0).open().unwrap();
    let cache = manager.create_cache("sessions").unwrap();
    cache.set_with_ttl("ada", json("1"), HOUR).unwrap();
    cache.set("forever", json("2")).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(cache.ttl("ada").unwrap(), Some(HOUR), "the clock stands still");

    clock.advance(HOUR - Duration::from_millis(1));
    assert_eq!(cache.ttl("ada").unwrap(), Some(Duration::from_millis(1)));
    assert_eq!(cache.get("ada").unwrap(), Some(json("1")));
    clock.advance(Duration::from_millis(1));
    assert_eq!(cache.get("ada").unwrap(), None, "expired in the LRU");
    assert!(!cache.contains("ada").unwrap(), "expired in the store");
    assert_eq!(cache.ttl("ada").unwrap(), None);
    assert_eq!(cache.len().unwrap(), 1);
    assert_eq!(cache.keys(None, 10).unwrap().items, ["forever"]);
    let fresh = db.builder().clock(&clock).lru_capacity(0).open().unwrap();
    assert_eq!(
        fresh.open_cache("sessions").unwrap().get("ada").unwrap(),
        None,
        "expired, read from the store"
    );
    // The manager on the system's clock has an hour to go (no write has swept the entry yet).
    assert_eq!(system.open_cache("sessions").unwrap().get("ada").unwrap(), Some(json("1")));

    let queue = manager.create_queue("jobs").unwrap();
    queue.put(json("\"job\"")).unwrap();
    let leased = queue.lease(Duration::from_secs(30)).unwrap().expect("the job waits");
    assert_eq!(leased.lease_ends, clock.now() + Duration::from_secs(30));
    clock.advance(Duration::from_millis(29_999));
    assert_eq!(queue.lease(Duration::from_secs(30)).unwrap(), None, "leased until the clock says so");
    assert_eq!(queue.peek().unwrap(), None);
    assert!(queue.extend(&leased.receipt, Duration::from_secs(30)).unwrap());
    clock.advance(Duration::from_secs(30));
    assert_eq!(queue.peek().unwrap(), Some(json("\"job\"")), "the extended lease ended");
    let again = queue.lease(Duration::from_secs(30)).unwrap().expect("handed out again");
    assert_eq!((again.value, again.deliveries), (json("\"job\""), 2));
    assert!(!queue.ack(&leased.receipt).unwrap(), "the first lease ended");
    assert!(queue.ack(&again.receipt).unwrap());
    assert_eq!(queue.len().unwrap(), 0);
}

fn a_waiting_taker_gets_what_comes_in_time(db: &Db) {
    const LONG: Duration = Duration::from_secs(60);
    /// How long a producer lets the waiters begin waiting.
    const LATER: Duration = Duration::from_millis(30);
    let clock = ManualClock::new();
    let (manager, queue, theirs) = jobs_of_two_managers(db, &clock);

    // Nothing comes: `None` once the timeout has passed, and not before.
    let started = Instant::now();
    assert_eq!(queue.get_wait(Duration::from_millis(50)).unwrap(), None);
    assert!(started.elapsed() >= Duration::from_millis(50), "gave up early");
    assert_eq!(queue.get_wait(Duration::ZERO).unwrap(), None);
    assert_eq!(queue.lease_wait(LONG, Duration::ZERO).unwrap(), None);
    assert!(matches!(queue.lease_wait(Duration::ZERO, LONG), Err(Error::InvalidArgument(_))), "at once");
    let started = Instant::now();
    assert_eq!(queue.get_many_wait(10, Duration::from_millis(50)).unwrap(), []);
    assert!(started.elapsed() >= Duration::from_millis(50), "gave up early");
    // What waits already is taken at once, up to `max`; a `max` of 0 takes nothing and does
    // not wait.
    queue.put_many([json("0"), json("0.1"), json("0.2")]).unwrap();
    let started = Instant::now();
    assert_eq!(queue.get_many_wait(0, LONG).unwrap(), []);
    assert_eq!(queue.get_many_wait(2, LONG).unwrap(), [json("0"), json("0.1")]);
    assert_eq!(queue.get_many_wait(2, LONG).unwrap(), [json("0.2")]);
    assert!(started.elapsed() < LONG / 2, "waited with items there");

    // An item put while it waits, by this manager or another, by `put` or `give_back`.
    std::thread::scope(|scope| {
        let waiting = scope.spawn(|| queue.get_wait(LONG));
        std::thread::sleep(LATER);
        queue.put(json("1")).unwrap();
        assert_eq!(waiting.join().unwrap().unwrap(), Some(json("1")));

        let waiting = scope.spawn(|| queue.get_wait(LONG));
        std::thread::sleep(LATER);
        theirs.put(json("2")).unwrap();
        assert_eq!(waiting.join().unwrap().unwrap(), Some(json("2")));

        let waiting = scope.spawn(|| theirs.lease_wait(LONG, LONG));
        std::thread::sleep(LATER);
        queue.give_back(vec![json("3")]).unwrap();
        let leased = waiting.join().unwrap().unwrap().expect("the item given back");
        assert_eq!((&leased.value, leased.deliveries), (&json("3"), 1));

        // Released by its holder, or its lease ended: handed out again to a waiter.
        let waiting = scope.spawn(|| queue.lease_wait(LONG, LONG));
        std::thread::sleep(LATER);
        assert!(theirs.release(&leased.receipt).unwrap());
        let again = waiting.join().unwrap().unwrap().expect("the released item");
        assert_eq!((&again.value, again.deliveries), (&json("3"), 2));
        let waiting = scope.spawn(|| theirs.get_wait(LONG));
        std::thread::sleep(LATER);
        clock.advance(LONG);
        assert_eq!(waiting.join().unwrap().unwrap(), Some(json("3")), "the item of the ended lease");
        assert!(!queue.ack(&again.receipt).unwrap());

        // Waiting for a batch: what another manager puts while it waits, all of it.
        let waiting = scope.spawn(|| queue.get_many_wait(10, LONG));
        std::thread::sleep(LATER);
        theirs.put_many([json("5"), json("6")]).unwrap();
        assert_eq!(waiting.join().unwrap().unwrap(), [json("5"), json("6")]);

        // Two waiting, one item: one of them gets it, the other nothing, once its time is up.
        let first = scope.spawn(|| queue.get_wait(Duration::from_millis(500)));
        let second = scope.spawn(|| theirs.get_wait(Duration::from_millis(500)));
        std::thread::sleep(LATER);
        queue.put(json("4")).unwrap();
        let got = [first, second].map(|waiting| waiting.join().unwrap().unwrap());
        assert!(got.contains(&Some(json("4"))) && got.contains(&None), "{got:?}");

        // A queue deleted while one waits on it: the wait fails as any use of the handle does.
        let waiting = scope.spawn(|| theirs.get_wait(LONG));
        std::thread::sleep(LATER);
        assert!(manager.delete_queue("jobs").unwrap());
        assert!(matches!(waiting.join().unwrap(), Err(Error::QueueDeleted(_))));
    });
}

fn a_prefix_lists_and_deletes_only_its_own_keys(db: &Db) {
    let clock = ManualClock::new();
    let manager = db.builder().clock(&clock).open().unwrap();
    let other = db.builder().clock(&clock).open().unwrap();
    let cache = manager.create_cache("users").unwrap();
    // Groups whose prefixes are prefixes of each other's keys, and keys past the 512
    // characters PostgreSQL's index holds of a key.
    let long = "x".repeat(600);
    let mut keys: Vec<String> = Vec::new();
    for user in ["1", "10", "2"] {
        keys.extend((0..300).map(|n| format!("user:{user}:{n:03}")));
    }
    keys.extend([format!("{long}:a"), format!("{long}:b"), format!("{long};"), long.clone()]);
    keys.extend(["\u{10FFFF}".to_owned(), "\u{10FFFF}\u{10FFFF}a".to_owned(), "\u{10FFFF}b".to_owned()]);
    cache.set_many(keys.iter().map(|key| (key.clone(), json("1")))).unwrap();
    let all_keys = |prefix: &str, page: usize| {
        let (mut listed, mut cursor) = (Vec::new(), None::<String>);
        loop {
            let got = cache.keys_with_prefix(prefix, cursor.as_deref(), page).unwrap();
            assert!(got.items.len() <= page);
            listed.extend(got.items);
            match got.next {
                Some(next) => cursor = Some(next),
                None => return listed,
            }
        }
    };
    let expected = |prefix: &str| {
        let mut expected: Vec<String> = keys.iter().filter(|key| key.starts_with(prefix)).cloned().collect();
        expected.sort();
        expected
    };
    for prefix in [
        "user:1:",
        "user:1",
        "user:",
        "user:2:29",
        &format!("{long}:"),
        &long,
        "\u{10FFFF}",
        "\u{10FFFF}\u{10FFFF}",
        "nobody",
    ] {
        assert_eq!(all_keys(prefix, 7), expected(prefix), "keys with prefix {prefix:?}");
    }
    let page = cache.entries_with_prefix("user:10:", None, 1000).unwrap();
    assert_eq!(page.items.len(), 300);
    assert_eq!(page.items[0], ("user:10:000".to_owned(), json("1")));
    assert_eq!(page.next, None);
    // A cursor of another group starts the page at the prefix, or ends it.
    assert_eq!(
        cache.keys_with_prefix("user:2:", Some("user:1:5"), 2).unwrap().items,
        ["user:2:000", "user:2:001"]
    );
    assert!(cache.keys_with_prefix("user:10:", Some("user:2:"), 2).unwrap().items.is_empty());

    // Another manager has user 1 and two of user 2's in its LRU. Told of a delete of a few
    // keys, it forgets those alone.
    let seen = other.open_cache("users").unwrap();
    for key in ["user:1:000", "user:2:000", "user:2:290"] {
        assert_eq!(seen.get(key).unwrap(), Some(json("1")));
    }
    assert_eq!(seen.cached_len(), 3);
    assert_eq!(cache.delete_with_prefix("user:2:29").unwrap(), 10);
    // At once on SQLite; once the notification arrives on PostgreSQL.
    eventually("the other manager forgets user:2:29*", || seen.get("user:2:290").unwrap().is_none());
    assert_eq!(seen.cached_len(), 2, "it keeps the values of other keys");

    // One of user 1's entries expires.
    cache.set_with_ttl("user:1:299", json("2"), Duration::from_secs(1)).unwrap();
    clock.advance(Duration::from_secs(1));
    let (len, bytes) = (cache.len().unwrap(), cache.size_bytes().unwrap());
    assert_eq!(cache.delete_with_prefix("user:1:").unwrap(), 299, "the expired entry was not there");
    assert_eq!(all_keys("user:1", 50), expected("user:10:"));
    assert_eq!(cache.get("user:1:000").unwrap(), None);
    eventually("the other manager forgets user 1", || seen.get("user:1:000").unwrap().is_none());
    assert_eq!(seen.cached_len(), 0, "told of more keys than are logged one by one, it forgets the cache");
    assert_eq!(seen.get("user:10:000").unwrap(), Some(json("1")));
    let user_bytes: u64 = (0..299).map(|n| format!("user:1:{n:03}").len() as u64 + 1).sum();
    assert_eq!(cache.len().unwrap(), len - 299);
    assert_eq!(cache.size_bytes().unwrap(), bytes - user_bytes);
    assert_eq!(cache.delete_with_prefix(&format!("{long}:")).unwrap(), 2);
    assert_eq!(cache.delete_with_prefix("\u{10FFFF}\u{10FFFF}").unwrap(), 1);
    assert_eq!(all_keys("\u{10FFFF}", 2), ["\u{10FFFF}", "\u{10FFFF}b"]);
    assert_eq!(cache.delete_with_prefix("nobody").unwrap(), 0);
    assert_eq!(all_keys(&long, 2), [long.clone(), format!("{long};")]);
    assert_eq!(cache.len().unwrap(), 590 + 2 + 2);
    // An empty prefix is the whole cache.
    assert_eq!(cache.delete_with_prefix("").unwrap(), 594);
    assert_eq!(cache.len().unwrap(), 0);
    manager.delete_cache("users").unwrap();
    assert!(matches!(cache.delete_with_prefix("user:"), Err(Error::CacheDeleted(_))));
}

fn handles_to_deleted_caches_and_queues_fail(db: &Db) {
    let manager = db.open();
    let cache = manager.create_cache("gone").unwrap();
    cache.set("k", json("1")).unwrap();
    assert!(manager.delete_cache("gone").unwrap());
    assert!(matches!(cache.set("k", json("2")), Err(Error::CacheDeleted(_))));
    let again = manager.create_cache("gone").unwrap();
    assert_eq!(again.get("k").unwrap(), None);
    let queue = manager.create_queue("gone").unwrap();
    assert!(manager.delete_queue("gone").unwrap());
    assert!(matches!(queue.put(json("1")), Err(Error::QueueDeleted(_))));
    assert!(matches!(queue.peek(), Err(Error::QueueDeleted(_))));
    assert!(!manager.delete_queue("gone").unwrap());
}

/// A write through a handle to a cache that another manager deleted fails at once, in every
/// backend (the database checks), and from then on this manager knows the cache is gone: its
/// handles fail, and opening the cache again finds none, or the one made since. On PostgreSQL
/// this is how a manager learns of the delete before the notification of it arrives: its
/// commit takes in the changes committed before it.
fn a_write_that_finds_its_cache_deleted_elsewhere_forgets_it(db: &Db) {
    let (a, b) = (db.open(), db.open());
    let old = b.create_cache("again").unwrap();
    old.set("old", json("1")).unwrap();
    assert!(a.delete_cache("again").unwrap());
    assert!(matches!(old.set("old", json("2")), Err(Error::CacheDeleted(_))));
    assert!(matches!(old.get("old"), Err(Error::CacheDeleted(_))));
    assert!(matches!(b.open_cache("again"), Err(Error::NoSuchCache(_))));
    a.create_cache("again").unwrap().set("new", json("3")).unwrap();
    assert!(matches!(old.delete("old"), Err(Error::CacheDeleted(_))));
    let again = b.create_cache("again").unwrap();
    assert_eq!(again.get("new").unwrap(), Some(json("3")));
    again.set("from b", json("4")).unwrap();
    assert_eq!(a.open_cache("again").unwrap().len().unwrap(), 2);
}

fn two_managers_see_each_others_writes(db: &Db) {
    let (a, b) = (db.open(), db.open());
    let in_a = a.create_cache("shared").unwrap();
    let in_b = b.open_cache("shared").unwrap();
    in_a.set("k", json("1")).unwrap();
    assert_eq!(in_b.get("k").unwrap(), Some(json("1")));
    for round in 2..20 {
        in_a.set("k", json(&round.to_string())).unwrap();
        eventually("b sees a's write over its cached value", || {
            in_b.get("k").unwrap() == Some(json(&round.to_string()))
        });
    }
    in_b.set("other", json(r#""b""#)).unwrap();
    eventually("a sees b's write", || in_a.get("other").unwrap() == Some(json(r#""b""#)));
    in_a.clear().unwrap();
    eventually("b sees the clear", || {
        in_b.get("k").unwrap().is_none() && in_b.get("other").unwrap().is_none()
    });
    assert!(a.delete_cache("shared").unwrap());
    eventually("b sees the cache deleted", || matches!(in_b.get("k"), Err(Error::CacheDeleted(_))));
    let queue = a.create_queue("q").unwrap();
    queue.put(json("1")).unwrap();
    assert_eq!(b.open_queue("q").unwrap().get().unwrap(), Some(json("1")));
    assert!(queue.is_empty().unwrap());
}

/// Sets of new keys and of values of other sizes, deletes of several keys (some absent, one
/// expired), and what another manager sees of them: counts, sizes and LRUs stay exact.
fn each_write_keeps_the_counts_and_tells_other_managers(db: &Db) {
    let (a, b) = (db.open(), db.open());
    let in_a = a.create_cache("counted").unwrap();
    let in_b = b.open_cache("counted").unwrap();
    in_a.set_many(entries(&[("k1", "1"), ("k2", "22"), ("k3", "333")])).unwrap();
    in_a.set("k2", json("2")).unwrap();
    in_a.set_with_ttl("gone", json("4444"), Duration::from_millis(100)).unwrap();
    assert_eq!(in_a.len().unwrap(), 4);
    assert_eq!(in_a.size_bytes().unwrap(), (3 * 2 + 1 + 1 + 3 + 4 + 4) as u64);
    for key in ["k1", "k2", "k3"] {
        assert!(in_b.get(key).unwrap().is_some(), "b reads {key} into its LRU");
    }
    eventually("the entry with a TTL expires", || in_a.get("gone").unwrap().is_none());
    // Two live keys, one expired, one never set: two were there.
    assert_eq!(in_a.delete_many(&["k1", "gone", "k3", "never"]).unwrap(), 2);
    assert_eq!(in_a.len().unwrap(), 1);
    assert_eq!(in_a.size_bytes().unwrap(), 3, "only k2 and its value are left");
    eventually("b sees the deletes", || {
        in_b.get("k1").unwrap().is_none() && in_b.get("k3").unwrap().is_none()
    });
    assert_eq!(in_b.get("k2").unwrap(), Some(json("2")));
    assert_eq!(in_b.delete_many(&["nothing", "here"]).unwrap(), 0);
    // A cache over its quota refuses the whole set of several keys.
    let small =
        a.open_cache("counted").unwrap().with_quota(Quota { max_entries: Some(2), ..Quota::default() });
    assert!(matches!(small.set_many(entries(&[("n1", "1"), ("n2", "2")])), Err(Error::QuotaExceeded(_))));
    assert_eq!((in_a.len().unwrap(), in_a.get("n1").unwrap()), (1, None));
    assert!(a.delete_cache("counted").unwrap());
    assert!(matches!(in_a.delete("k2"), Err(Error::CacheDeleted(_))));
    assert!(matches!(in_a.set_many(entries(&[("k", "1")])), Err(Error::CacheDeleted(_))));
}

/// A `set_many` of as many entries as one call takes (1,000: more than one statement of the
/// PostgreSQL store takes), with a key given three times and one already stored: each key is
/// counted once, at its last value, and another manager reads exactly that.
fn a_set_of_many_entries_counts_each_key_once(db: &Db) {
    let manager = db.open();
    let cache = manager.create_cache("many").unwrap();
    cache.set("old", json("1")).unwrap();
    let mut batch: Vec<(String, Json)> =
        (0..994).map(|i| (format!("k{i:04}"), json(&i.to_string()))).collect();
    batch.insert(0, ("dup".into(), json(r#""first""#)));
    batch.insert(700, ("dup".into(), json(r#""second""#)));
    batch.push(("dup".into(), json("3")));
    batch.push(("old".into(), json("12345")));
    batch.push(("twice".into(), json("1")));
    batch.push(("twice".into(), json("22")));
    cache.set_many(batch.clone()).unwrap();
    let last: std::collections::BTreeMap<String, Json> = batch.into_iter().collect();
    assert_eq!(cache.len().unwrap(), last.len() as u64);
    let bytes: usize = last.iter().map(|(key, value)| key.len() + value.len()).sum();
    assert_eq!(cache.size_bytes().unwrap(), bytes as u64);
    let seen = db.open().open_cache("many").unwrap();
    for key in ["dup", "old", "twice", "k0000", "k0499", "k0993"] {
        assert_eq!(seen.get(key).unwrap().as_ref(), last.get(key), "{key}");
    }
    let stored: Vec<(String, Json)> = seen.iter().map(Result::unwrap).collect();
    assert_eq!(stored, last.into_iter().collect::<Vec<_>>(), "every key once, at its last value");
}

/// A clear frees pages without shrinking the file, and later writes take them again before
/// the file grows. PostgreSQL has no file of ours to tell of.
fn disk_usage_tells_the_free_pages_a_clear_leaves_in_the_file(db: &Db) {
    let manager = db.open();
    if db.is_postgres() {
        assert_eq!(manager.disk_usage().unwrap(), None);
        return;
    }
    let cache = manager.create_cache("bulky").unwrap();
    let value = Json::from_value(&"x".repeat(2000)).unwrap();
    let fill = || cache.set_many((0..1000).map(|i| (format!("key{i:05}"), value.clone()))).unwrap();
    fill();
    let full = manager.disk_usage().unwrap().expect("a file");
    assert!(full.file_bytes > 2000 * 1000, "{full:?}");
    assert!(full.free_bytes < full.file_bytes / 10, "{full:?}");
    cache.clear().unwrap();
    let cleared = manager.disk_usage().unwrap().expect("a file");
    assert_eq!(cleared.file_bytes, full.file_bytes, "a clear does not shrink the file");
    assert!(cleared.free_bytes > 2000 * 1000, "{cleared:?}");
    // Another manager (another process) sees the same file.
    assert_eq!(db.open().disk_usage().unwrap(), Some(cleared));
    fill();
    let refilled = manager.disk_usage().unwrap().expect("a file");
    assert!(refilled.file_bytes <= full.file_bytes + full.file_bytes / 10, "{refilled:?} after {full:?}");
    assert!(refilled.free_bytes < full.file_bytes / 10, "{refilled:?}");
}

fn entries(pairs: &[(&str, &str)]) -> Vec<(String, Json)> {
    pairs.iter().map(|(key, value)| (key.to_string(), json(value))).collect()
}

/// A `get_many` takes items until they hold a page of bytes, the item that crosses it
/// included, counts them out, and fails on a queue deleted.
fn a_queue_get_stops_after_a_page_of_bytes(db: &Db) {
    let manager = db.open();
    let queue = manager.create_queue("big").unwrap();
    let big = |i: usize| Json::from_value(&format!("{i}{}", "x".repeat((1 << 20) - 3))).unwrap();
    queue.put_many((0..6).map(big)).unwrap();
    queue.put(json("6")).unwrap();
    assert_eq!(queue.size_bytes().unwrap(), 6 * (1 << 20) + 1);
    // A lease of many stops at the same place; released, its items wait again in place.
    let leased = queue.lease_many(Duration::from_secs(3600), 1000).unwrap();
    assert_eq!(
        leased.iter().map(|item| item.value.clone()).collect::<Vec<_>>(),
        (0..4).map(big).collect::<Vec<_>>()
    );
    assert!(leased.iter().all(|item| queue.release(&item.receipt).unwrap()));
    let taken = queue.get_many(1000).unwrap();
    assert_eq!(taken, (0..4).map(big).collect::<Vec<_>>());
    assert!(taken.iter().map(Json::len).sum::<usize>() >= easycaching::MAX_PAGE_BYTES);
    assert_eq!((queue.len().unwrap(), queue.size_bytes().unwrap()), (3, 2 * (1 << 20) + 1));
    assert_eq!(queue.get_many(1).unwrap(), vec![big(4)]);
    assert_eq!(queue.get_many(1000).unwrap(), vec![big(5), json("6")]);
    assert_eq!(queue.get().unwrap(), None);
    assert_eq!((queue.len().unwrap(), queue.size_bytes().unwrap()), (0, 0));
    assert!(manager.delete_queue("big").unwrap());
    assert!(matches!(queue.get(), Err(Error::QueueDeleted(_))));
}

/// SQLite stores a key holding NUL as any other. PostgreSQL's text cannot hold one: a write
/// that would store one is refused, naming the key, and to every other call it is absent.
fn a_key_with_a_nul_character(db: &Db) {
    let manager = db.open();
    let cache = manager.create_cache("nul").unwrap();
    cache.set_many(entries(&[("a", "1"), ("b", "2")])).unwrap();
    let key = "a\0b";
    if db.is_postgres() {
        let error = cache.set(key, json("3")).unwrap_err();
        assert!(matches!(error, Error::InvalidArgument(_)), "{error:?}");
        assert!(error.to_string().contains(r#""a\0b" holds a NUL character"#), "{error}");
        assert!(matches!(cache.increment(key, 1), Err(Error::InvalidArgument(_))));
        assert!(matches!(cache.compare_and_swap(key, None, Some(json("1"))), Err(Error::InvalidArgument(_))));
        let mixed = cache.set_many(entries(&[("c", "3"), (key, "3")])).unwrap_err();
        assert!(matches!(mixed, Error::InvalidArgument(_)), "{mixed:?}");
        assert_eq!(cache.get("c").unwrap(), None, "nothing of a refused set is stored");
        assert_eq!(cache.get(key).unwrap(), None);
        assert!(!cache.contains(key).unwrap());
        assert!(!cache.expire(key, None).unwrap());
        assert!(!cache.delete(key).unwrap());
    } else {
        cache.set(key, json("3")).unwrap();
        assert_eq!(cache.get(key).unwrap(), Some(json("3")));
        assert!(cache.delete(key).unwrap());
    }
    // Either way a NUL key is absent now, among others that are not.
    assert_eq!(cache.get_many(&["a", key, "b"]).unwrap(), vec![Some(json("1")), None, Some(json("2"))]);
    assert_eq!(cache.delete_many(&[key, "a"]).unwrap(), 1);
    assert_eq!(cache.len().unwrap(), 1);
    // The keys after one holding NUL are those after its text up to the NUL, but that text.
    cache.set("a", json("1")).unwrap();
    assert_eq!(cache.keys(Some(key), 10).unwrap().items, ["b"]);
    assert_eq!(cache.keys(Some("\0"), 10).unwrap().items, ["a", "b"]);
}

fn a_reopened_database_keeps_its_data(db: &Db) {
    {
        let manager = db.open();
        manager.create_cache("kept").unwrap().set("k", json(r#"{"v": 1}"#)).unwrap();
        manager.create_queue("kept").unwrap().put(json("1")).unwrap();
    }
    let manager = db.open();
    assert_eq!(manager.open_cache("kept").unwrap().get("k").unwrap(), Some(json(r#"{"v": 1}"#)));
    assert_eq!(manager.open_queue("kept").unwrap().get().unwrap(), Some(json("1")));
}

fn a_failing_write_leaves_the_rest_of_its_batch(db: &Db) {
    let store = db.store();
    let batch = |writes: Vec<Write>| {
        let applied = store.apply(&mut writes.iter());
        store.sync(applied.sync).unwrap();
        applied.results
    };
    let created = batch(vec![Write::CreateCache { name: "c".into(), quota: Quota::UNLIMITED }]);
    let Ok(Outcome::Created { id, created: true }) = created[0] else { panic!("{created:?}") };
    let cache = Target { id: CacheId(id), name: "c".into() };
    let gone = Target { id: CacheId(id + 1000), name: "gone".into() };
    let set = |target: &Target<CacheId>, key: &str| Write::Set {
        cache: target.clone(),
        entries: vec![(key.into(), json("1"))],
        expires_at: None,
        quota: Quota::UNLIMITED,
    };
    let results = batch(vec![
        set(&cache, "first"),
        set(&gone, "lost"),
        Write::Take { queue: Target { id: QueueId(999), name: "q".into() }, max: 1 },
        set(&cache, "last"),
    ]);
    assert!(matches!(results[0], Ok(Outcome::Done)), "{results:?}");
    assert!(matches!(results[1], Err(Error::CacheDeleted(_))), "{results:?}");
    assert!(matches!(results[2], Err(Error::QueueDeleted(_))), "{results:?}");
    assert!(matches!(results[3], Ok(Outcome::Done)), "{results:?}");
    assert!(store.get(CacheId(id), "first").unwrap().is_some());
    assert!(store.get(CacheId(id), "last").unwrap().is_some());
    assert_eq!(store.cache_stats(CacheId(id)).unwrap().unwrap().entries, 2);

    // Writes whose outcome depends on what they find, before and after one that fails: each
    // is done once, and answers what the committed data says (a backend may undo the writes
    // before a failure and apply them again).
    let queue_made =
        batch(vec![Write::CreateQueue { name: "q".into(), quota: Quota::UNLIMITED }, set(&cache, "n")]);
    let Ok(Outcome::Created { id: queue_id, .. }) = queue_made[0] else { panic!("{queue_made:?}") };
    let queue = Target { id: QueueId(queue_id), name: "q".into() };
    let put = batch(vec![Write::Put {
        queue: queue.clone(),
        values: vec![json("1"), json("2"), json("3")],
        quota: Quota::UNLIMITED,
    }]);
    assert!(put[0].is_ok(), "{put:?}");
    let increment = |by| Write::Increment {
        cache: cache.clone(),
        key: "n".into(),
        by,
        max_value_bytes: 1024,
        quota: Quota::UNLIMITED,
    };
    let take = || Write::Take { queue: queue.clone(), max: 1 };
    let results = batch(vec![
        Write::CreateCache { name: "made".into(), quota: Quota::UNLIMITED },
        increment(4),
        take(),
        set(&gone, "lost"),
        take(),
        increment(1),
        Write::Take { queue: Target { id: QueueId(999), name: "gone".into() }, max: 1 },
    ]);
    let made = store.find_cache("made").unwrap().expect("the cache made in the batch exists");
    assert!(
        matches!(results[0], Ok(Outcome::Created { id, created: true }) if id == made.0),
        "the id answered is the one stored: {made:?}, {results:?}"
    );
    assert!(matches!(results[1], Ok(Outcome::Integer(5))), "{results:?}");
    assert_eq!(results[2].as_ref().ok(), Some(&Outcome::Values(vec![json("1")])), "{results:?}");
    assert!(matches!(results[3], Err(Error::CacheDeleted(_))), "{results:?}");
    assert_eq!(results[4].as_ref().ok(), Some(&Outcome::Values(vec![json("2")])), "{results:?}");
    assert!(matches!(results[5], Ok(Outcome::Integer(6))), "{results:?}");
    assert!(matches!(results[6], Err(Error::QueueDeleted(_))), "{results:?}");
    assert_eq!(store.get(CacheId(id), "n").unwrap().map(|stored| stored.value), Some(json("6")));
    assert_eq!(store.queue_stats(queue.id).unwrap().unwrap().entries, 1);
    assert_eq!(store.peek(&queue).unwrap(), Some(json("3")));

    // The same around a write too large for a backend to keep a copy of (100 KiB of values).
    let large = Write::Set {
        cache: cache.clone(),
        entries: (0..100)
            .map(|i| (format!("large{i}"), Json::parse(format!("\"{}\"", "x".repeat(1024))).unwrap()))
            .collect(),
        expires_at: None,
        quota: Quota::UNLIMITED,
    };
    let results = batch(vec![increment(10), large, set(&gone, "lost"), take(), increment(1)]);
    assert!(matches!(results[0], Ok(Outcome::Integer(16))), "{results:?}");
    assert!(matches!(results[1], Ok(Outcome::Done)), "{results:?}");
    assert!(matches!(results[2], Err(Error::CacheDeleted(_))), "{results:?}");
    assert_eq!(results[3].as_ref().ok(), Some(&Outcome::Values(vec![json("3")])), "{results:?}");
    assert!(matches!(results[4], Ok(Outcome::Integer(17))), "{results:?}");
    assert_eq!(store.get(CacheId(id), "n").unwrap().map(|stored| stored.value), Some(json("17")));
    assert_eq!(store.cache_stats(CacheId(id)).unwrap().unwrap().entries, 103);

    // Sets of one cache from several writers, as a batch gathers them (a backend may apply them
    // in one statement): each answered for itself, a key set twice holds its last value, and a
    // set that fails (a key PostgreSQL cannot hold, a deleted cache) fails alone.
    let set_to = |target: &Target<CacheId>, key: &str, value: &str| Write::Set {
        cache: target.clone(),
        entries: vec![(key.into(), json(value))],
        expires_at: None,
        quota: Quota::UNLIMITED,
    };
    let results = batch(vec![
        set_to(&cache, "s1", "1"),
        set_to(&cache, "s2", "2"),
        set_to(&cache, "s1", "3"),
        set_to(&cache, "nul\0key", "4"),
        set_to(&cache, "s3", "5"),
        set_to(&gone, "g1", "6"),
        set_to(&gone, "g2", "7"),
        set_to(&cache, "s4", "8"),
    ]);
    for ok in [0, 1, 2, 4, 7] {
        assert!(matches!(results[ok], Ok(Outcome::Done)), "{ok}: {results:?}");
    }
    match db.is_postgres() {
        true => assert!(matches!(results[3], Err(Error::InvalidArgument(_))), "{results:?}"),
        false => assert!(matches!(results[3], Ok(Outcome::Done)), "{results:?}"),
    }
    assert!(matches!(results[5], Err(Error::CacheDeleted(_))), "{results:?}");
    assert!(matches!(results[6], Err(Error::CacheDeleted(_))), "{results:?}");
    for (key, value) in [("s1", "3"), ("s2", "2"), ("s3", "5"), ("s4", "8")] {
        assert_eq!(
            store.get(CacheId(id), key).unwrap().map(|stored| stored.value),
            Some(json(value)),
            "{key}"
        );
    }
    let stored_nul = usize::from(!db.is_postgres()) as u64;
    assert_eq!(store.cache_stats(CacheId(id)).unwrap().unwrap().entries, 107 + stored_nul);
}

/// What async code does: opens a manager, reads and writes and drops it straight from its
/// tasks (no `spawn_blocking`), on a current-thread runtime (as `#[tokio::test]` runs) and on
/// a multi-threaded one's workers. A second manager's reads miss its LRU and reach the store.
fn async_code_calls_the_manager_directly(db: &Db) {
    let work = |round: &str| {
        let (writer, reader) = (db.open(), db.open());
        let cache = writer.create_cache("async").unwrap();
        cache.set(round, json("1")).unwrap();
        assert_eq!(cache.increment(round, 2).unwrap(), 3);
        let seen = reader.open_cache("async").unwrap();
        assert_eq!(seen.get(round).unwrap(), Some(json("3")));
        assert!(seen.contains(round).unwrap());
        assert!(seen.len().unwrap() >= 1);
        let queue = writer.create_queue(round).unwrap();
        queue.put(json("7")).unwrap();
        assert_eq!(reader.open_queue(round).unwrap().get().unwrap(), Some(json("7")));
    };
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async { work("current-thread") });
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    std::thread::scope(|scope| {
        let work = &work;
        let tasks: Vec<_> = (0..4)
            .map(|task| {
                let handle = runtime.handle().clone();
                scope.spawn(move || handle.block_on(async { work(&format!("worker-{task}")) }))
            })
            .collect();
        for task in tasks {
            task.join().unwrap();
        }
    });
    let all = db.open().open_cache("async").unwrap().keys(None, 100).unwrap().items;
    assert_eq!(all, ["current-thread", "worker-0", "worker-1", "worker-2", "worker-3"]);
}

/// Keys as long as the default limit allows (4 KiB) are stored, found, paged in byte order and
/// removed like short ones, also when they do not compress and when two share their first
/// 3,000 bytes (PostgreSQL cannot index such keys whole: its index holds a prefix of each).
fn keys_up_to_the_limit_work_whatever_their_length(db: &Db) {
    // Letters that do not compress: a xorshift generator's, seeded.
    let noise = |mut seed: u64, len: usize| -> String {
        (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                char::from(b'a' + (seed % 26) as u8)
            })
            .collect()
    };
    let shared = noise(1, 3000);
    let (long_a, long_b) = (format!("{shared}{}", noise(2, 1096)), format!("{shared}{}", noise(3, 1096)));
    let wide = "é".repeat(2048);
    let keys = [long_a.as_str(), long_b.as_str(), wide.as_str(), "short", shared.as_str()];
    assert!(keys.iter().all(|key| key.len() <= 4096));
    let writer = db.open();
    let cache = writer.create_cache("long").unwrap();
    for (index, key) in keys.iter().enumerate() {
        cache.set(key, json(&index.to_string())).unwrap();
    }
    cache.set(&long_a, json("10")).unwrap();
    assert_eq!(cache.len().unwrap(), 5);

    // A second manager: its reads miss its LRU and reach the store.
    let reader = db.open();
    let seen = reader.open_cache("long").unwrap();
    assert_eq!(seen.get(&long_a).unwrap(), Some(json("10")));
    assert_eq!(seen.get(&long_b).unwrap(), Some(json("1")));
    assert_eq!(seen.get(&format!("{shared}x")).unwrap(), None);
    assert!(seen.contains(&wide).unwrap());
    assert_eq!(seen.get_many(&keys).unwrap(), ["10", "1", "2", "3", "4"].map(|value| Some(json(value))));
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = seen.keys(cursor.as_deref(), 2).unwrap();
        paged.extend(page.items);
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let mut sorted: Vec<String> = keys.iter().map(|key| key.to_string()).collect();
    sorted.sort();
    assert_eq!(paged, sorted);
    let after_shared = seen.entries(Some(&shared), 10).unwrap().items;
    let after: Vec<&str> = after_shared.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(
        after,
        sorted.iter().filter(|key| key.as_str() > shared.as_str()).map(String::as_str).collect::<Vec<_>>()
    );

    assert_eq!(cache.increment(&long_b, 5).unwrap(), 6);
    assert!(cache.compare_and_swap(&wide, Some(&json("2")), Some(json("20"))).unwrap());
    assert!(cache.expire(&shared, Some(Duration::from_secs(3600))).unwrap());
    assert!(cache.ttl(&shared).unwrap().is_some());
    assert!(cache.delete(&long_a).unwrap());
    assert_eq!(cache.delete_many(&[&long_a, "short"]).unwrap(), 1);
    eventually("the reader sees the writes to long keys", || {
        seen.get(&long_a).unwrap().is_none()
            && seen.get(&long_b).unwrap() == Some(json("6"))
            && seen.get(&wide).unwrap() == Some(json("20"))
    });
    assert_eq!(cache.len().unwrap(), 3);
    assert_eq!(writer.open_cache("long").unwrap().keys(None, 10).unwrap().items.len(), 3);
}

/// Schemas made by older PostgreSQL builds are turned into this version when opened, and keep
/// their data: version 1 (a primary key over whole keys, commits counted in `meta.commits`) and
/// version 2 (the key's prefix indexed, commits still counted in `meta`) and version 3 (no
/// leases on queue items). Commit numbers go on from the old count, never back, another manager
/// still sees each commit, and items put before leases can be leased.
#[cfg(feature = "postgres")]
#[test]
fn postgres_schemas_of_older_versions_are_upgraded() {
    for old_version in [1, 2, 3] {
        let name = format!("postgres_schema_of_version_{old_version}_is_upgraded");
        let Some(db) = Db::postgres(&name) else { return };
        let Db::Postgres { url, schema } = &db else { unreachable!() };
        db.open().create_cache("old").unwrap().set("kept", json("1")).unwrap();
        db.open().create_queue("jobs").unwrap().put(json("1")).unwrap();
        let mut client = ::postgres::Client::connect(url, ::postgres::NoTls).unwrap();
        let version_of = |client: &mut ::postgres::Client| -> i64 {
            client.query_one(&format!("SELECT schema_version FROM \"{schema}\".meta"), &[]).unwrap().get(0)
        };
        let whole_key_index = match old_version {
            1 => "DROP INDEX entries_by_key; ALTER TABLE entries ADD PRIMARY KEY (cache_id, key);",
            _ => "",
        };
        let counted_commits = match old_version {
            1 | 2 => {
                "DROP SEQUENCE commit_seq; ALTER TABLE meta ADD COLUMN commits bigint NOT NULL DEFAULT 0;
                      UPDATE meta SET commits = 41;"
            }
            _ => "",
        };
        client
            .batch_execute(&format!(
                "SET search_path TO \"{schema}\";
                 {whole_key_index}
                 {counted_commits}
                 ALTER TABLE queue_items DROP COLUMN lease_ends, DROP COLUMN lease_token, DROP COLUMN deliveries;
                 UPDATE meta SET schema_version = {old_version};"
            ))
            .unwrap();
        assert_eq!(version_of(&mut client), old_version);
        let manager = db.open();
        assert_eq!(version_of(&mut client), easycaching::store::postgres::SCHEMA_VERSION);
        let in_schema = |client: &mut ::postgres::Client, sql: &str| -> i64 {
            client.query_one(sql, &[schema]).unwrap().get(0)
        };
        let primary_keys = in_schema(
            &mut client,
            "SELECT count(*) FROM pg_constraint WHERE conname = 'entries_pkey'
             AND connamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1)",
        );
        assert_eq!(primary_keys, 0, "the primary key over whole keys is dropped");
        let commit_columns = in_schema(
            &mut client,
            "SELECT count(*) FROM information_schema.columns
             WHERE table_schema = $1 AND table_name = 'meta' AND column_name = 'commits'",
        );
        assert_eq!(commit_columns, 0, "meta no longer counts commits");
        let cache = manager.open_cache("old").unwrap();
        assert_eq!(cache.get("kept").unwrap(), Some(json("1")));
        let other = db.open();
        let seen = other.open_cache("old").unwrap();
        assert_eq!(seen.get("kept").unwrap(), Some(json("1")));
        let long = "k".repeat(3000) + &"é".repeat(500);
        cache.set(&long, json("2")).unwrap();
        // The other manager keeps the value in its LRU, and must hear of the next commit.
        eventually("the other manager sees the first write", || seen.get(&long).unwrap() == Some(json("2")));
        cache.set(&long, json("3")).unwrap();
        let last_commit = in_schema(
            &mut client,
            "SELECT last_value FROM pg_sequences WHERE schemaname = $1 AND sequencename = 'commit_seq'",
        );
        if old_version < 3 {
            assert_eq!(last_commit, 43, "commit numbers go on from the old count");
        }
        let jobs = manager.open_queue("jobs").unwrap();
        let leased = jobs.lease(Duration::from_secs(60)).unwrap().expect("the item from before");
        assert_eq!((&leased.value, leased.deliveries), (&json("1"), 1));
        assert!(jobs.ack(&leased.receipt).unwrap());
        assert_eq!(cache.len().unwrap(), 2);
        eventually("the other manager hears of the upgraded schema's commits", || {
            seen.get(&long).unwrap() == Some(json("3"))
        });
        assert_eq!(db.open().open_cache("old").unwrap().get(&long).unwrap(), Some(json("3")));
    }
}

/// A role granted only reads and writes on a schema that its owner made, as deployments keep
/// the application's role apart from the one that owns the tables, opens it and works: opening
/// a schema of this version changes nothing of its definition.
#[cfg(feature = "postgres")]
#[test]
fn a_role_that_does_not_own_the_tables_opens_a_schema_of_this_version() {
    let Some(db) = Db::postgres("a_role_that_does_not_own_the_tables_opens_a_schema_of_this_version") else {
        return;
    };
    let Db::Postgres { url, schema } = &db else { unreachable!() };
    db.open().create_cache("shared").unwrap().set("k", json("1")).unwrap();
    let owner = ::postgres::Client::connect(url, ::postgres::NoTls).unwrap();
    let granted =
        common::ReadWriteRole::create(owner, &format!("easycaching_app_{}", std::process::id()), schema);
    let role = &granted.name;
    let config: ::postgres::Config = url.parse().unwrap();
    let ::postgres::config::Host::Tcp(host) = &config.get_hosts()[0] else { panic!("a TCP host in {url}") };
    let as_role = format!(
        "host={host} port={} dbname={} user={role}",
        config.get_ports()[0],
        config.get_dbname().unwrap_or("postgres")
    );
    let app = CacheManager::builder_postgres(&as_role).postgres_schema(schema).open().unwrap();
    let cache = app.open_cache("shared").unwrap();
    assert_eq!(cache.get("k").unwrap(), Some(json("1")));
    cache.set("k", json("2")).unwrap();
    cache.set("new", json("3")).unwrap();
    assert!(cache.delete("new").unwrap());
    let queue = app.create_queue("jobs").unwrap();
    queue.put(json("4")).unwrap();
    assert_eq!(queue.get().unwrap(), Some(json("4")));
    assert_eq!(db.open().open_cache("shared").unwrap().get("k").unwrap(), Some(json("2")));
}

/// `url` with `application_name` set, so that the test can find (and end) the connections
/// made with it in `pg_stat_activity`.
#[cfg(feature = "postgres")]
fn with_application_name(url: &str, application: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}application_name={application}")
}

/// A dropped manager lets go of its connections, the one listening for commits included,
/// while other hosts go on writing (the listener once waited for a pause in their commits).
#[cfg(feature = "postgres")]
#[test]
fn a_dropped_postgres_manager_closes_its_connections_while_others_write() {
    let Some(db) = Db::postgres("a_dropped_postgres_manager_closes_its_connections_while_others_write")
    else {
        return;
    };
    let Db::Postgres { url, schema } = &db else { unreachable!() };
    let application = format!("easycaching-closed-{}", std::process::id());
    let named = with_application_name(url, &application);
    let writer = db.open();
    let cache = writer.create_cache("busy").unwrap();
    let writing = std::sync::atomic::AtomicBool::new(true);
    let mut admin = ::postgres::Client::connect(url, ::postgres::NoTls).unwrap();
    let mut connections = || -> i64 {
        let sql = "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1";
        admin.query_one(sql, &[&application]).unwrap().get(0)
    };
    std::thread::scope(|scope| {
        scope.spawn(|| {
            // A commit, and so a notification, every few milliseconds.
            for round in 0.. {
                if !writing.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                cache.set("k", json(&(round % 1000).to_string())).unwrap();
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        for _ in 0..3 {
            let manager = CacheManager::builder_postgres(&named).postgres_schema(schema).open().unwrap();
            assert_eq!(manager.open_cache("busy").unwrap().len().unwrap(), 1);
            assert!(connections() >= 2, "its writer's and its listener's connections, at least");
            drop(manager);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut open = connections();
        while open > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            open = connections();
        }
        writing.store(false, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(open, 0, "connections of the dropped managers still open after 10 s");
    });
}

/// A write that finds its cache deleted by another host makes this host forget the cache at
/// once, before the notification of the delete arrives (here, while its listening connection
/// is down, which it makes again after a second): its commit takes in the changes committed
/// before it, so opening the cache again finds none, then the one made since, never the
/// deleted one.
#[cfg(feature = "postgres")]
#[test]
fn a_postgres_write_that_finds_its_cache_deleted_forgets_it_before_the_notification() {
    let Some(db) =
        Db::postgres("a_postgres_write_that_finds_its_cache_deleted_forgets_it_before_the_notification")
    else {
        return;
    };
    let Db::Postgres { url, schema } = &db else { unreachable!() };
    let application = format!("easycaching-deaf-{}", std::process::id());
    let named = with_application_name(url, &application);
    let deaf = CacheManager::builder_postgres(&named).postgres_schema(schema).open().unwrap();
    let old = deaf.create_cache("again").unwrap();
    old.set("old", json("1")).unwrap();
    let other = db.open();
    let mut admin = ::postgres::Client::connect(url, ::postgres::NoTls).unwrap();
    let deafened: i64 = admin
        .query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity
             WHERE application_name = $1 AND query LIKE 'LISTEN%') AS terminated",
            &[&application],
        )
        .unwrap()
        .get(0);
    assert_eq!(deafened, 1, "the listening connection, ended");
    assert!(other.delete_cache("again").unwrap());
    assert!(matches!(old.set("old", json("2")), Err(Error::CacheDeleted(_))));
    assert!(matches!(deaf.open_cache("again"), Err(Error::NoSuchCache(_))));
    other.create_cache("again").unwrap().set("new", json("3")).unwrap();
    assert_eq!(deaf.create_cache("again").unwrap().get("new").unwrap(), Some(json("3")));
}

/// A manager whose connections the server drops (a restart, a failover, an administrator or a
/// proxy closing idle sessions) carries on: the next write and the next read each connect
/// again, and fail nothing.
#[cfg(feature = "postgres")]
#[test]
fn a_postgres_manager_carries_on_after_its_connections_are_dropped() {
    let Some(db) = Db::postgres("a_postgres_manager_carries_on_after_its_connections_are_dropped") else {
        return;
    };
    let Db::Postgres { url, schema } = &db else { unreachable!() };
    let application = format!("easycaching-dropped-{}", std::process::id());
    let named = with_application_name(url, &application);
    // No LRU: every read reaches the server, through the pool of read connections.
    let manager =
        CacheManager::builder_postgres(&named).postgres_schema(schema).lru_capacity(0).open().unwrap();
    let cache = manager.create_cache("c").unwrap();
    cache.set("k", json("1")).unwrap();
    assert_eq!(cache.get("k").unwrap(), Some(json("1")));

    let mut admin = ::postgres::Client::connect(url, ::postgres::NoTls).unwrap();
    for round in 2..5 {
        let dropped: i64 = admin
            .query_one(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity
                 WHERE application_name = $1) AS terminated",
                &[&application],
            )
            .unwrap()
            .get(0);
        assert!(dropped >= 2, "the writer's and a reader's connections, at least: {dropped}");
        cache.set("k", json(&round.to_string())).unwrap();
        assert_eq!(cache.get("k").unwrap(), Some(json(&round.to_string())));
        assert_eq!(cache.len().unwrap(), 1);
    }
}
