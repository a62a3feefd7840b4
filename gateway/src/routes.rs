//! The route table and the API handlers.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, post};
use axum::{Json, Router};
use flowmesh_actors::records::{ExecutionQuery, ExecutionRecord, WorkflowSummary};
use flowmesh_actors::{
    EngineHandle, ExecutionOutcome, ResumeRequest, StartRequest, Started, Until,
};
use flowmesh_model::{ExecutionId, ExecutionStatus, WorkflowDocument, WorkflowId};
use serde_json::{Value, json};
use tower_http::trace::TraceLayer;

use crate::Options;
use crate::error::ApiError;
use crate::extract::{AppState, Auth, JsonBytes, object_body, parse_id, parse_json};
use crate::{hooks, operate, sse};

pub(crate) type ApiResult = Result<Response, ApiError>;

pub fn router(engine: EngineHandle, options: &Options) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/v1/schema/workflow", get(schema))
        .route("/v1/node-kinds", get(node_kinds))
        .route("/v1/workflows", post(create_workflow).get(list_workflows))
        .route(
            "/v1/workflows/{id}",
            get(get_workflow)
                .put(update_workflow)
                .delete(delete_workflow),
        )
        .route("/v1/workflows/{id}/publish", post(publish_workflow))
        .route("/v1/workflows/{id}/executions", post(start_execution))
        .route("/v1/executions", get(list_executions))
        .route("/v1/executions/{id}", get(get_execution))
        .route("/v1/executions/{id}/cancel", post(cancel_execution))
        .route("/v1/executions/{id}/resume", post(resume_execution))
        .route("/v1/executions/{id}/events", get(sse::execution_events))
        .route("/v1/executions/{id}/logs", get(operate::execution_logs))
        .route("/v1/executions/{id}/rerun", post(operate::rerun))
        .route("/v1/workflows/{id}/stats", get(operate::workflow_stats))
        .route(
            "/v1/settings",
            get(operate::get_settings).put(operate::put_settings),
        )
        .route("/v1/sandboxes", get(list_sandboxes))
        .route("/v1/sandboxes/{id}", delete(delete_sandbox))
        .route("/hooks/{tenant}/{*path}", any(hooks::webhook))
        .fallback(|| async { ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(options.max_body_bytes))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .with_state(AppState { engine })
}

/// One span per request, named by its route (never by ids in the path),
/// joining the caller's trace when it sends a valid `traceparent`.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let span = tracing::info_span!(
        "http.request",
        otel.name = %format!("{} {route}", request.method()),
        otel.kind = "server",
        http.request.method = %request.method(),
        http.route = route,
    );
    let parent = request
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok());
    flowmesh_actors::trace::set_parent(&span, parent);
    span
}

/// Prometheus text format; every metric is described in flowmesh-actors'
/// metrics module.
async fn metrics(State(state): State<AppState>) -> Response {
    match state.engine.metrics_text().await {
        Some(text) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        None => ApiError::not_found("metrics").into_response(),
    }
}

async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn ready(State(state): State<AppState>) -> Response {
    let r = state.engine.ready().await;
    let status = if r.store.is_ok() && r.bus.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let check = |c: &Result<(), String>| match c {
        Ok(()) => json!({"ok": true}),
        Err(e) => json!({"ok": false, "error": e}),
    };
    let body = json!({
        "ready": status == StatusCode::OK,
        "store": check(&r.store),
        "bus": check(&r.bus),
        "transport": r.transport,
        "executions_here": r.executions_here,
        "sandbox": {
            "python_network_isolation": r.sandbox.network,
            "python_runs_as_unprivileged_user": r.sandbox.drops_privileges,
            "python_without_netns": r.python_without_netns,
        },
    });
    (status, Json(body)).into_response()
}

async fn schema() -> Json<Value> {
    Json(WorkflowDocument::json_schema())
}

async fn node_kinds(State(state): State<AppState>, _: Auth) -> Json<Value> {
    let kinds: Vec<Value> = state
        .engine
        .kinds()
        .into_iter()
        .map(|k| json!({"type": k.primitive.as_str(), "kind": k.kind, "description": k.description, "outputs": k.outputs}))
        .collect();
    Json(json!({"items": kinds}))
}

fn summary_json(s: &WorkflowSummary) -> Value {
    json!({
        "id": s.id,
        "name": s.name,
        "version": s.latest_version,
        "published_version": s.published_version,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
    })
}

