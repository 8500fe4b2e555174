//! A worker process for the multi-process tests: it opens a database and does what its
//! arguments (or, in `serve` mode, its standard input) say, printing one line per result, so a
//! test can drive several real processes against one file.
//!
//! ```text
//! easycaching-test-worker DB serve              lines on stdin: get C K | set C K JSON | take Q | quit
//! easycaching-test-worker DB stress ID OPS      mixed reads and writes; prints "ok N" and then
//!                                               "handoffs H C" (its write_stats' handed_over and
//!                                               committed_for_others), or the first error
//! easycaching-test-worker DB ledger full|normal [PREFIX]
//!                                               sets PREFIXk0, PREFIXk1, ... printing each i once acknowledged
//! easycaching-test-worker DB produce Q ID COUNT puts {"p": ID, "i": i} for i in 0..COUNT
//! easycaching-test-worker DB count TIMES       increments "hits" of cache "counters", printing
//!                                               each sum
//! easycaching-test-worker DB swap-count ID TIMES
//!                                               adds one to {"n": N} under "hits" of cache "swapped" by
//!                                               compare-and-swap, printing each N + 1 stored
//! easycaching-test-worker DB mutate C MILLIS    inserts and deletes transient keys for MILLIS
//! easycaching-test-worker DB put-forever Q ID   puts {"p": ID, "i": i} for i in 0.., printing each
//!                                               i once acknowledged
//! easycaching-test-worker DB consume Q          takes 1 to 5 items at a time, printing "take N"
//!                                               before each take and "got P:I P:I ..." after it,
//!                                               until the queue has been empty for a second
//! easycaching-test-worker DB lease-consume Q LEASE_MS HANDLE_MS
//!                                               leases one item at a time for LEASE_MS, prints
//!                                               "leased P:I D" (D its deliveries), sleeps HANDLE_MS
//!                                               and acknowledges it, printing "acked P:I" (or
//!                                               "late P:I" when the ack found it no longer under
//!                                               that lease), until no item has waited for
//!                                               2 x LEASE_MS + 1 s
//! easycaching-test-worker DB share-stderr GUEST two instances of the stdio_flood guest sharing the
//!                                               process's stderr, each with a time limit of 1s:
//!                                               one floods it a page a write, the other (300 ms
//!                                               later) writes 100 bytes; prints
//!                                               "NAME ok|ERROR after MS ms" as each ends
//! ```

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use easycaching::{CacheManager, Durability, Json};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or_default();
    let number = |i: usize| {
        arg(i).parse::<u64>().unwrap_or_else(|_| panic!("argument {i} must be a number: {args:?}"))
    };
    let durability = match (arg(1), arg(2)) {
        ("ledger", "normal") => Durability::Normal,
        _ => Durability::Full,
    };
    let manager = match CacheManager::builder(arg(0)).durability(durability).open() {
        Ok(manager) => manager,
        Err(error) => {
            println!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = match arg(1) {
        "serve" => serve(&manager),
        "stress" => stress(&manager, number(2), number(3)),
        "ledger" => ledger(&manager, arg(3)),
        "produce" => produce(&manager, arg(2), number(3), number(4)),
        "mutate" => mutate(&manager, arg(2), Duration::from_millis(number(3))),
        "put-forever" => put_forever(&manager, arg(2), number(3)),
        "consume" => consume(&manager, arg(2)),
        "lease-consume" => lease_consume(
            &manager,
            arg(2),
            Duration::from_millis(number(3)),
            Duration::from_millis(number(4)),
        ),
        "count" => count(&manager, number(2)),
        "swap-count" => swap_count(&manager, number(2), number(3)),
        "share-stderr" => {
            share_stderr(&manager, arg(2));
            Ok(())
        }
        other => panic!("unknown mode {other:?}"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            println!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

type Result<T = ()> = std::result::Result<T, easycaching::Error>;

fn emit(line: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    // A test that stopped listening is not this worker's failure.
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

fn serve(manager: &CacheManager) -> Result {
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.splitn(4, ' ').collect();
        let answer = match words.as_slice() {
            ["get", cache, key] => {
                manager.create_cache(cache)?.get(key)?.map_or("none".to_owned(), |v| v.to_string())
            }
            ["set", cache, key, json] => {
                manager.create_cache(cache)?.set(key, Json::parse(*json)?)?;
                "ok".to_owned()
            }
            ["take", queue] => manager.open_queue(queue)?.get()?.map_or("none".to_owned(), |v| v.to_string()),
            ["quit"] => return Ok(()),
            _ => format!("error: cannot parse {line:?}"),
        };
        emit(answer);
    }
    Ok(())
}

/// Reads and writes shared and own keys and queue items as fast as it can; any error ends it.
fn stress(manager: &CacheManager, id: u64, ops: u64) -> Result {
    let shared = manager.create_cache("shared")?;
    let own = manager.create_cache(&format!("own-{id}"))?;
    let queue = manager.create_queue("stress-queue")?;
    for i in 0..ops {
        let value = Json::from_value(&serde_json::json!({"worker": id, "i": i}))?;
        match i % 5 {
            0 => shared.set(&format!("key-{}", i % 50), value)?,
            1 => {
                shared.get(&format!("key-{}", (i * 7) % 50))?;
            }
            2 => own.set(&format!("key-{i}"), value)?,
            3 => queue.put(value)?,
            _ => {
                queue.get()?;
                shared.contains(&format!("key-{}", i % 50))?;
            }
        }
    }
    // Everything this worker wrote to its own cache must be readable now.
    for i in (2..ops).step_by(5) {
        if own.get(&format!("key-{i}"))?.is_none() {
            return Err(easycaching::Error::Storage(format!("worker {id} lost its own key-{i}")));
        }
    }
    emit(format!("ok {ops}"));
    let stats = manager.write_stats();
    emit(format!("handoffs {} {}", stats.handed_over, stats.committed_for_others));
    Ok(())
}

/// Writes forever, printing each write's number only once `set` has returned: the test kills
/// it at a random moment and then checks that every number printed is in the database.
fn ledger(manager: &CacheManager, prefix: &str) -> Result {
    let cache = manager.create_cache("ledger")?;
    emit("ready");
    for i in 0u64.. {
        cache.set(&format!("{prefix}k{i}"), Json::from_value(&i)?)?;
        emit(i);
    }
    Ok(())
}

/// Adds one to the counter `{"n": N}` under "hits" of cache "swapped" `times` times, each by
/// reading it and swapping in N + 1 with `compare_and_swap` until a swap goes through, printing
/// each N + 1 stored. Odd workers expect the value written out again (spaced, members
/// reordered), as another language's SDK would send it, not the text read.
fn swap_count(manager: &CacheManager, id: u64, times: u64) -> Result {
    let counters = manager.create_cache("swapped")?;
    for _ in 0..times {
        loop {
            let read = counters.get("hits")?;
            let current: serde_json::Value = match &read {
                Some(value) => value.deserialize()?,
                None => serde_json::json!({"n": 0}),
            };
            let n = current["n"].as_u64().unwrap_or_default() + 1;
            let expected = match &read {
                Some(_) if id % 2 == 1 => Some(Json::parse(
                    serde_json::to_string_pretty(&current)
                        .map_err(|e| easycaching::Error::InvalidJson(e.to_string()))?,
                )?),
                _ => read,
            };
            let value = Json::from_value(&serde_json::json!({"worker": id, "n": n}))?;
            if counters.compare_and_swap("hits", expected.as_ref(), Some(value))? {
                emit(n);
                break;
            }
        }
    }
    Ok(())
}

/// Increments one shared counter `times` times, printing each sum it got back.
fn count(manager: &CacheManager, times: u64) -> Result {
    let counters = manager.create_cache("counters")?;
    for _ in 0..times {
        emit(counters.increment("hits", 1)?);
    }
    Ok(())
}

fn produce(manager: &CacheManager, queue: &str, id: u64, count: u64) -> Result {
    let queue = manager.create_queue(queue)?;
    for i in 0..count {
        queue.put(Json::from_value(&serde_json::json!({"p": id, "i": i}))?)?;
    }
    emit("done");
    Ok(())
}

/// Puts items forever, printing each one's number only once `put` has returned: the test
/// kills it at a random moment.
fn put_forever(manager: &CacheManager, queue: &str, id: u64) -> Result {
    let queue = manager.create_queue(queue)?;
    for i in 0u64.. {
        queue.put(Json::from_value(&serde_json::json!({"p": id, "i": i}))?)?;
        emit(i);
    }
    Ok(())
}

/// Takes items in batches of 1 to 5, saying how many it is about to take before each take, so
/// that a test that kills it knows how many items a take cut short could have removed.
fn consume(manager: &CacheManager, queue: &str) -> Result {
    let queue = manager.open_queue(queue)?;
    let mut empty_since: Option<Instant> = None;
    for round in 0usize.. {
        let max = round % 5 + 1;
        emit(format!("take {max}"));
        let items = queue.get_many(max)?;
        if items.is_empty() {
            if empty_since.get_or_insert_with(Instant::now).elapsed() > Duration::from_secs(1) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(2));
            continue;
        }
        empty_since = None;
        let mut line = String::from("got");
        for item in items {
            let item: serde_json::Value = item.deserialize()?;
            line.push_str(&format!(" {}:{}", item["p"], item["i"]));
        }
        emit(line);
    }
    Ok(())
}

fn lease_consume(manager: &CacheManager, queue: &str, lease: Duration, handling: Duration) -> Result {
    let queue = manager.open_queue(queue)?;
    let mut empty_since: Option<Instant> = None;
    loop {
        let Some(leased) = queue.lease(lease)? else {
            if empty_since.get_or_insert_with(Instant::now).elapsed() > 2 * lease + Duration::from_secs(1) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(5));
            continue;
        };
        empty_since = None;
        let item: serde_json::Value = leased.value.deserialize()?;
        let name = format!("{}:{}", item["p"], item["i"]);
        emit(format!("leased {name} {}", leased.deliveries));
        std::thread::sleep(handling);
        match queue.ack(&leased.receipt)? {
            true => emit(format!("acked {name}")),
            false => emit(format!("late {name}")),
        }
    }
}

/// Inserts keys that sort between the stable ones and deletes them again, until time is up.
fn mutate(manager: &CacheManager, cache: &str, duration: Duration) -> Result {
    let cache = manager.open_cache(cache)?;
    let started = Instant::now();
    let mut round = 0u64;
    while started.elapsed() < duration {
        let key = format!("stable-{:04}-transient-{round}", (round * 37) % 5000);
        cache.set(&key, Json::from_value(&round)?)?;
        if round >= 3 {
            cache.delete(&format!("stable-{:04}-transient-{}", ((round - 3) * 37) % 5000, round - 3))?;
        }
        round += 1;
    }
    emit(format!("mutated {round}"));
    Ok(())
}

/// Two plugin instances sharing the process's stderr (one `HostOutput`), each stopped at 1 s:
/// `flood` 4 MB, a page (4 KiB) a write, `line` 100 bytes once `flood` is under way (and
/// held, when the stream does not keep up). Given a stderr that is
/// never read, both must end at their time limit (and its grace for their output), neither
/// held by the other's write.
fn share_stderr(manager: &CacheManager, guest: &str) {
    use easycaching_host::{
        EasyCachingCtx, HostOutput, Output, PluginLimits, RunOptions, Runtime, RuntimeConfig,
    };

    let runtime = Runtime::new(RuntimeConfig::default()).expect("a runtime");
    let plugin = runtime.load(guest).expect("the stdio_flood guest");
    let started = Instant::now();
    std::thread::scope(|scope| {
        let flood = ["write", "stderr", "4000000", "4096"];
        let line = ["write", "stderr", "100", "100"];
        for (name, delay, args) in [("flood", 0, flood), ("line", 300, line)] {
            let plugin = &plugin;
            scope.spawn(move || {
                std::thread::sleep(Duration::from_millis(delay));
                let options = RunOptions {
                    args: args.map(String::from).to_vec(),
                    output: Output::Inherit,
                    limits: PluginLimits { time: Some(Duration::from_secs(1)), ..PluginLimits::default() },
                    ..RunOptions::default()
                };
                let run = plugin.run(EasyCachingCtx::builder(manager.clone()).build(), &options);
                let ended = run.result.map_or_else(|error| error.to_string(), |()| "ok".to_owned());
                emit(format!("{name} {ended} after {} ms", started.elapsed().as_millis()));
            });
        }
    });
    // What the terminal never took is still queued; a host about to exit waits for it only so
    // long.
    let finishing = Instant::now();
    let all_written = HostOutput::finish(Duration::from_millis(500));
    emit(format!("finish {all_written} after {} ms", finishing.elapsed().as_millis()));
}
