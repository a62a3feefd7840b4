//! Requests callers make and the answers they get, as the services take
//! and give them (the gateway reads them from HTTP, the NATS trigger
//! service from messages).

use bytes::Bytes;
use flowmesh_model::{ExecutionId, ExecutionStatus, HumanDuration, Role, TenantId, WorkflowId};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `POST /v1/auth/register`, and from where (registrations are limited
/// per address).
#[derive(Clone, Debug)]
pub struct RegisterRequest {
    pub email: String,
    pub password: String,
    pub tenant: String,
    pub source: Option<std::net::IpAddr>,
}

/// `POST /v1/auth/login`: who, and from where (failed attempts are
/// delayed per account and address).
#[derive(Clone, Copy, Debug)]
pub struct LoginRequest<'a> {
    pub email: &'a str,
    pub password: &'a str,
    /// The tenant to open the session for; needed when the user belongs
    /// to several.
    pub tenant: Option<TenantId>,
    pub source: Option<std::net::IpAddr>,
}

/// `POST /v1/auth/accept`: the invitation's token, the password (of the
/// email's account when it has one, else of the new one), and from where
/// (made-up tokens are delayed per address).
#[derive(Clone, Copy, Debug)]
pub struct AcceptRequest<'a> {
    pub token: &'a str,
    pub password: &'a str,
    pub source: Option<std::net::IpAddr>,
}

/// A session just opened.
#[derive(Clone, Debug)]
pub struct Session {
    pub token: String,
    pub expires_at: i64,
    pub tenant: TenantId,
    pub tenant_slug: String,
    pub role: Role,
}

/// Start an execution of a workflow's published version through the API.
#[derive(Clone, Debug)]
pub struct StartRequest {
    pub tenant: TenantId,
    pub workflow: WorkflowId,
    /// Becomes `trigger.body`.
    pub input: Value,
    pub idempotency_key: Option<String>,
    /// The caller will wait for the result (`?wait=true`).
    pub wait: bool,
}

/// Test-run one version of a workflow, published or not.
#[derive(Clone, Debug)]
pub struct TestRunRequest {
    pub tenant: TenantId,
    pub workflow: WorkflowId,
    pub version: i64,
    /// Becomes `trigger.body`.
    pub input: Value,
    /// Outputs of nodes that are not run, by node id.
    pub mocks: Map<String, Value>,
    /// The caller will wait for the result (`?wait=true`).
    pub wait: bool,
}

/// What a synchronous caller waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Until {
    Responded,
    Finished,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Responded {
        status: u16,
        headers: Vec<(String, String)>,
        body: Value,
    },
    Finished {
        status: ExecutionStatus,
        output: Option<Value>,
        error: Option<String>,
    },
}

/// A request to buy credits for a tenant.
#[derive(Clone, Debug)]
pub struct RefillRequest {
    pub tenant: TenantId,
    pub amount: i64,
    /// The same refill asked for again carries the same key.
    pub idempotency_key: String,
}

/// Proof of a payment: its id at the provider.
#[derive(Clone, Debug)]
pub struct Receipt {
    pub id: String,
}

/// `POST /v1/admin/tenants/{slug}/credits`.
#[derive(Clone, Debug)]
pub struct GrantRequest {
    pub tenant_slug: String,
    pub amount: i64,
    pub note: Option<String>,
    /// A grant sent again with the same key is recorded once.
    pub idempotency_key: Option<String>,
    pub actor: String,
}

/// Describe a workflow; get a draft.
#[derive(Clone, Debug)]
pub struct GenerateRequest {
    pub tenant: TenantId,
    pub prompt: String,
    /// How many times the model may repair an invalid answer.
    pub repairs: u32,
}

/// One node's part of an execution, as its logs show it.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct NodeLog {
    pub node: String,
    pub kind: String,
    pub status: String,
    pub attempts: u32,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// Outputs of the upstream nodes whose edges into this one were taken.
    pub input: Map<String, Value>,
    pub output: Option<Value>,
    pub error: Option<String>,
    /// What the node printed (code nodes).
    pub lines: Vec<String>,
    /// A test run's mock was its output: it did not run.
    pub mocked: bool,
}

/// Re-run an execution from one of its nodes.
#[derive(Clone, Debug)]
pub struct RerunRequest {
    pub tenant: TenantId,
    pub execution: ExecutionId,
    pub from_node: String,
    /// The loop iteration `from_node` is in (`charge_each[3]`), when it is
    /// a node of a loop's body.
    pub scope: Option<String>,
    /// Replacements for recorded outputs, by upstream node id (`trigger`
    /// for the trigger data).
    pub input_override: Map<String, Value>,
    /// The version to run; the original execution's when none.
    pub version: Option<RerunVersion>,
}

/// Which version a re-run runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RerunVersion {
    Number(i64),
    /// The version published when the re-run is asked for.
    Published,
}

/// A resume of an execution waiting at a `wait_for_event` node.
#[derive(Clone, Debug)]
pub struct ResumeRequest {
    pub tenant: TenantId,
    pub execution: ExecutionId,
    /// The waiting node; may be left out when the workflow has only one.
    pub node: Option<String>,
    /// The loop iteration the node waits in (`each[3]`), for a node of a
    /// loop's body.
    pub scope: Option<String>,
    /// Becomes the node's output, as `payload`.
    pub payload: Value,
    /// The `Idempotency-Key` header: a repeat with it is the same resume.
    pub idempotency_key: Option<String>,
}

/// A tenant's settings as the API shows and takes them.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "TenantSettings")]
pub struct Settings {
    /// How long finished executions and their logs are kept (read as
    /// "30d", written back as "30days").
    #[schemars(schema_with = "written_duration")]
    pub retention: HumanDuration,
    /// Largest output of one node, in bytes of JSON.
    pub max_output_bytes: u64,
}

/// A change to a tenant's settings (`PUT /v1/settings`). Each field:
/// `None` (absent) keeps it, `Some(None)` (null) resets it to its default,
/// `Some(Some(v))` sets it.
#[derive(Clone, Copy, Debug, Default)]
pub struct SettingsUpdate {
    pub retention: Option<Option<HumanDuration>>,
    pub max_output_bytes: Option<Option<u64>>,
}

/// A duration as it is written back: whole units from years down to
/// nanoseconds, largest first (`30days`, `1h 30m`, `250ms`).
fn written_duration(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "pattern": "^[0-9]+[a-z]+( [0-9]+[a-z]+)*$",
        "examples": ["30days", "1h 30m", "250ms"]
    })
}

/// Instantiate a template for a tenant.
#[derive(Clone, Debug)]
pub struct InstantiateRequest {
    pub tenant: TenantId,
    pub template: String,
    pub parameters: Map<String, Value>,
    /// The draft's name; the template's otherwise.
    pub name: Option<String>,
}

/// A request that arrived at `/hooks/{tenant}/{path}`, as received.
#[derive(Clone, Debug)]
pub struct WebhookRequest {
    pub tenant_slug: String,
    pub method: String,
    pub path: String,
    pub headers: Map<String, Value>,
    pub query: Map<String, Value>,
    /// The body's bytes exactly as sent: what signatures are computed over.
    pub body: Bytes,
}
