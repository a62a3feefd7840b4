//! The query parameters each route reads, as types: the handlers get them
//! checked, and the OpenAPI description lists them from their schemas
//! (field docs become the descriptions).

use std::str::FromStr;

use flowmesh_model::scope::{Scope, StepKey};
use flowmesh_model::{ExecutionId, ExecutionStatus, HumanDuration, WorkflowId};
use flowmesh_services::WorkflowState;
use flowmesh_services::scopes::MAX_STEPS_PAGE;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer};

/// The schema of a query type: each field a parameter. An absent value
/// is the only kind of "none" a query has, so no field offers `null`
/// (as a type or as the `#[serde(default)]` of an `Option`).
pub fn schema_of<T: JsonSchema>() -> Schema {
    let mut schema = schemars::schema_for!(T);
    let fields = schema
        .get_mut("properties")
        .and_then(serde_json::Value::as_object_mut);
    for field in fields.into_iter().flat_map(|f| f.values_mut()) {
        if let Some(f) = field.as_object_mut()
            && f.get("default") == Some(&serde_json::Value::Null)
        {
            f.remove("default");
        }
        if let Some(serde_json::Value::Array(types)) = field.get_mut("type") {
            types.retain(|t| t != "null");
            if let [only] = types.as_slice() {
                field["type"] = only.clone();
            }
        }
    }
    schema
}

/// The page size every listing accepts.
const PAGE: std::ops::RangeInclusive<u32> = 1..=500;

/// Reads a text value through `FromStr`, saying what it must be when it is not.
fn parsed<'de, D: Deserializer<'de>, T: FromStr>(d: D, must: &str) -> Result<Option<T>, D::Error> {
    let text = String::deserialize(d)?;
    text.trim()
        .parse()
        .map(Some)
        .map_err(|_| serde::de::Error::custom(must))
}

fn limit<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let limit = String::deserialize(d)?.trim().parse::<u32>().ok();
    limit
        .filter(|l| PAGE.contains(l))
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom("must be between 1 and 500"))
}

/// `true` or `false`.
fn wait<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    match String::deserialize(d)?.as_str() {
        "true" => Ok(Some(true)),
        "false" => Ok(Some(false)),
        other => Err(serde::de::Error::custom(format!(
            "must be true or false, not {other:?}"
        ))),
    }
}

fn timeout<'de, D: Deserializer<'de>>(d: D) -> Result<Option<HumanDuration>, D::Error> {
    HumanDuration::deserialize(d).map(Some)
}

fn workflow_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<WorkflowId>, D::Error> {
    parsed(d, "must be a workflow id")
}

fn execution_cursor<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ExecutionId>, D::Error> {
    parsed(d, "must be a next_cursor value")
}

fn version_cursor<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let cursor: Option<i64> = parsed(d, "must be a next_cursor value")?;
    cursor
        .filter(|v| *v >= 1)
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom("must be a next_cursor value"))
}

/// A version number, as a cursor gives it.
fn version_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "pattern": "^[1-9][0-9]{0,17}$"})
}

fn status<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ExecutionStatus>, D::Error> {
    let known: Vec<&str> = ExecutionStatus::ALL.iter().map(|s| s.as_str()).collect();
    parsed(d, &format!("must be one of {}", known.join(", ")))
}

fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    parsed(d, "must be milliseconds since the Unix epoch")
}

fn event_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    parsed(d, "must be an event id from this stream (a number)")
}

fn workflow_state_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "enum": ["published", "draft"]})
}

fn status_schema(_: &mut SchemaGenerator) -> Schema {
    let known: Vec<&str> = ExecutionStatus::ALL.iter().map(|s| s.as_str()).collect();
    json_schema!({"type": "string", "enum": known})
}

fn uuid_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "format": "uuid"})
}

/// A duration as a query takes it, such as `10s` or `2m` (the longer forms
/// a document takes, such as `1h 30m`, are read too).
fn duration_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "pattern": "^[1-9][0-9]{0,2}(ms|s|m|h|d)$"})
}

