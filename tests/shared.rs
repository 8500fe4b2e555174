//! Shared by many workers, durable through crashes: real OS processes (the test worker binary)
//! and many threads against one database file. Every wait is bounded.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use easycaching::{CacheManager, Json};
use easycaching_harness::Harness;
use easycaching_tests::guest;
use serde_json::Value;

/// The longest any single answer from a worker may take.
const ANSWER_WITHIN: Duration = Duration::from_secs(60);

/// A worker process, its stdin, and its stdout as lines.
struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

/// The test worker binary.
const WORKER: &str = env!("CARGO_BIN_EXE_easycaching-test-worker");

impl Worker {
    fn spawn(db: &Path, args: &[&str]) -> Worker {
        let mut command = Command::new(WORKER);
        command.arg(db).args(args);
        Worker::start(command)
    }

    /// A worker in a PID namespace of its own (and a user namespace, so that no privilege is
    /// needed where those are allowed), as in a container sharing the database's volume:
    /// after a few hundred processes there first, so that its process id there names another
    /// process or none out here. Killing it kills the namespace.
    fn spawn_in_pid_namespace(db: &Path, args: &[&str]) -> Worker {
        let mut command = Command::new("unshare");
        command
            .args(["--map-root-user", "--pid", "--fork", "--kill-child", "sh", "-c"])
            .arg(r#"for i in $(seq 300); do /bin/true; done; "$0" "$@"; true"#)
            .arg(WORKER)
            .arg(db)
            .args(args);
        Worker::start(command)
    }

    fn start(mut command: Command) -> Worker {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the test worker starts");
        let lines = easycaching_tests::lines_of(child.stdout.take().expect("piped"));
        Worker { stdin: child.stdin.take(), child, lines }
    }

    fn next_line(&self) -> String {
        self.lines.recv_timeout(ANSWER_WITHIN).expect("the worker answered in time")
    }

    /// Sends one command and waits for its one-line answer.
    fn ask(&mut self, command: &str) -> String {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        writeln!(stdin, "{command}").and_then(|()| stdin.flush()).expect("the worker reads its stdin");
        self.next_line()
    }

    /// Waits (bounded) for the worker to exit; returns its status and every line it printed.
    fn finish(mut self) -> (ExitStatus, Vec<String>) {
        drop(self.stdin.take());
        let deadline = Instant::now() + ANSWER_WITHIN;
        let mut lines = Vec::new();
        loop {
            match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => lines.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("the worker did not finish in time; it printed {lines:?}")
                }
            }
        }
        (self.child.wait().expect("the worker is waited for"), lines)
    }

    /// `kill -9`, then every line it managed to print before it died.
    fn kill(mut self) -> Vec<String> {
        self.child.kill().expect("SIGKILL is delivered");
        self.finish().1
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_write_in_one_process_is_read_in_another_even_over_its_cached_value() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.db");
    let mut a = Worker::spawn(&db, &["serve"]);
    let mut b = Worker::spawn(&db, &["serve"]);
    assert_eq!(a.ask("set c k 0"), "ok");
    for round in 1..=100 {
        // b reads (and caches) the old value, a overwrites it, b must see the new one at once.
        assert_eq!(b.ask("get c k"), (round - 1).to_string());
        assert_eq!(a.ask(&format!("set c k {round}")), "ok");
        assert_eq!(b.ask("get c k"), round.to_string(), "round {round}");
        // And the other way round, on another key.
        assert_eq!(b.ask(&format!("set c other {round}")), "ok");
        assert_eq!(a.ask("get c other"), round.to_string(), "round {round}");
    }
}

