//! Finding what `make guests` and `make host` built (guest components and the CLI binary),
//! and stopping the CLI's servers as an operator does.

use std::path::PathBuf;

/// The README's Rust examples, compiled as doc tests: the embedding example and the harness
/// example build against this workspace's crates (the guest example is for wasm32 and the
/// guest SDK, built by `make guest-rust` as the walkthrough instead).
#[doc = include_str!("../../README.md")]
mod readme {}
use std::process::Command;

pub mod small_disk;
pub use small_disk::small_disk;

/// The workspace's `target` directory (or `$CARGO_TARGET_DIR`).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// The guest component `name` (`walkthrough`, `every_operation`, `python-walkthrough`, ...),
/// from `$EASYCACHING_GUESTS` or `target/guests`.
///
/// # Panics
///
/// When it has not been built, saying how to build it: a missing guest fails its test.
pub fn guest(name: &str) -> PathBuf {
    let dir = std::env::var_os("EASYCACHING_GUESTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("guests"));
    let path = dir.join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "the guest component {} is missing: build the guests with `make guests`, or run the tests with `make test`",
        path.display()
    );
    path
}

/// A command running the release build of the `easycaching` CLI.
///
/// # Panics
///
/// When it has not been built, saying how to build it.
pub fn cli() -> Command {
    let path = target_dir().join("release/easycaching");
    assert!(
        path.exists(),
        "{} is missing: build it with `make host`, or run the tests with `make test`",
        path.display()
    );
    let mut command = Command::new(path);
    command.env_remove("EASYCACHING_DB").env("EASYCACHING_LOG", "warn");
    command
}

/// Sends SIGTERM to `child`, as an operator or a service manager stops a server, through the
/// shell's own `kill` (no dependency for one signal, and no procps needed).
///
/// # Panics
///
/// When the signal could not be sent.
pub fn terminate(child: &std::process::Child) {
    let pid = child.id();
    let sent = Command::new("sh").args(["-c", &format!("kill -TERM {pid}")]).status().expect("sh runs");
    assert!(sent.success(), "kill -TERM {pid} failed");
}

/// The lines `stdout` (a child's) carries, as they come, read on a thread of their own so
/// that a test can wait for one with a timeout. The thread reads until the pipe closes, also
/// once nobody receives, so the child never writes into a closed pipe.
pub fn lines_of(stdout: std::process::ChildStdout) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (send, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = send.send(line);
        }
    });
    lines
}

/// The address `easycaching serve` listens on, `http://host:port`, from the line it first
/// prints.
///
/// # Panics
///
/// When the line holds no address.
pub fn listening_url(line: &str) -> String {
    line.split_whitespace()
        .find(|word| word.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .trim_end_matches('/')
        .to_owned()
}

/// Lines of text, for comparing output line by line.
pub fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}
