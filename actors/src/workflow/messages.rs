use flowmesh_model::ExecutionId;
use flowmesh_store::ExecutionRecord;
use ractor::RpcReplyPort;

use flowmesh_services::{Error, Place};

pub enum WorkflowMsg {
    /// Run (or resume) an execution this process has just claimed, as the
    /// claim returned it; replies once its actor's first turn is committed
    /// (or it already had an actor here, or is known finished).
    Start {
        record: Box<ExecutionRecord>,
        reply: Option<RpcReplyPort<Result<(), Error>>>,
        /// The place its acceptance took here, held until its actor runs.
        place: Option<Place>,
    },
    /// Cancel an execution if it runs here.
    Cancel { execution: ExecutionId },
    /// Resumes arrived for an execution: its actor applies them if it runs here.
    Signal { execution: ExecutionId },
    /// Spawn a failed execution again, as its restart policy asked.
    Restart { execution: ExecutionId },
    /// Shutdown: every execution here stops starting nodes.
    Drain,
    /// Its own: whether it has been idle long enough to say so to its tenant.
    IdleCheck,
}

impl WorkflowMsg {
    /// Whether its tenant sent it (the others it sends itself).
    pub fn is_from_parent(&self) -> bool {
        !matches!(self, WorkflowMsg::Restart { .. } | WorkflowMsg::IdleCheck)
    }
}
