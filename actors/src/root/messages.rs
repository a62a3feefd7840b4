use flowmesh_model::{TenantId, WorkflowId};

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
}
