//! Random sequences of operations on one cache and one queue, checked step by step against a
//! plain in-memory model: a `BTreeMap` of keys to (JSON text, has a TTL) and a `VecDeque` of
//! items (JSON text, the lease an item is under, how often it was leased).
//!
//! Each operation is made through one of three managers sharing the database, as three
//! processes would share it. On SQLite they keep their LRUs as unlike as they can be: two
//! entries, values of at most 8 bytes, none; every read must still answer what the last write,
//! from whichever manager, left. Two of them checkpoint the log every few pages, so that it
//! starts over again and again under the others, and the third writes with
//! `Durability::Normal`, as a command given `--durability normal` beside a server would. On PostgreSQL another host's LRU learns of a write a moment
//! later (see the README), so there every manager reads the server, the model checks the
//! store's own rules, and a drop is waited for until every manager has heard of it. Manager 1's
//! handles are held to a quota, which the others' writes may
//! take the cache past. Now and then a manager is closed and opened again, as a restarted
//! process is, and the cache or the queue is dropped and made again, leaving handles to the
//! dropped one behind. When a sequence fails, proptest shrinks it to a short one and prints it.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use easycaching::{Cache, CacheManager, Durability, Error, Json, Page, Queue, Quota, Receipt};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use super::Db;

/// Keys: few, so that operations meet on them; one sorts after ASCII by its bytes, and the last
/// holds a NUL character, which PostgreSQL cannot store (its error says so) and so is left out
/// there.
const KEYS: &[&str] = &["a", "b", "c", "é", "long key, over eight bytes", "k\u{0}"];

/// Prefixes to list entries and keys by: none (every key), those of one key, of several, of
/// a key with a NUL, a whole key, one longer than any key, and one that no key has.
const PREFIXES: &[&str] = &[
    "",
    "",
    "a",
    "lo",
    "long key, over eight bytes",
    "long key, over eight bytes!",
    "k",
    "k\u{0}",
    "é",
    "z",
];

/// The keys `db` can store.
fn keys_of(db: &Db) -> &'static [&'static str] {
    if db.is_postgres() { &KEYS[..KEYS.len() - 1] } else { KEYS }
}

/// Values, as the JSON text stored: integers (one next to `i64::MAX`, so that increments
/// overflow), numbers that are not integers, and the same object written two ways (the same
/// value to a compare-and-swap).
const VALUES: &[&str] = &[
    "1",
    "-7",
    "9223372036854775806",
    "1.5",
    "1.0",
    "null",
    "true",
    r#""x""#,
    r#""a string longer than eight bytes""#,
    "[1,2]",
    r#"{"a":1,"b":2}"#,
    r#"{ "b": 2, "a": 1.0 }"#,
];

/// What an increment adds.
const DELTAS: &[i64] = &[1, -1, 5, 1_000_000, i64::MAX, i64::MIN];

/// A TTL that outlasts any test: entries set with it must not expire during one.
const LONG_TTL: Duration = Duration::from_secs(3600);

/// How many sequences a run tries, unless `PROPTEST_CASES` says otherwise.
const SEQUENCES: u32 = 128;

/// How many managers share the database.
const MANAGERS: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    Set {
        by: usize,
        key: &'static str,
        value: &'static str,
    },
    SetWithTtl {
        by: usize,
        key: &'static str,
        value: &'static str,
    },
    SetMany {
        by: usize,
        entries: Vec<(&'static str, &'static str)>,
    },
    Get {
        by: usize,
        key: &'static str,
    },
    GetMany {
        by: usize,
        keys: Vec<&'static str>,
    },
    Contains {
        by: usize,
        key: &'static str,
    },
    Ttl {
        by: usize,
        key: &'static str,
    },
    Expire {
        by: usize,
        key: &'static str,
        ttl: bool,
    },
    Increment {
        by: usize,
        key: &'static str,
        delta: i64,
    },
    CompareAndSwap {
        by: usize,
        key: &'static str,
        expected: Option<&'static str>,
        value: Option<&'static str>,
    },
    Delete {
        by: usize,
        key: &'static str,
    },
    DeleteMany {
        by: usize,
        keys: Vec<&'static str>,
    },
    Clear {
        by: usize,
    },
    DeletePrefix {
        by: usize,
        prefix: &'static str,
    },
    Len {
        by: usize,
    },
    Entries {
        by: usize,
        prefix: &'static str,
        page: usize,
    },
    Keys {
        by: usize,
        prefix: &'static str,
        page: usize,
    },
    Put {
        by: usize,
        value: &'static str,
    },
    PutMany {
        by: usize,
        values: Vec<&'static str>,
    },
    Take {
        by: usize,
        max: usize,
    },
    GiveBack {
        by: usize,
        values: Vec<&'static str>,
    },
    Peek {
        by: usize,
    },
    QueueLen {
        by: usize,
    },
    QueueClear {
        by: usize,
    },
    Lease {
        by: usize,
    },
    /// Acknowledges one of the receipts handed out so far (`which`, modulo how many), whether
    /// it still holds or not.
    Ack {
        by: usize,
        which: usize,
    },
    Release {
        by: usize,
        which: usize,
    },
    /// Extends one of the receipts handed out so far by another long lease.
    Extend {
        by: usize,
        which: usize,
    },
    Reopen {
        by: usize,
    },
    DropCache {
        by: usize,
    },
    CreateCache {
        by: usize,
    },
    OpenCache {
        by: usize,
    },
    DropQueue {
        by: usize,
    },
    CreateQueue {
        by: usize,
    },
    OpenQueue {
        by: usize,
    },
}

