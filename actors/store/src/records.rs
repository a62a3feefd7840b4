//! What the store returns and takes.

use flowmesh_model::{
    ExecutionId, ExecutionStatus, NodeStatus, Role, TenantId, WorkflowDocument, WorkflowId,
};
use serde::Serialize;
use serde_json::{Map, Value};

/// Who a request comes from: a user's session or an API key, within
/// one tenant.
#[derive(Clone, Debug, Serialize)]
pub struct Principal {
    pub tenant: TenantId,
    pub tenant_slug: String,
    pub role: Role,
    /// `user:{id}` or `key:{id}`.
    pub actor: String,
    /// The session, when the credential is a session token.
    pub session: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct WorkflowSummary {
    pub id: WorkflowId,
    pub name: String,
    pub latest_version: i64,
    pub published_version: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct WorkflowRecord {
    pub summary: WorkflowSummary,
    /// The latest version.
    pub document: WorkflowDocument,
}

#[derive(Clone, Debug, Serialize)]
pub struct NewExecution {
    pub id: ExecutionId,
    pub tenant: TenantId,
    pub workflow: WorkflowId,
    pub version: i64,
    pub trigger_node: String,
    /// `{body, headers, query}` of what started the run.
    pub trigger: Value,
    /// Scoped to the workflow and trigger node.
    pub idempotency_key: Option<String>,
    /// What the request was (a hash of a canonical form): a key sent again
    /// with another fingerprint is refused.
    pub fingerprint: Option<String>,
    pub deadline_ms: Option<i64>,
    /// The execution this one re-runs, and from which node.
    pub origin: Option<Origin>,
    /// Journal entries it starts with (a re-run's reused upstream results).
    pub steps: Vec<StepRecord>,
    /// The W3C trace context the run belongs to.
    pub traceparent: Option<String>,
    /// Set for a test run.
    pub test: Option<TestRun>,
    /// The execution whose failure this run handles (`on_error_workflow`).
    pub handles: Option<ExecutionId>,
    /// The `call_workflow` step that started this run as its child.
    pub called_by: Option<CalledBy>,
}

/// Where a child execution was called from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CalledBy {
    pub execution: ExecutionId,
    pub workflow: WorkflowId,
    /// The parent's step key (`each[2].call` inside a loop).
    pub node: String,
    /// Calls between the first execution of the chain and this one (1 for
    /// a child of an execution nobody called).
    pub depth: u32,
    /// Whether the parent's end cancels this run.
    pub cancel_with_parent: bool,
}

/// What makes an execution a test run: started by hand on any version, and
/// the outputs of the nodes that are not run, by node id.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TestRun {
    pub mocks: Map<String, Value>,
}

/// Where a re-run came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Origin {
    pub execution: ExecutionId,
    pub node: String,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct Created {
    pub id: ExecutionId,
    /// False when the idempotency key matched an earlier execution.
    pub created: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct ExecutionRecord {
    pub id: ExecutionId,
    pub tenant: TenantId,
    pub workflow: WorkflowId,
    pub version: i64,
    pub status: ExecutionStatus,
    pub trigger_node: String,
    pub trigger: Value,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cancel_requested: bool,
    pub deadline_ms: Option<i64>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub origin: Option<Origin>,
    pub traceparent: Option<String>,
    /// Set for a test run.
    pub test: Option<TestRun>,
    /// The execution whose failure this run handles (`on_error_workflow`).
    #[serde(skip)]
    pub handles: Option<ExecutionId>,
    /// Set for a child of a `call_workflow` node.
    #[serde(skip)]
    pub called_by: Option<CalledBy>,
    /// Whether it holds one of its tenant's concurrency slots (none while
    /// parked).
    #[serde(skip)]
    pub holds_slot: bool,
    pub steps: Vec<StepRecord>,
    /// In-process work its owner marked as possibly running.
    #[serde(skip)]
    pub in_process: Option<InProcess>,
    /// When an engine last died while this execution ran in-process work.
    #[serde(skip)]
    pub engine_death_at: Option<i64>,
    /// The `seq` of its newest recorded event, where the query that loaded
    /// the record read it too (a claim does, so a starting actor need not
    /// ask again).
    #[serde(skip)]
    pub last_event_seq: Option<u64>,
}

/// A mark that an execution's owner may be running in-process work
/// (templates, conditions, code): written before the work starts, cleared
/// by the turn that journals its result. Found by another process run, it
/// means that run died while the work ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InProcess {
    /// The engine process run (incarnation) that wrote the mark.
    pub by: String,
    /// The node; none for the start turn's in-process nodes, which run
    /// under the mark their claim wrote.
    pub node: Option<String>,
}

/// One node of one execution in the journal.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepRecord {
    pub execution: ExecutionId,
    pub node: String,
    pub status: NodeStatus,
    pub attempts: u32,
    pub input: Option<Value>,
    pub output: Option<Value>,
    pub branch: Option<String>,
    pub error: Option<String>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// When a wait ends or a retry is due.
    pub wake_at: Option<i64>,
    /// What the last attempt printed (code nodes).
    pub logs: Vec<String>,
}

/// A compare-and-set of an execution's status.
#[derive(Clone, Debug)]
pub struct ExecutionChange {
    pub id: ExecutionId,
    pub from: ExecutionStatus,
    pub to: ExecutionStatus,
    pub output: Option<Value>,
    pub error: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct ExecutionQuery {
    pub workflow: Option<WorkflowId>,
    pub status: Option<ExecutionStatus>,
    /// Only test runs (true) or only the others (false).
    pub test: Option<bool>,
    /// 1 to 500; 0 means 50.
    pub limit: u32,
    /// The last id of the previous page.
    pub cursor: Option<ExecutionId>,
    /// Only executions created at or after this time (ms since the epoch).
    pub from: Option<i64>,
    /// Only executions created before this time (ms since the epoch).
    pub to: Option<i64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ExecutionPage {
    pub items: Vec<ExecutionSummary>,
    pub next_cursor: Option<ExecutionId>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ExecutionSummary {
    pub id: ExecutionId,
    pub workflow: WorkflowId,
    pub version: i64,
    pub status: ExecutionStatus,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    pub test: bool,
}

/// Publishing one of a workflow's versions, with what its triggers serve.
#[derive(Clone, Copy, Debug)]
pub struct Publish<'a> {
    pub tenant: TenantId,
    pub workflow: WorkflowId,
    pub version: i64,
    /// Webhook routes: (METHOD, path).
    pub routes: &'a [(String, String)],
    pub schedules: &'a [crate::NewSchedule],
}

/// Saving a new version of a workflow.
#[derive(Clone, Copy, Debug)]
pub struct Update<'a> {
    pub tenant: TenantId,
    pub workflow: WorkflowId,
    pub document: &'a WorkflowDocument,
    /// The version the edit was made on: the save is refused unless it is
    /// still the latest (none: saved whatever came before).
    pub expected: Option<i64>,
}

/// What saving a new version came to.
#[derive(Clone, Debug)]
pub enum Updated {
    Saved(WorkflowSummary),
    /// Another version was saved after the one the edit was made on.
    Stale {
        latest: i64,
    },
    NotFound,
}

/// One version of a workflow, as its list shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionInfo {
    pub version: i64,
    pub created_at: i64,
}

/// A page of a workflow's versions, newest first.
#[derive(Clone, Copy, Debug)]
pub struct VersionsQuery {
    pub tenant: TenantId,
    pub workflow: WorkflowId,
    /// Versions below this one (the previous page's last).
    pub before: Option<i64>,
    pub limit: u32,
}
