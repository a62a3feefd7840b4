//! The engine service (owns the actor tree and the loops that feed it) and
//! its cheap-to-clone handle for callers.

mod accounts;
mod admission;
mod api;
mod billing;
mod generate;
mod logins;
mod loops;
mod operate;
mod registrations;
mod resume;
mod retention;
mod sandboxes;
mod schedule;
mod streams;
mod templates;
mod text;
mod triggers;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use flowmesh_bus::Bus;
use flowmesh_node_handlers::Registry;
use flowmesh_store::Store;
use ractor::{Actor, ActorRef};
use tokio::task::JoinHandle;

pub use accounts::{AcceptRequest, LoginRequest, RegisterRequest, Session};
pub use api::{EngineHandle, Outcome, Readiness, StartRequest, Started, Until};
pub use billing::{GrantRequest, LedgerOnly, PaymentProvider, Receipt, RefillRequest};
pub use generate::{GenerateRequest, Generated, MAX_PROMPT_CHARS};
pub use logins::LoginOptions;
pub use operate::{NodeLog, RerunRequest, WorkflowStats};
pub use registrations::RegistrationLimit;
pub use resume::ResumeRequest;
pub use retention::Settings;
pub use templates::{InstantiateRequest, Parameter, ParameterType, Template};
pub use text::VISIBLE;
pub(crate) use text::blank;
pub use webhooks::{AuthenticatedWebhook, WebhookRequest};

use crate::context::Context;
use crate::error::Error;
use crate::options::Options;
use crate::root::{RootActor, RootMsg};
use crate::runner::{NodeRunner, RegistryRunner};

/// What the engine is built from.
pub struct EngineParts {
    pub store: Store,
    pub bus: Bus,
    pub registry: Registry,
    /// Runs node attempts; the registry when `None`.
    pub runner: Option<Arc<dyn NodeRunner>>,
    /// Seals tenants' secrets; without one the secrets API is unavailable.
    pub sealing_key: Option<flowmesh_store::SealingKey>,
    /// Pays automatic refills of credits.
    pub payments: Arc<dyn PaymentProvider>,
    pub options: Options,
}

/// The running engine of one process.
pub struct Engine {
    handle: EngineHandle,
    ctx: Arc<Context>,
    /// The actor tree; none in a gateway.
    tree: Option<Tree>,
    loops: Vec<JoinHandle<()>>,
}

struct Tree {
    root: ActorRef<RootMsg>,
    task: JoinHandle<()>,
}

/// Drops what expired from every cache, however idle the process is.
async fn sweep_caches(handle: EngineHandle) {
    let every = crate::cache::sweep_every(handle.ctx.options.actor_idle_after.0);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        handle.sweep_caches();
    }
}

impl EngineHandle {
    pub(crate) fn sweep_caches(&self) {
        self.ctx.sweep_caches();
        self.graphs.run_pending_tasks();
        self.auth.0.run_pending_tasks();
        self.credits.0.run_pending_tasks();
        self.limits.0.run_pending_tasks();
        self.logins.sweep();
        self.registrations.sweep();
        self.registry.llm().sweep();
    }

    /// Entries of each cache of tenants, workflows and credentials, after a sweep.
    #[cfg(test)]
    pub(crate) fn cached(&self) -> Vec<(&'static str, u64)> {
        self.sweep_caches();
        let mut cached = self.ctx.cached();
        cached.extend([
            ("graphs", self.graphs.entry_count()),
            ("credentials", self.auth.0.entry_count()),
            ("balances", self.credits.0.entry_count()),
            ("rate limits", self.limits.0.entry_count()),
        ]);
        cached
    }
}

impl Engine {
    /// Starts what the process's role runs: the actor tree and the loops
    /// that feed it and keep time (consuming commands, claiming unowned
    /// executions, renewing the lease, firing schedules, purging, settling
    /// credits), and the NATS trigger subscription.
    pub async fn start(parts: EngineParts) -> Result<Engine, Error> {
        let runner = parts
            .runner
            .unwrap_or_else(|| Arc::new(RegistryRunner(parts.registry.clone())));
        let ctx = Arc::new(Context::new(crate::context::Parts {
            store: parts.store,
            bus: parts.bus,
            runner,
            sealing_key: parts.sealing_key,
            payments: parts.payments,
            options: parts.options,
        }));
        let handle = EngineHandle::new(ctx.clone(), parts.registry);
        let role = ctx.options.role;
        let mut loops = Vec::new();
        let mut tree = None;
        if role.runs_executions() {
            let (root, task) = Actor::spawn(None, RootActor, ctx.clone())
                .await
                .map_err(|e| Error::Internal(Box::new(e)))?;
            let _ = ctx.root.set(root.clone());
            loops.extend(loops::spawn_all(ctx.clone(), root.clone()).await?);
            // Ticks are admitted like any start, through the handle.
            loops.push(tokio::spawn(schedule::fire_schedules(handle.clone())));
            tree = Some(Tree { root, task });
        }
        // Every role keeps caches of tenants and credentials.
        loops.push(tokio::spawn(sweep_caches(handle.clone())));
        if role.serves_requests()
            && let Some(triggers) = ctx.bus.triggers().await?
        {
            loops.push(tokio::spawn(triggers::serve(handle.clone(), triggers)));
        }
        Ok(Engine {
            handle,
            ctx,
            tree,
            loops,
        })
    }

    pub fn handle(&self) -> EngineHandle {
        self.handle.clone()
    }

    /// The top of the actor tree, for tests that look at what runs.
    #[cfg(test)]
    pub(crate) fn root(&self) -> &ActorRef<RootMsg> {
        &self
            .tree
            .as_ref()
            .expect("this role runs the actor tree")
            .root
    }

    /// Handles a start command as the command consumer would: lets tests
    /// deliver one again, late or concurrently.
    #[cfg(test)]
    pub(crate) async fn deliver(&self, command: &flowmesh_model::Command) -> Result<(), Error> {
        let tree = self.tree.as_ref().expect("the engine runs executions");
        loops::start(&self.ctx, &tree.root, command).await
    }

    /// Graceful stop: take no new work, let running node attempts finish
    /// within the grace period, then stop. What is unfinished stays in the
    /// journal and resumes at the next start (or on another process).
    pub async fn shutdown(self) {
        for task in &self.loops {
            task.abort();
        }
        let Some(tree) = self.tree else {
            return;
        };
        self.ctx.start_draining();
        let _ = tree.root.cast(RootMsg::Drain);
        let grace: Duration = self.ctx.options.shutdown_grace.0;
        if tokio::time::timeout(grace, self.ctx.executions_gone())
            .await
            .is_err()
        {
            tracing::warn!(
                ?grace,
                "node attempts still running at the end of the grace period; they will run again"
            );
        }
        tree.root.stop(Some("shutdown".into()));
        let _ = tree.task.await;
        // Hand the leases back so another process can take over at once.
        if let Err(e) = self
            .ctx
            .store
            .release_leases(&self.ctx.options.node_id)
            .await
        {
            tracing::warn!(error = %e, "could not release leases; they will expire");
        }
    }
}
