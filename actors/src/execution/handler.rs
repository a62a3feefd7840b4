//! The failure handler: a run that ends failed or timed out starts its
//! workflow's `on_error_workflow` with what failed as its input. The
//! handler's execution is recorded in the turn that ends the run, so that
//! neither is lost without the other (a lost start command leaves it to
//! the claim sweep); the end commits once, so it is one per run. A run
//! that is itself a handler, or a test run, starts none.

use flowmesh_model::lifecycle::ExecutionTransition;
use flowmesh_model::{Command, ExecutionId, WorkflowId};
use flowmesh_store::{ExecutionRecord, NewExecution};
use serde_json::json;

use super::ExecutionState;
use super::calls::entry;
use crate::context::Context;
use flowmesh_services::metrics;

/// A run's failure, as its failure handler is told of it.
pub(crate) struct Failure<'a> {
    pub record: &'a ExecutionRecord,
    /// The workflow's `on_error_workflow`.
    pub handler: WorkflowId,
    /// `failed` or `timed_out`.
    pub status: &'static str,
    pub failed_node: Option<&'a str>,
    pub error: Option<&'a str>,
}

impl ExecutionState {
    /// The handler run this end starts, if the workflow names one that
    /// can start: published, with a trigger.
    pub(super) async fn failure_handler(
        &self,
        t: ExecutionTransition,
        error: Option<&str>,
    ) -> Option<NewExecution> {
        let status = match t {
            ExecutionTransition::Fail => "failed",
            ExecutionTransition::TimeOut => "timed_out",
            _ => return None,
        };
        let failed_node = self.progress.first_failure().map(|(node, _)| node);
        let failure = Failure {
            record: &self.record,
            handler: self.progress.graph.document.settings.on_error_workflow?,
            status,
            failed_node: failed_node.as_deref(),
            error,
        };
        handler_run(&self.ctx, &failure).await
    }
}

/// The handler run a failure starts; none for a run that is itself a
/// handler, a test run, or a handler that cannot start (logged).
pub(crate) async fn handler_run(ctx: &Context, failure: &Failure<'_>) -> Option<NewExecution> {
    let (record, handler) = (failure.record, failure.handler);
    if record.handles.is_some() || record.test.is_some() {
        return None;
    }
    let entry = entry(ctx, record, handler, None).await;
    let entry = match entry.map_err(|e| e.to_string()).and_then(|entry| entry) {
        Ok(entry) => entry,
        Err(why) => {
            tracing::warn!(execution = %record.id, handler = %handler, "failure handler not started: {why}");
            return None;
        }
    };
    let input = json!({
        "failed_node": failure.failed_node,
        "error": failure.error,
        "execution": {"id": record.id, "status": failure.status},
        "workflow": {"id": record.workflow, "version": record.version},
        "trigger": record.trigger,
    });
    Some(NewExecution {
        id: ExecutionId::new(),
        tenant: record.tenant,
        workflow: handler,
        version: entry.version,
        trigger_node: entry.trigger_node,
        trigger: json!({"body": input, "headers": {}, "query": {}}),
        // No key: the ending turn commits once, and a key the tenant
        // could send itself would let a start of its own stand in.
        idempotency_key: None,
        fingerprint: None,
        deadline_ms: entry.deadline_ms,
        origin: None,
        steps: Vec::new(),
        traceparent: record.traceparent.clone(),
        test: None,
        handles: Some(record.id),
        called_by: None,
    })
}

/// Asks for the handler recorded with the end to run; if the command is
/// lost, the claim sweep starts it.
pub(crate) async fn start_handler(ctx: &Context, handler: &NewExecution) {
    metrics::execution_started(handler.tenant, handler.workflow);
    let command = Command::start(handler.tenant, handler.workflow, handler.id);
    if let Err(e) = ctx.bus.publish_command(&command, None).await {
        tracing::warn!(execution = %handler.id, error = %e, "start command for a failure handler not published; the claim sweep starts it");
    }
}
