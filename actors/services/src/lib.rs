//! The application layer: one cheap-to-clone [`EngineHandle`] with a
//! method per request (accounts, admission, billing, templates,
//! generation, retention, schedules, triggers, webhooks), over the store
//! and the bus. It runs no executions: it records them and publishes
//! commands, and the actor runtime (`flowmesh-actors`) runs them. What it
//! needs from the runtime of its own process goes through [`Runtime`].

mod accounts;
mod addresses;
mod admission;
mod api;
mod billing;
pub mod cache;
mod calls;
mod capacity;
mod error;
mod generate;
mod logins;
pub mod metrics;
mod operate;
mod options;
pub mod progress;
mod registrations;
mod rerun;
mod rerun_scope;
mod resume;
mod retention;
mod runtime;
mod sandboxes;
mod schedule;
pub mod scopes;
mod shared;
mod streams;
mod templates;
mod test_runs;
mod text;
pub mod trace;
mod triggers;
mod webhooks;
mod workflows;

use std::sync::Arc;

use flowmesh_bus::Bus;
use flowmesh_node_handlers::Registry;
use flowmesh_store::{SealingKey, Store};
use tokio::task::JoinHandle;

pub use addresses::source_block;
pub use api::{EngineHandle, Readiness, Started};
pub use billing::{LedgerOnly, PaymentProvider};
pub use error::{Cause, Error};
pub use flowmesh_node_handlers::llm::Usage as ModelUsage;
pub use flowmesh_sandbox::Jail;
pub use flowmesh_store::ModelSettings;
pub use generate::{Generated, MAX_PROMPT_CHARS};
pub use logins::LoginOptions;
pub use operate::{ListedWorkflow, WorkflowFilter, WorkflowState, WorkflowStats, mocked};
pub use options::{Options, Prices, ProcessRole, ScheduleLimits, Tenancy};
pub use registrations::RegistrationLimit;
pub use runtime::{HereClaim, NoRuntime, Place, Runtime, SandboxInfo};
pub use shared::{SettingsCache, StoreEndpoints, StoreSecrets};
pub use templates::{Parameter, ParameterType, Template};
pub use test_runs::mock_of;
pub use text::VISIBLE;
pub(crate) use text::blank;
pub use webhooks::AuthenticatedWebhook;
pub use workflows::{SaveRequest, VersionRecord};

/// Records the gateway shows; re-exported so that it needs no store dependency.
pub mod records {
    pub use flowmesh_store::{
        AuditQuery, AuditRecord, Balance, DailyUsage, EventScope, ExecutionPage, ExecutionQuery,
        ExecutionRecord, ExecutionSummary, InvitationInfo, KeyInfo, LedgerEntry, Origin,
        PLATFORM_TENANT, Principal, Resume, SealingKey, SecretInfo, StepRecord, StreamTicket,
        TenantInfo, TenantLimits, TestRun, UserInfo, VersionInfo, VersionsQuery, WorkflowRecord,
        WorkflowSummary, day_of, now_ms,
    };
}

/// What the services are built from.
pub struct Parts {
    pub store: Store,
    pub bus: Bus,
    pub registry: Registry,
    /// Seals tenants' secrets; without one the secrets API is unavailable.
    pub sealing_key: Option<SealingKey>,
    pub secrets: StoreSecrets,
    /// Pays automatic refills of credits.
    pub payments: Arc<dyn PaymentProvider>,
    /// Shared with the runtime, so that a change is seen by both at once.
    pub settings: SettingsCache,
    pub runtime: Arc<dyn Runtime>,
    /// The sandboxes' settings: the code limits saved workflows are checked
    /// against (the runtime's own, so that both apply the same).
    pub sandbox: flowmesh_sandbox::Options,
    pub options: Options,
}

/// Starts the loops the services own in this process's role: firing
/// schedules, purging, settling credits (where executions run), sweeping
/// caches (everywhere) and answering NATS triggers (where requests are
/// served). The caller aborts them on shutdown.
pub async fn spawn_loops(handle: &EngineHandle) -> Result<Vec<JoinHandle<()>>, Error> {
    let shared = handle.shared.clone();
    let role = shared.options.role;
    let mut loops = Vec::new();
    if role.runs_executions() {
        // Ticks are admitted like any start, through the handle.
        loops.push(tokio::spawn(schedule::fire_schedules(handle.clone())));
        loops.push(tokio::spawn(retention::purge(shared.clone())));
        loops.push(tokio::spawn(billing::settle(shared.clone())));
    }
    loops.push(tokio::spawn(sweep_caches(handle.clone())));
    if role.serves_requests() {
        loops.push(tokio::spawn(capacity::watch_queue(shared.clone())));
    }
    if role.serves_requests()
        && let Some(triggers) = shared.bus.triggers().await?
    {
        loops.push(tokio::spawn(triggers::serve(handle.clone(), triggers)));
    }
    Ok(loops)
}

/// Drops what expired from every cache, however idle the process is.
async fn sweep_caches(handle: EngineHandle) {
    let every = cache::sweep_every(handle.shared.options.cache_idle_after.0);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        handle.sweep_caches();
    }
}

impl EngineHandle {
    fn sweep_caches(&self) {
        self.shared.settings.sweep();
        self.graphs.run_pending_tasks();
        self.auth.0.run_pending_tasks();
        self.credits.0.run_pending_tasks();
        self.limits.0.run_pending_tasks();
        self.logins.sweep();
        self.registrations.sweep();
        self.registry.llm().sweep();
    }

    /// Entries of each cache of tenants, workflows and credentials, after
    /// a sweep: what tests of idle memory look at.
    pub fn cached(&self) -> Vec<(&'static str, u64)> {
        self.sweep_caches();
        vec![
            ("settings", self.shared.settings.entry_count()),
            ("graphs", self.graphs.entry_count()),
            ("credentials", self.auth.0.entry_count()),
            ("balances", self.credits.0.entry_count()),
            ("rate limits", self.limits.0.entry_count()),
        ]
    }
}
