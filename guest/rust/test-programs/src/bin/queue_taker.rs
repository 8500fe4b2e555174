//! Takes from the queue `jobs`, with `get` (`one`) or `get-many` (`many N`), and prints how
//! many items (JSON strings) and bytes it received. Run with a memory limit too small for the items, it
//! traps while the host copies them in; the items must then still be in the queue.

use easycaching_guest::Queue;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let jobs = Queue::open("jobs").expect("granted");
    let items: Vec<String> = match args.get(1).map(String::as_str) {
        Some("one") => jobs.get().expect("the get goes through").into_iter().collect(),
        Some("many") => {
            let max = args.get(2).and_then(|max| max.parse().ok()).expect("many N");
            jobs.get_many(max).expect("the get-many goes through")
        }
        other => panic!("unknown mode {other:?}: one, or many N"),
    };
    let bytes: usize = items.iter().map(|item| item.len()).sum();
    println!("received {} items, {bytes} bytes", items.len());
}