/// What an operation goes through.
enum Through {
    Cache(usize),
    Queue(usize),
    Manager,
}

impl Op {
    fn through(&self) -> Through {
        match *self {
            Op::Set { by, .. }
            | Op::SetWithTtl { by, .. }
            | Op::SetMany { by, .. }
            | Op::Get { by, .. }
            | Op::GetMany { by, .. }
            | Op::Contains { by, .. }
            | Op::Ttl { by, .. }
            | Op::Expire { by, .. }
            | Op::Increment { by, .. }
            | Op::CompareAndSwap { by, .. }
            | Op::Delete { by, .. }
            | Op::DeleteMany { by, .. }
            | Op::Clear { by }
            | Op::DeletePrefix { by, .. }
            | Op::Len { by }
            | Op::Entries { by, .. }
            | Op::Keys { by, .. } => Through::Cache(by),
            Op::Put { by, .. }
            | Op::PutMany { by, .. }
            | Op::Take { by, .. }
            | Op::GiveBack { by, .. }
            | Op::Peek { by }
            | Op::QueueLen { by }
            | Op::QueueClear { by }
            | Op::Lease { by }
            | Op::Ack { by, .. }
            | Op::Release { by, .. }
            | Op::Extend { by, .. } => Through::Queue(by),
            Op::Reopen { .. }
            | Op::DropCache { .. }
            | Op::CreateCache { .. }
            | Op::OpenCache { .. }
            | Op::DropQueue { .. }
            | Op::CreateQueue { .. }
            | Op::OpenQueue { .. } => Through::Manager,
        }
    }
}

fn op(key_set: &'static [&'static str]) -> impl Strategy<Value = Op> {
    let by = || 0..MANAGERS;
    let key = move || select(key_set);
    let value = || select(VALUES);
    let keys = move || prop::collection::vec(key(), 0..4);
    let values = move || prop::collection::vec(value(), 0..4);
    // Drops are rare, so that most operations reach a cache and a queue that exist.
    prop_oneof![
        20 => (by(), key(), value()).prop_map(|(by, key, value)| Op::Set { by, key, value }),
        5 => (by(), key(), value()).prop_map(|(by, key, value)| Op::SetWithTtl { by, key, value }),
        5 => (by(), prop::collection::vec((key(), value()), 0..4))
            .prop_map(|(by, entries)| Op::SetMany { by, entries }),
        20 => (by(), key()).prop_map(|(by, key)| Op::Get { by, key }),
        5 => (by(), keys()).prop_map(|(by, keys)| Op::GetMany { by, keys }),
        10 => (by(), key()).prop_map(|(by, key)| Op::Contains { by, key }),
        5 => (by(), key()).prop_map(|(by, key)| Op::Ttl { by, key }),
        5 => (by(), key(), any::<bool>()).prop_map(|(by, key, ttl)| Op::Expire { by, key, ttl }),
        10 => (by(), key(), select(DELTAS)).prop_map(|(by, key, delta)| Op::Increment { by, key, delta }),
        10 => (by(), key(), prop::option::of(value()), prop::option::of(value()))
            .prop_map(|(by, key, expected, value)| Op::CompareAndSwap { by, key, expected, value }),
        10 => (by(), key()).prop_map(|(by, key)| Op::Delete { by, key }),
        5 => (by(), keys()).prop_map(|(by, keys)| Op::DeleteMany { by, keys }),
        5 => by().prop_map(|by| Op::Clear { by }),
        5 => (by(), select(PREFIXES)).prop_map(|(by, prefix)| Op::DeletePrefix { by, prefix }),
        5 => by().prop_map(|by| Op::Len { by }),
        5 => (by(), select(PREFIXES), 1..4usize)
            .prop_map(|(by, prefix, page)| Op::Entries { by, prefix, page }),
        5 => (by(), select(PREFIXES), 1..4usize).prop_map(|(by, prefix, page)| Op::Keys { by, prefix, page }),
        10 => (by(), value()).prop_map(|(by, value)| Op::Put { by, value }),
        5 => (by(), values()).prop_map(|(by, values)| Op::PutMany { by, values }),
        10 => (by(), 0..4usize).prop_map(|(by, max)| Op::Take { by, max }),
        5 => (by(), values()).prop_map(|(by, values)| Op::GiveBack { by, values }),
        5 => by().prop_map(|by| Op::Peek { by }),
        5 => by().prop_map(|by| Op::QueueLen { by }),
        5 => by().prop_map(|by| Op::QueueClear { by }),
        10 => by().prop_map(|by| Op::Lease { by }),
        5 => (by(), any::<usize>()).prop_map(|(by, which)| Op::Ack { by, which }),
        5 => (by(), any::<usize>()).prop_map(|(by, which)| Op::Release { by, which }),
        3 => (by(), any::<usize>()).prop_map(|(by, which)| Op::Extend { by, which }),
        5 => by().prop_map(|by| Op::Reopen { by }),
        1 => by().prop_map(|by| Op::DropCache { by }),
        3 => by().prop_map(|by| Op::CreateCache { by }),
        3 => by().prop_map(|by| Op::OpenCache { by }),
        1 => by().prop_map(|by| Op::DropQueue { by }),
        3 => by().prop_map(|by| Op::CreateQueue { by }),
        3 => by().prop_map(|by| Op::OpenQueue { by }),
    ]
}

