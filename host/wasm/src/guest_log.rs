//! The host's log lines that guests cause, within a budget.
//!
//! `wasi:keyvalue`'s `access-denied` and `no-such-store` carry no message, so why a call was
//! refused goes to the host's log (see `Error::into_keyvalue`). Every such line is a guest's
//! doing: a plugin that retries a refused call in a loop, or a handler refused on every request
//! under `easycaching serve`, would otherwise write a line per call, as fast as it can call,
//! and fill the host's disk with its log. So the process logs at most [`LINES_PER_WINDOW`] of
//! them in each [`WINDOW`] at their level; the rest go out at `debug` level only. The first line
//! held back in a window says, at its level, that the rest of the window's are held back (so a
//! log read at the default level shows that lines were left out, even when no line follows),
//! and the next line logged at its level says how many were. Denials (warnings) and stores not
//! found (info) have a budget each, so that lines nobody reads at the default level (`warn`)
//! leave the denials theirs, and a line whose level is off spends none.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lines a guest can cause that the process logs at their level in one [`WINDOW`].
pub(crate) const LINES_PER_WINDOW: u32 = 10;

/// How long a window of [`LINES_PER_WINDOW`] lines lasts.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);

/// The process's budget for the denials guests cause.
static DENIALS: LogBudget = LogBudget::new(LINES_PER_WINDOW, WINDOW);

/// The process's budget for the stores not found that guests cause.
static STORES_NOT_FOUND: LogBudget = LogBudget::new(LINES_PER_WINDOW, WINDOW);

/// The log target of these lines.
const TARGET: &str = "easycaching_host::keyvalue";

/// What to do with one log line a guest caused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Log it at its level; `held_back` lines before it went out at `debug` level only.
    AtItsLevel { held_back: u64 },
    /// Log it at `debug` level only, and say at its level that the rest of this window's lines
    /// are held back too: the first line over the budget of this window.
    FirstHeldBack,
    /// Log it at `debug` level only: the budget of this window is spent, and said so.
    DebugOnly,
}

/// At most `lines` log lines at their level in each window of `window`, counting those held
/// back.
pub(crate) struct LogBudget {
    lines: u32,
    window: Duration,
    state: Mutex<Window>,
}

/// The window under way: when it began, how many lines it logged and how many were held back
/// since a line last said so.
struct Window {
    began: Option<Instant>,
    logged: u32,
    held_back: u64,
    /// This window held a line back already (and said so).
    holding_back: bool,
}

impl LogBudget {
    /// A budget of `lines` a `window`.
    pub(crate) const fn new(lines: u32, window: Duration) -> LogBudget {
        LogBudget {
            lines,
            window,
            state: Mutex::new(Window { began: None, logged: 0, held_back: 0, holding_back: false }),
        }
    }

    /// Whether a line caused at `now` is logged at its level.
    pub(crate) fn admit(&self, now: Instant) -> Admission {
        // A thread that panicked holding the lock left counts, which stay good to use.
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if state.began.is_none_or(|began| now.saturating_duration_since(began) >= self.window) {
            state.began = Some(now);
            state.logged = 0;
            state.holding_back = false;
        }
        if state.logged == self.lines {
            state.held_back += 1;
            let said_so = std::mem::replace(&mut state.holding_back, true);
            return if said_so { Admission::DebugOnly } else { Admission::FirstHeldBack };
        }
        state.logged += 1;
        Admission::AtItsLevel { held_back: std::mem::take(&mut state.held_back) }
    }
}

/// Logs a `wasi:keyvalue` error a guest caused, `what` (`access-denied`, `no-such-store`) and
/// why, at `warn` level for a denial and `info` otherwise, within the process's budget for it.
pub(crate) fn keyvalue_error(what: &str, why: &str, denial: bool) {
    let (budget, enabled) = if denial {
        (&DENIALS, tracing::enabled!(target: TARGET, tracing::Level::WARN))
    } else {
        (&STORES_NOT_FOUND, tracing::enabled!(target: TARGET, tracing::Level::INFO))
    };
    let admission = if enabled { budget.admit(Instant::now()) } else { Admission::DebugOnly };
    match admission {
        Admission::AtItsLevel { held_back } => {
            let held_back = match held_back {
                0 => String::new(),
                n => format!(
                    " ({n} more such lines, over the {LINES_PER_WINDOW} a minute guests may cause, \
                     went out at debug level only)"
                ),
            };
            at_its_level(denial, format_args!("wasi:keyvalue {what}: {why}{held_back}"));
        }
        Admission::FirstHeldBack => {
            at_its_level(
                denial,
                format_args!(
                    "wasi:keyvalue {what}: guests caused more than {LINES_PER_WINDOW} such lines \
                     within a minute; the rest of that minute's go out at debug level only \
                     (EASYCACHING_LOG=warn,{TARGET}=debug shows them)"
                ),
            );
            tracing::debug!(target: TARGET, "wasi:keyvalue {what}: {why}");
        }
        Admission::DebugOnly => tracing::debug!(target: TARGET, "wasi:keyvalue {what}: {why}"),
    }
}

/// Logs `line` at the level of its kind: `warn` for a denial, `info` otherwise.
fn at_its_level(denial: bool, line: std::fmt::Arguments<'_>) {
    if denial {
        tracing::warn!(target: TARGET, "{line}");
    } else {
        tracing::info!(target: TARGET, "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A window logs its budget at the lines' level and holds the rest back, saying so once;
    /// the first line of the next window says how many were held back, and the count starts
    /// again.
    #[test]
    fn a_window_logs_its_budget_and_the_next_counts_what_was_held_back() {
        let budget = LogBudget::new(3, Duration::from_secs(60));
        let start = Instant::now();
        let at = |seconds: u64| start + Duration::from_secs(seconds);
        for second in 0..3 {
            assert_eq!(budget.admit(at(second)), Admission::AtItsLevel { held_back: 0 });
        }
        assert_eq!(budget.admit(at(3)), Admission::FirstHeldBack);
        for second in 4..8 {
            assert_eq!(budget.admit(at(second)), Admission::DebugOnly);
        }
        assert_eq!(budget.admit(at(59)), Admission::DebugOnly);
        assert_eq!(budget.admit(at(60)), Admission::AtItsLevel { held_back: 6 });
        assert_eq!(budget.admit(at(61)), Admission::AtItsLevel { held_back: 0 });
        assert_eq!(budget.admit(at(62)), Admission::AtItsLevel { held_back: 0 });
        assert_eq!(budget.admit(at(63)), Admission::FirstHeldBack);
        assert_eq!(budget.admit(at(64)), Admission::DebugOnly);
        assert_eq!(budget.admit(at(200)), Admission::AtItsLevel { held_back: 2 });
    }
}
