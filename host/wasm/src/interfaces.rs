//! The easycaching interfaces, implemented on [`EasyCaching`].
//!
//! Every guest mistake (a name outside its grants, a write on a read-only handle, bad JSON, a
//! key too long) comes back as a WIT `error` value. A trap is raised only for a host bug, such
//! as a handle missing from the resource table.

use std::time::Duration;

use easycaching::Json;
use wasmtime::component::{Resource, ResourceTableError};

use crate::bindings::easycaching::cache::types::{Entry, EntryPage, Error as WitError, KeyPage};
use crate::bindings::easycaching::cache::{caches, manager, queues, types};
use crate::ctx::{CacheResource, EasyCaching, QueueResource};
use crate::grants::{Kind, Permission, grant_needed};
use crate::{Error, Result};

impl From<ResourceTableError> for Error {
    fn from(error: ResourceTableError) -> Self {
        match error {
            ResourceTableError::Full => Error::TooManyHandles,
            other => Error::Internal(format!("resource table: {other}")),
        }
    }
}

impl types::Host for EasyCaching<'_> {
    fn convert_error(&mut self, error: Error) -> wasmtime::Result<WitError> {
        let message = error.to_string();
        error.into_wit().ok_or_else(|| wasmtime::Error::msg(message))
    }
}

fn json(text: String) -> Result<Json> {
    Ok(Json::parse(text)?)
}

/// A batch's entries, each value checked as [`json`] checks one.
fn json_entries(entries: Vec<Entry>) -> Result<Vec<(String, Json)>> {
    entries.into_iter().map(|entry| Ok((entry.key, json(entry.value)?))).collect()
}

/// [`json`] for one of several JSON arguments of a call: an error names the argument.
fn json_argument(name: &str, text: String) -> Result<Json> {
    Json::parse(text).map_err(|error| match error {
        easycaching::Error::InvalidJson(reason) => {
            easycaching::Error::InvalidJson(format!("in `{name}`: {reason}")).into()
        }
        other => other.into(),
    })
}

pub(crate) fn denied_write(kind: Kind, name: &str) -> Error {
    let needed = grant_needed(kind, name, "=rw");
    Error::AccessDenied(format!("this plugin may only read {kind} {name:?} ({needed})"))
}

fn denied_create(kind: Kind, name: &str, exists: bool) -> Error {
    let what = if exists { "delete" } else { "create" };
    let needed = grant_needed(kind, name, "=rwc");
    Error::AccessDenied(format!("this plugin may not {what} {kind} {name:?} ({needed})"))
}

impl EasyCaching<'_> {
    /// The cache called `name` under `permission`: created, empty, when it does not exist and
    /// the grant allows creating; otherwise opened, `NoSuchCache` when it does not exist.
    pub(crate) fn granted_cache(&self, name: &str, permission: Permission) -> Result<CacheResource> {
        let manager = self.ctx.manager();
        let cache = match permission.create {
            true => manager.create_cache_within(name, &permission.quota)?,
            false => manager.open_cache(name)?.with_quota(permission.quota),
        };
        Ok(CacheResource { cache, writable: permission.write })
    }

    fn cache(&self, handle: &Resource<CacheResource>) -> Result<&CacheResource> {
        Ok(self.table.get(handle)?)
    }

    /// `get` on a guest's cache handle: the value as the LRU holds it, shared, not copied.
    pub(crate) fn get_json(&self, handle: &Resource<CacheResource>, key: &str) -> Result<Option<Json>> {
        Ok(self.cache(handle)?.cache.get(key)?)
    }

    fn writable_cache(&self, handle: &Resource<CacheResource>) -> Result<&easycaching::Cache> {
        let resource = self.cache(handle)?;
        if !resource.writable {
            return Err(denied_write(Kind::Cache, resource.cache.name()));
        }
        Ok(&resource.cache)
    }

    fn queue(&self, handle: &Resource<QueueResource>) -> Result<&QueueResource> {
        Ok(self.table.get(handle)?)
    }

    pub(crate) fn writable_queue(&self, handle: &Resource<QueueResource>) -> Result<&easycaching::Queue> {
        let resource = self.queue(handle)?;
        if !resource.writable {
            return Err(denied_write(Kind::Queue, resource.queue.name()));
        }
        Ok(&resource.queue)
    }
}

