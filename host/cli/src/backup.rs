//! `easycaching backup`: a copy of the whole database in a new file, made while plugins and
//! other commands go on reading and writing; and `easycaching restore`, which puts one back.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use easycaching::{Backup, CacheManager, Summary};

use crate::spinner::while_slow;

#[derive(clap::Args)]
#[command(after_help = "\
Plugins and other commands go on reading and writing while it runs; the copy holds every cache
and queue as of one moment. Copying the database file with cp is no backup: its newest writes
are in the -wal file beside it.

To restore, stop every process using the database, then put the copy in its place with
`easycaching restore backup.db`; or point --db at the copy, which is a database of its own.")]
pub struct BackupArgs {
    /// The new file to write the copy to, e.g. backups/cache-2026-11-27.db; it must not
    /// exist (a backup never replaces a file)
    dest: PathBuf,
}

impl BackupArgs {
    /// The file the backup is to be written to.
    pub fn dest(&self) -> &Path {
        &self.dest
    }
}

pub fn backup(manager: &CacheManager, args: BackupArgs) -> Result<ExitCode> {
    let doing = || format!("writing a backup of {} to {}", manager.path().display(), args.dest.display());
    let backup = while_slow(doing, || manager.backup(&args.dest))?;
    writeln!(
        std::io::stdout(),
        "backed up {} to {} ({} bytes)",
        holding(&backup),
        args.dest.display(),
        backup.bytes
    )?;
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
#[command(after_help = "\
Stop every process using the database first: restore refuses while one has it open. The backup
is left as it was; the database it replaces is moved aside whole, with its -wal, to
DB.replaced-SECONDS (a database of its own), so a restore from the wrong file loses nothing.")]
pub struct RestoreArgs {
    /// The backup to put in place of the database (--db), a file made by `easycaching backup`
    backup: PathBuf,
}

pub fn restore(database: &Path, args: RestoreArgs) -> Result<ExitCode> {
    let doing = || format!("restoring {} from {}", database.display(), args.backup.display());
    let restored = while_slow(doing, || CacheManager::restore(&args.backup, database))?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "restored {} from {} into {}",
        holding(&restored.holds),
        args.backup.display(),
        database.display()
    )?;
    if let Some(replaced) = restored.replaced {
        writeln!(out, "the database it replaced is now {}", replaced.display())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// "1 cache (2 entries) and 1 queue (1 item)".
fn holding(backup: &Backup) -> String {
    format!(
        "{} and {}",
        counted(&backup.caches, "cache", "entry", "entries"),
        counted(&backup.queues, "queue", "item", "items")
    )
}

/// "2 caches (1000 entries)", "1 queue (1 item)", "no queues".
fn counted(listed: &[Summary], kind: &str, one: &str, many: &str) -> String {
    let held: u64 = listed.iter().map(|summary| summary.entries).sum();
    let plural = |count: u64, one: &str, many: &str| match count {
        1 => format!("1 {one}"),
        _ => format!("{count} {many}"),
    };
    match listed.len() {
        0 => format!("no {kind}s"),
        containers => {
            format!("{} ({})", plural(containers as u64, kind, &format!("{kind}s")), plural(held, one, many))
        }
    }
}
