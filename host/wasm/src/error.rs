//! The host's error type, and its one mapping onto the WIT `error` variant.

use std::time::Duration;

use crate::bindings::easycaching::cache::types::Error as WitError;
use crate::guest_log;
use crate::keyvalue_bindings::wasi::keyvalue0_2_0_draft::store::Error as KeyValueError;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong between a plugin and its caches, or in running a plugin.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The storage engine refused or failed.
    #[error(transparent)]
    Store(#[from] easycaching::Error),

    /// The plugin was not granted what it asked for.
    #[error("access denied: {0}")]
    AccessDenied(String),

    /// The plugin holds as many handles (caches, queues, streams) as it may.
    #[error(
        "too many open handles: this plugin holds as many caches, queues and streams as it may; drop some first"
    )]
    TooManyHandles,

    /// A plugin could not be loaded: not a component, or not one this host can run.
    #[error("cannot load {0}")]
    Load(String),

    /// The plugin exited with a non-zero status.
    #[error("the plugin exited with status {code}")]
    Exited {
        /// The exit status.
        code: i32,
    },

    /// The plugin crashed: a panic, an `unreachable`, an out-of-bounds access.
    #[error("the plugin crashed: {message}")]
    Trapped {
        /// What wasmtime reported, with the wasm backtrace.
        message: String,
    },

    /// The plugin asked for more memory than its limit.
    #[error("the plugin went over its memory limit of {}", in_binary_units(*limit))]
    OutOfMemory {
        /// The limit, in bytes.
        limit: usize,
    },

    /// The plugin ran past its time limit and was stopped.
    #[error("the plugin ran past its time limit of {limit:?} and was stopped")]
    TimedOut {
        /// The limit.
        limit: Duration,
    },

    /// The plugin used up its fuel and was stopped.
    #[error("the plugin used up its fuel ({limit} units) and was stopped")]
    OutOfFuel {
        /// The budget.
        limit: u64,
    },

    /// The host asked for something its own configuration rules out: a fuel limit on a
    /// [`Runtime`](crate::Runtime) made without [`RuntimeConfig::fuel`](crate::RuntimeConfig::fuel),
    /// or fewer open handles than a plugin needs to start ([`MIN_HANDLES`](crate::MIN_HANDLES)).
    #[error("the host is misconfigured: {0}")]
    Misconfigured(String),

    /// A bug in the host; the guest call that met it traps.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The WIT error a guest receives: the case it can act on, with this error's message.
    /// `None` for host bugs, which trap instead.
    pub(crate) fn into_wit(self) -> Option<WitError> {
        use easycaching::Error as Store;
        let message = self.to_string();
        Some(match self {
            Error::Store(Store::NoSuchCache(_) | Store::CacheDeleted(_)) => WitError::NoSuchCache(message),
            Error::Store(Store::NoSuchQueue(_) | Store::QueueDeleted(_)) => WitError::NoSuchQueue(message),
            Error::Store(Store::InvalidName { .. }) => WitError::InvalidName(message),
            // `WrongType` reaches a guest from `increment` on a value that is not an integer:
            // the WIT has it as `invalid-json` (JSON that is not what the call needs).
            Error::Store(Store::InvalidJson(_) | Store::WrongType { .. }) => WitError::InvalidJson(message),
            Error::Store(Store::TooLarge { .. }) => WitError::TooLarge(message),
            Error::Store(Store::InvalidArgument(_)) => WitError::InvalidArgument(message),
            Error::Store(Store::QuotaExceeded(_)) | Error::TooManyHandles => WitError::QuotaExceeded(message),
            Error::AccessDenied(_) => WitError::AccessDenied(message),
            Error::Store(_) => WitError::Storage(message),
            Error::Internal(_)
            | Error::Misconfigured(_)
            | Error::Load(_)
            | Error::Exited { .. }
            | Error::Trapped { .. }
            | Error::OutOfMemory { .. }
            | Error::TimedOut { .. }
            | Error::OutOfFuel { .. } => return None,
        })
    }
}

impl Error {
    /// The `wasi:keyvalue` error a guest receives, the one mapping of this crate's errors onto
    /// it; `None` for host bugs, which trap instead.
    ///
    /// Its `access-denied` and `no-such-store` carry no message, so what ours says (the grant
    /// that would allow it, above all) goes to the host's log instead, target
    /// `easycaching_host::keyvalue`: a denial as a warning, which `easycaching run` prints by
    /// default, a store not found as info, at most ten such lines a minute in the process
    /// (`guest_log`: the rest at debug level). Every other error is `other`, with our message.
    pub(crate) fn into_keyvalue(self) -> Option<KeyValueError> {
        use easycaching::Error as Store;
        let message = self.to_string();
        Some(match self {
            Error::AccessDenied(_) => {
                guest_log::keyvalue_error("access-denied", &message, true);
                KeyValueError::AccessDenied
            }
            // A name no cache may have names no store either.
            Error::Store(Store::NoSuchCache(_) | Store::CacheDeleted(_) | Store::InvalidName { .. }) => {
                guest_log::keyvalue_error("no-such-store", &message, false);
                KeyValueError::NoSuchStore
            }
            Error::Store(_) | Error::TooManyHandles => KeyValueError::Other(message),
            Error::Internal(_)
            | Error::Misconfigured(_)
            | Error::Load(_)
            | Error::Exited { .. }
            | Error::Trapped { .. }
            | Error::OutOfMemory { .. }
            | Error::TimedOut { .. }
            | Error::OutOfFuel { .. } => return None,
        })
    }
}

/// `256 MiB`, `64 KiB`, `1000 bytes`: a size as `--memory` takes it, exact.
fn in_binary_units(bytes: usize) -> String {
    const UNITS: [(&str, u32); 3] = [("GiB", 30), ("MiB", 20), ("KiB", 10)];
    UNITS
        .iter()
        .find(|(_, shift)| bytes >= 1 << shift && bytes.is_multiple_of(1 << shift))
        .map_or_else(|| format!("{bytes} bytes"), |(unit, shift)| format!("{} {unit}", bytes >> shift))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_limits_are_said_exactly() {
        assert_eq!(in_binary_units(256 << 20), "256 MiB");
        assert_eq!(in_binary_units(1 << 10), "1 KiB");
        assert_eq!(in_binary_units(3 << 30), "3 GiB");
        assert_eq!(in_binary_units(1536 << 10), "1536 KiB");
        assert_eq!(in_binary_units(1000), "1000 bytes");
        assert_eq!(in_binary_units(0), "0 bytes");
    }
}
