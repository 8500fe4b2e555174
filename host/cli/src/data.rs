//! The commands that look into and change a database from the shell.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Subcommand;
use easycaching::{CacheManager, Json, Limits, Receipt};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::Database;

#[derive(Subcommand)]
pub enum CacheCommand {
    /// Print the value stored under KEY (exit status 1 when there is none).
    Get {
        /// The cache to read.
        cache: String,
        /// The key whose value to print.
        key: String,
    },
    /// Store a JSON value under KEY, creating the cache when needed.
    #[command(after_help = "The value is JSON: quote strings for the shell, e.g. '\"bar\"' or '{\"n\": 1}'.")]
    Set {
        /// The cache to store in (created when it does not exist).
        cache: String,
        /// The key to store the value under.
        key: String,
        /// The value, a JSON document, e.g. '"bar"', 42 or '{"n": 1}'.
        #[arg(value_parser = parse_json)]
        value: Json,
        /// Expire the value this long from now, e.g. 500ms, 30s, 10m or 24h; without it the
        /// value never expires (a TTL it replaces is cleared).
        #[arg(long, value_name = "DURATION", value_parser = parse_ttl)]
        ttl: Option<Duration>,
    },
    /// Print how long the value under KEY has left before it expires, in milliseconds (e.g.
    /// `29998ms`), or `none` when it never expires; exit status 1 when there is no value.
    Ttl {
        /// The cache to read.
        cache: String,
        /// The key whose TTL to print.
        key: String,
    },
    /// Add BY (default 1; negative to subtract) to the integer under KEY and print the sum, in
    /// one write no other comes between; an absent key counts as 0. Creates the cache when
    /// needed.
    Incr {
        /// The cache holding the counter (created when it does not exist).
        cache: String,
        /// The key of the counter.
        key: String,
        /// The whole number to add, e.g. 5 or -3.
        #[arg(default_value_t = 1, allow_negative_numbers = true, value_parser = parse_amount)]
        by: i64,
    },
    /// Store a value under KEY only if KEY holds the value expected now, in one write no other
    /// comes between; prints `true` when it did. Exit status 0 when swapped, 3 when KEY held
    /// something else (nothing is changed, `false` is printed), 1 or 2 on an error. Creates the
    /// cache when needed.
    #[command(
        after_help = "EXPECTED is compared as a JSON value: member order, spaces and the spelling of numbers \
                      do not count.\n\nExamples:\n  \
                      easycaching cache swap locks report --absent --value '\"worker-1\"'\n  \
                      easycaching cache swap locks report --expected '\"worker-1\"' --delete"
    )]
    Swap {
        /// The cache holding KEY (created when it does not exist).
        cache: String,
        /// The key to compare and swap.
        key: String,
        /// The JSON value KEY must hold for the swap.
        #[arg(long, value_parser = parse_json, required_unless_present = "absent", value_name = "JSON")]
        expected: Option<Json>,
        /// Swap only if KEY is absent (instead of --expected).
        #[arg(long, conflicts_with = "expected")]
        absent: bool,
        /// The JSON value to store under KEY.
        #[arg(long, value_parser = parse_json, required_unless_present = "delete", value_name = "JSON")]
        value: Option<Json>,
        /// Remove KEY (instead of --value).
        #[arg(long, conflicts_with = "value")]
        delete: bool,
    },
    /// Remove keys; prints how many were there.
    Del {
        /// The cache to remove from.
        cache: String,
        /// The keys to remove (one or more).
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// Print the keys in key order, one per line.
    Keys {
        /// The cache whose keys to print.
        cache: String,
        /// Print at most this many.
        #[arg(long)]
        limit: Option<usize>,
        /// Start after this key.
        #[arg(long)]
        after: Option<String>,
        /// Only the keys that begin with this (e.g. `user:1:`).
        #[arg(long, default_value = "")]
        prefix: String,
    },
    /// Print every entry as a JSON line {"key": value}, in key order.
    Dump {
        /// The cache to print.
        cache: String,
        /// Only the entries whose keys begin with this (e.g. `user:1:`).
        #[arg(long, default_value = "")]
        prefix: String,
    },
    /// Store the entries of a dump ({"key": value} lines, as `dump` prints them) in one write,
    /// creating the cache when needed; prints how many keys it stored.
    #[command(after_help = LOAD_HELP)]
    Load {
        /// The cache to store in (created when it does not exist).
        cache: String,
        /// The file to read, as `cache dump` wrote it; stdin when absent or `-`.
        #[arg(value_name = "FILE")]
        file: Option<std::path::PathBuf>,
    },
    /// Print how many entries the cache holds.
    Len {
        /// The cache to count.
        cache: String,
    },
    /// Remove every entry, or with --prefix those whose keys begin with it; prints how many
    /// there were.
    Clear {
        /// The cache to empty.
        cache: String,
        /// Only the entries whose keys begin with this (e.g. `user:1:`).
        #[arg(long, default_value = "")]
        prefix: String,
    },
    /// Create an empty cache (nothing happens when it exists).
    Create {
        /// The name of the cache to create.
        cache: String,
    },
    /// Delete a cache and all its entries.
    Drop {
        /// The cache to delete.
        cache: String,
    },
}

