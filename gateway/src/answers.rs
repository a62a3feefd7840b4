//! The answers the gateway shapes itself, as types: a handler serializes
//! one, and the OpenAPI description lists its schema (schemars), so the
//! two cannot part. Records the services give are answered as they are
//! (each derives its own schema where it is defined).

use flowmesh_api::NodeLog;
use flowmesh_model::{
    ExecutionId, ExecutionStatus, NodeStatus, Primitive, Role, TenantId, WorkflowDocument,
    WorkflowId,
};
use flowmesh_services::records::{
    DailyUsage, ExecutionRecord, ExecutionSummary, InvitationInfo, KeyInfo, LedgerEntry, StepRecord,
};
use flowmesh_services::{Jail, ModelUsage};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Serialize;
use serde_json::{Map, Value};

/// A whole list.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "{T}List")]
pub struct Items<T> {
    pub items: Vec<T>,
}

/// One page of a longer list, newest first.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "{T}Page")]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The `cursor` of the next page; null on the last one.
    pub next_cursor: Option<String>,
}

/// The workflow document as its own schema states it (the model's, what a
/// document is read with), in answers too.
fn workflow_document(generator: &mut SchemaGenerator) -> Schema {
    let mut reading = crate::openapi::request_schemas();
    let schema = reading.subschema_for::<WorkflowDocument>();
    generator
        .definitions_mut()
        .extend(reading.take_definitions(true));
    schema
}

/// A JSON Schema (draft 2020-12): the workflow document's.
#[derive(Debug, Serialize, JsonSchema)]
pub struct JsonSchemaDocument(#[schemars(with = "Map<String, Value>")] pub Value);

/// An OpenAPI 3.1 description: this one.
#[derive(Debug, Serialize, JsonSchema)]
pub struct OpenApiDocument(#[schemars(with = "Map<String, Value>")] pub Value);

/// The process is up.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Health {
    pub status: Up,
}

#[derive(Debug, Serialize, JsonSchema)]
pub enum Up {
    #[serde(rename = "ok")]
    Ok,
}

/// Whether this process can serve: 200 when the store and the bus answer,
/// 503 otherwise.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Ready {
    pub ready: bool,
    pub store: Check,
    pub bus: Check,
    /// How commands and events travel (`nats`, or `in-process` in one process).
    pub transport: &'static str,
    /// Executions with a live actor in this process.
    pub executions_here: usize,
    pub sandbox: SandboxReport,
    /// What this process runs (`--role`): `all`, `gateway` or `worker`.
    #[schemars(with = "String")]
    pub role: flowmesh_services::ProcessRole,
}

/// Whether a dependency answered, and if not, why.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Check {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Check {
    pub fn of(result: &Result<(), String>) -> Check {
        Check {
            ok: result.is_ok(),
            error: result.as_ref().err().cloned(),
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SandboxReport {
    /// What the jail of sandboxed code found on this host.
    pub jail: Jail,
}

/// A tenant, named both ways.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TenantRef {
    pub id: TenantId,
    pub slug: String,
}

/// A session just opened.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Session {
    /// The bearer token of the session.
    pub token: String,
    /// Milliseconds since the Unix epoch.
    pub expires_at: i64,
    pub tenant: TenantRef,
    pub role: Role,
}

impl From<flowmesh_api::Session> for Session {
    fn from(s: flowmesh_api::Session) -> Session {
        Session {
            token: s.token,
            expires_at: s.expires_at,
            tenant: TenantRef {
                id: s.tenant,
                slug: s.tenant_slug,
            },
            role: s.role,
        }
    }
}

/// Who the credential is.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Me {
    pub tenant: TenantRef,
    pub role: Role,
    /// `user:<id>` or `key:<id>`.
    pub actor: String,
    /// The CSRF token of the console's session, when the console's cookie
    /// signed this request in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
}

/// What registration and invitation acceptance answer, whether or not the
/// email already had an account.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Pending {
    pub status: Accepted,
    pub message: &'static str,
}

#[derive(Debug, Serialize, JsonSchema)]
pub enum Accepted {
    #[serde(rename = "accepted")]
    Accepted,
}

/// A node kind, as offered to users and generators.
#[derive(Debug, Serialize, JsonSchema)]
pub struct NodeKind {
    #[serde(rename = "type")]
    pub primitive: Primitive,
    pub kind: &'static str,
    pub description: &'static str,
    /// What the node's output holds.
    pub outputs: &'static str,
    /// The JSON Schema of its config.
    #[schemars(with = "Map<String, Value>")]
    pub config_schema: Value,
    /// A config that passes the schema.
    pub example: Value,
}

