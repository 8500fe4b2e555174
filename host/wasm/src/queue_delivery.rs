//! The queue's `get`, `get-many`, `get-wait` and `get-many-wait`, registered over the ones
//! `bindgen!` generates, so that an item taken is never lost on its way into the guest (and
//! the waits stop at the plugin's deadline); and `lease-wait` and `lease-many-wait`, so that
//! they can stop there too.
//!
//! Taking an item is a durable write that commits before the host function returns; wasmtime
//! then copies the result into guest memory, calling the guest's allocator. That copy can fail
//! (the guest is at its memory limit, its allocator traps, its time runs out), and the guest
//! traps without ever seeing the items. Registered by hand, the result is wrapped in
//! [`Delivery`], whose lowering puts the items back at the front of the queue
//! ([`Queue::give_back`]) when the copy fails, so the next `get` hands them out again.
//!
//! A guest that received its items and trapped later has them: they were handed out, once.
//! And a host process killed between the take and the copy (or a give-back that fails, logged
//! as an error) loses them: delivery is at most once, as the WIT says.
//!
//! Like `fast_get`, the signatures are checked against the component's imports when it is
//! linked, so a change to the WIT that this does not follow fails every instantiation.
//!
//! This implements wasmtime's `ComponentType` and `Lower` by forwarding to the wrapped
//! result's own implementations, through items wasmtime hides from its docs (those its derive
//! macros use). They may change with wasmtime's major version, which the workspace pins.

use std::mem::MaybeUninit;
use std::sync::Arc;

use easycaching::{Json, Queue};
use wasmtime::Trap;
use wasmtime::component::__internal::{CanonicalAbiInfo, InstanceType, InterfaceType, LowerContext};
use wasmtime::component::{ComponentType, Linker, Lower, Resource};

use crate::bindings::easycaching::cache::{queues, types};
use crate::ctx::{EasyCaching, QueueResource};

/// The interface instance the queue lives in, as components import it.
const QUEUES: &str = "easycaching:cache/queues@0.1.0";
/// The component-model names of the `get` and `get-many` methods of resource `queue`.
const GET: &str = "[method]queue.get";
const GET_MANY: &str = "[method]queue.get-many";
/// And of the waits, which also stop at the plugin's deadline.
const GET_WAIT: &str = "[method]queue.get-wait";
const GET_MANY_WAIT: &str = "[method]queue.get-many-wait";
const LEASE_WAIT: &str = "[method]queue.lease-wait";
const LEASE_MANY_WAIT: &str = "[method]queue.lease-many-wait";

/// A result about to be copied into the guest, and the items taken to make it, which go back
/// to the front of their queue should the copy fail.
pub(crate) struct Delivery<R> {
    result: R,
    taken: Option<(Queue, Vec<Json>)>,
}

impl<R> Delivery<R> {
    /// Gives the items back to their queue: the guest never got them.
    fn undelivered(&self) {
        let Some((queue, items)) = &self.taken else { return };
        if let Err(error) = queue.give_back(items.clone()) {
            tracing::error!(
                queue = queue.name(),
                items = items.len(),
                %error,
                "items taken for a plugin that could not receive them could not be put back",
            );
        }
    }

    /// Runs the copy into the guest; should it fail, gives the items back.
    fn copied(&self, copy: wasmtime::Result<()>) -> wasmtime::Result<()> {
        if copy.is_err() {
            self.undelivered();
        }
        copy
    }
}

// SAFETY: every item forwards to `R`'s implementation, which describes and lowers exactly the
// value this wraps.
unsafe impl<R: ComponentType> ComponentType for Delivery<R> {
    type Lower = R::Lower;
    const ABI: CanonicalAbiInfo = R::ABI;
    const MAY_REQUIRE_REALLOC: bool = R::MAY_REQUIRE_REALLOC;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        R::typecheck(ty, types)
    }
}

// SAFETY: as above; lowering is `R`'s, followed only by giving the items back on failure.
unsafe impl<R: Lower> Lower for Delivery<R> {
    fn linear_lower_to_flat<T>(
        &self,
        cx: &mut LowerContext<'_, T>,
        ty: InterfaceType,
        dst: &mut MaybeUninit<Self::Lower>,
    ) -> wasmtime::Result<()> {
        self.copied(self.result.linear_lower_to_flat(cx, ty, dst))
    }

    fn linear_lower_to_memory<T>(
        &self,
        cx: &mut LowerContext<'_, T>,
        ty: InterfaceType,
        offset: usize,
    ) -> wasmtime::Result<()> {
        self.copied(self.result.linear_lower_to_memory(cx, ty, offset))
    }
}

type Answer<T> = Result<T, types::Error>;

