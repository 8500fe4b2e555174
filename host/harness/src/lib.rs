//! Test easycaching plugins from `cargo test`.
//!
//! A [`Harness`] is a temporary database, the grants you give, and the data you seed. Run a
//! plugin component against it, then assert on what the plugin printed and on what it left in
//! the caches and queues:
//!
//! ```no_run
//! use easycaching_harness::Harness;
//! use serde_json::json;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The body of a `#[test] fn counts_visits() -> Result<(), Box<dyn Error>>`, for the
//! // `visits` plugin of the Rust guest SDK's README, built beforehand (`cargo test` does not
//! // build components) with `cargo build --release --target wasm32-wasip2`:
//! let harness = Harness::new()?.allow("cache:visits=rw").args(["ada"]);
//! harness.seed_cache("visits", [("ada", json!(3))])?;
//!
//! let run = harness.run("target/wasm32-wasip2/release/visits.wasm")?;
//! assert!(run.result.is_ok(), "the plugin failed: {:?}\n{}", run.result, run.stderr_text());
//! assert_eq!(run.stdout_text(), "welcome, ada (visit 4)\n");
//! assert_eq!(harness.cache("visits")?.get_value::<u64>("ada")?, Some(4));
//! # Ok(())
//! # }
//! ```
//!
//! Time is the test's to move: a harness on a [`ManualClock`] tells TTLs and leases by it, so
//! an hour-long TTL or a lease a plugin took for a minute ends when the test advances the
//! clock, not after waiting for it (and plugins read it from `wasi:clocks/wall-clock`):
//!
//! ```no_run
//! use std::time::Duration;
//! use easycaching_harness::{Harness, ManualClock};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let clock = ManualClock::new();
//! let harness = Harness::with_database(|database| database.clock(&clock))?.allow("queue:jobs=rw");
//! harness.seed_queue("jobs", ["resize photo 7"])?;
//! // A worker plugin that leases its job for a minute, then fails before acknowledging it.
//! let run = harness.run("target/wasm32-wasip2/release/worker.wasm")?;
//! assert!(run.result.is_err());
//! assert_eq!(harness.queue("jobs")?.peek()?, None, "still under the worker's lease");
//! clock.advance(Duration::from_secs(60));
//! assert!(harness.queue("jobs")?.peek()?.is_some(), "handed out again once the lease ended");
//! # Ok(())
//! # }
//! ```
//!
//! A `wasi:http` handler is tested the same way, with requests: [`Harness::serve`] serves it on
//! a loopback port, as `easycaching serve` would, and [`Served`] sends it requests.
//!
//! Components are compiled once per test process, even when many tests start at once (and are
//! kept compiled on disk between runs, see [`RuntimeConfig`]), so a suite of many small tests
//! stays fast.
#![deny(missing_docs)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

mod served;

pub use easycaching::ManualClock;
use easycaching::{Cache, CacheManager, CacheManagerBuilder, Json, Queue};
use easycaching_host::{CompiledCache, EasyCachingCtx, Output, Plugin, RunOptions, Runtime};
pub use easycaching_host::{Error, Grant, Grants, MIN_HANDLES, PluginLimits, Run, RuntimeConfig};
pub use easycaching_http::MetricsSummary;
use easycaching_http::{DEFAULT_REQUEST_TIMEOUT, Server, ServerConfig};
use serde::Serialize;
pub use served::{Response, Served};

/// `Result` with the host's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A temporary database, grants, and the options of the next run.
pub struct Harness {
    manager: CacheManager,
    /// How the database was opened, to open it the same way in [`Harness::reopen`].
    database: CacheManagerBuilder,
    grants: Grants,
    options: RunOptions,
    // Declared last: the directory is removed after the manager has closed the database.
    dir: tempfile::TempDir,
}

impl Harness {
    /// A harness with an empty temporary database and no grants.
    pub fn new() -> Result<Harness> {
        Harness::with_database(|builder| builder)
    }

    /// A harness whose database is configured by `configure` (LRU size, limits, durability).
    pub fn with_database(
        configure: impl FnOnce(CacheManagerBuilder) -> CacheManagerBuilder,
    ) -> Result<Harness> {
        let dir = tempfile::tempdir()
            .map_err(|e| Error::Internal(format!("cannot make a temporary directory: {e}")))?;
        let database = configure(CacheManager::builder(dir.path().join("harness.db")));
        let manager = database.clone().open()?;
        let options = RunOptions { output: Output::Capture, ..RunOptions::default() };
        Ok(Harness { manager, database, grants: Grants::none(), options, dir })
    }

    /// Grants the plugin access, written as on the command line: `cache:test=rw`,
    /// `queue:jobs.*=rwc`, ...
    ///
    /// # Panics
    ///
    /// When `grant` is malformed, with the message saying how to write it: a test that
    /// misspells a grant should fail loudly, not run with fewer grants than meant.
    pub fn allow(mut self, grant: &str) -> Harness {
        let grant: Grant = grant.parse().unwrap_or_else(|error| panic!("{error}"));
        self.grants = self.grants.with(grant);
        self
    }

