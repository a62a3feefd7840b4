//! The end of a turn: its changes and its events are committed in one
//! transaction, with the in-process mark they call for, and only then
//! announced and their attempts started.

use std::future::Future;
use std::time::Duration;

use flowmesh_model::{Command, ExecutionId, StartCause};
use flowmesh_store::{Committed, Mark, StepRecord, Turn, Usage, Woken};
use ractor::{ActorProcessingErr, ActorRef};

use super::{ExecutionMsg, ExecutionState, Marked};
use flowmesh_services::metrics;

/// Backoff while the store is unreachable.
const STORE_RETRY_FIRST: Duration = Duration::from_millis(100);
const STORE_RETRY_MAX: Duration = Duration::from_secs(5);

impl ExecutionState {
    /// Commits the turn, then announces it and starts its attempts. Returns
    /// false, having written nothing, when its status change lost to
    /// another writer.
    pub(super) async fn commit(
        &mut self,
        myself: &ActorRef<ExecutionMsg>,
    ) -> Result<bool, ActorProcessingErr> {
        let marked = self.mark_wanted();
        if self.pending.is_empty() && marked == self.marked {
            return Ok(true);
        }
        let pending = std::mem::take(&mut self.pending);
        let steps: Vec<StepRecord> = pending
            .steps
            .iter()
            .map(|&i| self.progress.nodes[i].clone())
            .collect();
        let mark = match &marked {
            same if *same == self.marked => Mark::Keep,
            Marked::Node(node) => Mark::Set {
                by: &self.ctx.incarnation,
                node,
            },
            Marked::Nothing | Marked::StartTurn | Marked::Stale => Mark::Clear,
        };
        let mut events = pending.events;
        if pending.transition.is_some()
            || !steps.is_empty()
            || !pending.consumed.is_empty()
            || !events.is_empty()
            || mark != Mark::Keep
        {
            let m = &pending.usage;
            let mut usage = Usage {
                workflow: self.record.workflow,
                executions: m.executions,
                node_runs: m.node_runs,
                sandbox_ms: m.sandbox_ms,
                llm_tokens: m.llm_tokens,
                credits: 0,
            };
            usage.credits = self.ctx.options.prices.charge(&usage);
            let turn = Turn {
                owner: &self.ctx.options.node_id,
                tenant: self.record.tenant,
                execution: self.record.id,
                transition: pending.transition.as_ref(),
                steps: &steps,
                consumed_signals: &pending.consumed,
                usage: Some(&usage),
                slots: self.slots,
                in_process: mark,
                events: &events,
                handler: pending.handler.as_ref(),
                children: &pending.children,
                to_parent: pending.to_parent.as_ref(),
                take_slot: pending.take_slot,
            };
            match self.write_turn(&turn).await? {
                Committed::Written {
                    woke,
                    first_position,
                    parent_told,
                } => {
                    if let Some(first) = first_position {
                        for (event, position) in events.iter_mut().zip(first..) {
                            event.position = position;
                        }
                    }
                    metrics::credits_used(self.record.tenant, usage.credits);
                    if let Some(woken) = woke {
                        self.start_woken(woken).await;
                    }
                    if pending.take_slot
                        || pending
                            .transition
                            .as_ref()
                            .is_some_and(|c| c.to == flowmesh_model::ExecutionStatus::Running)
                    {
                        self.record.holds_slot = self.slots != flowmesh_store::Slots::Unlimited;
                    }
                    self.start_children(&pending.children).await;
                    if parent_told {
                        super::calls::wake_parent(&self.ctx, &self.record).await;
                    }
                }
                Committed::Fenced => return Ok(false),
                Committed::NoSlot => {
                    // The store left it waiting for a slot, unowned.
                    metrics::start_deferred(self.record.tenant);
                    myself.stop(Some("waiting for a concurrency slot".into()));
                    return Ok(false);
                }
            }
        }
        self.marked = marked;
        if let Some(change) = &pending.transition {
            self.record.status = change.to;
        }
        for event in events {
            self.ctx.emit(event).await;
        }
        // Inline attempts are normally run before the turn ends; any left run as tasks.
        for (i, attempt) in pending.attempts.into_iter().chain(pending.inline) {
            self.spawn_attempt(myself, i, attempt);
        }
        if pending.check_signals {
            self.signals_due = myself.cast(ExecutionMsg::CheckSignals).is_ok();
        }
        Ok(true)
    }

    /// The in-process mark the store must hold once the turn is committed:
    /// the inline node about to run, else an in-process node left running
    /// (the lowest, so that it does not change from turn to turn).
    fn mark_wanted(&self) -> Marked {
        let running = self
            .running
            .keys()
            .chain(self.pending.attempts.iter().map(|(i, _)| i))
            .copied()
            .filter(|&i| self.ctx.runner.behaviour(self.progress.node(i)).in_engine)
            .min();
        match self.pending.mark_inline.or(running) {
            Some(i) => Marked::Node(self.progress.nodes[i].node.clone()),
            None => Marked::Nothing,
        }
    }

    /// Writes a turn, waiting out an unreachable store: the turn is what
    /// the execution has done, so it is kept and written once the store is
    /// back (or found to belong to another owner by then).
    async fn write_turn(&self, turn: &Turn<'_>) -> Result<Committed, ActorProcessingErr> {
        self.patiently("commit_turn", || self.ctx.store.commit_turn(turn))
            .await
    }

    /// Calls the store until it answers, with backoff while it is
    /// unreachable.
    pub(super) async fn patiently<T, F, Fut>(
        &self,
        call: &'static str,
        attempt: F,
    ) -> Result<T, ActorProcessingErr>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, flowmesh_store::Error>>,
    {
        patiently(self.record.id, call, attempt).await
    }

    /// This execution gave its tenant's concurrency slot back: the start
    /// that waited longest for one is sent now. The store made it due, so
    /// a lost command only leaves it to the claim sweep.
    pub(super) async fn start_woken(&self, woken: Woken) {
        let command = Command::StartExecution {
            tenant: self.record.tenant,
            workflow: woken.workflow,
            execution: woken.execution,
            cause: StartCause::SlotFreed { by: self.record.id },
        };
        if let Err(e) = self.ctx.bus.publish_command(&command, None).await {
            tracing::warn!(execution = %woken.execution, error = %e, "start command for a freed slot not published; the claim sweep starts it");
        }
    }

    pub(super) async fn end_turn(
        &mut self,
        myself: &ActorRef<ExecutionMsg>,
    ) -> Result<(), ActorProcessingErr> {
        if !self.commit(myself).await? {
            // Fenced off, or waiting for a concurrency slot (already stopping).
            myself.stop(Some("the execution moved on elsewhere".into()));
            return Ok(());
        }
        self.park_if_idle(myself).await
    }
}

/// Calls the store for `execution` until it answers, with backoff while it
/// is unreachable.
pub(crate) async fn patiently<T, F, Fut>(
    execution: ExecutionId,
    call: &'static str,
    mut attempt: F,
) -> Result<T, ActorProcessingErr>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, flowmesh_store::Error>>,
{
    let mut delay = STORE_RETRY_FIRST;
    loop {
        let started = std::time::Instant::now();
        let result = attempt().await;
        metrics::store_call(call, started.elapsed());
        match result {
            Ok(answer) => return Ok(answer),
            Err(e) if e.is_retryable() => {
                tracing::warn!(%execution, error = %e, retry_in = ?delay, "store unavailable; the call is kept and made again");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(STORE_RETRY_MAX);
            }
            Err(e) => return Err(e.into()),
        }
    }
}
