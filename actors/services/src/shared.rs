//! What the services of one process share: the store, the bus, the
//! options, and the few caches and ports several of them read.

use std::sync::Arc;
use std::time::Duration;

use flowmesh_bus::Bus;
use flowmesh_model::TenantId;
use flowmesh_node_handlers::llm::{self, TenantEndpoint, TenantEndpoints};
use flowmesh_node_handlers::{SecretError, SecretSource};
use flowmesh_store::{SealingKey, Store, TenantSettings};
use futures::future::BoxFuture;

use crate::billing::PaymentProvider;
use crate::cache::{Bound, Cache};
use crate::options::Options;
use crate::runtime::Runtime;

pub(crate) struct Shared {
    pub store: Store,
    pub bus: Bus,
    pub options: Options,
    /// Seals tenants' secrets; none when the instance has no key.
    pub sealing_key: Option<SealingKey>,
    pub secrets: StoreSecrets,
    pub endpoints: StoreEndpoints,
    pub payments: Arc<dyn PaymentProvider>,
    pub settings: SettingsCache,
    /// The actor runtime of this process.
    pub runtime: Arc<dyn Runtime>,
    /// Code nodes' limits: the defaults and the maxima, the instance's and
    /// particular tenants'.
    pub sandbox: flowmesh_sandbox::Options,
    /// Set when the process stops serving: synchronous callers still
    /// waiting are answered at once with their execution's id.
    pub stopping: tokio::sync::watch::Sender<bool>,
    /// The start queue's depth, for shedding starts past capacity.
    pub backlog: crate::capacity::Backlog,
}

/// Secrets of the tenant an action runs for, opened from the store.
#[derive(Clone)]
pub struct StoreSecrets {
    store: Store,
    key: Option<SealingKey>,
}

impl StoreSecrets {
    pub fn new(store: Store, key: Option<SealingKey>) -> Self {
        Self { store, key }
    }
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

/// Tenants' own model endpoints, read from the store.
#[derive(Clone)]
pub struct StoreEndpoints {
    store: Store,
}

impl StoreEndpoints {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

impl TenantEndpoints for StoreEndpoints {
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

/// How long a tenant's settings are used before they are read again: a
/// change reaches every process within this.
const SETTINGS_TTL: Duration = Duration::from_secs(10);
/// Most tenants whose settings are kept.
const TENANTS_KEPT: u64 = 100_000;

/// Tenants' settings, within the operator's bounds, read again after
/// [`SETTINGS_TTL`]. Cheap to clone: clones share one cache.
#[derive(Clone)]
pub struct SettingsCache {
    store: Store,
    /// The operator's bound on a tenant's output cap.
    max_output_bytes: u64,
    cache: Cache<TenantId, TenantSettings>,
}

impl SettingsCache {
    /// `idle`: an entry unused this long goes.
    pub fn new(store: Store, max_output_bytes: u64, idle: Duration) -> Self {
        Self {
            store,
            max_output_bytes,
            cache: Bound {
                entries: TENANTS_KEPT,
                live: Some(SETTINGS_TTL),
                idle: Some(idle),
            }
            .build(),
        }
    }

    /// Drops a tenant's cached settings: this process sees a change at once.
    pub fn forget(&self, tenant: TenantId) {
        self.cache.invalidate(&tenant);
    }

    /// Drops what expired (see `crate::cache`).
    pub fn sweep(&self) {
        self.cache.run_pending_tasks();
    }

    /// Entries kept, after a sweep.
    pub fn entry_count(&self) -> u64 {
        self.sweep();
        self.cache.entry_count()
    }

    /// Settings within the operator's bounds: a cap set before the operator
    /// lowered the bound obeys the bound.
    fn bounded(&self, mut settings: TenantSettings) -> TenantSettings {
        settings.max_output_bytes = settings.max_output_bytes.min(self.max_output_bytes as i64);
        settings
    }

    /// A tenant's settings; the defaults while the store cannot say.
    pub async fn get(&self, tenant: TenantId) -> TenantSettings {
        if let Some(settings) = self.cache.get(&tenant) {
            return settings;
        }
        match self.store.tenant_settings(tenant).await {
            Ok(found) => {
                let settings = self.bounded(found.unwrap_or_default());
                self.cache.insert(tenant, settings);
                settings
            }
            Err(e) => {
                tracing::warn!(%tenant, error = %e, "could not read tenant settings; using the defaults");
                self.bounded(TenantSettings::default())
            }
        }
    }
}
