//! The HTTP side of the server: accepting connections, speaking HTTP/1.1, handing each request to
//! the plugin, counting, logging, and shutting down gracefully.
//!
//! Connections are served by `workers` tokio threads. A plugin's cache calls are synchronous
//! and a write returns only once it is durable, so a request runs on a thread of its own, one
//! of `max_instances` plugin threads (see `plugin_threads`), and the workers go on serving
//! other connections meanwhile. Writers waiting together share one commit (the storage
//! engine's group commit), which is what makes many concurrent POSTs cheap; were requests run
//! on the workers themselves, at most `workers` writes could wait at once.
//!
//! A plugin blocked in a host call is out of reach of its epoch deadline, which wasm code
//! checks. Its waits in `wasi:io/poll` and the blocking stream calls (asleep, say, or printing
//! to a stdout that does not keep up) end at its time limit all the same (see
//! `easycaching_host::add_bounded_waits_to_linker` and `HostOutput`); for the rest (writing its response to a
//! client that does not read it, reading a body the client stopped sending), the server keeps
//! a wall-clock limit of its own on each request
//! ([`ServerConfig::request_timeout`]): it stops waiting for an instance (503) or for the
//! plugin's answer (504), and once a response is being sent, the connection's task drops the
//! connection when the limit passes ([`ResponseDeadline`]). Dropping it drops the receiving
//! end of the plugin's body, so the plugin's blocked write fails and its instance is freed. A
//! plugin reading a request body the client stopped sending gets an error at the limit
//! (`handler::BodyUntil`), which frees it too. Whatever else blocks past the limit, the client
//! is answered, and the instance is not reused.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use easycaching_host::EPOCH_TICK;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{CONNECTION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioTimer;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::handler::{Handler, PluginResponse};
use crate::metrics::Metrics;
use crate::plugin_threads::PluginThreads;
use crate::{Error, MetricsSummary, Result, ServerConfig};

/// The host's own endpoint: the metrics as JSON. Requests for it never reach the plugin.
pub const METRICS_PATH: &str = "/_easycaching/metrics";
/// The `tracing` target of the access log: one event per request, at level INFO.
pub const ACCESS_LOG: &str = "easycaching_http::access";

/// Threads of tokio's blocking pool beyond one per instance, for blocking work WASI itself
/// hands to the pool while a plugin waits on it.
const SPARE_BLOCKING_THREADS: usize = 8;
/// How long to wait before accepting again after `accept` failed (e.g. out of file
/// descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// How long past a request's time limit the server still waits before it gives up on the
/// request: a plugin running wasm code past the same limit is stopped by its epoch deadline
/// (checked every [`EPOCH_TICK`]) and answers that error, rather than a 504.
const TIME_LIMIT_GRACE: Duration = Duration::from_millis(100);
/// File descriptors left for the server itself (its database, listener, runtime, compiled
/// code) when the open-file limit caps [`ServerConfig::max_connections`].
const FILES_FOR_THE_SERVER: u64 = 64;

/// What every connection shares.
struct Shared {
    handler: Handler,
    metrics: Metrics,
    /// One permit per plugin instance that may run at once.
    instances: Arc<Semaphore>,
    /// Plugin calls running now, including those that already answered and work on.
    in_flight: AtomicUsize,
    /// Where plugin calls run: one thread per instance that may run at once.
    threads: PluginThreads,
    /// [`ServerConfig::request_timeout`].
    request_timeout: Option<Duration>,
    /// [`ServerConfig::header_read_timeout`].
    header_read_timeout: Duration,
}

