//! `wasi:io/poll`'s `poll` and `pollable.block`, registered over wasmtime-wasi's, so that a
//! plugin waiting in them (asleep, say: a sleep is a clock's pollable, blocked on) is stopped
//! at its time limit.
//!
//! A time limit is an epoch deadline, which only wasm code checks: a plugin blocked in a host
//! call is out of its reach, and a plugin asleep for a minute under a 1 s limit ran the minute.
//! These two are where a plugin waits for time, a timer, or any stream: they wait here until
//! the deadline at most, and then trap as the epoch deadline does ([`Trap::Interrupt`]), so the
//! failure reads as the time limit it is.

use std::time::Instant;

use wasmtime::Trap;
use wasmtime::component::{Linker, Resource, ResourceTable};
use wasmtime_wasi::runtime::in_tokio;
use wasmtime_wasi_io::bindings::wasi::io::poll::{Host as _, HostPollable as _};
use wasmtime_wasi_io::poll::DynPollable;

/// The `wasi:io` interface, in the version wasmtime-wasi provides.
const POLL: &str = "wasi:io/poll@0.2.12";

/// What the waits need from a store's data: the resource table holding the pollables, and
/// when the plugin's time runs out (`None`: never).
pub type WaitsView<T> = fn(&mut T) -> (&mut ResourceTable, Option<Instant>);

/// Registers `poll` and `pollable.block` over wasmtime-wasi's. Call after
/// `wasmtime_wasi::p2::add_to_linker_sync`; `view` picks the table and deadline out of the
/// store's data.
pub fn add_to_linker<T: Send + 'static>(linker: &mut Linker<T>, view: WaitsView<T>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let added = linker.instance(POLL).and_then(|mut poll| {
        poll.func_wrap("poll", move |mut store, (pollables,): (Vec<Resource<DynPollable>>,)| {
            let (table, deadline) = view(store.data_mut());
            Ok((until(deadline, table.poll(pollables))?,))
        })?;
        poll.func_wrap("[method]pollable.block", move |mut store, (pollable,): (Resource<DynPollable>,)| {
            let (table, deadline) = view(store.data_mut());
            until(deadline, table.block(pollable))
        })
    });
    linker.allow_shadowing(false);
    added
}

/// Waits for `wait`, up to `deadline`; past it, traps as the epoch deadline would.
fn until<R>(
    deadline: Option<Instant>,
    wait: impl Future<Output = wasmtime::Result<R>>,
) -> wasmtime::Result<R> {
    in_tokio(async {
        match deadline {
            None => wait.await,
            Some(deadline) => match tokio::time::timeout_at(deadline.into(), wait).await {
                Ok(done) => done,
                Err(_) => Err(Trap::Interrupt.into()),
            },
        }
    })
}
