//! The host's stdout and stderr for plugins, written by a thread of their own so that a plugin
//! never blocks in a write to them: a write queues the bytes, and a plugin that must wait (a
//! `blocking-write-and-flush`, or a full queue) waits in a future its time limit can end (see
//! [`add_bounded_waits_to_linker`](crate::add_bounded_waits_to_linker)).
//!
//! wasmtime-wasi's own inherited stdio writes in the plugin's thread, in the call itself: a
//! plugin printing to a pipe nobody reads (`easycaching run plugin.wasm | (sleep 30)`) sat in
//! that write, where no time limit reaches, until the reader read.
//!
//! Behind a stream that keeps up, nothing changes for the plugin: while nothing is queued and
//! `poll` says the host's stream would take a write of a page now, the plugin's bytes (a page
//! at most) are written straight from its thread, as before; and `blocking-write-and-flush`
//! returns once its bytes are written to the host's stream, in the order they were given, so
//! stdout and stderr interleave as before. One writer thread per stream serves every plugin of
//! the process.
//!
//! A plugin stopped at its time limit may leave bytes it wrote still queued: [`Plugin::run`]
//! gives them [`OUTPUT_GRACE`] more to be written before it returns (and the `easycaching run`
//! process exits), so that a plugin's last lines reach a slow reader but a reader that never
//! reads does not hold the host.
//!
//! [`Plugin::run`]: crate::Plugin::run
//! [`OUTPUT_GRACE`]: crate::OUTPUT_GRACE

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi_io::poll::Pollable;
use wasmtime_wasi_io::streams::{OutputStream, StreamError, StreamResult};

/// How many bytes may wait to be written, all plugins together, before writers are held back.
const QUEUE_BYTES: usize = 64 * 1024;

/// The most bytes written straight from the plugin's thread, when nothing is queued and the
/// host's stream is ready: a page, which a pipe with room for any takes without blocking
/// (`blocking-write-and-flush` is given at most 4096 bytes at a time).
const DIRECT_BYTES: usize = 4096;

/// Which of the host's streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Stdout,
    Stderr,
}

impl Which {
    fn name(self) -> &'static str {
        match self {
            Which::Stdout => "stdout",
            Which::Stderr => "stderr",
        }
    }

    /// Whether the host's stream would take [`DIRECT_BYTES`] now, without blocking: `poll`
    /// says so of a pipe with a free page (a write of at most a page then fits), of a file
    /// always, and of a terminal or socket with its buffer mostly empty.
    #[cfg(unix)]
    fn writable_now(self) -> bool {
        let fd = match self {
            Which::Stdout => libc::STDOUT_FILENO,
            Which::Stderr => libc::STDERR_FILENO,
        };
        let mut poll = libc::pollfd { fd, events: libc::POLLOUT, revents: 0 };
        // SAFETY: one valid `pollfd`, and a timeout of 0: `poll` only looks.
        let ready = unsafe { libc::poll(&mut poll, 1, 0) };
        ready == 1 && poll.revents & libc::POLLOUT != 0 && poll.revents & (libc::POLLERR | libc::POLLHUP) == 0
    }

    /// Elsewhere, whether a write would block cannot be told: every write is queued.
    #[cfg(not(unix))]
    fn writable_now(self) -> bool {
        false
    }
}

/// Why the host's stream takes no more bytes.
#[derive(Debug, Clone)]
enum Failure {
    /// Its reader is gone (a broken pipe).
    Closed,
    /// Writing failed otherwise.
    Failed(std::io::ErrorKind, String),
}

impl Failure {
    fn of(error: &std::io::Error) -> Failure {
        match error.kind() {
            std::io::ErrorKind::BrokenPipe => Failure::Closed,
            kind => Failure::Failed(kind, error.to_string()),
        }
    }

    fn stream_error(&self) -> StreamError {
        match self {
            Failure::Closed => StreamError::Closed,
            Failure::Failed(kind, message) => {
                StreamError::LastOperationFailed(std::io::Error::new(*kind, message.clone()).into())
            }
        }
    }
}

/// What the writer thread and the plugins' streams share.
struct State {
    queue: VecDeque<Bytes>,
    /// Bytes in `queue` and being written now.
    queued: usize,
    /// Bytes ever queued, and ever written (or given up on, once writing failed): a plugin's
    /// bytes are written once `written` reaches the count at which they were queued.
    enqueued: u64,
    written: u64,
    failure: Option<Failure>,
    /// Plugins waiting for the writer to make progress.
    waiting: Vec<Waker>,
    started: bool,
}

/// One of the host's streams, with the thread that writes to it.
struct Writer {
    which: Which,
    state: Mutex<State>,
    /// The writer thread waits here for bytes.
    work: Condvar,
    /// [`HostOutput::wait_written`] waits here for the writer.
    progress: Condvar,
}

