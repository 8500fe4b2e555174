//! Running plugins: a [`Runtime`] compiles components once, and a [`Plugin`] runs as many
//! sandboxed instances of one as you like, each with its own grants and limits.
//!
//! A plugin gets WASI with stdio, its arguments, clocks and random numbers, and nothing else:
//! no preopened directories, no network, no inherited environment variables. Its memory, time
//! and open handles are bounded by [`PluginLimits`]; going over ends the run with a clear error
//! while the host and other instances go on.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store, Trap,
    WasmBacktrace,
};
use wasmtime_wasi::p2::bindings::sync::CommandPre;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{I32Exit, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::compiled::CompiledCache;
use crate::component::{self, PluginKind};
use crate::{EasyCaching, EasyCachingCtx, Error, HostOutput, Result};

/// How often a deadline clock ticks (`Engine::increment_epoch`); time limits are kept to
/// within one tick. A host with an engine of its own ticks it at this rate for
/// [`PluginLimits::epoch_deadline`] to mean [`PluginLimits::time`].
pub const EPOCH_TICK: Duration = Duration::from_millis(10);
/// A deadline (in ticks) that never comes: about 1.5 billion years.
const NO_DEADLINE: u64 = 1 << 62;
/// The most output kept from a plugin whose output is captured.
const CAPTURE_BYTES: usize = 64 * 1024 * 1024;

/// Default for [`PluginLimits::memory_bytes`]: 256 MiB per instance, linear memories and
/// tables together.
pub const DEFAULT_MEMORY_BYTES: usize = 256 * 1024 * 1024;
/// Default for [`PluginLimits::max_handles`]: 10,000 open resources (caches, queues, streams).
pub const DEFAULT_MAX_HANDLES: usize = 10_000;
/// The fewest [`PluginLimits::max_handles`] a run may be given. WASI's own resources come out
/// of the same table as the plugin's caches and queues: printing takes 3-4 (a stream and what
/// waits on it), and a plugin left with fewer traps the first time it writes to stdout or
/// stderr, in Rust, Python and JavaScript alike.
pub const MIN_HANDLES: usize = 16;

/// What one run of a plugin may use: its memory, time, fuel and open handles. (How large its
/// keys, values and batches may be is the database's [`easycaching::Limits`].)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginLimits {
    /// Memory: all the instance's linear memories and tables together, a table element
    /// counting 8 bytes (see [`MemoryLimiter`]). Default [`DEFAULT_MEMORY_BYTES`].
    pub memory_bytes: usize,
    /// Wall-clock time for the run; `None` for no limit (the default).
    pub time: Option<Duration>,
    /// Fuel: a deterministic budget of wasm instructions, for runs that must stop at the same
    /// point every time. Needs a runtime made with [`RuntimeConfig::fuel`]; `None` for no
    /// budget (the default).
    pub fuel: Option<u64>,
    /// Open resources at once, WASI's own streams included. Default [`DEFAULT_MAX_HANDLES`];
    /// at least [`MIN_HANDLES`].
    pub max_handles: usize,
}

impl PluginLimits {
    /// The epoch deadline, in ticks of [`EPOCH_TICK`], that stops a run after
    /// [`PluginLimits::time`] (at least one tick); one that never comes when there is no time
    /// limit.
    pub fn epoch_deadline(&self) -> u64 {
        match self.time {
            Some(time) => {
                u64::try_from(time.as_millis() / EPOCH_TICK.as_millis()).unwrap_or(NO_DEADLINE).max(1)
            }
            None => NO_DEADLINE,
        }
    }

    /// When a run starting now must end: now plus [`PluginLimits::time`]; `None` when there
    /// is no time limit (or it ends past what an `Instant` holds). The waits in host calls end
    /// there (see [`add_bounded_waits_to_linker`](crate::add_bounded_waits_to_linker)).
    pub fn deadline(&self) -> Option<Instant> {
        self.time.and_then(|time| Instant::now().checked_add(time))
    }