/// Runs the server on a runtime of its own until `stop_when` asks it to stop, then finishes what
/// is in flight. `listening` is told the bound address before the first connection is accepted.
pub(crate) fn serve(
    handler: Handler,
    config: &ServerConfig,
    stop_when: StopWhen,
    listening: impl FnOnce(SocketAddr),
) -> Result<MetricsSummary> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.workers.max(1))
        .max_blocking_threads(config.max_instances.max(1) + SPARE_BLOCKING_THREADS)
        .thread_name("easycaching-http")
        .enable_io()
        .enable_time()
        .build()
        .map_err(Error::Start)?;
    let shared = Arc::new(Shared {
        handler,
        metrics: Metrics::default(),
        instances: Arc::new(Semaphore::new(config.max_instances.max(1))),
        in_flight: AtomicUsize::new(0),
        threads: PluginThreads::start(config.max_instances, runtime.handle()).map_err(Error::Start)?,
        request_timeout: config.request_timeout,
        header_read_timeout: config.header_read_timeout,
    });
    let outcome = runtime.block_on(accept_until_stopped(shared, config, stop_when, listening));
    if matches!(outcome, Err(Error::Interrupted { .. })) {
        // Told twice to stop: do not wait for the plugin calls still running.
        runtime.shutdown_background();
    }
    outcome
}

async fn accept_until_stopped(
    shared: Arc<Shared>,
    config: &ServerConfig,
    stop_when: StopWhen,
    listening: impl FnOnce(SocketAddr),
) -> Result<MetricsSummary> {
    let address = config.listen;
    let listener = TcpListener::bind(address).await.map_err(|reason| Error::Listen { address, reason })?;
    let mut stop_requests = stop_when.requests().map_err(Error::Start)?;
    let ticker = config.limits.time.is_some().then(|| {
        let engine = shared.handler.engine().clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(EPOCH_TICK);
            loop {
                tick.tick().await;
                engine.increment_epoch();
            }
        })
    });
    listening(listener.local_addr().map_err(Error::Start)?);

    // Each connection and each plugin call holds a clone of `open`; when the last is dropped,
    // `all_closed` wakes. Nothing is ever sent on it.
    let (open, mut all_closed) = mpsc::channel::<()>(1);
    let (stop, stopping) = watch::channel(false);
    // One permit per connection that may be open at once: when none is left, the next
    // connection waits in the listen backlog, and the open ones are served on.
    let connections = Arc::new(Semaphore::new(connection_cap(config.max_connections)));
    {
        let first_stop = stop_requests.next();
        tokio::pin!(first_stop);
        loop {
            let slot = tokio::select! {
                () = &mut first_stop => break,
                slot = connections.clone().acquire_owned() => slot.expect("the connection semaphore is never closed"),
            };
            tokio::select! {
                () = &mut first_stop => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let connection = serve_connection(stream, shared.clone(), stopping.clone(), open.clone());
                        tokio::spawn(async move {
                            connection.await;
                            drop(slot);
                        });
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot accept a connection");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                },
            }
        }
    }

    // Stop accepting, let each connection finish the request it is on, and wait for every
    // plugin call (some go on working after they answered).
    drop(listener);
    let _ = stop.send(true);
    drop(open);
    let in_flight = shared.in_flight.load(Ordering::Relaxed);
    if in_flight > 0 {
        tracing::warn!("finishing {in_flight} in-flight request(s); {}", stop_requests.again());
    }
    let outcome = tokio::select! {
        _ = all_closed.recv() => Ok(shared.metrics.summary()),
        () = stop_requests.next() => Err(Error::Interrupted { in_flight: shared.in_flight.load(Ordering::Relaxed) }),
    };
    if let Some(ticker) = ticker {
        ticker.abort();
    }
    outcome
}

