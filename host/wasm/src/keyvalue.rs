//! `wasi:keyvalue@0.2.0-draft` over the caches, implemented on [`EasyCaching`]: the standard
//! interfaces that components written for wasmtime's `wasmtime-wasi-keyvalue` (48.x)
//! import, sharing their data with easycaching plugins and the `easycaching cache` commands.
//!
//! A bucket is the cache of the same name, opened under the plugin's grants exactly as
//! `manager.open-cache` and `manager.create-cache` open it, and every call checks the handle's
//! rights as the `caches` interface does. Values are bytes there and JSON documents here: a
//! value that is not one UTF-8 JSON document is refused, naming its key, and nothing is stored.
//! The world's documentation in `wit/worlds.wit` (`keyvalue-imports`) is the contract.

use std::collections::VecDeque;

use easycaching::{Cache, Json, MAX_PAGE_ITEMS};
use wasmtime::component::{Linker, Resource};

use crate::ctx::{CacheResource, EasyCaching, HasEasyCaching};
use crate::grants::Kind;
use crate::interfaces::denied_write;
use crate::keyvalue_bindings::wasi::keyvalue::store::{Error as KeyValueError, KeyResponse};
use crate::keyvalue_bindings::wasi::keyvalue::{atomics, batch, store};
use crate::{Error, Result};

/// Keys one `list-keys` page holds at most: as many as a page of `caches.keys`.
pub(crate) const LIST_KEYS_PAGE: usize = MAX_PAGE_ITEMS;

/// The cache `store.open("")` opens. wasmtime's own `wasi:keyvalue` has one store, which
/// components open with the empty identifier, and Spin names its store `default`: so a
/// component written for either runs here, granted `--allow cache:default=rwc`.
pub const DEFAULT_BUCKET: &str = "default";

/// The `list-keys` cursors one bucket handle remembers; an older one is forgotten.
pub(crate) const CURSORS_KEPT: usize = 16;

/// A `wasi:keyvalue` bucket a guest holds: a cache handle, with its grant's rights, and the
/// `list-keys` cursors handed out on it.
///
/// The interface's cursor is a number, ours the key a page ended on: each page that has a
/// next one remembers that key under a fresh number, for this handle only. The numbers count
/// up from 1 and are never reused, so a cursor from another handle or a forgotten one is
/// refused, never taken for another scan's place.
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

impl EasyCaching<'_> {
    fn bucket(&self, handle: &Resource<BucketResource>) -> Result<&BucketResource> {
        Ok(self.table.get(handle)?)
    }

    /// The cache called `name`, as `store.open` opens it: any grant opens one that exists;
    /// one that does not is created with the create grant and `no-such-store` without.
    fn open_bucket(&self, name: &str) -> Result<CacheResource> {
        let permission = self.ctx.permission(Kind::Cache, name, false)?;
        self.granted_cache(name, permission)
    }
}

impl store::Host for EasyCaching<'_> {
    fn open(&mut self, identifier: String) -> Result<Resource<BucketResource>> {
        let name = if identifier.is_empty() { DEFAULT_BUCKET } else { &identifier };
        let handle = self.open_bucket(name)?;
        Ok(self.table.push(BucketResource::new(handle))?)
    }

    fn convert_error(&mut self, error: Error) -> wasmtime::Result<KeyValueError> {
        let message = error.to_string();
        error.into_keyvalue().ok_or_else(|| wasmtime::Error::msg(message))
    }
}