    /// An empty resource table for one instance, holding at most [`PluginLimits::max_handles`]
    /// resources. [`Error::Misconfigured`] when that is below [`MIN_HANDLES`].
    ///
    /// ```
    /// use easycaching_host::{Error, PluginLimits, MIN_HANDLES};
    ///
    /// assert!(PluginLimits::default().resource_table().is_ok());
    /// let too_few = PluginLimits { max_handles: 2, ..PluginLimits::default() };
    /// assert!(matches!(too_few.resource_table(), Err(Error::Misconfigured(_))));
    /// # let _ = MIN_HANDLES;
    /// ```
    pub fn resource_table(&self) -> Result<ResourceTable> {
        if self.max_handles < MIN_HANDLES {
            return Err(Error::Misconfigured(format!(
                "a limit of {} open handles is too few to start a plugin: WASI's own streams need \
                 some of them; give at least {MIN_HANDLES}",
                self.max_handles
            )));
        }
        let mut table = ResourceTable::new();
        table.set_max_capacity(self.max_handles);
        Ok(table)
    }
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            memory_bytes: DEFAULT_MEMORY_BYTES,
            time: None,
            fuel: None,
            max_handles: DEFAULT_MAX_HANDLES,
        }
    }
}

/// Settings of a [`Runtime`].
#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    compiled_cache: CompiledCacheSetting,
    pooling: Option<usize>,
    fuel: bool,
}

#[derive(Debug, Clone, Default)]
enum CompiledCacheSetting {
    #[default]
    Default,
    Dir(PathBuf),
    Off,
}

impl RuntimeConfig {
    /// Keep compiled components in `dir` instead of the default directory.
    pub fn compiled_cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.compiled_cache = CompiledCacheSetting::Dir(dir.into());
        self
    }

    /// Compile every component afresh and keep nothing on disk.
    pub fn no_compiled_cache(mut self) -> Self {
        self.compiled_cache = CompiledCacheSetting::Off;
        self
    }

    /// Take instances' memories and tables from a pool reserved up front, so instantiating
    /// costs no `mmap` and a finished instance's memory is reset rather than unmapped. Each
    /// memory is at most `max_memory_bytes`, so a run's [`PluginLimits::memory_bytes`] above it is
    /// cut to it.
    pub fn pooling(mut self, max_memory_bytes: usize) -> Self {
        self.pooling = Some(max_memory_bytes);
        self
    }

    /// Count fuel, so that [`PluginLimits::fuel`] can bound runs deterministically. Counting costs
    /// every plugin some speed, so it is off by default.
    pub fn fuel(mut self) -> Self {
        self.fuel = true;
        self
    }
}

/// The pool [`RuntimeConfig::pooling`] reserves: room for many concurrent instances of
/// components made of several core modules (Python and JavaScript guests are).
fn pooling_strategy(max_memory_bytes: usize) -> InstanceAllocationStrategy {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(256)
        .total_core_instances(2048)
        .total_memories(1024)
        .total_tables(2048)
        .max_core_instances_per_component(64)
        .max_memories_per_component(16)
        .max_tables_per_component(64)
        .max_memory_size(max_memory_bytes);
    InstanceAllocationStrategy::Pooling(pool)
}

/// The engine, the linker with WASI, the easycaching interfaces and `wasi:keyvalue`, and the
/// clock that enforces time limits. Make one per process and load every plugin through it.
pub struct Runtime {
    engine: Engine,
    fuel: bool,
    linker: Linker<PluginState>,
    compiled: Option<CompiledCache>,
    stop_ticking: Arc<AtomicBool>,
}

