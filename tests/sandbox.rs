//! Hostile and buggy guests: each gets its clear error, nothing half-written stays behind, and
//! the host goes on serving a well-behaved guest afterwards.

use std::time::{Duration, Instant};

use easycaching_harness::{Error, Harness, PluginLimits};
use easycaching_tests::{guest, lines};

/// After every misbehaving guest the host goes on: a well-behaved guest runs on the same
/// runtime, and the database the bad guest used still reads and writes.
fn still_serves(harness: &Harness) {
    let good = Harness::new().unwrap().allow("cache:data=rwc").args(["set", "after", "true"]);
    let run = good.run(guest("read_write")).unwrap();
    assert!(run.result.is_ok(), "a good guest failed after a bad one: {:?}", run.result);
    let after = harness.manager().create_cache("still-serving").unwrap();
    after.set_value("k", &1).unwrap();
    assert_eq!(after.get_value::<u32>("k").unwrap(), Some(1));
}

fn limits(change: impl FnOnce(&mut PluginLimits)) -> PluginLimits {
    let mut limits = PluginLimits::default();
    change(&mut limits);
    limits
}

#[test]
fn an_infinite_loop_is_stopped_at_its_time_limit() {
    let harness = Harness::new().unwrap().limits(limits(|l| l.time = Some(Duration::from_millis(300))));
    let started = Instant::now();
    let run = harness.run(guest("infinite_loop")).unwrap();
    let elapsed = started.elapsed();
    let error = run.result.expect_err("an infinite loop cannot succeed");
    assert!(matches!(error, Error::TimedOut { limit } if limit == Duration::from_millis(300)), "{error}");
    assert!(error.to_string().contains("time limit"), "{error}");
    assert!(elapsed < Duration::from_secs(10), "stopping took {elapsed:?}");
    assert_eq!(run.stdout, b"looping\n");
    still_serves(&harness);
}

#[test]
fn a_memory_bomb_is_stopped_at_its_memory_limit_while_others_run() {
    let harness =
        Harness::new().unwrap().allow("cache:data=rwc").limits(limits(|l| l.memory_bytes = 64 << 20));
    std::thread::scope(|scope| {
        let bomb = scope.spawn(|| harness.run(guest("memory_bomb")).unwrap());
        // A well-behaved guest on another thread is not disturbed.
        let good = Harness::new().unwrap().allow("cache:data=rwc").args(["touch", "200"]);
        let run = good.run(guest("read_write")).unwrap();
        assert!(run.result.is_ok(), "{:?}", run.result);
        let run = bomb.join().unwrap();
        let error = run.result.expect_err("a memory bomb cannot succeed");
        assert!(matches!(error, Error::OutOfMemory { limit } if limit == 64 << 20), "{error}");
        assert!(error.to_string().contains("memory limit of 64 MiB"), "{error}");
    });
    still_serves(&harness);
}

#[test]
fn a_guest_asleep_is_stopped_at_its_time_limit() {
    let harness = Harness::new().unwrap().limits(limits(|l| l.time = Some(Duration::from_millis(300))));
    let started = Instant::now();
    let run = harness.run(guest("sleeper")).unwrap();
    let elapsed = started.elapsed();
    let error = run.result.expect_err("a 10 s sleep cannot finish within 300 ms");
    assert!(matches!(error, Error::TimedOut { .. }), "{error}");
    assert!(elapsed < Duration::from_secs(3), "stopping took {elapsed:?}");
    assert_eq!(run.stdout, b"sleeping\n");
    still_serves(&harness);
    // Within its time, a sleep ends as asked.
    let short =
        Harness::new().unwrap().limits(limits(|l| l.time = Some(Duration::from_secs(5)))).args(["50"]);
    let run = short.run(guest("sleeper")).unwrap();
    assert!(run.result.is_ok(), "{:?}", run.result);
    assert_eq!(run.stdout, b"sleeping\nslept\n");
}

#[test]
fn runaway_recursion_ends_in_a_trap_not_a_host_crash() {
    let harness = Harness::new().unwrap();
    let run = harness.run(guest("deep_recursion")).unwrap();
    let error = run.result.expect_err("unbounded recursion cannot succeed");
    assert!(matches!(error, Error::Trapped { .. }), "{error}");
    assert!(error.to_string().contains("stack"), "{error}");
    still_serves(&harness);
}

