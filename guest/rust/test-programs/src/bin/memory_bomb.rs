//! Allocates (and touches) memory until something stops it: the host's memory limit.

fn main() {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1u8; 1024 * 1024]);
        if hoard.len().is_multiple_of(64) {
            println!("holding {} MiB", hoard.len());
        }
    }
}