/// What `cache load --help` says after the arguments.
const LOAD_HELP: &str = "\
Keys in the input replace what the cache holds under them; its other entries stay (run `cache \
clear` first for an exact copy). A key given twice takes its later value.

The whole input is read and checked first: a line that is not one {\"key\": value} entry (invalid \
JSON, not an object, no or two members, not UTF-8), or a key or value over the size limits, is an \
error naming the line, and nothing is stored; neither the cache nor the database file is created. \
Then every entry is stored in one transaction, all or none, with one fsync however many there \
are; the input is held in memory meanwhile. Should that write fail (a full disk, a database \
locked past --busy-timeout), nothing is stored, though a cache that did not exist may be left \
created and empty.

Example: easycaching --db a.db cache dump test | easycaching --db b.db cache load test";

#[derive(Subcommand)]
pub enum QueueCommand {
    /// Append a JSON value, creating the queue when needed.
    Put {
        /// The queue to append to (created when it does not exist).
        queue: String,
        /// The item, a JSON document, e.g. '"job"', 42 or '{"n": 1}'.
        #[arg(value_parser = parse_json)]
        value: Json,
    },
    /// Remove and print the oldest item, or with --max the oldest N (exit status 1 when none
    /// waits).
    Get {
        /// The queue to take from.
        queue: String,
        /// Wait up to this long for an item when none waits, e.g. 500ms, 30s or 10m (exit
        /// status 1 when none came in time).
        #[arg(long, value_name = "DURATION", value_parser = crate::plugin_args::parse_duration)]
        wait: Option<Duration>,
        /// Take up to this many of the oldest items at once (at most 1000, and about 4 MiB), in
        /// one write, printed one JSON line each, oldest first; with --wait, those that wait
        /// when the first one comes.
        #[arg(long, value_name = "N", default_value_t = 1,
              value_parser = clap::value_parser!(u32).range(1..=easycaching::MAX_PAGE_ITEMS as i64))]
        max: u32,
    },
    /// Print the oldest item waiting without removing it (exit status 1 when none waits).
    Peek {
        /// The queue to look into.
        queue: String,
    },
    /// Hand out the oldest item waiting under a lease, for delivery at least once: prints its
    /// receipt, a space and the item, or with --max up to N of them, a line each (exit status 1
    /// when none waits). The item stays in the queue, hidden, until `queue ack` removes it or
    /// `queue release` hands it back, or the lease ends and it is handed out again.
    #[command(after_help = "Example, a worker in the shell:
  read -r receipt job < <(easycaching queue lease jobs --for 5m) &&
    handle \"$job\" && easycaching queue ack jobs \"$receipt\"")]
    Lease {
        /// The queue to take from.
        queue: String,
        /// How long the lease lasts, e.g. 30s, 10m or 24h: longer than handling the item takes.
        #[arg(long = "for", value_name = "DURATION", value_parser = parse_lease)]
        lease: Duration,
        /// Wait up to this long for an item when none waits, as `queue get --wait` does.
        #[arg(long, value_name = "DURATION", value_parser = crate::plugin_args::parse_duration)]
        wait: Option<Duration>,
        /// Lease up to this many of the oldest items waiting at once, as `queue get --max`
        /// takes them, each printed on a line of its own with its own receipt.
        #[arg(long, value_name = "N", default_value_t = 1,
              value_parser = clap::value_parser!(u32).range(1..=easycaching::MAX_PAGE_ITEMS as i64))]
        max: u32,
    },
    /// Remove the item leased under RECEIPT: handled (exit status 3 when it is no longer under
    /// that lease: released, handed out again after the lease ended, or cleared).
    Ack {
        /// The queue the item is in.
        queue: String,
        /// The receipt `queue lease` printed.
        receipt: Receipt,
    },
    /// Hand the item leased under RECEIPT back at once, in its place (exit status 3 as for
    /// `ack`).
    Release {
        /// The queue the item is in.
        queue: String,
        /// The receipt `queue lease` printed.
        receipt: Receipt,
    },
    /// Make the lease under RECEIPT end DURATION from now instead, for work that takes longer
    /// than first thought; the receipt stays the same (exit status 3 as for `ack`).
    Extend {
        /// The queue the item is in.
        queue: String,
        /// The receipt `queue lease` printed.
        receipt: Receipt,
        /// How long from now the lease lasts, e.g. 30s, 10m or 24h.
        #[arg(long = "for", value_name = "DURATION", value_parser = parse_lease)]
        lease: Duration,
    },
    /// Print every item as a JSON line, oldest first, without removing any (items under a lease
    /// too).
    Dump {
        /// The queue to print.
        queue: String,
    },
    /// Print how many items the queue holds (items under a lease too).
    Len {
        /// The queue to count.
        queue: String,
    },
    /// Remove every item; prints how many there were.
    Clear {
        /// The queue to empty.
        queue: String,
    },
    /// Create an empty queue (nothing happens when it exists).
    Create {
        /// The name of the queue to create.
        queue: String,
    },
    /// Delete a queue and all its items.
    Drop {
        /// The queue to delete.
        queue: String,
    },
}