#[test]
fn fuel_stops_a_guest_at_the_same_point_every_time() {
    let harness =
        Harness::new().unwrap().allow("cache:batches=rwc").limits(limits(|l| l.fuel = Some(20_000_000)));
    let first = harness.run(guest("interrupted_writes")).unwrap();
    let error = first.result.expect_err("the writer never stops by itself");
    assert!(matches!(error, Error::OutOfFuel { limit: 20_000_000 }), "{error}");
    let written = harness.cache("batches").unwrap().len().unwrap();
    assert!(written > 0 && written.is_multiple_of(100), "{written} entries: a batch was cut in half");

    let again =
        Harness::new().unwrap().allow("cache:batches=rwc").limits(limits(|l| l.fuel = Some(20_000_000)));
    again.run(guest("interrupted_writes")).unwrap().result.unwrap_err();
    assert_eq!(
        again.cache("batches").unwrap().len().unwrap(),
        written,
        "the same fuel stopped at another point"
    );
}

/// Every batch written by `interrupted_writes` must be there whole, or not at all.
fn batches_are_whole(harness: &Harness) -> u64 {
    let cache = harness.cache("batches").unwrap();
    let mut counts = std::collections::HashMap::<u64, u32>::new();
    for entry in cache.iter() {
        let (key, _) = entry.unwrap();
        let batch: u64 = key.split('-').nth(1).unwrap().parse().unwrap();
        *counts.entry(batch).or_default() += 1;
    }
    for (batch, count) in &counts {
        assert_eq!(*count, 100, "batch {batch} is half-written: {count} of 100 entries");
    }
    counts.len() as u64
}

#[test]
fn a_guest_stopped_in_the_middle_of_its_writes_leaves_no_half_written_batch() {
    for millis in [50, 120, 310] {
        let harness = Harness::new()
            .unwrap()
            .allow("cache:batches=rwc")
            .limits(limits(|l| l.time = Some(Duration::from_millis(millis))));
        let run = harness.run(guest("interrupted_writes")).unwrap();
        assert!(matches!(run.result, Err(Error::TimedOut { .. })), "{:?}", run.result);
        batches_are_whole(&harness);
        still_serves(&harness);
    }
}

#[test]
fn a_guest_that_panics_between_writes_keeps_what_it_finished_and_nothing_else() {
    let harness = Harness::new().unwrap().allow("cache:batches=rwc").args(["panic-after", "7"]);
    let run = harness.run(guest("interrupted_writes")).unwrap();
    let error = run.result.as_ref().expect_err("the guest panics");
    assert!(matches!(error, Error::Trapped { .. }), "{error}");
    assert!(run.stderr_text().contains("giving up after 7 batches"), "{}", run.stderr_text());
    assert_eq!(batches_are_whole(&harness), 7);
    still_serves(&harness);
}

#[test]
fn hostile_names_oversized_input_quotas_deleted_caches_and_hoarded_handles_are_errors() {
    let harness = Harness::new()
        .unwrap()
        .allow("cache:*=rwc,entries=100")
        .allow("queue:*=rwc")
        .limits(limits(|l| l.max_handles = 50));
    let run = harness.run(guest("hostile")).unwrap();
    assert!(run.result.is_ok(), "{:?}\n{}", run.result, run.stderr_text());
    assert_eq!(
        lines(&run.stdout_text()),
        [
            "empty name: invalid-name",
            "sql name: invalid-name",
            "quote name: invalid-name",
            "path name: invalid-name",
            "absolute name: invalid-name",
            "backslash name: invalid-name",
            "nul name: invalid-name",
            "newline name: invalid-name",
            "escape name: invalid-name",
            "unicode name: invalid-name",
            "wildcard name: invalid-name",
            "huge name: invalid-name",
            "huge key: too-large",
            "huge value: too-large",
            "huge batch: too-large",
            "key with nul: ok ()",
            "read key with nul: ok Some(1)",
            "fill to quota: ok ()",
            "one over quota: quota-exceeded",
            "replace within quota: ok ()",
            "len after quota: ok 100",
            "delete cache under a handle: ok true",
            "get after delete: no-such-cache",
            "set after delete: no-such-cache",
            "delete queue under a handle: ok true",
            "put after delete: no-such-queue",
            "hoard handles: quota-exceeded",
            "open after dropping the hoard: ok ()",
        ]
    );
    let names: Vec<String> = harness.manager().list_caches().unwrap().into_iter().map(|c| c.name).collect();
    assert_eq!(names, ["hostile"], "only the well-named cache may exist");
    assert_eq!(harness.cache("hostile").unwrap().len().unwrap(), 100);
    still_serves(&harness);
}

