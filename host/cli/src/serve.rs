//! `easycaching serve`: an HTTP server whose requests a plugin answers, with its grants and
//! limits, on many workers sharing one cache.

use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use easycaching_host::{CompiledCache, HostOutput, OUTPUT_GRACE, PluginLimits};
use easycaching_http::{
    DEFAULT_LISTEN, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_INSTANCES, DEFAULT_REQUEST_TIMEOUT, METRICS_PATH,
    Server, ServerConfig,
};

use crate::plugin_args::{PluginArgs, parse_duration};
use crate::spinner::while_loading;
use crate::{Database, open_database};

#[derive(Args)]
#[command(after_help = "\
The plugin is a WebAssembly component that exports wasi:http/incoming-handler@0.2 (the
easycaching:cache/http-handler world), e.g. guest/rust/http-cache:

  easycaching serve target/guests/http_cache.wasm --db web.db --allow 'cache:web=rwc' --workers 5
  curl -X POST 'http://127.0.0.1:8220/cache?key=foo&value=bar'
  curl 'http://127.0.0.1:8220/cache?key=foo'                 -> {\"foo\":{\"json\":\"bar\"}}

Every worker shares one cache: a value written through one is read through any other at once.
Grants are written as for `easycaching run` (see `easycaching run --help`); the plugin gets no
files and no network, and its outgoing HTTP requests are refused.

Each request runs in a fresh instance of the plugin, so no request sees what another left in
its memory. --requests-per-instance N lets an instance answer up to N requests: faster, for
plugins that keep no per-request state in globals. --memory applies to each instance;
a plugin that traps or goes over a limit answers 500, and the server goes on.

--timeout (default 30s; 0 for none) bounds each request's whole life: waiting for an instance
(503 past it), the plugin's answer (a plugin running wasm, asleep or waiting on a stream is
stopped, 500; 504 when nothing comes in time, and the instance is not reused), reading the
request's body (a body the client stops sending fails the plugin's read), and sending the
response (a client that does not read it in time has its connection dropped, which frees the
plugin blocked writing to it).

At most --max-connections (default 1024) connections are open at once; more wait to be
accepted. A connection that does not send a request's head within --header-timeout (default
10s), or stays idle that long between requests, is closed.

GET /_easycaching/metrics is answered by the server, not the plugin: requests, 4xx and 5xx
counts, latency percentiles. Set EASYCACHING_LOG=info for an access log on stderr.
Ctrl-C or SIGTERM stops accepting, finishes the requests in flight and prints the summary;
a second one stops at once.")]
pub struct ServeArgs {
    /// The plugin: a WebAssembly component that exports wasi:http/incoming-handler.
    plugin: PathBuf,

    /// The address to listen on, as IP:PORT or HOST:PORT; port 0 picks a free one (the address
    /// is printed).
    #[arg(long, value_name = "ADDRESS", default_value_t = DEFAULT_LISTEN, value_parser = parse_listen)]
    listen: SocketAddr,

    /// Threads that accept connections and speak HTTP (default: one per CPU).
    #[arg(long, value_name = "N", value_parser = parse_at_least_one)]
    workers: Option<NonZeroUsize>,

    /// Plugin instances running at once; more requests wait. Each holds a thread while its
    /// writes wait to be durable, so this is also how many writes can share a commit.
    #[arg(long, value_name = "N", default_value_t = NonZeroUsize::new(DEFAULT_MAX_INSTANCES).expect("not zero"), value_parser = parse_at_least_one)]
    instances: NonZeroUsize,

    /// Requests one instance answers before a fresh one replaces it (1: a fresh instance per
    /// request).
    #[arg(long, value_name = "N", default_value = "1", value_parser = parse_at_least_one)]
    requests_per_instance: NonZeroUsize,

    /// Close a connection that takes longer than this to send a request's head, or that stays
    /// idle this long between requests, e.g. 5s.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_header_timeout)]
    header_timeout: Duration,

    /// Connections open at once; more wait to be accepted, while the open ones are served on
    /// (at most what the open-file limit leaves room for).
    #[arg(long, value_name = "N", default_value_t = NonZeroUsize::new(DEFAULT_MAX_CONNECTIONS).expect("not zero"), value_parser = parse_at_least_one)]
    max_connections: NonZeroUsize,

    #[command(flatten)]
    given: PluginArgs,
}

