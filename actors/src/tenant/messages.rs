use flowmesh_model::WorkflowId;
use flowmesh_sandbox::{Language, Limits};
use ractor::RpcReplyPort;

use crate::sandbox::{SandboxHandle, SandboxInfo};
use crate::workflow::WorkflowMsg;

pub enum TenantMsg {
    /// Deliver to the workflow's actor, spawning it when needed.
    Route {
        workflow: WorkflowId,
        msg: WorkflowMsg,
    },
    /// The tenant's sandbox of a language (created on first use), and the
    /// most the tenant's code nodes may ask for.
    Sandbox {
        language: Language,
        reply: RpcReplyPort<Result<(SandboxHandle, Limits), String>>,
    },
    /// The tenant's live sandboxes in this process.
    ListSandboxes(RpcReplyPort<Vec<SandboxInfo>>),
    /// Tears a sandbox down; replies whether the tenant had it.
    StopSandbox {
        id: uuid::Uuid,
        reply: RpcReplyPort<bool>,
    },
    /// Shutdown: pass on to every workflow.
    Drain,
}
