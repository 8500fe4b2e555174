//! `easycaching`: run plugins against a cache database, and look into or change the database
//! from the shell.

mod backup;
mod data;
mod plugin_args;
mod run;
mod serve;
mod spinner;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};
use easycaching::{CacheManager, Durability, Limits};

/// A shared, persistent cache for WebAssembly plugins.
///
/// Caches and queues live in one SQLite file (--db), or in a PostgreSQL database (--db
/// postgres://user@host/dbname). Plugins reach only the caches and queues you grant them with
/// --allow; the other commands look into and change the database directly.
#[derive(Parser)]
#[command(name = "easycaching", version, max_term_width = 100)]
#[command(after_help = "\
Examples:
  easycaching run plugin.wasm --allow 'cache:test=rwc'      run a plugin that may use cache \"test\"
  easycaching serve web.wasm --allow 'cache:web=rwc'        serve HTTP with a plugin (port 8220)
  easycaching ls                                            list caches and queues
  easycaching cache set test foo '\"bar\"'                    store a JSON value
  easycaching cache incr stats hits                         add 1 to a counter, print the sum
  easycaching cache get test foo                            print it
  easycaching cache dump test                               print every entry as {\"key\": value}
  easycaching cache load copy dump.jsonl                    store the entries a dump printed
  easycaching queue len jobs                                how many items wait in queue \"jobs\"
  easycaching queue dump jobs                               print them, oldest first, taking none
  easycaching backup backups/cache-2026-11-27.db            copy everything, while plugins run

The database is ./easycaching.db unless --db or EASYCACHING_DB names another: a file, or a
PostgreSQL URL (postgres://user:password@host:port/dbname), whose tables go in schema easycaching.
Logs go to stderr; set EASYCACHING_LOG=debug to see more.")]
struct Cli {
    /// The database file; the commands that store something create it when it does not exist.
    /// A value starting with postgres:// or postgresql:// is a PostgreSQL server instead
    /// (postgres://user:password@host:port/dbname): its tables are created in the schema
    /// easycaching when missing.
    #[arg(long, global = true, env = "EASYCACHING_DB", default_value = "easycaching.db")]
    db: PathBuf,

    /// What a write survives once acknowledged: `full` fsyncs every commit (survives a power
    /// cut); `normal` fsyncs at checkpoints (survives a crash of the process, not of the
    /// machine), and is several times faster per write.
    #[arg(long, global = true, env = "EASYCACHING_DURABILITY", value_enum, default_value_t = DurabilityArg::Full)]
    durability: DurabilityArg,

    /// How long a command waits for the database while another process holds it locked (a
    /// long transaction, an sqlite3 shell), e.g. 500ms, 30s or 2m; 0 does not wait.
    #[arg(long, global = true, env = "EASYCACHING_BUSY_TIMEOUT", value_name = "DURATION", default_value = "10s", value_parser = plugin_args::parse_duration)]
    busy_timeout: Duration,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a plugin (a wasm component exporting wasi:cli/run) with exactly the grants given.
    Run(run::RunArgs),
    /// Serve HTTP with a plugin (a wasm component exporting wasi:http/incoming-handler).
    Serve(serve::ServeArgs),
    /// List the caches and queues in the database, with their sizes.
    Ls,
    /// Look into and change caches.
    #[command(subcommand)]
    Cache(data::CacheCommand),
    /// Look into and change queues.
    #[command(subcommand)]
    Queue(data::QueueCommand),
    /// Write a copy of the whole database to a new file, while plugins go on using it.
    Backup(backup::BackupArgs),
    /// Put a backup in place of the database, which no process may have open.
    Restore(backup::RestoreArgs),
}

/// `--durability`, as the command line spells [`Durability`].
#[derive(Clone, Copy, ValueEnum)]
enum DurabilityArg {
    Full,
    Normal,
}

impl From<DurabilityArg> for Durability {
    fn from(arg: DurabilityArg) -> Durability {
        match arg {
            DurabilityArg::Full => Durability::Full,
            DurabilityArg::Normal => Durability::Normal,
        }
    }
}

/// The database file and how to open it, as the options every command shares give them.
pub struct Database {
    path: PathBuf,
    durability: Durability,
    busy_timeout: Duration,
}

/// Opens the database, creating it when it does not exist: for the commands that store
/// something (`run` and `serve` too, whose plugins may).
fn open_database(db: &Database) -> Result<CacheManager> {
    open_database_with(db, limits())
}

/// The size limits the commands open the database with: the library's defaults. `cache load`
/// checks its input against them before it opens anything.
fn limits() -> Limits {
    Limits::default()
}

impl Database {
    /// The PostgreSQL URL --db gives, if it gives one rather than a file.
    fn postgres_url(&self) -> Option<&str> {
        postgres_url(&self.path)
    }
}

/// `db` as a PostgreSQL URL, when it is one (`postgres://…`, `postgresql://…`).
fn postgres_url(db: &std::path::Path) -> Option<&str> {
    db.to_str().filter(|db| db.starts_with("postgres://") || db.starts_with("postgresql://"))
}

/// Opens the database as [`open_database`] does, with the size limits given.
fn open_database_with(db: &Database, limits: Limits) -> Result<CacheManager> {
    if let Some(url) = db.postgres_url() {
        // The library's errors name the server (never the password); the schema and tables are
        // made when missing, like a new file, but a server is never a typo'd path: no note.
        return Ok(CacheManager::builder_postgres(url)
            .busy_timeout(db.busy_timeout)
            .limits(limits)
            .open()?);
    }
    let new = !db.path.exists();
    // The library's errors name the file already.
    let manager = CacheManager::builder(&db.path)
        .durability(db.durability)
        .busy_timeout(db.busy_timeout)
        .limits(limits)
        .open()?;
    if new {
        // A mistyped --db, or a command run in another directory, would otherwise find its data
        // gone without a word: said once, when the file is made.
        eprintln!("easycaching: note: created a new database at {}", db.path.display());
    }
    Ok(manager)
}

/// Opens a database that exists, for the commands that only look into or change what is
/// there: a mistyped --db is an error, not a new empty file.
fn open_existing_database(db: &Database) -> Result<CacheManager> {
    if db.postgres_url().is_none() && !db.path.exists() {
        anyhow::bail!(NoDatabase(db.path.clone()));
    }
    open_database(db)
}

/// No file at the path given: nothing was ever stored there.
#[derive(Debug)]
struct NoDatabase(PathBuf);

impl std::fmt::Display for NoDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "there is no database at {}", self.0.display())
    }
}