/// What `limit` says about itself wherever it appears.
fn limit_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "integer", "minimum": PAGE.start(), "maximum": PAGE.end()})
}

/// `POST /v1/workflows/{id}/executions`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct StartQuery {
    /// `true`: answer with the execution's result (or its `respond` node's
    /// answer) instead of at once; 202 with the status when it is still
    /// running after `timeout`.
    #[serde(default, deserialize_with = "wait")]
    pub wait: Option<bool>,
    /// How long a waiting start waits (30s when absent).
    #[serde(default, deserialize_with = "timeout")]
    #[schemars(schema_with = "duration_schema")]
    pub timeout: Option<HumanDuration>,
}

/// `GET /v1/workflows`, newest first.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowsQuery {
    /// Only workflows whose name holds this text, whatever the case.
    #[serde(default)]
    #[schemars(length(max = 200))]
    pub q: Option<String>,
    /// Only published workflows, or only drafts (never published, or taken out of service).
    #[serde(default)]
    #[schemars(schema_with = "workflow_state_schema")]
    pub state: Option<WorkflowState>,
    /// `true`: only workflows with a failed or timed-out execution.
    #[serde(default, deserialize_with = "wait")]
    pub failing: Option<bool>,
    /// `true`: each workflow with its execution statistics (as
    /// `GET /v1/workflows/{id}/stats` gives them; durations over the
    /// tenant's latest 10,000 finished runs).
    #[serde(default, deserialize_with = "wait")]
    pub stats: Option<bool>,
}

/// `GET /v1/executions`, newest first.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct ExecutionsQuery {
    /// Only executions of this workflow.
    #[serde(default, deserialize_with = "workflow_id")]
    #[schemars(schema_with = "uuid_schema")]
    pub workflow_id: Option<WorkflowId>,
    /// Only executions in this state.
    #[serde(default, deserialize_with = "status")]
    #[schemars(schema_with = "status_schema")]
    pub status: Option<ExecutionStatus>,
    /// `true`: only test runs; `false`: only the others.
    #[serde(default, deserialize_with = "wait")]
    pub test: Option<bool>,
    /// Page size (50 when absent).
    #[serde(default, deserialize_with = "limit")]
    #[schemars(schema_with = "limit_schema")]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[serde(default, deserialize_with = "execution_cursor")]
    #[schemars(schema_with = "uuid_schema")]
    pub cursor: Option<ExecutionId>,
    /// Only executions created at or after this time, in milliseconds since the Unix epoch.
    #[serde(default, deserialize_with = "millis")]
    pub from: Option<i64>,
    /// Only executions created before this time, in milliseconds since the Unix epoch.
    #[serde(default, deserialize_with = "millis")]
    pub to: Option<i64>,
}

fn scope<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Scope>, D::Error> {
    let text = String::deserialize(d)?;
    Scope::parse(text.trim())
        .map(Some)
        .map_err(serde::de::Error::custom)
}

fn steps_limit<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let limit = String::deserialize(d)?.trim().parse::<u32>().ok();
    limit
        .filter(|l| (1..=MAX_STEPS_PAGE).contains(l))
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom(format!("must be between 1 and {MAX_STEPS_PAGE}")))
}

fn step_key<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let text = String::deserialize(d)?;
    StepKey::parse(text.trim())
        .ok()
        .filter(|key| !key.iterations.is_empty())
        .map(|_| Some(text.trim().to_owned()))
        .ok_or_else(|| serde::de::Error::custom("must be a next_steps_after value"))
}

/// An iteration (`charge_each[3]`, `outer[1].inner[2]`) or a loop's every
/// iteration (`charge_each`, `outer[1].inner`).
fn scope_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "pattern": SCOPE_PATTERN})
}

/// A step key within an iteration, as `next_steps_after` gives it.
fn step_key_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "pattern": STEP_KEY_PATTERN})
}

fn steps_limit_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "integer", "minimum": 1, "maximum": MAX_STEPS_PAGE})
}

