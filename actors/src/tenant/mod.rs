//! TenantActor: one per tenant with work in this process; supervises the
//! tenant's workflow actors and sandbox actors, so that one tenant's
//! failures (and code) stay its own: a sandbox never serves two tenants.

mod messages;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use flowmesh_model::{TenantId, WorkflowId};
use flowmesh_sandbox::{Language, Limits};
use flowmesh_store::now_ms;
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};

pub(crate) use messages::TenantMsg;

use crate::children::Children;
use crate::context::Context;
use crate::idle::Idleness;
use crate::root::RootMsg;
use crate::sandbox::{SandboxActor, SandboxEntry, SandboxHandle, SandboxMsg};
use crate::workflow::{WorkflowActor, WorkflowArgs, WorkflowMsg};

pub(crate) struct TenantActor;

pub(crate) struct TenantArgs {
    pub ctx: Arc<Context>,
    /// Its parent, told when it is idle.
    pub root: ActorRef<RootMsg>,
    pub tenant: TenantId,
}

pub(crate) struct TenantState {
    ctx: Arc<Context>,
    root: ActorRef<RootMsg>,
    tenant: TenantId,
    /// For the tenant's own sandbox maxima; `None` if it could not be read.
    slug: Option<String>,
    workflows: Children<WorkflowId, WorkflowMsg>,
    sandboxes: Children<Language, SandboxMsg>,
    sandbox_entries: HashMap<Language, SandboxEntry>,
    idle: Idleness,
    _live: flowmesh_services::metrics::Live,
}

impl Actor for TenantActor {
    type Msg = TenantMsg;
    type State = TenantState;
    type Arguments = TenantArgs;