/// Random sequences of up to 40 operations agree with the model at every step, and, at the
/// end, every manager reads back every key, the whole cache and the whole queue as the model
/// has them. The sequences, together, meet every rule that refuses a write.
pub fn random_operations_agree_with_a_model(db: &Db) {
    let world = World {
        db,
        managers: RefCell::new((0..MANAGERS).map(|by| open(db, by)).collect()),
        seen: Seen::default(),
    };
    let sequence = AtomicUsize::new(0);
    // `PROPTEST_CASES=5000` hunts longer.
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|cases| cases.parse().ok());
    let cases = cases.unwrap_or(SEQUENCES);
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let outcome = runner.run(&prop::collection::vec(op(keys_of(db)), 1..40), |ops| {
        // Each sequence, and each of its shrunk versions, works on a cache and a queue of its own.
        let name = format!("model-{}", sequence.fetch_add(1, Ordering::Relaxed));
        Sequence::new(&world, &name).run(&ops)
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
    let seen = &world.seen;
    let met = [
        &seen.quota_refusals,
        &seen.wrong_types,
        &seen.mismatches,
        &seen.reopens,
        &seen.gone,
        &seen.stale_receipts,
        &seen.releases,
    ];
    // Each comes up many times in 128 sequences (quota refusals, the rarest, 5 to 24 times in
    // 16 runs); a run of fewer may miss one.
    if cases >= SEQUENCES {
        assert!(met.iter().all(|count| count.get() > 0), "a rule no sequence met: {seen:?}");
    }
}

/// What every sequence shares: the database and its managers, and what the sequences met.
struct World<'a> {
    db: &'a Db,
    managers: RefCell<Vec<CacheManager>>,
    seen: Seen,
}

/// How many times the sequences met each rule that refuses a write, and a restart, so that the
/// test can tell it exercised them.
#[derive(Debug, Default)]
struct Seen {
    quota_refusals: Cell<usize>,
    wrong_types: Cell<usize>,
    mismatches: Cell<usize>,
    reopens: Cell<usize>,
    gone: Cell<usize>,
    /// Acknowledgements and releases of a receipt no longer under its lease.
    stale_receipts: Cell<usize>,
    /// Releases of an item under its lease, which waits again.
    releases: Cell<usize>,
}

fn count(counter: &Cell<usize>) {
    counter.set(counter.get() + 1);
}

/// A manager with the LRU and the settings of manager `by` (see the module's docs).
fn open(db: &Db, by: usize) -> CacheManager {
    let builder = db.builder();
    let builder = match (db.is_postgres(), by) {
        (true, _) => builder.lru_capacity(0),
        (false, 2) => builder.lru_capacity(0).durability(Durability::Normal),
        (false, 0) => builder.lru_capacity(2).checkpoint_pages(3),
        (false, _) => builder.max_cached_value_bytes(8).checkpoint_pages(2),
    };
    builder.open().unwrap()
}

/// One sequence's run: the handles of each manager, and the model.
struct Sequence<'a> {
    world: &'a World<'a>,
    name: String,
    caches: Vec<Cache>,
    queues: Vec<Queue>,
    /// Whether the cache and the queue exist, and which managers' handles are to them (a handle
    /// made before its cache was dropped stays with the dropped one).
    cache_exists: bool,
    queue_exists: bool,
    cache_live: [bool; MANAGERS],
    queue_live: [bool; MANAGERS],
    entries: BTreeMap<String, (String, bool)>,
    items: VecDeque<Item>,
    /// Every receipt handed out, spent or not.
    receipts: Vec<Receipt>,
}

/// A queue item as the model holds it.
#[derive(Debug, Clone, PartialEq)]
struct Item {
    value: String,
    /// The lease it is under (leases last longer than any test).
    lease: Option<Receipt>,
    deliveries: u64,
}