#[test]
fn eight_processes_at_full_speed_all_succeed_without_database_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("stress.db");
    // Create the file first so the workers race on work, not on creating the schema.
    drop(CacheManager::open(&db).unwrap());
    const OPS: u64 = 400;
    let workers: Vec<Worker> =
        (0..8).map(|id| Worker::spawn(&db, &["stress", &id.to_string(), &OPS.to_string()])).collect();
    let (mut handed_over, mut committed_for_others) = (0, 0);
    for (id, worker) in workers.into_iter().enumerate() {
        let (status, lines) = worker.finish();
        assert!(status.success(), "worker {id} failed: {lines:?}");
        assert_eq!(lines.len(), 2, "worker {id}: {lines:?}");
        assert_eq!(lines[0], format!("ok {OPS}"), "worker {id}");
        let counts: Vec<u64> =
            lines[1].strip_prefix("handoffs ").unwrap().split(' ').map(|n| n.parse().unwrap()).collect();
        handed_over += counts[0];
        committed_for_others += counts[1];
    }
    // Lone writes made while another process wrote were committed by that process: every one
    // handed over was committed by another, once.
    assert!(handed_over > 0, "no write was handed over between 8 processes writing at once");
    assert_eq!(handed_over, committed_for_others);
    let manager = CacheManager::open(&db).unwrap();
    for id in 0..8 {
        assert_eq!(manager.open_cache(&format!("own-{id}")).unwrap().len().unwrap(), OPS / 5);
    }
    // Writes went to key-0, key-5, ... key-45.
    assert_eq!(manager.open_cache("shared").unwrap().len().unwrap(), 10);
}

/// Processes counting on one key with `increment` lose no count: each increment got a sum of
/// its own, and the last is the number of increments, where a `get` then a `set` loses counts.
#[test]
fn processes_incrementing_one_counter_lose_no_count() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("counters.db");
    drop(CacheManager::open(&db).unwrap());
    const TIMES: u64 = 150;
    let workers: Vec<Worker> = (0..6).map(|_| Worker::spawn(&db, &["count", &TIMES.to_string()])).collect();
    let mut sums = Vec::new();
    for (id, worker) in workers.into_iter().enumerate() {
        let (status, lines) = worker.finish();
        assert!(status.success(), "worker {id} failed: {lines:?}");
        sums.extend(
            lines.iter().map(|line| line.parse::<u64>().unwrap_or_else(|_| panic!("worker {id}: {line}"))),
        );
    }
    sums.sort_unstable();
    assert_eq!(sums, (1..=6 * TIMES).collect::<Vec<_>>(), "every increment got a sum of its own");
    let counters = CacheManager::open(&db).unwrap().open_cache("counters").unwrap();
    assert_eq!(counters.get_value::<u64>("hits").unwrap(), Some(6 * TIMES));
}

/// Processes updating one JSON counter by read, change and `compare_and_swap` (retried on a
/// mismatch) lose no update: each stored a count of its own, and the last is the number of
/// updates. Half of them expect the value as they wrote it out again, not as read.
#[test]
fn processes_updating_one_counter_by_compare_and_swap_lose_no_update() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("swapped.db");
    drop(CacheManager::open(&db).unwrap());
    const TIMES: u64 = 60;
    let workers: Vec<Worker> =
        (0..4).map(|id| Worker::spawn(&db, &["swap-count", &id.to_string(), &TIMES.to_string()])).collect();
    let mut stored = Vec::new();
    for (id, worker) in workers.into_iter().enumerate() {
        let (status, lines) = worker.finish();
        assert!(status.success(), "worker {id} failed: {lines:?}");
        stored.extend(
            lines.iter().map(|line| line.parse::<u64>().unwrap_or_else(|_| panic!("worker {id}: {line}"))),
        );
    }
    stored.sort_unstable();
    assert_eq!(stored, (1..=4 * TIMES).collect::<Vec<_>>(), "every update stored a count of its own");
    let swapped = CacheManager::open(&db).unwrap().open_cache("swapped").unwrap();
    let counter: serde_json::Value = swapped.get_value("hits").unwrap().unwrap();
    assert_eq!(counter["n"], 4 * TIMES);
}

