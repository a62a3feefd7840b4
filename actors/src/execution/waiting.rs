//! Waiting nodes, resumes, and parking: an execution with nothing to do
//! for a while gives its state to the store and its actor stops.

use std::time::Duration;

use flowmesh_model::lifecycle::{ExecutionTransition, NodeTransition};
use flowmesh_model::{EventKind, ExecutionStatus, NodeStatus};
use flowmesh_node_handlers::{ErrorClass, NodeError};
use flowmesh_store::failpoints::crash_point;
use flowmesh_store::{Park, Parked, now_ms};
use ractor::{ActorProcessingErr, ActorRef};
use serde_json::json;

use super::{AfterNode, ExecutionMsg, ExecutionState};

impl ExecutionState {
    /// Whether a waiting node waits for a signal: a resume, or the end of
    /// the child it called.
    pub(super) fn is_event_wait(&self, i: usize) -> bool {
        let behaviour = self.ctx.runner.behaviour(self.progress.node(i));
        behaviour.awaits_resume || behaviour.calls_workflow
    }

    fn is_call(&self, i: usize) -> bool {
        self.ctx
            .runner
            .behaviour(self.progress.node(i))
            .calls_workflow
    }

    /// A node starts waiting, for `duration` or (none) until a resume.
    pub(super) fn start_waiting(
        &mut self,
        myself: &ActorRef<ExecutionMsg>,
        i: usize,
        duration: Option<Duration>,
    ) -> Result<(), ActorProcessingErr> {
        self.progress.apply(i, NodeTransition::Wait)?;
        let until = duration.map(|d| now_ms() + d.as_millis() as i64);
        self.progress.nodes[i].wake_at = until;
        self.save(i);
        let node = self.progress.nodes[i].node.clone();
        self.emit(EventKind::NodeWaiting {
            node,
            until_ms: until,
        });
        if let Some(at) = until {
            self.set_timer(myself, i, at);
        }
        Ok(())
    }

    /// A waiting node's time came: a `wait` succeeds, a wait for a resume
    /// that got none fails.
    pub(super) async fn wait_elapsed(
        &mut self,
        myself: &ActorRef<ExecutionMsg>,
        i: usize,
    ) -> Result<(), ActorProcessingErr> {
        if self.is_event_wait(i) {
            let after = if self.is_call(i) {
                self.call_timed_out(i).await?
            } else {
                let error = NodeError {
                    class: ErrorClass::Timeout,
                    message: "no resume arrived before the wait's timeout".into(),
                };
                // Waiting again would not make the resume come.
                self.node_failed(i, &error, false)?
            };
            return match after {
                AfterNode::Fail(error) => {
                    self.finish(myself, ExecutionTransition::Fail, Some(error))
                        .await
                }
                AfterNode::Advance | AfterNode::Hold => self.advance(myself).await,
            };
        }
        let started = self.progress.nodes[i].started_at;
        let waited = started.map(|s| now_ms() - s).unwrap_or_default();
        self.succeed(i, json!({"waited_ms": waited}), None)?;
        self.advance(myself).await
    }

