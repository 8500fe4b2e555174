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
When several grants match a name, the most specific decides; two of the same names must agree.

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
    args.given.check_grants()?;
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
    for option in misplaced_options(&args.args) {
        eprintln!(
            "easycaching: note: {option} comes after --, so it is an argument of the plugin, not an option \
             of easycaching run: give options before --"
        );
    }
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

/// The plugin's arguments that are options of `run` itself (`-- add x --allow cache:a`): what
/// comes after -- goes to the plugin, whatever it looks like, which a user who put a grant there
/// did not mean. `--help` and `--version` are left out, as a plugin may well take them.
fn misplaced_options(plugin_args: &[String]) -> Vec<&str> {
    use clap::CommandFactory;
    // Most runs pass no long option to the plugin: they build no command line to look in.
    if !plugin_args.iter().any(|arg| arg.starts_with("--")) {
        return Vec::new();
    }
    let cli = crate::Cli::command();
    let run = cli.find_subcommand("run").expect("the run subcommand");
    let options: Vec<&str> = run
        .get_arguments()
        .chain(cli.get_arguments())
        .filter_map(|arg| arg.get_long())
        .filter(|long| !matches!(*long, "help" | "version"))
        .collect();
    plugin_args
        .iter()
        .map(String::as_str)
        .filter(|arg| {
            arg.strip_prefix("--")
                .and_then(|option| option.split('=').next())
                .is_some_and(|name| options.contains(&name))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_of_run_among_the_plugin_s_arguments_are_found() {
        let args = |list: &[&str]| list.iter().map(|arg| arg.to_string()).collect::<Vec<_>>();
        let given = args(&["add", "x", "--allow", "cache:a", "--db=x.db", "--env", "--help", "--verbose"]);
        assert_eq!(misplaced_options(&given), ["--allow", "--db=x.db", "--env"]);
        assert!(misplaced_options(&args(&["--help", "-v", "allow"])).is_empty());
    }
}
