//! `wasi:keyvalue` over the caches, implemented on [`EasyCaching`]: the standard interfaces
//! that components written for wasmtime's `wasmtime-wasi-keyvalue` (48.x, `0.2.0-draft`,
//! [`draft`]) or for the interfaces' current draft (`0.2.0-draft2`, [`draft2`]) import, sharing
//! their data with easycaching plugins and the `easycaching cache` commands.
//!
//! A bucket is the cache of the same name, opened under the plugin's grants exactly as
//! `manager.open-cache` and `manager.create-cache` open it, and every call checks the handle's
//! rights as the `caches` interface does. Values are bytes there and JSON documents here: a
//! value that is not one UTF-8 JSON document is refused, naming its key, and nothing is stored.
//! The worlds' documentation in `wit/worlds.wit` (`keyvalue-imports`,
//! `keyvalue-draft2-imports`) is the contract. What the two drafts share is here, once: each
//! draft's module only maps its interfaces onto it.

use std::collections::VecDeque;

use easycaching::{Cache, Json, MAX_PAGE_ITEMS, Page};
use wasmtime::component::{Linker, Resource};

use crate::ctx::{CacheResource, EasyCaching, HasEasyCaching};
use crate::grants::Kind;
use crate::interfaces::denied_write;
use crate::{Error, Result};

mod draft;
mod draft2;

pub use draft2::CasResource;

/// Keys one `list-keys` page holds at most: as many as a page of `caches.keys`.
pub(crate) const LIST_KEYS_PAGE: usize = MAX_PAGE_ITEMS;

/// The cache `store.open("")` opens. wasmtime's own `wasi:keyvalue` has one store, which
/// components open with the empty identifier, and Spin names its store `default`: so a
/// component written for either runs here, granted `--allow cache:default=rwc`.
pub const DEFAULT_BUCKET: &str = "default";

/// The `list-keys` cursors one bucket handle remembers for `0.2.0-draft`; an older one is
/// forgotten.
pub(crate) const CURSORS_KEPT: usize = 16;

/// A `wasi:keyvalue` bucket a guest holds: a cache handle, with its grant's rights, and the
/// `list-keys` cursors handed out on it.
///
/// `0.2.0-draft`'s cursor is a number, ours the key a page ended on: each page that has a next
/// one remembers that key under a fresh number, for this handle only. The numbers count up
/// from 1 and are never reused, so a cursor from another handle or a forgotten one is refused,
/// never taken for another scan's place. (`0.2.0-draft2`'s cursor is a string: the key itself,
/// and nothing is remembered.)
pub struct BucketResource {
    handle: CacheResource,
    cursors: VecDeque<(u64, String)>,
    last_cursor: u64,
}

impl BucketResource {
    fn new(handle: CacheResource) -> Self {
        BucketResource { handle, cursors: VecDeque::new(), last_cursor: 0 }
    }

    fn cache(&self) -> &Cache {
        &self.handle.cache
    }

    /// The cache, when the grant it was opened under allows writing.
    fn writable(&self) -> Result<&Cache> {
        if !self.handle.writable {
            return Err(denied_write(Kind::Cache, self.handle.cache.name()));
        }
        Ok(&self.handle.cache)
    }

    /// Where the page after `cursor` starts: after the key it stands for.
    fn resume_after(&self, cursor: u64) -> Result<String> {
        let found = self.cursors.iter().find(|(number, _)| *number == cursor);
        found.map(|(_, key)| key.clone()).ok_or_else(|| {
            Error::Store(easycaching::Error::InvalidArgument(format!(
                "list-keys cursor {cursor} is not one this bucket handle gave out, or one of more than \
                 {CURSORS_KEPT} older ones it has forgotten: start the scan again with no cursor"
            )))
        })
    }

    /// A fresh cursor number for the page that starts after `key`.
    fn remember(&mut self, key: String) -> u64 {
        if self.cursors.len() == CURSORS_KEPT {
            self.cursors.pop_front();
        }
        self.last_cursor += 1;
        self.cursors.push_back((self.last_cursor, key));
        self.last_cursor
    }
}

/// `value` as the JSON document it must be, or `invalid-json` naming `key`.
fn json_value(key: &str, value: Vec<u8>) -> Result<Json> {
    let refuse = |reason: String| {
        Error::Store(easycaching::Error::InvalidJson(format!(
            "the value for key {key:?} is not a JSON document ({reason}); values here are \
             JSON documents in UTF-8, as every easycaching value is"
        )))
    };
    let text = String::from_utf8(value).map_err(|error| refuse(format!("not UTF-8: {error}")))?;
    Json::parse(text).map_err(|error| match error {
        easycaching::Error::InvalidJson(reason) => refuse(reason),
        other => Error::Store(other),
    })
}

/// What `batch.get-many` answers: for each key asked, the key and its value, or nothing.
type FoundMany = Vec<Option<(String, Vec<u8>)>>;

/// A stored value as `wasi:keyvalue`'s bytes: its JSON text, exactly as written.
fn value_bytes(value: Json) -> Vec<u8> {
    value.as_str().as_bytes().to_vec()
}

