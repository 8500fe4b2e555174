//! The calls of `wasi:io` in which a plugin waits, registered over wasmtime-wasi's so that a
//! plugin waiting in them is stopped at its time limit: `poll` and `pollable.block` (a sleep is
//! a clock's pollable, blocked on), and the blocking stream calls (`blocking-read`,
//! `blocking-skip`, `blocking-write-and-flush`, `blocking-write-zeroes-and-flush`,
//! `blocking-flush`, `blocking-splice`), which wait for a stream to take or give bytes.
//!
//! A time limit is an epoch deadline, which only wasm code checks: a plugin blocked in a host
//! call is out of its reach, and a plugin asleep for a minute under a 1 s limit ran the minute.
//! These calls do what wasmtime-wasi's do (they call them), but wait until the deadline at
//! most, and then trap as the epoch deadline does ([`Trap::Interrupt`]), so the failure reads
//! as the time limit it is.
//!
//! A wait is bounded only where the stream waits in a future. wasmtime-wasi's inherited
//! stdout and stderr (`WasiCtxBuilder::inherit_stdout`) write in the call itself instead, out
//! of reach: give a plugin [`HostOutput`](crate::HostOutput) in their place, as
//! [`Plugin::run`](crate::Plugin::run) and `easycaching serve` do.

use std::time::Instant;

use wasmtime::Trap;
use wasmtime::component::{Linker, Resource, ResourceTable};
use wasmtime_wasi::runtime::in_tokio;
use wasmtime_wasi_io::bindings::wasi::io::poll::{Host as _, HostPollable as _};
use wasmtime_wasi_io::bindings::wasi::io::streams::{
    self, Host as _, HostInputStream as _, HostOutputStream as _,
};
use wasmtime_wasi_io::poll::DynPollable;
use wasmtime_wasi_io::streams::{DynInputStream, DynOutputStream, StreamError};

/// The `wasi:io` interfaces, in the version wasmtime-wasi provides.
const POLL: &str = "wasi:io/poll@0.2.12";
const STREAMS: &str = "wasi:io/streams@0.2.12";

/// What the waits need from a store's data: the resource table holding the pollables and
/// streams, and when the plugin's time runs out (`None`: never).
pub type WaitsView<T> = fn(&mut T) -> (&mut ResourceTable, Option<Instant>);

/// An answer of a stream call, as the guest receives it.
type Answer<R> = wasmtime::Result<(Result<R, streams::StreamError>,)>;

/// Registers `poll`, `pollable.block` and the blocking stream calls over wasmtime-wasi's.
/// Call after `wasmtime_wasi::p2::add_to_linker_sync`; `view` picks the table and deadline out
/// of the store's data.
pub fn add_to_linker<T: Send + 'static>(linker: &mut Linker<T>, view: WaitsView<T>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let added = add_poll(linker, view).and_then(|()| add_streams(linker, view));
    linker.allow_shadowing(false);
    added
}

fn add_poll<T: Send + 'static>(linker: &mut Linker<T>, view: WaitsView<T>) -> wasmtime::Result<()> {
    let mut poll = linker.instance(POLL)?;
    poll.func_wrap("poll", move |mut store, (pollables,): (Vec<Resource<DynPollable>>,)| {
        let (table, deadline) = view(store.data_mut());
        Ok((until(deadline, table.poll(pollables))??,))
    })?;
    poll.func_wrap("[method]pollable.block", move |mut store, (pollable,): (Resource<DynPollable>,)| {
        let (table, deadline) = view(store.data_mut());
        until(deadline, table.block(pollable))?
    })
}

fn add_streams<T: Send + 'static>(linker: &mut Linker<T>, view: WaitsView<T>) -> wasmtime::Result<()> {
    let mut streams = linker.instance(STREAMS)?;
    streams.func_wrap(
        "[method]input-stream.blocking-read",
        move |mut store, (stream, len): (Resource<DynInputStream>, u64)| {
            let (table, deadline) = view(store.data_mut());
            let read = until(deadline, table.blocking_read(stream, len))?;
            answer(table, read)
        },
    )?;
    streams.func_wrap(
        "[method]input-stream.blocking-skip",
        move |mut store, (stream, len): (Resource<DynInputStream>, u64)| {
            let (table, deadline) = view(store.data_mut());
            let skipped = until(deadline, table.blocking_skip(stream, len))?;
            answer(table, skipped)
        },
    )?;
    streams.func_wrap(
        "[method]output-stream.blocking-write-and-flush",
        move |mut store, (stream, bytes): (Resource<DynOutputStream>, Vec<u8>)| {
            let (table, deadline) = view(store.data_mut());
            let wrote = until(deadline, table.blocking_write_and_flush(stream, bytes))?;
            answer(table, wrote)
        },
    )?;
    streams.func_wrap(
        "[method]output-stream.blocking-write-zeroes-and-flush",
        move |mut store, (stream, len): (Resource<DynOutputStream>, u64)| {
            let (table, deadline) = view(store.data_mut());
            let wrote = until(deadline, table.blocking_write_zeroes_and_flush(stream, len))?;
            answer(table, wrote)
        },
    )?;
    streams.func_wrap(
        "[method]output-stream.blocking-flush",
        move |mut store, (stream,): (Resource<DynOutputStream>,)| {
            let (table, deadline) = view(store.data_mut());
            let flushed = until(deadline, table.blocking_flush(stream))?;
            answer(table, flushed)
        },
    )?;
    streams.func_wrap(
        "[method]output-stream.blocking-splice",
        move |mut store, (to, from, len): (Resource<DynOutputStream>, Resource<DynInputStream>, u64)| {
            let (table, deadline) = view(store.data_mut());
            let spliced = until(deadline, table.blocking_splice(to, from, len))?;
            answer(table, spliced)
        },
    )
}

/// A stream call's result as the guest gets it, as wasmtime-wasi's glue makes it: a stream
/// error becomes the WIT `stream-error` (the error itself put in the table), a trap traps.
fn answer<R>(table: &mut ResourceTable, result: Result<R, StreamError>) -> Answer<R> {
    match result {
        Ok(value) => Ok((Ok(value),)),
        Err(StreamError::Trap(trap)) => Err(trap),
        Err(error) => Ok((Err(table.convert_stream_error(error)?),)),
    }
}

/// Waits for `wait`, up to `deadline`; past it, [`Trap::Interrupt`], as the epoch deadline
/// would trap.
fn until<F: Future>(deadline: Option<Instant>, wait: F) -> Result<F::Output, Trap> {
    in_tokio(async {
        match deadline {
            None => Ok(wait.await),
            Some(deadline) => {
                tokio::time::timeout_at(deadline.into(), wait).await.map_err(|_| Trap::Interrupt)
            }
        }
    })
}