impl Runtime {
    /// A runtime with the given settings.
    pub fn new(config: RuntimeConfig) -> Result<Runtime> {
        let mut wasm = Config::new();
        wasm.epoch_interruption(true).consume_fuel(config.fuel);
        if let Some(max_memory_bytes) = config.pooling {
            wasm.allocation_strategy(pooling_strategy(max_memory_bytes));
        }
        let engine =
            Engine::new(&wasm).map_err(|e| Error::Internal(format!("cannot start wasmtime: {e}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .and_then(|()| {
                crate::bounded_waits::add_to_linker(&mut linker, |state: &mut PluginState| {
                    (&mut state.table, state.deadline)
                })
            })
            .and_then(|()| {
                crate::add_to_linker(&mut linker, |state: &mut PluginState| {
                    EasyCaching::new(&state.easycaching, &mut state.table).until(state.deadline)
                })
            })
            .and_then(|()| {
                crate::add_keyvalue_to_linker(&mut linker, |state: &mut PluginState| {
                    EasyCaching::new(&state.easycaching, &mut state.table)
                })
            })
            .map_err(|e| Error::Internal(format!("cannot link the host interfaces: {e}")))?;
        let compiled = match config.compiled_cache {
            CompiledCacheSetting::Default => CompiledCache::default_dir().map(CompiledCache::new),
            CompiledCacheSetting::Dir(dir) => Some(CompiledCache::new(dir)),
            CompiledCacheSetting::Off => None,
        };
        let stop_ticking = Arc::new(AtomicBool::new(false));
        spawn_epoch_ticker(engine.weak(), stop_ticking.clone());
        Ok(Runtime { engine, fuel: config.fuel, linker, compiled, stop_ticking })
    }

    /// Loads the component at `path`, compiling it unless its compiled form is cached.
    pub fn load(&self, path: impl AsRef<Path>) -> Result<Plugin> {
        let path = path.as_ref();
        let wasm = std::fs::read(path).map_err(|e| Error::Load(format!("{}: {e}", path.display())))?;
        self.load_bytes(&wasm, &path.display().to_string())
    }

    /// Loads a component from its bytes; `name` names it in errors.
    pub fn load_bytes(&self, wasm: &[u8], name: &str) -> Result<Plugin> {
        let fail = |what: &str, e: wasmtime::Error| Error::Load(format!("{name}: {what}: {e:#}"));
        let refuse = |why: String| Error::Load(format!("{name}: {why}"));
        let component =
            component::compile_component(&self.engine, self.compiled.as_ref(), wasm).map_err(refuse)?;
        component::expect_plugin_kind(&self.engine, &component, PluginKind::Command).map_err(refuse)?;
        let instance = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| fail("it imports something this host does not provide", e))?;
        let command = CommandPre::new(instance).map_err(|e| {
            fail("it does not export wasi:cli/run (build it as a command: Rust `fn main`, or the easycaching:cache/plugin world)", e)
        })?;
        Ok(Plugin { command, name: name.to_owned(), fuel: self.fuel })
    }

    /// The wasmtime engine, for embedders that add their own worlds.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop_ticking.store(true, Ordering::Relaxed);
    }
}

/// Advances the engine's epoch every tick, for as long as the engine lives.
fn spawn_epoch_ticker(engine: wasmtime::EngineWeak, stop: Arc<AtomicBool>) {
    std::thread::Builder::new()
        .name("easycaching-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                match engine.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => return,
                }
            }
        })
        .map(drop)
        .unwrap_or_else(
            |error| tracing::error!(%error, "cannot start the deadline clock; time limits will not hold"),
        );
}

/// Where a plugin's standard output and error go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Output {
    /// To the host process's own stdout and stderr.
    #[default]
    Inherit,
    /// Into [`Run::stdout`] and [`Run::stderr`].
    Capture,
}

/// How to run a plugin once.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The plugin's arguments, after its name.
    pub args: Vec<String>,
    /// Environment variables the plugin sees (none by default).
    pub env: Vec<(String, String)>,
    /// Where its output goes.
    pub output: Output,
    /// What it may use.
    pub limits: PluginLimits,
}

