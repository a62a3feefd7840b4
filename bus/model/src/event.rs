//! Events: what happened to an execution, published for subscribers
//! (Server-Sent Events, NATS subscribers, synchronous webhook callers).

use serde::{Deserialize, Serialize};

use crate::ids::{ExecutionId, TenantId, WorkflowId};
use crate::json::JsonText;
use crate::lifecycle::ExecutionStatus;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExecutionEvent {
    pub tenant: TenantId,
    pub workflow: WorkflowId,
    pub execution: ExecutionId,
    /// Milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// Order of the event within its execution: 1, 2, 3, … as recorded
    /// with the turns that produced them.
    pub seq: u64,
    /// Position in its tenant's stream of events, given when the event is
    /// recorded with its turn: increasing by one per event of the tenant.
    /// 0 until recorded.
    pub position: u64,
    pub kind: EventKind,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum EventKind {
    ExecutionStarted,
    NodeStarted {
        node: String,
        attempt: u32,
    },
    NodeSucceeded {
        node: String,
        output: JsonText,
    },
    NodeRetrying {
        node: String,
        attempt: u32,
        error: String,
        retry_in_ms: u64,
    },
    NodeFailed {
        node: String,
        error: String,
    },
    NodeSkipped {
        node: String,
    },
    /// A node waits for a time, for a resume, or for whichever comes first.
    NodeWaiting {
        node: String,
        /// When the wait ends by itself (ms since the Unix epoch); none for
        /// a wait for a resume without a timeout.
        until_ms: Option<i64>,
    },
    /// A respond node decided the HTTP answer of a synchronous webhook.
    Responded {
        status: u16,
        headers: Vec<(String, String)>,
        body: JsonText,
    },
    ExecutionFinished {
        status: ExecutionStatus,
        output: Option<JsonText>,
        error: Option<String>,
    },
    /// A test run started: `execution_started` with `test: true`. A variant
    /// of its own (last, so that encoded events keep their numbers) because
    /// recorded `ExecutionStarted` events have no field to add it to.
    TestRunStarted,
    /// A `call_workflow` node started a child execution.
    ChildStarted {
        node: String,
        child: ExecutionId,
        workflow: WorkflowId,
    },
    /// This execution was started by a `call_workflow` node of `parent`
    /// (at its step `node`): the child's first event after its start.
    CalledBy {
        parent: ExecutionId,
        node: String,
    },
}

impl EventKind {
    /// The name used as the SSE `event:` field and in JSON.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::ExecutionStarted | EventKind::TestRunStarted => "execution_started",
            EventKind::NodeStarted { .. } => "node_started",
            EventKind::NodeSucceeded { .. } => "node_succeeded",
            EventKind::NodeRetrying { .. } => "node_retrying",
            EventKind::NodeFailed { .. } => "node_failed",
            EventKind::NodeSkipped { .. } => "node_skipped",
            EventKind::NodeWaiting { .. } => "node_waiting",
            EventKind::Responded { .. } => "responded",
            EventKind::ExecutionFinished { .. } => "execution_finished",
            EventKind::ChildStarted { .. } => "child_started",
            EventKind::CalledBy { .. } => "called_by",
        }
    }

    pub fn is_final(&self) -> bool {
        matches!(self, EventKind::ExecutionFinished { .. })
    }
}

impl ExecutionEvent {
    /// The JSON form given to HTTP subscribers.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        let mut body = match &self.kind {
            EventKind::ExecutionStarted => json!({"test": false}),
            EventKind::TestRunStarted => json!({"test": true}),
            EventKind::NodeStarted { node, attempt } => json!({"node": node, "attempt": attempt}),
            EventKind::NodeSucceeded { node, output } => {
                json!({"node": node, "output": output.to_value()})
            }
            EventKind::NodeRetrying {
                node,
                attempt,
                error,
                retry_in_ms,
            } => {
                json!({"node": node, "attempt": attempt, "error": error, "retry_in_ms": retry_in_ms})
            }
            EventKind::NodeFailed { node, error } => json!({"node": node, "error": error}),
            EventKind::NodeSkipped { node } => json!({"node": node}),
            EventKind::NodeWaiting { node, until_ms } => {
                json!({"node": node, "until_ms": until_ms})
            }
            EventKind::Responded { status, body, .. } => {
                json!({"status": status, "body": body.to_value()})
            }
            EventKind::ExecutionFinished {
                status,
                output,
                error,
            } => json!({
                "status": status,
                "output": output.as_ref().map(JsonText::to_value),
                "error": error,
            }),
            EventKind::ChildStarted {
                node,
                child,
                workflow,
            } => json!({"node": node, "child_execution_id": child, "child_workflow_id": workflow}),
            EventKind::CalledBy { parent, node } => {
                json!({"parent_execution_id": parent, "node": node})
            }
        };
        body["type"] = json!(self.kind.name());
        body["execution_id"] = json!(self.execution);
        body["workflow_id"] = json!(self.workflow);
        body["at_ms"] = json!(self.at_ms);
        body["seq"] = json!(self.seq);
        body
    }
}