impl manager::Host for EasyCaching<'_> {
    fn create_cache(&mut self, name: String) -> Result<Resource<CacheResource>> {
        let permission = self.ctx.permission(Kind::Cache, &name, true)?;
        let handle = match self.granted_cache(&name, permission) {
            Err(Error::Store(easycaching::Error::NoSuchCache(_))) => {
                return Err(denied_create(Kind::Cache, &name, false));
            }
            granted => granted?,
        };
        Ok(self.table.push(handle)?)
    }

    fn open_cache(&mut self, name: String) -> Result<Resource<CacheResource>> {
        let permission = self.ctx.permission(Kind::Cache, &name, false)?;
        let cache = self.ctx.manager().open_cache(&name)?.with_quota(permission.quota);
        Ok(self.table.push(CacheResource { cache, writable: permission.write })?)
    }

    fn list_caches(&mut self) -> Result<Vec<String>> {
        let grants = self.ctx.grants();
        let caches = self.ctx.manager().list_caches()?;
        Ok(caches
            .into_iter()
            .filter(|cache| grants.permission(Kind::Cache, &cache.name).is_some())
            .map(|cache| cache.name)
            .collect())
    }

    fn delete_cache(&mut self, name: String) -> Result<bool> {
        if !self.ctx.permission(Kind::Cache, &name, true)?.create {
            return Err(denied_create(Kind::Cache, &name, true));
        }
        Ok(self.ctx.manager().delete_cache(&name)?)
    }

    fn create_queue(&mut self, name: String) -> Result<Resource<QueueResource>> {
        let permission = self.ctx.permission(Kind::Queue, &name, true)?;
        let manager = self.ctx.manager();
        let queue = if permission.create {
            manager.create_queue_within(&name, &permission.quota)?
        } else {
            match manager.open_queue(&name) {
                Err(easycaching::Error::NoSuchQueue(_)) => {
                    return Err(denied_create(Kind::Queue, &name, false));
                }
                opened => opened?.with_quota(permission.quota),
            }
        };
        Ok(self.table.push(QueueResource { queue, writable: permission.write })?)
    }

    fn open_queue(&mut self, name: String) -> Result<Resource<QueueResource>> {
        let permission = self.ctx.permission(Kind::Queue, &name, false)?;
        let queue = self.ctx.manager().open_queue(&name)?.with_quota(permission.quota);
        Ok(self.table.push(QueueResource { queue, writable: permission.write })?)
    }

    fn list_queues(&mut self) -> Result<Vec<String>> {
        let grants = self.ctx.grants();
        let queues = self.ctx.manager().list_queues()?;
        Ok(queues
            .into_iter()
            .filter(|queue| grants.permission(Kind::Queue, &queue.name).is_some())
            .map(|queue| queue.name)
            .collect())
    }

    fn delete_queue(&mut self, name: String) -> Result<bool> {
        if !self.ctx.permission(Kind::Queue, &name, true)?.create {
            return Err(denied_create(Kind::Queue, &name, true));
        }
        Ok(self.ctx.manager().delete_queue(&name)?)
    }
}

impl caches::Host for EasyCaching<'_> {}