/// The end of one run: its output when captured, and how it ended.
#[derive(Debug)]
pub struct Run {
    /// Standard output, when captured.
    pub stdout: Vec<u8>,
    /// Standard error, when captured.
    pub stderr: Vec<u8>,
    /// `Ok` when the plugin returned from `run` successfully or exited with status 0.
    pub result: Result<()>,
}

impl Run {
    /// Standard output as text.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Standard error as text.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// A compiled, linked plugin: instantiating it again costs microseconds.
pub struct Plugin {
    command: CommandPre<PluginState>,
    name: String,
    /// Whether the engine counts fuel.
    fuel: bool,
}

impl Plugin {
    /// Runs the plugin's `wasi:cli/run` once, in a fresh instance with the given grants.
    ///
    /// With [`Output::Inherit`], the run returns once what the plugin wrote is written to the
    /// host's stdout and stderr, but not past its time limit: a plugin whose output they have
    /// not taken by then (stopped there, or trapping after it, or returning with output still
    /// to write) ends with that limit's error. What it wrote stays queued and is written by the
    /// host's writer threads while the process goes on; a host about to exit gives it
    /// [`HostOutput::finish`] first, as `easycaching run` does. Without a time limit, `run`
    /// waits for the output however long it takes, as a program writing to its stdout does.
    pub fn run(&self, easycaching: EasyCachingCtx, options: &RunOptions) -> Run {
        let (stdout, stderr) = match options.output {
            Output::Capture => {
                (Some(MemoryOutputPipe::new(CAPTURE_BYTES)), Some(MemoryOutputPipe::new(CAPTURE_BYTES)))
            }
            Output::Inherit => (None, None),
        };
        // The host's own streams, written by a thread of the host's: a plugin waiting for them
        // to take its output is stopped at its time limit (see `HostOutput`).
        let host_output = (HostOutput::stdout(), HostOutput::stderr());
        let mut wasi = WasiCtxBuilder::new();
        wasi.arg(&self.name).args(&options.args).envs(&options.env);
        easycaching.use_clock_in(&mut wasi);
        match (&stdout, &stderr) {
            (Some(out), Some(err)) => wasi.stdout(out.clone()).stderr(err.clone()),
            _ => wasi.stdout(host_output.0.clone()).stderr(host_output.1.clone()),
        };
        let mut deadline = None;
        let result = self.store(wasi.build(), easycaching, &options.limits).and_then(|mut store| {
            deadline = store.data().deadline;
            let ran = self
                .command
                .instantiate(&mut store)
                .and_then(|command| command.wasi_cli_run().call_run(&mut store));
            match ran {
                Ok(Ok(())) => Ok(()),
                Ok(Err(())) => Err(Error::Exited { code: 1 }),
                Err(error) => {
                    match Error::from_plugin_failure(error, &store.data().memory, &options.limits) {
                        Error::Exited { code: 0 } => Ok(()),
                        failure => Err(failure),
                    }
                }
            }
        });
        // What the plugin wrote without waiting for it is written before the run ends, within
        // its time: output the host's streams do not take by then is output the plugin did
        // not get out in its time.
        let written = host_output.0.wait_written(deadline) && host_output.1.wait_written(deadline);
        let result = match (result, options.limits.time) {
            (Ok(()), Some(limit)) if !written => Err(Error::TimedOut { limit }),
            (result, _) => result,
        };
        Run {
            stdout: stdout.map(|pipe| pipe.contents().to_vec()).unwrap_or_default(),
            stderr: stderr.map(|pipe| pipe.contents().to_vec()).unwrap_or_default(),
            result,
        }
    }

