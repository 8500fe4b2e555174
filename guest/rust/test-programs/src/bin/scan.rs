//! Fills a cache with 10,000 entries, then scans it page by page and checks that every entry
//! was seen exactly once.

use std::collections::HashSet;

use easycaching_guest::{Cache, Result};

fn main() -> Result<()> {
    let cache = Cache::create("scan")?;
    for batch in 0..10 {
        let keys: Vec<String> = (0..1000).map(|i| format!("key-{:05}", batch * 1000 + i)).collect();
        let values: Vec<u32> = (0..1000).map(|i| batch * 1000 + i).collect();
        cache.set_many(keys.iter().map(String::as_str).zip(values.iter()))?;
    }
    let mut seen = HashSet::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let page = cache.entries_page(cursor.as_deref(), 700)?;
        pages += 1;
        for entry in page.entries {
            let n: u32 = entry.value.parse().expect("values are numbers");
            assert_eq!(entry.key, format!("key-{n:05}"));
            assert!(seen.insert(n), "{} seen twice", entry.key);
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), 10_000);
    let iterated = cache.iter::<u32>().count();
    println!("scanned {} entries in {pages} pages; iterated {iterated}", seen.len());
    Ok(())
}