impl caches::HostCache for EasyCaching<'_> {
    fn name(&mut self, handle: Resource<CacheResource>) -> wasmtime::Result<String> {
        Ok(self.table.get(&handle)?.cache.name().to_owned())
    }

    /// What the generated glue would call; the linker calls [`EasyCaching::get_json`] through
    /// `fast_get` instead, which hands the value over without this copy.
    fn get(&mut self, handle: Resource<CacheResource>, key: String) -> Result<Option<String>> {
        Ok(self.get_json(&handle, &key)?.map(|value| value.as_str().to_owned()))
    }

    fn set(&mut self, handle: Resource<CacheResource>, key: String, value: String) -> Result<()> {
        let cache = self.writable_cache(&handle)?;
        Ok(cache.set(&key, json(value)?)?)
    }

    /// Checked and granted as `set`; the TTL is checked by the cache (`invalid-argument`).
    fn set_with_ttl(
        &mut self,
        handle: Resource<CacheResource>,
        key: String,
        value: String,
        ttl_ms: u64,
    ) -> Result<()> {
        let cache = self.writable_cache(&handle)?;
        Ok(cache.set_with_ttl(&key, json(value)?, Duration::from_millis(ttl_ms))?)
    }

    fn ttl(&mut self, handle: Resource<CacheResource>, key: String) -> Result<Option<u64>> {
        let left = self.cache(&handle)?.cache.ttl(&key)?;
        // Rounded up: an entry that has any time left never says 0.
        Ok(left.map(|left| u64::try_from(left.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)))
    }

    fn expire(&mut self, handle: Resource<CacheResource>, key: String, ttl_ms: Option<u64>) -> Result<bool> {
        let cache = self.writable_cache(&handle)?;
        Ok(cache.expire(&key, ttl_ms.map(Duration::from_millis))?)
    }

    fn increment(&mut self, handle: Resource<CacheResource>, key: String, delta: i64) -> Result<i64> {
        Ok(self.writable_cache(&handle)?.increment(&key, delta)?)
    }

    fn compare_and_swap(
        &mut self,
        handle: Resource<CacheResource>,
        key: String,
        expected: Option<String>,
        value: Option<String>,
    ) -> Result<bool> {
        let cache = self.writable_cache(&handle)?;
        let expected = expected.map(|text| json_argument("expected", text)).transpose()?;
        let value = value.map(|text| json_argument("value", text)).transpose()?;
        Ok(cache.compare_and_swap(&key, expected.as_ref(), value)?)
    }

    fn contains(&mut self, handle: Resource<CacheResource>, key: String) -> Result<bool> {
        Ok(self.cache(&handle)?.cache.contains(&key)?)
    }

    fn delete(&mut self, handle: Resource<CacheResource>, key: String) -> Result<bool> {
        Ok(self.writable_cache(&handle)?.delete(&key)?)
    }

    fn clear(&mut self, handle: Resource<CacheResource>) -> Result<u64> {
        Ok(self.writable_cache(&handle)?.clear()?)
    }

    fn delete_with_prefix(&mut self, handle: Resource<CacheResource>, prefix: String) -> Result<u64> {
        Ok(self.writable_cache(&handle)?.delete_with_prefix(&prefix)?)
    }

    fn len(&mut self, handle: Resource<CacheResource>) -> Result<u64> {
        Ok(self.cache(&handle)?.cache.len()?)
    }

    fn entries(
        &mut self,
        handle: Resource<CacheResource>,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<EntryPage> {
        self.entries_with_prefix(handle, String::new(), cursor, limit)
    }

    fn keys(
        &mut self,
        handle: Resource<CacheResource>,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<KeyPage> {
        self.keys_with_prefix(handle, String::new(), cursor, limit)
    }

    fn entries_with_prefix(
        &mut self,
        handle: Resource<CacheResource>,
        prefix: String,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<EntryPage> {
        let page =
            self.cache(&handle)?.cache.entries_with_prefix(&prefix, cursor.as_deref(), limit as usize)?;
        let entries = page
            .items
            .into_iter()
            .map(|(key, value)| Entry { key, value: value.as_str().to_owned() })
            .collect();
        Ok(EntryPage { entries, next: page.next })
    }

    fn keys_with_prefix(
        &mut self,
        handle: Resource<CacheResource>,
        prefix: String,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<KeyPage> {
        let page = self.cache(&handle)?.cache.keys_with_prefix(&prefix, cursor.as_deref(), limit as usize)?;
        Ok(KeyPage { keys: page.items, next: page.next })
    }

    fn get_many(
        &mut self,
        handle: Resource<CacheResource>,
        keys: Vec<String>,
    ) -> Result<Vec<Option<String>>> {
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let values = self.cache(&handle)?.cache.get_many(&keys)?;
        Ok(values.into_iter().map(|value| value.map(|value| value.as_str().to_owned())).collect())
    }

    fn set_many(&mut self, handle: Resource<CacheResource>, entries: Vec<Entry>) -> Result<()> {
        let cache = self.writable_cache(&handle)?;
        Ok(cache.set_many(json_entries(entries)?)?)
    }

    /// Checked and granted as `set-many`; the TTL as for `set-with-ttl`.
    fn set_many_with_ttl(
        &mut self,
        handle: Resource<CacheResource>,
        entries: Vec<Entry>,
        ttl_ms: u64,
    ) -> Result<()> {
        let cache = self.writable_cache(&handle)?;
        Ok(cache.set_many_with_ttl(json_entries(entries)?, Duration::from_millis(ttl_ms))?)
    }

    fn delete_many(&mut self, handle: Resource<CacheResource>, keys: Vec<String>) -> Result<u64> {
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        Ok(self.writable_cache(&handle)?.delete_many(&keys)?)
    }

    fn drop(&mut self, handle: Resource<CacheResource>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}

impl queues::Host for EasyCaching<'_> {}

impl queues::HostQueue for EasyCaching<'_> {
    fn name(&mut self, handle: Resource<QueueResource>) -> wasmtime::Result<String> {
        Ok(self.table.get(&handle)?.queue.name().to_owned())
    }

    fn put(&mut self, handle: Resource<QueueResource>, value: String) -> Result<()> {
        let queue = self.writable_queue(&handle)?;
        Ok(queue.put(json(value)?)?)
    }

    /// What the generated glue would call; the linker calls `queue_delivery`'s instead, which
    /// puts the item back should it not reach the guest.
    fn get(&mut self, handle: Resource<QueueResource>) -> Result<Option<String>> {
        let value = self.writable_queue(&handle)?.get()?;
        Ok(value.map(|value| value.as_str().to_owned()))
    }

    /// As `get`, replaced by `queue_delivery`'s when linked, which also traps at the deadline.
    fn get_wait(&mut self, handle: Resource<QueueResource>, timeout_ms: u64) -> Result<Option<String>> {
        let timeout = self.wait_for_at_most(timeout_ms);
        let value = self.writable_queue(&handle)?.get_wait(timeout)?;
        Ok(value.map(|value| value.as_str().to_owned()))
    }

    fn peek(&mut self, handle: Resource<QueueResource>) -> Result<Option<String>> {
        let value = self.queue(&handle)?.queue.peek()?;
        Ok(value.map(|value| value.as_str().to_owned()))
    }

    fn len(&mut self, handle: Resource<QueueResource>) -> Result<u64> {
        Ok(self.queue(&handle)?.queue.len()?)
    }

    fn clear(&mut self, handle: Resource<QueueResource>) -> Result<u64> {
        Ok(self.writable_queue(&handle)?.clear()?)
    }

    fn put_many(&mut self, handle: Resource<QueueResource>, values: Vec<String>) -> Result<()> {
        let queue = self.writable_queue(&handle)?;
        let values = values.into_iter().map(json).collect::<Result<Vec<_>>>()?;
        Ok(queue.put_many(values)?)
    }

    /// As `get`, replaced by `queue_delivery`'s when linked.
    fn get_many(&mut self, handle: Resource<QueueResource>, max: u32) -> Result<Vec<String>> {
        let values = self.writable_queue(&handle)?.get_many(max as usize)?;
        Ok(values.into_iter().map(|value| value.as_str().to_owned()).collect())
    }

    fn get_many_wait(
        &mut self,
        handle: Resource<QueueResource>,
        max: u32,
        timeout_ms: u64,
    ) -> Result<Vec<String>> {
        let timeout = self.wait_for_at_most(timeout_ms);
        let values = self.writable_queue(&handle)?.get_many_wait(max as usize, timeout)?;
        Ok(values.into_iter().map(|value| value.as_str().to_owned()).collect())
    }

    /// An item leased that cannot be copied into the guest is not lost: it is handed out again
    /// when its lease ends.
    fn lease(
        &mut self,
        handle: Resource<QueueResource>,
        lease_ms: u64,
    ) -> Result<Option<queues::LeasedItem>> {
        let leased = self.writable_queue(&handle)?.lease(Duration::from_millis(lease_ms))?;
        Ok(leased.map(leased_item))
    }

    /// As `lease`; `queue_delivery` registers it over this to trap at the deadline.
    fn lease_wait(
        &mut self,
        handle: Resource<QueueResource>,
        lease_ms: u64,
        timeout_ms: u64,
    ) -> Result<Option<queues::LeasedItem>> {
        let timeout = self.wait_for_at_most(timeout_ms);
        let leased = self.writable_queue(&handle)?.lease_wait(Duration::from_millis(lease_ms), timeout)?;
        Ok(leased.map(leased_item))
    }

    /// As `lease`: items that cannot be copied into the guest come back when their leases end.
    fn lease_many(
        &mut self,
        handle: Resource<QueueResource>,
        lease_ms: u64,
        max: u32,
    ) -> Result<Vec<queues::LeasedItem>> {
        let leased =
            self.writable_queue(&handle)?.lease_many(Duration::from_millis(lease_ms), max as usize)?;
        Ok(leased.into_iter().map(leased_item).collect())
    }

    fn lease_many_wait(
        &mut self,
        handle: Resource<QueueResource>,
        lease_ms: u64,
        max: u32,
        timeout_ms: u64,
    ) -> Result<Vec<queues::LeasedItem>> {
        let timeout = self.wait_for_at_most(timeout_ms);
        let queue = self.writable_queue(&handle)?;
        let leased = queue.lease_many_wait(Duration::from_millis(lease_ms), max as usize, timeout)?;
        Ok(leased.into_iter().map(leased_item).collect())
    }

    fn ack(&mut self, handle: Resource<QueueResource>, receipt: String) -> Result<bool> {
        let queue = self.writable_queue(&handle)?;
        Ok(queue.ack(&receipt.parse()?)?)
    }

    fn release(&mut self, handle: Resource<QueueResource>, receipt: String) -> Result<bool> {
        let queue = self.writable_queue(&handle)?;
        Ok(queue.release(&receipt.parse()?)?)
    }

    fn extend(&mut self, handle: Resource<QueueResource>, receipt: String, lease_ms: u64) -> Result<bool> {
        let queue = self.writable_queue(&handle)?;
        Ok(queue.extend(&receipt.parse()?, Duration::from_millis(lease_ms))?)
    }

    fn drop(&mut self, handle: Resource<QueueResource>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}

/// A lease as the guest receives it.
fn leased_item(leased: easycaching::Leased) -> queues::LeasedItem {
    queues::LeasedItem {
        value: leased.value.as_str().to_owned(),
        receipt: leased.receipt.to_string(),
        deliveries: leased.deliveries,
    }
}
