//! The wasmtime side of easycaching: the `easycaching:cache` interfaces for WebAssembly
//! components, with per-plugin grants, and a runner for plugins.
//!
//! It is not on crates.io: depend on it, and on [`easycaching`] for the caches, by path in a
//! checkout, `easycaching-host = { path = "../easycaching/host/wasm" }`.
//!
//! Two ways in:
//!
//! - **Run plugins**: a [`Runtime`] loads a component once; [`Plugin::run`] runs it in a fresh,
//!   sandboxed instance with the grants of an [`EasyCachingCtx`] and the [`PluginLimits`] you set.
//! - **Embed the interfaces** in your own wasmtime host: keep an [`EasyCachingCtx`] and a
//!   `ResourceTable` in your store data and call [`add_to_linker`], in the style of
//!   wasmtime's own `wasi-*` crates.
//!
//! ```no_run
//! use easycaching::CacheManager;
//! use easycaching_host::{EasyCachingCtx, Grant, Kind, Runtime, RuntimeConfig, RunOptions};
//!
//! let manager = CacheManager::open("easycaching.db")?;
//! let runtime = Runtime::new(RuntimeConfig::default())?;
//! let plugin = runtime.load("plugin.wasm")?;
//! let ctx = EasyCachingCtx::builder(manager)
//!     .grant(Grant::manage(Kind::Cache, "test")?)
//!     .grant(Grant::read(Kind::Queue, "jobs")?)
//!     .build();
//! // Its arguments, environment, limits, and whether its output is captured or inherited.
//! let options = RunOptions { args: vec!["ada".into()], ..RunOptions::default() };
//! plugin.run(ctx, &options).result?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Embedding the interfaces next to WASI in a host of your own (with the wasmtime and
//! wasmtime-wasi this crate is built with, 48.0.x), here to run a command component:
//!
//! ```no_run
//! use easycaching::CacheManager;
//! use easycaching_host::{EasyCaching, EasyCachingCtx, Grants, PluginLimits};
//! use wasmtime::component::{Component, Linker, ResourceTable};
//! use wasmtime::{Engine, Store};
//! use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
//!
//! struct MyState {
//!     table: ResourceTable,
//!     wasi: WasiCtx,
//!     easycaching: EasyCachingCtx,
//! }
//!
//! impl WasiView for MyState {
//!     fn ctx(&mut self) -> WasiCtxView<'_> {
//!         WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
//!     }
//! }
//!
//! # let dir = tempfile::tempdir()?;
//! let engine = Engine::default();
//! let mut linker: Linker<MyState> = Linker::new(&engine);
//! wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
//! easycaching_host::add_to_linker(&mut linker, |state: &mut MyState| {
//!     EasyCaching::new(&state.easycaching, &mut state.table)
//! })?;
//!
//! let manager = CacheManager::open(dir.path().join("app.db"))?;
//! let state = MyState {
//!     // At most 10,000 open handles, WASI's included: a plugin cannot hoard the host's memory.
//!     table: PluginLimits::default().resource_table()?,
//!     wasi: WasiCtx::builder().build(),
//!     easycaching: EasyCachingCtx::builder(manager).grants(Grants::everything()).build(),
//! };
//! let mut store = Store::new(&engine, state);
//! let component = Component::from_file(&engine, "plugin.wasm")?;
//! let command =
//!     wasmtime_wasi::p2::bindings::sync::Command::instantiate(&mut store, &component, &linker)?;
//! command.wasi_cli_run().call_run(&mut store)?.map_err(|()| "the plugin failed")?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`add_keyvalue_to_linker`] adds the standard `wasi:keyvalue` interfaces, `0.2.0-draft` and
//! `0.2.0-draft2`, over the same caches, with the same view: a bucket is the cache of its name,
//! under the same grants (the `easycaching:cache/keyvalue-imports` and `keyvalue-draft2-imports`
//! worlds in `wit/worlds.wit` are the contract).
//! [`Runtime`] links them for every plugin.
//!
//! Grants are checked when a guest opens or creates a cache or queue; from then on the handle
//! is the capability, read-only or read-write. Every guest mistake comes back as a WIT `error`
//! value, never a trap.
//!
//! A time limit by epoch deadline reaches only wasm code: a host with one should also call
//! [`add_bounded_waits_to_linker`] after WASI's, so that a plugin asleep (or waiting in any
//! `wasi:io/poll`, or in a blocking stream call) stops at its deadline too, as [`Plugin::run`]
//! and `easycaching serve` do; hand the deadline to the view with [`EasyCaching::until`], so
//! that a plugin waiting for a queue item (`get-wait`, `lease-wait`) stops there too; and give it the host's stdout and stderr as [`HostOutput`]
//! rather than wasmtime-wasi's `inherit_stdout`, whose writes block in the call itself, where
//! no deadline reaches (a plugin printing to a pipe nobody reads). What the host's streams
//! have not taken yet is written by a thread of the host's, so a host about to exit calls
//! [`HostOutput::finish`] first, or loses it.
#![deny(missing_docs)]