/// Serves one connection's requests, one after another (HTTP/1.1 keep-alive), until the client
/// closes it or the server stops; a request being answered when the server stops is finished.
/// Drops the connection when a response is still being sent at its request's time limit.
async fn serve_connection(
    stream: TcpStream,
    shared: Arc<Shared>,
    mut stopping: watch::Receiver<bool>,
    open: mpsc::Sender<()>,
) {
    // Responses are written whole; waiting to fill a packet (Nagle) would only add latency.
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "cannot set TCP_NODELAY");
    }
    let deadline = ResponseDeadline::default();
    let mut deadline_moved = deadline.subscribe();
    let service = service_fn({
        let (shared, deadline) = (shared.clone(), deadline.clone());
        move |request| {
            let (shared, open, deadline) = (shared.clone(), open.clone(), deadline.clone());
            async move { Ok::<_, Infallible>(shared.answer(request, open, deadline).await) }
        }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(shared.header_read_timeout)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let mut stop_asked = false;
    let served = loop {
        let Armed { passes_at, server_error, .. } = *deadline_moved.borrow_and_update();
        tokio::select! {
            served = connection.as_mut() => break served,
            () = stopped(&mut stopping), if !stop_asked => {
                stop_asked = true;
                connection.as_mut().graceful_shutdown();
            }
            // The sender lives as long as `deadline`, until this function returns.
            _ = deadline_moved.changed() => {}
            () = sleep_until_some(passes_at), if passes_at.is_some() => {
                shared.metrics.record_cut_off(server_error);
                tracing::warn!(
                    "dropping a connection whose response was still being sent at its request's time limit"
                );
                // Dropping the connection drops the response body's receiver: a plugin blocked
                // writing it fails, and frees its instance.
                return;
            }
        }
    };
    if let Err(error) = served {
        // A client that goes away mid-request is not the server's problem.
        tracing::debug!(%error, "connection ended with an error");
    }
}

/// `configured` connections (at least 1), or fewer when the open-file limit leaves room for
/// fewer, with a warning.
fn connection_cap(configured: usize) -> usize {
    let configured = configured.max(1);
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit through the pointer, which is valid for it.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0
        || limit.rlim_cur == libc::RLIM_INFINITY
    {
        return configured;
    }
    let room =
        usize::try_from(limit.rlim_cur.saturating_sub(FILES_FOR_THE_SERVER)).unwrap_or(usize::MAX).max(1);
    if room < configured {
        tracing::warn!(
            "serving at most {room} connections at once, not {configured}: the open-file limit is {}",
            limit.rlim_cur
        );
    }
    configured.min(room)
}

/// Sleeps until `at`, or for ever when it is `None`.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// When the response a connection is sending must be sent by: the time limit of the request
/// it answers, set when a plugin's response goes out, cleared when its body has been sent.
/// The connection's task watches it, and drops the connection when it passes.
#[derive(Clone, Default)]
struct ResponseDeadline {
    armed: Arc<watch::Sender<Armed>>,
    /// Responses sent on this connection so far: the number of each [`ArmedDeadline`].
    responses: Arc<AtomicU64>,
}

/// The value of a [`ResponseDeadline`].
#[derive(Clone, Copy, Default)]
struct Armed {
    /// The response it is for.
    response: u64,
    /// When it passes; `None` when no response is being sent.
    passes_at: Option<Instant>,
    /// Whether the response's status is a 5xx already, so counted as a server error.
    server_error: bool,
}

impl ResponseDeadline {
    fn subscribe(&self) -> watch::Receiver<Armed> {
        self.armed.subscribe()
    }

    /// Sets the deadline of the response about to be sent; it holds until the guard is
    /// dropped.
    fn arm(&self, passes_at: Instant, server_error: bool) -> ArmedDeadline {
        let response = self.responses.fetch_add(1, Ordering::Relaxed) + 1;
        self.armed.send_replace(Armed { response, passes_at: Some(passes_at), server_error });
        ArmedDeadline { deadline: self.clone(), response }
    }
}

/// A response's deadline, set until this is dropped (with the response's body).
struct ArmedDeadline {
    deadline: ResponseDeadline,
    response: u64,
}

impl Drop for ArmedDeadline {
    fn drop(&mut self) {
        // Only its own: a later response's deadline stays.
        self.deadline.armed.send_if_modified(|armed| {
            let mine = armed.response == self.response && armed.passes_at.is_some();
            if mine {
                armed.passes_at = None;
            }
            mine
        });
    }
}

/// A response body on its way to the client: the plugin's, or the host's own.
///
/// A plugin's body ends in an error, rather than its end, when the plugin failed before it
/// finished the body (its instance dropped, which ends the body as though it were whole):
/// hyper then drops the connection without the body's last chunk, so the client can tell the
/// response is not whole. Such a response counts as cut off.
pub(crate) struct ResponseBody {
    body: HyperOutgoingBody,
    /// The deadline of a plugin's response, cleared once its body has been sent (or dropped).
    deadline: Option<ArmedDeadline>,
    /// For a plugin's body: whether its call failed, and where to count the cut-off response.
    plugin: Option<PluginBody>,
}

/// What a [`ResponseBody`] from a plugin needs to know of the plugin's call.
struct PluginBody {
    /// Set (before its instance is dropped) when the call failed.
    failed: Arc<AtomicBool>,
    shared: Arc<Shared>,
    /// Whether the response's status is a 5xx, so counted as a server error already.
    server_error: bool,
}

impl ResponseBody {
    /// A body of the host's own: short, sent at once, with no deadline to watch.
    fn from_host(body: HyperOutgoingBody) -> ResponseBody {
        ResponseBody { body, deadline: None, plugin: None }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, Self::Error>>> {
        let mut polled = Pin::new(&mut self.body).poll_frame(cx);
        if let (Poll::Ready(None), Some(plugin)) = (&polled, &self.plugin)
            && plugin.failed.load(Ordering::Acquire)
        {
            let error = "the plugin failed before it finished its response";
            polled = Poll::Ready(Some(Err(wasmtime_wasi_http::Error::InternalError(Some(error.to_owned())))));
        }
        if let Poll::Ready(Some(Err(error))) = &polled
            && let Some(plugin) = self.plugin.take()
        {
            plugin.shared.metrics.record_cut_off(plugin.server_error);
            tracing::warn!(?error, "cutting off a response: its body ended in an error");
        }
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            // Sent (or failed): the connection may wait for the next request without a limit
            // of this one's.
            self.deadline = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Resolves when the server starts stopping.
async fn stopped(stopping: &mut watch::Receiver<bool>) {
    // An error means the server is gone altogether: stopping too.
    let _ = stopping.wait_for(|stop| *stop).await;
}

impl Shared {
    /// Answers one request: the host's metrics endpoint, or the plugin's answer, counted and
    /// logged.
    async fn answer(
        self: Arc<Self>,
        request: Request<Incoming>,
        open: mpsc::Sender<()>,
        deadline: ResponseDeadline,
    ) -> Response<ResponseBody> {
        if request.uri().path() == METRICS_PATH {
            return self.metrics_response(request.method()).map(ResponseBody::from_host);
        }
        let started = Instant::now();
        let give_up_at = self.request_timeout.map(|limit| started + limit + TIME_LIMIT_GRACE);
        let method = request.method().clone();
        let uri = request.uri().clone();
        // wasi:http gives a plugin the request's authority, so a request must name one.
        let names_host = request.uri().authority().is_some()
            || request.headers().get(HOST).is_some_and(|host| host.to_str().is_ok());
        let response = if names_host {
            self.call_plugin(request, open, give_up_at, &deadline).await
        } else {
            text(StatusCode::BAD_REQUEST, "the request has no valid Host header").map(ResponseBody::from_host)
        };
        let took = started.elapsed();
        let status = response.status().as_u16();
        self.metrics.record(status, took);
        tracing::info!(target: ACCESS_LOG, %method, %uri, status, micros = took.as_micros() as u64);
        response
    }

    /// Runs the plugin on `request` on a plugin thread, and answers with its response as soon
    /// as it sets one; with a 500 when it fails before that. Past `give_up_at`, answers 503
    /// while no instance is free, and 504 while the plugin has not answered; a plugin's
    /// response must be sent by then too (`deadline`).
    async fn call_plugin(
        self: &Arc<Self>,
        request: Request<Incoming>,
        open: mpsc::Sender<()>,
        give_up_at: Option<Instant>,
        deadline: &ResponseDeadline,
    ) -> Response<ResponseBody> {
        let acquire = self.instances.clone().acquire_owned();
        let Some(permit) = until(give_up_at, acquire).await else {
            return timed_out(StatusCode::SERVICE_UNAVAILABLE, "no plugin instance was free");
        };
        let permit = permit.expect("the instance semaphore is never closed");
        let (respond, mut response) = oneshot::channel::<PluginResponse>();
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let running = InFlight { shared: self.clone(), _permit: permit, _open: open };
        let failed = Arc::new(AtomicBool::new(false));
        let failed_in_call = failed.clone();
        let mut call = self
            .threads
            .run(move || running.shared.handler.handle(request, respond, give_up_at, &failed_in_call));
        let answered = until(give_up_at, async {
            tokio::select! {
                biased;
                sent = &mut response => match sent {
                    Ok(sent) => from_plugin(sent),
                    // The plugin dropped its response-outparam unset: its call says why.
                    Err(_) => Answered::Failed(failure((&mut call).await)),
                },
                ended = &mut call => match response.try_recv() {
                    Ok(sent) => from_plugin(sent),
                    Err(_) => Answered::Failed(failure(ended)),
                },
            }
        })
        .await;
        match answered {
            Some(Answered::Plugin(response)) => {
                let server_error = response.status().is_server_error();
                let armed = give_up_at.map(|give_up_at| deadline.arm(give_up_at, server_error));
                let plugin = Some(PluginBody { failed, shared: self.clone(), server_error });
                response.map(|body| ResponseBody { body, deadline: armed, plugin })
            }
            Some(Answered::Failed(failed)) => failed.map(ResponseBody::from_host),
            None => timed_out(StatusCode::GATEWAY_TIMEOUT, "the plugin did not answer"),
        }
    }

    fn metrics_response(&self, method: &Method) -> Response<HyperOutgoingBody> {
        if method != Method::GET {
            return text(StatusCode::METHOD_NOT_ALLOWED, "the metrics are read with GET");
        }
        let mut metrics = self.metrics.summary().to_json();
        metrics["in_flight"] = self.in_flight.load(Ordering::Relaxed).into();
        let mut response = Response::new(full(metrics.to_string()));
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    }
}

/// A plugin call, counted until it ends; holds its instance permit and keeps the server open.
struct InFlight {
    shared: Arc<Shared>,
    _permit: tokio::sync::OwnedSemaphorePermit,
    _open: mpsc::Sender<()>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.shared.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// `future`'s output, or `None` when `at` passes first.
async fn until<T>(at: Option<Instant>, future: impl Future<Output = T>) -> Option<T> {
    match at {
        Some(at) => tokio::time::timeout_at(at.into(), future).await.ok(),
        None => Some(future.await),
    }
}

/// The answer to a request that outlived its time limit: `status`, saying what did not happen
/// in time, on a connection then closed (the plugin may still hold the request's body).
fn timed_out(status: StatusCode, what: &str) -> Response<ResponseBody> {
    tracing::warn!(%status, "{what} within the request's time limit");
    let mut response = text(status, &format!("{what} within the request's time limit"));
    response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    response.map(ResponseBody::from_host)
}

/// What a plugin call came to, if it came to something within the request's time limit.
enum Answered {
    /// The response the plugin set.
    Plugin(Response<HyperOutgoingBody>),
    /// The host's 500, as the plugin failed (or set an error code) instead.
    Failed(Response<HyperOutgoingBody>),
}

/// The response a plugin set, or a 500 for the error code it set instead.
fn from_plugin(sent: PluginResponse) -> Answered {
    match sent {
        Ok(response) => Answered::Plugin(response),
        Err(code) => {
            tracing::warn!(?code, "the plugin answered with an error code");
            let message = format!("the plugin answered with an error: {code:?}");
            Answered::Failed(text(StatusCode::INTERNAL_SERVER_ERROR, &message))
        }
    }
}

/// The 500 for a plugin call that ended without setting a response (or panicked: the receive
/// error).
fn failure(
    ended: std::result::Result<std::result::Result<(), easycaching_host::Error>, oneshot::error::RecvError>,
) -> Response<HyperOutgoingBody> {
    let reason = match ended {
        Ok(Ok(())) => "the plugin returned without setting a response".to_owned(),
        Ok(Err(error)) => {
            tracing::error!(%error, "the plugin failed");
            match error {
                // What and where stay in the server's log: a client has no use for a backtrace.
                easycaching_host::Error::Trapped { .. } => {
                    "the plugin crashed (the server's log says where)".to_owned()
                }
                limit_or_exit => limit_or_exit.to_string(),
            }
        }
        Err(error) => {
            tracing::error!(%error, "the host failed while running the plugin");
            "the host failed while running the plugin".to_owned()
        }
    };
    text(StatusCode::INTERNAL_SERVER_ERROR, &reason)
}

/// A plain-text response from the host.
fn text(status: StatusCode, message: &str) -> Response<HyperOutgoingBody> {
    let mut response = Response::new(full(format!("{status}: {message}\n")));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

fn full(body: String) -> HyperOutgoingBody {
    Full::new(Bytes::from(body)).map_err(|never| match never {}).boxed_unsync()
}

/// What asks a server to stop: the first request makes it stop accepting and finish what is in
/// flight, a second one stops it without waiting.
pub(crate) enum StopWhen {
    /// Ctrl-C (SIGINT) or SIGTERM.
    Signalled,
    /// [`Shutdown::stop`] on the handle's receiver.
    Asked(watch::Receiver<u64>),
}

impl StopWhen {
    /// Starts listening for the requests to stop (installs the signal handlers).
    fn requests(self) -> std::io::Result<StopRequests> {
        Ok(match self {
            StopWhen::Signalled => {
                use tokio::signal::unix::{SignalKind, signal};
                StopRequests::Signals {
                    interrupt: signal(SignalKind::interrupt())?,
                    terminate: signal(SignalKind::terminate())?,
                }
            }
            StopWhen::Asked(asked) => StopRequests::Asked { asked, handled: 0 },
        })
    }
}

/// The requests to stop, as they come.
enum StopRequests {
    Signals {
        interrupt: tokio::signal::unix::Signal,
        terminate: tokio::signal::unix::Signal,
    },
    /// [`Shutdown::stop`]s so far, counted from the handle's creation (so that one made before
    /// the server started stops it as soon as it has), and how many of them were waited for.
    Asked {
        asked: watch::Receiver<u64>,
        handled: u64,
    },
}

impl StopRequests {
    /// Waits for the next request to stop.
    async fn next(&mut self) {
        match self {
            StopRequests::Signals { interrupt, terminate } => tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            },
            StopRequests::Asked { asked, handled } => {
                let waited_for = *handled;
                if asked.wait_for(|asked| *asked > waited_for).await.is_err() {
                    // Every handle gone: nothing can ask any more.
                    std::future::pending::<()>().await;
                }
                *handled += 1;
            }
        }
    }

    /// How to stop at once, for the message while in-flight requests finish.
    fn again(&self) -> &'static str {
        match self {
            StopRequests::Signals { .. } => "Ctrl-C again to stop at once",
            StopRequests::Asked { .. } => "stop again to stop at once",
        }
    }
}

/// Stops a server started with [`Server::serve_until`](crate::Server::serve_until), from any
/// thread: the first [`Shutdown::stop`] makes it stop accepting connections, finish the
/// requests in flight and return; a second one makes it return without waiting for them
/// ([`Error::Interrupted`]). Clones stop the same servers.
#[derive(Debug, Clone)]
pub struct Shutdown {
    requests: Arc<watch::Sender<u64>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new()
    }
}

impl Shutdown {
    /// A handle that has not asked anything yet.
    pub fn new() -> Shutdown {
        Shutdown { requests: Arc::new(watch::Sender::new(0)) }
    }

    /// Asks every server serving until this handle to stop (see [`Shutdown`]).
    pub fn stop(&self) {
        self.requests.send_modify(|asked| *asked += 1);
    }

    pub(crate) fn when(&self) -> StopWhen {
        StopWhen::Asked(self.requests.subscribe())
    }
}
