//! What `run` and `serve` give a plugin, parsed once for both: its grants, environment,
//! limits, and where its compiled code is kept.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use easycaching::CacheManager;
use easycaching_host::{CompiledCache, EasyCachingCtx, Grant, PluginLimits};

/// The flags shared by `easycaching run` and `easycaching serve`.
#[derive(Args)]
pub struct PluginArgs {
    /// Grant the plugin a cache or queue, e.g. 'cache:test=rwc' (repeatable; the syntax is in
    /// `easycaching run --help`, after the options).
    #[arg(long = "allow", value_name = "GRANT")]
    grants: Vec<Grant>,

    /// Give the plugin an environment variable (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    pub env: Vec<(String, String)>,

    /// The most memory the plugin may use (`serve`: each instance), its linear memories and
    /// tables together, e.g. 64M or 1G.
    #[arg(long, value_name = "BYTES", default_value = "256M", value_parser = parse_bytes)]
    memory: usize,

    /// Stop the plugin after this long, e.g. 500ms, 30s or 2m; 0 is no limit. `run`: no limit
    /// unless given. `serve`: the limit of each request, reading it, running the plugin and
    /// sending the response (default: 30s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    timeout: Option<Duration>,

    /// Keep compiled plugins in this directory (default: ~/.cache/easycaching/compiled).
    #[arg(long, value_name = "DIR", env = "EASYCACHING_COMPILED_CACHE")]
    compiled_cache: Option<PathBuf>,

    /// Compile the plugin afresh and keep nothing on disk.
    #[arg(long, conflicts_with = "compiled_cache")]
    no_compiled_cache: bool,
}

impl PluginArgs {
    /// Refuses two grants of the same names that say different things (`--allow cache:a=rwc
    /// --allow cache:a=r`): being equally specific, the last given would decide, silently.
    pub fn check_grants(&self) -> anyhow::Result<()> {
        for (i, grant) in self.grants.iter().enumerate() {
            let differs = |other: &&Grant| {
                other.kind == grant.kind && other.pattern == grant.pattern && *other != grant
            };
            if let Some(other) = self.grants[..i].iter().find(differs) {
                anyhow::bail!(
                    "--allow {other} and --allow {grant} grant the same names differently: give one \
                     (when several grants match a name the most specific decides, and these are alike)"
                );
            }
        }
        Ok(())
    }

    /// The plugin's view of `manager`: exactly the caches and queues granted, nothing else.
    /// Says so on stderr when nothing is granted, which is rarely what was meant.
    pub fn ctx(&self, manager: CacheManager) -> EasyCachingCtx {
        if self.grants.is_empty() {
            eprintln!("easycaching: note: no --allow given, so the plugin can reach no cache or queue");
        }
        self.grants
            .iter()
            .cloned()
            .fold(EasyCachingCtx::builder(manager), |ctx, grant| ctx.grant(grant))
            .build()
    }

    /// The time limit given, if any.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The memory and time limits given, the others at their defaults. A `--timeout` of 0 is
    /// no limit, as it is for `serve`, not a plugin stopped before it starts.
    pub fn limits(&self) -> PluginLimits {
        let time = self.timeout.filter(|limit| !limit.is_zero());
        PluginLimits { memory_bytes: self.memory, time, ..PluginLimits::default() }
    }

    /// Where compiled code is kept: the directory given, the default directory, or nowhere
    /// (`--no-compiled-cache`, or no home directory to put it in).
    pub fn compiled_cache_dir(&self) -> Option<PathBuf> {
        match (self.no_compiled_cache, &self.compiled_cache) {
            (true, _) => None,
            (false, Some(dir)) => Some(dir.clone()),
            (false, None) => CompiledCache::default_dir(),
        }
    }
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("{text:?} is not KEY=VALUE")),
    }
}

/// `1024`, `64k`, `256M`, `1G` (powers of 1024).
fn parse_bytes(text: &str) -> Result<usize, String> {
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

/// `250ms`, `30s`, `2m`, `1h`, or `0` (no unit needed: `serve --timeout 0` is documented as
/// "no limit").
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let fail = || format!("{text:?} is not a duration like 500ms, 30s or 2m");
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(fail)?;
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().map_err(|_| fail())?;
    let seconds = |factor: u64| n.checked_mul(factor).map(Duration::from_secs).ok_or_else(fail);
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => seconds(60),
        "h" => seconds(3600),
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
        assert!(parse_bytes(&format!("{}G", usize::MAX)).is_err());
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("30").is_err());
        // `serve --timeout 0` is how its help and the README say to lift the limit.
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("1 s").is_err());
        assert!(parse_duration(&format!("{}h", u64::MAX)).is_err());
        assert_eq!(parse_env("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert!(parse_env("=x").is_err());
    }

    #[derive(clap::Parser)]
    struct Given {
        #[command(flatten)]
        given: PluginArgs,
    }

    fn limits(args: &[&str]) -> PluginLimits {
        use clap::Parser;
        Given::try_parse_from(std::iter::once("run").chain(args.iter().copied()))
            .unwrap_or_else(|error| panic!("{error}"))
            .given
            .limits()
    }

    #[test]
    fn a_timeout_of_zero_is_no_limit() {
        assert_eq!(limits(&[]).time, None);
        assert_eq!(limits(&["--timeout", "0"]).time, None);
        assert_eq!(limits(&["--timeout", "0s"]).time, None);
        assert_eq!(limits(&["--timeout", "2s"]).time, Some(Duration::from_secs(2)));
    }
}
