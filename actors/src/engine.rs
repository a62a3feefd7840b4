//! The engine of one process: the services, and, where the role runs
//! executions, the actor tree and the loops that feed it.

use std::sync::Arc;
use std::time::Duration;

use flowmesh_bus::Bus;
use flowmesh_node_handlers::Registry;
use flowmesh_sandbox::Jail;
use flowmesh_services::{
    EngineHandle, Error, NoRuntime, PaymentProvider, Runtime, SettingsCache, StoreSecrets,
};
use flowmesh_store::{SealingKey, Store};
use ractor::{Actor, ActorRef};
use tokio::task::JoinHandle;

use crate::context::Context;
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
    pub sealing_key: Option<SealingKey>,
    /// Pays automatic refills of credits.
    pub payments: Arc<dyn PaymentProvider>,
    /// The actor runtime's settings (unused by a gateway but for its jail's report).
    pub options: Options,
    /// The services' settings, the process's role among them.
    pub services: flowmesh_services::Options,
}

/// The running engine of one process.
pub struct Engine {
    handle: EngineHandle,
    /// The actor tree; none in a gateway.
    tree: Option<Tree>,
    loops: Vec<JoinHandle<()>>,
}

struct Tree {
    ctx: Arc<Context>,
    root: ActorRef<RootMsg>,
    task: JoinHandle<()>,
}

impl Engine {
    /// Starts what the process's role runs: the services and their loops
    /// (schedules, purging, settling credits, NATS triggers), and where
    /// executions run, the actor tree and the loops that feed it
    /// (consuming commands, claiming unowned executions, renewing the
    /// lease).
    pub async fn start(parts: EngineParts) -> Result<Engine, Error> {
        let options = parts.options;
        let services = parts.services;
        let settings = SettingsCache::new(
            parts.store.clone(),
            services.tenancy.max_output_bytes,
            services.cache_idle_after.0,
        );
        let secrets = StoreSecrets::new(parts.store.clone(), parts.sealing_key.clone());
        let ctx = services.role.runs_executions().then(|| {
            let runner = parts
                .runner
                .unwrap_or_else(|| Arc::new(RegistryRunner(parts.registry.clone())));
            Arc::new(Context::new(crate::context::Parts {
                store: parts.store.clone(),
                bus: parts.bus.clone(),
                runner,
                secrets: secrets.clone(),
                settings: settings.clone(),
                options: options.clone(),
            }))
        });
        let runtime: Arc<dyn Runtime> = match &ctx {
            Some(ctx) => ctx.clone(),
            None => Arc::new(NoRuntime {
                jail: Jail::unused(&options.sandbox.jail, "a gateway runs no code"),
            }),
        };
        let handle = EngineHandle::new(flowmesh_services::Parts {
            store: parts.store,
            bus: parts.bus,
            registry: parts.registry,
            sealing_key: parts.sealing_key,
            secrets,
            payments: parts.payments,
            settings,
            runtime,
            sandbox: options.sandbox.clone(),
            options: services,
        });
        let mut loops = Vec::new();
        let mut tree = None;
        if let Some(ctx) = ctx {
            let (root, task) = Actor::spawn(None, RootActor, ctx.clone())
                .await
                .map_err(|e| Error::Internal(Box::new(e)))?;
            let _ = ctx.root.set(root.clone());
            loops.extend(crate::loops::spawn_all(ctx.clone(), root.clone()).await?);
            tree = Some(Tree { ctx, root, task });
        }
        loops.extend(flowmesh_services::spawn_loops(&handle).await?);
        Ok(Engine {
            handle,
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
        &self.tree().root
    }

    #[cfg(test)]
    fn tree(&self) -> &Tree {
        self.tree.as_ref().expect("this role runs the actor tree")
    }

    /// Tenants' slugs the actors keep, after a sweep.
    #[cfg(test)]
    pub(crate) fn cached_slugs(&self) -> u64 {
        self.tree().ctx.cached_slugs()
    }

    /// Handles a start command as the command consumer would: lets tests
    /// deliver one again, late or concurrently.
    #[cfg(test)]
    pub(crate) async fn deliver(&self, command: &flowmesh_model::Command) -> Result<(), Error> {
        let tree = self.tree();
        crate::loops::start(&tree.ctx, &tree.root, command).await
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
        let ctx = tree.ctx;
        ctx.start_draining();
        let _ = tree.root.cast(RootMsg::Drain);
        let grace: Duration = ctx.options.shutdown_grace.0;
        if tokio::time::timeout(grace, ctx.executions_gone())
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
        if let Err(e) = ctx.store.release_leases(&ctx.options.node_id).await {
            tracing::warn!(error = %e, "could not release leases; they will expire");
        }
    }
}
