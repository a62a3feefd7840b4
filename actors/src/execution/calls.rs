//! `call_workflow`: child executions. The child is recorded in the turn
//! that journals the calling step (its id named in the step), so a crash
//! between the two never starts a second child. A waiting step parks its
//! execution (giving back its concurrency slot); the child's end records a
//! signal for the step in the child's own ending turn, which wakes the
//! parent. A parent that ends other than by success cancels the children
//! that asked for it.

use flowmesh_model::call_workflow::{CallWorkflowConfig, MAX_CALL_DEPTH, OnParentEnd};
use flowmesh_model::{
    Command, EventKind, ExecutionId, ExecutionStatus, StartCause, WorkflowGraph, WorkflowId,
};
use flowmesh_node_handlers::{ErrorClass, NodeError, Outcome};
use flowmesh_store::{CalledBy, ExecutionRecord, NewExecution, NewSignal, now_ms};
use ractor::{ActorProcessingErr, ActorRef};
use serde_json::{Value, json};

use super::commit::patiently;
use super::{AfterNode, ExecutionMsg, ExecutionState};
use crate::context::Context;
use flowmesh_services::metrics;

/// Where a new execution of a workflow starts (see `entry`).
pub(crate) struct Entry {
    pub version: i64,
    pub trigger_node: String,
    pub deadline_ms: Option<i64>,
}

/// What became of a call node's attempt.
pub(super) enum Placed {
    /// The child is staged and the node waits for its end.
    Waiting,
    /// The attempt's result to record as any other.
    Result(Result<Outcome, NodeError>),
}

impl ExecutionState {
    /// Stages the child an attempt of a `call_workflow` node asks for; any
    /// other result passes through.
    pub(super) async fn place_call(
        &mut self,
        myself: &ActorRef<ExecutionMsg>,
        i: usize,
        result: Result<Outcome, NodeError>,
    ) -> Result<Placed, ActorProcessingErr> {
        let Ok(Outcome::Call { input }) = result else {
            return Ok(Placed::Result(result));
        };
        let Some(config) = CallWorkflowConfig::of(self.progress.node(i)) else {
            let error = NodeError::permanent("the call_workflow config does not read");
            return Ok(Placed::Result(Err(error)));
        };
        let child = match self.child_of(i, &config, input).await? {
            Ok(child) => child,
            Err(error) => return Ok(Placed::Result(Err(error))),
        };
        let link = json!({
            "execution_id": child.id,
            "workflow_id": child.workflow,
            "version": child.version,
        });
        self.emit(EventKind::ChildStarted {
            node: self.progress.nodes[i].node.clone(),
            child: child.id,
            workflow: child.workflow,
        });
        self.pending.children.push(child);
        if !config.wait {
            let mut output = link;
            output["status"] = json!("started");
            return Ok(Placed::Result(Ok(Outcome::Output {
                value: output,
                branch: None,
            })));
        }
        self.start_waiting(myself, i, config.timeout.map(|t| t.0))?;
        // The waiting step names its child: the API links them, and the
        // child's end is matched against it.
        self.progress.nodes[i].output = Some(link);
        self.pending.check_signals = true;
        Ok(Placed::Waiting)
    }

    /// The child execution a call starts: the workflow's published version
    /// (or the one named), through its first trigger, with `input` as the
    /// body. Problems the call cannot get past fail the node.
    async fn child_of(
        &self,
        i: usize,
        config: &CallWorkflowConfig,
        input: Value,
    ) -> Result<Result<NewExecution, NodeError>, ActorProcessingErr> {
        let depth = self.record.called_by.as_ref().map_or(0, |c| c.depth) + 1;
        if depth > MAX_CALL_DEPTH {
            return Ok(Err(NodeError::permanent(format!(
                "this call would nest {depth} executions deep; calls may nest at most \
                 {MAX_CALL_DEPTH} deep. Retrying will not help"
            ))));
        }
        // A child is an execution like any other: it needs credits to
        // start, which also bounds how many a fan-out of calls can create.
        let (store, tenant) = (&self.ctx.store, self.record.tenant);
        let balance = self.patiently("balance", || store.balance(tenant)).await?;
        if balance.balance <= 0 {
            return Ok(Err(NodeError::permanent(format!(
                "the tenant has no credits left (balance {}); no child was started. \
                 Add credits, then re-run from this node",
                balance.balance
            ))));
        }
        let entry = match entry(&self.ctx, &self.record, config.workflow, config.version).await? {
            Ok(entry) => entry,
            Err(message) => return Ok(Err(NodeError::permanent(message))),
        };
        let step = self.progress.nodes[i].node.clone();
        Ok(Ok(NewExecution {
            id: ExecutionId::new(),
            tenant: self.record.tenant,
            workflow: config.workflow,
            version: entry.version,
            trigger_node: entry.trigger_node,
            trigger: json!({"body": input, "headers": {}, "query": {}}),
            // No key: its id, named by the step in the same turn, already
            // makes the child once, and a key the tenant could send itself
            // would let a start of its own stand in for the child.
            idempotency_key: None,
            fingerprint: None,
            deadline_ms: entry.deadline_ms,
            origin: None,
            steps: Vec::new(),
            traceparent: self.record.traceparent.clone(),
            test: None,
            handles: None,
            called_by: Some(CalledBy {
                execution: self.record.id,
                workflow: self.record.workflow,
                node: step,
                depth,
                cancel_with_parent: config.on_parent_end == OnParentEnd::Cancel,
            }),
        }))
    }

