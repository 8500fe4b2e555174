//! Bounded loops for the figures criterion cannot take (fsync-bound writes, many threads, many
//! processes, the network): each stops after a time budget or a count, whichever comes first,
//! and easycaching and its baseline take turns so that a burst of load from another process on
//! the machine falls on both.

use std::cell::Cell;
use std::convert::Infallible;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

/// Operations done in a stretch of time.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    /// Operations done.
    pub ops: u64,
    /// The time they took.
    pub elapsed: Duration,
    /// The processor time they took, user and system, on every thread (and process) that did
    /// them: [`Duration::ZERO`] where it was not measured.
    pub cpu: Duration,
}

impl Rate {
    /// `ops` operations in `elapsed`, their processor time not measured.
    pub fn new(ops: u64, elapsed: Duration) -> Rate {
        Rate { ops, elapsed, cpu: Duration::ZERO }
    }

    /// Microseconds of processor time per operation, when it was measured.
    pub fn cpu_us_per_op(&self) -> Option<f64> {
        (!self.cpu.is_zero()).then(|| self.cpu.as_secs_f64() * 1e6 / self.ops.max(1) as f64)
    }

    /// Operations per second.
    pub fn per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Nanoseconds per operation.
    pub fn ns_per_op(&self) -> f64 {
        self.elapsed.as_nanos() as f64 / self.ops.max(1) as f64
    }
}

/// Calls `op(i)` for i = 0, 1, ... until `budget` has passed or `max_ops` were done.
pub fn run_for(budget: Duration, max_ops: u64, mut op: impl FnMut(u64)) -> Rate {
    let start = Instant::now();
    let mut ops = 0;
    while ops < max_ops {
        op(ops);
        ops += 1;
        // Reading the clock costs tens of nanoseconds: look every 16 operations.
        if ops % 16 == 0 && start.elapsed() >= budget {
            break;
        }
    }
    Rate::new(ops, start.elapsed())
}

/// Runs `ours` and `baseline` in turns, `rounds` times each for `budget` (or `max_ops`), and
/// returns the median rate of each.
pub fn paired(
    rounds: usize,
    budget: Duration,
    max_ops: u64,
    mut ours: impl FnMut(u64),
    mut baseline: impl FnMut(u64),
) -> (Rate, Rate) {
    // Every operation gets a number of its own, across rounds and sides.
    let offset = Cell::new(0);
    let run = |op: &mut dyn FnMut(u64)| -> Result<Rate, Infallible> {
        let start = offset.get();
        let rate = run_for(budget, max_ops, |i| op(start + i));
        offset.set(start + rate.ops);
        Ok(rate)
    };
    let Ok(rates) = alternate(rounds, |_| run(&mut ours), |_| run(&mut baseline));
    rates
}

/// The number of a writer's `i`th operation in round `round` of [`alternate`], so that each
/// round writes values of its own.
pub fn round_op(round: usize, i: u64) -> u64 {
    round as u64 * 1_000_000_000 + i
}

/// Runs `ours(round)` and `baseline(round)` in turns, `rounds` times each, and returns the
/// median rate of each: a burst of load from elsewhere on the machine falls on both sides
/// rather than on one.
pub fn alternate<E>(
    rounds: usize,
    mut ours: impl FnMut(usize) -> Result<Rate, E>,
    mut baseline: impl FnMut(usize) -> Result<Rate, E>,
) -> Result<(Rate, Rate), E> {
    let [ours, baseline] = in_turns(rounds, [&mut ours, &mut baseline])?;
    Ok((ours, baseline))
}

/// Runs each side in turns, `rounds` times each, and returns the median rate of each, in the
/// order given: [`alternate`] for any number of sides.
pub fn in_turns<E, const SIDES: usize>(
    rounds: usize,
    mut sides: [&mut dyn FnMut(usize) -> Result<Rate, E>; SIDES],
) -> Result<[Rate; SIDES], E> {
    let mut rates: [Vec<Rate>; SIDES] = std::array::from_fn(|_| Vec::new());
    for round in 0..rounds.max(1) {
        for (side, rates) in sides.iter_mut().zip(&mut rates) {
            rates.push(side(round)?);
        }
    }
    Ok(rates.map(median_rate))
}

fn median_rate(mut rates: Vec<Rate>) -> Rate {
    rates.sort_by(|a, b| a.per_sec().total_cmp(&b.per_sec()));
    rates[rates.len() / 2]
}