/// Several writers at once, each killed in turn while the others write on: every write any
/// of them acknowledged is there, also those another process was committing for it, or it
/// for another, when it died.
#[test]
fn acknowledged_writes_of_processes_writing_together_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledgers.db");
    drop(CacheManager::open(&db).unwrap());
    let mut acknowledged: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for round in 0..5u64 {
        let workers: Vec<(String, Worker)> = (0..4)
            .map(|id| {
                let prefix = format!("r{round}w{id}-");
                let worker = Worker::spawn(&db, &["ledger", "full", &prefix]);
                (prefix, worker)
            })
            .collect();
        for (_, worker) in &workers {
            assert_eq!(worker.next_line(), "ready");
        }
        // Kill them one by one, the others still writing.
        for (id, (prefix, worker)) in workers.into_iter().enumerate() {
            std::thread::sleep(Duration::from_millis(60 + 45 * id as u64 + 30 * round));
            let numbers: Vec<u64> =
                worker.kill().iter().map(|line| line.parse().expect("a number")).collect();
            assert!(!numbers.is_empty(), "{prefix} acknowledged no write before it was killed");
            acknowledged.insert(prefix, numbers);
        }
    }
    let manager = CacheManager::open(&db).unwrap();
    let ledger = manager.open_cache("ledger").unwrap();
    for (prefix, numbers) in &acknowledged {
        for i in numbers {
            assert_eq!(
                ledger.get(&format!("{prefix}k{i}")).unwrap(),
                Some(Json::from_value(i).unwrap()),
                "{prefix}k{i} was acknowledged, then lost"
            );
        }
    }
}

/// Processes in different PID namespaces (containers sharing a volume) write together, handing
/// writes over to each other: whether another is alive must not be judged by its process id,
/// which names another process, or none, across namespaces. Every item put is in the queue
/// exactly once.
#[test]
fn processes_in_different_pid_namespaces_put_every_item_exactly_once() {
    let unshare = Command::new("unshare").args(["--map-root-user", "--pid", "--fork", "true"]).status();
    if !unshare.is_ok_and(|status| status.success()) {
        eprintln!("skipped: `unshare --map-root-user --pid` is not permitted here");
        return;
    }
    const PRODUCERS: u64 = 4;
    const PER_PRODUCER: u64 = 1500;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("namespaces.db");
    drop(CacheManager::open(&db).unwrap());
    let producers: Vec<Worker> = (0..PRODUCERS)
        .map(|p| {
            let args = ["produce", "jobs", &p.to_string(), &PER_PRODUCER.to_string()];
            if p % 2 == 1 { Worker::spawn_in_pid_namespace(&db, &args) } else { Worker::spawn(&db, &args) }
        })
        .collect();
    for producer in producers {
        let (status, lines) = producer.finish();
        assert!(status.success() && lines == ["done"], "{status}: {lines:?}");
    }
    let manager = CacheManager::open(&db).unwrap();
    let queue = manager.open_queue("jobs").unwrap();
    let mut seen: HashMap<(u64, u64), usize> = HashMap::new();
    while let Some(item) = queue.get_value::<Value>().unwrap() {
        *seen.entry((item["p"].as_u64().unwrap(), item["i"].as_u64().unwrap())).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, count)| **count > 1).map(|(item, _)| item).collect();
    assert!(twice.is_empty(), "{} items put more than once: {twice:?}", twice.len());
    assert_eq!(seen.len() as u64, PRODUCERS * PER_PRODUCER, "items lost");
    // Writes went from process to process (else this proved nothing): each is recorded.
    let raw = rusqlite::Connection::open(&db).unwrap();
    let handed_over: i64 = raw.query_row("SELECT count(*) FROM handoffs", [], |row| row.get(0)).unwrap();
    assert!(handed_over > 0, "no write was handed over");
}

