//! The plugin side of the server: one engine, the plugin compiled and linked once, and the
//! instances that answer requests.
//!
//! Each request runs in an instance of its own while it runs. With
//! [`ServerConfig::requests_per_instance`] at 1 (the default) every request gets an instance
//! that has never run before: the next one is instantiated, from a pre-instantiated
//! [`ProxyPre`] into a slot of wasmtime's pooling allocator, right after a request is answered,
//! so instantiating is off the path of the next request. Above 1, an instance that answered
//! without trapping goes back to a pool of warm instances and answers up to that many requests.
//!
//! A request is run synchronously, on a thread of its own (see `server.rs` for why), so the
//! plugin's cache calls, which wait for their write to be durable, hold only that thread.

use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use easycaching_host::{
    EasyCaching, EasyCachingCtx, HostOutput, MemoryLimiter, PluginKind, PluginLimits, compile_component,
    expect_plugin_kind,
};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::sync::oneshot;
use wasmtime::component::{Linker, Resource, ResourceTable};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreContextMut,
};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::http::types::HostOutgoingBody as HostOutgoingBodyMethods;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::bindings::sync::{Proxy, ProxyPre};
use wasmtime_wasi_http::p2::body::{HostOutgoingBody, HyperOutgoingBody};
use wasmtime_wasi_http::{
    FieldMap, RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView,
};

use crate::{Error, Result, ServerConfig};

/// What a plugin hands to its response-outparam: a response, or an error code.
pub(crate) type PluginResponse = std::result::Result<hyper::Response<HyperOutgoingBody>, ErrorCode>;

// Room in the pooling allocator for each instance. A Rust handler uses 1 memory, 2 tables and a
// handful of core instances; Python and JavaScript components link more modules (and tables of
// many more functions), so these leave room for them. Slots are address space, reserved once
// and only backed by memory as instances touch it.
const CORE_INSTANCES_PER_COMPONENT: u32 = 32;
const MEMORIES_PER_COMPONENT: u32 = 4;
const TABLES_PER_COMPONENT: u32 = 32;
const TABLES_PER_MODULE: u32 = 4;
const TABLE_ELEMENTS: usize = 100_000;
/// Linear memory and table bytes, per slot, that are zeroed in place for the next instance
/// rather than handed back to the kernel (`madvise`, which costs a TLB shootdown across every
/// thread), so a fresh instance does not fault its pages in again. With Linux's PAGEMAP_SCAN
/// only the pages an instance wrote are zeroed.
const MEMORY_KEEP_RESIDENT: usize = 16 << 20;
const TABLE_KEEP_RESIDENT: usize = 1 << 20;
/// The largest memory a 32-bit wasm memory can have.
const MAX_WASM32_MEMORY: usize = 4 << 30;

/// The store data of one handler instance.
pub(crate) struct HandlerState {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: NoOutgoingRequests,
    easycaching: EasyCachingCtx,
    memory: MemoryLimiter,
    /// Whether the plugin finished the body of its response, in the request running now.
    body_finished: bool,
    /// When the time of the request running now (or of instantiating) runs out, for the waits
    /// in host calls (see `easycaching_host::add_bounded_waits_to_linker`).
    deadline: Option<Instant>,
}

impl WasiView for HandlerState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for HandlerState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.hooks }
    }
}

/// A plugin gets no network, so `wasi:http/outgoing-handler` refuses every request.
struct NoOutgoingRequests;

