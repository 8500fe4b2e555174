//! The SDK's error: every case of the WIT `error`, and one of its own for values that do not
//! deserialize into the type a program asked for.

use std::fmt;

use crate::bindings::easycaching::cache::types;

/// `Result` with the SDK's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong: the host's answer (one case per case of the WIT `error`, each with the
/// host's message), or [`Error::WrongType`], found by the SDK itself.
///
/// Its `Debug` is written for people, as an error `main` returns is printed with it:
/// `Error: AccessDenied: access denied: this plugin has no grant for cache "notes" (...)`, the
/// case as the program matches it, then the message, quotes and all, as it is. `{:#?}` shows the
/// enum as the compiler derives it.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// No cache of that name exists (or it was deleted while a handle to it was open).
    NoSuchCache(String),
    /// No queue of that name exists (or it was deleted while a handle to it was open).
    NoSuchQueue(String),
    /// The plugin was not granted this; the message names the grant that allows it.
    AccessDenied(String),
    /// A cache or queue name that is not allowed.
    InvalidName(String),
    /// A value that is not a JSON document, or a value that cannot be written as JSON.
    InvalidJson(String),
    /// A key, value or batch over the host's limits.
    TooLarge(String),
    /// A write that would take a cache or queue past its quota, or too many open handles.
    QuotaExceeded(String),
    /// The database failed; the message says how.
    Storage(String),
    /// An argument outside the range the call takes: a TTL of zero or over 100 years.
    InvalidArgument(String),
    /// A stored value, valid JSON, that does not deserialize into the type asked for. Nothing
    /// is lost: `value` holds what was read. That matters for a queue, whose `get` took the
    /// item before it could be deserialized: the item is here, and for `get_many` every item
    /// taken, as one JSON array in the order taken.
    WrongType {
        /// serde's description of the mismatch (with the key or the position, where there
        /// were several).
        reason: String,
        /// The JSON text read.
        value: String,
    },
}

impl Error {
    /// The case a program matches on, as written in the WIT (`no-such-cache`,
    /// `access-denied`, ...), or `wrong-type` for [`Error::WrongType`], which the WIT does not
    /// have.
    pub fn case(&self) -> &'static str {
        self.names().1
    }

    /// The case's name in Rust, as a program matches on it, and as the WIT writes it.
    fn names(&self) -> (&'static str, &'static str) {
        match self {
            Error::NoSuchCache(_) => ("NoSuchCache", "no-such-cache"),
            Error::NoSuchQueue(_) => ("NoSuchQueue", "no-such-queue"),
            Error::AccessDenied(_) => ("AccessDenied", "access-denied"),
            Error::InvalidName(_) => ("InvalidName", "invalid-name"),
            Error::InvalidJson(_) => ("InvalidJson", "invalid-json"),
            Error::TooLarge(_) => ("TooLarge", "too-large"),
            Error::QuotaExceeded(_) => ("QuotaExceeded", "quota-exceeded"),
            Error::Storage(_) => ("Storage", "storage"),
            Error::InvalidArgument(_) => ("InvalidArgument", "invalid-argument"),
            Error::WrongType { .. } => ("WrongType", "wrong-type"),
        }
    }

    /// The message for people: the host's, or serde's description of a type mismatch.
    pub fn message(&self) -> &str {
        match self {
            Error::NoSuchCache(m)
            | Error::NoSuchQueue(m)
            | Error::AccessDenied(m)
            | Error::InvalidName(m)
            | Error::InvalidJson(m)
            | Error::TooLarge(m)
            | Error::QuotaExceeded(m)
            | Error::Storage(m)
            | Error::InvalidArgument(m)
            | Error::WrongType { reason: m, .. } => m,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::WrongType { reason, .. } => {
                write!(f, "wrong-type: the value does not fit the type asked for: {reason}")
            }
            _ => write!(f, "{}: {}", self.case(), self.message()),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let variant = self.names().0;
        match (self, f.alternate()) {
            (Error::WrongType { reason, value }, true) => {
                f.debug_struct(variant).field("reason", reason).field("value", value).finish()
            }
            (_, true) => f.debug_tuple(variant).field(&self.message()).finish(),
            (Error::WrongType { reason, value }, false) => {
                write!(
                    f,
                    "{variant}: the value does not fit the type asked for: {reason}; the JSON read: {value}"
                )
            }
            (_, false) => write!(f, "{variant}: {}", self.message()),
        }
    }
}

impl std::error::Error for Error {}

impl From<types::Error> for Error {
    fn from(error: types::Error) -> Error {
        match error {
            types::Error::NoSuchCache(m) => Error::NoSuchCache(m),
            types::Error::NoSuchQueue(m) => Error::NoSuchQueue(m),
            types::Error::AccessDenied(m) => Error::AccessDenied(m),
            types::Error::InvalidName(m) => Error::InvalidName(m),
            types::Error::InvalidJson(m) => Error::InvalidJson(m),
            types::Error::TooLarge(m) => Error::TooLarge(m),
            types::Error::QuotaExceeded(m) => Error::QuotaExceeded(m),
            types::Error::Storage(m) => Error::Storage(m),
            types::Error::InvalidArgument(m) => Error::InvalidArgument(m),
        }
    }
}
