//! The HTTP side of the server: accepting connections, speaking HTTP/1.1, handing each request to
//! the plugin, counting, logging, and shutting down gracefully.
//!
//! Connections are served by `workers` tokio threads. A plugin's cache calls are synchronous
//! and a write returns only once it is durable, so a request runs on a thread of its own, one
//! of `max_instances` plugin threads (see `plugin_threads`), and the workers go on serving
//! other connections meanwhile. Writers waiting together share one commit (the storage
//! engine's group commit), which is what makes many concurrent POSTs cheap; were requests run
//! on the workers themselves, at most `workers` writes could wait at once.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use easycaching_host::EPOCH_TICK;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
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
}

/// Runs the server on a runtime of its own until SIGINT or SIGTERM, then finishes what is in
/// flight. `listening` is told the bound address before the first connection is accepted.
pub(crate) fn serve(
    handler: Handler,
    config: &ServerConfig,
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
    });
    let outcome = runtime.block_on(accept_until_signalled(shared, config, listening));
    if matches!(outcome, Err(Error::Interrupted { .. })) {
        // Told twice to stop: do not wait for the plugin calls still running.
        runtime.shutdown_background();
    }
    outcome
}

async fn accept_until_signalled(
    shared: Arc<Shared>,
    config: &ServerConfig,
    listening: impl FnOnce(SocketAddr),
) -> Result<MetricsSummary> {
    let address = config.listen;
    let listener = TcpListener::bind(address).await.map_err(|reason| Error::Listen { address, reason })?;
    let mut signals = ShutdownSignals::new().map_err(Error::Start)?;
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
    {
        let signalled = signals.next();
        tokio::pin!(signalled);
        loop {
            tokio::select! {
                () = &mut signalled => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        tokio::spawn(serve_connection(stream, shared.clone(), stopping.clone(), open.clone()));
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
        tracing::warn!("finishing {in_flight} in-flight request(s); Ctrl-C again to stop at once");
    }
    let outcome = tokio::select! {
        _ = all_closed.recv() => Ok(shared.metrics.summary()),
        () = signals.next() => Err(Error::Interrupted { in_flight: shared.in_flight.load(Ordering::Relaxed) }),
    };
    if let Some(ticker) = ticker {
        ticker.abort();
    }
    outcome
}

/// Serves one connection's requests, one after another (HTTP/1.1 keep-alive), until the client
/// closes it or the server stops; a request being answered when the server stops is finished.
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
    let service = service_fn(move |request| {
        let shared = shared.clone();
        let open = open.clone();
        async move { Ok::<_, Infallible>(shared.answer(request, open).await) }
    });
    let connection = http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let served = tokio::select! {
        served = connection.as_mut() => served,
        () = stopped(&mut stopping) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = served {
        // A client that goes away mid-request is not the server's problem.
        tracing::debug!(%error, "connection ended with an error");
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
    ) -> Response<HyperOutgoingBody> {
        if request.uri().path() == METRICS_PATH {
            return self.metrics_response(request.method());
        }
        let started = Instant::now();
        let method = request.method().clone();
        let uri = request.uri().clone();
        // wasi:http gives a plugin the request's authority, so a request must name one.
        let names_host = request.uri().authority().is_some()
            || request.headers().get(HOST).is_some_and(|host| host.to_str().is_ok());
        let response = if names_host {
            self.call_plugin(request, open).await
        } else {
            text(StatusCode::BAD_REQUEST, "the request has no valid Host header")
        };
        let took = started.elapsed();
        let status = response.status().as_u16();
        self.metrics.record(status, took);
        tracing::info!(target: ACCESS_LOG, %method, %uri, status, micros = took.as_micros() as u64);
        response
    }

    /// Runs the plugin on `request` on a plugin thread, and answers with its response as soon
    /// as it sets one; with a 500 when it fails before that.
    async fn call_plugin(
        self: &Arc<Self>,
        request: Request<Incoming>,
        open: mpsc::Sender<()>,
    ) -> Response<HyperOutgoingBody> {
        let permit =
            self.instances.clone().acquire_owned().await.expect("the instance semaphore is never closed");
        let (respond, mut response) = oneshot::channel::<PluginResponse>();
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let running = InFlight { shared: self.clone(), _permit: permit, _open: open };
        let mut call = self.threads.run(move || running.shared.handler.handle(request, respond));
        tokio::select! {
            biased;
            sent = &mut response => match sent {
                Ok(sent) => from_plugin(sent),
                // The plugin dropped its response-outparam unset: its call says why.
                Err(_) => failure((&mut call).await),
            },
            ended = &mut call => match response.try_recv() {
                Ok(sent) => from_plugin(sent),
                Err(_) => failure(ended),
            },
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

/// The response a plugin set, or a 500 for the error code it set instead.
fn from_plugin(sent: PluginResponse) -> Response<HyperOutgoingBody> {
    sent.unwrap_or_else(|code| {
        tracing::warn!(?code, "the plugin answered with an error code");
        text(StatusCode::INTERNAL_SERVER_ERROR, &format!("the plugin answered with an error: {code:?}"))
    })
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

/// Ctrl-C (SIGINT) and SIGTERM, each of which asks the server to stop.
struct ShutdownSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn new() -> std::io::Result<ShutdownSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(ShutdownSignals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Waits for the next signal.
    async fn next(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}