fn acknowledged_writes_survive_kill_9(durability: &str) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    for attempt in 0..3u64 {
        let worker = Worker::spawn(&db, &["ledger", durability]);
        assert_eq!(worker.next_line(), "ready");
        // Let it write for a while, different each time, then kill it mid-stride.
        std::thread::sleep(Duration::from_millis(150 + 170 * attempt));
        let acknowledged: Vec<u64> =
            worker.kill().iter().map(|line| line.parse().expect("a number")).collect();
        assert!(!acknowledged.is_empty(), "the worker acknowledged no write before it was killed");
        let manager = CacheManager::open(&db).unwrap();
        let ledger = manager.open_cache("ledger").unwrap();
        for i in &acknowledged {
            assert_eq!(
                ledger.get(&format!("k{i}")).unwrap(),
                Some(Json::from_value(i).unwrap()),
                "k{i} was acknowledged, then lost"
            );
        }
    }
}

#[test]
fn every_acknowledged_write_survives_kill_9_with_full_durability() {
    acknowledged_writes_survive_kill_9("full");
}

#[test]
fn every_acknowledged_write_survives_kill_9_with_normal_durability() {
    acknowledged_writes_survive_kill_9("normal");
}

#[test]
fn queue_items_go_to_exactly_one_consumer_in_order_even_when_a_consumer_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("queue.db");
    CacheManager::open(&db).unwrap().create_queue("jobs").unwrap();
    const PRODUCERS: u64 = 3;
    const PER_PRODUCER: u64 = 150;
    let producers: Vec<Worker> = (0..PRODUCERS)
        .map(|p| Worker::spawn(&db, &["produce", "jobs", &p.to_string(), &PER_PRODUCER.to_string()]))
        .collect();

    // Three consumers, each driven by its own thread, one item per command. The first one is
    // killed after its 40th item, while it waits for its next command: between operations.
    let consumers: Vec<_> = (0..3)
        .map(|consumer| {
            let db = db.clone();
            std::thread::spawn(move || {
                let mut worker = Worker::spawn(&db, &["serve"]);
                let mut taken: Vec<(u64, u64)> = Vec::new();
                let mut empty_since: Option<Instant> = None;
                loop {
                    if consumer == 0 && taken.len() == 40 {
                        worker.kill();
                        return taken;
                    }
                    let answer = worker.ask("take jobs");
                    if answer == "none" {
                        // The producers may still be running: stop after a quiet second.
                        let since = *empty_since.get_or_insert_with(Instant::now);
                        if since.elapsed() > Duration::from_secs(1) {
                            return taken;
                        }
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    empty_since = None;
                    let item: Value =
                        serde_json::from_str(&answer).unwrap_or_else(|_| panic!("not an item: {answer}"));
                    taken.push((item["p"].as_u64().unwrap(), item["i"].as_u64().unwrap()));
                }
            })
        })
        .collect();
    for producer in producers {
        let (status, lines) = producer.finish();
        assert!(status.success() && lines == ["done"], "a producer failed: {lines:?}");
    }
    let mut seen = HashSet::new();
    for consumer in consumers {
        let taken = consumer.join().unwrap();
        let mut last: HashMap<u64, u64> = HashMap::new();
        for (producer, i) in taken {
            assert!(seen.insert((producer, i)), "item {producer}/{i} was delivered twice");
            if let Some(previous) = last.insert(producer, i) {
                assert!(previous < i, "producer {producer}'s items came out of order: {previous} then {i}");
            }
        }
    }
    // Whatever the killed consumer did not take is still in the queue, for anyone.
    let leftover = CacheManager::open(&db).unwrap().open_queue("jobs").unwrap().get_many(1000).unwrap();
    for item in leftover {
        let item: Value = item.deserialize().unwrap();
        assert!(seen.insert((item["p"].as_u64().unwrap(), item["i"].as_u64().unwrap())), "delivered twice");
    }
    assert_eq!(seen.len() as u64, PRODUCERS * PER_PRODUCER, "items were lost");
}

