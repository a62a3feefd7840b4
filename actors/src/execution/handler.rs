//! The failure handler: a run that ends failed or timed out starts its
//! workflow's `on_error_workflow` with what failed as its input. The
//! handler's execution is recorded in the turn that ends the run, so that
//! neither is lost without the other (a lost start command leaves it to
//! the claim sweep); the end commits once, so it is one per run. A run
//! that is itself a handler, or a test run, starts none.

use flowmesh_model::lifecycle::ExecutionTransition;
use flowmesh_model::{Command, ExecutionId};
use flowmesh_store::NewExecution;
use serde_json::json;

use super::ExecutionState;
use flowmesh_services::metrics;

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
        let handler = self.progress.graph.document.settings.on_error_workflow?;
        if self.record.handles.is_some() || self.record.test.is_some() {
            return None;
        }
        let entry = self.entry(handler, None).await;
        let entry = match entry.map_err(|e| e.to_string()).and_then(|entry| entry) {
            Ok(entry) => entry,
            Err(why) => {
                tracing::warn!(execution = %self.record.id, handler = %handler, "failure handler not started: {why}");
                return None;
            }
        };
        let input = json!({
            "failed_node": self.progress.first_failure().map(|(node, _)| node),
            "error": error,
            "execution": {"id": self.record.id, "status": status},
            "workflow": {"id": self.record.workflow, "version": self.record.version},
            "trigger": self.record.trigger,
        });
        Some(NewExecution {
            id: ExecutionId::new(),
            tenant: self.record.tenant,
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
            traceparent: self.record.traceparent.clone(),
            test: None,
            handles: Some(self.record.id),
            called_by: None,
        })
    }

    /// Asks for the handler recorded with the end to run; if the command
    /// is lost, the claim sweep starts it.
    pub(super) async fn start_handler(&self, handler: &NewExecution) {
        metrics::execution_started(handler.tenant, handler.workflow);
        let command = Command::start(handler.tenant, handler.workflow, handler.id);
        if let Err(e) = self.ctx.bus.publish_command(&command, None).await {
            tracing::warn!(execution = %handler.id, error = %e, "start command for a failure handler not published; the claim sweep starts it");
        }
    }
}
