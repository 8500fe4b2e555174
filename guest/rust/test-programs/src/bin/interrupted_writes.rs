//! Writes batches of 100 entries (`batch-N-0` .. `batch-N-99`) until it is stopped: by the
//! host's time limit, or by its own panic after `panic-after N` batches. Each batch is one
//! `set-many`, so afterwards every batch must be there whole or not at all.

use easycaching_guest::Cache;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let panic_after: Option<u64> = match args.get(1).map(String::as_str) {
        Some("panic-after") => Some(args[2].parse().expect("a count")),
        _ => None,
    };
    let cache = Cache::create("batches").expect("granted");
    let values: Vec<u64> = (0..100).collect();
    for batch in 0u64.. {
        if panic_after == Some(batch) {
            panic!("giving up after {batch} batches, in the middle of the job");
        }
        let keys: Vec<String> = (0..100).map(|i| format!("batch-{batch}-{i}")).collect();
        cache.set_many(keys.iter().map(String::as_str).zip(values.iter())).expect("the write goes through");
    }
}
