//! `easycaching serve`: an HTTP/1.1 server whose requests are answered by a WebAssembly
//! component exporting `wasi:http/incoming-handler` (the `easycaching:cache/http-handler`
//! world), on many workers that share one cache.
//!
//! All workers are threads of one process sharing one [`easycaching::CacheManager`]: its LRU,
//! its group commit and its SQLite connections. A value written by a request is read by the
//! next request on any worker at once, with no cross-process coherence check involved.
//!
//! Each request runs in a sandboxed instance with the grants of one [`EasyCachingCtx`] and the
//! [`PluginLimits`] of `easycaching run` (memory per instance; time and fuel per request; open
//! handles). By default every request gets an instance that has never run before; see
//! [`ServerConfig::requests_per_instance`] for reusing warm instances and what that shares.
//! A plugin that traps, runs out of memory or time, or returns without responding gets its
//! client a 500, and the server goes on.
//!
//! Every request has a wall-clock time limit, [`ServerConfig::request_timeout`] (30 s by
//! default), on its whole life as the server sees it: waiting for an instance (503 when none
//! frees in time), the plugin's answer (a plugin running wasm or waiting in `wasi:io/poll`, asleep say, is
//! stopped at the limit and answers 500; 504 when nothing comes in time), and sending the response (the connection is dropped when a client does
//! not read it in time, which fails the plugin's blocked write). A request cut off while its
//! response is being sent is counted among the server errors.
//!
//! Connections are bounded too: at most [`ServerConfig::max_connections`] are open at once
//! (more wait to be accepted, so the connections already open go on being served), and one
//! that takes longer than [`ServerConfig::header_read_timeout`] to send a request's head, or
//! stays idle that long between requests, is closed.
//!
//! ```no_run
//! use easycaching::CacheManager;
//! use easycaching_host::{EasyCachingCtx, Grant};
//! use easycaching_http::{Server, ServerConfig};
//!
//! let manager = CacheManager::open("web.db")?;
//! let ctx = EasyCachingCtx::builder(manager).grant("cache:web=rwc".parse::<Grant>()?).build();
//! let config = ServerConfig { workers: 5, ..ServerConfig::default() };
//! let server = Server::new("http_cache.wasm", ctx, config)?;
//! let summary = server.serve(|address| println!("serving http://{address}/"))?;
//! println!("served {summary}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`Server::serve`] returns on SIGINT (Ctrl-C) or SIGTERM, after it has stopped accepting and
//! finished every request in flight; a second signal stops it at once. Requests are counted
//! and timed ([`MetricsSummary`], also served as JSON on [`METRICS_PATH`]) and logged with
//! `tracing` under the target [`ACCESS_LOG`] at level INFO.
//!
//! [`Server::serve_until`] stops on a [`Shutdown`] handle instead, for servers embedded in an
//! application or started by a test.
//!
//! Unix only: the server stops on Unix signals.
#![deny(missing_docs)]

mod error;
mod handler;
mod metrics;
mod plugin_threads;
mod server;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use easycaching_host::{CompiledCache, EasyCachingCtx, PluginLimits};

pub use error::{Error, Result};
pub use metrics::MetricsSummary;
pub use server::{ACCESS_LOG, METRICS_PATH, Shutdown};

