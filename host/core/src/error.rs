//! The one error type of this crate.

use std::path::PathBuf;
use std::time::Duration;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in easycaching.
///
/// An operation that returns an error changed nothing: no half-written entry is ever visible.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No cache of that name exists.
    #[error("no cache named {0:?} exists (check the name, or create it first)")]
    NoSuchCache(String),

    /// No queue of that name exists.
    #[error("no queue named {0:?} exists (check the name, or create it first)")]
    NoSuchQueue(String),

    /// The cache a handle was opened on has been deleted, by this process or another. A cache
    /// made since under the same name is another cache, which the handle never reaches.
    #[error(
        "the cache {0:?} was deleted while this handle to it was open (open it again to reach a cache made since under that name)"
    )]
    CacheDeleted(String),

    /// The queue a handle was opened on has been deleted, by this process or another. A queue
    /// made since under the same name is another queue, which the handle never reaches.
    #[error(
        "the queue {0:?} was deleted while this handle to it was open (open it again to reach a queue made since under that name)"
    )]
    QueueDeleted(String),

    /// A cache or queue name that is not allowed.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The name as given (shortened when it is very long).
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A value that is not a JSON document (or, writing, a value that cannot be written as one).
    #[error("invalid JSON: {0}")]
    InvalidJson(String),

    /// A JSON document that does not deserialize into the type asked for (`get_value::<u64>`
    /// of a string). Nothing is lost: `value` holds the document read. That matters for
    /// [`Queue::get_value`](crate::Queue::get_value), which took the item before it could be
    /// deserialized: the item is here.
    #[error("the value does not fit the type asked for: {reason}")]
    WrongType {
        /// serde's description of the mismatch.
        reason: String,
        /// The document read.
        value: crate::Json,
    },

    /// A key, value or batch over its limit (see [`Limits`](crate::Limits)).
    #[error("{what} is {size} {}, over the limit of {limit}", counted(*size, unit))]
    TooLarge {
        /// What was too large: "key", "value", "batch".
        what: &'static str,
        /// Its size.
        size: usize,
        /// The unit of `size` and `limit`: "bytes" or "items".
        unit: &'static str,
        /// The limit it went over.
        limit: usize,
    },

    /// An argument outside the range a call takes: a TTL of zero, or one longer than
    /// [`MAX_TTL`](crate::MAX_TTL); for the host's `wasi:keyvalue`, a `list-keys` cursor its
    /// bucket did not hand out, or an `increment` past 2^63-1. Nothing was stored.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A write that would take a cache or queue past its quota.
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),

    /// The database stayed locked by other connections for longer than the busy timeout.
    #[error(
        "the database {path} stayed locked by another process for {waited:?}; \
         is a long transaction (an sqlite3 shell?) holding it? (raise busy_timeout to wait longer)"
    )]
    Busy {
        /// The database file.
        path: PathBuf,
        /// How long we waited.
        waited: Duration,
    },

    /// The file exists but is not an easycaching database; it was left untouched.
    #[error("{path} is not an easycaching database ({reason}); it was left untouched")]
    NotOurDatabase {
        /// The file.
        path: PathBuf,
        /// Why it is not ours.
        reason: String,
    },

    /// The database was written by a newer easycaching with a schema this build does not know.
    #[error(
        "{path} has schema version {found}, newer than this build of easycaching knows \
         ({supported}); upgrade easycaching to open it (the file was left untouched)"
    )]
    SchemaTooNew {
        /// The file.
        path: PathBuf,
        /// The schema version found in the file.
        found: i64,
        /// The newest schema version this build knows.
        supported: i64,
    },

    /// SQLite found the database file damaged.
    #[error(
        "the database {path} is corrupt ({detail}); restore it from a backup, or move it \
         aside to start afresh"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What SQLite said.
        detail: String,
    },

    /// A path easycaching was given that it cannot use for what was asked: a database it cannot
    /// open (a directory, a missing directory, no permission), a backup it cannot write there
    /// or restore from. Nothing was changed.
    #[error("cannot {doing} {}: {reason}", path.display())]
    Path {
        /// What was asked of the path: "open", "resolve", "write a backup to", "restore from",
        /// "restore into".
        doing: &'static str,
        /// The path as given.
        path: PathBuf,
        /// Why not, as the system or easycaching says it.
        reason: String,
    },

    /// Any other failure of the storage: I/O errors, a full disk, a read-only file.
    #[error("storage failed: {0}")]
    Storage(String),
}

impl Error {
    /// [`Error::Path`]: `path` cannot be used for `doing`, because of `reason`.
    pub(crate) fn path(doing: &'static str, path: &std::path::Path, reason: impl ToString) -> Self {
        Error::Path { doing, path: path.to_owned(), reason: reason.to_string() }
    }

    /// A shortened copy of `name` for error messages, so a hostile 1 MB name does not become
    /// a 1 MB log line.
    pub(crate) fn invalid_name(name: &str, reason: &'static str) -> Self {
        Error::InvalidName { name: shortened(name, 64), reason }
    }
}

/// `text` for an error message: its first `chars` characters and an ellipsis when it is
/// longer, so that hostile input does not become a huge log line.
pub(crate) fn shortened(text: &str, chars: usize) -> String {
    match text.char_indices().nth(chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// `unit` ("bytes", "items") as said of `size`: "1 item", "2 items".
fn counted(size: usize, unit: &str) -> &str {
    match size {
        1 => unit.strip_suffix('s').unwrap_or(unit),
        _ => unit,
    }
}
