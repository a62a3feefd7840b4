use flowmesh_model::ExecutionId;
use ractor::RpcReplyPort;

use crate::error::Error;

pub enum WorkflowMsg {
    /// Run (or resume) an execution; replies once it is running here or known finished.
    Start {
        execution: ExecutionId,
        reply: Option<RpcReplyPort<Result<(), Error>>>,
    },
    /// Cancel an execution if it runs here.
    Cancel { execution: ExecutionId },
    /// Spawn a failed execution again, as its restart policy asked.
    Restart { execution: ExecutionId },
    /// Shutdown: every execution here stops starting nodes.
    Drain,
}
