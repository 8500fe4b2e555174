//! `easycaching run`: a plugin, its grants and its limits.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use easycaching::CacheManager;
use easycaching_host::{EasyCachingCtx, Error, Grant, Limits, Output, RunOptions, Runtime, RuntimeConfig};

#[derive(Args)]
#[command(after_help = "\
A plugin can reach nothing but what --allow grants it. Each grant is
  KIND:PATTERN[=MODE][,entries=N][,bytes=N]
where KIND is cache or queue, PATTERN a name or a prefix ending in * (* alone: every name),
and MODE r (read), rw (read and write, the default) or rwc (also create and delete).
When several grants match a name, the most specific decides.

  --allow 'cache:test'                  read and write cache \"test\" (if it exists)
  --allow 'cache:sessions.*=rwc'        any cache whose name starts with \"sessions.\", and create them
  --allow 'cache:*=r' --allow 'cache:mine=rw'   read everything, write only \"mine\"
  --allow 'queue:jobs=rw,entries=10k'   queue \"jobs\", held to 10,000 items

The plugin also gets its arguments (after --), stdout and stderr, clocks and random numbers:
no files, no network, no environment variables unless given with --env.")]
pub struct RunArgs {
    /// The plugin: a WebAssembly component that exports wasi:cli/run.
    plugin: PathBuf,

    /// Grant the plugin access to caches or queues (repeatable; see below).
    #[arg(long = "allow", value_name = "GRANT")]
    grants: Vec<Grant>,

    /// Give the plugin an environment variable (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    env: Vec<(String, String)>,

    /// The most memory the plugin may use, e.g. 64M or 1G.
    #[arg(long, value_name = "BYTES", default_value = "256M", value_parser = parse_bytes)]
    memory: usize,

    /// Stop the plugin after this long, e.g. 500ms, 30s or 2m (default: no limit).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    timeout: Option<Duration>,

    /// Keep compiled plugins in this directory (default: ~/.cache/easycaching/compiled).
    #[arg(long, value_name = "DIR", env = "EASYCACHING_COMPILED_CACHE")]
    compiled_cache: Option<PathBuf>,

    /// Compile the plugin afresh and keep nothing on disk.
    #[arg(long, conflicts_with = "compiled_cache")]
    no_compiled_cache: bool,

    /// Arguments for the plugin.
    #[arg(last = true, value_name = "ARGS")]
    args: Vec<String>,
}

pub fn run(db: &Path, args: RunArgs) -> Result<ExitCode> {
    if args.grants.is_empty() {
        eprintln!("easycaching: note: no --allow given, so the plugin can reach no cache or queue");
    }
    let manager =
        CacheManager::open(db).with_context(|| format!("cannot open the database {}", db.display()))?;
    let config = match (args.no_compiled_cache, args.compiled_cache) {
        (true, _) => RuntimeConfig::default().no_compiled_cache(),
        (false, Some(dir)) => RuntimeConfig::default().compiled_cache_dir(dir),
        (false, None) => RuntimeConfig::default(),
    };
    let runtime = Runtime::new(config)?;
    let plugin = runtime.load(&args.plugin)?;
    let ctx =
        args.grants.into_iter().fold(EasyCachingCtx::builder(manager), |ctx, grant| ctx.grant(grant)).build();
    let options = RunOptions {
        args: args.args,
        env: args.env,
        output: Output::Inherit,
        limits: Limits { memory_bytes: args.memory, time: args.timeout, ..Limits::default() },
    };
    match plugin.run(ctx, &options).result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(Error::Exited { code }) => Ok(ExitCode::from(u8::try_from(code).unwrap_or(1))),
        Err(error) => Err(error.into()),
    }
}

pub(crate) fn parse_env(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("{text:?} is not KEY=VALUE")),
    }
}

/// `1024`, `64k`, `256M`, `1G` (powers of 1024).
pub(crate) fn parse_bytes(text: &str) -> Result<usize, String> {
    let (digits, shift) = match text.char_indices().last() {
        Some((at, 'k' | 'K')) => (&text[..at], 10),
        Some((at, 'm' | 'M')) => (&text[..at], 20),
        Some((at, 'g' | 'G')) => (&text[..at], 30),
        _ => (text, 0),
    };
    digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(|| format!("{text:?} is not a size like 64M or 1G"))
}

/// `250ms`, `30s`, `2m`, `1h`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let fail = || format!("{text:?} is not a duration like 500ms, 30s or 2m");
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(fail)?;
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().map_err(|_| fail())?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(fail()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_parse_as_documented() {
        assert_eq!(parse_bytes("256M"), Ok(256 << 20));
        assert_eq!(parse_bytes("1G"), Ok(1 << 30));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert!(parse_bytes("lots").is_err());
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("1 s").is_err());
        assert_eq!(parse_env("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert!(parse_env("=x").is_err());
    }
}