impl WasiHttpHooks for NoOutgoingRequests {
    fn send_request(
        &mut self,
        _request: hyper::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _response_done: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<
        dyn Future<
                Output = wasmtime_wasi_http::Result<(
                    hyper::Response<WasiBody>,
                    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
                )>,
            > + Send,
    > {
        Box::new(std::future::ready(Err(wasmtime_wasi_http::Error::HttpRequestDenied)))
    }
}

/// An instance and the store it lives in.
struct Instance {
    store: Store<HandlerState>,
    proxy: Proxy,
    /// Requests it has been given.
    handled: u64,
}

/// The compiled, linked plugin and its instances.
pub(crate) struct Handler {
    pre: ProxyPre<HandlerState>,
    name: String,
    easycaching: EasyCachingCtx,
    env: Vec<(String, String)>,
    limits: PluginLimits,
    requests_per_instance: u64,
    /// Instances ready for a request: never used, or warm when instances are reused.
    ready: Mutex<Vec<Instance>>,
}

/// A plugin compiled and linked as an HTTP handler, not yet given its caches.
pub(crate) struct Linked {
    pre: ProxyPre<HandlerState>,
    name: String,
}

impl Linked {
    /// Compiles and links the plugin at `path`, checking that it is an HTTP handler whose
    /// imports this host provides.
    pub(crate) fn load(path: &Path, config: &ServerConfig) -> Result<Linked> {
        let name = path.display().to_string();
        let fail = |what: &str, error: wasmtime::Error| Error::Load {
            plugin: name.clone(),
            message: format!("{what}: {error:#}"),
        };
        let engine = engine(config)?;
        let wasm = std::fs::read(path)
            .map_err(|error| Error::Load { plugin: name.clone(), message: error.to_string() })?;
        let refuse = |message: String| Error::Load { plugin: name.clone(), message };
        let component = compile_component(&engine, config.compiled_cache.as_ref(), &wasm).map_err(refuse)?;
        expect_plugin_kind(&engine, &component, PluginKind::HttpHandler).map_err(refuse)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .and_then(|()| {
                easycaching_host::add_bounded_waits_to_linker(&mut linker, |state: &mut HandlerState| {
                    (&mut state.table, state.deadline)
                })
            })
            .and_then(|()| wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker))
            .and_then(|()| {
                easycaching_host::add_to_linker(&mut linker, |state: &mut HandlerState| {
                    EasyCaching::new(&state.easycaching, &mut state.table).until(state.deadline)
                })
            })
            .and_then(|()| {
                easycaching_host::add_keyvalue_to_linker(&mut linker, |state: &mut HandlerState| {
                    EasyCaching::new(&state.easycaching, &mut state.table)
                })
            })
            .and_then(|()| add_body_finish(&mut linker))
            .map_err(|e| Error::Engine(format!("cannot link the host interfaces: {e:#}")))?;
        let instance_pre = linker
            .instantiate_pre(&component)
            .map_err(|e| fail("it imports something this host does not provide", e))?;
        let pre = ProxyPre::new(instance_pre).map_err(|e| {
            fail("it does not export wasi:http/incoming-handler@0.2 (build it for the easycaching:cache/http-handler world)", e)
        })?;
        Ok(Linked { pre, name })
    }

    /// The plugin, as named to [`Server::load`](crate::Server::load).
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The handler serving with `easycaching`'s caches and queues, instantiated once to check
    /// that it can run with these grants and limits; that instance answers the first request.
    pub(crate) fn handler(self, easycaching: EasyCachingCtx, config: &ServerConfig) -> Result<Handler> {
        let Linked { pre, name } = self;
        let handler = Handler {
            pre,
            name: name.clone(),
            easycaching,
            env: config.env.clone(),
            limits: config.limits,
            requests_per_instance: config.requests_per_instance.max(1),
            ready: Mutex::new(Vec::new()),
        };
        let first = handler
            .instantiate()
            .map_err(|error| Error::Load { plugin: name, message: format!("it cannot start: {error}") })?;
        handler.ready().push(first);
        Ok(handler)
    }
}

impl Handler {
    /// The plugin, as named to [`Server::new`](crate::Server::new).
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The engine, for the clock that enforces time limits.
    pub(crate) fn engine(&self) -> &Engine {
        self.pre.engine()
    }

