//! The host's stdout and stderr for plugins, written by a thread of their own so that a plugin
//! never blocks in a write to them: a write queues the bytes, and a plugin that must wait (a
//! `blocking-write-and-flush`, or a full queue) waits in a future its time limit can end (see
//! [`add_bounded_waits_to_linker`](crate::add_bounded_waits_to_linker)).
//!
//! wasmtime-wasi's own inherited stdio writes in the plugin's thread, in the call itself: a
//! plugin printing to a pipe nobody reads (`easycaching run plugin.wasm | (sleep 30)`) sat in
//! that write, where no time limit reaches, until the reader read.
//!
//! Behind a stream that keeps up, nothing changes for the plugin: while nothing is queued, the
//! plugin's bytes are written straight from its thread, with a write that cannot block (see
//! [`Direct`], told again for each plugin when an embedder has pointed the host's descriptor
//! elsewhere), and only what the host's stream does not take at once is queued; and
//! `blocking-write-and-flush` returns once its bytes are written to the host's stream, in the
//! order they were given, so stdout and stderr interleave as before. One writer thread per
//! stream serves every plugin of the process.
//!
//! That write straight from the plugin's thread is made holding the lock every plugin on the
//! stream takes to write, so it must never block: a blocking write(2) that `poll` had said was
//! ready still blocks when the room left is smaller than the write (a terminal nobody reads or
//! paused with Ctrl-S, a pipe another writer fills too), and it held that plugin and every
//! other one on the stream (`easycaching serve` runs many) where no time limit reaches.
//!
//! A plugin stopped at its time limit may leave bytes it wrote still queued: the writer thread
//! goes on writing them while the host process runs, and a host about to exit gives them
//! [`OUTPUT_GRACE`] with [`HostOutput::finish`] (`easycaching run` when its plugin is done,
//! `easycaching serve` once it has stopped), so that a plugin's last lines reach a slow reader
//! but a reader that never reads does not hold the host for ever.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi_io::poll::Pollable;
use wasmtime_wasi_io::streams::{OutputStream, StreamError, StreamResult};

/// How long a host about to exit waits for what plugins wrote and its stdout and stderr have not
/// taken yet: what `easycaching run` and `serve` give [`HostOutput::finish`].
pub const OUTPUT_GRACE: Duration = Duration::from_secs(2);

/// How many bytes may wait to be written, all plugins together, before writers are held back.
const QUEUE_BYTES: usize = 64 * 1024;

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

    /// Runs `write` on the host's stream through Rust's own handle, holding its lock (so that
    /// nothing the host prints with `print!` or `eprint!` comes between).
    fn with_locked<R>(self, write: impl FnOnce(&mut dyn Write) -> R) -> R {
        match self {
            Which::Stdout => write(&mut std::io::stdout().lock()),
            Which::Stderr => write(&mut std::io::stderr().lock()),
        }
    }

    #[cfg(unix)]
    fn fd(self) -> std::os::fd::RawFd {
        match self {
            Which::Stdout => libc::STDOUT_FILENO,
            Which::Stderr => libc::STDERR_FILENO,
        }
    }
}

/// How a plugin's thread writes to the host's stream itself, without blocking, while nothing is
/// queued; told from what the stream is when a plugin is given it (a [`HostOutput`] made), and
/// told again when the host's descriptor has been pointed elsewhere since (`dup2` of an
/// embedder redirecting its stdout).
#[derive(Debug)]
enum Direct {
    /// A pipe or terminal, through a description of its own opened non-blocking (on Linux,
    /// through `/proc/self/fd`): setting `O_NONBLOCK` on the stream's own description would
    /// reach every process sharing it (the shell's terminal), and a write that must not block
    /// cannot be asked for per call.
    #[cfg(unix)]
    Own(std::fs::File),
    /// A socket: sent with `MSG_DONTWAIT`.
    #[cfg(unix)]
    Socket,
    /// A regular file, which takes a write without waiting for a reader: written as before.
    #[cfg(unix)]
    File,
    /// Anything else, or a pipe or terminal that cannot be opened again (no `/proc`, other
    /// systems than Linux): every write is queued.
    Never,
}

impl Direct {
    /// How to write to `which` as it is now, and what file that is.
    #[cfg(unix)]
    fn of(which: Which) -> (Direct, Identity) {
        let fd = which.fd();
        let Some(stat) = stat(fd) else {
            return (Direct::Never, None);
        };
        let direct = match stat.st_mode & libc::S_IFMT {
            libc::S_IFREG => Direct::File,
            libc::S_IFSOCK => Direct::Socket,
            libc::S_IFIFO | libc::S_IFCHR => Direct::reopened(fd, &stat).map_or(Direct::Never, Direct::Own),
            _ => Direct::Never,
        };
        (direct, Some(identity(&stat)))
    }

    #[cfg(not(unix))]
    fn of(_: Which) -> (Direct, Identity) {
        (Direct::Never, None)
    }