    /// Replaces the grants.
    pub fn grants(mut self, grants: Grants) -> Harness {
        self.grants = grants;
        self
    }

    /// The plugin's arguments for the next runs.
    pub fn args<I, S>(mut self, args: I) -> Harness
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.options.args = args.into_iter().map(Into::into).collect();
        self
    }

    /// An environment variable the plugin sees.
    pub fn env(mut self, key: &str, value: &str) -> Harness {
        self.options.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Memory, time and handle limits for the next runs.
    pub fn limits(mut self, limits: PluginLimits) -> Harness {
        self.options.limits = limits;
        self
    }

    /// Stores entries in the cache `name` (created when needed) before the plugin runs.
    pub fn seed_cache<K, V>(&self, name: &str, entries: impl IntoIterator<Item = (K, V)>) -> Result<()>
    where
        K: Into<String>,
        V: Serialize,
    {
        let entries = entries
            .into_iter()
            .map(|(key, value)| Ok((key.into(), Json::from_value(&value)?)))
            .collect::<Result<Vec<_>, easycaching::Error>>()?;
        let cache = self.manager.create_cache(name)?;
        // At least one entry a call: with `max_batch_items: 0` the store refuses it by name.
        for chunk in entries.chunks(self.manager.limits().max_batch_items.max(1)) {
            cache.set_many(chunk.iter().cloned())?;
        }
        Ok(())
    }

    /// Appends items to the queue `name` (created when needed) before the plugin runs.
    pub fn seed_queue<V: Serialize>(&self, name: &str, values: impl IntoIterator<Item = V>) -> Result<()> {
        let queue = self.manager.create_queue(name)?;
        for value in values {
            queue.put_value(&value)?;
        }
        Ok(())
    }

    /// Runs the component at `path` once, capturing its output. `Err` only when the component
    /// cannot be loaded; how the run ended is in [`Run::result`].
    pub fn run(&self, path: impl AsRef<Path>) -> Result<Run> {
        let plugin = load(path.as_ref(), self.options.limits.fuel.is_some())?;
        let ctx = EasyCachingCtx::builder(self.manager.clone()).grants(self.grants.clone()).build();
        Ok(plugin.run(ctx, &self.options))
    }

    /// Serves the `wasi:http` handler at `path` (a component of the
    /// `easycaching:cache/http-handler` world, or any exporting `wasi:http/incoming-handler`)
    /// on a free loopback port, as `easycaching serve` would, with this harness's database,
    /// grants, environment and limits (a request's time limit is the limits' `time`, 30 s when
    /// unset). Send it requests, then assert on the answers and on the caches:
    ///
    /// ```no_run
    /// # use easycaching_harness::Harness;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let harness = Harness::new()?.allow("cache:web=rwc");
    /// let served = harness.serve("target/wasm32-wasip2/release/http_cache.wasm")?;
    /// assert_eq!(served.post("/cache?key=foo&value=bar", "")?.status, 200);
    /// let answer: serde_json::Value = served.get("/cache?key=foo")?.json()?;
    /// assert_eq!(answer, serde_json::json!({"foo": {"json": "bar"}}));
    /// assert_eq!(served.stop()?.requests, 2);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// `Err` when the component cannot be loaded, is not an HTTP handler, or cannot be
    /// instantiated with these grants and limits. The component is compiled once and kept on
    /// disk, as `easycaching serve` keeps it. The server stops when the [`Served`] is stopped
    /// or dropped.
    pub fn serve(&self, path: impl AsRef<Path>) -> Result<Served> {
        let path = path.as_ref();
        if !path.exists() {
            return Err(not_built(path));
        }
        let time = self.options.limits.time.unwrap_or(DEFAULT_REQUEST_TIMEOUT);
        let config = ServerConfig {
            listen: (std::net::Ipv4Addr::LOCALHOST, 0).into(),
            request_timeout: Some(time),
            limits: PluginLimits { time: Some(time), ..self.options.limits },
            env: self.options.env.clone(),
            compiled_cache: CompiledCache::default_dir().map(CompiledCache::new),
            ..ServerConfig::default()
        };
        let ctx = EasyCachingCtx::builder(self.manager.clone()).grants(self.grants.clone()).build();
        let server = Server::new(path, ctx, config).map_err(|error| match error {
            easycaching_http::Error::Load { plugin, message } => Error::Load(format!("{plugin}: {message}")),
            easycaching_http::Error::Misconfigured(message) => Error::Misconfigured(message),
            other => Error::Internal(other.to_string()),
        })?;
        Served::start(server)
    }

    /// Closes the database and opens it again, as a restarted host would, with the settings
    /// of [`Harness::with_database`]: what the plugin wrote must still be there, read from the
    /// file rather than from memory.
    pub fn reopen(self) -> Result<Harness> {
        let Harness { manager, database, grants, options, dir } = self;
        drop(manager);
        let manager = database.clone().open()?;
        Ok(Harness { manager, database, grants, options, dir })
    }

    /// The database, for assertions and for setups the seeding helpers do not cover.
    pub fn manager(&self) -> &CacheManager {
        &self.manager
    }

    /// The cache `name`, to assert on its contents.
    pub fn cache(&self, name: &str) -> Result<Cache> {
        Ok(self.manager.open_cache(name)?)
    }

    /// The queue `name`, to assert on its contents.
    pub fn queue(&self, name: &str) -> Result<Queue> {
        Ok(self.manager.open_queue(name)?)
    }

    /// The database file.
    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("harness.db")
    }
}

