//! Raw rusqlite batching perfectly across processes: the reference beside the 8 writer
//! processes' figures, as [`PerfectBatches`] is beside the 8 writer threads'.
//!
//! One process (the bench itself) holds the connection and commits, one write of each writer
//! a commit, through [`PerfectBatches`]; writer processes send it their writes over Unix
//! sockets, one at a time, and wait for its answer. So it reaches what batching writers in
//! other processes that wait for their acknowledgement can reach on this machine, with the
//! trip between processes (a socket write and a wake-up each way) and none of the work of a
//! cache: no change log, no counts, no LRU, no hand-over of the write lock.
//!
//! A write is a line, `key`, a tab, `value`; the answer a line, empty for committed, or the
//! error. Keys and values hold neither tabs nor newlines (those of [`crate::fixture`]).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::baseline::PerfectBatches;

/// A socket that writer processes send their writes to, for [`Committer::serve`] to commit.
pub struct Committer {
    listener: UnixListener,
    path: PathBuf,
}

impl Committer {
    /// Listens at `path` (which must not exist).
    pub fn bind(path: &Path) -> Result<Committer> {
        let listener =
            UnixListener::bind(path).with_context(|| format!("cannot listen at {}", path.display()))?;
        Ok(Committer { listener, path: path.to_owned() })
    }

    /// Commits the writes of `writers` processes through `batched` while `run` runs (and
    /// starts them), then returns what `run` returned. Each writer connects once and sends
    /// writes until it closes its connection.
    pub fn serve<T>(
        &self,
        batched: &PerfectBatches,
        writers: usize,
        run: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        std::thread::scope(|scope| {
            let accepting = scope.spawn(|| -> Result<()> {
                for _ in 0..writers {
                    let (stream, _) = self.listener.accept()?;
                    scope.spawn(move || {
                        if let Err(error) = answer(batched, stream) {
                            eprintln!("committer: a writer's connection failed: {error:#}");
                        }
                    });
                }
                Ok(())
            });
            let outcome = run();
            // Writers that never connected (a child that failed to start) leave the accept
            // waiting: connections of our own, closed at once, end it.
            while !accepting.is_finished() {
                drop(UnixStream::connect(&self.path));
                std::thread::yield_now();
            }
            let accepted =
                accepting.join().map_err(|_| anyhow::anyhow!("the committer's accept panicked"))?;
            accepted.context("the committer could not accept a writer")?;
            outcome
        })
    }
}

/// Answers one writer's writes until it closes its connection.
fn answer(batched: &PerfectBatches, stream: UnixStream) -> Result<()> {
    let mut replies = stream.try_clone()?;
    for line in BufReader::new(stream).lines() {
        let line = line?;
        let (key, value) = line.split_once('\t').context("a write without a tab")?;
        match batched.set(key, value) {
            Ok(()) => replies.write_all(b"\n")?,
            Err(error) => writeln!(replies, "{}", format!("{error:#}").replace('\n', " "))?,
        }
    }
    Ok(())
}

/// A writer process's end of a [`Committer`].
pub struct CommitterClient {
    writes: UnixStream,
    answers: BufReader<UnixStream>,
    answer: String,
}

impl CommitterClient {
    /// Connects to the committer listening at `path`.
    pub fn connect(path: &Path) -> Result<CommitterClient> {
        let writes = UnixStream::connect(path)
            .with_context(|| format!("cannot reach the committer at {}", path.display()))?;
        let answers = BufReader::new(writes.try_clone()?);
        Ok(CommitterClient { writes, answers, answer: String::new() })
    }

    /// Upserts `value` under `key`, and returns once it has committed.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        writeln!(self.writes, "{key}\t{value}")?;
        self.answer.clear();
        self.answers.read_line(&mut self.answer)?;
        match self.answer.as_str() {
            "\n" => Ok(()),
            "" => anyhow::bail!("the committer closed the connection"),
            error => anyhow::bail!("the committer could not commit the write: {}", error.trim_end()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::baseline::RawSqlite;

    /// Writes of several clients are committed, one of each a commit, and read back.
    #[test]
    fn writes_sent_by_clients_are_committed_together() -> Result<()> {
        const WRITERS: usize = 3;
        let dir = tempfile::tempdir()?;
        let raw = RawSqlite::open_with_pages(&dir.path().join("batched.db"), "FULL", Some(2048))?;
        let batched = PerfectBatches::new(raw, WRITERS, Duration::from_secs(30));
        let committer = Committer::bind(&dir.path().join("committer.sock"))?;
        committer.serve(&batched, WRITERS, || {
            std::thread::scope(|scope| {
                let clients: Vec<_> = (0..WRITERS)
                    .map(|writer| {
                        let path = dir.path().join("committer.sock");
                        scope.spawn(move || -> Result<()> {
                            let mut client = CommitterClient::connect(&path)?;
                            for i in 0..10 {
                                client.set(&format!("key-{writer}"), &format!("{i}"))?;
                            }
                            Ok(())
                        })
                    })
                    .collect();
                clients.into_iter().try_for_each(|client| client.join().expect("a client panicked"))
            })
        })?;
        assert_eq!(batched.writes_per_commit(), WRITERS as f64);
        for writer in 0..WRITERS {
            assert_eq!(batched.get(&format!("key-{writer}"))?, Some("9".to_owned()));
        }
        Ok(())
    }

    /// A writer that never comes does not keep the committer waiting once `run` is done.
    #[test]
    fn a_writer_that_never_connects_does_not_hang_the_committer() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let raw = RawSqlite::open_with_pages(&dir.path().join("batched.db"), "FULL", None)?;
        let batched = PerfectBatches::new(raw, 2, Duration::from_millis(1));
        let committer = Committer::bind(&dir.path().join("committer.sock"))?;
        let answer = committer.serve(&batched, 2, || {
            let mut client = CommitterClient::connect(&dir.path().join("committer.sock"))?;
            client.set("only", "1")?;
            Ok(42)
        })?;
        assert_eq!(answer, 42);
        assert_eq!(batched.get("only")?, Some("1".to_owned()));
        Ok(())
    }
}
