//! Forges a handle the guest no longer owns: the component model's handle checks trap the
//! guest, and the host goes on.

use easycaching_guest::bindings::easycaching::cache::caches::Cache as RawCache;
use easycaching_guest::bindings::easycaching::cache::manager;

fn main() {
    let cache = manager::create_cache("forged").expect("granted");
    let handle = cache.take_handle();
    drop(unsafe { RawCache::from_handle(handle) });
    println!("dropped handle {handle}; using it again");
    // SAFETY: deliberately unsound; this program exists to show the host survives it.
    let forged = unsafe { RawCache::from_handle(handle) };
    let _ = forged.get("k");
    println!("the host let a dropped handle through");
}
