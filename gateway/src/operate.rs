//! Routes for operators: workflow statistics, execution logs, re-runs,
//! the tenant's settings and its live sandboxes.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use flowmesh_api::{ErrorCode, RerunRequest, Settings, SettingsUpdate};
use flowmesh_model::{ExecutionId, WorkflowId};
use flowmesh_services::{SandboxInfo, WorkflowStats};

use crate::access::Auth;
use crate::answers::{Items, Logs, Rerunning};
use crate::bodies::{self, Rerun};
use crate::error::ApiError;
use crate::extract::{AppState, JsonBytes, TypedQuery, parse_id, typed_body};
use crate::queries::LogsQuery;

pub(crate) async fn workflow_stats(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<Json<WorkflowStats>, ApiError> {
    let workflow: WorkflowId = parse_id(&id, "workflow")?;
    let stats = state.engine.workflow_stats(who.tenant, workflow).await?;
    Ok(Json(stats))
}

pub(crate) async fn execution_logs(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    TypedQuery(query): TypedQuery<LogsQuery>,
) -> Result<Json<Logs>, ApiError> {
    let execution: ExecutionId = parse_id(&id, "execution")?;
    let nodes = state
        .engine
        .execution_logs(who.tenant, execution, query.scope.as_ref())
        .await?;
    Ok(Json(Logs {
        execution_id: execution,
        nodes,
    }))
}

/// `{"from_node": "...", "input_override": {...}}`; 202 with the new id.
pub(crate) async fn rerun(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    JsonBytes(body): JsonBytes,
) -> Result<(StatusCode, Json<Rerunning>), ApiError> {
    let execution: ExecutionId = parse_id(&id, "execution")?;
    let body: Rerun = typed_body(&body)?;
    let new = state
        .engine
        .rerun(RerunRequest {
            tenant: who.tenant,
            execution,
            from_node: body.from_node,
            scope: body.scope,
            input_override: body.input_override.unwrap_or_default(),
            version: body.version.map(bodies::RerunVersion::into_api),
        })
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Rerunning {
            execution_id: new,
            rerun_of: execution,
        }),
    ))
}

pub(crate) async fn get_settings(
    State(state): State<AppState>,
    Auth(who): Auth,
) -> Result<Json<Settings>, ApiError> {
    let settings = state.engine.settings(who.tenant).await?;
    Ok(Json(settings))
}

/// `{"retention": "30d", "max_output_bytes": 8388608}`, each optional (left
/// out: kept; null: the default); answers every setting.
pub(crate) async fn put_settings(
    State(state): State<AppState>,
    Auth(who): Auth,
    JsonBytes(body): JsonBytes,
) -> Result<Json<Settings>, ApiError> {
    let body: bodies::Settings = typed_body(&body)?;
    let retention = body
        .retention
        .map(|r| r.map(|r| r.parse()).transpose())
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("retention: {e}; write it like 30d")))?;
    let update = SettingsUpdate {
        retention,
        max_output_bytes: body.max_output_bytes,
    };
    Ok(Json(state.engine.set_settings(who.tenant, update).await?))
}

pub(crate) async fn sandboxes(
    State(state): State<AppState>,
    Auth(who): Auth,
) -> Result<Json<Items<SandboxInfo>>, ApiError> {
    let items = state.engine.sandboxes(who.tenant).await?;
    Ok(Json(Items { items }))
}

pub(crate) async fn delete_sandbox(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = uuid::Uuid::parse_str(&id)
        .map_err(|_| ApiError::new(ErrorCode::NotFound, "sandbox not found"))?;
    state.engine.delete_sandbox(who.tenant, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
