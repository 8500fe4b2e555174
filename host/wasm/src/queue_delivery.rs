//! The queue's `get` and `get-many`, registered over the ones `bindgen!` generates, so that an
//! item taken is never lost on its way into the guest.
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
use wasmtime::component::__internal::{CanonicalAbiInfo, InstanceType, InterfaceType, LowerContext};
use wasmtime::component::{ComponentType, Linker, Lower, Resource};

use crate::bindings::easycaching::cache::types;
use crate::ctx::{EasyCaching, QueueResource};

/// The interface instance the queue lives in, as components import it.
const QUEUES: &str = "easycaching:cache/queues@0.1.0";
/// The component-model names of the `get` and `get-many` methods of resource `queue`.
const GET: &str = "[method]queue.get";
const GET_MANY: &str = "[method]queue.get-many";

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

/// Registers the queue's `get` and `get-many` over the generated ones. Call after
/// `queues::add_to_linker`, with shadowing allowed.
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> EasyCaching<'_>,
) -> wasmtime::Result<()> {
    linker.instance(QUEUES).and_then(|mut queues| {
        queues.func_wrap(GET, move |mut store, (handle,): (Resource<QueueResource>,)| {
            let mut host = view(store.data_mut());
            Ok((take(&mut host, &handle, 1, |mut items| items.pop())?,))
        })?;
        queues.func_wrap(GET_MANY, move |mut store, (handle, max): (Resource<QueueResource>, u32)| {
            let mut host = view(store.data_mut());
            Ok((take(&mut host, &handle, max as usize, |items| items)?,))
        })
    })
}

/// Takes up to `max` items from the queue behind `handle` and answers them, shaped by `shape`
/// (one or a list), wrapped so that they go back should they not reach the guest; or answers
/// the error. As the generated glue does, a guest mistake becomes a WIT error, a host bug a
/// trap.
fn take<V>(
    host: &mut EasyCaching<'_>,
    handle: &Resource<QueueResource>,
    max: usize,
    shape: impl FnOnce(Vec<Arc<str>>) -> V,
) -> wasmtime::Result<Delivery<Answer<V>>> {
    let taken = host.writable_queue(handle).and_then(|queue| Ok((queue.clone(), queue.get_many(max)?)));
    Ok(match taken {
        Ok((queue, items)) => {
            let values = items.iter().map(|item| Arc::<str>::from(item.clone())).collect();
            let taken = (!items.is_empty()).then_some((queue, items));
            Delivery { result: Ok(shape(values)), taken }
        }
        Err(error) => Delivery { result: Err(types::Host::convert_error(host, error)?), taken: None },
    })
}
