//! A spinner on stderr while work goes on longer than a moment, for the commands whose work
//! can take seconds with nothing else to show for them: the first load of a plugin, which
//! compiles it to machine code (a few seconds for a Python or JavaScript one; later runs map
//! the compiled code kept on disk and start at once), and a backup of a large database.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// How long work goes before the spinner shows: a load from the compiled cache is done by then.
const SHOW_AFTER: Duration = Duration::from_millis(300);

/// Runs `work`, with a spinner saying `doing` on stderr if it takes long (and stderr is a
/// terminal; nothing is drawn otherwise).
pub fn while_slow<T>(doing: impl FnOnce() -> String + Send, work: impl FnOnce() -> T) -> T {
    let (done, finished) = mpsc::channel::<()>();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            if finished.recv_timeout(SHOW_AFTER) != Err(mpsc::RecvTimeoutError::Timeout) {
                return;
            }
            let spinner = ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            spinner.set_message(doing());
            spinner.enable_steady_tick(Duration::from_millis(100));
            let _ = finished.recv();
            spinner.finish_and_clear();
        });
        let result = work();
        drop(done);
        result
    })
}

/// Runs `load`, saying that `plugin` is compiling if it takes long. `kept`: whether the
/// compiled code is kept on disk.
pub fn while_loading<T>(plugin: &Path, kept: bool, load: impl FnOnce() -> T) -> T {
    let doing = || {
        let name = plugin.file_name().unwrap_or(plugin.as_os_str()).to_string_lossy();
        match kept {
            true => format!("compiling {name} (once: kept for the next run)"),
            false => format!("compiling {name}"),
        }
    };
    while_slow(doing, load)
}
