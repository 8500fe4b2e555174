//! Sleeps for the milliseconds given (default 10 s), then prints `slept`. A sleep is a wait in
//! a host call, where no epoch deadline reaches: the host must stop it at the time limit all
//! the same.

fn main() {
    let millis: u64 = std::env::args().nth(1).and_then(|ms| ms.parse().ok()).unwrap_or(10_000);
    println!("sleeping");
    std::thread::sleep(std::time::Duration::from_millis(millis));
    println!("slept");
}