    /// Asks for the children recorded by a committed turn to start; if a
    /// command is lost, the claim sweep starts the child.
    pub(super) async fn start_children(&self, children: &[NewExecution]) {
        for child in children {
            metrics::execution_started(child.tenant, child.workflow);
            let command = Command::start(child.tenant, child.workflow, child.id);
            if let Err(e) = self.ctx.bus.publish_command(&command, None).await {
                tracing::warn!(execution = %child.id, error = %e, "start command for a child execution not published; the claim sweep starts it");
            }
        }
    }

    /// Applies a child's end to the step waiting for it: its output on
    /// success, a node failure otherwise. An end of another child (an
    /// earlier attempt's) is dropped.
    pub(super) fn child_ended(
        &mut self,
        i: usize,
        payload: &Value,
    ) -> Result<Option<AfterNode>, ActorProcessingErr> {
        let expected = self.progress.nodes[i]
            .output
            .as_ref()
            .and_then(|o| o.get("execution_id"))
            .cloned();
        let child = payload.get("execution_id").cloned();
        if expected.is_none() || expected != child {
            return Ok(None);
        }
        let status = payload.get("status").and_then(Value::as_str);
        let mut output = self.progress.nodes[i].output.clone().unwrap_or_default();
        output["status"] = json!(status);
        if status == Some(ExecutionStatus::Succeeded.as_str()) {
            output["output"] = payload.get("output").cloned().unwrap_or(Value::Null);
            // Held to the cap like any node's output: a child's output
            // gathers all its ends, each within the cap on its own.
            if let Some(error) = self.over_output_cap(&output) {
                return self.node_failed(i, &error, false).map(Some);
            }
            return self.succeed(i, output, None).map(Some);
        }
        let error = payload
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("no reason given");
        let error = NodeError::permanent(format!(
            "the called execution {} ended {}: {error}",
            child.as_ref().and_then(Value::as_str).unwrap_or_default(),
            status.unwrap_or("unknown"),
        ));
        self.node_failed(i, &error, false).map(Some)
    }

    /// A waiting call's timeout passed: the node fails, and its child is
    /// cancelled unless it was to be abandoned.
    pub(super) async fn call_timed_out(
        &mut self,
        i: usize,
    ) -> Result<AfterNode, ActorProcessingErr> {
        let child = self.progress.nodes[i]
            .output
            .as_ref()
            .and_then(|o| o.get("execution_id"))
            .and_then(Value::as_str)
            .and_then(|id| id.parse::<ExecutionId>().ok());
        let config = CallWorkflowConfig::of(self.progress.node(i));
        if let (Some(child), Some(config)) = (child, &config)
            && config.on_parent_end == OnParentEnd::Cancel
        {
            self.cancel_child(child, config.workflow).await;
        }
        let child = child.map(|c| format!(" {c}")).unwrap_or_default();
        let error = NodeError {
            class: ErrorClass::Timeout,
            message: format!("the called execution{child} did not end within the call's timeout"),
        };
        self.node_failed(i, &error, false)
    }

    async fn cancel_child(&self, child: ExecutionId, workflow: WorkflowId) {
        let tenant = self.record.tenant;
        if let Err(e) = self.ctx.store.request_cancel(tenant, child).await {
            tracing::warn!(execution = %child, error = %e, "could not cancel a child execution");
            return;
        }
        let command = Command::CancelExecution {
            tenant,
            workflow,
            execution: child,
        };
        if let Err(e) = self.ctx.bus.publish_command(&command, None).await {
            tracing::warn!(execution = %child, error = %e, "cancel command for a child not published; it stops when next taken up");
        }
    }