    async fn pre_start(
        &self,
        _: ActorRef<TenantMsg>,
        args: TenantArgs,
    ) -> Result<TenantState, ActorProcessingErr> {
        let slug = match args.ctx.store.tenant_slug(args.tenant).await {
            Ok(slug) => slug,
            Err(e) => {
                tracing::warn!(tenant = %args.tenant, error = %e, "could not read the tenant's slug; default sandbox maxima apply");
                None
            }
        };
        Ok(TenantState {
            idle: Idleness::new(args.ctx.options.actor_idle_after.0),
            ctx: args.ctx,
            root: args.root,
            tenant: args.tenant,
            slug,
            workflows: Children::new(),
            sandboxes: Children::new(),
            sandbox_entries: HashMap::new(),
            _live: flowmesh_services::metrics::Live::new("tenant"),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<TenantMsg>,
        msg: TenantMsg,
        state: &mut TenantState,
    ) -> Result<(), ActorProcessingErr> {
        if msg.is_from_parent() {
            state.idle.handled();
        }
        match msg {
            TenantMsg::Route { workflow, msg } => {
                let make = || {
                    let args = WorkflowArgs {
                        ctx: state.ctx.clone(),
                        tenant: myself.clone(),
                        workflow,
                    };
                    (WorkflowActor, args)
                };
                state
                    .workflows
                    .send(workflow, &myself.get_cell(), make, msg)
                    .await?;
            }
            TenantMsg::Sandbox { language, reply } => {
                let result = state.sandbox(&myself, language).await;
                let _ = reply.send(result);
            }
            TenantMsg::ListSandboxes(reply) => {
                let _ = reply.send(
                    state
                        .sandbox_entries
                        .values()
                        .map(SandboxEntry::info)
                        .collect(),
                );
            }
            TenantMsg::StopSandbox { id, reply } => {
                let found = state
                    .sandbox_entries
                    .iter()
                    .find(|(_, entry)| entry.id == id)
                    .map(|(language, _)| *language);
                if let Some(language) = found {
                    state.sandbox_entries.remove(&language);
                    if let Some(actor) = state.sandboxes.remove(&language) {
                        actor.stop(Some("deleted by an operator".into()));
                    }
                }
                let _ = reply.send(found.is_some());
            }
            TenantMsg::Drain => state.workflows.broadcast(|| WorkflowMsg::Drain),
            TenantMsg::WorkflowIdle {
                workflow,
                actor,
                handled,
            } => {
                if let Some(child) = state.workflows.idle(workflow, actor, handled) {
                    tracing::debug!(tenant = %state.tenant, %workflow, "stopping an idle workflow actor");
                    child.stop(Some("idle".into()));
                }
            }
            TenantMsg::IdleCheck => {
                let idle = state.is_idle();
                if let Some(handled) = state.idle.check(&myself, idle, || TenantMsg::IdleCheck) {
                    let actor = myself.get_id();
                    let tenant = state.tenant;
                    let _ = state.root.cast(RootMsg::TenantIdle {
                        tenant,
                        actor,
                        handled,
                    });
                }
                return Ok(());
            }
        }
        let idle = state.is_idle();
        state.idle.arm(&myself, idle, || TenantMsg::IdleCheck);
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<TenantMsg>,
        event: SupervisionEvent,
        state: &mut TenantState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some((_, error)) = state.workflows.on_supervision(&event) {
            if let Some(error) = error {
                tracing::error!(tenant = %state.tenant, %error, "workflow actor failed; it is spawned again on demand");
            }
        } else if let Some((language, error)) = state.sandboxes.on_supervision(&event) {
            state.sandbox_entries.remove(&language);
            if let Some(error) = error {
                tracing::warn!(tenant = %state.tenant, language = language.as_str(), %error, "sandbox failed; a fresh one is created on demand");
            }
        }
        let idle = state.is_idle();
        state.idle.arm(&myself, idle, || TenantMsg::IdleCheck);
        Ok(())
    }
}

impl TenantState {
    /// Nothing runs for the tenant here: no workflow actor, no sandbox.
    fn is_idle(&self) -> bool {
        self.workflows.is_empty() && self.sandboxes.is_empty()
    }

    async fn sandbox(
        &mut self,
        myself: &ActorRef<TenantMsg>,
        language: Language,
    ) -> Result<(SandboxHandle, Limits), String> {
        let maxima = match &self.slug {
            Some(slug) => self.ctx.options.sandbox.maxima_for(slug).clone(),
            None => self.ctx.options.sandbox.maxima.clone(),
        };
        if let Some(entry) = self.sandbox_entries.get(&language) {
            return Ok((entry.handle.clone(), maxima));
        }
        // Each tenant's code, in either language, runs as its own host uid.
        let uid = self.sandbox_uid().await?;
        let ctx = self.ctx.clone();
        let child = self
            .sandboxes
            .get_or_spawn(language, &myself.get_cell(), || {
                (SandboxActor, (ctx, language, uid))
            })
            .await
            .map_err(|e| format!("could not start a {} sandbox: {e}", language.as_str()))?;
        let handle = child
            .call(SandboxMsg::Handle, Some(Duration::from_secs(10)))
            .await
            .ok()
            .and_then(|result| match result {
                ractor::rpc::CallResult::Success(handle) => Some(handle),
                _ => None,
            })
            .ok_or_else(|| format!("the {} sandbox did not start", language.as_str()))?;
        self.sandbox_entries.insert(
            language,
            SandboxEntry {
                id: uuid::Uuid::new_v4(),
                language,
                handle: handle.clone(),
                created_at: now_ms(),
            },
        );
        Ok((handle, maxima))
    }

    /// The host uid of the tenant's code (its own), when the engine is root.
    async fn sandbox_uid(&self) -> Result<Option<u32>, String> {
        let jail = &self.ctx.jail;
        if !jail.uid_per_tenant {
            return Ok(None);
        }
        let number = self
            .ctx
            .store
            .sandbox_number(self.tenant)
            .await
            .map_err(|e| format!("could not read the tenant's sandbox number: {e}"))?;
        let number = u32::try_from(number).unwrap_or(u32::MAX);
        jail.tenant_uid(number).map_err(|failure| failure.message)
    }
}
