//! Recurses without end: the wasm stack overflows and the run ends with a trap.

fn depth(n: u64) -> u64 {
    // Never true in practice; it only keeps the recursion from being unconditional.
    if n == u64::MAX {
        return n;
    }
    std::hint::black_box(depth(std::hint::black_box(n + 1))) + 1
}

fn main() {
    println!("{}", depth(0));
}