/// A workflow without its document.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WorkflowSummary {
    pub id: WorkflowId,
    pub name: String,
    /// The latest version (a draft until published).
    pub version: i64,
    /// The version executions start from; null before the first publish.
    pub published_version: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Its execution statistics, in a list asked for them (`stats=true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats: Option<flowmesh_services::WorkflowStats>,
}

impl From<&flowmesh_services::records::WorkflowSummary> for WorkflowSummary {
    fn from(s: &flowmesh_services::records::WorkflowSummary) -> WorkflowSummary {
        WorkflowSummary {
            id: s.id,
            name: s.name.clone(),
            version: s.latest_version,
            published_version: s.published_version,
            created_at: s.created_at,
            updated_at: s.updated_at,
            stats: None,
        }
    }
}

/// A workflow and its latest document.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Workflow {
    #[serde(flatten)]
    pub summary: WorkflowSummary,
    #[schemars(schema_with = "workflow_document")]
    pub document: WorkflowDocument,
}

/// One version of a workflow, in its list.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WorkflowVersion {
    pub version: i64,
    pub created_at: i64,
    /// Whether executions start from this version.
    pub published: bool,
}

/// One version of a workflow and its document.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WorkflowVersionDocument {
    pub workflow_id: WorkflowId,
    #[serde(flatten)]
    pub version: WorkflowVersion,
    #[schemars(schema_with = "workflow_document")]
    pub document: WorkflowDocument,
}

/// A draft generated from a description.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Generated {
    pub workflow: Workflow,
    /// The model's account of the draft.
    pub explanation: String,
    /// Requests made to the model (1 when the first answer was valid).
    pub rounds: u32,
    pub usage: ModelUsage,
}

/// An execution accepted: it runs on its own.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Started {
    pub execution_id: ExecutionId,
    /// Where a waiting start stands when its `timeout` passed first:
    /// `queued` until a process takes it up, then `running`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<ExecutionStatus>,
}

impl Started {
    pub fn new(execution_id: ExecutionId) -> Started {
        Started {
            execution_id,
            status: None,
        }
    }
}

/// The result of an execution a start waited for.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Finished {
    pub execution_id: ExecutionId,
    pub status: ExecutionStatus,
    /// The workflow's output: free-form JSON.
    pub output: Option<Value>,
    pub error: Option<String>,
}

/// An execution in a list.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "ExecutionSummary")]
pub struct ExecutionItem {
    pub id: ExecutionId,
    pub workflow_id: WorkflowId,
    pub version: i64,
    pub status: ExecutionStatus,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    /// A test run: started by hand on any version, perhaps with mocks.
    pub test: bool,
}

impl From<&ExecutionSummary> for ExecutionItem {
    fn from(e: &ExecutionSummary) -> ExecutionItem {
        ExecutionItem {
            id: e.id,
            workflow_id: e.workflow,
            version: e.version,
            status: e.status,
            created_at: e.created_at,
            finished_at: e.finished_at,
            test: e.test,
        }
    }
}

/// An execution and each node's state.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Execution {
    pub id: ExecutionId,
    pub workflow_id: WorkflowId,
    pub version: i64,
    pub status: ExecutionStatus,
    /// What started it: free-form JSON (a webhook's request, a start's input).
    pub trigger: Value,
    /// The workflow's output: free-form JSON.
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cancel_requested: bool,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// The execution this one re-runs, and from which node.
    pub rerun_of: Option<RerunOf>,
    /// For a child of a `call_workflow` node: the execution and step that
    /// called it (the step's output names the child in turn).
    pub parent: Option<Parent>,
    /// For a run of an `on_error_workflow`: the execution whose failure it handles.
    pub handles_failure_of: Option<ExecutionId>,
    /// A test run: started by hand on any version, perhaps with mocks.
    pub test: bool,
    /// The workflow's own nodes, and a page of the steps of loop
    /// iterations (keyed by their scope, `charge_each[3].charge`).
    pub nodes: Vec<NodeState>,
    /// Where the next page of iteration steps starts: pass it as
    /// `steps_after`; null on the last page. Absent for an execution
    /// without loop iterations read without `scope` or paging.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_steps_after: Option<Option<String>>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Parent {
    pub execution_id: ExecutionId,
    pub workflow_id: WorkflowId,
    /// The calling step (`each[2].call` inside a loop).
    pub node: String,
    /// Calls from the first execution of the chain to this one.
    pub depth: u32,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct RerunOf {
    pub execution_id: ExecutionId,
    pub from_node: String,
}

/// One node of an execution.
#[derive(Debug, Serialize, JsonSchema)]
pub struct NodeState {
    pub node: String,
    pub status: NodeStatus,
    pub attempts: u32,
    /// The node's output: free-form JSON.
    pub output: Option<Value>,
    /// The output a condition took.
    pub branch: Option<String>,
    pub error: Option<String>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// When a waiting node wakes.
    pub wake_at: Option<i64>,
    /// What the node printed (code nodes).
    pub logs: Vec<String>,
    /// A test run's mock was its output: it did not run.
    pub mocked: bool,
}

impl NodeState {
    fn of(r: &ExecutionRecord, s: &StepRecord) -> NodeState {
        NodeState {
            node: s.node.clone(),
            status: s.status,
            attempts: s.attempts,
            output: s.output.clone(),
            branch: s.branch.clone(),
            error: s.error.clone(),
            started_at: s.started_at,
            finished_at: s.finished_at,
            wake_at: s.wake_at,
            logs: s.logs.clone(),
            mocked: flowmesh_services::mocked(r, s),
        }
    }
}

impl From<&ExecutionRecord> for Execution {
    fn from(r: &ExecutionRecord) -> Execution {
        Execution {
            id: r.id,
            workflow_id: r.workflow,
            version: r.version,
            status: r.status,
            trigger: r.trigger.clone(),
            output: r.output.clone(),
            error: r.error.clone(),
            cancel_requested: r.cancel_requested,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            rerun_of: r.origin.as_ref().map(|o| RerunOf {
                execution_id: o.execution,
                from_node: o.node.clone(),
            }),
            parent: r.called_by.as_ref().map(|c| Parent {
                execution_id: c.execution,
                workflow_id: c.workflow,
                node: c.node.clone(),
                depth: c.depth,
            }),
            handles_failure_of: r.handles,
            test: r.test.is_some(),
            nodes: r.steps.iter().map(|s| NodeState::of(r, s)).collect(),
            next_steps_after: None,
        }
    }
}

/// A cancel asked for; the execution stops at its next step.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Cancelling {
    pub execution_id: ExecutionId,
    /// Its status when the cancel was asked for.
    pub status: ExecutionStatus,
    pub cancel_requested: bool,
}

/// A resume stored; the waiting node applies it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Resumed {
    pub execution_id: ExecutionId,
    /// The node it resumes.
    pub node: String,
    pub resumed: bool,
}

/// Each node's attempts, input, output and logs.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Logs {
    pub execution_id: ExecutionId,
    pub nodes: Vec<NodeLog>,
}

/// A re-run started.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Rerunning {
    /// The new execution.
    pub execution_id: ExecutionId,
    pub rerun_of: ExecutionId,
}

/// The tenant's language-model endpoint; null fields take the instance's.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ModelEndpoint {
    pub base_url: Option<String>,
    pub model: Option<String>,
    /// The name of the tenant's secret holding the API key.
    pub api_key_secret: Option<String>,
}

impl From<flowmesh_services::ModelSettings> for ModelEndpoint {
    fn from(s: flowmesh_services::ModelSettings) -> ModelEndpoint {
        ModelEndpoint {
            base_url: s.base_url,
            model: s.model,
            api_key_secret: s.api_key_secret,
        }
    }
}

/// An API key just made: the only time the key itself is shown.
#[derive(Debug, Serialize, JsonSchema)]
pub struct NewApiKey {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub role: Role,
    pub created_at: i64,
    /// Who created it (`user:<id>` or `key:<id>`).
    pub created_by: Option<String>,
    pub key: String,
}

impl NewApiKey {
    pub fn new(info: KeyInfo, key: String) -> NewApiKey {
        NewApiKey {
            id: info.id,
            name: info.name,
            prefix: info.prefix,
            role: info.role,
            created_at: info.created_at,
            created_by: info.created_by,
            key,
        }
    }
}

/// An invitation just made: the only time its token is shown.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Invitation {
    #[serde(flatten)]
    pub info: InvitationInfo,
    pub token: String,
}

/// A secret stored (201 when new, 200 when replaced).
#[derive(Debug, Serialize, JsonSchema)]
pub struct SecretStored {
    pub name: String,
    pub created: bool,
}

/// Usage per day and workflow, and its sum.
#[derive(Debug, Serialize, JsonSchema)]
pub struct UsageReport {
    pub from: String,
    pub to: String,
    pub total: UsageTotal,
    pub items: Vec<DailyUsage>,
}

#[derive(Debug, Default, Serialize, JsonSchema)]
pub struct UsageTotal {
    pub executions: i64,
    pub node_runs: i64,
    pub sandbox_ms: i64,
    pub llm_tokens: i64,
    pub credits: i64,
}

impl UsageTotal {
    pub fn of(days: &[DailyUsage]) -> UsageTotal {
        days.iter().fold(UsageTotal::default(), |t, d| UsageTotal {
            executions: t.executions + d.executions,
            node_runs: t.node_runs + d.node_runs,
            sandbox_ms: t.sandbox_ms + d.sandbox_ms,
            llm_tokens: t.llm_tokens + d.llm_tokens,
            credits: t.credits + d.credits,
        })
    }
}

/// Credits bought whenever the balance falls below a threshold.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Refill {
    pub threshold: i64,
    pub amount: i64,
}

/// The balance, the automatic refill and a page of the ledger.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Billing {
    /// Settled credits minus usage not settled yet.
    pub balance: i64,
    /// Usage not settled yet.
    pub pending: i64,
    pub auto_refill: Option<Refill>,
    pub ledger: Vec<LedgerEntry>,
    /// The `cursor` of the ledger's next page; null on the last one.
    pub next_cursor: Option<String>,
}

/// The automatic refill as set (null: off).
#[derive(Debug, Serialize, JsonSchema)]
pub struct AutoRefillSet {
    pub auto_refill: Option<Refill>,
}
