//! `wasi:keyvalue@0.2.0-draft2` (the `keyvalue-draft2-imports` world) on the operations both
//! drafts share: what is its own is a `list-keys` cursor that is the key itself, an
//! `increment` over `s64`, and compare-and-swap through a `cas` resource.

use easycaching::{Cache, Json};
use wasmtime::component::Resource;

use super::{BucketResource, FoundMany, json_value, value_bytes};
use crate::ctx::EasyCaching;
use crate::keyvalue_bindings::wasi::keyvalue0_2_0_draft::store::Error as DraftError;
use crate::keyvalue_draft2_bindings::wasi::keyvalue0_2_0_draft2::atomics::CasError;
use crate::keyvalue_draft2_bindings::wasi::keyvalue0_2_0_draft2::store::{
    Error as KeyValueError, KeyResponse,
};
use crate::keyvalue_draft2_bindings::wasi::keyvalue0_2_0_draft2::{atomics, batch, store};
use crate::{Error, Result};

/// A compare-and-swap a guest holds (`atomics.cas`): the key, on a writable handle of its
/// bucket's cache, and the value it held when the `cas` was made (`None`: absent), which a
/// `swap` expects to find still.
pub struct CasResource {
    cache: Cache,
    key: String,
    current: Option<Json>,
}

impl CasResource {
    /// A `cas` for `key` of `cache`, holding the value the key holds now.
    fn read(cache: Cache, key: String) -> Result<CasResource> {
        let current = cache.get(&key)?;
        Ok(CasResource { cache, key, current })
    }
}

/// `error` as this draft's `error` (the same three cases as `0.2.0-draft`'s), or, for an error
/// that ends the plugin (a trap) rather than returning to it, that error.
fn keyvalue_error(error: Error) -> std::result::Result<KeyValueError, wasmtime::Error> {
    let message = error.to_string();
    Ok(match error.into_keyvalue().ok_or_else(|| wasmtime::Error::msg(message))? {
        DraftError::NoSuchStore => KeyValueError::NoSuchStore,
        DraftError::AccessDenied => KeyValueError::AccessDenied,
        DraftError::Other(message) => KeyValueError::Other(message),
    })
}

impl store::Host for EasyCaching<'_> {
    fn open(&mut self, identifier: String) -> Result<Resource<BucketResource>> {
        self.open_bucket(identifier)
    }

    fn convert_error(&mut self, error: Error) -> wasmtime::Result<KeyValueError> {
        keyvalue_error(error)
    }
}

impl store::HostBucket for EasyCaching<'_> {
    fn get(&mut self, bucket: Resource<BucketResource>, key: String) -> Result<Option<Vec<u8>>> {
        self.bucket_get(&bucket, &key)
    }

    fn set(&mut self, bucket: Resource<BucketResource>, key: String, value: Vec<u8>) -> Result<()> {
        self.bucket_set(&bucket, &key, value)
    }

    fn delete(&mut self, bucket: Resource<BucketResource>, key: String) -> Result<()> {
        self.bucket_delete(&bucket, &key)
    }

    fn exists(&mut self, bucket: Resource<BucketResource>, key: String) -> Result<bool> {
        self.bucket_exists(&bucket, &key)
    }

    /// The cursor is the last key of the page: the next page starts after it. Any key is a
    /// good cursor, on any handle of the bucket, and none expires.
    fn list_keys(&mut self, bucket: Resource<BucketResource>, cursor: Option<String>) -> Result<KeyResponse> {
        let page = self.bucket_keys(&bucket, cursor.as_deref())?;
        Ok(KeyResponse { keys: page.items, cursor: page.next })
    }

    fn drop(&mut self, bucket: Resource<BucketResource>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for EasyCaching<'_> {
    /// easycaching's `increment` itself: one durable write that loses no count to other
    /// writers; a sum past the signed 64-bit range is refused and nothing is stored.
    fn increment(&mut self, bucket: Resource<BucketResource>, key: String, delta: i64) -> Result<i64> {
        Ok(self.bucket(&bucket)?.writable()?.increment(&key, delta)?)
    }

    /// Stores `value` if the key still holds what the `cas` read (as JSON), in one durable
    /// write; otherwise answers `cas-failed` with a new `cas` holding what the key holds now.
    fn swap(
        &mut self,
        cas: Resource<CasResource>,
        value: Vec<u8>,
    ) -> wasmtime::Result<std::result::Result<(), CasError>> {
        let CasResource { cache, key, current } = self.table.delete(cas)?;
        let swapped = json_value(&key, value)
            .and_then(|value| Ok(cache.compare_and_swap(&key, current.as_ref(), Some(value))?));
        let failed = match swapped {
            Ok(true) => return Ok(Ok(())),
            // The new `cas` counts against the plugin's handles as any other.
            Ok(false) => CasResource::read(cache, key).and_then(|fresh| Ok(self.table.push(fresh)?)),
            Err(error) => Err(error),
        };
        Ok(Err(match failed {
            Ok(fresh) => CasError::CasFailed(fresh),
            Err(error) => CasError::StoreError(keyvalue_error(error)?),
        }))
    }
}

impl atomics::HostCas for EasyCaching<'_> {
    /// Reads the key's value now. A `cas` is for writing: it needs a writable grant.
    fn new(&mut self, bucket: Resource<BucketResource>, key: String) -> Result<Resource<CasResource>> {
        let cache = self.bucket(&bucket)?.writable()?.clone();
        let cas = CasResource::read(cache, key)?;
        Ok(self.table.push(cas)?)
    }

    fn current(&mut self, cas: Resource<CasResource>) -> Result<Option<Vec<u8>>> {
        Ok(self.table.get(&cas)?.current.clone().map(value_bytes))
    }

    fn drop(&mut self, cas: Resource<CasResource>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

impl batch::Host for EasyCaching<'_> {
    fn get_many(&mut self, bucket: Resource<BucketResource>, keys: Vec<String>) -> Result<FoundMany> {
        self.bucket_get_many(&bucket, keys)
    }

    fn set_many(
        &mut self,
        bucket: Resource<BucketResource>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Result<()> {
        self.bucket_set_many(&bucket, key_values)
    }

    fn delete_many(&mut self, bucket: Resource<BucketResource>, keys: Vec<String>) -> Result<()> {
        self.bucket_delete_many(&bucket, keys)
    }
}
