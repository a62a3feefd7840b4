//! ExecutionActor: runs one execution of one pinned workflow version.
//!
//! Every change is written to the journal before it is announced, so a
//! restart (of the actor or the process) resumes from the journal: completed
//! nodes are not run again; an attempt that was running is run again with the
//! same idempotency key.
//!
//! Each message the actor handles is one turn: the changes it makes (status,
//! steps) are staged and committed together in one transaction at the end of
//! the turn; only then are its events published and its node attempts
//! started. One commit per turn instead of one per change (a turn after the
//! start that runs in-process nodes commits once more, before them, so that
//! an engine dying in them is known: see `deaths`).

mod attempt;
mod calls;
mod commit;
mod deaths;
mod ending;
mod failure;
mod handler;
mod loops;
mod messages;
mod waiting;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use flowmesh_model::graph::WorkflowGraph;
use flowmesh_model::lifecycle::{ExecutionTransition, NodeTransition};
use flowmesh_model::{EventKind, ExecutionEvent, ExecutionStatus, JsonText, NodeStatus, OnError};
use flowmesh_node_handlers::{NodeError, Outcome};
use flowmesh_store::{ExecutionChange, ExecutionRecord, Slots, now_ms};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::{Value, json};
use tokio::task::AbortHandle;
use tracing::Instrument;

pub(crate) use calls::{cancel_children, end_for_parent, wake_parent};
use deaths::Marked;
#[cfg(test)]
pub(crate) use deaths::WINDOW as DEATH_WINDOW;
use flowmesh_services::progress::{Decision, Progress};
pub(crate) use handler::{Failure, handler_run, start_handler};
pub(crate) use messages::ExecutionMsg;

use crate::context::Context;
use flowmesh_services::metrics;

pub(crate) struct ExecutionActor;

/// The log line of a mocked node's step (logs show it as `mocked: true`).
pub(crate) const MOCKED_LOG: &str = "mocked: the test run's mock is this node's output";

pub(crate) struct ExecutionArgs {
    pub ctx: Arc<Context>,
    pub graph: Arc<WorkflowGraph>,
    pub record: ExecutionRecord,
    /// Who waits for the start to be durable (a start command, acknowledged
    /// then): answered once the first turn is committed.
    pub started: Option<RpcReplyPort<Result<(), flowmesh_services::Error>>>,
    /// The place its acceptance took here (see [`flowmesh_services::Place`]).
    pub place: Option<flowmesh_services::Place>,
}

pub(crate) struct ExecutionState {
    ctx: Arc<Context>,
    record: ExecutionRecord,
    /// See [`ExecutionArgs::started`]; taken by the first turn.
    started: Option<RpcReplyPort<Result<(), flowmesh_services::Error>>>,
    progress: Progress,
    running: HashMap<usize, AbortHandle>,
    timers: HashMap<usize, AbortHandle>,
    draining: bool,
    pending: Pending,
    /// The tenant's cap on one node's output, in bytes of JSON.
    output_cap: usize,
    /// Whether starting takes one of the tenant's concurrency slots.
    slots: Slots,
    /// `seq` of the last event this execution recorded.
    event_seq: u64,
    /// The in-process mark the store holds for this execution.
    marked: Marked,
    /// An engine died while this execution ran in-process work, less than
    /// [`deaths::WINDOW`] ago: each in-process node is journaled running,
    /// under a mark of its own, before it runs.
    careful: bool,
    /// A check of the stored resumes is on its way: parking before it
    /// would be refused by the store for the very resume that woke it.
    signals_due: bool,
    _live: metrics::Live,
}

/// What the current turn changed, to commit and then announce.
#[derive(Default)]
struct Pending {
    transition: Option<ExecutionChange>,
    steps: BTreeSet<usize>,
    events: Vec<ExecutionEvent>,
    /// Node attempts to start once their `running` step is committed.
    attempts: Vec<(usize, u32)>,
    /// Attempts of pure, instant kinds, run within the turn itself.
    inline: Vec<(usize, u32)>,
    /// Attempts of a test run's mocked nodes, whose mock is their output.
    mocked: Vec<(usize, u32)>,
    /// The inline node that is to run once this commit has marked it.
    mark_inline: Option<usize>,
    /// Resumes applied by this turn, deleted with it.
    consumed: Vec<String>,
    /// A node began waiting for a resume: look for one that came early.
    check_signals: bool,
    /// What the turn used: executions started, attempts ended, sandbox time.
    usage: Metered,
    /// The failure handler the run's end starts, recorded with it.
    handler: Option<flowmesh_store::NewExecution>,
    /// Child executions started by call steps, recorded with them.
    children: Vec<flowmesh_store::NewExecution>,
    /// A child's end, recorded for its parent's waiting step.
    to_parent: Option<flowmesh_store::NewSignal>,
    /// Taken up again after parking: a concurrency slot is to be taken.
    take_slot: bool,
}