    /// Runs the plugin on `request`; its response goes to `respond` as soon as the plugin sets
    /// it, and this returns when the plugin's `handle` returns (it may go on working after it
    /// responded). An error says why the plugin failed; its instance is dropped, and, when it
    /// had not finished the body of a response it set, `failed` is set first (dropping the
    /// instance ends that body as though it were whole: `failed` tells the server it is not).
    /// An instance whose call returns after `given_up_at`, when the server has stopped waiting
    /// for it (and may have left it halfway through whatever it was doing), is not reused
    /// either. The plugin's time limit ends no later than `given_up_at`, for a request that
    /// waited for an instance.
    pub(crate) fn handle(
        &self,
        request: hyper::Request<Incoming>,
        respond: oneshot::Sender<PluginResponse>,
        given_up_at: Option<Instant>,
        failed: &AtomicBool,
    ) -> Result<(), easycaching_host::Error> {
        let popped = self.ready().pop();
        let mut instance = match popped {
            Some(instance) => instance,
            None => self.instantiate()?,
        };
        // A request that waited for an instance has that much less time.
        let limits = match given_up_at {
            Some(given_up_at) => {
                let left = given_up_at.saturating_duration_since(Instant::now());
                PluginLimits {
                    time: Some(self.limits.time.map_or(left, |limit| limit.min(left))),
                    ..self.limits
                }
            }
            None => self.limits,
        };
        self.start_budgets(&mut instance.store, &limits)?;
        instance.store.data_mut().body_finished = false;
        let request = request.map(|body| BodyUntil::new(body, given_up_at));
        let resources = {
            let mut http = instance.store.data_mut().http();
            http.new_incoming_request(Scheme::Http, request)
                .and_then(|request| Ok((request, http.new_response_outparam(respond)?)))
        };
        // Not the plugin's fault (the server checked the request), so not classified as its
        // failure; the instance goes, as its table may hold half of what was added.
        let (request, response_out) = resources.map_err(|error| {
            easycaching_host::Error::Internal(format!("cannot hand the request to the plugin: {error:#}"))
        })?;
        let outcome = instance.proxy.wasi_http_incoming_handler().call_handle(
            &mut instance.store,
            request,
            response_out,
        );
        match outcome {
            Ok(()) => {
                instance.handled += 1;
                let given_up = given_up_at.is_some_and(|given_up_at| Instant::now() >= given_up_at);
                self.recycle(instance, !given_up);
                Ok(())
            }
            Err(error) => {
                if !instance.store.data().body_finished {
                    failed.store(true, Ordering::Release);
                }
                Err(easycaching_host::Error::from_plugin_failure(
                    error,
                    &instance.store.data().memory,
                    &self.limits,
                ))
            }
        }
    }

    /// Puts an instance that answered back in the pool while it may answer more (and is
    /// `reusable`); when it may not, drops it and readies a fresh one in its place, so the next
    /// request does not wait for instantiation.
    fn recycle(&self, instance: Instance, reusable: bool) {
        if reusable && instance.handled < self.requests_per_instance {
            self.ready().push(instance);
            return;
        }
        // Dropped first: its slot in the pooling allocator is what the fresh one reuses.
        drop(instance);
        match self.instantiate() {
            Ok(fresh) => self.ready().push(fresh),
            // The next request instantiates, and answers this error if it persists.
            Err(error) => tracing::warn!(%error, "cannot ready a fresh instance"),
        }
    }

    /// A new instance in a store of its own, with the grants and limits of every instance.
    fn instantiate(&self) -> Result<Instance, easycaching_host::Error> {
        let table = self.limits.resource_table()?;
        let mut wasi = WasiCtxBuilder::new();
        // The host's streams, written by a thread of the host's: a plugin waiting for them to take
        // its output is stopped at its time limit, not held by a reader that does not read.
        wasi.arg(&self.name).envs(&self.env).stdout(HostOutput::stdout()).stderr(HostOutput::stderr());
        self.easycaching.use_clock_in(&mut wasi);
        let state = HandlerState {
            table,
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            hooks: NoOutgoingRequests,
            easycaching: self.easycaching.clone(),
            memory: MemoryLimiter::new(self.limits.memory_bytes),
            body_finished: false,
            deadline: None,
        };
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|state| &mut state.memory);
        store.epoch_deadline_trap();
        self.start_budgets(&mut store, &self.limits)?;
        match self.pre.instantiate(&mut store) {
            Ok(proxy) => Ok(Instance { store, proxy, handled: 0 }),
            Err(error) => {
                Err(easycaching_host::Error::from_plugin_failure(error, &store.data().memory, &self.limits))
            }
        }
    }

    /// Gives `store` the time and fuel of `limits`, for one request (or one instantiation).
    fn start_budgets(
        &self,
        store: &mut Store<HandlerState>,
        limits: &PluginLimits,
    ) -> Result<(), easycaching_host::Error> {
        store.set_epoch_deadline(limits.epoch_deadline());
        store.data_mut().deadline = limits.deadline();
        if let Some(fuel) = limits.fuel {
            // Fuel is counted whenever a budget is set (see `engine`), so this cannot fail.
            store.set_fuel(fuel).map_err(|e| easycaching_host::Error::Internal(format!("{e:#}")))?;
        }
        Ok(())
    }

    fn ready(&self) -> MutexGuard<'_, Vec<Instance>> {
        // A panic while holding the lock leaves the list itself intact.
        self.ready.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A request's body as the plugin reads it: the client's, until the request's time limit
