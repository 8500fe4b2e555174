//! `easycaching backup`: a copy of the whole database in a new file, made while plugins and
//! other commands go on reading and writing.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use easycaching::{CacheManager, Summary};

use crate::spinner::while_slow;

#[derive(clap::Args)]
#[command(after_help = "\
Plugins and other commands go on reading and writing while it runs; the copy holds every cache
and queue as of one moment. Copying the database file with cp is no backup: its newest writes
are in the -wal file beside it.

To restore, stop every process using the database, then put the copy in its place:
  rm -f easycaching.db-wal easycaching.db-shm easycaching.db-board
  cp backup.db easycaching.db
or point --db at the copy, which is a database of its own.")]
pub struct BackupArgs {
    /// The new file to write the copy to, e.g. backups/cache-2026-11-27.db; it must not
    /// exist (a backup never replaces a file)
    dest: PathBuf,
}

pub fn backup(manager: &CacheManager, args: BackupArgs) -> Result<ExitCode> {
    let doing = || format!("writing a backup of {} to {}", manager.path().display(), args.dest.display());
    let backup = while_slow(doing, || manager.backup(&args.dest))?;
    writeln!(
        std::io::stdout(),
        "backed up {} and {} to {} ({} bytes)",
        counted(&backup.caches, "cache", "entry", "entries"),
        counted(&backup.queues, "queue", "item", "items"),
        args.dest.display(),
        backup.bytes,
    )?;
    Ok(ExitCode::SUCCESS)
}

/// "2 caches (1,000 entries)", "1 queue (1 item)".
fn counted(listed: &[Summary], kind: &str, one: &str, many: &str) -> String {
    let held: u64 = listed.iter().map(|summary| summary.entries).sum();
    let plural = |count: u64, one: &str, many: &str| match count {
        1 => format!("1 {one}"),
        _ => format!("{count} {many}"),
    };
    format!("{} ({})", plural(listed.len() as u64, kind, &format!("{kind}s")), plural(held, one, many))
}
