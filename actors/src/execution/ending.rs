//! The end of an execution: what still runs is abandoned, the end is
//! recorded with its failure handler and the signal for a waiting parent,
//! then announced; children that asked for it are cancelled.

use flowmesh_model::EventKind;
use flowmesh_model::JsonText;
use flowmesh_model::NodeStatus;
use flowmesh_model::lifecycle::{ExecutionTransition, NodeTransition};
use flowmesh_store::now_ms;
use ractor::{ActorProcessingErr, ActorRef};
use serde_json::Value;

use super::{ExecutionMsg, ExecutionState};
use flowmesh_services::metrics;

impl ExecutionState {
    pub(super) async fn finish(
        &mut self,
        myself: &ActorRef<ExecutionMsg>,
        t: ExecutionTransition,
        error: Option<String>,
    ) -> Result<(), ActorProcessingErr> {
        self.finish_with(myself, t, None, error).await
    }

    /// Ends the execution: abandons what still runs, records the end, announces it.
    pub(super) async fn finish_with(
        &mut self,
        myself: &ActorRef<ExecutionMsg>,
        t: ExecutionTransition,
        output: Option<Value>,
        error: Option<String>,
    ) -> Result<(), ActorProcessingErr> {
        if self.record.status.is_terminal() {
            return Ok(());
        }
        let handler = self.failure_handler(t, error.as_deref()).await;
        for (_, task) in self.running.drain().chain(self.timers.drain()) {
            task.abort();
        }
        self.pending.attempts.clear();
        self.pending.inline.clear();
        self.pending.mocked.clear();
        let end = match t {
            ExecutionTransition::Cancel => NodeTransition::Cancel,
            _ => NodeTransition::Abort,
        };
        for i in self.progress.entries().collect::<Vec<_>>() {
            if !self.progress.nodes[i].status.is_terminal() {
                let status = self.progress.apply(i, end)?;
                if status == NodeStatus::Failed {
                    self.progress.nodes[i].error =
                        Some("abandoned: the execution ended first".into());
                }
                if matches!(status, NodeStatus::Failed | NodeStatus::Cancelled) {
                    self.progress.nodes[i].finished_at = Some(now_ms());
                }
                self.save(i);
            }
        }
        self.stage_transition(t, output.clone(), error.clone())?;
        self.pending.handler = handler.clone();
        let status = self.pending.transition.as_ref().map(|c| c.to);
        if let Some(status) = status {
            self.pending.to_parent = super::calls::end_for_parent(
                &self.record,
                status,
                output.as_ref(),
                error.as_deref(),
            );
        }
        self.emit(EventKind::ExecutionFinished {
            status: status.unwrap_or(self.record.status),
            output: output.as_ref().map(JsonText::from_value),
            error,
        });
        // Losing means another writer ended it (a cancel raced a finish):
        // theirs stands. Winning gives up the lease in the same commit.
        if self.commit(myself).await?
            && let Some(status) = status
        {
            metrics::execution_finished(self.record.tenant, self.record.workflow, status);
            if let Some(handler) = &handler {
                super::handler::start_handler(&self.ctx, handler).await;
            }
            super::calls::cancel_children(&self.ctx, &self.record, status).await;
        }
        myself.stop(None);
        Ok(())
    }

    pub(super) fn stop_if_drained(&self, myself: &ActorRef<ExecutionMsg>) {
        if self.running.is_empty() {
            myself.stop(Some("draining".into()));
        }
    }
}