    /// Applies the resumes in the store to the nodes waiting for them;
    /// each is deleted in the turn that applies it. A resume for a node
    /// that already ended is dropped.
    pub(super) async fn apply_signals(
        &mut self,
        myself: &ActorRef<ExecutionMsg>,
    ) -> Result<(), ActorProcessingErr> {
        self.signals_due = false;
        if self.record.status.is_terminal() {
            return Ok(());
        }
        let signals = match self.ctx.store.signals(self.record.id).await {
            Ok(signals) => signals,
            Err(e) if e.is_retryable() => {
                tracing::warn!(execution = %self.record.id, error = %e, "could not read resumes; trying again");
                myself.send_after(Duration::from_secs(1), || ExecutionMsg::CheckSignals);
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let mut resumed = false;
        let mut failed = None;
        for signal in signals {
            let Some(&i) = self.progress.index.get(&signal.node) else {
                self.pending.consumed.push(signal.id);
                continue;
            };
            match self.progress.nodes[i].status {
                NodeStatus::Waiting if self.is_call(i) => {
                    self.pending.consumed.push(signal.id);
                    match self.child_ended(i, &signal.payload)? {
                        None => {}
                        Some(AfterNode::Fail(error)) => failed = Some(error),
                        Some(_) => {
                            if let Some(timer) = self.timers.remove(&i) {
                                timer.abort();
                            }
                            resumed = true;
                        }
                    }
                }
                NodeStatus::Waiting if self.is_event_wait(i) => {
                    if let Some(timer) = self.timers.remove(&i) {
                        timer.abort();
                    }
                    self.pending.consumed.push(signal.id);
                    let output = json!({"payload": signal.payload, "resumed_at_ms": now_ms()});
                    self.succeed(i, output, None)?;
                    resumed = true;
                }
                status if status.is_terminal() => {
                    tracing::debug!(execution = %self.record.id, node = %signal.node, "resume for a node that already ended; dropped");
                    self.pending.consumed.push(signal.id);
                }
                // Not waiting yet: kept until it is.
                _ => {}
            }
        }
        if let Some(error) = failed {
            return self
                .finish(myself, ExecutionTransition::Fail, Some(error))
                .await;
        }
        if resumed {
            self.advance(myself).await?;
        }
        Ok(())
    }

    /// Parks the execution when nothing runs and its next timer is further
    /// than `park_after` (or there is none: only a resume wakes it).
    pub(super) async fn park_if_idle(
        &mut self,
        myself: &ActorRef<ExecutionMsg>,
    ) -> Result<(), ActorProcessingErr> {
        if self.draining
            || self.signals_due
            || self.record.status != ExecutionStatus::Running
            || !self.running.is_empty()
            || !self.pending.is_empty()
        {
            return Ok(());
        }
        let mut next = self.record.deadline_ms;
        let mut waiting = false;
        for (i, state) in self.progress.nodes.iter().enumerate() {
            match state.status {
                NodeStatus::Waiting | NodeStatus::Retrying => {
                    waiting = true;
                    if let Some(at) = state.wake_at {
                        next = Some(next.map_or(at, |n| n.min(at)));
                    }
                }
                // A loop runs while its iterations do: their steps say
                // whether it waits (a call in its body must park the
                // parent, whose slot the child may need).
                NodeStatus::Running if self.progress.is_looping(i) => {}
                NodeStatus::Running => return Ok(()),
                _ => {}
            }
        }
        let park_after = self.ctx.options.park_after.0.as_millis() as i64;
        if !waiting || next.is_some_and(|at| at - now_ms() <= park_after) {
            return Ok(());
        }
        let park = Park {
            owner: &self.ctx.options.node_id,
            tenant: self.record.tenant,
            execution: self.record.id,
            wake_at: next,
        };
        let parked = match self.ctx.store.park_execution(&park).await {
            Ok(parked) => parked,
            // Unparked is always safe: it just keeps its actor for now.
            Err(e) if e.is_retryable() => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if let Parked::Parked { woke } = parked {
            crash_point("engine::park::parked");
            flowmesh_services::metrics::parked();
            if let Some(woken) = woke {
                self.start_woken(woken).await;
            }
            myself.stop(Some("parked".into()));
            return Ok(());
        }
        // A cancel whose command came before or while the actor parked is
        // only in the store: applied here, since nothing else would wake it.
        if let Ok(Some(record)) = self
            .ctx
            .store
            .get_execution(self.record.tenant, self.record.id)
            .await
            && record.cancel_requested
        {
            let _ = myself.cast(ExecutionMsg::Cancel);
        } else if self
            .ctx
            .store
            .signals(self.record.id)
            .await
            .is_ok_and(|signals| signals.is_empty())
        {
            // Refused without a resume to apply: another process owns it now.
            myself.stop(Some("no longer the owner".into()));
        } else {
            let _ = myself.cast(ExecutionMsg::CheckSignals);
        }
        Ok(())
    }
}
