//! TenantActor: one per tenant with work in this process; supervises the
//! tenant's workflow actors, so that one tenant's failures stay its own.

mod messages;

use std::collections::HashMap;
use std::sync::Arc;

use flowmesh_model::{TenantId, WorkflowId};
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};

pub(crate) use messages::TenantMsg;

use crate::children::Children;
use crate::context::Context;
use crate::workflow::{WorkflowActor, WorkflowArgs, WorkflowMsg};

pub(crate) struct TenantActor;

pub(crate) struct TenantArgs {
    pub ctx: Arc<Context>,
    pub tenant: TenantId,
}

pub(crate) struct TenantState {
    ctx: Arc<Context>,
    tenant: TenantId,
    workflows: Children<WorkflowId, WorkflowMsg>,
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
        Ok(TenantState {
            ctx: args.ctx,
            tenant: args.tenant,
            workflows: Children::new(HashMap::new()),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<TenantMsg>,
        msg: TenantMsg,
        state: &mut TenantState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            TenantMsg::Route { workflow, msg } => {
                let ctx = state.ctx.clone();
                let child = state
                    .workflows
                    .get_or_spawn(workflow, &myself.get_cell(), || {
                        (WorkflowActor, WorkflowArgs { ctx, workflow })
                    })
                    .await?;
                child.cast(msg)?;
            }
            TenantMsg::Drain => state.workflows.broadcast(|| WorkflowMsg::Drain),
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _: ActorRef<TenantMsg>,
        event: SupervisionEvent,
        state: &mut TenantState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(error) = state.workflows.on_supervision(&event) {
            tracing::error!(tenant = %state.tenant, %error, "workflow actor failed; it is spawned again on demand");
        }
        Ok(())
    }
}
