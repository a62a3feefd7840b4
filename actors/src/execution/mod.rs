//! ExecutionActor: runs one execution of one pinned workflow version.
//!
//! Every change is written to the journal before it is announced, so a
//! restart (of the actor or the process) resumes from the journal: completed
//! nodes are not run again; an attempt that was running is run again with the
//! same idempotency key.

mod messages;
pub(crate) mod progress;

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use flowmesh_model::graph::WorkflowGraph;
use flowmesh_model::lifecycle::{ExecutionTransition, NodeTransition};
use flowmesh_model::{
    EventKind, ExecutionEvent, ExecutionStatus, JsonText, NodeStatus, RetryPolicy,
};
use flowmesh_node_handlers::{ErrorClass, NodeError, Outcome, RunRequest};
use flowmesh_store::{ExecutionChange, ExecutionRecord, now_ms};
use futures::FutureExt;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::{Value, json};
use tokio::task::AbortHandle;

pub(crate) use messages::ExecutionMsg;
use progress::{Decision, Progress};

use crate::context::Context;

/// Longest one attempt of a node may take when the node sets no timeout.
const DEFAULT_NODE_TIMEOUT: Duration = Duration::from_secs(300);

pub(crate) struct ExecutionActor;

pub(crate) struct ExecutionArgs {
    pub ctx: Arc<Context>,
    pub graph: Arc<WorkflowGraph>,
    pub record: ExecutionRecord,
}

pub(crate) struct ExecutionState {
    ctx: Arc<Context>,
    record: ExecutionRecord,
    progress: Progress,
    running: HashMap<usize, AbortHandle>,
    timers: HashMap<usize, AbortHandle>,
    draining: bool,
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
        args.ctx.mark_local(args.record.id, true);
        Ok(ExecutionState {
            ctx: args.ctx,
            record: args.record,
            progress,
            running: HashMap::new(),
            timers: HashMap::new(),
            draining: false,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<ExecutionMsg>,
        state: &mut ExecutionState,
    ) -> Result<(), ActorProcessingErr> {
        state.begin(&myself).await
    }

    async fn handle(
        &self,
        myself: ActorRef<ExecutionMsg>,
        msg: ExecutionMsg,
        state: &mut ExecutionState,
    ) -> Result<(), ActorProcessingErr> {
        let result = state.handle(&myself, msg).await;
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
            } => self.node_done(myself, node, attempt, result).await,
            ExecutionMsg::Wake { node, attempt } => self.wake(myself, node, attempt).await,
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

    fn event(&self, kind: EventKind) -> ExecutionEvent {
        ExecutionEvent {
            tenant: self.record.tenant,
            workflow: self.record.workflow,
            execution: self.record.id,
            at_ms: now_ms(),
            kind,
        }
    }

    async fn emit(&self, kind: EventKind) {
        self.ctx.emit(self.event(kind)).await;
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
        if self.record.status == ExecutionStatus::Queued {
            let running = self
                .transition(ExecutionTransition::Start, None, None)
                .await?;
            if !running {
                myself.stop(Some("another writer moved the execution on".into()));
                return Ok(());
            }
            self.save_trigger_step().await?;
            self.emit(EventKind::ExecutionStarted).await;
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
                (NodeStatus::Running, Some(at)) | (NodeStatus::Retrying, Some(at)) => {
                    self.set_timer(myself, i, at)
                }
                (NodeStatus::Retrying, None) => self.start_node(myself, i).await?,
                (NodeStatus::Running, None) => self.rerun_node(myself, i),
                _ => {}
            }
        }
        self.advance(myself).await
    }

    async fn save_trigger_step(&mut self) -> Result<(), ActorProcessingErr> {
        let Some(&i) = self.progress.graph.index.get(&self.record.trigger_node) else {
            return Ok(());
        };
        let now = now_ms();
        let step = &mut self.progress.nodes[i];
        step.started_at = Some(now);
        step.finished_at = Some(now);
        self.save(i).await
    }

    /// Compare-and-set of the execution status through the lifecycle.
    async fn transition(
        &mut self,
        t: ExecutionTransition,
        output: Option<Value>,
        error: Option<String>,
    ) -> Result<bool, ActorProcessingErr> {
        let from = self.record.status;
        let to = from.apply(t)?;
        let change = ExecutionChange {
            id: self.record.id,
            from,
            to,
            output,
            error,
        };
        let won = self.ctx.store.transition_execution(&change).await?;
        if won {
            self.record.status = to;
        }
        Ok(won)
    }

    async fn save(&self, i: usize) -> Result<(), ActorProcessingErr> {
        self.ctx.store.save_step(&self.progress.nodes[i]).await?;
        Ok(())
    }

