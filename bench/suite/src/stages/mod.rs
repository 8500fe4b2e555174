//! The stages of `make bench` beyond the micro cases: bounded loops, processes, servers. Each
//! returns its figures; `easycaching-bench` writes them to `target/bench/parts/STAGE.json`.

pub mod callgrind;
pub mod http;
pub mod languages;
pub mod micro_figures;
pub mod micro_turns;
pub mod original;
pub mod postgres;
pub mod queues;
pub mod scale;
pub mod startup;
pub mod versus_redis;
pub mod writes;

use std::time::Duration;

/// The sections of the table, in order: the number is the item of issue 7 it answers.
pub mod section {
    /// `get` of a key in the LRU, native.
    pub const HIT: &str = "1. hit, native";
    /// `get` of a key in the LRU, from a Rust guest.
    pub const GUEST: &str = "2. hit, from a Rust guest";
    /// `get` that reads SQLite.
    pub const MISS: &str = "3. miss";
    /// Durable `set`, one writer and many.
    pub const WRITES: &str = "4. durable writes";
    /// Instantiating plugins and `easycaching run`.
    pub const STARTUP: &str = "5. start-up";
    /// Costs as the database grows.
    pub const SCALE: &str = "6. scale";
    /// Redis on loopback.
    pub const REDIS: &str = "7. against Redis";
    /// Queues.
    pub const QUEUES: &str = "8. queues";
    /// The original Python easycaching.
    pub const ORIGINAL: &str = "9. against the original Python easycaching";
    /// Spin's SQLite key-value store design.
    pub const SPIN: &str = "10. against Spin's store design";
    /// Python and JavaScript guests.
    pub const LANGUAGES: &str = "11. Python and JavaScript guests";
    /// The HTTP server.
    pub const HTTP: &str = "12. HTTP server";
    /// The PostgreSQL backend against plain PostgreSQL.
    pub const POSTGRES: &str = "13. PostgreSQL backend";
}

/// How long each side of a paired comparison runs per round, and how many rounds: `--full`
/// runs longer for steadier figures.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// One side of one round.
    pub round: Duration,
    /// Rounds per comparison (the median is kept).
    pub rounds: usize,
}

impl Budget {
    /// The default budget, or the longer one of `--full`.
    pub fn new(full: bool) -> Budget {
        if full {
            Budget { round: Duration::from_secs(3), rounds: 5 }
        } else {
            Budget { round: Duration::from_millis(1200), rounds: 3 }
        }
    }
}
