//! What can stop a server from starting or from shutting down cleanly. A request that fails
//! (a plugin that traps, runs out of time or memory) is not one of these: it is answered with a
//! 500 and the server goes on.

use std::net::SocketAddr;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a server could not start, or did not stop cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The plugin could not be read, compiled, linked or instantiated.
    #[error("cannot load {plugin}: {message}")]
    Load {
        /// The plugin, as named to [`Server::new`](crate::Server::new) or
        /// [`Server::load`](crate::Server::load).
        plugin: String,
        /// What went wrong.
        message: String,
    },

    /// wasmtime could not be set up with these settings (e.g. too many instances for the
    /// address space).
    #[error("cannot set up wasmtime: {0}")]
    Engine(String),

    /// The settings rule out running any plugin: limits with fewer open handles than
    /// [`MIN_HANDLES`](easycaching_host::MIN_HANDLES).
    #[error("{0}")]
    Misconfigured(String),

    /// The address could not be listened on.
    #[error("cannot listen on {address}: {reason}")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// Why (said in this error's message, so not also given as its `source`).
        reason: std::io::Error,
    },

    /// The threads, timers or signal handlers the server needs could not be set up.
    #[error("cannot start the server: {0}")]
    Start(std::io::Error),

    /// A second Ctrl-C or SIGTERM (or [`Shutdown::stop`](crate::Shutdown::stop)) came while the
    /// server was finishing in-flight requests; it stopped without waiting for them.
    #[error("interrupted while finishing {in_flight} in-flight request(s)")]
    Interrupted {
        /// Requests still running when the server stopped.
        in_flight: usize,
    },
}
