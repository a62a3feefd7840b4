//! Routes for operators: workflow statistics, execution logs, re-runs.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use flowmesh_api::{RerunRequest, Settings};
use flowmesh_model::{ExecutionId, WorkflowId};
use serde_json::json;

use crate::access::Auth;
use crate::bodies::{self, Rerun};
use crate::error::ApiError;
use crate::extract::{AppState, JsonBytes, parse_id, typed_body};
use crate::routes::ApiResult;

pub(crate) async fn workflow_stats(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> ApiResult {
    let workflow: WorkflowId = parse_id(&id, "workflow")?;
    let stats = state.engine.workflow_stats(who.tenant, workflow).await?;
    Ok(Json(stats).into_response())
}

pub(crate) async fn execution_logs(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> ApiResult {
    let execution: ExecutionId = parse_id(&id, "execution")?;
    let nodes = state.engine.execution_logs(who.tenant, execution).await?;
    Ok(Json(json!({"execution_id": execution, "nodes": nodes})).into_response())
}

/// `{"from_node": "...", "input_override": {...}}`; 202 with the new id.
pub(crate) async fn rerun(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    JsonBytes(body): JsonBytes,
) -> ApiResult {
    let execution: ExecutionId = parse_id(&id, "execution")?;
    let body: Rerun = typed_body(&body)?;
    let new = state
        .engine
        .rerun(RerunRequest {
            tenant: who.tenant,
            execution,
            from_node: body.from_node,
            input_override: body.input_override.unwrap_or_default(),
        })
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"execution_id": new, "rerun_of": execution})),
    )
        .into_response())
}

pub(crate) async fn get_settings(State(state): State<AppState>, Auth(who): Auth) -> ApiResult {
    let settings = state.engine.settings(who.tenant).await?;
    Ok(Json(settings).into_response())
}

/// `{"retention": "30d", "max_output_bytes": 8388608}`, both required.
pub(crate) async fn put_settings(
    State(state): State<AppState>,
    Auth(who): Auth,
    JsonBytes(body): JsonBytes,
) -> ApiResult {
    let body: bodies::Settings = typed_body(&body)?;
    let settings = Settings {
        retention: body
            .retention
            .parse()
            .map_err(|e| ApiError::bad_request(format!("retention: {e}; write it like 30d")))?,
        max_output_bytes: body.max_output_bytes,
    };
    state.engine.set_settings(who.tenant, &settings).await?;
    Ok(Json(settings).into_response())
}
