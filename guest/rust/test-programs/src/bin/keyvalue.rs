//! A component written against the standard `wasi:keyvalue@0.2.0-draft` interfaces (the
//! `easycaching:cache/keyvalue-imports` world), as one for wasmtime's `wasmtime-wasi-keyvalue`
//! would be. Each run does one command on one bucket and prints one line:
//!
//! ```text
//! keyvalue set BUCKET KEY VALUE        set: ok
//! keyvalue get BUCKET KEY              get: ok VALUE | get: none
//! keyvalue exists BUCKET KEY           exists: ok true
//! keyvalue delete BUCKET KEY           delete: ok
//! keyvalue incr BUCKET KEY DELTA       incr: ok SUM
//! keyvalue list BUCKET                 list: ok N keys in P pages
//! keyvalue cursor BUCKET CURSOR        cursor: ok N keys (one page from a cursor given)
//! keyvalue set-many BUCKET K=V...      set-many: ok
//! keyvalue get-many BUCKET K...        get-many: ok K=V K=none ...
//! keyvalue delete-many BUCKET K...     delete-many: ok
//! keyvalue mixed BUCKET KEY VALUE      mixed: ok VALUE N (through both interfaces, below)
//! ```
//!
//! `mixed` also imports `easycaching:cache` (through the guest SDK), as a component may: it
//! sets KEY through `wasi:keyvalue` and reads it through the SDK, then counts `KEY.count` up
//! through each and reads the sum back through `wasi:keyvalue`.
//!
//! An error prints `COMMAND: error CASE` (`other: MESSAGE` for `other`) and exits with status 1.
//! `list` checks what the interface leaves to the host and this one promises: the keys come in
//! key order, none twice, and every page but the last is full (1,000 keys).

mod bindings {
    wit_bindgen::generate!({
        world: "easycaching:cache/keyvalue-imports",
        path: "../../../wit",
        generate_all,
    });
}

use bindings::wasi::keyvalue0_2_0_draft::store::{self, Bucket, Error};
use bindings::wasi::keyvalue0_2_0_draft::{atomics, batch};

/// What one command printed after `COMMAND: ok`.
type Outcome = Result<String, Error>;

fn describe(error: &Error) -> String {
    match error {
        Error::NoSuchStore => "no-such-store".into(),
        Error::AccessDenied => "access-denied".into(),
        Error::Other(message) => format!("other: {message}"),
    }
}

fn text(value: &[u8]) -> String {
    String::from_utf8_lossy(value).into_owned()
}

fn list(bucket: &Bucket) -> Outcome {
    let (mut keys, mut pages, mut cursor) = (Vec::<String>::new(), 0, None);
    loop {
        let page = bucket.list_keys(cursor)?;
        pages += 1;
        if page.cursor.is_some() {
            assert_eq!(page.keys.len(), 1000, "page {pages} is not the last, and not full");
        }
        keys.extend(page.keys);
        cursor = page.cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert!(keys.windows(2).all(|pair| pair[0] < pair[1]), "keys out of order, or repeated");
    Ok(format!("{} keys in {pages} pages", keys.len()))
}

fn run(command: &str, bucket_name: &str, rest: &[String]) -> Outcome {
    let bucket = store::open(bucket_name)?;
    let arg = |at: usize| rest.get(at).map(String::as_str).unwrap_or_default();
    match command {
        "open" => Ok(String::new()),
        "set" => bucket.set(arg(0), arg(1).as_bytes()).map(|()| String::new()),
        "get" => Ok(bucket.get(arg(0))?.map_or_else(|| "none".into(), |value| text(&value))),
        "exists" => Ok(bucket.exists(arg(0))?.to_string()),
        "delete" => bucket.delete(arg(0)).map(|()| String::new()),
        "incr" => {
            let delta = arg(1).parse().expect("incr takes a delta that is a u64");
            Ok(atomics::increment(&bucket, arg(0), delta)?.to_string())
        }
        "list" => list(&bucket),
        "cursor" => {
            let cursor = arg(0).parse().expect("cursor takes a u64");
            Ok(format!("{} keys", bucket.list_keys(Some(cursor))?.keys.len()))
        }
        "set-many" => {
            let entries: Vec<(String, Vec<u8>)> = rest
                .iter()
                .map(|entry| {
                    let (key, value) = entry.split_once('=').expect("set-many takes KEY=VALUE");
                    (key.to_owned(), value.as_bytes().to_vec())
                })
                .collect();
            batch::set_many(&bucket, &entries).map(|()| String::new())
        }
        "get-many" => {
            let found = batch::get_many(&bucket, rest)?;
            let shown: Vec<String> = rest
                .iter()
                .zip(found)
                .map(|(asked, entry)| match entry {
                    Some((key, value)) => {
                        assert_eq!(&key, asked, "get-many answered for another key");
                        format!("{key}={}", text(&value))
                    }
                    None => format!("{asked}=none"),
                })
                .collect();
            Ok(shown.join(" "))
        }
        "delete-many" => batch::delete_many(&bucket, rest).map(|()| String::new()),
        "mixed" => {
            let (key, counter) = (arg(0), format!("{}.count", arg(0)));
            bucket.set(key, arg(1).as_bytes())?;
            let cache = easycaching_guest::Cache::open(bucket_name).expect("opens through easycaching:cache");
            let read: serde_json::Value = cache.get(key).expect("reads").expect("finds what was set");
            atomics::increment(&bucket, &counter, 2)?;
            cache.increment(&counter, 3).expect("increments through easycaching:cache");
            let sum = bucket.get(&counter)?.map(|value| text(&value)).unwrap_or_default();
            Ok(format!("{read} {sum}"))
        }
        // `set` tried TIMES times, on through its errors: the errors, counted by kind.
        "set-repeatedly" => {
            let times: u32 = arg(2).parse().expect("set-repeatedly KEY VALUE TIMES");
            let mut errors = std::collections::BTreeMap::<String, u32>::new();
            for _ in 0..times {
                if let Err(error) = bucket.set(arg(0), arg(1).as_bytes()) {
                    *errors.entry(describe(&error)).or_default() += 1;
                }
            }
            Ok(errors.iter().map(|(error, count)| format!("{count} {error}")).collect::<Vec<_>>().join(", "))
        }
        other => panic!("unknown command {other:?}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [command, bucket, rest @ ..] = args.as_slice() else {
        panic!("usage: keyvalue COMMAND BUCKET [ARGS...]");
    };
    match run(command, bucket, rest) {
        Ok(shown) if shown.is_empty() => println!("{command}: ok"),
        Ok(shown) => println!("{command}: ok {shown}"),
        Err(error) => {
            println!("{command}: error {}", describe(&error));
            std::process::exit(1);
        }
    }
}
