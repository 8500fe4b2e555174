//! The commands that look into and change a database from the shell.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use easycaching::{CacheManager, Json};

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
    },
    /// Print every entry as a JSON line {"key": value}, in key order.
    Dump {
        /// The cache to print.
        cache: String,
    },
    /// Print how many entries the cache holds.
    Len {
        /// The cache to count.
        cache: String,
    },
    /// Remove every entry; prints how many there were.
    Clear {
        /// The cache to empty.
        cache: String,
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
    /// Remove and print the oldest item (exit status 1 when the queue is empty).
    Get {
        /// The queue to take from.
        queue: String,
    },
    /// Print the oldest item without removing it (exit status 1 when the queue is empty).
    Peek {
        /// The queue to look into.
        queue: String,
    },
    /// Print how many items wait.
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
        matches!(self, CacheCommand::Set { .. } | CacheCommand::Incr { .. } | CacheCommand::Create { .. })
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

/// The amount `incr` adds: a whole number that fits 64 bits.
fn parse_amount(text: &str) -> Result<i64, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not a whole number to add, like 5 or -3 (from -2^63 to 2^63-1)"))
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
    let mut out = std::io::stdout().lock();
    writeln!(out, "{value}")?;
    out.flush()
}

pub fn list(manager: &CacheManager) -> Result<ExitCode> {
    let caches = manager.list_caches()?;
    let queues = manager.list_queues()?;
    if caches.is_empty() && queues.is_empty() {
        eprintln!("{} holds no caches or queues yet", manager.path().display());
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{:<6} {:<32} {:>10} {:>12}", "KIND", "NAME", "ENTRIES", "BYTES")?;
    for (kind, summary) in caches.iter().map(|c| ("cache", c)).chain(queues.iter().map(|q| ("queue", q))) {
        writeln!(out, "{kind:<6} {:<32} {:>10} {:>12}", summary.name, summary.entries, summary.bytes)?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn cache(manager: &CacheManager, command: CacheCommand) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match command {
        CacheCommand::Get { cache, key } => {
            let value = manager.open_cache(&cache)?.get(&key)?;
            return print_found(value, &format!("no value under {key:?} in cache {cache:?}"));
        }
        CacheCommand::Set { cache, key, value } => {
            manager.create_cache(&cache)?.set(&key, value)?;
        }
        CacheCommand::Incr { cache, key, by } => {
            let sum = manager.create_cache(&cache)?.increment(&key, by)?;
            // The sum is stored: said, so that nobody runs it again thinking it was not.
            writeln!(out, "{sum}").and_then(|()| out.flush()).map_err(|error| {
                anyhow::anyhow!(
                    "added {by} under {key:?} in cache {cache:?}, which now holds {sum}, but could \
                     not print it ({error})"
                )
            })?;
        }
        CacheCommand::Del { cache, keys } => {
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            let cache = manager.open_cache(&cache)?;
            let mut removed = 0;
            for chunk in keys.chunks(manager.limits().max_batch_items.max(1)) {
                removed += cache.delete_many(chunk)?;
            }
            writeln!(out, "{removed}")?;
        }
        CacheCommand::Keys { cache, limit, after } => {
            let cache = manager.open_cache(&cache)?;
            let mut cursor = after;
            let mut left = limit.unwrap_or(usize::MAX);
            while left > 0 {
                let page = cache.keys(cursor.as_deref(), left.min(easycaching::MAX_PAGE_ITEMS))?;
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
        CacheCommand::Dump { cache } => {
            for entry in manager.open_cache(&cache)?.iter() {
                let (key, value) = entry?;
                writeln!(out, "{{{}: {value}}}", serde_json::to_string(&key)?)?;
            }
        }
        CacheCommand::Len { cache } => writeln!(out, "{}", manager.open_cache(&cache)?.len()?)?,
        CacheCommand::Clear { cache } => writeln!(out, "{}", manager.open_cache(&cache)?.clear()?)?,
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
        QueueCommand::Get { queue: name } => {
            let queue = manager.open_queue(&name)?;
            let Some(item) = queue.get()? else {
                return print_found(None, &format!("queue {name:?} is empty"));
            };
            // Taken before it is printed: should it not reach stdout, it goes back to the
            // front rather than be lost.
            if let Err(error) = print_line(&item) {
                queue.give_back(vec![item]).map_err(|back| {
                    anyhow::anyhow!(
                        "could not print the item taken from queue {name:?} ({error}), nor put it \
                         back ({back}): it is lost"
                    )
                })?;
                anyhow::bail!(
                    "could not print the item taken from queue {name:?} ({error}); it was put back \
                     at the front of queue {name:?}"
                );
            }
        }
        QueueCommand::Peek { queue: name } => {
            let value = manager.open_queue(&name)?.peek()?;
            return print_found(value, &format!("queue {name:?} is empty"));
        }
        // Printed through `writeln!`, whose error is reported: `println!` panics on a stdout
        // that takes nothing (a full disk, a closed pipe).
        QueueCommand::Len { queue } => writeln!(std::io::stdout(), "{}", manager.open_queue(&queue)?.len()?)?,
        QueueCommand::Clear { queue } => {
            writeln!(std::io::stdout(), "{}", manager.open_queue(&queue)?.clear()?)?
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