    /// A child whose parent ended other than by success while it was not
    /// running (a crash between the parent's end and its cancel) ends here.
    pub(super) async fn parent_gone(&self) -> Result<bool, ActorProcessingErr> {
        let Some(parent) = self
            .record
            .called_by
            .as_ref()
            .filter(|c| c.cancel_with_parent)
        else {
            return Ok(false);
        };
        let store = &self.ctx.store;
        let tenant = self.record.tenant;
        let record = self
            .patiently("get_execution", || {
                store.execution_status(tenant, parent.execution)
            })
            .await?;
        Ok(record.is_some_and(|s| s.is_terminal() && s != ExecutionStatus::Succeeded))
    }
}

/// The signal a child's end records for its parent's waiting step.
pub(crate) fn end_for_parent(
    record: &ExecutionRecord,
    status: ExecutionStatus,
    output: Option<&Value>,
    error: Option<&str>,
) -> Option<NewSignal> {
    let parent = record.called_by.as_ref()?;
    Some(NewSignal {
        tenant: record.tenant,
        execution: parent.execution,
        node: parent.node.clone(),
        payload: json!({
            "execution_id": record.id,
            "status": status,
            "output": output,
            "error": error,
        }),
        idempotency_key: None,
    })
}

/// Makes a parent whose waiting step got this child's end apply it now
/// (a parked one is due already: the claim sweep takes it otherwise).
pub(crate) async fn wake_parent(ctx: &Context, record: &ExecutionRecord) {
    let Some(parent) = &record.called_by else {
        return;
    };
    let signal = record.id.to_string();
    let commands = [
        Command::SignalExecution {
            tenant: record.tenant,
            workflow: parent.workflow,
            execution: parent.execution,
            signal: signal.clone(),
        },
        Command::StartExecution {
            tenant: record.tenant,
            workflow: parent.workflow,
            execution: parent.execution,
            cause: StartCause::Resumed { signal },
        },
    ];
    for command in commands {
        if let Err(e) = ctx.bus.publish_command(&command, None).await {
            tracing::warn!(execution = %parent.execution, error = %e, "command to a parent not published; the claim sweep wakes it");
        }
    }
}

/// After an execution's end other than success: its children that asked
/// to be cancelled with it are.
pub(crate) async fn cancel_children(
    ctx: &Context,
    record: &ExecutionRecord,
    ended: ExecutionStatus,
) {
    if ended == ExecutionStatus::Succeeded {
        return;
    }
    let children = match ctx.store.cancel_children(record.tenant, record.id).await {
        Ok(children) => children,
        Err(e) => {
            tracing::warn!(execution = %record.id, error = %e, "could not cancel the children of an ended execution; each stops when next taken up");
            return;
        }
    };
    for (child, workflow) in children {
        let command = Command::CancelExecution {
            tenant: record.tenant,
            workflow,
            execution: child,
        };
        if let Err(e) = ctx.bus.publish_command(&command, None).await {
            tracing::warn!(execution = %child, error = %e, "cancel command for a child not published; it stops when next taken up");
        }
    }
}

/// Where a new execution of `workflow` of the record's tenant starts: the
/// version named or else the published one, through its first trigger. A
/// message saying why it cannot start otherwise.
pub(crate) async fn entry(
    ctx: &Context,
    record: &ExecutionRecord,
    workflow: WorkflowId,
    version: Option<i64>,
) -> Result<Result<Entry, String>, ActorProcessingErr> {
    let (tenant, store) = (record.tenant, &ctx.store);
    let found = patiently(record.id, "get_workflow", || {
        store.get_workflow(tenant, workflow)
    })
    .await?;
    let Some(found) = found else {
        return Ok(Err(format!(
            "workflow {workflow} is not a workflow of this tenant (deleted?)"
        )));
    };
    let Some(version) = version.or(found.summary.published_version) else {
        return Ok(Err(format!(
            "workflow {workflow} has no published version; publish it, or name a version"
        )));
    };
    let document = patiently(record.id, "workflow_version", || {
        store.workflow_version(workflow, version)
    })
    .await?;
    let Some(document) = document else {
        return Ok(Err(format!("workflow {workflow} has no version {version}")));
    };
    let deadline_ms = document
        .settings
        .timeout
        .map(|t| now_ms() + t.0.as_millis() as i64);
    let graph = WorkflowGraph::new(document);
    let Some(trigger) = graph.find_trigger(|_| true) else {
        return Ok(Err(format!(
            "workflow {workflow} has no trigger to start it through"
        )));
    };
    Ok(Ok(Entry {
        version,
        trigger_node: graph.node(trigger).id.clone(),
        deadline_ms,
    }))
}
