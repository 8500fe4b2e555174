//! `read_write set KEY JSON` stores a value in cache `data`; `read_write get KEY` prints it (or
//! "none"); `read_write touch N [CACHE]` writes then reads N keys, one at a time, in CACHE
//! (default `data`). For persistence, LRU, concurrency and quota tests.

use easycaching_guest::{Cache, Result};
use serde_json::Value;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let name = match args.get(1).map(String::as_str) {
        Some("touch") => args.get(3).map(String::as_str).unwrap_or("data"),
        _ => "data",
    };
    let cache = Cache::create(name)?;
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
        _ => panic!("usage: read_write set KEY JSON | get KEY | touch N [CACHE]"),
    }
    Ok(())
}
