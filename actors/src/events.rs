//! Where an execution's event numbering resumes.

use flowmesh_model::ExecutionStatus;
use flowmesh_store::ExecutionRecord;

use crate::context::Context;

/// The `seq` of the last event an execution published: 0 before it
/// started; else the newest event the bus still holds, or (when those have
/// aged out) a bound on what its journal can have announced, so that
/// numbering never goes back.
pub(crate) async fn last_seq(ctx: &Context, record: &ExecutionRecord) -> u64 {
    if record.status == ExecutionStatus::Queued {
        return 0;
    }
    match ctx.bus.last_event_seq(record.tenant, record.id).await {
        Ok(Some(seq)) => return seq,
        Ok(None) => {}
        Err(e) => {
            tracing::debug!(execution = %record.id, error = %e, "no last event; numbering from the journal")
        }
    }
    // Per node: a start and at most a retry per attempt, a wait, an end, a
    // response; per execution: a start and an end.
    2 + record
        .steps
        .iter()
        .map(|s| 2 * u64::from(s.attempts) + 3)
        .sum::<u64>()
}