impl Writer {
    fn of(which: Which) -> &'static Writer {
        static STDOUT: OnceLock<Writer> = OnceLock::new();
        static STDERR: OnceLock<Writer> = OnceLock::new();
        let cell = match which {
            Which::Stdout => &STDOUT,
            Which::Stderr => &STDERR,
        };
        cell.get_or_init(|| Writer {
            which,
            state: Mutex::new(State {
                queue: VecDeque::new(),
                queued: 0,
                enqueued: 0,
                written: 0,
                failure: None,
                waiting: Vec::new(),
                started: false,
            }),
            work: Condvar::new(),
            progress: Condvar::new(),
        })
    }

    /// The shared state. A panic while it was held (there is none to have) leaves nothing
    /// half-changed that the next user could not take as it is.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `bytes`, starting the writer thread the first time; the count of bytes queued
    /// once they are.
    fn enqueue(&'static self, bytes: Bytes) -> StreamResult<u64> {
        let mut state = self.state();
        if let Some(failure) = &state.failure {
            return Err(failure.stream_error());
        }
        if !state.started {
            state.started = true;
            let name = format!("easycaching-{}", self.which.name());
            if let Err(error) = std::thread::Builder::new().name(name.clone()).spawn(move || self.work()) {
                let failure =
                    Failure::Failed(error.kind(), format!("cannot start the host's {name} writer: {error}"));
                state.failure = Some(failure.clone());
                return Err(failure.stream_error());
            }
        }
        if state.queued == 0 && bytes.len() <= DIRECT_BYTES && self.which.writable_now() {
            // The fast path: nothing waits before these bytes, and the stream takes them now.
            let wrote = self.write(std::slice::from_ref(&bytes));
            state.enqueued += bytes.len() as u64;
            state.written = state.enqueued;
            if let Err(error) = wrote {
                let failure = Failure::of(&error);
                state.failure = Some(failure.clone());
                drop(state);
                self.progress.notify_all();
                return Err(failure.stream_error());
            }
            return Ok(state.enqueued);
        }
        state.queued += bytes.len();
        state.enqueued += bytes.len() as u64;
        state.queue.push_back(bytes);
        let end = state.enqueued;
        drop(state);
        self.work.notify_one();
        Ok(end)
    }

    /// The writer thread: writes what is queued, in order, until writing fails.
    fn work(&self) {
        loop {
            let batch: Vec<Bytes> = {
                let mut state = self.state();
                while state.queue.is_empty() {
                    state = self.work.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
                }
                state.queue.drain(..).collect()
            };
            let len: usize = batch.iter().map(Bytes::len).sum();
            let wrote = self.write(&batch);
            let waiting = {
                let mut state = self.state();
                state.queued -= len;
                state.written += len as u64;
                if let Err(error) = &wrote {
                    state.failure = Some(Failure::of(error));
                    // Nothing more is written: what waits is given up on.
                    state.queue.clear();
                    state.queued = 0;
                    state.written = state.enqueued;
                }
                std::mem::take(&mut state.waiting)
            };
            self.progress.notify_all();
            waiting.into_iter().for_each(Waker::wake);
            if wrote.is_err() {
                return;
            }
        }
    }

    fn write(&self, batch: &[Bytes]) -> std::io::Result<()> {
        fn all(mut to: impl Write, batch: &[Bytes]) -> std::io::Result<()> {
            batch.iter().try_for_each(|bytes| to.write_all(bytes))?;
            to.flush()
        }
        match self.which {
            Which::Stdout => all(std::io::stdout().lock(), batch),
            Which::Stderr => all(std::io::stderr().lock(), batch),
        }
    }
}

/// The host's stdout or stderr for a plugin's `WasiCtx`, in place of
/// `WasiCtxBuilder::inherit_stdout` and `inherit_stderr`: a plugin waiting for it to take its
/// output waits in a future, which the waits registered by
/// [`add_bounded_waits_to_linker`](crate::add_bounded_waits_to_linker) end at its deadline.
///
/// Bytes a plugin wrote are queued, with those of every other plugin of the process, and
/// written in order by a thread of the host's; [`HostOutput::wait_written`] waits for those
/// written through one `HostOutput` (and its clones).
#[derive(Clone)]
pub struct HostOutput {
    writer: &'static Writer,
    /// The count of bytes queued by the time the last one written through this was.
    end: Arc<AtomicU64>,
}

impl HostOutput {
    /// The host process's standard output.
    pub fn stdout() -> HostOutput {
        HostOutput { writer: Writer::of(Which::Stdout), end: Arc::default() }
    }

    /// The host process's standard error.
    pub fn stderr() -> HostOutput {
        HostOutput { writer: Writer::of(Which::Stderr), end: Arc::default() }
    }

    /// Waits until every byte written through this (or a clone) has been written to the host's
    /// stream, or writing it failed, but not past `deadline`; whether it got there.
    pub fn wait_written(&self, deadline: Option<Instant>) -> bool {
        let end = self.end.load(Ordering::Acquire);
        let mut state = self.writer.state();
        while state.written < end {
            state = match deadline.map(|deadline| deadline.saturating_duration_since(Instant::now())) {
                None => self.writer.progress.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner()),
                Some(left) if left.is_zero() => return false,
                Some(left) => {
                    self.writer
                        .progress
                        .wait_timeout(state, left)
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .0
                }
            };
        }
        true
    }
}