    /// Runs or skips every node that became decidable, then finishes the
    /// execution when nothing is left.
    async fn advance(&mut self, myself: &ActorRef<ExecutionMsg>) -> Result<(), ActorProcessingErr> {
        if self.draining || self.record.status.is_terminal() {
            return Ok(());
        }
        loop {
            let decisions = self.progress.decide();
            if decisions.is_empty() {
                break;
            }
            for decision in decisions {
                match decision {
                    Decision::Skip(i) => {
                        self.progress.apply(i, NodeTransition::Skip)?;
                        self.save(i).await?;
                        self.emit(EventKind::NodeSkipped {
                            node: self.progress.graph.node(i).id.clone(),
                        })
                        .await;
                    }
                    Decision::Run(i) => self.start_node(myself, i).await?,
                }
            }
        }
        if self.progress.is_complete() && self.running.is_empty() {
            match self.progress.first_failure() {
                None => {
                    let output = self.progress.result();
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

    async fn start_node(
        &mut self,
        myself: &ActorRef<ExecutionMsg>,
        i: usize,
    ) -> Result<(), ActorProcessingErr> {
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
        self.save(i).await?;
        self.emit(EventKind::NodeStarted {
            node: self.progress.graph.node(i).id.clone(),
            attempt,
        })
        .await;
        self.spawn_attempt(myself, i, attempt);
        Ok(())
    }

    /// Re-runs an attempt the journal shows as started but not finished.
    fn rerun_node(&mut self, myself: &ActorRef<ExecutionMsg>, i: usize) {
        let attempt = self.progress.nodes[i].attempts.max(1);
        self.progress.nodes[i].attempts = attempt;
        self.spawn_attempt(myself, i, attempt);
    }

    fn spawn_attempt(&mut self, myself: &ActorRef<ExecutionMsg>, i: usize, attempt: u32) {
        let graph = self.progress.graph.clone();
        let scope = self.progress.scope();
        let inputs = self.progress.inputs(i);
        let ctx = self.ctx.clone();
        let idempotency_key = format!("{}:{}", self.record.id, graph.node(i).id);
        let timeout = graph
            .node(i)
            .timeout
            .map(|t| t.0)
            .unwrap_or(DEFAULT_NODE_TIMEOUT);
        let reply = myself.clone();
        let task = tokio::spawn(async move {
            let node = graph.node(i);
            let request = RunRequest {
                node,
                document: &graph.document,
                scope: &scope,
                inputs: &inputs,
                secrets: ctx.secrets.as_ref(),
                idempotency_key: &idempotency_key,
            };
            let attempt_future = AssertUnwindSafe(ctx.runner.run(request)).catch_unwind();
            let result = match tokio::time::timeout(timeout, attempt_future).await {
                Ok(Ok(result)) => result,
                Ok(Err(_panic)) => Err(NodeError {
                    class: ErrorClass::Permanent,
                    message: "the node handler crashed".into(),
                }),
                Err(_) => Err(NodeError {
                    class: ErrorClass::Timeout,
                    message: format!(
                        "the attempt passed its timeout of {}",
                        humantime::format_duration(timeout)
                    ),
                }),
            };
            let _ = reply.cast(ExecutionMsg::NodeDone {
                node: i,
                attempt,
                result,
            });
        });
        self.running.insert(i, task.abort_handle());
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
    ) -> Result<(), ActorProcessingErr> {
        let state = &self.progress.nodes[i];
        if state.status != NodeStatus::Running
            || state.attempts != attempt
            || self.record.status.is_terminal()
        {
            return Ok(());
        }
        self.running.remove(&i);
        let node_id = self.progress.graph.node(i).id.clone();
        match result {
            Ok(Outcome::Output { value, branch }) => self.succeed(myself, i, value, branch).await,
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
                })
                .await;
                let output = json!({"status": status, "headers": headers_json, "body": body});
                self.succeed(myself, i, output, None).await
            }
            Ok(Outcome::Wait { duration }) => {
                let at = now_ms() + duration.as_millis() as i64;
                self.progress.nodes[i].wake_at = Some(at);
                self.save(i).await?;
                self.set_timer(myself, i, at);
                Ok(())
            }
            Err(error) => {
                let policy = self
                    .progress
                    .graph
                    .node(i)
                    .retry
                    .clone()
                    .unwrap_or_default();
                let message = format!("{}: {}", error.class.as_str(), error.message);
                if error.class.is_retryable() && attempt < policy.max_attempts && !self.draining {
                    let backoff = backoff_with_jitter(&policy, attempt + 1);
                    let at = now_ms() + backoff.as_millis() as i64;
                    self.progress.apply(i, NodeTransition::ScheduleRetry)?;
                    self.progress.nodes[i].wake_at = Some(at);
                    self.progress.nodes[i].error = Some(message.clone());
                    self.save(i).await?;
                    self.emit(EventKind::NodeRetrying {
                        node: node_id,
                        attempt,
                        error: message,
                        retry_in_ms: backoff.as_millis() as u64,
                    })
                    .await;
                    self.set_timer(myself, i, at);
                    Ok(())
                } else if self.draining && error.class.is_retryable() {
                    // Shutting down: leave the attempt to be run again at the next start.
                    Ok(())
                } else {
                    self.progress.apply(i, NodeTransition::Fail)?;
                    let state = &mut self.progress.nodes[i];
                    state.error = Some(message.clone());
                    state.finished_at = Some(now_ms());
                    self.save(i).await?;
                    self.emit(EventKind::NodeFailed {
                        node: node_id.clone(),
                        error: message.clone(),
                    })
                    .await;
                    let error = format!("node {node_id} failed: {message}");
                    self.finish(myself, ExecutionTransition::Fail, Some(error))
                        .await
                }
            }
        }
    }

    async fn succeed(
        &mut self,
        myself: &ActorRef<ExecutionMsg>,
        i: usize,
        output: Value,
        branch: Option<String>,
    ) -> Result<(), ActorProcessingErr> {
        self.progress.apply(i, NodeTransition::Succeed)?;
        let state = &mut self.progress.nodes[i];
        state.output = Some(output.clone());
        state.branch = branch;
        state.finished_at = Some(now_ms());
        state.wake_at = None;
        self.save(i).await?;
        let node = self.progress.graph.node(i).id.clone();
        self.emit(EventKind::NodeSucceeded {
            node,
            output: JsonText::from_value(&output),
        })
        .await;
        self.advance(myself).await
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
            NodeStatus::Running if state.wake_at.is_some() => {
                let waited = state.started_at.map(|s| now_ms() - s).unwrap_or_default();
                self.succeed(myself, i, json!({"waited_ms": waited}), None)
                    .await
            }
            NodeStatus::Retrying => self.start_node(myself, i).await,
            _ => Ok(()),
        }
    }