/// (`until`); past it, an error. A plugin blocked reading a body the client stopped sending is
/// in a host call, out of reach of its epoch deadline: the error is what ends its wait, so
/// its instance is freed, and the connection with it.
struct BodyUntil {
    body: Incoming,
    until: Option<Instant>,
    /// Made at the first poll, on the runtime that polls the body.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl BodyUntil {
    fn new(body: Incoming, until: Option<Instant>) -> BodyUntil {
        BodyUntil { body, until, timer: None }
    }
}

impl Body for BodyUntil {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        let Some(until) = self.until else { return Poll::Pending };
        let timer = self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(until.into())));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(wasmtime_wasi_http::Error::ConnectionReadTimeout))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The `wasi:http` interface whose `outgoing-body.finish` is registered over.
const HTTP_TYPES: &str = "wasi:http/types@0.2.12";

/// Registers `outgoing-body.finish` over wasmtime-wasi-http's, noting in the store that the
/// plugin finished its body. A plugin that fails after it finished its body sent a whole
/// response; one that fails before did not, and dropping its instance ends the body all the
/// same, indistinguishably to the server, so the server must be told (see [`Handler::handle`]).
fn add_body_finish(linker: &mut Linker<HandlerState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let added = linker.instance(HTTP_TYPES).and_then(|mut types| {
        types.func_wrap(
            "[static]outgoing-body.finish",
            |mut store: StoreContextMut<'_, HandlerState>,
             (body, trailers): (Resource<HostOutgoingBody>, Option<Resource<FieldMap>>)| {
                let state = store.data_mut();
                let finished = match HostOutgoingBodyMethods::finish(&mut state.http(), body, trailers) {
                    Ok(()) => Ok(()),
                    // A guest mistake (a body shorter than its content-length, say) is an error
                    // code for the guest; anything else a trap.
                    Err(error) => Err(error.downcast()?),
                };
                state.body_finished |= finished.is_ok();
                Ok((finished,))
            },
        )
    });
    linker.allow_shadowing(false);
    added
}

/// The engine every instance runs on: epoch deadlines for time limits, and the pooling
/// allocator sized for `config.max_instances` instances at once.
fn engine(config: &ServerConfig) -> Result<Engine> {
    let instances = u32::try_from(config.max_instances.max(1)).unwrap_or(u32::MAX);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(instances)
        .total_core_instances(instances.saturating_mul(CORE_INSTANCES_PER_COMPONENT))
        .total_memories(instances.saturating_mul(MEMORIES_PER_COMPONENT))
        .total_tables(instances.saturating_mul(TABLES_PER_COMPONENT))
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(MEMORIES_PER_COMPONENT)
        .max_tables_per_component(TABLES_PER_COMPONENT)
        .max_tables_per_module(TABLES_PER_MODULE)
        .table_elements(TABLE_ELEMENTS)
        .max_memory_size(config.limits.memory_bytes.min(MAX_WASM32_MEMORY))
        .linear_memory_keep_resident(MEMORY_KEEP_RESIDENT)
        .table_keep_resident(TABLE_KEEP_RESIDENT)
        .pagemap_scan(Enabled::Auto);
    let mut wasm = Config::new();
    wasm.epoch_interruption(true)
        // Counting fuel costs every instruction a little, so only when a budget is set.
        .consume_fuel(config.limits.fuel.is_some())
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&wasm).map_err(|e| Error::Engine(format!("{e:#}")))
}
