use flowmesh_model::WorkflowId;
use flowmesh_sandbox::{Language, Limits};
use ractor::{ActorId, RpcReplyPort};

use crate::sandbox::SandboxHandle;
use crate::workflow::WorkflowMsg;
use flowmesh_services::SandboxInfo;

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
    /// A workflow's actor has had nothing to do for the idle period,
    /// having handled `handled` messages from here (see `crate::idle`).
    WorkflowIdle {
        workflow: WorkflowId,
        actor: ActorId,
        handled: u64,
    },
    /// Its own: whether it has been idle long enough to say so to the root.
    IdleCheck,
}

impl TenantMsg {
    /// Whether the root sent it (the others come from its children or itself).
    pub fn is_from_parent(&self) -> bool {
        !matches!(self, TenantMsg::WorkflowIdle { .. } | TenantMsg::IdleCheck)
    }
}