impl Item {
    fn waiting(value: &str) -> Item {
        Item { value: value.to_owned(), lease: None, deliveries: 0 }
    }
}

/// A lease that outlasts any test: items leased with it must not come back during one.
const LONG_LEASE: Duration = Duration::from_secs(3600);

/// The outcome of one step: a test failure names what differed.
type Step = Result<(), TestCaseError>;

fn json(text: &str) -> Json {
    Json::parse(text).unwrap()
}

fn text(value: Option<Json>) -> Option<String> {
    value.map(|value| value.as_str().to_owned())
}

fn texts(values: impl IntoIterator<Item = Json>) -> Vec<String> {
    values.into_iter().map(|value| value.as_str().to_owned()).collect()
}

impl<'a> Sequence<'a> {
    fn new(world: &'a World<'a>, name: &str) -> Sequence<'a> {
        let mut sequence = Sequence {
            world,
            name: name.to_owned(),
            caches: Vec::new(),
            queues: Vec::new(),
            cache_exists: true,
            queue_exists: true,
            cache_live: [true; MANAGERS],
            queue_live: [true; MANAGERS],
            entries: BTreeMap::new(),
            items: VecDeque::new(),
            receipts: Vec::new(),
        };
        world.managers.borrow()[0].create_cache(name).unwrap();
        world.managers.borrow()[0].create_queue(name).unwrap();
        for by in 0..MANAGERS {
            sequence.caches.push(sequence.cache_handle(by).unwrap());
            sequence.queues.push(sequence.queue_handle(by).unwrap());
        }
        sequence
    }

    fn manager(&self, by: usize) -> std::cell::Ref<'_, CacheManager> {
        std::cell::Ref::map(self.world.managers.borrow(), |managers| &managers[by])
    }

    /// A handle of manager `by` to the sequence's cache.
    fn cache_handle(&self, by: usize) -> easycaching::Result<Cache> {
        Ok(with_quota_of(by, self.manager(by).open_cache(&self.name)?, Cache::with_quota))
    }

    /// A handle of manager `by` to the sequence's queue.
    fn queue_handle(&self, by: usize) -> easycaching::Result<Queue> {
        Ok(with_quota_of(by, self.manager(by).open_queue(&self.name)?, Queue::with_quota))
    }

    fn run(mut self, ops: &[Op]) -> Step {
        for (step, op) in ops.iter().enumerate() {
            self.apply(op).map_err(|error| TestCaseError::fail(format!("step {step}, {op:?}: {error}")))?;
        }
        self.check_everything()
    }

    /// Applies `op` through its manager and to the model, and compares what each answered.
    fn apply(&mut self, op: &Op) -> Step {
        match op.through() {
            Through::Cache(by) if !self.cache_live[by] => return self.check_cache_gone(by),
            Through::Queue(by) if !self.queue_live[by] => return self.check_queue_gone(by),
            _ => {}
        }
        match *op {
            Op::Set { by, key, value } => {
                let result = self.caches[by].set(key, json(value));
                let mut next = self.entries.clone();
                next.insert(key.to_owned(), (value.to_owned(), false));
                self.write_entries(by, result, next)?;
            }
            Op::SetWithTtl { by, key, value } => {
                let result = self.caches[by].set_with_ttl(key, json(value), LONG_TTL);
                let mut next = self.entries.clone();
                next.insert(key.to_owned(), (value.to_owned(), true));
                self.write_entries(by, result, next)?;
            }
            Op::SetMany { by, ref entries } => {
                let batch = entries.iter().map(|&(key, value)| (key.to_owned(), json(value)));
                let result = self.caches[by].set_many(batch);
                let mut next = self.entries.clone();
                for &(key, value) in entries {
                    next.insert(key.to_owned(), (value.to_owned(), false));
                }
                self.write_entries(by, result, next)?;
            }
            Op::Get { by, key } => {
                prop_assert_eq!(text(self.caches[by].get(key).map_err(unexpected)?), self.value(key));
            }
            Op::GetMany { by, ref keys } => {
                let got = self.caches[by].get_many(keys).map_err(unexpected)?;
                let got: Vec<Option<String>> = got.into_iter().map(text).collect();
                let expected: Vec<Option<String>> = keys.iter().map(|key| self.value(key)).collect();
                prop_assert_eq!(got, expected);
            }
            Op::Contains { by, key } => {
                prop_assert_eq!(
                    self.caches[by].contains(key).map_err(unexpected)?,
                    self.entries.contains_key(key)
                );
            }
            Op::Ttl { by, key } => {
                let left = self.caches[by].ttl(key).map_err(unexpected)?;
                prop_assert!(
                    left.is_none_or(|left| left <= LONG_TTL),
                    "{left:?} left of a TTL of {LONG_TTL:?}"
                );
                prop_assert_eq!(left.is_some(), self.entries.get(key).is_some_and(|&(_, ttl)| ttl));
            }
            Op::Expire { by, key, ttl } => {
                let changed = self.caches[by].expire(key, ttl.then_some(LONG_TTL)).map_err(unexpected)?;
                let entry = self.entries.get_mut(key);
                prop_assert_eq!(changed, entry.is_some());
                if let Some(entry) = entry {
                    entry.1 = ttl;
                }
            }
            Op::Increment { by, key, delta } => self.increment(by, key, delta)?,
            Op::CompareAndSwap { by, key, expected, value } => {
                let result =
                    self.caches[by].compare_and_swap(key, expected.map(json).as_ref(), value.map(json));
                let stored = self.entries.get(key);
                let matches = match (expected, stored) {
                    (None, None) => true,
                    (Some(expected), Some((stored, _))) => json(expected).same_value(&json(stored)),
                    _ => false,
                };
                if !matches {
                    prop_assert_eq!(result.map_err(unexpected)?, false);
                    count(&self.world.seen.mismatches);
                    return Ok(());
                }
                // A value swapped in for one that was there keeps its expiry.
                let ttl = stored.is_some_and(|&(_, ttl)| ttl);
                let mut next = self.entries.clone();
                match value {
                    Some(value) => next.insert(key.to_owned(), (value.to_owned(), ttl)),
                    None => next.remove(key),
                };
                if let Some(swapped) = self.write_entries(by, result, next)? {
                    prop_assert!(swapped, "a swap from the value stored answered false");
                }
            }
            Op::Delete { by, key } => {
                prop_assert_eq!(
                    self.caches[by].delete(key).map_err(unexpected)?,
                    self.entries.remove(key).is_some()
                );
            }
            Op::DeleteMany { by, ref keys } => {
                let removed = self.caches[by].delete_many(keys).map_err(unexpected)?;
                let there = keys.iter().filter(|key| self.entries.remove(**key).is_some()).count();
                prop_assert_eq!(removed, there as u64);
            }
            Op::Clear { by } => {
                prop_assert_eq!(self.caches[by].clear().map_err(unexpected)?, self.entries.len() as u64);
                self.entries.clear();
            }
            Op::DeletePrefix { by, prefix } => {
                let removed = self.caches[by].delete_with_prefix(prefix).map_err(unexpected)?;
                let before = self.entries.len();
                self.entries.retain(|key, _| !key.starts_with(prefix));
                prop_assert_eq!(removed, (before - self.entries.len()) as u64);
            }
            Op::Len { by } => {
                let cache = &self.caches[by];
                let counted = (cache.len().map_err(unexpected)?, cache.size_bytes().map_err(unexpected)?);
                prop_assert_eq!(counted, usage(&self.entries), "entries and bytes");
            }
            Op::Entries { by, prefix, page } => self.check_entries(by, prefix, page)?,
            Op::Keys { by, prefix, page } => self.check_keys(by, prefix, page)?,
            Op::Put { by, value } => {
                let result = self.queues[by].put(json(value));
                self.put_items(by, result, &[value])?;
            }
            Op::PutMany { by, ref values } => {
                let result = self.queues[by].put_many(values.iter().map(|value| json(value)));
                self.put_items(by, result, values)?;
            }
            Op::Take { by, max } => {
                let taken = texts(self.queues[by].get_many(max).map_err(unexpected)?);
                // The oldest items waiting, passing over those under a lease.
                let mut expected = Vec::new();
                self.items.retain(|item| match item.lease.is_none() && expected.len() < max {
                    true => {
                        expected.push(item.value.clone());
                        false
                    }
                    false => true,
                });
                prop_assert_eq!(taken, expected);
            }
            Op::GiveBack { by, ref values } => {
                self.queues[by]
                    .give_back(values.iter().map(|value| json(value)).collect())
                    .map_err(unexpected)?;
                for value in values.iter().rev() {
                    self.items.push_front(Item::waiting(value));
                }
            }
            Op::Peek { by } => {
                let peeked = self.queues[by].peek().map_err(unexpected)?;
                prop_assert_eq!(text(peeked), self.next_waiting().map(|at| self.items[at].value.clone()));
            }
            Op::QueueLen { by } => {
                let queue = &self.queues[by];
                let counted = (queue.len().map_err(unexpected)?, queue.size_bytes().map_err(unexpected)?);
                prop_assert_eq!(counted, self.queue_usage(), "items and bytes");
            }
            Op::QueueClear { by } => {
                prop_assert_eq!(self.queues[by].clear().map_err(unexpected)?, self.items.len() as u64);
                self.items.clear();
            }
            Op::Lease { by } => {
                let leased = self.queues[by].lease(LONG_LEASE).map_err(unexpected)?;
                let Some(at) = self.next_waiting() else {
                    prop_assert_eq!(leased, None);
                    return Ok(());
                };
                let Some(leased) = leased else {
                    return Err(TestCaseError::fail(format!("nothing leased; {:?} waits", self.items[at])));
                };
                let item = &mut self.items[at];
                item.deliveries += 1;
                prop_assert_eq!(
                    (leased.value.as_str(), leased.deliveries),
                    (item.value.as_str(), item.deliveries)
                );
                prop_assert!(!self.receipts.contains(&leased.receipt), "a receipt handed out twice");
                item.lease = Some(leased.receipt);
                self.receipts.push(leased.receipt);
            }
            Op::Ack { by, which } | Op::Release { by, which } | Op::Extend { by, which } => {
                let Some(&receipt) = self.receipts.get(which % self.receipts.len().max(1)) else {
                    return Ok(());
                };
                let held = self.items.iter().position(|item| item.lease == Some(receipt));
                let answered = match op {
                    Op::Ack { .. } => self.queues[by].ack(&receipt),
                    Op::Release { .. } => self.queues[by].release(&receipt),
                    _ => self.queues[by].extend(&receipt, LONG_LEASE),
                };
                prop_assert_eq!(answered.map_err(unexpected)?, held.is_some());
                match (held, op) {
                    (None, _) => count(&self.world.seen.stale_receipts),
                    (Some(at), Op::Ack { .. }) => drop(self.items.remove(at)),
                    (Some(_), Op::Extend { .. }) => {}
                    (Some(at), _) => {
                        self.items[at].lease = None;
                        count(&self.world.seen.releases);
                    }
                }
            }
            Op::Reopen { by } => {
                // A process that ended leaves nothing behind: its manager goes, and its handles
                // with it. The new one makes its cache and queue, as a process starting does,
                // creating them where another one dropped them.
                self.world.managers.borrow_mut()[by] = open(self.world.db, by);
                count(&self.world.seen.reopens);
                self.apply(&Op::CreateCache { by })?;
                self.apply(&Op::CreateQueue { by })?;
            }
            Op::DropCache { by } => {
                let dropped = self.manager(by).delete_cache(&self.name).map_err(unexpected)?;
                prop_assert_eq!(dropped, self.cache_exists);
                (self.cache_exists, self.cache_live) = (false, [false; MANAGERS]);
                self.entries.clear();
                if dropped && self.world.db.is_postgres() {
                    // The other hosts hear of it a moment later: the model waits for that.
                    self.until_every_manager(|manager| {
                        matches!(manager.open_cache(&self.name), Err(Error::NoSuchCache(_)))
                    })?;
                }
            }
            Op::CreateCache { by } => {
                let cache = self.manager(by).create_cache(&self.name).map_err(unexpected)?;
                self.caches[by] = with_quota_of(by, cache, Cache::with_quota);
                (self.cache_exists, self.cache_live[by]) = (true, true);
            }
            Op::OpenCache { by } => match self.cache_handle(by) {
                Ok(cache) if self.cache_exists => (self.caches[by], self.cache_live[by]) = (cache, true),
                Err(Error::NoSuchCache(_)) if !self.cache_exists => {}
                other => return Err(TestCaseError::fail(format!("answered {other:?}"))),
            },
            Op::DropQueue { by } => {
                let dropped = self.manager(by).delete_queue(&self.name).map_err(unexpected)?;
                prop_assert_eq!(dropped, self.queue_exists);
                (self.queue_exists, self.queue_live) = (false, [false; MANAGERS]);
                self.items.clear();
            }
            Op::CreateQueue { by } => {
                let queue = self.manager(by).create_queue(&self.name).map_err(unexpected)?;
                self.queues[by] = with_quota_of(by, queue, Queue::with_quota);
                (self.queue_exists, self.queue_live[by]) = (true, true);
            }
            Op::OpenQueue { by } => match self.queue_handle(by) {
                Ok(queue) if self.queue_exists => (self.queues[by], self.queue_live[by]) = (queue, true),
                Err(Error::NoSuchQueue(_)) if !self.queue_exists => {}
                other => return Err(TestCaseError::fail(format!("answered {other:?}"))),
            },
        }
        Ok(())
    }

    /// Polls until `heard` holds for every manager, for at most 10 s.
    fn until_every_manager(&self, heard: impl Fn(&CacheManager) -> bool) -> Step {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.world.managers.borrow().iter().all(&heard) {
            prop_assert!(Instant::now() < deadline, "not heard by every manager within 10 s");
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    /// Every call through a handle to a cache that was dropped fails, naming it gone, and
    /// changes nothing.
    fn check_cache_gone(&self, by: usize) -> Step {
        let cache = &self.caches[by];
        let calls: [(&str, easycaching::Result<()>); 11] = [
            ("get", cache.get("a").map(drop)),
            ("contains", cache.contains("a").map(drop)),
            ("ttl", cache.ttl("a").map(drop)),
            ("len", cache.len().map(drop)),
            ("entries", cache.entries(None, 10).map(drop)),
            ("set", cache.set("a", json("1"))),
            ("increment", cache.increment("a", 1).map(drop)),
            ("compare_and_swap", cache.compare_and_swap("a", None, Some(json("1"))).map(drop)),
            ("expire", cache.expire("a", None).map(drop)),
            ("delete", cache.delete("a").map(drop)),
            ("clear", cache.clear().map(drop)),
        ];
        self.check_gone(calls, |error| matches!(error, Error::CacheDeleted(_)))
    }

    /// The same for a handle to a queue that was dropped.
    fn check_queue_gone(&self, by: usize) -> Step {
        let queue = &self.queues[by];
        let receipt = self.receipts.last().copied().unwrap_or_else(|| "1.0000000000000001".parse().unwrap());
        let calls: [(&str, easycaching::Result<()>); 10] = [
            ("peek", queue.peek().map(drop)),
            ("len", queue.len().map(drop)),
            ("put", queue.put(json("1"))),
            ("get", queue.get().map(drop)),
            ("give_back", queue.give_back(vec![json("1")])),
            ("clear", queue.clear().map(drop)),
            ("lease", queue.lease(LONG_LEASE).map(drop)),
            ("ack", queue.ack(&receipt).map(drop)),
            ("release", queue.release(&receipt).map(drop)),
            ("extend", queue.extend(&receipt, LONG_LEASE).map(drop)),
        ];
        self.check_gone(calls, |error| matches!(error, Error::QueueDeleted(_)))
    }

    /// Each of `calls` failed with an error that `gone` accepts.
    fn check_gone(
        &self,
        calls: impl IntoIterator<Item = (&'static str, easycaching::Result<()>)>,
        gone: fn(&Error) -> bool,
    ) -> Step {
        for (call, result) in calls {
            prop_assert!(result.as_ref().is_err_and(gone), "{call} answered {result:?}");
        }
        count(&self.world.seen.gone);
        Ok(())
    }

    /// An increment, which the model makes with the rules of the cache's docs: an absent key
    /// counts as 0 and the sum has no TTL; a stored integer keeps its TTL; a value that is not
    /// an integer, or a sum past 64 bits, is refused as `WrongType` and nothing changes.
    fn increment(&mut self, by: usize, key: &str, delta: i64) -> Step {
        let result = self.caches[by].increment(key, delta);
        let expected = match self.entries.get(key) {
            None => Some((delta, false)),
            Some((stored, ttl)) => serde_json::from_str::<i64>(stored)
                .ok()
                .and_then(|current| current.checked_add(delta))
                .map(|sum| (sum, *ttl)),
        };
        match (result, expected) {
            (result, Some((sum, ttl))) => {
                let mut next = self.entries.clone();
                next.insert(key.to_owned(), (sum.to_string(), ttl));
                if let Some(answered) = self.write_entries(by, result, next)? {
                    prop_assert_eq!(answered, sum);
                }
            }
            (Err(Error::WrongType { value, .. }), None) => {
                count(&self.world.seen.wrong_types);
                let stored = self.value(key);
                prop_assert_eq!(Some(value.as_str()), stored.as_deref(), "the refusal holds the value");
            }
            (result, expected) => {
                return Err(TestCaseError::fail(format!("answered {result:?}, the model {expected:?}")));
            }
        }
        Ok(())
    }

    /// A write through manager `by` that answered `result` and takes the cache to `next`: it
    /// must have gone through, unless `by`'s quota refuses it ([`QUOTA`], by the rule of
    /// [`Quota`]: a count that grows past its bound), and then it must have stored nothing.
    /// What the write answered, when it went through.
    fn write_entries<T: std::fmt::Debug>(
        &mut self,
        by: usize,
        result: easycaching::Result<T>,
        next: BTreeMap<String, (String, bool)>,
    ) -> Result<Option<T>, TestCaseError> {
        if within_quota(by, usage(&self.entries), usage(&next)) {
            let answered = result.map_err(unexpected)?;
            self.entries = next;
            return Ok(Some(answered));
        }
        match result {
            Err(Error::QuotaExceeded(_)) => {
                count(&self.world.seen.quota_refusals);
                Ok(None)
            }
            other => Err(TestCaseError::fail(format!("answered {other:?} past the quota"))),
        }
    }

    /// Items put at the back through manager `by`, as `write_entries` for the queue.
    fn put_items(&mut self, by: usize, result: easycaching::Result<()>, values: &[&str]) -> Step {
        let before = self.queue_usage();
        let added: u64 = values.iter().map(|value| value.len() as u64).sum();
        let after = (before.0 + values.len() as u64, before.1 + added);
        if within_quota(by, before, after) {
            result.map_err(unexpected)?;
            self.items.extend(values.iter().map(|value| Item::waiting(value)));
            return Ok(());
        }
        match result {
            Err(Error::QuotaExceeded(_)) => {
                count(&self.world.seen.quota_refusals);
                Ok(())
            }
            other => Err(TestCaseError::fail(format!("answered {other:?} past the quota"))),
        }
    }

    fn check_entries(&self, by: usize, prefix: &str, page: usize) -> Step {
        let listed = every_page(page, |cursor| self.caches[by].entries_with_prefix(prefix, cursor, page))?;
        let listed: Vec<(String, String)> =
            listed.into_iter().map(|(key, value)| (key, value.as_str().to_owned())).collect();
        let expected: Vec<(String, String)> = self
            .entries
            .iter()
            .filter(|(key, _)| key.starts_with(prefix))
            .map(|(key, (value, _))| (key.clone(), value.clone()))
            .collect();
        prop_assert_eq!(listed, expected);
        Ok(())
    }

    fn check_keys(&self, by: usize, prefix: &str, page: usize) -> Step {
        let listed = every_page(page, |cursor| self.caches[by].keys_with_prefix(prefix, cursor, page))?;
        let expected: Vec<String> =
            self.entries.keys().filter(|key| key.starts_with(prefix)).cloned().collect();
        prop_assert_eq!(listed, expected);
        Ok(())
    }

    /// Every manager reads every key, lists the cache and counts both as the model has them
    /// (or finds them gone), and one lists the queue's items.
    fn check_everything(&mut self) -> Step {
        for by in 0..MANAGERS {
            let reads = keys_of(self.world.db)
                .iter()
                .flat_map(|&key| [Op::Get { by, key }, Op::Contains { by, key }]);
            let counts = [
                Op::Len { by },
                Op::Entries { by, prefix: "", page: 1000 },
                Op::QueueLen { by },
                Op::Peek { by },
            ];
            for op in reads.chain(counts) {
                self.apply(&op)
                    .map_err(|error| TestCaseError::fail(format!("at the end, {op:?}: {error}")))?;
            }
        }
        if let Some(by) = (0..MANAGERS).find(|&by| self.queue_live[by]) {
            let rest = self.queues[by].items().collect::<Result<Vec<_>, _>>().map_err(unexpected)?;
            let expected: Vec<String> = self.items.iter().map(|item| item.value.clone()).collect();
            prop_assert_eq!(texts(rest), expected, "at the end, the queue's items, leased or not");
        }
        Ok(())
    }

    /// The queue's items and bytes, as the model holds it.
    fn queue_usage(&self) -> (u64, u64) {
        (self.items.len() as u64, self.items.iter().map(|item| item.value.len() as u64).sum())
    }

    /// Where the oldest item not under a lease is.
    fn next_waiting(&self) -> Option<usize> {
        self.items.iter().position(|item| item.lease.is_none())
    }

    fn value(&self, key: &str) -> Option<String> {
        self.entries.get(key).map(|(value, _)| value.clone())
    }
}

/// The quota of manager 1's handles, to its cache and to its queue alike; the other managers'
/// handles have none, so the cache and the queue can be over it when manager 1 writes.
const QUOTA: Quota = Quota { max_entries: Some(4), max_bytes: Some(80), shared_by_prefix: None };

/// Whether `QUOTA` lets manager `by` take a cache or queue from `before` to `after` (entries,
/// bytes): only a count that grows past its bound is refused.
fn within_quota(by: usize, before: (u64, u64), after: (u64, u64)) -> bool {
    let past =
        |count: u64, before: u64, max: Option<u64>| max.is_some_and(|max| count > max && count > before);
    by != 1 || !(past(after.0, before.0, QUOTA.max_entries) || past(after.1, before.1, QUOTA.max_bytes))
}

/// `handle`, held to [`QUOTA`] when it is manager 1's.
fn with_quota_of<T>(by: usize, handle: T, with_quota: fn(&T, Quota) -> T) -> T {
    if by == 1 { with_quota(&handle, QUOTA) } else { handle }
}

/// A cache's entries and bytes (of keys and values), as the model holds it.
fn usage(entries: &BTreeMap<String, (String, bool)>) -> (u64, u64) {
    let bytes = entries.iter().map(|(key, (value, _))| (key.len() + value.len()) as u64).sum();
    (entries.len() as u64, bytes)
}

/// Every item of the pages `fetch` answers from the start, each page checked to hold at most
/// `page` items.
fn every_page<T>(
    page: usize,
    fetch: impl Fn(Option<&str>) -> easycaching::Result<Page<T>>,
) -> Result<Vec<T>, TestCaseError> {
    let mut listed = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let got = fetch(cursor.as_deref()).map_err(unexpected)?;
        prop_assert!(got.items.len() <= page, "a page of {} items, {page} asked", got.items.len());
        listed.extend(got.items);
        match got.next {
            Some(next) => cursor = Some(next),
            None => return Ok(listed),
        }
    }
}

/// An error where the model expects none.
fn unexpected(error: Error) -> TestCaseError {
    TestCaseError::fail(format!("unexpected error: {error}"))
}