    /// A store for one instance, with the limits in force.
    fn store(
        &self,
        wasi: WasiCtx,
        easycaching: EasyCachingCtx,
        limits: &PluginLimits,
    ) -> Result<Store<PluginState>> {
        let table = limits.resource_table()?;
        let memory = MemoryLimiter::new(limits.memory_bytes);
        let deadline = limits.deadline();
        let mut store =
            Store::new(self.command.engine(), PluginState { table, wasi, easycaching, memory, deadline });
        store.limiter(|state| &mut state.memory);
        store.set_epoch_deadline(limits.epoch_deadline());
        store.epoch_deadline_trap();
        match (self.fuel, limits.fuel) {
            (true, fuel) => {
                store.set_fuel(fuel.unwrap_or(u64::MAX)).map_err(|e| Error::Internal(e.to_string()))?
            }
            (false, Some(_)) => {
                return Err(Error::Misconfigured(
                    "a fuel limit needs a runtime made with RuntimeConfig::fuel".into(),
                ));
            }
            (false, None) => {}
        }
        Ok(store)
    }
}

impl Error {
    /// What a failed call into a plugin means: an exit (with its status, 0 included), a
    /// limit it went over (`memory` says whether it was refused memory), or a crash. For hosts
    /// with stores of their own, such as `easycaching serve`.
    pub fn from_plugin_failure(
        error: wasmtime::Error,
        memory: &MemoryLimiter,
        limits: &PluginLimits,
    ) -> Error {
        if let Some(exit) = error.downcast_ref::<I32Exit>() {
            return Error::Exited { code: exit.0 };
        }
        if memory.exceeded {
            return Error::OutOfMemory { limit: memory.limit };
        }
        match (error.downcast_ref::<Trap>(), limits) {
            (Some(Trap::Interrupt), PluginLimits { time: Some(limit), .. }) => {
                Error::TimedOut { limit: *limit }
            }
            (Some(Trap::OutOfFuel), PluginLimits { fuel: Some(limit), .. }) => {
                Error::OutOfFuel { limit: *limit }
            }
            _ => Error::Trapped { message: trap_message(&error) },
        }
    }
}

/// What a crash was, then where: `wasm trap: call stack exhausted` before the wasm backtrace,
/// which would otherwise come first and push the cause off the screen.
fn trap_message(error: &wasmtime::Error) -> String {
    match error.downcast_ref::<WasmBacktrace>() {
        Some(backtrace) => {
            let frames = backtrace.to_string();
            let frames = frames.strip_prefix("error while executing at ").unwrap_or(&frames);
            format!("{}\n{frames}", error.root_cause())
        }
        None => format!("{error:#}"),
    }
}

/// The store data of a plugin instance.
pub struct PluginState {
    table: ResourceTable,
    wasi: WasiCtx,
    easycaching: EasyCachingCtx,
    memory: MemoryLimiter,
    /// When the run's time limit passes, for the waits in host calls (see `bounded_waits`).
    deadline: Option<Instant>,
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Bounds the memory of an instance: its linear memories and its tables, all together, and
/// remembers when a growth was refused so the failure can be named. Install it with
/// `Store::limiter`.
///
/// A table's elements live in host memory, a pointer (8 bytes) each, so they count toward the
/// limit as linear memory does: a component can hold many core instances, each with many
/// tables, and a table of a million elements is 8 MB of the host's. Instances, tables and
/// memories are bounded in number too (1,000, 1,000 and 100), and a table to a million
/// elements.
pub struct MemoryLimiter {
    limit: usize,
    /// Bytes of linear memory, all memories together.
    memory: usize,
    /// Bytes of table elements, all tables together.
    tables: usize,
    exceeded: bool,
}

/// What one table element costs the host, as [`MemoryLimiter`] counts it.
const TABLE_ELEMENT_BYTES: usize = 8;
const MAX_TABLE_ELEMENTS: usize = 1_000_000;
/// A Python or JavaScript component has tens of core instances, a Rust one a handful.
const MAX_INSTANCES: usize = 1000;
const MAX_TABLES: usize = 1000;
const MAX_MEMORIES: usize = 100;

impl MemoryLimiter {
    /// A limiter allowing `limit` bytes of linear memory and tables in all.
    pub fn new(limit: usize) -> MemoryLimiter {
        MemoryLimiter { limit, memory: 0, tables: 0, exceeded: false }
    }