/// One runtime, and every component it loaded, compiled once and kept.
struct Loaded {
    runtime: Runtime,
    plugins: Mutex<HashMap<PathBuf, Arc<Plugin>>>,
}

/// The component at `path`, from a runtime that counts fuel when `fuel` is set (counting slows
/// every guest, so only runs with a fuel limit use that runtime).
fn load(path: &Path, fuel: bool) -> Result<Arc<Plugin>> {
    static PLAIN: OnceLock<Loaded> = OnceLock::new();
    static FUELLED: OnceLock<Loaded> = OnceLock::new();
    let (cell, config) = match fuel {
        false => (&PLAIN, RuntimeConfig::default()),
        true => (&FUELLED, RuntimeConfig::default().fuel()),
    };
    let loaded = match cell.get() {
        Some(loaded) => loaded,
        None => {
            let runtime = Runtime::new(config)?;
            cell.get_or_init(|| Loaded { runtime, plugins: Mutex::default() })
        }
    };
    // Held while compiling: tests that start together wait for the first one's compile
    // instead of compiling the same component side by side.
    let mut plugins = loaded.plugins.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(plugin) = plugins.get(path) {
        return Ok(plugin.clone());
    }
    if !path.exists() {
        return Err(not_built(path));
    }
    let plugin = Arc::new(loaded.runtime.load(path)?);
    plugins.insert(path.to_owned(), plugin.clone());
    Ok(plugin)
}

/// The error for a component that is not there: `cargo test` builds no component, and a
/// relative path is taken from where the test runs, which the message names.
fn not_built(path: &Path) -> Error {
    let from = match path.is_relative() {
        true => std::env::current_dir()
            .map(|dir| format!(" (a relative path is taken from {}, where the test runs)", dir.display()))
            .unwrap_or_default(),
        false => String::new(),
    };
    Error::Load(format!(
        "{}: no such file{from}; `cargo test` does not build components: build it first, e.g. \
         `cargo build --release --target wasm32-wasip2`",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test run before its component was built is told to build it, and from where a
    /// relative path is taken; it said only "No such file or directory (os error 2)".
    #[test]
    fn a_component_not_built_yet_is_named_with_how_to_build_it() {
        let harness = Harness::new().unwrap();
        let missing = harness.run("target/wasm32-wasip2/release/not-built-yet.wasm").unwrap_err();
        let said = missing.to_string();
        assert!(matches!(missing, Error::Load(_)), "{missing:?}");
        assert!(said.contains("not-built-yet.wasm: no such file"), "{said}");
        assert!(said.contains("cargo build --release --target wasm32-wasip2"), "{said}");
        let here = std::env::current_dir().unwrap();
        assert!(said.contains(&format!("a relative path is taken from {}", here.display())), "{said}");
    }

    #[test]
    fn a_reopened_harness_keeps_the_database_settings() {
        let small = easycaching::Limits { max_value_bytes: 8, ..easycaching::Limits::default() };
        let harness = Harness::with_database(|builder| builder.limits(small)).unwrap();
        harness.seed_cache("c", [("k", "short")]).unwrap();
        let harness = harness.reopen().unwrap();
        assert_eq!(harness.manager().limits().max_value_bytes, 8);
        let refused = harness.seed_cache("c", [("k", "far too long for the limit")]).unwrap_err();
        assert!(refused.to_string().contains("over the limit of 8"), "{refused}");
        assert_eq!(harness.cache("c").unwrap().get_value::<String>("k").unwrap().as_deref(), Some("short"));
    }

    #[test]
    fn seeding_under_a_batch_limit_of_zero_is_refused_by_name() {
        let none = easycaching::Limits { max_batch_items: 0, ..easycaching::Limits::default() };
        let harness = Harness::with_database(|builder| builder.limits(none)).unwrap();
        let refused = harness.seed_cache("c", [("k", 1)]).unwrap_err();
        assert!(refused.to_string().contains("batch is 1 item, over the limit of 0"), "{refused}");
        assert_eq!(harness.cache("c").unwrap().len().unwrap(), 0);
    }
}