#[test]
fn a_forged_handle_traps_the_guest_and_the_host_goes_on() {
    let harness = Harness::new().unwrap().allow("cache:forged=rwc");
    let run = harness.run(guest("use_after_drop")).unwrap();
    let error = run.result.as_ref().expect_err("a forged handle must not work");
    assert!(matches!(error, Error::Trapped { .. }), "{error}");
    assert!(!run.stdout_text().contains("let a dropped handle through"), "{}", run.stdout_text());
    still_serves(&harness);
}

#[test]
fn a_quota_on_a_prefix_grant_bounds_everything_under_it_together() {
    let harness = Harness::new().unwrap().allow("cache:tenant.*=rwc,entries=150");
    let harness = harness.args(["touch", "100", "tenant.a"]);
    let first = harness.run(guest("read_write")).unwrap();
    assert!(first.result.is_ok(), "{:?}", first.result);
    // A second cache under the same grant shares the same 150 entries.
    let harness = harness.args(["touch", "100", "tenant.b"]);
    let second = harness.run(guest("read_write")).unwrap();
    assert!(second.result.is_err(), "the second 100 entries went over the shared quota");
    assert!(second.stderr_text().contains("QuotaExceeded"), "{}", second.stderr_text());
    assert!(second.stderr_text().contains("everything named tenant.*"), "{}", second.stderr_text());
    let total: u64 = harness.manager().list_caches().unwrap().iter().map(|c| c.entries).sum();
    assert_eq!(total, 150, "the second cache filled up to the shared quota and no further");
}

/// Fills `jobs` with `count` JSON strings of `bytes` bytes of JSON each (quotes included),
/// numbered so their order shows.
fn seed_jobs(harness: &Harness, count: usize, bytes: usize) -> Vec<String> {
    let items: Vec<String> = (0..count).map(|i| format!("{i:04}{}", "x".repeat(bytes - 6))).collect();
    harness.seed_queue("jobs", &items).unwrap();
    items
}

#[test]
fn items_taken_that_do_not_fit_in_the_guest_go_back_to_the_front_of_the_queue() {
    for mode in [&["one"][..], &["many", "50"], &["many-wait", "60000"]] {
        let tight = Harness::new().unwrap().allow("queue:jobs=rw");
        let items = seed_jobs(&tight, 6, 1 << 20);
        // An item put after the items were given back comes out after them.
        let tight = tight.limits(limits(|l| l.memory_bytes = 2 << 20)).args(mode.iter().copied());
        let run = tight.run(guest("queue_taker")).unwrap();
        let error = run.result.expect_err("the items cannot fit in 2 MiB of guest memory");
        assert!(matches!(error, Error::OutOfMemory { .. } | Error::Trapped { .. }), "{mode:?}: {error}");
        assert!(run.stdout.is_empty(), "{mode:?}: the guest received something");

        let jobs = tight.queue("jobs").unwrap();
        jobs.put_value("last").unwrap();
        assert_eq!(jobs.len().unwrap(), 7, "{mode:?}: items were lost on their way into the guest");
        let mut left: Vec<String> = Vec::new();
        while let Some(item) = jobs.get_value::<String>().unwrap() {
            left.push(item);
        }
        let mut expected = items.clone();
        expected.push("last".into());
        assert!(left == expected, "{mode:?}: the queue's order changed");
        still_serves(&tight);
    }
}

/// Runs `queue_taker` with `args` on `harness`'s database: the harness back, how the run
/// ended, and what it printed, line by line.
fn leased(harness: Harness, args: &[&str]) -> (Harness, Result<(), Error>, Vec<String>) {
    let harness = harness.args(args.iter().copied());
    let run = harness.run(guest("queue_taker")).unwrap();
    let printed = lines(&String::from_utf8_lossy(&run.stdout)).into_iter().map(str::to_owned).collect();
    (harness, run.result.map(|_| ()), printed)
}

