//! A spinner on stderr while a plugin loads slowly. The first run of a plugin compiles it to
//! machine code: a few seconds for a Python or JavaScript one, with nothing else to show for
//! them. Later runs map the compiled code kept on disk and start at once, before it shows.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// How long a load goes before the spinner shows: a load from the compiled cache is done by then.
const SHOW_AFTER: Duration = Duration::from_millis(300);

/// Runs `load`, with a spinner naming `plugin` on stderr if it takes long (and stderr is a
/// terminal; nothing is drawn otherwise). `kept`: whether the compiled code is kept on disk.
pub fn while_loading<T>(plugin: &Path, kept: bool, load: impl FnOnce() -> T) -> T {
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
            let name = plugin.file_name().unwrap_or(plugin.as_os_str()).to_string_lossy();
            spinner.set_message(match kept {
                true => format!("compiling {name} (once: kept for the next run)"),
                false => format!("compiling {name}"),
            });
            spinner.enable_steady_tick(Duration::from_millis(100));
            let _ = finished.recv();
            spinner.finish_and_clear();
        });
        let loaded = load();
        drop(done);
        loaded
    })
}
