//! The poison pill: an execution whose in-process work keeps killing its
//! engine is failed instead of resumed forever.
//!
//! Before an in-process node (a template, a condition, code) runs, the
//! store holds a mark naming the process run (incarnation) that runs it;
//! the turn that journals its result clears the mark. The start turn runs
//! under the mark its claim wrote, so that a webhook answered by templates
//! costs no write more; a later turn that runs inline in-process nodes
//! commits first, with the mark. A run that finds another run's mark knows
//! that run died while the work ran: it records the death before it runs
//! anything, and a second death within [`WINDOW`] fails the execution.
//! Outside calls and waits never carry a mark, so killing an engine
//! while they run counts for nothing.

use std::time::Duration;

use flowmesh_model::lifecycle::{ExecutionTransition, NodeTransition};
use flowmesh_model::{EventKind, NodeStatus};
use flowmesh_store::{DeathVerdict, EngineDeath, now_ms};
use ractor::{ActorProcessingErr, ActorRef};

use super::{ExecutionMsg, ExecutionState};
use flowmesh_services::progress::Decision;

/// A second death within this fails the execution.
pub(crate) const WINDOW: Duration = Duration::from_secs(600);

/// The in-process mark the store holds, as this actor knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Marked {
    Nothing,
    /// This run's claim marked the start turn.
    StartTurn,
    /// This run marked one node.
    Node(String),
    /// Another run's mark that reveals no death; the next commit clears it.
    Stale,
}

impl ExecutionState {
    /// Reads the mark the execution was loaded with. Another run's mark is
    /// a death while in-process work ran: the first within the window is
    /// recorded; a second fails the execution. Returns whether it goes on.
    pub(super) async fn account_for_deaths(
        &mut self,
        myself: &ActorRef<ExecutionMsg>,
    ) -> Result<bool, ActorProcessingErr> {
        let now = now_ms();
        let window = WINDOW.as_millis() as i64;
        self.careful = self
            .record
            .engine_death_at
            .is_some_and(|at| now - at < window);
        let Some(mark) = self.record.in_process.take() else {
            return Ok(true);
        };
        if mark.by == self.ctx.incarnation {
            self.marked = mark.node.map_or(Marked::StartTurn, Marked::Node);
            return Ok(true);
        }
        // A start turn's mark: it died in its in-process nodes only if the
        // start turn runs some.
        let Some(node) = mark.node.or_else(|| self.first_in_process()) else {
            self.marked = Marked::Stale;
            return Ok(true);
        };
        let death = EngineDeath {
            owner: &self.ctx.options.node_id,
            execution: self.record.id,
            at: now,
            window: WINDOW,
        };
        let verdict = self
            .patiently("record_engine_death", || {
                self.ctx.store.record_engine_death(&death)
            })
            .await?;
        match verdict {
            DeathVerdict::First => {
                tracing::warn!(execution = %self.record.id, %node, "an engine died while this node ran; resuming once more, carefully");
                self.careful = true;
                Ok(true)
            }
            DeathVerdict::Repeated { previous } => {
                tracing::error!(execution = %self.record.id, %node, previous, "an engine died again while this node ran; failing the execution");
                self.fail_poisoned(myself, &node).await?;
                Ok(false)
            }
            DeathVerdict::Fenced => {
                myself.stop(Some("the execution moved on elsewhere".into()));
                Ok(false)
            }
        }
    }

    /// The first in-process node a start turn runs within itself, if any.
    fn first_in_process(&self) -> Option<String> {
        self.progress.decide().into_iter().find_map(|d| match d {
            Decision::Run(i) => {
                let behaviour = self.ctx.runner.behaviour(self.progress.node(i));
                let key = &self.progress.nodes[i].node;
                (behaviour.runs_in_turn() && behaviour.in_engine).then(|| key.clone())
            }
            Decision::Skip(_) | Decision::Finish(_) => None,
        })
    }

    /// Fails the node that was running at both deaths, and the execution.
    async fn fail_poisoned(
        &mut self,
        myself: &ActorRef<ExecutionMsg>,
        node: &str,
    ) -> Result<(), ActorProcessingErr> {
        let reason = format!(
            "the engine stopped twice within {} minutes while node `{node}` was running; the execution was failed instead of resumed again",
            WINDOW.as_secs() / 60
        );
        if let Some(&i) = self.progress.index.get(node) {
            let now = now_ms();
            if matches!(
                self.progress.nodes[i].status,
                NodeStatus::Pending | NodeStatus::Retrying
            ) {
                // Its attempts ran under the start turn's mark, unjournaled.
                self.progress.apply(i, NodeTransition::Start)?;
                let state = &mut self.progress.nodes[i];
                state.attempts += 1;
                state.started_at.get_or_insert(now);
            }
            if self.progress.nodes[i].status == NodeStatus::Running {
                self.progress.apply(i, NodeTransition::Fail)?;
                let state = &mut self.progress.nodes[i];
                state.error = Some(reason.clone());
                state.finished_at = Some(now);
                self.save(i);
                self.emit(EventKind::NodeFailed {
                    node: node.to_owned(),
                    error: reason.clone(),
                });
            }
        }
        self.finish(myself, ExecutionTransition::Fail, Some(reason))
            .await
    }

    /// Makes sure a mark covers inline node `i` before it runs; returns
    /// false when the execution stopped instead (fenced off, or deferred).
    pub(super) async fn mark_before(
        &mut self,
        myself: &ActorRef<ExecutionMsg>,
        i: usize,
    ) -> Result<bool, ActorProcessingErr> {
        if !self.ctx.runner.behaviour(self.progress.node(i)).in_engine {
            return Ok(true);
        }
        let covered = match &self.marked {
            Marked::Nothing | Marked::Stale => false,
            Marked::StartTurn => !self.careful,
            Marked::Node(marked) => !self.careful || *marked == self.progress.nodes[i].node,
        };
        if covered {
            return Ok(true);
        }
        self.pending.mark_inline = Some(i);
        if self.commit(myself).await? {
            return Ok(true);
        }
        myself.stop(Some("the execution moved on elsewhere".into()));
        Ok(false)
    }
}
