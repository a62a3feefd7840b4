use flowmesh_model::WorkflowId;

use crate::workflow::WorkflowMsg;

pub enum TenantMsg {
    /// Deliver to the workflow's actor, spawning it when needed.
    Route {
        workflow: WorkflowId,
        msg: WorkflowMsg,
    },
    /// Shutdown: pass on to every workflow.
    Drain,
}
