use flowmesh_model::{TenantId, WorkflowId};
use ractor::ActorId;

use crate::tenant::TenantMsg;
use crate::workflow::WorkflowMsg;

pub enum RootMsg {
    /// Deliver to a workflow's actor under its tenant, spawning both when needed.
    Route {
        tenant: TenantId,
        workflow: WorkflowId,
        msg: WorkflowMsg,
    },
    /// Deliver to a tenant's actor, spawning it when needed.
    Tenant { tenant: TenantId, msg: TenantMsg },
    /// Shutdown: pass on to every tenant.
    Drain,
    /// A tenant's actor has had nothing to do for the idle period, having
    /// handled `handled` messages from here (see `crate::idle`).
    TenantIdle {
        tenant: TenantId,
        actor: ActorId,
        handled: u64,
    },
}