#[derive(Default)]
struct Metered {
    executions: i64,
    node_runs: i64,
    sandbox_ms: i64,
    llm_tokens: i64,
}

/// What follows an attempt's result.
enum AfterNode {
    Advance,
    /// Waiting for a timer (a wait node, a retry) or for shutdown.
    Hold,
    Fail(String),
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.transition.is_none()
            && self.steps.is_empty()
            && self.events.is_empty()
            && self.attempts.is_empty()
            && self.inline.is_empty()
            && self.consumed.is_empty()
            && self.children.is_empty()
            && !self.take_slot
            && !self.check_signals
    }
}

impl Actor for ExecutionActor {
    type Msg = ExecutionMsg;
    type State = ExecutionState;
    type Arguments = ExecutionArgs;

    async fn pre_start(
        &self,
        _: ActorRef<ExecutionMsg>,
        args: ExecutionArgs,
    ) -> Result<ExecutionState, ActorProcessingErr> {
        let progress = Progress::new(args.graph, &args.record);
        let settings = args.ctx.tenant_settings(args.record.tenant).await;
        let output_cap = settings.max_output_bytes as usize;
        let instance = args.ctx.options.max_concurrent;
        let slots = if settings.limits.max_concurrent.or(instance).is_some() {
            Slots::Limited { instance }
        } else {
            Slots::Unlimited
        };
        let event_seq = crate::events::last_seq(&args.ctx, &args.record).await?;
        args.ctx.mark_local(args.record.id, true);
        // Counted as here from now on: the place it came in is given back.
        drop(args.place);
        Ok(ExecutionState {
            ctx: args.ctx,
            record: args.record,
            started: args.started,
            progress,
            running: HashMap::new(),
            timers: HashMap::new(),
            draining: false,
            pending: Pending::default(),
            output_cap,
            slots,
            event_seq,
            marked: Marked::Nothing,
            careful: false,
            signals_due: false,
            _live: metrics::Live::new("execution"),
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<ExecutionMsg>,
        state: &mut ExecutionState,
    ) -> Result<(), ActorProcessingErr> {
        let turn = state.turn_span();
        state.begin(&myself).instrument(turn.clone()).await?;
        state.end_turn(&myself).instrument(turn).await?;
        // Started as draining began (handed over just before): it steps
        // aside at once, as a running one does once its attempts end.
        if state.draining {
            state.stop_if_drained(&myself);
        }
        // Committed (or found finished, owned elsewhere, or left waiting for
        // a slot): the start is durable. A failed turn drops the reply
        // instead, and the start command is delivered again.
        if let Some(started) = state.started.take() {
            let _ = started.send(Ok(()));
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<ExecutionMsg>,
        msg: ExecutionMsg,
        state: &mut ExecutionState,
    ) -> Result<(), ActorProcessingErr> {
        let turn = state.turn_span();
        let mut result = state.handle(&myself, msg).instrument(turn.clone()).await;
        if result.is_ok() {
            result = state.end_turn(&myself).instrument(turn).await;
        }
        // Draining: once the last running attempt is journaled, step aside.
        if state.draining {
            state.stop_if_drained(&myself);
        }
        result
    }

    async fn post_stop(
        &self,
        _: ActorRef<ExecutionMsg>,
        state: &mut ExecutionState,
    ) -> Result<(), ActorProcessingErr> {
        for (_, task) in state.running.drain().chain(state.timers.drain()) {
            task.abort();
        }
        state.ctx.mark_local(state.record.id, false);
        Ok(())
    }
}

impl ExecutionState {
    async fn handle(
        &mut self,
        myself: &ActorRef<ExecutionMsg>,
        msg: ExecutionMsg,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ExecutionMsg::NodeDone {
                node,
                attempt,
                result,
                logs,
                sandbox_ms,
                llm_tokens,
            } => {
                self.pending.usage.sandbox_ms += sandbox_ms as i64;
                self.pending.usage.llm_tokens += llm_tokens as i64;
                self.node_done(myself, node, attempt, result, logs).await
            }
            ExecutionMsg::Wake { node, attempt } => self.wake(myself, node, attempt).await,
            ExecutionMsg::CheckSignals => self.apply_signals(myself).await,
            ExecutionMsg::Cancel => {
                self.finish(
                    myself,
                    ExecutionTransition::Cancel,
                    Some("cancelled on request".into()),
                )
                .await
            }
            ExecutionMsg::Deadline => {
                self.finish(
                    myself,
                    ExecutionTransition::TimeOut,
                    Some("the execution passed its timeout".into()),
                )
                .await
            }
            ExecutionMsg::Drain => {
                self.draining = true;
                Ok(())
            }
            #[cfg(test)]
            ExecutionMsg::Crash => panic!("crash requested by a test"),
        }
    }

    /// A span for one turn, in the run's trace.
    fn turn_span(&self) -> tracing::Span {
        let span = tracing::info_span!(
            "execution.turn",
            tenant = %self.record.tenant,
            workflow = %self.record.workflow,
            execution = %self.record.id,
        );
        flowmesh_services::trace::set_parent(&span, self.record.traceparent.as_deref());
        span
    }

    fn event(&mut self, kind: EventKind) -> ExecutionEvent {
        self.event_seq += 1;
        ExecutionEvent {
            tenant: self.record.tenant,
            workflow: self.record.workflow,
            execution: self.record.id,
            at_ms: now_ms(),
            seq: self.event_seq,
            position: 0,
            kind,
        }
    }

    fn emit(&mut self, kind: EventKind) {
        let event = self.event(kind);
        self.pending.events.push(event);
    }

    /// Brings a loaded execution to running and resumes whatever the journal
    /// says was in flight.
    async fn begin(&mut self, myself: &ActorRef<ExecutionMsg>) -> Result<(), ActorProcessingErr> {
        if self.record.status.is_terminal() {
            myself.stop(Some("already finished".into()));
            return Ok(());
        }
        if self.record.cancel_requested {
            return self
                .finish(
                    myself,
                    ExecutionTransition::Cancel,
                    Some("cancelled on request".into()),
                )
                .await;
        }
        if self.parent_gone().await? {
            return self
                .finish(
                    myself,
                    ExecutionTransition::Cancel,
                    Some("cancelled: the execution that called it ended first".into()),
                )
                .await;
        }
        if !self.account_for_deaths(myself).await? {
            return Ok(());
        }
        if self.record.status == ExecutionStatus::Queued {
            self.pending.usage.executions = 1;
            self.stage_transition(ExecutionTransition::Start, None, None)?;
            self.save_trigger_step();
            self.emit(if self.record.test.is_some() {
                EventKind::TestRunStarted
            } else {
                EventKind::ExecutionStarted
            });
            if let Some(parent) = &self.record.called_by {
                let (parent, node) = (parent.execution, parent.node.clone());
                self.emit(EventKind::CalledBy { parent, node });
            }
        } else if !self.record.holds_slot && self.slots != Slots::Unlimited {
            // Parked, it gave its slot back: it takes one again first.
            self.pending.take_slot = true;
        }
        if let Some(deadline) = self.record.deadline_ms {
            let left = deadline - now_ms();
            if left <= 0 {
                return self
                    .finish(
                        myself,
                        ExecutionTransition::TimeOut,
                        Some("the execution passed its timeout".into()),
                    )
                    .await;
            }
            let handle = myself.send_after(Duration::from_millis(left as u64), || {
                ExecutionMsg::Deadline
            });
            // The deadline timer is not tied to a node; keep it with an index past the nodes.
            self.timers.insert(usize::MAX, handle.abort_handle());
        }
        for i in 0..self.progress.nodes.len() {
            let state = &self.progress.nodes[i];
            match (state.status, state.wake_at) {
                (NodeStatus::Waiting, Some(at)) | (NodeStatus::Retrying, Some(at)) => {
                    self.set_timer(myself, i, at)
                }
                (NodeStatus::Retrying, None) => self.start_node(i)?,
                (NodeStatus::Running, _) => self.rerun_node(i),
                _ => {}
            }
            // Only a wait for a resume can have one pending.
            if self.progress.nodes[i].status == NodeStatus::Waiting && self.is_event_wait(i) {
                self.pending.check_signals = true;
            }
        }
        self.advance(myself).await
    }

    fn save_trigger_step(&mut self) {
        let Some(&i) = self.progress.graph.index.get(&self.record.trigger_node) else {
            return;
        };
        let now = now_ms();
        let step = &mut self.progress.nodes[i];
        step.started_at = Some(now);
        step.finished_at = Some(now);
        self.save(i);
    }

    /// Stages a compare-and-set of the execution status through the
    /// lifecycle; it is committed with the rest of the turn.
    fn stage_transition(
        &mut self,
        t: ExecutionTransition,
        output: Option<Value>,
        error: Option<String>,
    ) -> Result<(), ActorProcessingErr> {
        let staged = self.pending.transition.take();
        let current = staged.as_ref().map_or(self.record.status, |c| c.to);
        let to = current.apply(t)?;
        // A change staged earlier in the turn (a start) and this one (an
        // end) are committed as one: from queued straight to the end.
        let from = staged.map_or(current, |c| c.from);
        self.pending.transition = Some(ExecutionChange {
            id: self.record.id,
            from,
            to,
            output,
            error,
        });
        Ok(())
    }

    fn save(&mut self, i: usize) {
        self.pending.steps.insert(i);
    }

    /// Runs or skips every node that became decidable, then finishes the
    /// execution when nothing is left.
    async fn advance(&mut self, myself: &ActorRef<ExecutionMsg>) -> Result<(), ActorProcessingErr> {
        if self.draining || self.record.status.is_terminal() {
            return Ok(());
        }
        loop {
            // A start refused for draining leaves its node pending, to be
            // decided again forever: nothing more starts here.
            if self.draining {
                return Ok(());
            }
            for (i, attempt) in std::mem::take(&mut self.pending.mocked) {
                if let AfterNode::Fail(error) = self.record_mock(myself, i, attempt)? {
                    return self
                        .finish(myself, ExecutionTransition::Fail, Some(error))
                        .await;
                }
            }
            for (i, attempt) in std::mem::take(&mut self.pending.inline) {
                if !self.mark_before(myself, i).await? {
                    return Ok(());
                }
                self.pending.usage.node_runs += 1;
                let result = self.run_inline(i).await;
                let result = match self.place_call(myself, i, result).await? {
                    calls::Placed::Waiting => continue,
                    calls::Placed::Result(result) => result,
                };
                if let AfterNode::Fail(error) = self.record_result(myself, i, attempt, result)? {
                    return self
                        .finish(myself, ExecutionTransition::Fail, Some(error))
                        .await;
                }
            }
            self.progress.admit();
            let decisions = self.progress.decide();
            if decisions.is_empty()
                && self.pending.inline.is_empty()
                && self.pending.mocked.is_empty()
            {
                break;
            }
            for decision in decisions {
                match decision {
                    Decision::Skip(i) => {
                        self.progress.apply(i, NodeTransition::Skip)?;
                        self.save(i);
                        self.emit(EventKind::NodeSkipped {
                            node: self.progress.nodes[i].node.clone(),
                        });
                    }
                    Decision::Run(i) => self.start_node(i)?,
                    // Its output is built within the turn, from its iterations.
                    Decision::Finish(i) => {
                        let attempt = self.progress.nodes[i].attempts;
                        self.pending.inline.push((i, attempt));
                    }
                }
            }
        }
        if self.progress.is_complete() && self.running.is_empty() {
            match self.progress.first_failure() {
                None => {
                    let runner = &self.ctx.runner;
                    let output = self.progress.result(|n| runner.behaviour(n).answers_caller);
                    self.finish_with(myself, ExecutionTransition::Succeed, Some(output), None)
                        .await?;
                }
                Some((node, error)) => {
                    let error = format!("node {node} failed: {error}");
                    self.finish(myself, ExecutionTransition::Fail, Some(error))
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// Stages an attempt of a node; it starts once the turn is committed.
    fn start_node(&mut self, i: usize) -> Result<(), ActorProcessingErr> {
        if self.ctx.is_draining() {
            self.draining = true;
            return Ok(());
        }
        self.progress.apply(i, NodeTransition::Start)?;
        let now = now_ms();
        let state = &mut self.progress.nodes[i];
        state.attempts += 1;
        state.started_at.get_or_insert(now);
        state.wake_at = None;
        state.error = None;
        let attempt = state.attempts;
        self.save(i);
        self.emit(EventKind::NodeStarted {
            node: self.progress.nodes[i].node.clone(),
            attempt,
        });
        if self.mock(i).is_some() {
            self.pending.mocked.push((i, attempt));
        } else if self
            .ctx
            .runner
            .behaviour(self.progress.node(i))
            .runs_in_turn()
        {
            self.pending.inline.push((i, attempt));
        } else {
            self.pending.attempts.push((i, attempt));
        }
        Ok(())
    }

    /// Re-runs an attempt the journal shows as started but not finished.
    fn rerun_node(&mut self, i: usize) {
        if self.progress.is_looping(i) {
            // Its items are known: its iterations carry on instead.
            return;
        }
        let attempt = self.progress.nodes[i].attempts.max(1);
        self.progress.nodes[i].attempts = attempt;
        if self.mock(i).is_some() {
            self.pending.mocked.push((i, attempt));
        } else {
            self.pending.attempts.push((i, attempt));
        }
    }

    /// A test run's mock of a node: its output, instead of running it.
    fn mock(&self, i: usize) -> Option<&Value> {
        let test = self.record.test.as_ref()?;
        flowmesh_services::mock_of(&test.mocks, &self.progress.nodes[i].node)
    }

    /// Journals a mocked node as succeeded with its mock (within the
    /// tenant's output cap, as any output), noting that it was mocked.
    fn record_mock(
        &mut self,
        myself: &ActorRef<ExecutionMsg>,
        i: usize,
        attempt: u32,
    ) -> Result<AfterNode, ActorProcessingErr> {
        let Some(value) = self.mock(i).cloned() else {
            return Ok(AfterNode::Advance);
        };
        self.progress.nodes[i].logs = vec![MOCKED_LOG.to_owned()];
        let result = Ok(Outcome::Output {
            value,
            branch: None,
        });
        self.record_result(myself, i, attempt, result)
    }

    fn set_timer(&mut self, myself: &ActorRef<ExecutionMsg>, i: usize, at_ms: i64) {
        let attempt = self.progress.nodes[i].attempts;
        let delay = Duration::from_millis((at_ms - now_ms()).max(0) as u64);
        let handle = myself.send_after(delay, move || ExecutionMsg::Wake { node: i, attempt });
        if let Some(old) = self.timers.insert(i, handle.abort_handle()) {
            old.abort();
        }
    }

    async fn node_done(
        &mut self,
        myself: &ActorRef<ExecutionMsg>,
        i: usize,
        attempt: u32,
        result: Result<Outcome, NodeError>,
        logs: Vec<String>,
    ) -> Result<(), ActorProcessingErr> {
        let state = &self.progress.nodes[i];
        if state.status != NodeStatus::Running
            || state.attempts != attempt
            || self.record.status.is_terminal()
        {
            return Ok(());
        }
        self.running.remove(&i);
        self.pending.usage.node_runs += 1;
        self.progress.nodes[i].logs = logs;
        let result = match self.place_call(myself, i, result).await? {
            calls::Placed::Waiting => return Ok(()),
            calls::Placed::Result(result) => result,
        };
        match self.record_result(myself, i, attempt, result)? {
            AfterNode::Advance => self.advance(myself).await,
            AfterNode::Hold => Ok(()),
            AfterNode::Fail(error) => {
                self.finish(myself, ExecutionTransition::Fail, Some(error))
                    .await
            }
        }
    }

    /// Stages what an attempt's result changes, and says what comes next.
    fn record_result(
        &mut self,
        myself: &ActorRef<ExecutionMsg>,
        i: usize,
        attempt: u32,
        result: Result<Outcome, NodeError>,
    ) -> Result<AfterNode, ActorProcessingErr> {
        let result = self.within_steps(i, result);
        if let Some(items) = self.loop_items(i, &result) {
            self.progress.set_items(i, items);
            self.save(i);
            return Ok(AfterNode::Advance);
        }
        let node_id = self.progress.nodes[i].node.clone();
        let result = self.within_output_cap(result);
        match result {
            Ok(Outcome::Output { value, branch }) => self.succeed(i, value, branch),
            Ok(Outcome::Respond {
                status,
                headers,
                body,
            }) => {
                let body_text = JsonText::from_value(&body);
                let headers_json: serde_json::Map<String, Value> = headers
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect();
                self.emit(EventKind::Responded {
                    status,
                    headers,
                    body: body_text,
                });
                let output = json!({"status": status, "headers": headers_json, "body": body});
                self.succeed(i, output, None)
            }
            Ok(Outcome::Wait { duration }) => {
                self.start_waiting(myself, i, Some(duration))?;
                Ok(AfterNode::Hold)
            }
            Ok(Outcome::Repeat { state }) => {
                self.progress.push_state(i, state);
                self.save(i);
                Ok(AfterNode::Advance)
            }
            Ok(Outcome::AwaitResume { timeout }) => {
                self.start_waiting(myself, i, timeout)?;
                self.pending.check_signals = true;
                Ok(AfterNode::Hold)
            }
            // Placed before it gets here (see `calls`); a kind other than
            // `call_workflow` asking for a call is not one.
            Ok(Outcome::Call { .. }) => self.node_failed(
                i,
                &NodeError::permanent("only a call_workflow node starts a child execution"),
                false,
            ),
            Err(error) => {
                let node = self.progress.node(i);
                // User code that ran out of time or took its sandbox down
                // most likely does so again, billed each time: only a node
                // that asks for retries gets them.
                let retries = node.retry.is_some() || !self.ctx.runner.behaviour(node).sandboxed;
                let policy = node.retry.clone().unwrap_or_default();
                let retryable = error.class.is_retryable() && retries;
                let message = error.describe();
                if retryable && attempt < policy.max_attempts && !self.draining {
                    let backoff = attempt::backoff_with_jitter(&policy, attempt + 1);
                    let at = now_ms() + backoff.as_millis() as i64;
                    self.progress.apply(i, NodeTransition::ScheduleRetry)?;
                    metrics::node_retry(&self.progress.node(i).kind);
                    self.progress.nodes[i].wake_at = Some(at);
                    self.progress.nodes[i].error = Some(message.clone());
                    self.save(i);
                    self.emit(EventKind::NodeRetrying {
                        node: node_id,
                        attempt,
                        error: message,
                        retry_in_ms: backoff.as_millis() as u64,
                    });
                    self.set_timer(myself, i, at);
                    Ok(AfterNode::Hold)
                } else if self.draining && error.class.is_retryable() {
                    // Shutting down: leave the attempt to be run again at the next start.
                    Ok(AfterNode::Hold)
                } else {
                    self.node_failed(i, &error, error.class.is_retryable())
                }
            }
        }
    }

    fn succeed(
        &mut self,
        i: usize,
        output: Value,
        branch: Option<String>,
    ) -> Result<AfterNode, ActorProcessingErr> {
        self.progress.apply(i, NodeTransition::Succeed)?;
        // A node routing its failures takes its `success` edges.
        let routes = self.progress.node(i).on_error == OnError::Route;
        let branch = branch.or_else(|| routes.then(|| OnError::SUCCESS.to_owned()));
        let state = &mut self.progress.nodes[i];
        state.output = Some(output.clone());
        state.branch = branch;
        state.finished_at = Some(now_ms());
        state.wake_at = None;
        self.save(i);
        let node = self.progress.nodes[i].node.clone();
        self.emit(EventKind::NodeSucceeded {
            node,
            output: JsonText::from_value(&output),
        });
        Ok(AfterNode::Advance)
    }

    async fn wake(
        &mut self,
        myself: &ActorRef<ExecutionMsg>,
        i: usize,
        attempt: u32,
    ) -> Result<(), ActorProcessingErr> {
        let state = &self.progress.nodes[i];
        if state.attempts != attempt || self.record.status.is_terminal() {
            return Ok(());
        }
        self.timers.remove(&i);
        match state.status {
            NodeStatus::Waiting => self.wait_elapsed(myself, i).await,
            NodeStatus::Retrying => {
                self.start_node(i)?;
                self.advance(myself).await
            }
            _ => Ok(()),
        }
    }
}