impl CacheCommand {
    /// Whether the command stores something, and so may create the database.
    pub fn creates(&self) -> bool {
        matches!(
            self,
            CacheCommand::Set { .. }
                | CacheCommand::Incr { .. }
                | CacheCommand::Swap { .. }
                | CacheCommand::Create { .. }
                | CacheCommand::Load { .. }
        )
    }
}

impl QueueCommand {
    /// Whether the command stores something, and so may create the database.
    pub fn creates(&self) -> bool {
        matches!(self, QueueCommand::Put { .. } | QueueCommand::Create { .. })
    }
}

/// The value of `set` and `put`, checked before anything is opened: a value that is not JSON
/// stores nothing and creates no cache, queue or file.
fn parse_json(value: &str) -> Result<Json, String> {
    Json::parse(value).map_err(|error| {
        format!("{error}; the value must be JSON (quote strings for the shell, e.g. '\"bar\"')")
    })
}

/// The lease of `queue lease --for`, checked as a TTL is, before anything is opened.
fn parse_lease(text: &str) -> Result<Duration, String> {
    match crate::plugin_args::parse_duration(text)? {
        Duration::ZERO => Err(format!("{text:?} is no lease: a lease is at least 1ms")),
        lease if lease > easycaching::MAX_TTL => {
            Err(format!("{text:?} is longer than the longest lease, 100 years"))
        }
        lease => Ok(lease),
    }
}

/// The TTL of `set --ttl`: a duration as `--timeout` takes it, above zero, checked before
/// anything is opened.
fn parse_ttl(text: &str) -> Result<Duration, String> {
    match crate::plugin_args::parse_duration(text)? {
        Duration::ZERO => {
            Err(format!("{text:?} is no TTL: a TTL is at least 1ms (leave out --ttl to keep the value)"))
        }
        ttl if ttl > easycaching::MAX_TTL => {
            Err(format!("{text:?} is longer than the longest TTL, 100 years"))
        }
        ttl => Ok(ttl),
    }
}

/// The amount `incr` adds: a whole number that fits 64 bits.
fn parse_amount(text: &str) -> Result<i64, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not a whole number to add, like 5 or -3 (from -2^63 to 2^63-1)"))
}

/// The exit status of a command whose condition did not hold: a `cache swap` that found another
/// value than expected, a `queue ack` or `release` of an item no longer under that lease. Apart
/// from 1, an error, so that a script retrying on a mismatch does not retry on an error.
const NOT_AS_EXPECTED: u8 = 3;

