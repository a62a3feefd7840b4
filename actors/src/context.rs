//! What every actor of one engine process shares.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use flowmesh_bus::Bus;
use flowmesh_model::{ExecutionEvent, ExecutionId, TenantId};
use flowmesh_node_handlers::llm::{self, TenantEndpoint, TenantEndpoints};
use flowmesh_node_handlers::{CodeRequest, Sandboxes, SecretError, SecretSource};
use flowmesh_sandbox::{Call, Class, Failure, Jail, Returned};
use flowmesh_store::{SealingKey, Store, TenantSettings};
use futures::future::BoxFuture;
use ractor::ActorRef;
use ractor::rpc::CallResult;
use tokio::sync::Notify;

use crate::cache::{Bound, Cache};
use crate::engine::PaymentProvider;
use crate::options::Options;
use crate::root::RootMsg;
use crate::runner::NodeRunner;
use crate::tenant::TenantMsg;

pub(crate) struct Context {
    pub store: Store,
    pub bus: Bus,
    pub runner: Arc<dyn NodeRunner>,
    /// Tenants' secrets, for the actions that use them.
    pub secrets: StoreSecrets,
    /// Seals tenants' secrets; none when the instance has no key.
    pub sealing_key: Option<SealingKey>,
    pub payments: Arc<dyn PaymentProvider>,
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
    /// Set on shutdown: executions start no new node attempts.
    draining: AtomicBool,
    /// Signalled whenever an execution actor leaves this process.
    execution_left: Notify,
    /// Tenants' settings, read again after [`SETTINGS_TTL`].
    settings: Cache<TenantId, TenantSettings>,
    /// Tenants' slugs, for their public event subjects.
    slugs: Cache<TenantId, String>,
}

/// How long a tenant's settings are used before they are read again: a
/// change reaches every process within this.
const SETTINGS_TTL: Duration = Duration::from_secs(10);
/// Most tenants whose settings or slug are kept.
const TENANTS_KEPT: u64 = 100_000;

/// What a [`Context`] is made of.
pub(crate) struct Parts {
    pub store: Store,
    pub bus: Bus,
    pub runner: Arc<dyn NodeRunner>,
    pub sealing_key: Option<SealingKey>,
    pub payments: Arc<dyn PaymentProvider>,
    pub options: Options,
}

/// Secrets of the tenant an action runs for, opened from the store.
pub(crate) struct StoreSecrets {
    store: Store,
    key: Option<SealingKey>,
}

impl SecretSource for StoreSecrets {
    fn secret<'a>(
        &'a self,
        tenant: TenantId,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, SecretError>> {
        Box::pin(async move {
            let Some(key) = &self.key else {
                return Err(SecretError::unavailable(
                    "secrets are not set up on this instance (FLOWMESH_SECRETS_KEY)",
                ));
            };
            self.store
                .secret_value(key, tenant, name)
                .await
                .map_err(|e| {
                    if e.is_retryable() {
                        SecretError::Retryable(Arc::new(e))
                    } else {
                        SecretError::Unavailable(Arc::new(e))
                    }
                })
        })
    }
}

impl Context {
    pub fn new(parts: Parts) -> Self {
        let jail = if parts.options.role.runs_executions() {
            Jail::detect(&parts.options.sandbox.jail).logged()
        } else {
            Jail::unused(&parts.options.sandbox.jail, "a gateway runs no code")
        };
        let idle = Some(parts.options.actor_idle_after.0);
        Self {
            secrets: StoreSecrets {
                store: parts.store.clone(),
                key: parts.sealing_key.clone(),
            },
            store: parts.store,
            bus: parts.bus,
            runner: parts.runner,
            sealing_key: parts.sealing_key,
            payments: parts.payments,
            options: parts.options,
            jail,
            incarnation: uuid::Uuid::new_v4().simple().to_string(),
            root: OnceLock::new(),
            local: Mutex::default(),
            draining: AtomicBool::new(false),
            execution_left: Notify::new(),
            settings: Bound {
                entries: TENANTS_KEPT,
                live: Some(SETTINGS_TTL),
                idle,
            }
            .build(),
            slugs: Bound {
                entries: TENANTS_KEPT,
                live: None,
                idle,
            }
            .build(),
        }
    }

    /// Drops what expired from the caches (see `crate::cache`).
    pub fn sweep_caches(&self) {
        self.settings.run_pending_tasks();
        self.slugs.run_pending_tasks();
    }

    /// Entries of each cache, after a sweep.
    #[cfg(test)]
    pub fn cached(&self) -> Vec<(&'static str, u64)> {
        self.sweep_caches();
        vec![
            ("settings", self.settings.entry_count()),
            ("slugs", self.slugs.entry_count()),
        ]
    }

    pub fn mark_local(&self, id: ExecutionId, present: bool) {
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        if present {
            local.insert(id);
        } else {
            local.remove(&id);
            self.execution_left.notify_waiters();
        }
        crate::metrics::in_flight(local.len());
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

    /// Events are notifications; the journal is the record. A lost event is
    /// logged, never fatal.
    /// Drops a tenant's cached settings: this process sees a change at once.
    pub fn forget_settings(&self, tenant: TenantId) {
        self.settings.invalidate(&tenant);
    }

    /// Settings within the operator's bounds: a cap set before the operator
    /// lowered the bound obeys the bound.
    fn bounded(&self, mut settings: TenantSettings) -> TenantSettings {
        settings.max_output_bytes = settings
            .max_output_bytes
            .min(self.options.tenancy.max_output_bytes as i64);
        settings
    }

    /// A tenant's settings; the defaults while the store cannot say.
    pub async fn tenant_settings(&self, tenant: TenantId) -> TenantSettings {
        if let Some(settings) = self.settings.get(&tenant) {
            return settings;
        }
        match self.store.tenant_settings(tenant).await {
            Ok(found) => {
                let settings = self.bounded(found.unwrap_or_default());
                self.settings.insert(tenant, settings);
                settings
            }
            Err(e) => {
                tracing::warn!(%tenant, error = %e, "could not read tenant settings; using the defaults");
                self.bounded(TenantSettings::default())
            }
        }
    }

    pub async fn emit(&self, event: ExecutionEvent) {
        let started = std::time::Instant::now();
        let published = self.bus.publish_event(&event).await;
        crate::metrics::bus_publish("event", started.elapsed());
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

impl TenantEndpoints for Context {
    fn tenant_endpoint(
        &self,
        tenant: TenantId,
    ) -> BoxFuture<'_, Result<TenantEndpoint, llm::Error>> {
        Box::pin(async move {
            let own =
                self.store
                    .model_settings(tenant)
                    .await
                    .map_err(|e| llm::Error::Settings {
                        retryable: e.is_retryable(),
                        source: Box::new(e),
                    })?;
            Ok(TenantEndpoint {
                base_url: own.base_url,
                model: own.model,
                api_key_secret: own.api_key_secret,
            })
        })
    }
}