impl std::error::Error for NoDatabase {}

/// Opens the database for a data command: created only by the commands that store.
fn database_for(creates: bool, db: &Database) -> Result<CacheManager> {
    if creates { open_database(db) } else { open_existing_database(db) }
}

fn execute(cli: Cli) -> Result<ExitCode> {
    let db = Database { path: cli.db, durability: cli.durability.into(), busy_timeout: cli.busy_timeout };
    match cli.command {
        Command::Run(args) => run::run(&db, args),
        Command::Serve(args) => serve::serve(&db, args),
        Command::Ls => data::list(&open_existing_database(&db)?),
        // Reads and checks its input before it opens, and so creates, the database.
        Command::Cache(data::CacheCommand::Load { cache, file }) => data::load(&db, &cache, file.as_deref()),
        Command::Cache(command) => data::cache(&database_for(command.creates(), &db)?, command),
        Command::Queue(command) => data::queue(&database_for(command.creates(), &db)?, command),
        Command::Backup(args) => backup::backup(&open_existing_database(&db)?, args),
        Command::Restore(_) if db.postgres_url().is_some() => anyhow::bail!(
            "restore puts a backup file in place of an SQLite database; a PostgreSQL database is \
             restored with its own tools (pg_restore, psql)"
        ),
        Command::Restore(args) => backup::restore(&db.path, args),
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("EASYCACHING_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::try_parse().unwrap_or_else(|error| with_tip(error).exit());
    let files = files_named(&cli);
    match execute(cli) {
        Ok(code) => code,
        // `easycaching cache keys big | head`: the reader has what it wanted.
        Err(error) if data::is_reader_gone(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("easycaching: {error:#}");
            // Only for an error about that directory: `--db data/app.db run typo.wasm` is told
            // of the plugin first.
            let said = format!("{error:#}");
            let directory = missing_directory(&files)
                .filter(|dir| said.contains(&dir.display().to_string()))
                .map(|dir| format!("create the directory first: mkdir -p {}", dir.display()));
            if let Some(hint) = hint(&error).or(directory) {
                eprintln!("hint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}

/// A parse error with a tip of ours: `easycaching run plugin.wasm add x` (as `wasmtime run`
/// takes it) refused `add` with no word of the -- that the plugin's arguments come after.
fn with_tip(mut error: clap::Error) -> clap::Error {
    use clap::CommandFactory;
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cli = Cli::command();
    let is_subcommand = |arg: &&String| cli.find_subcommand(arg.as_str()).is_some() || *arg == "help";
    let running = args.iter().find(is_subcommand).is_some_and(|arg| arg == "run");
    let unexpected = error.get(ContextKind::InvalidArg).is_some_and(|arg| !arg.to_string().starts_with('-'));
    if error.kind() == ErrorKind::UnknownArgument
        && running
        && unexpected
        && !args.iter().any(|arg| arg == "--")
    {
        let mut tips = match error.get(ContextKind::Suggested) {
            Some(ContextValue::StyledStrs(tips)) => tips.clone(),
            _ => Vec::new(),
        };
        tips.push("the plugin's arguments go after --, e.g. `easycaching run plugin.wasm --allow cache:test -- ARGS`".into());
        error.insert(ContextKind::Suggested, ContextValue::StyledStrs(tips));
    }
    error
}

/// The files the command names that it may create: `--db`, and `backup`'s destination.
fn files_named(cli: &Cli) -> Vec<PathBuf> {
    let backup = match &cli.command {
        Command::Backup(args) => Some(args.dest().to_owned()),
        _ => None,
    };
    let db = postgres_url(&cli.db).is_none().then(|| cli.db.clone());
    [db, backup].into_iter().flatten().collect()
}

/// The directory of one of `files` that does not exist (`--db data/app.db` or `backup
/// backups/today.db` before `mkdir`), looked for only once a command has failed.
fn missing_directory(files: &[PathBuf]) -> Option<PathBuf> {
    files
        .iter()
        .filter_map(|file| file.parent())
        .find(|dir| !dir.as_os_str().is_empty() && !dir.exists())
        .map(|dir| dir.to_path_buf())
}

/// What to type next, for the errors the command line can say more about than the library.
fn hint(error: &anyhow::Error) -> Option<String> {
    if let Some(NoDatabase(_)) = error.downcast_ref() {
        return Some(
            "give the file with --db (or EASYCACHING_DB); `cache set`, `cache incr`, `cache swap`, \
             `cache create`, `cache load`, `queue put`, `queue create`, `run` and `serve` create it"
                .into(),
        );
    }
    if let Some(easycaching_http::Error::Listen { reason, .. }) = error.downcast_ref() {
        return (reason.kind() == std::io::ErrorKind::AddrInUse).then(|| {
            "another process listens there: pick another address with --listen (port 0 picks a free one)"
                .into()
        });
    }
    if let Some(easycaching_host::Error::Trapped { message }) = error.downcast_ref() {
        // Rust's panics and aborts, and C's abort(), end in `unreachable`: the trap alone reads as
        // a fault of the host's.
        return message.contains("`unreachable`").then(|| {
            "the plugin panicked or aborted: its own message, if it printed one, is above; the backtrace \
             shows where"
                .into()
        });
    }
    match error.downcast_ref::<easycaching::Error>()? {
        easycaching::Error::Busy { .. } => Some(
            "let the other process finish (or end it), then try again; or wait longer with \
             --busy-timeout, e.g. --busy-timeout 60s"
                .into(),
        ),
        easycaching::Error::Corrupt { .. } => Some(
            "stop every process using it, then put a backup in its place with `easycaching restore \
             BACKUP` (which keeps the damaged file, moved aside)"
                .into(),
        ),
        easycaching::Error::NoSuchCache(name) => Some(format!("easycaching cache create {name}")),
        easycaching::Error::NoSuchQueue(name) => Some(format!("easycaching queue create {name}")),
        _ => None,
    }
}