const SCOPE_PATTERN: &str = r"^([A-Za-z_][A-Za-z0-9_]*\[(0|[1-9][0-9]{0,8})\]\.)*[A-Za-z_][A-Za-z0-9_]*(\[(0|[1-9][0-9]{0,8})\])?$";
const STEP_KEY_PATTERN: &str =
    r"^([A-Za-z_][A-Za-z0-9_]*\[(0|[1-9][0-9]{0,8})\]\.)+[A-Za-z_][A-Za-z0-9_]*$";

/// `GET /v1/executions/{id}`: which steps it lists. The workflow's own
/// nodes are listed whole; the steps of loop iterations a page at a time.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct ExecutionStepsQuery {
    /// Only the steps within this scope: an iteration (`charge_each[3]`)
    /// with what is nested in it, or every iteration of a loop
    /// (`charge_each`); the workflow's own nodes are then left out.
    #[serde(default, deserialize_with = "scope")]
    #[schemars(schema_with = "scope_schema")]
    pub scope: Option<Scope>,
    /// Iteration steps per page (200 when absent).
    #[serde(default, deserialize_with = "steps_limit")]
    #[schemars(schema_with = "steps_limit_schema")]
    pub steps_limit: Option<u32>,
    /// The `next_steps_after` of the previous page: only iteration steps
    /// after it are listed (the workflow's own nodes are then left out).
    #[serde(default, deserialize_with = "step_key")]
    #[schemars(schema_with = "step_key_schema")]
    pub steps_after: Option<String>,
}

/// `GET /v1/executions/{id}/logs`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct LogsQuery {
    /// Only the steps within this scope: an iteration (`charge_each[3]`)
    /// with what is nested in it, or every iteration of a loop
    /// (`charge_each`).
    #[serde(default, deserialize_with = "scope")]
    #[schemars(schema_with = "scope_schema")]
    pub scope: Option<Scope>,
}

/// `GET /v1/audit`, newest first.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only records of this actor (`user:<id>` or `key:<id>`).
    pub actor: Option<String>,
    /// Only this action, or every action under a prefix ending in `.` (`workflow.`).
    pub action: Option<String>,
    /// Only records with this outcome (`ok` or `denied`).
    pub outcome: Option<String>,
    /// Only records at or after this time, in milliseconds since the Unix epoch.
    #[serde(default, deserialize_with = "millis")]
    pub since: Option<i64>,
    /// Only records before this time, in milliseconds since the Unix epoch.
    #[serde(default, deserialize_with = "millis")]
    pub until: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size (100 when absent).
    #[serde(default, deserialize_with = "limit")]
    #[schemars(schema_with = "limit_schema")]
    pub limit: Option<u32>,
}

/// `GET /v1/workflows/{id}/versions`, newest first.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionsQuery {
    /// The `next_cursor` of the previous page.
    #[serde(default, deserialize_with = "version_cursor")]
    #[schemars(schema_with = "version_schema")]
    pub cursor: Option<i64>,
    /// Page size (50 when absent).
    #[serde(default, deserialize_with = "limit")]
    #[schemars(schema_with = "limit_schema")]
    pub limit: Option<u32>,
}

/// `GET /v1/usage`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    /// The first day, `YYYY-MM-DD` (29 days before today when absent).
    #[schemars(extend("format" = "date"))]
    pub from: Option<String>,
    /// The last day, inclusive, `YYYY-MM-DD` (today when absent).
    #[schemars(extend("format" = "date"))]
    pub to: Option<String>,
}

/// `GET /v1/billing`: its ledger, newest first.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LedgerQuery {
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size (50 when absent).
    #[serde(default, deserialize_with = "limit")]
    #[schemars(schema_with = "limit_schema")]
    pub limit: Option<u32>,
}

/// The tenant's event streams (`GET /v1/events`, `GET /v1/events/ws`).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// The last event id seen, for a client that cannot send `Last-Event-ID`
    /// (the header wins when both are sent).
    #[serde(default, deserialize_with = "event_id")]
    pub last_event_id: Option<u64>,
    /// A stream ticket (`POST /v1/stream-tickets`) in place of the
    /// `Authorization` header.
    #[expect(
        dead_code,
        reason = "the access guard redeems it; here it is a known parameter"
    )]
    pub ticket: Option<String>,
}