mod bounded_waits;
mod compiled;
mod component;
mod ctx;
mod error;
mod fast_get;
mod grants;
mod guest_log;
mod interfaces;
mod keyvalue;
mod plugin;
mod queue_delivery;
mod stdio;

/// The bindings `wasmtime::component::bindgen!` generates for the `easycaching:cache/imports`
/// world, with the WIT resources mapped onto this crate's types.
mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "easycaching:cache/imports",
        imports: { default: trappable },
        with: {
            "easycaching:cache/caches.cache": crate::ctx::CacheResource,
            "easycaching:cache/queues.queue": crate::ctx::QueueResource,
        },
        trappable_error_type: {
            "easycaching:cache/types.error" => crate::Error,
        },
    });
}

/// The bindings `wasmtime::component::bindgen!` generates for the `wasi:keyvalue@0.2.0-draft`
/// interfaces (the `easycaching:cache/keyvalue-imports` world), their bucket mapped onto a cache.
mod keyvalue_bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "easycaching:cache/keyvalue-imports",
        imports: { default: trappable },
        with: {
            "wasi:keyvalue/store@0.2.0-draft.bucket": crate::keyvalue::BucketResource,
        },
        trappable_error_type: {
            "wasi:keyvalue/store@0.2.0-draft.error" => crate::Error,
        },
    });
}

/// The bindings `wasmtime::component::bindgen!` generates for the `wasi:keyvalue@0.2.0-draft2`
/// interfaces (the `easycaching:cache/keyvalue-draft2-imports` world): its bucket mapped onto
/// the same type as `0.2.0-draft`'s, its compare-and-swap onto [`CasResource`].
mod keyvalue_draft2_bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "easycaching:cache/keyvalue-draft2-imports",
        imports: { default: trappable },
        with: {
            "wasi:keyvalue/store@0.2.0-draft2.bucket": crate::keyvalue::BucketResource,
            "wasi:keyvalue/atomics@0.2.0-draft2.cas": crate::keyvalue::CasResource,
        },
        trappable_error_type: {
            "wasi:keyvalue/store@0.2.0-draft2.error" => crate::Error,
        },
    });
}

pub use bounded_waits::{WaitsView, add_to_linker as add_bounded_waits_to_linker};
pub use compiled::CompiledCache;
pub use component::{PluginKind, compile_component, expect_plugin_kind};
pub use ctx::{
    CacheResource, EasyCaching, EasyCachingCtx, EasyCachingCtxBuilder, QueueResource, add_to_linker,
};
pub use error::{Error, Result};
pub use grants::{Grant, GrantParseError, Grants, Kind, Pattern, Permission};
pub use keyvalue::{BucketResource, CasResource, DEFAULT_BUCKET, add_to_linker as add_keyvalue_to_linker};
pub use plugin::MemoryLimiter;
pub use plugin::{
    DEFAULT_MAX_HANDLES, DEFAULT_MEMORY_BYTES, EPOCH_TICK, MIN_HANDLES, Output, Plugin, PluginLimits,
    PluginState, Run, RunOptions, Runtime, RuntimeConfig,
};
pub use stdio::{HostOutput, OUTPUT_GRACE};
