//! `wasi:keyvalue@0.2.0-draft` (the `keyvalue-imports` world) on the operations both drafts
//! share: what is its own is the numbered `list-keys` cursor, kept per bucket handle, and an
//! `increment` over `u64`.

use easycaching::Json;
use wasmtime::component::Resource;

use super::{BucketResource, FoundMany};
use crate::ctx::EasyCaching;
use crate::keyvalue_bindings::wasi::keyvalue0_2_0_draft::store::{Error as KeyValueError, KeyResponse};
use crate::keyvalue_bindings::wasi::keyvalue0_2_0_draft::{atomics, batch, store};
use crate::{Error, Result};

impl store::Host for EasyCaching<'_> {
    fn open(&mut self, identifier: String) -> Result<Resource<BucketResource>> {
        self.open_bucket(identifier)
    }

    fn convert_error(&mut self, error: Error) -> wasmtime::Result<KeyValueError> {
        let message = error.to_string();
        error.into_keyvalue().ok_or_else(|| wasmtime::Error::msg(message))
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

    fn list_keys(&mut self, handle: Resource<BucketResource>, cursor: Option<u64>) -> Result<KeyResponse> {
        let after = cursor.map(|cursor| self.bucket(&handle)?.resume_after(cursor)).transpose()?;
        let page = self.bucket_keys(&handle, after.as_deref())?;
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
