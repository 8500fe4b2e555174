//! Prints the time it reads from `wasi:clocks/wall-clock`, in milliseconds since the unix
//! epoch: under a host on a manual clock, the time the host tells TTLs and leases by.

use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("a time after the epoch");
    println!("{}", now.as_millis());
}
