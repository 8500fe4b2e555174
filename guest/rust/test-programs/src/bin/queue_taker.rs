//! Takes from the queue `jobs`, with `get` (`one`) or `get-many` (`many N`), and prints how
//! many items (JSON strings) and bytes it received. Run with a memory limit too small for the
//! items, it traps while the host copies them in; the items must then still be in the queue.
//!
//! `lease MS ack|trap|keep` leases one item for MS milliseconds, prints it and its delivery,
//! then acknowledges it, traps (a panic) or ends without acknowledging it.
//!
//! `wait MS` takes one item with `get-wait`, waiting up to MS milliseconds, and prints it or
//! `nothing came`; `lease-wait MS` leases one the same way and acknowledges it; `many-wait MS`
//! takes up to 10 with `get-many-wait` and prints them; `lease-many-wait MS` leases up to 10
//! with `lease-many-wait`, prints them and acknowledges each.

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
        Some(mode @ ("wait" | "lease-wait" | "many-wait" | "lease-many-wait")) => {
            return wait(&jobs, mode, &args[2..]);
        }
        other => panic!(
            "unknown mode {other:?}: one, many N, lease MS ack|trap|keep, wait MS, lease-wait MS, \
             many-wait MS or lease-many-wait MS"
        ),
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

fn wait(jobs: &Queue, mode: &str, args: &[String]) {
    let timeout = args.first().and_then(|ms| ms.parse().ok()).map(Duration::from_millis).expect("MS");
    if mode == "wait" {
        match jobs.get_wait::<String>(timeout).expect("the get-wait goes through") {
            Some(item) => println!("received {item:?}"),
            None => println!("nothing came"),
        }
        return;
    }
    if mode == "lease-many-wait" {
        let leased = jobs
            .lease_many_wait::<String>(Duration::from_secs(60), 10, timeout)
            .expect("the lease-many-wait goes through");
        if leased.is_empty() {
            println!("nothing came");
        }
        for item in leased {
            println!("leased {:?} (delivery {})", item.value, item.deliveries);
            println!("acknowledged: {}", jobs.ack(&item.receipt).expect("the ack goes through"));
        }
        return;
    }
    if mode == "many-wait" {
        match jobs.get_many_wait::<String>(10, timeout).expect("the get-many-wait goes through") {
            items if items.is_empty() => println!("nothing came"),
            items => {
                let bytes: usize = items.iter().map(String::len).sum();
                let shown: Vec<&str> = items.iter().map(|item| item.get(..5).unwrap_or(item)).collect();
                println!("received {shown:?}, {bytes} bytes");
            }
        }
        return;
    }
    match jobs.lease_wait::<String>(Duration::from_secs(60), timeout).expect("the lease-wait goes through") {
        Some(item) => {
            println!("leased {:?} (delivery {})", item.value, item.deliveries);
            println!("acknowledged: {}", jobs.ack(&item.receipt).expect("the ack goes through"));
        }
        None => println!("nothing came"),
    }
}