/// Consumers that lease, handle and acknowledge each item, one of them killed with `kill -9`
/// while it holds a lease, another started in its place: no item is lost, every item is
/// acknowledged exactly once (an acknowledgement succeeds once), and the item the killed
/// consumer held is handed out again, to another consumer, as its second delivery.
#[test]
fn an_item_leased_by_a_consumer_killed_while_handling_it_is_handled_by_another() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("leases.db");
    const ITEMS: u64 = 200;
    let jobs = CacheManager::open(&db).unwrap().create_queue("jobs").unwrap();
    jobs.put_many((0..ITEMS).map(|i| Json::from_value(&serde_json::json!({"p": 0, "i": i})).unwrap()))
        .unwrap();

    // The victim takes one item and takes a minute to handle it: killed holding its lease.
    let victim = Worker::spawn(&db, &["lease-consume", "jobs", "300", "60000"]);
    let first = victim.next_line();
    let held = first.strip_prefix("leased ").and_then(|rest| rest.strip_suffix(" 1")).map(str::to_owned);
    let held = held.unwrap_or_else(|| panic!("not a first lease: {first}"));
    let mut lines = victim.kill();
    lines.insert(0, first);
    assert_eq!(lines.len(), 1, "the victim acknowledged something: {lines:?}");

    let consumers: Vec<Worker> =
        (0..3).map(|_| Worker::spawn(&db, &["lease-consume", "jobs", "300", "1"])).collect();
    let mut acked: HashMap<String, usize> = HashMap::new();
    let mut deliveries: HashMap<String, u64> = HashMap::new();
    for consumer in consumers {
        let (status, printed) = consumer.finish();
        assert!(status.success(), "a consumer failed: {printed:?}");
        for line in printed {
            let mut words = line.split(' ');
            match (words.next(), words.next(), words.next()) {
                (Some("acked"), Some(item), None) => *acked.entry(item.to_owned()).or_default() += 1,
                (Some("leased"), Some(item), Some(count)) => {
                    let count = count.parse().unwrap();
                    let most = deliveries.entry(item.to_owned()).or_default();
                    *most = (*most).max(count);
                }
                (Some("late"), Some(_), None) => {}
                _ => panic!("not a line of lease-consume: {line}"),
            }
        }
    }
    assert_eq!(acked.len() as u64, ITEMS, "items were lost");
    assert!(acked.values().all(|&count| count == 1), "an item was acknowledged twice");
    // Its second delivery, or later should a consumer stall past its own lease.
    let again = deliveries.get(&held).copied().unwrap_or(0);
    assert!(again >= 2, "the held item was not handed out again: deliveries {again}");
    assert_eq!(jobs.len().unwrap(), 0);
}

/// What a killed or finished `consume` worker printed: the items it got, and whether it was
/// cut short inside a take (its last line "take N"), which may have removed up to N items it
/// never got to print.
fn consumed(lines: &[String]) -> (Vec<(u64, u64)>, usize) {
    let mut got = Vec::new();
    for line in lines {
        for item in line.strip_prefix("got ").into_iter().flat_map(|items| items.split(' ')) {
            let (p, i) = item.split_once(':').unwrap_or_else(|| panic!("not an item: {line}"));
            got.push((p.parse().unwrap(), i.parse().unwrap()));
        }
    }
    let cut_short =
        lines.last().and_then(|line| line.strip_prefix("take ")).map_or(0, |n| n.parse().unwrap());
    (got, cut_short)
}