    /// The pipe or terminal at `fd`, opened again for writing, non-blocking; `None` where it
    /// cannot be (a pipe whose reader is gone, no `/proc`), or is not the same file.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn reopened(fd: std::os::fd::RawFd, stat: &libc::stat) -> Option<std::fs::File> {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::OpenOptionsExt;

        let file = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(format!("/proc/self/fd/{fd}"))
            .ok()?;
        let again = self::stat(file.as_raw_fd())?;
        (identity(&again) == identity(stat)).then_some(file)
    }

    /// Elsewhere, opening `/dev/fd/N` shares the description (and its `O_NONBLOCK`).
    #[cfg(all(unix, not(any(target_os = "linux", target_os = "android"))))]
    fn reopened(_: std::os::fd::RawFd, _: &libc::stat) -> Option<std::fs::File> {
        None
    }

    /// Writes what of `bytes` the stream takes now, without blocking: how many bytes it took
    /// (0 when it takes none now).
    #[cfg_attr(not(unix), allow(unused_variables))]
    fn write(&self, which: Which, bytes: &[u8]) -> std::io::Result<usize> {
        loop {
            let wrote = match self {
                #[cfg(unix)]
                Direct::Own(file) => (&*file).write(bytes),
                #[cfg(unix)]
                Direct::Socket => {
                    #[cfg(any(target_os = "linux", target_os = "android"))]
                    let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
                    #[cfg(not(any(target_os = "linux", target_os = "android")))]
                    let flags = libc::MSG_DONTWAIT;
                    // SAFETY: `bytes` is valid for its length; the descriptor is the host's own
                    // stream, open while the process runs.
                    let sent = unsafe { libc::send(which.fd(), bytes.as_ptr().cast(), bytes.len(), flags) };
                    usize::try_from(sent).map_err(|_| std::io::Error::last_os_error())
                }
                #[cfg(unix)]
                Direct::File => which.with_locked(|to| write_whole(to, bytes)),
                Direct::Never => Ok(0),
            };
            match wrote {
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => return Ok(0),
                wrote => return wrote,
            }
        }
    }
}

/// What file a descriptor is (its type, device, inode and special device), to tell when it has
/// been pointed elsewhere; `None` when it is not open.
#[cfg(unix)]
type Identity = Option<(libc::mode_t, libc::dev_t, libc::ino_t, libc::dev_t)>;
/// Elsewhere, no file is told apart: what plugins write is queued, whatever it is.
#[cfg(not(unix))]
type Identity = Option<()>;

#[cfg(unix)]
fn identity(stat: &libc::stat) -> (libc::mode_t, libc::dev_t, libc::ino_t, libc::dev_t) {
    (stat.st_mode & libc::S_IFMT, stat.st_dev, stat.st_ino, stat.st_rdev)
}

/// What file `which` is now.
#[cfg(unix)]
fn identity_now(which: Which) -> Identity {
    stat(which.fd()).as_ref().map(identity)
}

#[cfg(not(unix))]
fn identity_now(_: Which) -> Identity {
    None
}

/// `fd`'s `fstat`.
#[cfg(unix)]
fn stat(fd: std::os::fd::RawFd) -> Option<libc::stat> {
    let mut stat = std::mem::MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: `fstat` fills the `stat` given, which is read only when it succeeded.
    (unsafe { libc::fstat(fd, stat.as_mut_ptr()) } == 0).then(|| unsafe { stat.assume_init() })
}

