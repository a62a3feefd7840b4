//! Where an execution's event numbering resumes.

use flowmesh_model::ExecutionStatus;
use flowmesh_store::ExecutionRecord;

use crate::context::Context;

/// The `seq` of the last event an execution recorded: 0 before it started.
pub(crate) async fn last_seq(
    ctx: &Context,
    record: &ExecutionRecord,
) -> Result<u64, flowmesh_store::Error> {
    if record.status == ExecutionStatus::Queued {
        return Ok(0);
    }
    if let Some(seq) = record.last_event_seq {
        return Ok(seq);
    }
    ctx.store.last_event_seq(record.id).await
}
