//! A component written against `wasi:keyvalue@0.2.0-draft2` (the
//! `easycaching:cache/keyvalue-draft2-imports` world), as one built from the interfaces'
//! current repository would be. Each run does one scenario on one bucket and prints one line a
//! step:
//!
//! ```text
//! keyvalue_draft2 basics BUCKET   set, get, increment down and up, delete
//! keyvalue_draft2 cas BUCKET      compare-and-swap: a swap, a stale one retried, an absent key
//! keyvalue_draft2 list BUCKET N   sets N keys, then lists them all: "list: ok N keys in P pages"
//! keyvalue_draft2 denied BUCKET   the writes a read-only grant refuses
//! ```
//!
//! A step prints `STEP: ok WHAT`, or `STEP: error CASE` (`other: MESSAGE` for `other`) and the
//! run goes on; it exits with status 1 when any step failed.

mod bindings {
    wit_bindgen::generate!({
        world: "easycaching:cache/keyvalue-draft2-imports",
        path: "../../../wit",
        generate_all,
    });
}

use std::cell::Cell;

use bindings::wasi::keyvalue0_2_0_draft2::atomics::{self, Cas, CasError};
use bindings::wasi::keyvalue0_2_0_draft2::batch;
use bindings::wasi::keyvalue0_2_0_draft2::store::{self, Bucket, Error};

thread_local! {
    static FAILED: Cell<bool> = const { Cell::new(false) };
}

fn describe(error: &Error) -> String {
    match error {
        Error::NoSuchStore => "no-such-store".into(),
        Error::AccessDenied => "access-denied".into(),
        Error::Other(message) => format!("other: {message}"),
    }
}

fn text(value: Option<Vec<u8>>) -> String {
    value.map_or("none".into(), |value| String::from_utf8_lossy(&value).into_owned())
}

/// Prints `STEP: ok WHAT` or `STEP: error CASE`.
fn step(name: &str, outcome: Result<String, Error>) {
    match outcome {
        Ok(what) => println!("{name}: ok {what}"),
        Err(error) => {
            FAILED.set(true);
            println!("{name}: error {}", describe(&error));
        }
    }
}

/// A swap, as `swapped` or `cas-failed, current VALUE` (the new `cas` it answers with handed
/// back for a retry).
fn swap(cas: Cas, value: &str) -> Result<(String, Option<Cas>), Error> {
    match atomics::swap(cas, value.as_bytes()) {
        Ok(()) => Ok(("swapped".into(), None)),
        Err(CasError::CasFailed(fresh)) => {
            Ok((format!("cas-failed, current {}", text(fresh.current()?)), Some(fresh)))
        }
        Err(CasError::StoreError(error)) => Err(error),
    }
}

fn basics(bucket: &Bucket) {
    step("set", bucket.set("a", b"{\"n\": 1}").map(|()| String::new()));
    step("get", bucket.get("a").map(text));
    step("incr down", atomics::increment(bucket, "n", -5).map(|sum| sum.to_string()));
    step("incr up", atomics::increment(bucket, "n", 7).map(|sum| sum.to_string()));
    step(
        "delete",
        bucket.delete("a").and_then(|()| bucket.exists("a")).map(|exists| format!("exists {exists}")),
    );
    step("not json", bucket.set("bad", b"nope").map(|()| String::new()));
}

fn cas(bucket: &Bucket) {
    step("set", bucket.set("c", b"1").map(|()| String::new()));
    // A swap of the value it read.
    step("swap", Cas::new(bucket, "c").and_then(|cas| Ok(swap(cas, "2")?.0)));
    step("get", bucket.get("c").map(text));
    // Another write between the read and the swap: the swap fails, with the value found, and
    // the retry from it goes through.
    let stale = Cas::new(bucket, "c");
    step("set meanwhile", bucket.set("c", b"3").map(|()| String::new()));
    let retried = stale.and_then(|cas| match swap(cas, "4")? {
        (failed, Some(fresh)) => Ok(format!("{failed}; retried: {}", swap(fresh, "4")?.0)),
        (swapped, None) => Ok(swapped),
    });
    step("stale swap", retried);
    step("get", bucket.get("c").map(text));
    // A key absent when read must still be absent.
    step("absent", Cas::new(bucket, "fresh").and_then(|cas| Ok(format!("current {}", text(cas.current()?)))));
    step("swap absent", Cas::new(bucket, "fresh").and_then(|cas| Ok(swap(cas, "\"x\"")?.0)));
    step("swap not json", Cas::new(bucket, "c").and_then(|cas| Ok(swap(cas, "nope")?.0)));
    step("get", bucket.get("c").map(text));
}

fn list(bucket: &Bucket, count: usize) {
    let entries: Vec<(String, Vec<u8>)> = (0..count).map(|i| (format!("k{i:06}"), b"1".to_vec())).collect();
    for chunk in entries.chunks(1000) {
        if let Err(error) = batch::set_many(bucket, chunk) {
            return step("set-many", Err(error));
        }
    }
    let mut keys: Vec<String> = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let page = match bucket.list_keys(cursor.as_deref()) {
            Ok(page) => page,
            Err(error) => return step("list", Err(error)),
        };
        pages += 1;
        keys.extend(page.keys);
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let in_order = keys.windows(2).all(|pair| pair[0] < pair[1]);
    step("list", Ok(format!("{} keys in {pages} pages, in order {in_order}", keys.len())));
}

fn denied(bucket: &Bucket) {
    step("get", bucket.get("c").map(text));
    step("cas", Cas::new(bucket, "c").map(|_| "made".into()));
    step("incr", atomics::increment(bucket, "n", 1).map(|sum| sum.to_string()));
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (scenario, name) = match args.as_slice() {
        [scenario, name, ..] => (scenario.as_str(), name.as_str()),
        _ => panic!("usage: keyvalue_draft2 basics|cas|list|denied BUCKET [N]"),
    };
    match store::open(name) {
        Err(error) => step("open", Err(error)),
        Ok(bucket) => match scenario {
            "basics" => basics(&bucket),
            "cas" => cas(&bucket),
            "list" => list(&bucket, args.get(2).and_then(|n| n.parse().ok()).expect("list BUCKET N")),
            "denied" => denied(&bucket),
            other => panic!("unknown scenario {other:?}"),
        },
    }
    if FAILED.get() {
        std::process::exit(1);
    }
}