/// Prints the answer of a write already stored. When it cannot be printed, the error says what
/// was done (`done`, followed by why printing failed), so that nobody runs the write again
/// thinking it did not go in.
fn print_done(
    out: &mut impl Write,
    answer: impl std::fmt::Display,
    done: impl FnOnce() -> String,
) -> Result<()> {
    writeln!(out, "{answer}")
        .and_then(|()| out.flush())
        .map_err(|error| anyhow::anyhow!("{} ({error})", done()))
}

/// Prints a value, or reports its absence with exit status 1, as `grep` does for no match.
fn print_found(value: Option<Json>, absent: &str) -> Result<ExitCode> {
    match value {
        Some(value) => {
            print_line(&value)?;
            Ok(ExitCode::SUCCESS)
        }
        None => {
            eprintln!("{absent}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Prints `value` and a newline, flushed: an error when stdout cannot take it (a full disk, a
/// closed pipe), where `println!` would panic.
fn print_line(value: &Json) -> std::io::Result<()> {
    let mut out = Stdout::lock();
    writeln!(out, "{value}")?;
    out.flush()
}

/// Standard output, as every command of this module prints to it. A reader that stops early,
/// as `head` does (`easycaching cache keys big | head`), closes the pipe: the write it refuses
/// then fails with [`ReaderGone`], on which `main` ends the command quietly, as `cat` and
/// `grep` end, when nothing is lost by it. A command that changed something says what it did
/// instead ([`print_done`], `queue get`), and any other failure to print (a full disk) is an
/// error.
pub struct Stdout(std::io::StdoutLock<'static>);

impl Stdout {
    /// Standard output, locked for this command.
    pub fn lock() -> Stdout {
        Stdout(std::io::stdout().lock())
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf).map_err(reader_gone)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush().map_err(reader_gone)
    }
}

/// Why stdout took no more: its reader closed the pipe.
#[derive(Debug)]
pub struct ReaderGone;

impl fmt::Display for ReaderGone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("broken pipe: stdout was closed by the command reading it")
    }
}

impl std::error::Error for ReaderGone {}

/// `error`, marked [`ReaderGone`] when it is a closed pipe's.
fn reader_gone(error: std::io::Error) -> std::io::Error {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        std::io::Error::new(std::io::ErrorKind::BrokenPipe, ReaderGone)
    } else {
        error
    }
}

/// Whether `error` is [`Stdout`]'s closed pipe, left as the command's error: the command only
/// read, and its reader has all it wanted.
pub fn is_reader_gone(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<std::io::Error>()
        .and_then(std::io::Error::get_ref)
        .is_some_and(|inner| inner.is::<ReaderGone>())
}

pub fn list(manager: &CacheManager) -> Result<ExitCode> {
    let caches = manager.list_caches()?;
    let queues = manager.list_queues()?;
    if caches.is_empty() && queues.is_empty() {
        eprintln!("{} holds no caches or queues yet", manager.path().display());
    } else {
        let mut out = Stdout::lock();
        writeln!(out, "{:<6} {:<32} {:>10} {:>12}", "KIND", "NAME", "ENTRIES", "BYTES")?;
        for (kind, summary) in caches.iter().map(|c| ("cache", c)).chain(queues.iter().map(|q| ("queue", q)))
        {
            writeln!(out, "{kind:<6} {:<32} {:>10} {:>12}", summary.name, summary.entries, summary.bytes)?;
        }
        out.flush()?;
    }
    if let Some(note) = manager.disk_usage()?.and_then(|usage| mostly_free(manager.path(), usage)) {
        eprintln!("{note}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Free pages below this many bytes are not worth a note.
const FREE_BYTES_WORTH_A_NOTE: u64 = 1 << 20;

/// A note for `ls`, on stderr beside the table, when most of the database file is free pages:
/// the BYTES of the caches and queues add up to far less than the file takes, and only a
/// restored backup shrinks it.
fn mostly_free(path: &Path, usage: easycaching::DiskUsage) -> Option<String> {
    let easycaching::DiskUsage { file_bytes, free_bytes } = usage;
    (free_bytes >= FREE_BYTES_WORTH_A_NOTE && free_bytes * 2 >= file_bytes).then(|| {
        format!(
            "easycaching: note: {} takes {}, {} of it free pages that later writes reuse; to \
             give them back, `easycaching backup NEW.db`, then, with every process stopped, \
             `easycaching restore NEW.db`",
            path.display(),
            indicatif::HumanBytes(file_bytes),
            indicatif::HumanBytes(free_bytes),
        )
    })
}

pub fn cache(manager: &CacheManager, command: CacheCommand) -> Result<ExitCode> {
    let mut out = Stdout::lock();
    match command {
        CacheCommand::Get { cache, key } => {
            let value = manager.open_cache(&cache)?.get(&key)?;
            return print_found(value, &format!("no value under {key:?} in cache {cache:?}"));
        }
        CacheCommand::Set { cache, key, value, ttl } => {
            let cache = manager.create_cache(&cache)?;
            match ttl {
                Some(ttl) => cache.set_with_ttl(&key, value, ttl)?,
                None => cache.set(&key, value)?,
            }
        }
        CacheCommand::Ttl { cache, key } => {
            let cache = manager.open_cache(&cache)?;
            match cache.ttl(&key)? {
                Some(left) => writeln!(out, "{}ms", left.as_millis())?,
                None if cache.contains(&key)? => writeln!(out, "none")?,
                None => {
                    eprintln!("no value under {key:?} in cache {:?}", cache.name());
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
        CacheCommand::Incr { cache, key, by } => {
            let sum = manager.create_cache(&cache)?.increment(&key, by)?;
            print_done(&mut out, sum, || {
                format!(
                    "added {by} under {key:?} in cache {cache:?}, which now holds {sum}, but could not print it"
                )
            })?;
        }
        CacheCommand::Swap { cache, key, expected, value, .. } => {
            // clap leaves `expected` unset only with --absent, `value` only with --delete.
            let swapped = manager.create_cache(&cache)?.compare_and_swap(&key, expected.as_ref(), value)?;
            print_done(&mut out, swapped, || {
                let done = if swapped { "swapped" } else { "did not swap" };
                format!("{done} {key:?} in cache {cache:?}, but could not print it")
            })?;
            if !swapped {
                return Ok(ExitCode::from(NOT_AS_EXPECTED));
            }
        }
        CacheCommand::Del { cache, keys } => {
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            let cache = manager.open_cache(&cache)?;
            let mut removed = 0;
            for chunk in keys.chunks(manager.limits().max_batch_items.max(1)) {
                removed += cache.delete_many(chunk)?;
            }
            print_done(&mut out, removed, || {
                let given = keys.len();
                format!(
                    "removed {removed} of the {given} keys given from cache {:?}, but could not print how many",
                    cache.name()
                )
            })?;
        }
        CacheCommand::Keys { cache, limit, after, prefix } => {
            let cache = manager.open_cache(&cache)?;
            let mut cursor = after;
            let mut left = limit.unwrap_or(usize::MAX);
            while left > 0 {
                let page = cache.keys_with_prefix(
                    &prefix,
                    cursor.as_deref(),
                    left.min(easycaching::MAX_PAGE_ITEMS),
                )?;
                left -= page.items.len();
                for key in page.items {
                    writeln!(out, "{key}")?;
                }
                match page.next {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
        }
        CacheCommand::Dump { cache, prefix } => {
            for entry in manager.open_cache(&cache)?.iter_with_prefix(&prefix) {
                let (key, value) = entry?;
                writeln!(out, "{{{}: {value}}}", serde_json::to_string(&key)?)?;
            }
        }
        // `main` runs it through `load`, which reads its input before it opens the database.
        CacheCommand::Load { .. } => unreachable!("`cache load` is run by data::load"),
        CacheCommand::Len { cache } => writeln!(out, "{}", manager.open_cache(&cache)?.len()?)?,
        CacheCommand::Clear { cache, prefix } => {
            let removed = manager.open_cache(&cache)?.delete_with_prefix(&prefix)?;
            print_done(&mut out, removed, || {
                let which =
                    if prefix.is_empty() { String::new() } else { format!(" of keys beginning {prefix:?}") };
                format!(
                    "cleared cache {cache:?} (entries{which} removed: {removed}), but could not print how many"
                )
            })?;
        }
        CacheCommand::Create { cache } => drop(manager.create_cache(&cache)?),
        CacheCommand::Drop { cache } => {
            if !manager.delete_cache(&cache)? {
                anyhow::bail!("there is no cache named {cache:?}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn queue(manager: &CacheManager, command: QueueCommand) -> Result<ExitCode> {
    match command {
        QueueCommand::Put { queue, value } => manager.create_queue(&queue)?.put(value)?,
        QueueCommand::Get { queue: name, wait, max } => {
            let queue = manager.open_queue(&name)?;
            let items = queue.get_many_wait(max as usize, wait.unwrap_or_default())?;
            if items.is_empty() {
                return print_found(None, &nothing_waits(&queue)?);
            }
            // Taken before they are printed: those that do not reach stdout go back to the
            // front, in their order, rather than be lost.
            for (printed, item) in items.iter().enumerate() {
                if let Err(error) = print_line(item) {
                    let unprinted = items[printed..].to_vec();
                    let count = items_counted(unprinted.len());
                    queue.give_back(unprinted).map_err(|back| {
                        anyhow::anyhow!(
                            "could not print {count} taken from queue {name:?} ({error}), nor put \
                             them back ({back}): they are lost"
                        )
                    })?;
                    anyhow::bail!(
                        "could not print {count} taken from queue {name:?} ({error}); put back at \
                         the front of queue {name:?}"
                    );
                }
            }
        }
        QueueCommand::Lease { queue: name, lease, wait, max } => {
            let queue = manager.open_queue(&name)?;
            let leased = queue.lease_many_wait(lease, max as usize, wait.unwrap_or_default())?;
            if leased.is_empty() {
                return print_found(None, &nothing_waits(&queue)?);
            }
            // Those that do not reach stdout are handed back at once rather than when their
            // leases end.
            let mut out = Stdout::lock();
            for (printed, item) in leased.iter().enumerate() {
                if let Err(error) =
                    writeln!(out, "{} {}", item.receipt, item.value).and_then(|()| out.flush())
                {
                    let unprinted = &leased[printed..];
                    let failed: Vec<easycaching::Error> =
                        unprinted.iter().filter_map(|item| queue.release(&item.receipt).err()).collect();
                    let back = match failed.first() {
                        None if unprinted.len() == 1 => "it was handed back".to_owned(),
                        None => "they were handed back".to_owned(),
                        Some(first) => format!(
                            "{} could not be handed back ({first}): handed out again when the lease ends",
                            items_counted(failed.len())
                        ),
                    };
                    let count = items_counted(unprinted.len());
                    anyhow::bail!("could not print {count} leased from queue {name:?} ({error}); {back}");
                }
            }
        }
        QueueCommand::Ack { queue, receipt } => {
            if !manager.open_queue(&queue)?.ack(&receipt)? {
                return Ok(not_under_lease(&queue, &receipt));
            }
        }
        QueueCommand::Release { queue, receipt } => {
            if !manager.open_queue(&queue)?.release(&receipt)? {
                return Ok(not_under_lease(&queue, &receipt));
            }
        }
        QueueCommand::Extend { queue, receipt, lease } => {
            if !manager.open_queue(&queue)?.extend(&receipt, lease)? {
                return Ok(not_under_lease(&queue, &receipt));
            }
        }
        QueueCommand::Peek { queue } => {
            let queue = manager.open_queue(&queue)?;
            return match queue.peek()? {
                None => print_found(None, &nothing_waits(&queue)?),
                value => print_found(value, ""),
            };
        }
        QueueCommand::Dump { queue } => {
            let mut out = Stdout::lock();
            for item in manager.open_queue(&queue)?.items() {
                writeln!(out, "{}", item?)?;
            }
            out.flush()?;
        }
        // Printed through `writeln!`, whose error is reported: `println!` panics on a stdout
        // that takes nothing (a full disk, a closed pipe).
        QueueCommand::Len { queue } => writeln!(Stdout::lock(), "{}", manager.open_queue(&queue)?.len()?)?,
        QueueCommand::Clear { queue } => {
            let removed = manager.open_queue(&queue)?.clear()?;
            print_done(&mut Stdout::lock(), removed, || {
                format!("cleared queue {queue:?} (items removed: {removed}), but could not print how many")
            })?;
        }
        QueueCommand::Create { queue } => drop(manager.create_queue(&queue)?),
        QueueCommand::Drop { queue } => {
            if !manager.delete_queue(&queue)? {
                anyhow::bail!("there is no queue named {queue:?}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Says that no item of `queue` is under the lease `receipt` any more; the exit status of an
/// `ack`, `release` or `extend` that found none.
fn not_under_lease(queue: &str, receipt: &Receipt) -> ExitCode {
    eprintln!("no item of queue {queue:?} is under the lease {receipt} any more");
    ExitCode::from(NOT_AS_EXPECTED)
}

/// Why `queue get`, `peek` or `lease` found nothing: the queue is empty, or all it holds is
/// under a lease.
/// "the item", or "N items", as a message names those it is about.
fn items_counted(count: usize) -> String {
    match count {
        1 => "the item".to_owned(),
        n => format!("{n} items"),
    }
}

fn nothing_waits(queue: &easycaching::Queue) -> Result<String> {
    Ok(match queue.len()? {
        0 => format!("queue {:?} is empty", queue.name()),
        leased => format!("queue {:?} has no item waiting ({leased} under a lease)", queue.name()),
    })
}

/// `cache load`: reads the whole input and checks it against the limits the database is
/// opened with, and only then opens the database (creating it and the cache when needed) and
/// stores every entry in one write, so that bad input stores nothing and creates nothing.
pub fn load(db: &Database, cache: &str, file: Option<&Path>) -> Result<ExitCode> {
    easycaching::validate_name(cache)?;
    let limits = crate::limits();
    let (source, input) = read_input(file)?;
    let entries = parse_dump(&input, &limits).map_err(|error| anyhow::anyhow!("{source}, {error}"))?;
    // The entries own their keys and values: the input is not held through the write too.
    drop(input);
    let count = entries.len();
    // One `set_many`, one transaction: the batch limit, which bounds what a plugin may ask
    // for in one call, is raised to the input's size, which is in memory already.
    let limits = Limits { max_batch_items: limits.max_batch_items.max(count), ..limits };
    let target = crate::open_database_with(db, limits)?.create_cache(cache)?;
    if count > 0 {
        target.set_many(entries)?;
    }
    print_done(&mut Stdout::lock(), count, || {
        format!("stored {count} entries in cache {cache:?}, but could not print how many")
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The whole of FILE, or of stdin when there is none or it is `-`, with the name to give it in
/// messages.
fn read_input(file: Option<&Path>) -> Result<(String, Vec<u8>)> {
    let mut input = Vec::new();
    match file {
        Some(path) if path != Path::new("-") => {
            let name = path.display().to_string();
            input = std::fs::read(path).with_context(|| format!("cannot read {name}"))?;
            Ok((name, input))
        }
        _ => {
            std::io::stdin().lock().read_to_end(&mut input).context("cannot read stdin")?;
            Ok(("stdin".to_owned(), input))
        }
    }
}

/// What is wrong with one line of a dump.
#[derive(Debug)]
struct BadLine {
    line: usize,
    what: String,
}

impl fmt::Display for BadLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}; nothing was stored", self.line, self.what)
    }
}

/// What each entry of a dump must be, for messages.
const ENTRY: &str = "one {\"key\": value} entry a line, as `cache dump` prints";

/// The entries of a dump, as `cache dump` prints them: a JSON object of one member, `{"key":
/// value}`, a line, blank lines between them allowed. A value whose text spans lines (it holds
/// newlines between its tokens, as `cache set` may store) is read whole, so every dump loads
/// back. Each value's text is kept exactly as it was dumped: all that lies between the
/// key's `: ` and the closing brace. A key given twice keeps its later value.
fn parse_dump(input: &[u8], limits: &Limits) -> Result<BTreeMap<String, Json>, BadLine> {
    let text = std::str::from_utf8(input).map_err(|error| {
        let at = error.valid_up_to();
        let line_start = input[..at].iter().rposition(|&b| b == b'\n').map_or(0, |newline| newline + 1);
        BadLine {
            line: 1 + input[..at].iter().filter(|&&b| b == b'\n').count(),
            what: format!("byte {} (0x{:02x}) is not UTF-8", at - line_start + 1, input[at]),
        }
    })?;
    let mut lines = LineCounter::default();
    let mut entries = BTreeMap::new();
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Members>();
    loop {
        let start = stream.byte_offset() + whitespace_at(&text[stream.byte_offset()..]);
        let members = match stream.next() {
            None => break,
            Some(Ok(members)) => members,
            Some(Err(error)) if error.is_eof() => {
                let line = lines.line_of(text, start);
                return Err(BadLine { line, what: format!("the input ends inside this entry; {ENTRY}") });
            }
            Some(Err(error)) => return Err(json_error(&error)),
        };
        let end = stream.byte_offset();
        let line = lines.line_of(text, start);
        let bad = |what: String| BadLine { line, what };
        let rest = text[end..].split('\n').next().unwrap_or("");
        if !rest.trim().is_empty() {
            return Err(bad(format!("{:?} follows the entry; {ENTRY}", shortened(rest.trim(), 40))));
        }
        let (key, raw) = match members.0.as_slice() {
            [(key, raw)] => (key, raw),
            [] => return Err(bad(format!("an object with no member; {ENTRY}"))),
            many => {
                let keys: Vec<String> =
                    many.iter().map(|(key, _)| format!("{:?}", shortened(key, 40))).collect();
                let what = format!("an object of {} members ({}); {ENTRY}", many.len(), keys.join(", "));
                return Err(bad(what));
            }
        };
        let over = |what: &str, size: usize, limit: usize| {
            let over = |key| format!("{what} {key:?} is {size} bytes, over the limit of {limit}");
            (size > limit).then(|| bad(over(shortened(key, 40))))
        };
        if let Some(error) = over("the key", key.len(), limits.max_key_bytes) {
            return Err(error);
        }
        let value = value_text(text, raw, end);
        if let Some(error) = over("the value under", value.len(), limits.max_value_bytes) {
            return Err(error);
        }
        let value = Json::parse(value).map_err(|error| {
            bad(format!("the value under {:?}: {}", shortened(key, 40), without_position(&error.to_string())))
        })?;
        entries.insert(key.clone(), value);
    }
    Ok(entries)
}

/// The text of the value `raw`, the only member of the object that ends at `end` in `text`:
/// from the colon before it to the closing brace, less the one space `cache dump` writes after
/// the colon. Whitespace the value was stored with, before or after it, is kept.
fn value_text<'a>(text: &'a str, raw: &RawValue, end: usize) -> &'a str {
    // `raw` borrows from `text`: where it starts is where it lies in `text`.
    let start = raw.get().as_ptr() as usize - text.as_ptr() as usize;
    let after_colon = text[..start].rfind(':').map_or(start, |colon| colon + 1);
    let value = &text[after_colon..end - 1];
    value.strip_prefix(' ').unwrap_or(value)
}

/// How many bytes of JSON whitespace `text` starts with.
fn whitespace_at(text: &str) -> usize {
    text.len() - text.trim_start_matches([' ', '\t', '\n', '\r']).len()
}

/// Where serde_json found the input wrong, as a line of the whole input.
fn json_error(error: &serde_json::Error) -> BadLine {
    let message = error.to_string();
    let what = without_position(&message);
    BadLine { line: error.line(), what: format!("{what} (column {}); {ENTRY}", error.column()) }
}

/// serde_json's message without the " at line L column C" it ends with: within a value, that
/// counts from the value's start, not the input's.
fn without_position(message: &str) -> &str {
    match message.rsplit_once(" at line ") {
        Some((what, position)) if position.contains(" column ") => what,
        _ => message,
    }
}

/// `text` for a message: its first `chars` characters, and an ellipsis when there are more.
fn shortened(text: &str, chars: usize) -> String {
    match text.char_indices().nth(chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Line numbers of offsets that only grow, counted once however many entries there are.
#[derive(Default)]
struct LineCounter {
    offset: usize,
    line: usize,
}

impl LineCounter {
    /// The line (from 1) of `text` that byte `offset` is on; `offset` no less than before.
    fn line_of(&mut self, text: &str, offset: usize) -> usize {
        self.line += text[self.offset..offset].bytes().filter(|&b| b == b'\n').count();
        self.offset = offset;
        self.line + 1
    }
}

/// The members of one JSON object, each key with the text of its value as written.
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(MembersVisitor)
    }
}

struct MembersVisitor;

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = Members<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
        let mut members = Vec::with_capacity(1);
        while let Some(member) = map.next_entry::<String, &'de RawValue>()? {
            members.push(member);
        }
        Ok(Members(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incr_names_what_it_takes_when_given_something_else() {
        assert_eq!(parse_amount("-3"), Ok(-3));
        let error = parse_amount("abc").unwrap_err();
        assert!(error.contains("\"abc\" is not a whole number to add"), "{error}");
        assert!(parse_amount("1.5").is_err());
        assert!(parse_amount("99999999999999999999").is_err());
    }
}