async fn create_workflow(
    State(state): State<AppState>,
    Auth(who): Auth,
    JsonBytes(body): JsonBytes,
) -> ApiResult {
    let summary = state.engine.create_workflow(who.tenant, &body).await?;
    Ok((StatusCode::CREATED, Json(summary_json(&summary))).into_response())
}

async fn list_workflows(State(state): State<AppState>, Auth(who): Auth) -> ApiResult {
    let items: Vec<Value> = state
        .engine
        .list_workflows(who.tenant)
        .await?
        .iter()
        .map(summary_json)
        .collect();
    Ok(Json(json!({"items": items})).into_response())
}

async fn get_workflow(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> ApiResult {
    let id: WorkflowId = parse_id(&id, "workflow")?;
    let record = state.engine.get_workflow(who.tenant, id).await?;
    let mut body = summary_json(&record.summary);
    body["document"] = json!(record.document);
    Ok(Json(body).into_response())
}

async fn update_workflow(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    JsonBytes(body): JsonBytes,
) -> ApiResult {
    let id: WorkflowId = parse_id(&id, "workflow")?;
    let summary = state.engine.update_workflow(who.tenant, id, &body).await?;
    Ok(Json(summary_json(&summary)).into_response())
}

async fn delete_workflow(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> ApiResult {
    let id: WorkflowId = parse_id(&id, "workflow")?;
    state.engine.delete_workflow(who.tenant, id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn publish_workflow(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> ApiResult {
    let id: WorkflowId = parse_id(&id, "workflow")?;
    let summary = state.engine.publish_workflow(who.tenant, id).await?;
    Ok(Json(summary_json(&summary)).into_response())
}

/// `?wait=true` (and an optional `timeout`, such as `10s`) answers with the result.
fn sync_wait(query: &HashMap<String, String>) -> Result<Option<Duration>, ApiError> {
    match query.get("wait").map(String::as_str) {
        None | Some("false") => Ok(None),
        Some("true") => {
            let timeout = match query.get("timeout") {
                Some(t) => humantime::parse_duration(t).map_err(|e| {
                    ApiError::bad_request(format!(
                        "query parameter timeout: {e}; write it like 10s"
                    ))
                })?,
                None => Duration::from_secs(30),
            };
            Ok(Some(timeout))
        }
        Some(other) => Err(ApiError::bad_request(format!(
            "query parameter wait must be true or false, not {other:?}"
        ))),
    }
}

pub(crate) fn idempotency_key(headers: &axum::http::HeaderMap) -> Result<Option<String>, ApiError> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => {
            let key = v.to_str().map_err(|_| {
                ApiError::bad_request("the Idempotency-Key header must be visible ASCII")
            })?;
            if key.is_empty() || key.len() > 255 {
                return Err(ApiError::bad_request(
                    "the Idempotency-Key header must hold 1 to 255 characters",
                ));
            }
            Ok(Some(key.to_owned()))
        }
    }
}

/// The answer to a synchronous caller once the execution finished or responded.
pub(crate) fn outcome_response(started: &Started, outcome: Option<ExecutionOutcome>) -> Response {
    match outcome {
        Some(ExecutionOutcome::Responded {
            status,
            headers,
            body,
        }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let mut response = (status, Json(body)).into_response();
            for (name, value) in headers {
                if let (Ok(name), Ok(value)) = (
                    axum::http::HeaderName::from_bytes(name.as_bytes()),
                    axum::http::HeaderValue::from_str(&value),
                ) {
                    response.headers_mut().insert(name, value);
                }
            }
            response
        }
        Some(ExecutionOutcome::Finished {
            status,
            output,
            error,
        }) => {
            let body = json!({"execution_id": started.execution, "status": status, "output": output, "error": error});
            (StatusCode::OK, Json(body)).into_response()
        }
        None => {
            let body = json!({"execution_id": started.execution, "status": "running"});
            (StatusCode::ACCEPTED, Json(body)).into_response()
        }
    }
}

async fn start_execution(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: axum::http::HeaderMap,
    JsonBytes(body): JsonBytes,
) -> ApiResult {
    let workflow: WorkflowId = parse_id(&id, "workflow")?;
    let wait = sync_wait(&query)?;
    let input = parse_json(&body)?;
    let idempotency_key = idempotency_key(&headers)?;
    let started = state
        .engine
        .start_execution(StartRequest {
            tenant: who.tenant,
            workflow,
            input,
            idempotency_key,
            wait: wait.is_some(),
        })
        .await?;
    match wait {
        None => Ok((
            StatusCode::ACCEPTED,
            Json(json!({"execution_id": started.execution})),
        )
            .into_response()),
        Some(timeout) => {
            let outcome = state
                .engine
                .await_outcome(&started, Until::Finished, timeout)
                .await?;
            Ok(outcome_response(&started, outcome))
        }
    }
}

pub(crate) fn execution_json(record: &ExecutionRecord) -> Value {
    let nodes: Vec<Value> = record
        .steps
        .iter()
        .map(|s| {
            json!({
                "node": s.node,
                "status": s.status,
                "attempts": s.attempts,
                "output": s.output,
                "branch": s.branch,
                "error": s.error,
                "started_at": s.started_at,
                "finished_at": s.finished_at,
                "wake_at": s.wake_at,
                "logs": s.logs,
            })
        })
        .collect();
    json!({
        "id": record.id,
        "workflow_id": record.workflow,
        "version": record.version,
        "status": record.status,
        "trigger": record.trigger,
        "output": record.output,
        "error": record.error,
        "cancel_requested": record.cancel_requested,
        "created_at": record.created_at,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "rerun_of": record.origin.as_ref().map(|o| json!({"execution_id": o.execution, "from_node": o.node})),
        "nodes": nodes,
    })
}

async fn get_execution(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> ApiResult {
    let id: ExecutionId = parse_id(&id, "execution")?;
    let record = state.engine.get_execution(who.tenant, id).await?;
    Ok(Json(execution_json(&record)).into_response())
}

async fn list_executions(
    State(state): State<AppState>,
    Auth(who): Auth,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let workflow = match query.get("workflow_id") {
        Some(w) => Some(
            w.parse::<WorkflowId>()
                .map_err(|_| ApiError::bad_request("workflow_id must be a workflow id"))?,
        ),
        None => None,
    };
    let status = match query.get("status") {
        Some(s) => Some(s.parse::<ExecutionStatus>().map_err(|_| {
            let known: Vec<&str> = ExecutionStatus::ALL.iter().map(|s| s.as_str()).collect();
            ApiError::bad_request(format!("status must be one of {}", known.join(", ")))
        })?),
        None => None,
    };
    let limit = match query.get("limit") {
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=500).contains(l))
            .ok_or_else(|| ApiError::bad_request("limit must be between 1 and 500"))?,
        None => 50,
    };
    let cursor = match query.get("cursor") {
        Some(c) => Some(
            c.parse::<ExecutionId>()
                .map_err(|_| ApiError::bad_request("cursor must be a next_cursor value"))?,
        ),
        None => None,
    };
    let page = state
        .engine
        .list_executions(
            who.tenant,
            &ExecutionQuery {
                workflow,
                status,
                limit,
                cursor,
            },
        )
        .await?;
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|e| json!({"id": e.id, "workflow_id": e.workflow, "version": e.version, "status": e.status, "created_at": e.created_at, "finished_at": e.finished_at}))
        .collect();
    Ok(Json(json!({"items": items, "next_cursor": page.next_cursor})).into_response())
}

async fn cancel_execution(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> ApiResult {
    let id: ExecutionId = parse_id(&id, "execution")?;
    let status = state.engine.cancel_execution(who.tenant, id).await?;
    if status.is_terminal() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_finished",
            format!("the execution already ended as {status}"),
        ));
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"execution_id": id, "status": status, "cancel_requested": true})),
    )
        .into_response())
}

/// `{"node": "...", "payload": ...}`, both optional.
async fn resume_execution(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    JsonBytes(body): JsonBytes,
) -> ApiResult {
    let execution: ExecutionId = parse_id(&id, "execution")?;
    let mut body = object_body(&body, &["node", "payload"])?;
    let node = match body.remove("node") {
        None | Some(Value::Null) => None,
        Some(Value::String(node)) => Some(node),
        Some(_) => return Err(ApiError::bad_request("node: must be a string")),
    };
    let payload = body.remove("payload").unwrap_or(Value::Null);
    let node = state
        .engine
        .resume_execution(ResumeRequest {
            tenant: who.tenant,
            execution,
            node,
            payload,
        })
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"execution_id": execution, "node": node, "resumed": true})),
    )
        .into_response())
}

async fn list_sandboxes(State(state): State<AppState>, Auth(who): Auth) -> ApiResult {
    let items = state.engine.sandboxes(who.tenant).await?;
    Ok(Json(json!({"items": items})).into_response())
}

async fn delete_sandbox(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> ApiResult {
    let id = uuid::Uuid::parse_str(&id)
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, "not_found", "sandbox not found"))?;
    state.engine.delete_sandbox(who.tenant, id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