impl IsTerminal for HostOutput {
    fn is_terminal(&self) -> bool {
        match self.writer.which {
            Which::Stdout => std::io::stdout().is_terminal(),
            Which::Stderr => std::io::stderr().is_terminal(),
        }
    }
}

impl StdoutStream for HostOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(Stream { output: self.clone(), last: 0, flushing: None, permit: 0 })
    }

    /// For WASIp3, which no plugin of this host is given: wasmtime-wasi's own.
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        match self.writer.which {
            Which::Stdout => std::io::stdout().async_stream(),
            Which::Stderr => std::io::stderr().async_stream(),
        }
    }
}

/// One `output-stream` resource of a plugin, on a [`HostOutput`].
struct Stream {
    output: HostOutput,
    /// The count of bytes queued by the time this stream's last byte was.
    last: u64,
    /// Until the stream's bytes are written, when the plugin asked for a flush.
    flushing: Option<u64>,
    /// How many bytes the plugin may still `write`: what the last `check_write` allowed, less
    /// what it wrote since. wasi:io has a write past it trap, and it bounds the queue: a
    /// plugin writing without asking would otherwise queue without limit in the host's memory
    /// while the host's stream does not keep up.
    permit: usize,
}

impl Stream {
    /// Ready to take bytes: its flush done (if one was asked for) and room in the queue; or
    /// failed, which the next call reports.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.output.writer.state();
        let flushed = self.flushing.is_none_or(|until| state.written >= until);
        if state.failure.is_some() || (flushed && state.queued < QUEUE_BYTES) {
            return Poll::Ready(());
        }
        if !state.waiting.iter().any(|waker| waker.will_wake(cx.waker())) {
            state.waiting.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[async_trait::async_trait]
impl OutputStream for Stream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        if bytes.len() > self.permit {
            return Err(StreamError::Trap(wasmtime::format_err!(
                "a write of {} bytes to the host's {} exceeded the {} bytes check-write allowed",
                bytes.len(),
                self.output.writer.which.name(),
                self.permit
            )));
        }
        self.permit -= bytes.len();
        self.last = self.output.writer.enqueue(bytes)?;
        self.output.end.fetch_max(self.last, Ordering::AcqRel);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        if let Some(failure) = &self.output.writer.state().failure {
            return Err(failure.stream_error());
        }
        self.flushing = Some(self.last);
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        let state = self.output.writer.state();
        if let Some(failure) = &state.failure {
            return Err(failure.stream_error());
        }
        let room = match self.flushing {
            Some(until) if state.written < until => 0,
            _ => {
                let room = QUEUE_BYTES.saturating_sub(state.queued);
                drop(state);
                self.flushing = None;
                room
            }
        };
        self.permit = room;
        Ok(room)
    }

    /// As wasmtime-wasi's, but without its limit on attempts: other plugins' writes can fill the
    /// queue between this one's wait and its `check_write`, and then it waits again (its time
    /// limit ends the wait, not a count).
    async fn write_ready(&mut self) -> StreamResult<usize> {
        loop {
            self.ready().await;
            let permit = self.check_write()?;
            if permit > 0 {
                return Ok(permit);
            }
        }
    }
}

#[async_trait::async_trait]
impl Pollable for Stream {
    async fn ready(&mut self) {
        std::future::poll_fn(|cx| self.poll_ready(cx)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a plugin may `write` without waiting is what `check-write` allowed it, as wasi:io
    /// says (a write past it traps): a plugin writing past it again and again, to a stream the
    /// host cannot write out as fast, would otherwise queue without bound in the host's memory.
    #[test]
    fn a_write_past_what_check_write_allowed_traps_and_queues_nothing() {
        let mut stream = HostOutput::stderr().p2_stream();
        let queued = || Writer::of(Which::Stderr).state().enqueued;
        let before = queued();
        // Never asked: nothing is allowed.
        let unasked = stream.write(Bytes::from(vec![b'\n'; QUEUE_BYTES + 1]));
        assert!(matches!(unasked, Err(StreamError::Trap(_))), "{unasked:?}");
        let allowed = stream.check_write().expect("stderr takes bytes");
        assert!(allowed > 0 && allowed <= QUEUE_BYTES, "{allowed}");
        let past = stream.write(Bytes::from(vec![b'\n'; allowed + 1]));
        assert!(matches!(past, Err(StreamError::Trap(_))), "{past:?}");
        assert_eq!(queued(), before, "nothing was queued");
        // Within it, in as many writes as it takes, and no further.
        stream.write(Bytes::from_static(b"\n")).expect("allowed");
        let rest = stream.write(Bytes::from(vec![b'\n'; allowed]));
        assert!(matches!(rest, Err(StreamError::Trap(_))), "{rest:?}");
    }
}
