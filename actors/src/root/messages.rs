use flowmesh_model::{TenantId, WorkflowId};

use crate::workflow::WorkflowMsg;

pub enum RootMsg {
    /// Deliver to a workflow's actor under its tenant, spawning both when needed.
    Route {
        tenant: TenantId,
        workflow: WorkflowId,
        msg: WorkflowMsg,
    },
    /// Shutdown: pass on to every tenant.
    Drain,
}