/// Registers the queue's `get`, `get-many`, `get-wait`, `get-many-wait`, `lease-wait` and
/// `lease-many-wait` over the generated ones. Call after `queues::add_to_linker`, with shadowing allowed.
///
/// A wait that ends empty-handed at the plugin's deadline traps as the epoch deadline does
/// ([`Trap::Interrupt`]), so that it reads as the time limit it is (see `bounded_waits`).
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> EasyCaching<'_>,
) -> wasmtime::Result<()> {
    linker.instance(QUEUES).and_then(|mut queues| {
        queues.func_wrap(GET, move |mut store, (handle,): (Resource<QueueResource>,)| {
            let mut host = view(store.data_mut());
            Ok((take(&mut host, &handle, |queue| queue.get_many(1), |mut items| items.pop())?,))
        })?;
        queues.func_wrap(GET_MANY, move |mut store, (handle, max): (Resource<QueueResource>, u32)| {
            let mut host = view(store.data_mut());
            Ok((take(&mut host, &handle, |queue| queue.get_many(max as usize), |items| items)?,))
        })?;
        queues.func_wrap(
            GET_WAIT,
            move |mut store, (handle, timeout_ms): (Resource<QueueResource>, u64)| {
                let mut host = view(store.data_mut());
                Ok((take_waiting(&mut host, &handle, 1, timeout_ms, |mut items| items.pop())?,))
            },
        )?;
        queues.func_wrap(
            GET_MANY_WAIT,
            move |mut store, (handle, max, timeout_ms): (Resource<QueueResource>, u32, u64)| {
                let mut host = view(store.data_mut());
                Ok((take_waiting(&mut host, &handle, max, timeout_ms, |items| items)?,))
            },
        )?;
        queues.func_wrap(
            LEASE_WAIT,
            move |mut store, (handle, lease_ms, timeout_ms): (Resource<QueueResource>, u64, u64)| {
                let mut host = view(store.data_mut());
                let leased = queues::HostQueue::lease_wait(&mut host, handle, lease_ms, timeout_ms);
                Ok((waited(&mut host, leased, Option::is_none)?,))
            },
        )?;
        queues.func_wrap(
            LEASE_MANY_WAIT,
            move |mut store,
                  (handle, lease_ms, max, timeout_ms): (Resource<QueueResource>, u64, u32, u64)| {
                let mut host = view(store.data_mut());
                let leased = queues::HostQueue::lease_many_wait(&mut host, handle, lease_ms, max, timeout_ms);
                Ok((waited(&mut host, leased, |items| items.is_empty() && max > 0)?,))
            },
        )
    })
}

/// Takes up to `max` items as `get-many-wait` does, waiting up to `timeout_ms` (and no longer
/// than the plugin's time), shaped by `shape` as [`take`] shapes them; traps as at the time
/// limit when the wait ended empty-handed there.
fn take_waiting<V>(
    host: &mut EasyCaching<'_>,
    handle: &Resource<QueueResource>,
    max: u32,
    timeout_ms: u64,
    shape: impl FnOnce(Vec<Arc<str>>) -> V,
) -> wasmtime::Result<Delivery<Answer<V>>> {
    let timeout = host.wait_for_at_most(timeout_ms);
    let taken = take(host, handle, |queue| queue.get_many_wait(max as usize, timeout), shape)?;
    stopped_at_deadline(host, taken.result.is_ok() && taken.taken.is_none() && max > 0)?;
    Ok(taken)
}

/// Answers what a lease that waited came to: its error as the WIT error (a host bug as a
/// trap), and a trap as at the time limit when it came back `empty` because the plugin's time
/// ran out.
fn waited<T>(
    host: &mut EasyCaching<'_>,
    answer: crate::Result<T>,
    empty: impl FnOnce(&T) -> bool,
) -> wasmtime::Result<Answer<T>> {
    let answer = match answer {
        Ok(value) => Ok(value),
        Err(error) => Err(types::Host::convert_error(host, error)?),
    };
    stopped_at_deadline(host, answer.as_ref().is_ok_and(empty))?;
    Ok(answer)
}

/// Traps as at the time limit when a wait came back `empty` because the plugin's time ran out.
fn stopped_at_deadline(host: &EasyCaching<'_>, empty: bool) -> wasmtime::Result<()> {
    if empty && host.past_deadline() {
        return Err(Trap::Interrupt.into());
    }
    Ok(())
}

/// Takes items from the queue behind `handle` with `taking` and answers them, shaped by `shape`
/// (one or a list), wrapped so that they go back should they not reach the guest; or answers
/// the error. As the generated glue does, a guest mistake becomes a WIT error, a host bug a
/// trap.
fn take<V>(
    host: &mut EasyCaching<'_>,
    handle: &Resource<QueueResource>,
    taking: impl FnOnce(&Queue) -> easycaching::Result<Vec<Json>>,
    shape: impl FnOnce(Vec<Arc<str>>) -> V,
) -> wasmtime::Result<Delivery<Answer<V>>> {
    let taken = host.writable_queue(handle).and_then(|queue| Ok((queue.clone(), taking(queue)?)));
    Ok(match taken {
        Ok((queue, items)) => {
            let values = items.iter().map(|item| Arc::<str>::from(item.clone())).collect();
            let taken = (!items.is_empty()).then_some((queue, items));
            Delivery { result: Ok(shape(values)), taken }
        }
        Err(error) => Delivery { result: Err(types::Host::convert_error(host, error)?), taken: None },
    })
}