/// What both drafts do alike, on a bucket handle of either.
impl EasyCaching<'_> {
    fn bucket(&self, handle: &Resource<BucketResource>) -> Result<&BucketResource> {
        Ok(self.table.get(handle)?)
    }

    /// `store.open`: the cache called `identifier` (`default` for the empty one). Any grant
    /// opens one that exists; one that does not is created with the create grant and
    /// `no-such-store` without.
    fn open_bucket(&mut self, identifier: String) -> Result<Resource<BucketResource>> {
        let name = if identifier.is_empty() { DEFAULT_BUCKET } else { &identifier };
        let permission = self.ctx.permission(Kind::Cache, name, false)?;
        let handle = self.granted_cache(name, permission)?;
        Ok(self.table.push(BucketResource::new(handle))?)
    }

    fn bucket_get(&self, bucket: &Resource<BucketResource>, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.bucket(bucket)?.cache().get(key)?.map(value_bytes))
    }

    fn bucket_set(&self, bucket: &Resource<BucketResource>, key: &str, value: Vec<u8>) -> Result<()> {
        let cache = self.bucket(bucket)?.writable()?;
        Ok(cache.set(key, json_value(key, value)?)?)
    }

    fn bucket_delete(&self, bucket: &Resource<BucketResource>, key: &str) -> Result<()> {
        self.bucket(bucket)?.writable()?.delete(key)?;
        Ok(())
    }

    fn bucket_exists(&self, bucket: &Resource<BucketResource>, key: &str) -> Result<bool> {
        Ok(self.bucket(bucket)?.cache().contains(key)?)
    }

    /// A page of keys in key order, after the key `after`; its `next` is the key to go on after.
    fn bucket_keys(&self, bucket: &Resource<BucketResource>, after: Option<&str>) -> Result<Page<String>> {
        Ok(self.bucket(bucket)?.cache().keys(after, LIST_KEYS_PAGE)?)
    }

    fn bucket_get_many(&self, bucket: &Resource<BucketResource>, keys: Vec<String>) -> Result<FoundMany> {
        let asked: Vec<&str> = keys.iter().map(String::as_str).collect();
        let values = self.bucket(bucket)?.cache().get_many(&asked)?;
        let found = keys.into_iter().zip(values);
        Ok(found.map(|(key, value)| value.map(|value| (key, value_bytes(value)))).collect())
    }

    /// Every value is checked before any is stored, and all go in one durable write.
    fn bucket_set_many(
        &self,
        bucket: &Resource<BucketResource>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Result<()> {
        let cache = self.bucket(bucket)?.writable()?;
        let entries = key_values
            .into_iter()
            .map(|(key, value)| {
                let value = json_value(&key, value)?;
                Ok((key, value))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(cache.set_many(entries)?)
    }

    fn bucket_delete_many(&self, bucket: &Resource<BucketResource>, keys: Vec<String>) -> Result<()> {
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        self.bucket(bucket)?.writable()?.delete_many(&keys)?;
        Ok(())
    }
}

/// Adds `wasi:keyvalue` (`store`, `atomics`, `batch`), both `0.2.0-draft` and `0.2.0-draft2`,
/// over the caches to `linker`, as [`add_to_linker`](crate::add_to_linker) adds the
/// easycaching interfaces, with the same `view`: the same grants, limits and open-handle count.
/// [`Runtime`](crate::Runtime) (so `easycaching run`) and `easycaching serve` link them all, so
/// a plugin may import either draft, or both, beside the easycaching interfaces. An embedder
/// that links another `wasi:keyvalue` (wasmtime's `wasmtime-wasi-keyvalue`) calls only
/// [`add_to_linker`](crate::add_to_linker).
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> EasyCaching<'_>,
) -> wasmtime::Result<()> {
    use crate::keyvalue_bindings::wasi::keyvalue0_2_0_draft as draft;
    use crate::keyvalue_draft2_bindings::wasi::keyvalue0_2_0_draft2 as draft2;
    draft::store::add_to_linker::<_, HasEasyCaching>(linker, view)?;
    draft::atomics::add_to_linker::<_, HasEasyCaching>(linker, view)?;
    draft::batch::add_to_linker::<_, HasEasyCaching>(linker, view)?;
    draft2::store::add_to_linker::<_, HasEasyCaching>(linker, view)?;
    draft2::atomics::add_to_linker::<_, HasEasyCaching>(linker, view)?;
    draft2::batch::add_to_linker::<_, HasEasyCaching>(linker, view)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyvalue_bindings::wasi::keyvalue0_2_0_draft::store::Error as KeyValueError;

    #[test]
    fn a_value_must_be_one_json_document_in_utf8_and_its_key_is_named() {
        assert_eq!(json_value("k", br#"{"a": 1}"#.to_vec()).unwrap().as_str(), r#"{"a": 1}"#);
        for bad in [&b"\xff\xfe"[..], b"", b"nope", b"1 2", b"\"\xc3\""] {
            let error = json_value("the key", bad.to_vec()).unwrap_err();
            let message = error.to_string();
            assert!(message.contains("the value for key \"the key\" is not a JSON document"), "{message}");
            assert!(matches!(error.into_keyvalue(), Some(KeyValueError::Other(_))));
        }
    }

    #[test]
    fn a_handle_keeps_its_latest_cursors_and_refuses_any_other() {
        let dir = tempfile::tempdir().unwrap();
        let manager = easycaching::CacheManager::open(dir.path().join("kv.db")).unwrap();
        let cache = manager.create_cache("kv").unwrap();
        let mut bucket = BucketResource::new(CacheResource { cache, writable: true });
        let numbers: Vec<u64> = (0..CURSORS_KEPT + 1).map(|n| bucket.remember(format!("key-{n}"))).collect();
        assert_eq!(numbers, (1..=CURSORS_KEPT as u64 + 1).collect::<Vec<_>>());
        assert_eq!(bucket.resume_after(2).unwrap(), "key-1");
        assert_eq!(bucket.resume_after(CURSORS_KEPT as u64 + 1).unwrap(), format!("key-{CURSORS_KEPT}"));
        for forgotten_or_never_given in [0, 1, CURSORS_KEPT as u64 + 2, u64::MAX] {
            let error = bucket.resume_after(forgotten_or_never_given).unwrap_err();
            assert!(matches!(error.into_keyvalue(), Some(KeyValueError::Other(_))));
        }
    }
}