/// Runs `op(thread, i)` on `threads` threads at once, each until `budget` has passed, and
/// returns the total rate, with the processor time of this whole process meanwhile (the
/// calling thread only sleeps).
pub fn concurrent(threads: usize, budget: Duration, op: impl Fn(usize, u64) + Sync) -> Rate {
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    let ready = Barrier::new(threads + 1);
    let mut cpu = Duration::ZERO;
    let elapsed = std::thread::scope(|scope| {
        for thread in 0..threads {
            let (stop, done, ready, op) = (&stop, &done, &ready, &op);
            scope.spawn(move || {
                ready.wait();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    op(thread, i);
                    i += 1;
                }
                done.fetch_add(i, Ordering::Relaxed);
            });
        }
        ready.wait();
        let (start, cpu_at_start) = (Instant::now(), processor_time());
        std::thread::sleep(budget);
        stop.store(true, Ordering::Relaxed);
        let elapsed = start.elapsed();
        // Taken when the budget ends, as `elapsed` is: what the threads do after it (finishing
        // the operation under way, and being joined) is left out.
        cpu = processor_time().saturating_sub(cpu_at_start);
        elapsed
    });
    Rate { ops: done.load(Ordering::Relaxed), elapsed, cpu }
}

/// The processor time this process has used so far, user and system, all its threads (zero
/// should the system not say).
pub fn processor_time() -> Duration {
    // SAFETY: `getrusage` only writes the struct it is given, which is plain data.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// The median of some values.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Milliseconds since the Unix epoch, the clock processes agree on.
pub fn unix_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Sleeps until `unix_millis()` reaches `at`.
pub fn sleep_until(at: u64) {
    let now = unix_millis();
    if at > now {
        std::thread::sleep(Duration::from_millis(at - now));
    }
}

/// How long after they are spawned timed children start, all at the same instant: time
/// enough for every one of them to start and open its database, even on a busy machine.
pub const CHILD_START_MILLIS: u64 = 1000;

/// The arguments of a child that runs `role` on `db` with `engine` (easycaching or its
/// baseline) from the instant `start_at` (Unix milliseconds) for `run_for`, as `run_children`
/// takes them; add the role's own arguments after.
pub fn timed_child(role: &str, engine: &str, db: &Path, start_at: u64, run_for: Duration) -> Vec<String> {
    [
        "child",
        role,
        "--engine",
        engine,
        "--db",
        &db.display().to_string(),
        "--start-at",
        &start_at.to_string(),
        "--millis",
        &run_for.as_millis().to_string(),
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Runs this very program once per entry of `children`, each with its arguments, all at
/// once, and returns what each printed on stdout, in order. Children that take turns together
/// are told when to start (Unix milliseconds) and how long to run, and start together.
pub fn run_children(children: &[Vec<String>]) -> Result<Vec<String>> {
    let exe = std::env::current_exe()?;
    let running = children
        .iter()
        .map(|args| {
            Command::new(&exe)
                .args(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .context("cannot start a child process")
        })
        .collect::<Result<Vec<_>>>()?;
    running
        .into_iter()
        .map(|child| {
            let output = child.wait_with_output()?;
            anyhow::ensure!(output.status.success(), "a child process failed: {}", output.status);
            Ok(String::from_utf8(output.stdout)?)
        })
        .collect()
}

/// The resident set size of this process and its peak, in bytes (`VmRSS`, `VmHWM`).
pub fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each round runs every side once, in the order given, and each side's figure is the
    /// median of its rounds, returned in that order.
    #[test]
    fn in_turns_runs_the_sides_in_order_and_keeps_each_median() {
        let calls = std::cell::RefCell::new(Vec::new());
        let rate = |ops: u64| Rate::new(ops, Duration::from_secs(1));
        let rates = [[5, 1, 3], [20, 40, 30]];
        let Ok([first, second]) = in_turns::<Infallible, 2>(
            3,
            [
                &mut |round| {
                    calls.borrow_mut().push(('a', round));
                    Ok(rate(rates[0][round]))
                },
                &mut |round| {
                    calls.borrow_mut().push(('b', round));
                    Ok(rate(rates[1][round]))
                },
            ],
        );
        assert_eq!(calls.into_inner(), [('a', 0), ('b', 0), ('a', 1), ('b', 1), ('a', 2), ('b', 2)]);
        assert_eq!((first.ops, second.ops), (3, 30));
    }
}
