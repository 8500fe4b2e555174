//! What a plugin with narrow grants can and cannot do. Run with
//! `cache:open=rw`, `cache:lazy=rw`, `cache:readonly=r`, `cache:team.*=rwc`, `queue:inbox=r`.

use std::time::Duration;

use easycaching_guest::{Cache, Queue, delete_cache, list_caches};
use easycaching_test_programs::report;

fn main() {
    let _ = report("list caches", list_caches());
    let _ = report("open ungranted", Cache::open("secret"));
    let _ = report("create ungranted", Cache::create("secret"));
    let _ = report("create without create grant", Cache::create("lazy"));
    if let Ok(open) = report("open granted", Cache::open("open").map(|c| c.name())) {
        let cache = Cache::open(&open).expect("opened just now");
        let _ = report("write granted", cache.set("k", &1));
    }
    if let Ok(readonly) = Cache::open("readonly") {
        let _ = report("read read-only", readonly.get::<String>("k"));
        let _ = report("write read-only", readonly.set("k", &2));
        let _ = report("delete read-only", readonly.delete("k"));
        let _ = report("clear read-only", readonly.clear());
        let _ = report("swap read-only", readonly.compare_and_swap("k", Some("v"), Some("w")));
        let _ = report("update read-only", readonly.update("k", |_: Option<String>| Some("w".to_owned())));
        let _ = report("ttl read-only", readonly.ttl("k"));
        let _ = report("set with ttl read-only", readonly.set_with_ttl("k", &2, Duration::from_secs(60)));
        let _ = report("expire read-only", readonly.expire("k", Some(Duration::from_secs(60))));
    }
    let _ = report("delete without create grant", delete_cache("open"));
    let _ = report("create by prefix", Cache::create("team.alpha").map(|c| c.name()));
    let _ = report("delete by prefix", delete_cache("team.alpha"));
    let _ = report("create outside prefix", Cache::create("teamless"));
    if let Ok(inbox) = report("open read-only queue", Queue::open("inbox").map(|q| q.name())) {
        let queue = Queue::open(&inbox).expect("opened just now");
        let _ = report("peek read-only queue", queue.peek::<u32>());
        let _ = report("take from read-only queue", queue.get::<u32>());
        let _ = report("put on read-only queue", queue.put(&1));
        let _ = report("lease from read-only queue", queue.lease::<u32>(Duration::from_secs(60)));
        let _ = report("ack on read-only queue", queue.ack("1.0000000000000001"));
        let _ = report("release on read-only queue", queue.release("1.0000000000000001"));
        let _ =
            report("extend on read-only queue", queue.extend("1.0000000000000001", Duration::from_secs(60)));
    }
    let _ = report("open ungranted queue", Queue::open("outbox"));
}
