//! Redis on loopback, the server most users would put next to their application for a shared
//! cache: a throwaway `redis-server` on a free port of 127.0.0.1, and the least client that
//! speaks its protocol (RESP) for `GET` and `SET`, so that the client costs as little as ours.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A `redis-server` this process started; stopped when dropped.
pub struct RedisServer {
    child: Child,
    port: u16,
}

/// How the server keeps data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// Memory only: no snapshots, no append-only file.
    None,
    /// `appendonly yes`, `appendfsync always`: every acknowledged write is fsynced first,
    /// the durability of easycaching's default.
    FsyncAlways,
}

impl RedisServer {
    /// Starts `redis-server` on a free loopback port with its files in `dir`.
    pub fn start(dir: &Path, persistence: Persistence) -> Result<RedisServer> {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port();
        let mut command = Command::new("redis-server");
        command
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--protected-mode",
                "yes",
            ])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        match persistence {
            Persistence::None => command.args(["--appendonly", "no"]),
            Persistence::FsyncAlways => command.args(["--appendonly", "yes", "--appendfsync", "always"]),
        };
        let child = command.spawn().context("cannot start redis-server (make bench installs it)")?;
        let server = RedisServer { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut client) = server.connect()
                && client.ping().is_ok()
            {
                return Ok(server);
            }
            if Instant::now() > deadline {
                bail!("redis-server did not answer on 127.0.0.1:{port} within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A new connection to the server.
    pub fn connect(&self) -> Result<RedisClient> {
        let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(RedisClient { reader: BufReader::new(stream.try_clone()?), writer: stream, buffer: Vec::new() })
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One connection, one command at a time (no pipelining: each call waits for its answer, as
/// a cache lookup in application code does).
pub struct RedisClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    buffer: Vec<u8>,
}

impl RedisClient {
    fn command(&mut self, parts: &[&[u8]]) -> Result<()> {
        self.buffer.clear();
        write!(self.buffer, "*{}\r\n", parts.len())?;
        for part in parts {
            write!(self.buffer, "${}\r\n", part.len())?;
            self.buffer.extend_from_slice(part);
            self.buffer.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&self.buffer)?;
        Ok(())
    }

    /// Reads one reply: a simple string, an error, or a bulk string (`None` when null).
    fn reply(&mut self) -> Result<Option<Vec<u8>>> {
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let line = line.trim_end();
        match line.as_bytes().first() {
            Some(b'+') => Ok(Some(line.as_bytes()[1..].to_vec())),
            Some(b'$') => {
                let len: i64 = line[1..].parse()?;
                if len < 0 {
                    return Ok(None);
                }
                let mut value = vec![0; len as usize + 2];
                self.reader.read_exact(&mut value)?;
                value.truncate(len as usize);
                Ok(Some(value))
            }
            _ => bail!("redis answered {line:?}"),
        }
    }

    /// `PING`.
    pub fn ping(&mut self) -> Result<()> {
        self.command(&[b"PING"])?;
        self.reply().map(drop)
    }

    /// `SET key value`, acknowledged.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        self.command(&[b"SET", key.as_bytes(), value.as_bytes()])?;
        self.reply().map(drop)
    }

    /// `GET key`.
    pub fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>> {
        self.command(&[b"GET", key.as_bytes()])?;
        self.reply()
    }
}