/// Producers and consumers killed with `kill -9` at random moments while the others go on:
/// every put acknowledged is delivered once, unless a consumer killed in the middle of a take
/// removed it (delivery is at most once: a take commits before `get_many` returns, and an item
/// its consumer never got is gone); no item is delivered twice; each consumer gets each
/// producer's items in order; a put cut short is stored once or not at all; and the queue's
/// counts match its items.
#[test]
fn acknowledged_puts_survive_producers_and_consumers_killed_at_random() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("killed.db");
    CacheManager::open(&db).unwrap().create_queue("jobs").unwrap();
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    eprintln!("seed {seed}");
    let mut state = seed | 1;
    let mut random = move |below: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % below
    };
    let mut next_producer = 0u64;
    let mut producer = |db: &Path| {
        next_producer += 1;
        (next_producer - 1, Worker::spawn(db, &["put-forever", "jobs", &(next_producer - 1).to_string()]))
    };
    let mut producers: Vec<(u64, Worker)> = (0..3).map(|_| producer(&db)).collect();
    let mut consumers: Vec<Worker> = (0..3).map(|_| Worker::spawn(&db, &["consume", "jobs"])).collect();
    let mut acknowledged: HashMap<u64, Vec<u64>> = HashMap::new();
    let mut deliveries: Vec<Vec<(u64, u64)>> = Vec::new();
    let mut may_have_lost = 0;
    for _ in 0..16 {
        std::thread::sleep(Duration::from_millis(50 + random(200)));
        if random(2) == 0 {
            let (id, killed) = producers.remove(random(producers.len() as u64) as usize);
            let acked = killed.kill().iter().map(|line| line.parse().expect("a number")).collect();
            acknowledged.insert(id, acked);
            producers.push(producer(&db));
        } else {
            let (got, cut_short) =
                consumed(&consumers.remove(random(consumers.len() as u64) as usize).kill());
            deliveries.push(got);
            may_have_lost += cut_short;
            consumers.push(Worker::spawn(&db, &["consume", "jobs"]));
        }
    }
    for (id, killed) in producers {
        acknowledged.insert(id, killed.kill().iter().map(|line| line.parse().expect("a number")).collect());
    }
    // The consumers left empty the queue, then stop.
    for consumer in consumers {
        let (status, lines) = consumer.finish();
        assert!(status.success(), "a consumer failed: {lines:?}");
        deliveries.push(consumed(&lines).0);
    }

    let mut delivered: HashSet<(u64, u64)> = HashSet::new();
    for got in &deliveries {
        let mut last: HashMap<u64, u64> = HashMap::new();
        for &(p, i) in got {
            assert!(delivered.insert((p, i)), "item {p}:{i} was delivered twice");
            if let Some(previous) = last.insert(p, i) {
                assert!(previous < i, "producer {p}'s items came out of order: {previous} then {i}");
            }
        }
    }
    let mut lost = Vec::new();
    for (&p, acked) in &acknowledged {
        assert!(acked.iter().copied().eq(0..acked.len() as u64), "producer {p} acknowledged {acked:?}");
        lost.extend((0..acked.len() as u64).filter(|&i| !delivered.contains(&(p, i))).map(|i| (p, i)));
        // A put cut short by the kill is stored once or not at all.
        let unacknowledged = delivered.iter().filter(|&&(q, i)| q == p && i >= acked.len() as u64);
        let unacknowledged: Vec<_> = unacknowledged.collect();
        assert!(
            unacknowledged.len() <= 1,
            "producer {p}: items never put were delivered: {unacknowledged:?}"
        );
    }
    assert!(
        lost.len() <= may_have_lost,
        "{} acknowledged items were lost, more than the {may_have_lost} that consumers killed inside a \
         take could have removed: {lost:?}",
        lost.len()
    );
    let total: usize = acknowledged.values().map(Vec::len).sum();
    assert!(total > 100, "the producers acknowledged only {total} puts");

    let queue = CacheManager::open(&db).unwrap().open_queue("jobs").unwrap();
    assert_eq!((queue.len().unwrap(), queue.peek().unwrap()), (0, None));
    let raw = rusqlite::Connection::open(&db).unwrap();
    let counted: (i64, i64) = raw
        .query_row("SELECT item_count, byte_count FROM queues WHERE name = 'jobs'", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .unwrap();
    let items: i64 = raw.query_row("SELECT count(*) FROM queue_items", [], |row| row.get(0)).unwrap();
    assert_eq!(counted, (0, 0), "the queue's counts drifted");
    assert_eq!(items, 0, "items are left that the queue does not count");
}

