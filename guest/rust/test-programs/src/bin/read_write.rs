//! `read_write set KEY JSON` stores a value; `read_write get KEY` prints it (or "none");
//! `read_write touch N` writes then reads N keys. For persistence and LRU tests.

use easycaching_guest::{Cache, Result};
use serde_json::Value;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let cache = Cache::create("data")?;
    match args.get(1).map(String::as_str) {
        Some("set") => cache.set_json(&args[2], &args[3])?,
        Some("get") => match cache.get::<Value>(&args[2])? {
            Some(value) => println!("{value}"),
            None => println!("none"),
        },
        Some("touch") => {
            let n: usize = args[2].parse().expect("a count");
            for i in 0..n {
                cache.set(&format!("key-{i}"), &i)?;
            }
            for i in 0..n {
                assert_eq!(cache.get::<usize>(&format!("key-{i}"))?, Some(i));
            }
            println!("touched {n}");
        }
        _ => panic!("usage: read_write set KEY JSON | get KEY | touch N"),
    }
    Ok(())
}