/// The default address: port 8220 on the loopback interface.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 8220);
/// The default of [`ServerConfig::max_instances`].
pub const DEFAULT_MAX_INSTANCES: usize = 64;
/// The default of [`ServerConfig::request_timeout`], and of the plugin's time limit
/// ([`PluginLimits::time`]) in [`ServerConfig::default`].
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The default of [`ServerConfig::header_read_timeout`].
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The default of [`ServerConfig::max_connections`] (lowered to what the open-file limit
/// allows).
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// How a [`Server`] listens, how many threads it runs, and what each plugin instance may use.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The address to listen on; port 0 picks a free port (the bound address is passed to
    /// [`Server::serve`]'s callback). Default [`DEFAULT_LISTEN`].
    pub listen: SocketAddr,
    /// Threads that accept connections and speak HTTP (0 counts as 1). Default: one per CPU.
    pub workers: usize,
    /// Plugin instances running at once; more requests wait for one to finish. A request
    /// holds its instance, and a thread, while its cache writes wait to be durable, so this
    /// is also how many writes can share a commit (0 counts as 1). Default
    /// [`DEFAULT_MAX_INSTANCES`].
    pub max_instances: usize,
    /// Requests one instance answers before it is replaced by a fresh one (0 counts as 1).
    ///
    /// - `1` (the default): every request runs in an instance that has never run before.
    ///   Nothing a request leaves in the instance's memory (globals, heap, a half-finished
    ///   state after a bug) can reach another request; only the caches are shared.
    /// - `N > 1`: an instance that answered without trapping answers again, up to N requests
    ///   in all. Requests still never run in one instance at the same time, and an instance
    ///   that traps is thrown away, but what one request leaves in memory the next request on
    ///   that instance sees: use it for plugins that keep no per-request state in globals.
    ///   Saves instantiating per request.
    pub requests_per_instance: u64,
    /// The longest a request may take, from its head being read to the last byte of its
    /// response being handed to the client's connection; `None` for no limit. Past it, a
    /// request still waiting for an instance is answered 503, one whose plugin has not
    /// answered is answered 504 (the plugin runs on, and its instance is not reused), and one
    /// whose response is being sent has its connection dropped (so a plugin blocked writing
    /// to a client that does not read fails, and frees its instance). Without a limit, a
    /// plugin that sleeps, or a client that never reads, holds an instance for good. Default
    /// [`DEFAULT_REQUEST_TIMEOUT`].
    ///
    /// The plugin's own time limit, [`PluginLimits::time`], stops it while it runs wasm code
    /// or waits in `wasi:io` (asleep, or on a stream; not in other host calls); set both
    /// alike, as `easycaching serve --timeout` does.
    pub request_timeout: Option<Duration>,
    /// The longest a connection may take to send a request's head, counted from when the
    /// server is ready to read it: from the connection being accepted, or from the previous
    /// response being sent on a kept-alive connection (so this also bounds how long an idle
    /// connection is kept). Past it the connection is closed. Default
    /// [`DEFAULT_HEADER_READ_TIMEOUT`].
    pub header_read_timeout: Duration,
    /// Connections open at once (0 counts as 1). When this many are open, the server accepts
    /// no more until one closes: new clients wait in the listen backlog, and the clients
    /// already connected go on being served. Lowered, with a warning, to what the process's
    /// open-file limit leaves room for. Default [`DEFAULT_MAX_CONNECTIONS`].
    pub max_connections: usize,
    /// What each instance may use: its memory and open handles, and per request its time and
    /// fuel. Its time limit defaults to [`DEFAULT_REQUEST_TIMEOUT`] here.
    pub limits: PluginLimits,
    /// Environment variables the plugin sees (none by default).
    pub env: Vec<(String, String)>,
    /// Where compiled plugins are kept; `None` compiles the plugin afresh.
    pub compiled_cache: Option<CompiledCache>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: DEFAULT_LISTEN,
            workers: std::thread::available_parallelism().map(usize::from).unwrap_or(1),
            max_instances: DEFAULT_MAX_INSTANCES,
            requests_per_instance: 1,
            request_timeout: Some(DEFAULT_REQUEST_TIMEOUT),
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            limits: PluginLimits { time: Some(DEFAULT_REQUEST_TIMEOUT), ..PluginLimits::default() },
            env: Vec::new(),
            compiled_cache: CompiledCache::default_dir().map(CompiledCache::new),
        }
    }
}

/// A plugin, compiled and ready to serve.
pub struct Server {
    handler: handler::Handler,
    config: ServerConfig,
}