    async fn finish(
        &mut self,
        myself: &ActorRef<ExecutionMsg>,
        t: ExecutionTransition,
        error: Option<String>,
    ) -> Result<(), ActorProcessingErr> {
        self.finish_with(myself, t, None, error).await
    }

    /// Ends the execution: abandons what still runs, records the end, announces it.
    async fn finish_with(
        &mut self,
        myself: &ActorRef<ExecutionMsg>,
        t: ExecutionTransition,
        output: Option<Value>,
        error: Option<String>,
    ) -> Result<(), ActorProcessingErr> {
        if self.record.status.is_terminal() {
            return Ok(());
        }
        for (_, task) in self.running.drain().chain(self.timers.drain()) {
            task.abort();
        }
        for i in self.progress.graph.flow_nodes().collect::<Vec<_>>() {
            if !self.progress.nodes[i].status.is_terminal() {
                let status = self.progress.apply(i, NodeTransition::Abort)?;
                if status == NodeStatus::Failed {
                    self.progress.nodes[i].error =
                        Some("abandoned: the execution ended first".into());
                    self.progress.nodes[i].finished_at = Some(now_ms());
                }
                self.save(i).await?;
            }
        }
        if !self.transition(t, output.clone(), error.clone()).await? {
            // Another writer ended it (a cancel raced a finish): theirs stands.
            myself.stop(None);
            return Ok(());
        }
        let status = self.record.status;
        let output = output.as_ref().map(JsonText::from_value);
        self.emit(EventKind::ExecutionFinished {
            status,
            output,
            error,
        })
        .await;
        if let Err(e) = self
            .ctx
            .store
            .release_execution(self.record.id, &self.ctx.options.node_id)
            .await
        {
            tracing::warn!(execution = %self.record.id, error = %e, "could not release the lease; it will expire");
        }
        myself.stop(None);
        Ok(())
    }

    fn stop_if_drained(&self, myself: &ActorRef<ExecutionMsg>) {
        if self.running.is_empty() {
            myself.stop(Some("draining".into()));
        }
    }
}

fn backoff_with_jitter(policy: &RetryPolicy, next_attempt: u32) -> Duration {
    let base = policy.backoff_before(next_attempt);
    if policy.jitter && !base.is_zero() {
        base.mul_f64(rand::random_range(0.5..=1.0))
    } else {
        base
    }
}
