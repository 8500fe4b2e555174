//! Fills a cache with 10,000 entries, then scans it page by page and checks that every entry
//! was seen exactly once; then lists the entries and keys of a few prefixes.

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

    // The thousand keys beginning `key-01`, in pages of 300 that never leave them.
    let (mut listed, mut pages, mut cursor) = (Vec::new(), 0, None::<String>);
    loop {
        let page = cache.entries_page_with_prefix("key-01", cursor.as_deref(), 300)?;
        pages += 1;
        listed.extend(page.entries.into_iter().map(|entry| entry.key));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let expected: Vec<String> = (1000..2000).map(|n| format!("key-{n:05}")).collect();
    assert_eq!(listed, expected);
    let hundred: Vec<(String, u32)> = cache.iter_with_prefix("key-012").collect::<Result<_>>()?;
    assert_eq!(hundred.first(), Some(&("key-01200".to_owned(), 1200)));
    assert_eq!(hundred.last(), Some(&("key-01299".to_owned(), 1299)));
    let ten: Vec<String> = cache.keys_with_prefix("key-0999").collect::<Result<_>>()?;
    let none = cache.keys_with_prefix("other-").count();
    println!(
        "prefix key-01: {} entries in {pages} pages; key-012: {}; key-0999: {} keys, {} to {}; other-: {none}",
        listed.len(),
        hundred.len(),
        ten.len(),
        ten[0],
        ten[ten.len() - 1]
    );
    let removed = cache.delete_with_prefix("key-01")?;
    let left = cache.keys_with_prefix("key-01").count();
    println!("deleted prefix key-01: {removed}; {left} left of it, {} in all", cache.len()?);
    Ok(())
}
