//! What every actor of one engine process shares.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use flowmesh_bus::Bus;
use flowmesh_model::{ExecutionEvent, ExecutionId, TenantId};
use flowmesh_node_handlers::{CodeRequest, Sandboxes};
use flowmesh_sandbox::{Call, Class, Failure, Jail, Returned};
use flowmesh_services::cache::{Bound, Cache};
use flowmesh_services::{
    Error, HereClaim, Place, Runtime, SandboxInfo, SettingsCache, StoreEndpoints, StoreSecrets,
};
use flowmesh_store::{Claim, ExecutionRecord, Store, TenantSettings};
use futures::future::BoxFuture;
use ractor::ActorRef;
use ractor::rpc::CallResult;
use tokio::sync::Notify;

use crate::options::Options;
use crate::root::RootMsg;
use crate::runner::NodeRunner;
use crate::tenant::TenantMsg;
use crate::workflow::WorkflowMsg;

/// What the actors of one process share: the store and the bus they work
/// through, and what is local to this process (its executions, its
/// sandboxes' jail, whether it is draining).
pub(crate) struct Context {
    pub store: Store,
    pub bus: Bus,
    pub runner: Arc<dyn NodeRunner>,
    /// Tenants' secrets, for the actions that use them.
    pub secrets: StoreSecrets,
    /// Tenants' own model endpoints, for the nodes that call a model.
    pub endpoints: StoreEndpoints,
    pub options: Options,
    /// This run of the process: a process started again with the same node
    /// id is a new incarnation, so that the in-process marks a dead run
    /// left are told from its own.
    pub incarnation: String,
    /// What this host lets sandboxes use, found at start-up.
    pub jail: Jail,
    /// The top of the actor tree, once it runs (code nodes reach their
    /// tenant's sandboxes through it).
    pub root: OnceLock<ActorRef<RootMsg>>,
    /// Executions with a live actor in this process.
    local: Mutex<HashSet<ExecutionId>>,
    /// Places of accepted executions handed to the actors here whose actor
    /// does not run yet.
    arriving: Arc<AtomicUsize>,
    /// Set on shutdown: executions start no new node attempts.
    draining: AtomicBool,
    /// Signalled whenever an execution actor leaves this process.
    execution_left: Notify,
    /// Tenants' settings, shared with the services.
    settings: SettingsCache,
    /// Tenants' slugs, for their public event subjects.
    slugs: Cache<TenantId, String>,
}

/// How often a process at its bound of live executions looks again for
/// room, should it miss the notice of an execution leaving.
const ROOM_RECHECK: Duration = Duration::from_millis(100);

/// Most tenants whose slug is kept.
const TENANTS_KEPT: u64 = 100_000;
/// How long the services wait for a tenant actor's answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// What a [`Context`] is made of.
pub(crate) struct Parts {
    pub store: Store,
    pub bus: Bus,
    pub runner: Arc<dyn NodeRunner>,
    pub secrets: StoreSecrets,
    pub settings: SettingsCache,
    pub options: Options,
}

impl Context {
    pub fn new(parts: Parts) -> Self {
        let jail = Jail::detect(&parts.options.sandbox.jail).logged();
        let idle = Some(parts.options.actor_idle_after.0);
        Self {
            endpoints: StoreEndpoints::new(parts.store.clone()),
            store: parts.store,
            bus: parts.bus,
            runner: parts.runner,
            secrets: parts.secrets,
            options: parts.options,
            jail,
            incarnation: uuid::Uuid::new_v4().simple().to_string(),
            root: OnceLock::new(),
            local: Mutex::default(),
            arriving: Arc::default(),
            draining: AtomicBool::new(false),
            execution_left: Notify::new(),
            settings: parts.settings,
            slugs: Bound {
                entries: TENANTS_KEPT,
                live: None,
                idle,
            }
            .build(),
        }
    }

    /// Drops what expired from the slugs (see `flowmesh_services::cache`).
    pub fn sweep_caches(&self) {
        self.slugs.run_pending_tasks();
    }

    /// Slugs kept, after a sweep.
    #[cfg(test)]
    pub fn cached_slugs(&self) -> u64 {
        self.sweep_caches();
        self.slugs.entry_count()
    }

    pub fn mark_local(&self, id: ExecutionId, present: bool) {
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        if present {
            local.insert(id);
        } else {
            local.remove(&id);
            self.bus.left_here(id);
            self.execution_left.notify_waiters();
        }
        flowmesh_services::metrics::in_flight(local.len());
    }

