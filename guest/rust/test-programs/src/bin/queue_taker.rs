//! Takes from the queue `jobs`, with `get` (`one`) or `get-many` (`many N`), and prints how
//! many items (JSON strings) and bytes it received. Run with a memory limit too small for the
//! items, it traps while the host copies them in; the items must then still be in the queue.
//!
//! `lease MS ack|trap|keep` leases one item for MS milliseconds, prints it and its delivery,
//! then acknowledges it, traps (a panic) or ends without acknowledging it.

use std::time::Duration;

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
        Some("lease") => return lease(&jobs, &args[2..]),
        other => panic!("unknown mode {other:?}: one, many N, or lease MS ack|trap|keep"),
    };
    let bytes: usize = items.iter().map(|item| item.len()).sum();
    println!("received {} items, {bytes} bytes", items.len());
}

fn lease(jobs: &Queue, args: &[String]) {
    let ms: u64 = args.first().and_then(|ms| ms.parse().ok()).expect("lease MS");
    let Some(item) = jobs.lease::<String>(Duration::from_millis(ms)).expect("the lease goes through") else {
        println!("nothing waits");
        return;
    };
    println!(
        "leased {:?} (delivery {}, {} bytes)",
        item.value.get(..5).unwrap_or(&item.value),
        item.deliveries,
        item.value.len()
    );
    match args.get(1).map(String::as_str) {
        Some("ack") => println!("acknowledged: {}", jobs.ack(&item.receipt).expect("the ack goes through")),
        Some("trap") => panic!("trapped while holding the lease"),
        Some("keep") => {}
        other => panic!("unknown ending {other:?}: ack, trap or keep"),
    }
}
