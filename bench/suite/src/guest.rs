//! Hosting the bench guest (`bench/guest`, world `bench:floor/guest`): the easycaching
//! interfaces as `easycaching run` links them, beside the floor calls of `bench:floor/calls`
//! answered from a plain `HashMap`.
//!
//! The engine is the one [`Runtime`] makes (same configuration: epoch interruption for time
//! limits), so a call costs here what it costs a plugin.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use easycaching::CacheManager;
use easycaching_host::{
    CompiledCache, EasyCaching, EasyCachingCtx, Grant, Kind, PluginLimits, Runtime, RuntimeConfig,
};
use wasmtime::Store;
use wasmtime::component::{HasSelf, Linker, Resource, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::fixture::{CACHE, KEY, VALUE};
use crate::wasm_error;

/// Bindings for the host side of the bench world: the floor calls it provides and the runner
/// it calls.
mod bindings {
    wasmtime::component::bindgen!({
        path: ["../../wit", "../wit"],
        world: "bench:floor/runner-host",
        imports: { default: trappable },
        with: { "bench:floor/calls.hash-map": super::FloorMap },
    });
}

use bindings::easycaching::cache::types::Error as FloorError;
use bindings::{RunnerHost, RunnerHostPre};

/// The bench guest component, as `make bench` builds it.
pub fn guest_path() -> PathBuf {
    std::env::var_os("EASYCACHING_BENCH_GUEST").map(PathBuf::from).unwrap_or_else(|| {
        crate::workspace_dir().join("target/wasm32-wasip2/release/easycaching_bench_guest.wasm")
    })
}

/// The store data of a bench guest instance.
pub struct GuestState {
    table: ResourceTable,
    wasi: WasiCtx,
    easycaching: EasyCachingCtx,
    /// What `bench:floor/calls.get` answers from.
    floor: HashMap<String, String>,
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl bindings::bench::floor::calls::Host for GuestState {
    fn empty(&mut self) -> wasmtime::Result<()> {
        Ok(())
    }

    fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.floor.get(&key).cloned())
    }
}

/// What a `bench:floor/calls.hash-map` handle stands for: a plain map.
pub struct FloorMap(HashMap<String, String>);

impl bindings::bench::floor::calls::HostHashMap for GuestState {
    fn new(&mut self) -> wasmtime::Result<Resource<FloorMap>> {
        Ok(self.table.push(FloorMap(floor_map()))?)
    }

    fn get(
        &mut self,
        map: Resource<FloorMap>,
        key: String,
    ) -> wasmtime::Result<Result<Option<String>, FloorError>> {
        Ok(Ok(self.table.get(&map)?.0.get(&key).cloned()))
    }

    fn drop(&mut self, map: Resource<FloorMap>) -> wasmtime::Result<()> {
        self.table.delete(map)?;
        Ok(())
    }
}

/// The map every floor answers from: [`KEY`] and its value.
fn floor_map() -> HashMap<String, String> {
    HashMap::from([(KEY.to_owned(), VALUE.to_owned())])
}

impl bindings::easycaching::cache::types::Host for GuestState {}

/// The bench guest, compiled and linked: instances of it cost microseconds.
pub struct BenchGuest {
    /// Keeps the engine, and its deadline clock, alive.
    runtime: Runtime,
    pre: RunnerHostPre<GuestState>,
}

impl BenchGuest {
    /// Loads the bench guest at `path`, compiling it unless `target/bench/compiled` holds it.
    pub fn load(path: &Path) -> Result<BenchGuest> {
        let compiled = crate::bench_dir().join("compiled");
        let runtime = Runtime::new(RuntimeConfig::default().compiled_cache_dir(&compiled))?;
        let engine = runtime.engine();
        let wasm = std::fs::read(path).with_context(|| {
            format!("cannot read the bench guest {} (make bench builds it)", path.display())
        })?;
        let component = CompiledCache::new(compiled).load(engine, &wasm).map_err(wasm_error)?;
        let mut linker: Linker<GuestState> = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(wasm_error)?;
        easycaching_host::add_to_linker(&mut linker, |state: &mut GuestState| {
            EasyCaching::new(&state.easycaching, &mut state.table)
        })
        .map_err(wasm_error)?;
        RunnerHost::add_to_linker::<_, HasSelf<GuestState>>(&mut linker, |state| state)
            .map_err(wasm_error)?;
        let pre = linker.instantiate_pre(&component).and_then(RunnerHostPre::new).map_err(wasm_error)?;
        Ok(BenchGuest { runtime, pre })
    }

    /// A fresh instance whose easycaching calls go to `manager`, allowed to manage cache
    /// [`CACHE`], and whose floor map holds [`KEY`].
    pub fn instantiate(&self, manager: CacheManager) -> Result<GuestInstance> {
        let easycaching = EasyCachingCtx::builder(manager).grant(Grant::manage(Kind::Cache, CACHE)?).build();
        let floor = floor_map();
        let state = GuestState {
            table: PluginLimits::default().resource_table()?,
            wasi: WasiCtx::builder().build(),
            easycaching,
            floor,
        };
        let mut store = Store::new(self.runtime.engine(), state);
        store.set_epoch_deadline(u64::MAX / 2);
        let runner = self.pre.instantiate(&mut store).map_err(wasm_error)?;
        Ok(GuestInstance { store, runner })
    }
}

/// One instance of the bench guest.
pub struct GuestInstance {
    store: Store<GuestState>,
    runner: RunnerHost,
}

impl GuestInstance {
    /// Sets up for `case` in the guest.
    pub fn prepare(&mut self, case: &str) -> Result<()> {
        self.runner.bench_floor_runner().call_prepare(&mut self.store, case).map_err(wasm_error)
    }

    /// Runs `case` `iterations` times in the guest; how many calls found a value.
    pub fn run(&mut self, case: &str, iterations: u64) -> Result<u64> {
        self.runner.bench_floor_runner().call_run(&mut self.store, case, iterations).map_err(wasm_error)
    }
}
