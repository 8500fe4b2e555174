//! The cache `get`, registered over the one `bindgen!` generates, because it is the call a
//! guest makes in its hot loops.
//!
//! The generated glue has the host return the value as a `String`: the LRU's bytes copied into
//! a fresh host allocation, copied again into guest memory, then freed. Registered by hand, the
//! function returns the LRU's own `Arc<str>` and wasmtime copies it once, straight into the
//! guest's memory; and it reads the key in guest memory rather than having it copied into a
//! new `String` first. Two allocations and two frees less on every hit, about a tenth of the
//! call (`make bench` shows the figure next to a `HashMap` floor of the same signature).
//!
//! The signature is checked against the component's import when it is linked, as the
//! generated one's is, so a change to `get` in the WIT that this does not follow fails every
//! instantiation (and the tests), never silently.

use std::sync::Arc;

use wasmtime::component::{Linker, Resource, WasmStr};

use crate::bindings::easycaching::cache::types;
use crate::ctx::{CacheResource, EasyCaching};

/// The interface instance `get` lives in, as components import it.
const CACHES: &str = "easycaching:cache/caches@0.1.0";
/// The component-model name of the `get` method of resource `cache`.
const GET: &str = "[method]cache.get";
/// Keys up to this long are copied onto the stack; longer ones (rare: the default key limit is
/// 4 KiB) into a `String`.
const INLINE_KEY_BYTES: usize = 256;

/// Registers the cache `get` over the generated one. Call after `caches::add_to_linker`, with
/// shadowing allowed.
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> EasyCaching<'_>,
) -> wasmtime::Result<()> {
    linker.instance(CACHES).and_then(|mut caches| {
        caches.func_wrap(GET, move |mut store, (handle, key): (Resource<CacheResource>, WasmStr)| {
            // The key is read where it lies in guest memory and copied onto the stack, not
            // into a new `String`. The copy is needed: the store cannot lend its memory and its
            // data at once.
            let mut inline = [0u8; INLINE_KEY_BYTES];
            let long: String;
            let key: &str = {
                let text = key.to_str(&store)?;
                match inline.get_mut(..text.len()) {
                    Some(slot) => {
                        slot.copy_from_slice(text.as_bytes());
                        // SAFETY: the bytes were just copied from a `str` (checked to be UTF-8
                        // as it was lifted), so they are UTF-8; checking again costs as much
                        // as the copy.
                        unsafe { std::str::from_utf8_unchecked(slot) }
                    }
                    None => {
                        long = text.into_owned();
                        &long
                    }
                }
            };
            let mut host = view(store.data_mut());
            let result = match host.get_json(&handle, key) {
                Ok(value) => Ok(value.map(Arc::<str>::from)),
                // As the generated glue does: a guest mistake becomes a WIT error, a host bug a trap.
                Err(error) => Err(types::Host::convert_error(&mut host, error)?),
            };
            Ok((result,))
        })
    })
}