    pub fn is_local(&self, id: ExecutionId) -> bool {
        self.local
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&id)
    }

    pub fn local_count(&self) -> usize {
        self.local.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Live executions here, with those accepted here on their way to
    /// their actor.
    pub fn held(&self) -> usize {
        self.local_count() + self.arriving.load(Ordering::SeqCst)
    }

    /// Waits until this process holds fewer live executions, with the
    /// starts under way (`starting` reads them), than its bound.
    pub async fn room(&self, starting: impl Fn() -> usize) {
        loop {
            let left = self.execution_left.notified();
            tokio::pin!(left);
            left.as_mut().enable();
            if self.held() + starting() < self.options.max_executions_here {
                return;
            }
            // A start that ends gives no notice; nor does one missed
            // between the count and the wait: they cost this much.
            let _ = tokio::time::timeout(ROOM_RECHECK, left).await;
        }
    }

    /// Waits until no execution actor is left in this process.
    pub async fn executions_gone(&self) {
        loop {
            let left = self.execution_left.notified();
            if self.local_count() == 0 {
                return;
            }
            left.await;
        }
    }

    /// A tenant's settings; the defaults while the store cannot say.
    pub async fn tenant_settings(&self, tenant: TenantId) -> TenantSettings {
        self.settings.get(tenant).await
    }

    /// Events are notifications; the journal is the record. A lost event is
    /// logged, never fatal.
    pub async fn emit(&self, event: ExecutionEvent) {
        let started = std::time::Instant::now();
        let published = self.bus.publish_event(&event).await;
        flowmesh_services::metrics::bus_publish("event", started.elapsed());
        if let Err(e) = published {
            tracing::warn!(execution = %event.execution, error = %e, "could not publish event");
        }
        if self.options.public_events
            && let Some(slug) = self.tenant_slug(event.tenant).await
            && let Err(e) = self.bus.publish_public_event(&slug, &event).await
        {
            tracing::debug!(execution = %event.execution, error = %e, "could not publish a public event");
        }
    }

    /// A tenant's slug (slugs never change, so they are kept while used).
    pub async fn tenant_slug(&self, tenant: TenantId) -> Option<String> {
        if let Some(slug) = self.slugs.get(&tenant) {
            return Some(slug);
        }
        let slug = self.store.tenant_slug(tenant).await.ok().flatten()?;
        self.slugs.insert(tenant, slug.clone());
        Some(slug)
    }
}

impl Sandboxes for Context {
    fn run(&self, request: CodeRequest) -> BoxFuture<'_, Result<Returned, Failure>> {
        Box::pin(async move {
            let crashed = |message: &str| Failure::new(Class::Crashed, message);
            let root = self
                .root
                .get()
                .ok_or_else(|| crashed("the engine is not running"))?;
            let (tenant, language) = (request.tenant, request.language);
            let answer = root
                .call(
                    |reply| RootMsg::Tenant {
                        tenant,
                        msg: TenantMsg::Sandbox { language, reply },
                    },
                    Some(Duration::from_secs(10)),
                )
                .await;
            let (sandbox, maxima) = match answer {
                Ok(CallResult::Success(Ok(found))) => found,
                Ok(CallResult::Success(Err(message))) => return Err(crashed(&message)),
                _ => return Err(crashed("no sandbox answered")),
            };
            let limits = request
                .limits
                .resolve(&self.options.sandbox.defaults, &maxima)
                .map_err(|over| {
                    Failure::new(
                        Class::Denied,
                        format!("limits.{}: {}", over.field, over.message),
                    )
                })?;
            sandbox
                .run(Call {
                    source: request.source,
                    input: request.input,
                    limits,
                })
                .await
        })
    }
}

impl Runtime for Context {
    fn executions_here(&self) -> usize {
        self.local_count()
    }

    fn jail(&self) -> &Jail {
        &self.jail
    }

    fn is_draining(&self) -> bool {
        Context::is_draining(self)
    }

    fn claim_here(&self) -> Option<HereClaim> {
        if self.is_draining() || self.root.get().is_none() {
            return None;
        }
        // Counted and taken under the lock of the executions here, so that
        // claims made at once see each other's places.
        let local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        let bound = self
            .options
            .max_started_here
            .min(self.options.max_executions_here);
        if local.len() + self.arriving.load(Ordering::SeqCst) >= bound {
            return None;
        }
        let place = Place::take(&self.arriving);
        drop(local);
        Some(HereClaim {
            claim: Claim {
                owner: self.options.node_id.clone(),
                incarnation: self.incarnation.clone(),
            },
            place,
        })
    }

    fn run_here(&self, record: ExecutionRecord, place: Place) {
        self.start_here(record, Some(place));
    }

    fn sandboxes(&self, tenant: TenantId) -> BoxFuture<'_, Result<Vec<SandboxInfo>, Error>> {
        Box::pin(self.ask_tenant(tenant, TenantMsg::ListSandboxes))
    }

    fn stop_sandbox(&self, tenant: TenantId, id: uuid::Uuid) -> BoxFuture<'_, Result<bool, Error>> {
        Box::pin(self.ask_tenant(tenant, move |reply| TenantMsg::StopSandbox { id, reply }))
    }
}

impl Context {
    /// Hands an execution this process holds to its actors, without
    /// waiting; `place` is the one its acceptance took here, if any.
    pub fn start_here(&self, record: ExecutionRecord, place: Option<Place>) {
        let Some(root) = self.root.get() else {
            return;
        };
        let (tenant, workflow) = (record.tenant, record.workflow);
        let msg = WorkflowMsg::Start {
            record: Box::new(record),
            reply: None,
            place,
        };
        let _ = root.cast(RootMsg::Route {
            tenant,
            workflow,
            msg,
        });
    }

    /// Asks the tenant's actor (spawned if it has none) and waits for its
    /// answer a bounded time.
    async fn ask_tenant<T: Send + 'static>(
        &self,
        tenant: TenantId,
        msg: impl FnOnce(ractor::RpcReplyPort<T>) -> TenantMsg,
    ) -> Result<T, Error> {
        let root = self.running_root()?;
        match root
            .call(
                |reply| RootMsg::Tenant {
                    tenant,
                    msg: msg(reply),
                },
                Some(ASK_TIMEOUT),
            )
            .await
        {
            Ok(CallResult::Success(answer)) => Ok(answer),
            _ => Err(Error::Unavailable(
                "the tenant's actor did not answer".into(),
            )),
        }
    }

    /// The actor tree, once it runs.
    fn running_root(&self) -> Result<&ActorRef<RootMsg>, Error> {
        self.root
            .get()
            .ok_or_else(|| Error::Unavailable("the engine is starting".into()))
    }
}