/// Writes all of `bytes` and flushes: how many that is.
#[cfg(unix)]
fn write_whole(to: &mut dyn Write, bytes: &[u8]) -> std::io::Result<usize> {
    to.write_all(bytes)?;
    to.flush()?;
    Ok(bytes.len())
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
    /// How the plugins' threads write while nothing is queued, and what file the host's
    /// descriptor was when that was told.
    direct: Direct,
    identity: Identity,
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
    /// Where the process's one writer of `which` is kept, once a plugin has written to it.
    fn cell(which: Which) -> &'static OnceLock<Writer> {
        static STDOUT: OnceLock<Writer> = OnceLock::new();
        static STDERR: OnceLock<Writer> = OnceLock::new();
        match which {
            Which::Stdout => &STDOUT,
            Which::Stderr => &STDERR,
        }
    }

    fn of(which: Which) -> &'static Writer {
        let writer = Writer::cell(which).get_or_init(|| {
            let (direct, identity) = Direct::of(which);
            Writer {
                which,
                state: Mutex::new(State {
                    direct,
                    identity,
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
            }
        });
        writer.follow();
        writer
    }

    /// Tells again how to write directly when the host's descriptor is no longer the file it
    /// was (an embedder redirected it with `dup2` after a plugin wrote): the description of
    /// its own opened for the old pipe or terminal would otherwise still take the plugins'
    /// bytes (away from where the host's own go) and keep that pipe open for writing (its
    /// reader never seeing the end), and a regular file's blocking write would now block.
    fn follow(&self) {
        let now = identity_now(self.which);
        let mut state = self.state();
        if state.identity != now {
            (state.direct, state.identity) = Direct::of(self.which);
        }
    }

    /// The shared state. A panic while it was held (there is none to have) leaves nothing
    /// half-changed that the next user could not take as it is.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits until the first `end` bytes ever queued have been written, or writing them failed,
    /// but not past `deadline`; whether they were.
    fn wait_written(&self, end: u64, deadline: Option<Instant>) -> bool {
        let mut state = self.state();
        while state.written < end {
            state = match deadline.map(|deadline| deadline.saturating_duration_since(Instant::now())) {
                None => self.progress.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner()),
                Some(left) if left.is_zero() => return false,
                Some(left) => {
                    self.progress.wait_timeout(state, left).unwrap_or_else(|poisoned| poisoned.into_inner()).0
                }
            };
        }
        true
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
        let mut bytes = bytes;
        if state.queued == 0 {
            // The fast path: nothing waits before these bytes, so what the stream takes now
            // (without blocking, as the lock is held) is written at once; only the rest queues.
            match state.direct.write(self.which, &bytes) {
                Ok(wrote) => {
                    state.enqueued += wrote as u64;
                    state.written = state.enqueued;
                    if wrote >= bytes.len() {
                        return Ok(state.enqueued);
                    }
                    bytes = bytes.slice(wrote..);
                }
                Err(error) => {
                    let failure = Failure::of(&error);
                    state.failure = Some(failure.clone());
                    drop(state);
                    self.progress.notify_all();
                    return Err(failure.stream_error());
                }
            }
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

    /// Writes `batch` whole, waiting as long as the host's stream takes: also when its
    /// description is non-blocking, as a parent process may have made it (Node.js does for
    /// pipes it shares, a program that crashed can leave a terminal so), where a `write_all`
    /// gave up at the first `EAGAIN` and failed every later write of every plugin.
    fn write(&self, batch: &[Bytes]) -> std::io::Result<()> {
        // `Write::write` of Rust's stdout and stderr takes nothing of what it fails on (its
        // buffer keeps what the stream did not take), so a failed one is tried again as it was.
        let all = |to: &mut dyn Write| -> std::io::Result<()> {
            for bytes in batch {
                let mut rest: &[u8] = bytes;
                while !rest.is_empty() {
                    match to.write(rest) {
                        Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                        Ok(wrote) => rest = &rest[wrote..],
                        Err(error) => self.wait_to_retry(error)?,
                    }
                }
            }
            while let Err(error) = to.flush() {
                self.wait_to_retry(error)?;
            }
            Ok(())
        };
        self.which.with_locked(all)
    }

    /// After `error` in a write: `Ok` to try it again, once the stream may take bytes (it was
    /// interrupted, or would have blocked), or the error.
    fn wait_to_retry(&self, error: std::io::Error) -> std::io::Result<()> {
        match error.kind() {
            std::io::ErrorKind::Interrupted => Ok(()),
            #[cfg(unix)]
            std::io::ErrorKind::WouldBlock => {
                let mut ready = libc::pollfd { fd: self.which.fd(), events: libc::POLLOUT, revents: 0 };
                // SAFETY: one valid `pollfd`, for the count given. Whatever it says (room, an
                // error or hang-up of the stream, an interruption), the write is tried again and
                // tells.
                if unsafe { libc::poll(&mut ready, 1, -1) } < 0 {
                    let failed = std::io::Error::last_os_error();
                    if failed.kind() != std::io::ErrorKind::Interrupted {
                        return Err(failed);
                    }
                }
                Ok(())
            }
            _ => Err(error),
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
        self.writer.wait_written(self.end.load(Ordering::Acquire), deadline)
    }

    /// Waits up to `grace` for every byte any plugin of this process wrote to the host's stdout
    /// and stderr, and they have not taken yet, to be written (or for writing it to fail);
    /// whether all of it was. For a host about to exit, whose writer threads would otherwise
    /// end with it and drop those bytes: a plugin's last lines before its time limit stopped
    /// it, queued behind a slow reader. Bounded, so that a reader who never reads holds the
    /// host `grace` at most ([`OUTPUT_GRACE`] is what `easycaching` gives). A host that goes on
    /// running needs none of this: its writer threads write the bytes meanwhile.
    pub fn finish(grace: Duration) -> bool {
        let deadline = Instant::now().checked_add(grace);
        let mut written = true;
        for which in [Which::Stdout, Which::Stderr] {
            let Some(writer) = Writer::cell(which).get() else { continue };
            let end = {
                let state = writer.state();
                if state.written < state.enqueued {
                    tracing::debug!(
                        stream = which.name(),
                        bytes = state.enqueued - state.written,
                        ?grace,
                        "plugin output still to write; waiting for it before exiting"
                    );
                }
                state.enqueued
            };
            if !writer.wait_written(end, deadline) {
                tracing::debug!(stream = which.name(), "plugin output not written within its grace: dropped");
                written = false;
            }
        }
        written
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
