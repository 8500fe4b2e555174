//! The smallest plugin: a command that returns at once, for timing start-up alone.

fn main() {}
