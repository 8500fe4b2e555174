//! The host state of the easycaching interfaces: a builder, the ctx it builds, and the view
//! the generated host traits are implemented on.

use std::time::{Duration, Instant, UNIX_EPOCH};

use easycaching::{Cache, CacheManager, Queue};
use wasmtime::component::{HasData, Linker, ResourceTable};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::clocks::HostWallClock;

use crate::bindings::easycaching::cache::{caches, manager, queues, types};
use crate::grants::{Grant, Grants, Kind, Permission, grant_needed};
use crate::{Error, Result};

/// Configures an [`EasyCachingCtx`]: which database, and what the plugin is granted.
#[derive(Debug, Clone)]
pub struct EasyCachingCtxBuilder {
    manager: CacheManager,
    grants: Grants,
}

impl EasyCachingCtxBuilder {
    /// A plugin using `manager`'s database, granted nothing yet.
    pub fn new(manager: CacheManager) -> Self {
        EasyCachingCtxBuilder { manager, grants: Grants::none() }
    }

    /// Adds a grant.
    pub fn grant(mut self, grant: Grant) -> Self {
        self.grants = self.grants.with(grant);
        self
    }

    /// Replaces the grants.
    pub fn grants(mut self, grants: Grants) -> Self {
        self.grants = grants;
        self
    }

    /// Builds the ctx.
    pub fn build(self) -> EasyCachingCtx {
        EasyCachingCtx { manager: self.manager, grants: self.grants }
    }
}

/// What one plugin instance may reach: the database and its grants. Kept in the embedder's
/// store data next to a [`ResourceTable`].
#[derive(Debug, Clone)]
pub struct EasyCachingCtx {
    manager: CacheManager,
    grants: Grants,
}

impl EasyCachingCtx {
    /// Starts a builder.
    pub fn builder(manager: CacheManager) -> EasyCachingCtxBuilder {
        EasyCachingCtxBuilder::new(manager)
    }

    /// The grants.
    pub fn grants(&self) -> &Grants {
        &self.grants
    }

    /// The manager.
    pub fn manager(&self) -> &CacheManager {
        &self.manager
    }

    /// Has the plugin's `wasi:clocks/wall-clock` read the manager's clock when that is a
    /// [`ManualClock`](easycaching::ManualClock), so a plugin sees the time its TTLs and
    /// leases are told by; the system's clock otherwise (WASI's default). `easycaching run`,
    /// `serve` and the test harness call it on every plugin's WASI context.
    pub fn use_clock_in(&self, wasi: &mut WasiCtxBuilder) {
        if let Some(manual) = self.manager.clock().manual() {
            wasi.wall_clock(ManualWallClock(manual.clone()));
        }
    }

    /// What the plugin may do with `name`, or `access-denied` naming the grant it lacks: with
    /// `creating`, one that lets it create (and delete), so that the host's first fix works.
    pub(crate) fn permission(&self, kind: Kind, name: &str, creating: bool) -> Result<Permission> {
        easycaching::validate_name(name)?;
        self.grants.permission(kind, name).ok_or_else(|| {
            let needed = grant_needed(kind, name, if creating { "=rwc" } else { "" });
            Error::AccessDenied(format!("this plugin has no grant for {kind} {name:?} ({needed})"))
        })
    }
}

/// WASI's wall clock on a [`ManualClock`](easycaching::ManualClock).
struct ManualWallClock(easycaching::ManualClock);

impl HostWallClock for ManualWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }

    fn now(&self) -> Duration {
        self.0.now().duration_since(UNIX_EPOCH).unwrap_or_default()
    }
}

/// The view the host traits are implemented on: the ctx and the resource table of one store,
/// and when the plugin's time runs out.
pub struct EasyCaching<'a> {
    pub(crate) ctx: &'a EasyCachingCtx,
    pub(crate) table: &'a mut ResourceTable,
    deadline: Option<Instant>,
}

impl<'a> EasyCaching<'a> {
    /// A view over one store's ctx and table, for a plugin with no time limit.
    pub fn new(ctx: &'a EasyCachingCtx, table: &'a mut ResourceTable) -> Self {
        EasyCaching { ctx, table, deadline: None }
    }

    /// Stops a plugin waiting in a queue's `get-wait` or `lease-wait` at `deadline`, its time
    /// limit (`None`: none): there it traps as at an epoch deadline ([`Trap::Interrupt`]). An
    /// epoch deadline reaches only wasm code, so a host with a time limit sets this too, as
    /// [`Plugin::run`](crate::Plugin::run) and `easycaching serve` do (see [`add_to_linker`]).
    ///
    /// [`Trap::Interrupt`]: wasmtime::Trap::Interrupt
    pub fn until(self, deadline: Option<Instant>) -> Self {
        EasyCaching { deadline, ..self }
    }

    /// How long a wait of `timeout_ms` milliseconds may go on: no later than the deadline.
    pub(crate) fn wait_for_at_most(&self, timeout_ms: u64) -> Duration {
        let timeout = Duration::from_millis(timeout_ms);
        self.deadline
            .map_or(timeout, |deadline| timeout.min(deadline.saturating_duration_since(Instant::now())))
    }

    /// Whether the plugin's time has run out.
    pub(crate) fn past_deadline(&self) -> bool {
        self.deadline.is_some_and(|deadline| Instant::now() >= deadline)
    }
}

/// A cache handle a guest holds: the cache, and whether its grant allows writing.
pub struct CacheResource {
    pub(crate) cache: Cache,
    pub(crate) writable: bool,
}

/// A queue handle a guest holds: the queue, and whether its grant allows writing.
pub struct QueueResource {
    pub(crate) queue: Queue,
    pub(crate) writable: bool,
}

/// Adds the easycaching interfaces (`types`, `caches`, `queues`, `manager`) to `linker`.
/// `view` picks the ctx and resource table out of the store's data.
///
/// The cache `get` (see `fast_get`) and the queue's `get` and `get-many` (see
/// `queue_delivery`) are registered over the generated ones, which needs name shadowing for a
/// moment: `linker` is left with shadowing off, its default.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> EasyCaching<'_>,
) -> wasmtime::Result<()> {
    types::add_to_linker::<_, HasEasyCaching>(linker, view)?;
    caches::add_to_linker::<_, HasEasyCaching>(linker, view)?;
    queues::add_to_linker::<_, HasEasyCaching>(linker, view)?;
    manager::add_to_linker::<_, HasEasyCaching>(linker, view)?;
    linker.allow_shadowing(true);
    let replaced = crate::fast_get::add_to_linker(linker, view)
        .and_then(|()| crate::queue_delivery::add_to_linker(linker, view));
    linker.allow_shadowing(false);
    replaced
}

/// The `HasData` of the generated `add_to_linker`s: the view is [`EasyCaching`].
pub(crate) struct HasEasyCaching;

impl HasData for HasEasyCaching {
    type Data<'a> = EasyCaching<'a>;
}