/// Waits until the item `get` would take next is `item`: a lease on it ended.
fn until_next_is(queue: &easycaching::Queue, item: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while queue.peek().unwrap().map(|next| next.deserialize::<String>().unwrap()).as_deref() != Some(item) {
        assert!(Instant::now() < deadline, "the lease never ended");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn an_item_leased_by_a_plugin_that_traps_is_handed_out_again_when_the_lease_ends() {
    // On a clock of the test's: the lease ends when the test says, not on a slow machine's
    // schedule.
    let clock = easycaching_harness::ManualClock::new();
    let harness = Harness::with_database(|database| database.clock(&clock)).unwrap().allow("queue:jobs=rw");
    harness.seed_queue("jobs", ["first", "second"]).unwrap();
    let (harness, result, printed) = leased(harness, &["lease", "60000", "trap"]);
    assert!(matches!(result, Err(Error::Trapped { .. })), "{result:?}");
    assert_eq!(printed, [r#"leased "first" (delivery 1, 5 bytes)"#]);
    let jobs = harness.queue("jobs").unwrap();
    assert_eq!(jobs.len().unwrap(), 2, "the trap lost the item");
    clock.advance(Duration::from_millis(59_999));
    assert_eq!(jobs.peek().unwrap().map(|next| next.to_string()).as_deref(), Some(r#""second""#));

    clock.advance(Duration::from_millis(1));
    assert_eq!(jobs.peek().unwrap().map(|next| next.to_string()).as_deref(), Some(r#""first""#));
    let (harness, result, printed) = leased(harness, &["lease", "60000", "ack"]);
    result.unwrap();
    assert_eq!(printed, [r#"leased "first" (delivery 2, 5 bytes)"#, "acknowledged: true"]);
    assert_eq!(jobs.len().unwrap(), 1);
    assert_eq!(jobs.get_value::<String>().unwrap().as_deref(), Some("second"));
    let (_, result, printed) = leased(harness, &["lease", "60000", "ack"]);
    result.unwrap();
    assert_eq!(printed, ["nothing waits"]);
}

#[test]
fn a_plugin_reads_the_manual_clock_its_host_tells_ttls_by() {
    let start = std::time::UNIX_EPOCH + Duration::from_millis(1_000_000_000_123);
    let clock = easycaching_harness::ManualClock::at(start);
    let harness = Harness::with_database(|database| database.clock(&clock)).unwrap();
    let read = |harness: &Harness| {
        let run = harness.run(guest("wall_clock")).unwrap();
        run.result.unwrap();
        lines(&String::from_utf8_lossy(&run.stdout)).join("\n")
    };
    assert_eq!(read(&harness), "1000000000123");
    clock.advance(Duration::from_millis(1500));
    assert_eq!(read(&harness), "1000000001623");
    // On the system's clock (the default), the plugin reads the system's time.
    let system = read(&Harness::new().unwrap()).parse::<u128>().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    assert!(now.abs_diff(system) < 60_000, "{system} against {now}");
}

#[test]
fn an_item_leased_that_does_not_fit_in_the_guest_is_handed_out_again_when_the_lease_ends() {
    let tight = Harness::new().unwrap().allow("queue:jobs=rw");
    let items = seed_jobs(&tight, 2, 1 << 20);
    let tight = tight.limits(limits(|l| l.memory_bytes = 2 << 20));
    let (tight, result, printed) = leased(tight, &["lease", "300", "ack"]);
    let error = result.expect_err("the item cannot fit in 2 MiB of guest memory");
    assert!(matches!(error, Error::OutOfMemory { .. } | Error::Trapped { .. }), "{error}");
    assert!(printed.is_empty(), "the guest received something: {printed:?}");
    let jobs = tight.queue("jobs").unwrap();
    assert_eq!(jobs.len().unwrap(), 2);
    until_next_is(&jobs, &items[0]);
    let again = jobs.lease(Duration::from_secs(60)).unwrap().expect("the item, again");
    assert_eq!(again.value.deserialize::<String>().unwrap(), items[0]);
    assert_eq!(again.deliveries, 2);
}

#[test]
fn a_plugin_waiting_for_an_item_gets_what_is_put_meanwhile_and_stops_at_its_time_limit() {
    let harness = Harness::new().unwrap().allow("queue:jobs=rw");
    harness.seed_queue("jobs", [""; 0]).unwrap();
    let jobs = harness.queue("jobs").unwrap();
    let taken = |harness: Harness, args: &[&str], late: &[&str]| {
        std::thread::scope(|scope| {
            if !late.is_empty() {
                scope.spawn(|| {
                    std::thread::sleep(Duration::from_millis(100));
                    let items = late.iter().map(|item| easycaching::Json::from_value(item).unwrap());
                    jobs.put_many(items).unwrap();
                });
            }
            leased(harness, args)
        })
    };
    // Put while the plugin waits: it gets the item, by get-wait or lease-wait, or every item
    // of the put by get-many-wait.
    let (harness, result, printed) = taken(harness, &["wait", "60000"], &["late"]);
    result.unwrap();
    assert_eq!(printed, [r#"received "late""#]);
    let (harness, result, printed) = taken(harness, &["lease-wait", "60000"], &["later"]);
    result.unwrap();
    assert_eq!(printed, [r#"leased "later" (delivery 1)"#, "acknowledged: true"]);
    let (harness, result, printed) = taken(harness, &["many-wait", "60000"], &["one", "two", "three"]);
    result.unwrap();
    assert_eq!(printed, [r#"received ["one", "two", "three"], 11 bytes"#]);
    let (harness, result, printed) = taken(harness, &["lease-many-wait", "60000"], &["four", "five"]);
    result.unwrap();
    let acknowledged = "acknowledged: true";
    assert_eq!(
        printed,
        [r#"leased "four" (delivery 1)"#, acknowledged, r#"leased "five" (delivery 1)"#, acknowledged]
    );
    assert_eq!(jobs.len().unwrap(), 0);
    // Nothing put: nothing after its timeout.
    let (harness, result, printed) = taken(harness, &["wait", "50"], &[]);
    result.unwrap();
    assert_eq!(printed, ["nothing came"]);
    let (harness, result, printed) = taken(harness, &["many-wait", "50"], &[]);
    result.unwrap();
    assert_eq!(printed, ["nothing came"]);

    // A time limit stops a wait that would outlast it, as it stops a sleep, and takes nothing.
    let mut limited = harness.limits(limits(|l| l.time = Some(Duration::from_millis(300))));
    for mode in ["wait", "lease-wait", "many-wait", "lease-many-wait"] {
        let started = Instant::now();
        let (harness, result, printed) = leased(limited, &[mode, "20000"]);
        assert!(matches!(result, Err(Error::TimedOut { .. })), "{mode}: {result:?}");
        assert!(printed.is_empty(), "{mode}: {printed:?}");
        assert!(started.elapsed() < Duration::from_secs(10), "{mode}: waited past its time limit");
        limited = harness;
    }
    jobs.put_value("after").unwrap();
    assert_eq!(jobs.get_value::<String>().unwrap().as_deref(), Some("after"));
}

#[test]
fn items_a_guest_received_are_taken_once_and_the_rest_wait() {
    let harness = Harness::new().unwrap().allow("queue:jobs=rw").args(["many", "50"]);
    let items = seed_jobs(&harness, 6, 1 << 20);
    let run = harness.run(guest("queue_taker")).unwrap();
    run.result.unwrap();
    // get-many stops once it has 4 MiB of items.
    assert_eq!(lines(&String::from_utf8_lossy(&run.stdout)), ["received 4 items, 4194296 bytes"]);
    let jobs = harness.queue("jobs").unwrap();
    assert_eq!(jobs.get_value::<String>().unwrap().as_ref(), Some(&items[4]));
}

/// The store data of an embedder's host: WASI, the easycaching interfaces, and a deadline.
struct Embedder {
    table: wasmtime::component::ResourceTable,
    wasi: wasmtime_wasi::WasiCtx,
    easycaching: easycaching_host::EasyCachingCtx,
    deadline: Option<Instant>,
}

impl wasmtime_wasi::WasiView for Embedder {
    fn ctx(&mut self) -> wasmtime_wasi::WasiCtxView<'_> {
        wasmtime_wasi::WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

#[test]
fn an_embedders_guest_blocked_reading_a_stdin_that_never_ends_is_stopped_at_its_deadline() {
    use wasmtime::component::{Component, Linker};
    use wasmtime_wasi::cli::AsyncStdinStream;

    let dir = tempfile::tempdir().unwrap();
    let engine = wasmtime::Engine::default();
    let mut linker: Linker<Embedder> = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).unwrap();
    easycaching_host::add_bounded_waits_to_linker(&mut linker, |state: &mut Embedder| {
        (&mut state.table, state.deadline)
    })
    .unwrap();
    easycaching_host::add_to_linker(&mut linker, |state: &mut Embedder| {
        easycaching_host::EasyCaching::new(&state.easycaching, &mut state.table)
    })
    .unwrap();
    // A stdin whose writer stays open and writes nothing: a read waits for ever.
    let (writer, reader) = tokio::io::duplex(64);
    let manager = easycaching::CacheManager::open(dir.path().join("embedder.db")).unwrap();
    let state = Embedder {
        table: PluginLimits::default().resource_table().unwrap(),
        wasi: wasmtime_wasi::WasiCtx::builder()
            .args(&["stdio_flood", "read"])
            .stdin(AsyncStdinStream::new(reader))
            .build(),
        easycaching: easycaching_host::EasyCachingCtx::builder(manager).build(),
        deadline: Some(Instant::now() + Duration::from_millis(300)),
    };
    let component = Component::from_file(&engine, guest("stdio_flood")).unwrap();
    let started = Instant::now();
    let (done, ran) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut store = wasmtime::Store::new(&engine, state);
        let command =
            wasmtime_wasi::p2::bindings::sync::Command::instantiate(&mut store, &component, &linker).unwrap();
        let _ = done.send(command.wasi_cli_run().call_run(&mut store).map(|_| ()));
    });
    let ran = ran.recv_timeout(Duration::from_secs(10)).expect("the read never ended");
    let error = ran.expect_err("stdin never ends");
    assert_eq!(error.downcast_ref::<wasmtime::Trap>(), Some(&wasmtime::Trap::Interrupt), "{error:#}");
    assert!(started.elapsed() < Duration::from_secs(3), "stopped after {:?}", started.elapsed());
    drop(writer);
}

/// A terminal (a pseudo-terminal's both ends) that nobody reads: writes to it block once its
/// buffer is full, and one that `poll` said it would take can block too, when the room left
/// is less than the write (as a terminal paused with Ctrl-S does).
#[cfg(target_os = "linux")]
fn unread_terminal() -> (std::fs::File, std::fs::File) {
    use std::os::fd::FromRawFd;
    use std::os::unix::fs::OpenOptionsExt;

    // SAFETY: posix_openpt's descriptor is checked and then owned by the File; ptsname_r
    // writes a NUL-terminated name into the buffer given with its length.
    unsafe {
        let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(master >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
        let master = std::fs::File::from_raw_fd(master);
        let fd = std::os::fd::AsRawFd::as_raw_fd(&master);
        assert_eq!(libc::grantpt(fd), 0, "grantpt: {}", std::io::Error::last_os_error());
        assert_eq!(libc::unlockpt(fd), 0, "unlockpt: {}", std::io::Error::last_os_error());
        let mut name = [0 as libc::c_char; 128];
        assert_eq!(libc::ptsname_r(fd, name.as_mut_ptr(), name.len()), 0, "ptsname_r");
        let name = std::ffi::CStr::from_ptr(name.as_ptr()).to_str().unwrap().to_owned();
        let terminal = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open(&name)
            .unwrap();
        (master, terminal)
    }
}

/// `easycaching serve` runs many plugins on one stdout and stderr: one whose writes the host's
/// stream does not take must not hold the others, which must still end at their own time limit.
#[cfg(target_os = "linux")]
#[test]
fn a_plugin_blocked_writing_to_a_terminal_nobody_reads_holds_no_other_plugin_sharing_it() {
    let dir = tempfile::tempdir().unwrap();
    let (master, terminal) = unread_terminal();
    let mut worker = std::process::Command::new(env!("CARGO_BIN_EXE_easycaching-test-worker"))
        .arg(dir.path().join("stderr.db"))
        .args(["share-stderr"])
        .arg(guest("stdio_flood"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(terminal)
        .spawn()
        .unwrap();
    let lines = easycaching_tests::lines_of(worker.stdout.take().unwrap());
    let mut ended = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while ended.len() < 3 {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            // (The guests' own stdout comes here too.)
            Ok(text) if ["flood ", "line ", "finish "].iter().any(|name| text.starts_with(name)) => {
                ended.push(text)
            }
            Ok(_) => {}
            Err(_) => {
                let _ = worker.kill();
                let _ = worker.wait();
                panic!("after 30 s, only these plugins ended: {ended:?}");
            }
        }
    }
    let _ = worker.wait();
    drop(master);
    ended.sort();
    let ms = |text: &str| -> u64 { text.rsplit(' ').nth(1).and_then(|ms| ms.parse().ok()).unwrap() };
    for (text, name) in ended.iter().zip(["finish", "flood", "line"]) {
        assert!(text.starts_with(name), "{ended:?}");
    }
    for text in &ended[1..] {
        assert!(text.contains("ran past its time limit of 1s and was stopped"), "{ended:?}");
        // Its second (the line's starts 0.3 s in): `Plugin::run` returns at its time limit and
        // leaves what the terminal did not take queued, without waiting for it.
        assert!(ms(text) < 2_500, "{ended:?}");
    }
    // A host about to exit waits for that output, but only as long as it says.
    assert!(ended[0].starts_with("finish false "), "{ended:?}");
    assert!((450..2_500).contains(&ms(&ended[0])), "{ended:?}");
}