    /// Whether a growth was refused for going over the limit.
    pub fn exceeded(&self) -> bool {
        self.exceeded
    }

    /// Takes `memory` and `tables` bytes as the new counts, or refuses them if together they
    /// would go over the limit.
    fn grow_to(&mut self, memory: usize, tables: usize) -> wasmtime::Result<bool> {
        let total = memory.saturating_add(tables);
        if total > self.limit {
            self.exceeded = true;
            wasmtime::bail!(
                "the plugin asked for {total} bytes of memory (linear memories and tables together), over its limit of {}",
                self.limit
            );
        }
        (self.memory, self.tables) = (memory, tables);
        Ok(true)
    }
}

/// `total` with one part of it changed from `current` to `desired`.
fn regrown(total: usize, current: usize, desired: usize) -> usize {
    (total - current.min(total)).saturating_add(desired)
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.grow_to(regrown(self.memory, current, desired), self.tables)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            return Ok(false);
        }
        let bytes = |elements: usize| elements.saturating_mul(TABLE_ELEMENT_BYTES);
        self.grow_to(self.memory, regrown(self.tables, bytes(current), bytes(desired)))
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::{Instance, Module};

    /// A core module of `tables` funcref tables of `elements` elements each, and nothing else.
    fn module_of_tables(tables: u32, elements: u32) -> Vec<u8> {
        fn leb128(mut value: u32, out: &mut Vec<u8>) {
            loop {
                let byte = (value & 0x7f) as u8;
                value >>= 7;
                if value == 0 {
                    return out.push(byte);
                }
                out.push(byte | 0x80);
            }
        }
        let mut section = Vec::new();
        leb128(tables, &mut section);
        for _ in 0..tables {
            section.extend([0x70, 0x00]); // funcref, a minimum and no maximum
            leb128(elements, &mut section);
        }
        let mut module = b"\0asm\x01\0\0\0".to_vec();
        module.push(0x04); // the table section
        leb128(section.len() as u32, &mut module);
        module.extend(section);
        module
    }

    fn instantiate(limit: usize, tables: u32, elements: u32) -> (wasmtime::Result<Instance>, bool) {
        let engine = Engine::default();
        let module = Module::new(&engine, module_of_tables(tables, elements)).unwrap();
        let mut store = Store::new(&engine, MemoryLimiter::new(limit));
        store.limiter(|limiter| limiter);
        let instance = Instance::new(&mut store, &module, &[]);
        (instance, store.data().exceeded())
    }

    #[test]
    fn tables_count_toward_the_memory_limit() {
        // Each table of a million elements is 8 MB of the host's memory.
        let (one, exceeded) = instantiate(16 << 20, 1, 1_000_000);
        assert!(one.is_ok() && !exceeded, "{:?}", one.err());
        let (three, exceeded) = instantiate(16 << 20, 3, 1_000_000);
        let error = three.expect_err("24 MB of tables with a limit of 16 MiB");
        assert!(exceeded);
        assert!(format!("{error:#}").contains("linear memories and tables together"), "{error:#}");
    }

    #[test]
    fn tables_are_bounded_in_number_however_small() {
        // A module may have 100 tables at most; instances of it add up.
        let engine = Engine::default();
        let module = Module::new(&engine, module_of_tables(100, 1)).unwrap();
        let mut store = Store::new(&engine, MemoryLimiter::new(1 << 30));
        store.limiter(|limiter| limiter);
        for instance in 0..MAX_TABLES / 100 {
            Instance::new(&mut store, &module, &[]).unwrap_or_else(|e| panic!("instance {instance}: {e:#}"));
        }
        let error = Instance::new(&mut store, &module, &[]).expect_err("more tables than allowed");
        assert!(format!("{error:#}").contains("table"), "{error:#}");
    }
}
