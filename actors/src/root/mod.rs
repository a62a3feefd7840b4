//! RootActor: the top of the supervision tree; one TenantActor per tenant.

mod messages;

use std::sync::Arc;

use flowmesh_model::TenantId;
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};

pub(crate) use messages::RootMsg;

use crate::children::Children;
use crate::context::Context;
use crate::tenant::{TenantActor, TenantArgs, TenantMsg};

pub(crate) struct RootActor;

pub(crate) struct RootState {
    ctx: Arc<Context>,
    tenants: Children<TenantId, TenantMsg>,
    _live: flowmesh_services::metrics::Live,
}

impl Actor for RootActor {
    type Msg = RootMsg;
    type State = RootState;
    type Arguments = Arc<Context>;

    async fn pre_start(
        &self,
        _: ActorRef<RootMsg>,
        ctx: Arc<Context>,
    ) -> Result<RootState, ActorProcessingErr> {
        Ok(RootState {
            ctx,
            tenants: Children::new(),
            _live: flowmesh_services::metrics::Live::new("root"),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<RootMsg>,
        msg: RootMsg,
        state: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RootMsg::Route {
                tenant,
                workflow,
                msg,
            } => {
                let msg = TenantMsg::Route { workflow, msg };
                state.send(&myself, tenant, msg).await?;
            }
            RootMsg::Tenant { tenant, msg } => state.send(&myself, tenant, msg).await?,
            RootMsg::Drain => state.tenants.broadcast(|| TenantMsg::Drain),
            RootMsg::TenantIdle {
                tenant,
                actor,
                handled,
            } => {
                if let Some(child) = state.tenants.idle(tenant, actor, handled) {
                    tracing::debug!(%tenant, "stopping an idle tenant actor");
                    child.stop(Some("idle".into()));
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _: ActorRef<RootMsg>,
        event: SupervisionEvent,
        state: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some((_, Some(error))) = state.tenants.on_supervision(&event) {
            tracing::error!(%error, "tenant actor failed; it is spawned again on demand");
        }
        Ok(())
    }
}

impl RootState {
    /// Delivers to the tenant's actor, spawned when needed.
    async fn send(
        &mut self,
        myself: &ActorRef<RootMsg>,
        tenant: TenantId,
        msg: TenantMsg,
    ) -> Result<(), ActorProcessingErr> {
        let make = || {
            let args = TenantArgs {
                ctx: self.ctx.clone(),
                root: myself.clone(),
                tenant,
            };
            (TenantActor, args)
        };
        self.tenants
            .send(tenant, &myself.get_cell(), make, msg)
            .await
    }
}
