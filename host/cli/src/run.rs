//! `easycaching run`: a plugin, its grants and its limits.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use easycaching_host::{Error, HostOutput, OUTPUT_GRACE, Output, RunOptions, Runtime, RuntimeConfig};

use crate::plugin_args::PluginArgs;
use crate::spinner::while_loading;
use crate::{Database, open_database};

#[derive(Args)]
#[command(after_help = "\
A plugin can reach nothing but what --allow grants it. Each grant is
  KIND:PATTERN[=MODE][,entries=N][,bytes=N]
where KIND is cache or queue, PATTERN a name or a prefix ending in * (* alone: every name),
and MODE r (read), rw (read and write, the default), rwc (also create and delete) or rc
(read, create and delete, but not write).
When several grants match a name, the most specific decides.

  --allow 'cache:test'                  read and write cache \"test\" (if it exists)
  --allow 'cache:sessions.*=rwc'        any cache named \"sessions.…\", and create them
  --allow 'cache:*=r' --allow 'cache:mine=rw'   read everything, write only \"mine\"
  --allow 'queue:jobs=rw,entries=10k'   queue \"jobs\", held to 10,000 items

The plugin also gets its arguments (after --), stdout and stderr, clocks and random numbers:
no files, no network, no environment variables unless given with --env.")]
pub struct RunArgs {
    /// The plugin: a WebAssembly component that exports wasi:cli/run.
    plugin: PathBuf,

    #[command(flatten)]
    given: PluginArgs,

    /// Arguments for the plugin.
    #[arg(last = true, value_name = "ARGS")]
    args: Vec<String>,
}

pub fn run(db: &Database, args: RunArgs) -> Result<ExitCode> {
    let compiled_cache = args.given.compiled_cache_dir();
    let kept = compiled_cache.is_some();
    let config = match compiled_cache {
        Some(dir) => RuntimeConfig::default().compiled_cache_dir(dir),
        None => RuntimeConfig::default().no_compiled_cache(),
    };
    let runtime = Runtime::new(config)?;
    // The plugin first: a mistyped path creates no database.
    let plugin = while_loading(&args.plugin, kept, || runtime.load(&args.plugin))?;
    let manager = open_database(db)?;
    let options = RunOptions {
        args: args.args,
        env: args.given.env.clone(),
        output: Output::Inherit,
        limits: args.given.limits(),
    };
    let result = plugin.run(args.given.ctx(manager), &options).result;
    // What the plugin wrote that stdout or stderr has not taken yet (its last lines, when its
    // time limit stopped it behind a slow reader) would be dropped as this process exits.
    HostOutput::finish(OUTPUT_GRACE);
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(Error::Exited { code }) => Ok(ExitCode::from(u8::try_from(code).unwrap_or(1))),
        Err(error) => Err(error.into()),
    }
}
