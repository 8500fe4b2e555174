//! Never ends on its own: the host's time limit has to stop it.

fn main() {
    println!("looping");
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}