pub fn serve(db: &Database, args: ServeArgs) -> Result<ExitCode> {
    args.given.check_grants()?;
    let defaults = ServerConfig::default();
    // `--timeout 0` asks for no limit, for plugins that stream or long-poll.
    let timeout =
        Some(args.given.timeout().unwrap_or(DEFAULT_REQUEST_TIMEOUT)).filter(|limit| !limit.is_zero());
    let config = ServerConfig {
        listen: args.listen,
        workers: args.workers.map_or(defaults.workers, NonZeroUsize::get),
        max_instances: args.instances.get(),
        requests_per_instance: args.requests_per_instance.get() as u64,
        request_timeout: timeout,
        header_read_timeout: args.header_timeout,
        max_connections: args.max_connections.get(),
        limits: PluginLimits { time: timeout, ..args.given.limits() },
        env: args.given.env.clone(),
        compiled_cache: args.given.compiled_cache_dir().map(CompiledCache::new),
    };
    let (workers, instances) = (config.workers, config.max_instances);
    let kept = config.compiled_cache.is_some();
    // The plugin first: a mistyped path or a plugin of the wrong kind creates no database.
    let loaded = while_loading(&args.plugin, kept, || Server::load(&args.plugin, config))?;
    let server = loaded.with_caches(args.given.ctx(open_database(db)?))?;
    let summary = server.serve(|address| {
        // Scripts and tests read the address from this line, so it goes out at once. A stdout
        // nobody reads any more (`| head -1`) is no reason to stop serving, nor to panic.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "easycaching: serving {} on http://{address}/ ({workers} workers, up to {instances} instances; metrics at {METRICS_PATH})",
            args.plugin.display()
        );
        let _ = out.flush();
    });
    // What plugins wrote that stdout or stderr has not taken yet would be dropped as this
    // process exits.
    HostOutput::finish(OUTPUT_GRACE);
    let summary = summary?;
    // The server has stopped as asked; a summary that cannot be printed changes nothing.
    let _ = writeln!(std::io::stdout(), "easycaching: stopped after {summary}");
    Ok(ExitCode::SUCCESS)
}

/// A duration above zero: a connection given no time to send its request's head would be
/// closed before it could be served.
fn parse_header_timeout(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        zero if zero.is_zero() => Err(format!(
            "{text:?} would close every connection before its first request; give a time above 0, e.g. 10s"
        )),
        timeout => Ok(timeout),
    }
}

/// A count of one or more (--workers, --instances, --requests-per-instance,
/// --max-connections): clap's own parser said "number would be zero for non-zero type" of 0.
fn parse_at_least_one(text: &str) -> Result<NonZeroUsize, String> {
    let count = text.parse::<usize>().map_err(|error| match error.kind() {
        std::num::IntErrorKind::PosOverflow => format!("{text} is too large: at most {}", usize::MAX),
        _ => format!("{text:?} is not a count: give a whole number of at least 1"),
    })?;
    NonZeroUsize::new(count).ok_or_else(|| "must be at least 1".into())
}

/// `127.0.0.1:8220`, `[::1]:8220` or `localhost:8220`: the first address a host name resolves to.
fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    let fail = |why: String| {
        format!("{text:?} is not an address to listen on, like 127.0.0.1:8220 or localhost:8220 ({why})")
    };
    text.to_socket_addrs()
        .map_err(|error| fail(error.to_string()))?
        .next()
        .ok_or_else(|| fail("the name has no address".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_to_listen_on_may_name_a_host() {
        assert_eq!(parse_listen("127.0.0.1:8221"), Ok(SocketAddr::from(([127, 0, 0, 1], 8221))));
        assert!(
            parse_listen("localhost:8221")
                .is_ok_and(|address| address.ip().is_loopback() && address.port() == 8221)
        );
        assert!(parse_listen("localhost").unwrap_err().contains("like 127.0.0.1:8220"));
    }

    #[test]
    fn counts_of_zero_or_not_numbers_say_the_flag_takes_at_least_1() {
        assert_eq!(parse_at_least_one("3"), Ok(NonZeroUsize::new(3).expect("not zero")));
        assert_eq!(parse_at_least_one("0"), Err("must be at least 1".into()));
        assert!(parse_at_least_one("-1").unwrap_err().contains("whole number of at least 1"));
        assert!(parse_at_least_one("many").unwrap_err().contains("\"many\" is not a count"));
        let huge = "99999999999999999999999";
        assert_eq!(parse_at_least_one(huge), Err(format!("{huge} is too large: at most {}", usize::MAX)));
    }

    #[test]
    fn a_header_timeout_of_zero_is_refused() {
        assert_eq!(parse_header_timeout("5s"), Ok(Duration::from_secs(5)));
        assert!(parse_header_timeout("0s").unwrap_err().contains("close every connection"));
        assert!(parse_header_timeout("0ms").is_err());
        assert!(parse_header_timeout("soon").unwrap_err().contains("not a duration"));
    }
}