impl Server {
    /// Compiles (or loads from the compiled cache) and links the component at `plugin`, and
    /// instantiates it once to check that it can run with these grants and limits.
    pub fn new(
        plugin: impl AsRef<Path>,
        easycaching: EasyCachingCtx,
        config: ServerConfig,
    ) -> Result<Server> {
        Server::load(plugin, config)?.with_caches(easycaching)
    }

    /// Compiles and links the component at `plugin`, before it is given any caches: a
    /// plugin that is not an HTTP handler, or imports what this host does not provide, is
    /// refused before the caller opens a database for it. [`LoadedServer::with_caches`]
    /// finishes what [`Server::new`] does in one step.
    pub fn load(plugin: impl AsRef<Path>, config: ServerConfig) -> Result<LoadedServer> {
        config.limits.resource_table().map_err(|error| Error::Misconfigured(error.to_string()))?;
        let linked = handler::Linked::load(plugin.as_ref(), &config)?;
        Ok(LoadedServer { linked, config })
    }

    /// Listens on [`ServerConfig::listen`] and serves until SIGINT or SIGTERM; then stops
    /// accepting, finishes the requests in flight, and returns what it served. `listening` is
    /// called with the bound address once the server accepts connections.
    pub fn serve(self, listening: impl FnOnce(SocketAddr)) -> Result<MetricsSummary> {
        server::serve(self.handler, &self.config, server::StopWhen::Signalled, listening)
    }

    /// Listens and serves, as [`Server::serve`] does, until `shutdown` asks it to stop rather
    /// than until a signal: for a server embedded in an application, or started by a test, that
    /// stops it itself. Installs no signal handler.
    ///
    /// ```no_run
    /// # use easycaching_http::{Server, Shutdown};
    /// # fn started(server: Server) -> easycaching_http::Result<()> {
    /// let shutdown = Shutdown::new();
    /// let stopper = shutdown.clone();
    /// let serving = std::thread::spawn(move || server.serve_until(&shutdown, |address| println!("on {address}")));
    /// // ... requests ...
    /// stopper.stop();
    /// let summary = serving.join().expect("the server does not panic")?;
    /// # Ok(()) }
    /// ```
    pub fn serve_until(
        self,
        shutdown: &Shutdown,
        listening: impl FnOnce(SocketAddr),
    ) -> Result<MetricsSummary> {
        server::serve(self.handler, &self.config, shutdown.when(), listening)
    }
}

/// A plugin compiled and linked by [`Server::load`], waiting for its caches and queues.
pub struct LoadedServer {
    linked: handler::Linked,
    config: ServerConfig,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server").field("plugin", &self.handler.name()).field("config", &self.config).finish()
    }
}

impl fmt::Debug for LoadedServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedServer")
            .field("plugin", &self.linked.name())
            .field("config", &self.config)
            .finish()
    }
}

impl LoadedServer {
    /// The server, its plugin serving with `easycaching`'s caches and queues; instantiated once
    /// to check that it can run with these grants and limits.
    pub fn with_caches(self, easycaching: EasyCachingCtx) -> Result<Server> {
        let handler = self.linked.handler(easycaching, &self.config)?;
        Ok(Server { handler, config: self.config })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use easycaching_host::MIN_HANDLES;

    #[test]
    fn limits_that_rule_out_every_plugin_are_refused_before_the_plugin_is_read() {
        let limits = PluginLimits { max_handles: MIN_HANDLES - 1, ..PluginLimits::default() };
        let config = ServerConfig { limits, ..ServerConfig::default() };
        let refused = Server::load("no such plugin.wasm", config).unwrap_err();
        assert!(matches!(refused, Error::Misconfigured(_)), "{refused:?}");
        assert!(refused.to_string().contains(&format!("at least {MIN_HANDLES}")), "{refused}");

        let missing = Server::load("no such plugin.wasm", ServerConfig::default()).unwrap_err();
        assert!(matches!(missing, Error::Load { .. }), "{missing:?}");
    }
}