#[test]
fn a_scan_stays_correct_while_other_processes_insert_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("scan.db");
    let manager = CacheManager::open(&db).unwrap();
    let cache = manager.create_cache("moving").unwrap();
    for chunk in (0..5000).collect::<Vec<u32>>().chunks(1000) {
        cache
            .set_many(chunk.iter().map(|i| (format!("stable-{i:04}"), Json::from_value(i).unwrap())))
            .unwrap();
    }
    let mutators: Vec<Worker> = (0..2).map(|_| Worker::spawn(&db, &["mutate", "moving", "1500"])).collect();
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = cache.entries(cursor.as_deref(), 100).unwrap();
        for (key, _) in page.items {
            *seen.entry(key).or_default() += 1;
        }
        std::thread::sleep(Duration::from_millis(20));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    for mutator in mutators {
        let (status, lines) = mutator.finish();
        assert!(status.success(), "a mutator failed: {lines:?}");
    }
    assert!(seen.values().all(|&n| n == 1), "an entry was seen twice");
    for i in 0..5000 {
        assert_eq!(seen.get(&format!("stable-{i:04}")), Some(&1), "stable-{i:04} was not seen exactly once");
    }
}

#[test]
fn files_that_are_not_ours_are_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let corrupt = dir.path().join("corrupt.db");
    {
        let manager = CacheManager::open(&corrupt).unwrap();
        manager.create_cache("c").unwrap().set("k", Json::parse("1").unwrap()).unwrap();
    }
    let mut bytes = std::fs::read(&corrupt).unwrap();
    bytes[100..4096].fill(0xA5);
    std::fs::write(&corrupt, &bytes).unwrap();

    let newer = dir.path().join("newer.db");
    drop(CacheManager::open(&newer).unwrap());
    set_user_version(&newer, 99);

    let text = dir.path().join("text.db");
    std::fs::write(&text, "hello, this is not a database").unwrap();

    for (path, expected) in
        [(&corrupt, "corrupt"), (&newer, "newer than this build"), (&text, "not an SQLite database")]
    {
        let before = std::fs::read(path).unwrap();
        let (status, lines) = Worker::spawn(path, &["serve"]).finish();
        assert!(!status.success(), "{} was accepted", path.display());
        assert!(lines.iter().any(|line| line.contains(expected)), "{}: {lines:?}", path.display());
        assert_eq!(std::fs::read(path).unwrap(), before, "{} was modified", path.display());
    }
}

/// Writes `PRAGMA user_version` straight into the database header (a big-endian u32 at offset
/// 60), as a newer easycaching's migration would have left it.
fn set_user_version(path: &Path, version: u32) {
    use std::io::{Seek, SeekFrom};
    let mut db = std::fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
    db.seek(SeekFrom::Start(60)).unwrap();
    db.write_all(&version.to_be_bytes()).unwrap();
}

#[test]
fn many_plugin_instances_run_at_once_on_threads_against_one_manager() {
    let harness = Harness::new().unwrap().allow("cache:*=rwc").args(["touch", "300"]);
    std::thread::scope(|scope| {
        let runs: Vec<_> = (0..6)
            .map(|i| {
                let harness = &harness;
                scope.spawn(move || {
                    let harness_run = harness.run(guest("read_write")).unwrap();
                    (i, harness_run)
                })
            })
            .collect();
        for run in runs {
            let (i, run) = run.join().unwrap();
            assert!(run.result.is_ok(), "instance {i}: {:?}\n{}", run.result, run.stderr_text());
            assert_eq!(run.stdout_text(), "touched 300\n");
        }
    });
    assert_eq!(harness.cache("data").unwrap().len().unwrap(), 300);
}