impl store::HostBucket for EasyCaching<'_> {
    fn get(&mut self, bucket: Resource<BucketResource>, key: String) -> Result<Option<Vec<u8>>> {
        let value = self.bucket(&bucket)?.cache().get(&key)?;
        Ok(value.map(|value| value.as_str().as_bytes().to_vec()))
    }

    fn set(&mut self, bucket: Resource<BucketResource>, key: String, value: Vec<u8>) -> Result<()> {
        let cache = self.bucket(&bucket)?.writable()?;
        Ok(cache.set(&key, json_value(&key, value)?)?)
    }

    fn delete(&mut self, bucket: Resource<BucketResource>, key: String) -> Result<()> {
        self.bucket(&bucket)?.writable()?.delete(&key)?;
        Ok(())
    }

    fn exists(&mut self, bucket: Resource<BucketResource>, key: String) -> Result<bool> {
        Ok(self.bucket(&bucket)?.cache().contains(&key)?)
    }

    fn list_keys(&mut self, handle: Resource<BucketResource>, cursor: Option<u64>) -> Result<KeyResponse> {
        let bucket = self.bucket(&handle)?;
        let after = cursor.map(|cursor| bucket.resume_after(cursor)).transpose()?;
        let page = bucket.cache().keys(after.as_deref(), LIST_KEYS_PAGE)?;
        let cursor = match page.next {
            Some(next) => Some(self.table.get_mut(&handle)?.remember(next)),
            None => None,
        };
        Ok(KeyResponse { keys: page.items, cursor })
    }

    fn drop(&mut self, bucket: Resource<BucketResource>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for EasyCaching<'_> {
    /// easycaching's `increment`, one durable write that loses no count to other writers, in
    /// the range both interfaces' counters share: 0 to 2^63-1.
    fn increment(&mut self, bucket: Resource<BucketResource>, key: String, delta: u64) -> Result<u64> {
        let cache = self.bucket(&bucket)?.writable()?;
        let by = i64::try_from(delta).map_err(|_| {
            Error::Store(easycaching::Error::InvalidArgument(format!(
                "increment of {key:?} by {delta}: the counters here are signed 64-bit integers, \
                 which take a delta of at most {}",
                i64::MAX
            )))
        })?;
        // A negative counter (one easycaching's `increment` or a `set` of "-5" stored) is
        // refused before anything is written: its sum might be no u64. Only a writer storing a
        // negative integer between this read and the increment gets past it.
        if let Some(value) = cache.get(&key)?
            && matches!(value.deserialize::<i64>(), Ok(current) if current < 0)
        {
            let reason = format!(
                "{key:?} holds {}, and a wasi:keyvalue counter cannot be negative; nothing was stored",
                value.as_str()
            );
            return Err(easycaching::Error::WrongType { reason, value }.into());
        }
        let sum = cache.increment(&key, by)?;
        if let Ok(sum) = u64::try_from(sum) {
            return Ok(sum);
        }
        let reason = format!(
            "another writer stored a negative integer under {key:?} meanwhile: the increment by \
             {delta} went in, and the counter now holds {sum}, which a wasi:keyvalue counter cannot"
        );
        Err(easycaching::Error::WrongType { reason, value: Json::from_value(&sum)? }.into())
    }
}

impl batch::Host for EasyCaching<'_> {
    fn get_many(
        &mut self,
        bucket: Resource<BucketResource>,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Vec<u8>)>>> {
        let asked: Vec<&str> = keys.iter().map(String::as_str).collect();
        let values = self.bucket(&bucket)?.cache().get_many(&asked)?;
        let found = keys.into_iter().zip(values);
        Ok(found.map(|(key, value)| value.map(|value| (key, value.as_str().as_bytes().to_vec()))).collect())
    }

    /// Every value is checked before any is stored, and all go in one durable write.
    fn set_many(
        &mut self,
        bucket: Resource<BucketResource>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Result<()> {
        let cache = self.bucket(&bucket)?.writable()?;
        let entries = key_values
            .into_iter()
            .map(|(key, value)| {
                let value = json_value(&key, value)?;
                Ok((key, value))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(cache.set_many(entries)?)
    }

    fn delete_many(&mut self, bucket: Resource<BucketResource>, keys: Vec<String>) -> Result<()> {
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        self.bucket(&bucket)?.writable()?.delete_many(&keys)?;
        Ok(())
    }
}

/// Adds `wasi:keyvalue@0.2.0-draft` (`store`, `atomics`, `batch`) over the caches to `linker`,
/// as [`add_to_linker`](crate::add_to_linker) adds the easycaching interfaces, with the same
/// `view`: the same grants, limits and open-handle count. [`Runtime`](crate::Runtime) (so
/// `easycaching run`) and `easycaching serve` link both, so a plugin may import either or
/// both. An embedder that links another `wasi:keyvalue` (wasmtime's `wasmtime-wasi-keyvalue`)
/// calls only [`add_to_linker`](crate::add_to_linker).
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> EasyCaching<'_>,
) -> wasmtime::Result<()> {
    store::add_to_linker::<_, HasEasyCaching>(linker, view)?;
    atomics::add_to_linker::<_, HasEasyCaching>(linker, view)?;
    batch::add_to_linker::<_, HasEasyCaching>(linker, view)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