/// One execution's event stream: it takes a ticket, too.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct TicketQuery {
    /// A stream ticket (`POST /v1/stream-tickets`) in place of the
    /// `Authorization` header.
    pub ticket: Option<String>,
}

#[cfg(test)]
mod tests {
    use axum::extract::FromRequestParts;

    use super::*;
    use crate::extract::TypedQuery;

    async fn read<T: serde::de::DeserializeOwned + JsonSchema>(query: &str) -> Result<T, String> {
        let request = axum::http::Request::builder()
            .uri(format!("/x?{query}"))
            .body(())
            .unwrap_or_default();
        let (mut parts, ()) = request.into_parts();
        TypedQuery::<T>::from_request_parts(&mut parts, &())
            .await
            .map(|TypedQuery(t)| t)
            .map_err(|e| {
                assert_eq!(
                    crate::error::status_of(e.code),
                    axum::http::StatusCode::BAD_REQUEST
                );
                e.message
            })
    }

    #[tokio::test]
    async fn values_are_typed_and_refusals_name_the_parameter() {
        let q: ExecutionsQuery = read("limit=5&status=timed_out&other=ignored")
            .await
            .unwrap();
        assert_eq!(
            (q.limit, q.status),
            (Some(5), Some(ExecutionStatus::TimedOut))
        );
        let q: StartQuery = read("wait=true&timeout=10s").await.unwrap();
        assert_eq!(q.wait, Some(true));
        assert_eq!(q.timeout, Some(HumanDuration::from_millis(10_000)));
        let q: StreamQuery = read("last_event_id=%2041&ticket=t").await.unwrap();
        assert_eq!(q.last_event_id, Some(41));
        for (message, wanted) in [
            (
                read::<ExecutionsQuery>("limit=0").await,
                "query parameter limit: must be between 1 and 500",
            ),
            (
                read::<ExecutionsQuery>("status=done").await,
                "query parameter status: must be one of queued, running,",
            ),
            (
                read::<ExecutionsQuery>("workflow_id=x").await,
                "query parameter workflow_id: must be a workflow id",
            ),
            (
                read::<ExecutionsQuery>("cursor=x").await,
                "query parameter cursor: must be a next_cursor value",
            ),
            (
                read::<StartQuery>("wait=yes")
                    .await
                    .map(|_| ExecutionsQuery::default()),
                "query parameter wait: must be true or false, not \"yes\"",
            ),
            (
                read::<StartQuery>("timeout=soon")
                    .await
                    .map(|_| ExecutionsQuery::default()),
                "query parameter timeout: invalid duration",
            ),
        ] {
            let message = message.expect_err(wanted);
            assert!(message.starts_with(wanted), "{message}");
        }
        let q: ExecutionStepsQuery =
            read("scope=outer%5B1%5D.inner&steps_limit=1000&steps_after=each%5B9%5D.x")
                .await
                .unwrap();
        assert_eq!(
            q.scope.map(|s| s.to_string()).as_deref(),
            Some("outer[1].inner")
        );
        assert_eq!(
            (q.steps_limit, q.steps_after.as_deref()),
            (Some(1000), Some("each[9].x"))
        );
        for (query, wanted) in [
            (
                "steps_limit=1001",
                "query parameter steps_limit: must be between 1 and 1000",
            ),
            (
                "scope=each%5B",
                "query parameter scope: \"each[\" must read like",
            ),
            (
                "steps_after=x",
                "query parameter steps_after: must be a next_steps_after value",
            ),
        ] {
            let message = read::<ExecutionStepsQuery>(query).await.unwrap_err();
            assert!(message.starts_with(wanted), "{message}");
        }
        let message = read::<AuditQuery>("since=yesterday").await.unwrap_err();
        assert!(
            message.starts_with("query parameter since: must be milliseconds"),
            "{message}"
        );
        let message = read::<AuditQuery>("limit=5&nope=1").await.unwrap_err();
        assert!(
            message.starts_with("query parameter nope: unknown; this route takes action, actor,"),
            "{message}"
        );
    }
}
