//! The route table and the API handlers.

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, MatchedPath, Path, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any, delete, get, post, put};
use axum::{Json, Router};
use flowmesh_api::ErrorCode;
use flowmesh_api::Outcome as ExecutionOutcome;
use flowmesh_api::{ResumeRequest, StartRequest, Until};
use flowmesh_model::{ExecutionId, HumanDuration, Role, WorkflowDocument, WorkflowId};
use flowmesh_services::records::{ExecutionQuery, ExecutionRecord, WorkflowSummary};
use flowmesh_services::{EngineHandle, Started};
use serde_json::{Value, json};
use tower_http::trace::TraceLayer;

use crate::Options;
use crate::access::{self, Access, AuditTarget, Auth, Guard};
use crate::bodies::Resume;
use crate::error::ApiError;
use crate::extract::{AppState, JsonBytes, TypedQuery, parse_id, parse_json, typed_body};
use crate::queries::{
    AuditQuery, ExecutionsQuery, LedgerQuery, StartQuery, StreamQuery, TicketQuery, UsageQuery,
};
use crate::{accounts, ai, billing, hooks, operate, sse, stream};

pub(crate) type ApiResult = Result<Response, ApiError>;

/// One route: method, path, and what it requires.
#[derive(Clone, Copy, Debug)]
pub struct RouteInfo {
    /// `GET`, `POST`, `PUT`, `DELETE`, or `ANY` for webhooks.
    pub method: &'static str,
    pub path: &'static str,
    pub guard: Guard,
    /// The schema of the query parameters its handler reads, if any.
    pub query: Option<fn() -> schemars::Schema>,
    /// The request headers it reads, beside `Authorization`.
    pub headers: &'static [Header],
}

/// A request header a route reads.
#[derive(Clone, Copy, Debug)]
pub struct Header {
    pub name: &'static str,
    pub description: &'static str,
    /// What a value the route accepts looks like.
    pub pattern: &'static str,
}

const IDEMPOTENCY_KEY: Header = Header {
    name: "Idempotency-Key",
    description: "Makes a retried request count once: the same key again answers as the first did",
    // Visible ASCII, 1 to 255 characters, as `idempotency_key` checks.
    pattern: "^[!-~]([ -~]{0,253}[!-~])?$",
};

const LAST_EVENT_ID: Header = Header {
    name: "Last-Event-ID",
    description: "The id of the last event received: the stream resumes after it",
    pattern: "^[0-9]{1,19}$",
};

const fn public(method: &'static str, path: &'static str) -> RouteInfo {
    RouteInfo {
        method,
        path,
        guard: Guard {
            access: Access::Public,
            audit: None,
            tickets: false,
        },
        query: None,
        headers: &[],
    }
}

const fn role(method: &'static str, path: &'static str, role: Role) -> RouteInfo {
    RouteInfo {
        method,
        path,
        guard: Guard {
            access: Access::Role(role),
            audit: None,
            tickets: false,
        },
        query: None,
        headers: &[],
    }
}

impl RouteInfo {
    /// Writes an audit record named `action` for every call.
    const fn audited(mut self, action: &'static str) -> RouteInfo {
        self.guard.audit = Some(action);
        self
    }

    /// An event stream: it also takes a stream ticket as `?ticket=`.
    const fn streaming(mut self) -> RouteInfo {
        self.guard.tickets = true;
        self
    }

    /// Its handler reads the query parameters `T` describes.
    fn query<T: schemars::JsonSchema>(mut self) -> RouteInfo {
        self.query = Some(crate::queries::schema_of::<T>);
        self
    }

    const fn headers(mut self, headers: &'static [Header]) -> RouteInfo {
        self.headers = headers;
        self
    }

    const fn metrics_token(mut self) -> RouteInfo {
        self.guard.access = Access::MetricsToken;
        self
    }

    const fn platform(mut self) -> RouteInfo {
        self.guard.access = Access::Platform;
        self
    }
}

/// Every route, the role it needs, and its handler: the one place access
/// is decided.
fn table() -> Vec<(RouteInfo, MethodRouter<AppState>)> {
    use Role::{Admin, Editor, Operator, Viewer};
    vec![
        (public("GET", "/health"), get(health)),
        (public("GET", "/ready"), get(ready)),
        (public("GET", "/metrics").metrics_token(), get(metrics)),
        (public("GET", "/v1/schema/workflow"), get(schema)),
        (public("GET", "/openapi.json"), get(openapi)),
        (
            public("POST", "/v1/auth/register").audited("tenant.register"),
            post(accounts::register),
        ),
        (public("POST", "/v1/auth/login"), post(accounts::login)),
        (
            public("POST", "/v1/auth/accept").audited("user.join"),
            post(accounts::accept),
        ),
        (
            role("POST", "/v1/auth/logout", Viewer),
            post(accounts::logout),
        ),
        (role("GET", "/v1/me", Viewer), get(accounts::me)),
        (role("GET", "/v1/node-kinds", Viewer), get(node_kinds)),
        (role("GET", "/v1/workflows", Viewer), get(list_workflows)),
        (
            role("POST", "/v1/workflows", Editor).audited("workflow.create"),
            post(create_workflow),
        ),
        (
            role("POST", "/v1/workflows/generate", Editor).audited("workflow.generate"),
            post(ai::generate),
        ),
        (role("GET", "/v1/templates", Viewer), get(ai::templates)),
        (
            role("POST", "/v1/templates/{id}/instantiate", Editor).audited("workflow.instantiate"),
            post(ai::instantiate),
        ),
        (role("GET", "/v1/workflows/{id}", Viewer), get(get_workflow)),
        (
            role("PUT", "/v1/workflows/{id}", Editor).audited("workflow.update"),
            put(update_workflow),
        ),
        (
            role("DELETE", "/v1/workflows/{id}", Editor).audited("workflow.delete"),
            delete(delete_workflow),
        ),
        (
            role("POST", "/v1/workflows/{id}/publish", Editor).audited("workflow.publish"),
            post(publish_workflow),
        ),
        (
            role("POST", "/v1/workflows/{id}/executions", Operator)
                .query::<StartQuery>()
                .headers(&[IDEMPOTENCY_KEY]),
            post(start_execution),
        ),
        (
            role("GET", "/v1/workflows/{id}/stats", Viewer),
            get(operate::workflow_stats),
        ),
        (
            role("GET", "/v1/executions", Viewer).query::<ExecutionsQuery>(),
            get(list_executions),
        ),
        (
            role("GET", "/v1/executions/{id}", Viewer),
            get(get_execution),
        ),
        (
            role("POST", "/v1/executions/{id}/cancel", Operator).audited("execution.cancel"),
            post(cancel_execution),
        ),
        (
            role("POST", "/v1/executions/{id}/resume", Operator)
                .audited("execution.resume")
                .headers(&[IDEMPOTENCY_KEY]),
            post(resume_execution),
        ),
        (
            role("GET", "/v1/executions/{id}/events", Viewer)
                .streaming()
                .query::<TicketQuery>()
                .headers(&[LAST_EVENT_ID]),
            get(sse::execution_events),
        ),
        (
            role("GET", "/v1/executions/{id}/logs", Viewer),
            get(operate::execution_logs),
        ),
        (
            role("POST", "/v1/executions/{id}/rerun", Operator).audited("execution.rerun"),
            post(operate::rerun),
        ),
        (
            role("GET", "/v1/settings", Viewer),
            get(operate::get_settings),
        ),
        (
            role("PUT", "/v1/settings", Admin).audited("settings.update"),
            put(operate::put_settings),
        ),
        (
            role("GET", "/v1/settings/llm", Viewer),
            get(ai::get_model_settings),
        ),
        (
            role("PUT", "/v1/settings/llm", Admin).audited("settings.llm"),
            put(ai::put_model_settings),
        ),
        (role("GET", "/v1/sandboxes", Viewer), get(list_sandboxes)),
        (
            role("DELETE", "/v1/sandboxes/{id}", Operator).audited("sandbox.delete"),
            delete(delete_sandbox),
        ),
        (role("GET", "/v1/api-keys", Admin), get(accounts::keys)),
        (
            role("POST", "/v1/api-keys", Admin).audited("key.create"),
            post(accounts::create_key),
        ),
        (
            role("DELETE", "/v1/api-keys/{id}", Admin).audited("key.revoke"),
            delete(accounts::revoke_key),
        ),
        (role("GET", "/v1/users", Admin), get(accounts::users)),
        (
            role("DELETE", "/v1/users/{id}", Admin).audited("user.remove"),
            delete(accounts::remove_user),
        ),
        (
            role("POST", "/v1/invitations", Admin).audited("user.invite"),
            post(accounts::invite),
        ),
        (role("GET", "/v1/secrets", Editor), get(accounts::secrets)),
        (
            role("PUT", "/v1/secrets/{name}", Admin).audited("secret.put"),
            put(accounts::put_secret),
        ),
        (
            role("DELETE", "/v1/secrets/{name}", Admin).audited("secret.delete"),
            delete(accounts::delete_secret),
        ),
        (
            role("GET", "/v1/audit", Admin).query::<AuditQuery>(),
            get(accounts::audit),
        ),
        (
            role("GET", "/v1/events", Viewer)
                .streaming()
                .query::<StreamQuery>()
                .headers(&[LAST_EVENT_ID]),
            get(stream::tenant_events),
        ),
        (
            role("GET", "/v1/events/ws", Viewer)
                .streaming()
                .query::<StreamQuery>()
                .headers(&[LAST_EVENT_ID]),
            get(stream::tenant_events_ws),
        ),
        (
            role("POST", "/v1/stream-tickets", Viewer),
            post(stream::stream_ticket),
        ),
        (
            role("GET", "/v1/usage", Viewer).query::<UsageQuery>(),
            get(billing::usage),
        ),
        (
            role("GET", "/v1/billing", Viewer).query::<LedgerQuery>(),
            get(billing::billing),
        ),
        (
            role("PUT", "/v1/billing/auto-refill", Admin).audited("credits.auto_refill"),
            put(billing::put_auto_refill),
        ),
        (
            role("GET", "/v1/admin/tenants", Admin).platform(),
            get(billing::tenants),
        ),
        (
            role("POST", "/v1/admin/tenants/{slug}/credits", Admin)
                .platform()
                .audited("credits.grant")
                .headers(&[IDEMPOTENCY_KEY]),
            post(billing::grant),
        ),
        (
            role("PUT", "/v1/admin/tenants/{slug}/limits", Admin)
                .platform()
                .audited("tenant.limits"),
            put(billing::put_limits),
        ),
        (
            public("ANY", "/hooks/{tenant}/{*path}").headers(&[IDEMPOTENCY_KEY]),
            any(hooks::webhook),
        ),
    ]
}

/// The route table without handlers: what each route requires.
pub fn routes() -> Vec<RouteInfo> {
    table().into_iter().map(|(info, _)| info).collect()
}

pub fn router(engine: EngineHandle, options: &Options) -> Router {
    let state = AppState {
        engine,
        streams: crate::stream::StreamSlots::new(options.max_streams_per_tenant),
        webhook_limits: crate::hook_limits::WebhookLimits::new(options.webhook_limits.clone()),
        metrics_token: options
            .metrics_token
            .as_deref()
            .filter(|t| !t.is_empty())
            .map(access::token_digest),
    };
    let mut router = Router::new();
    for (info, handler) in table() {
        if !options.surface.serves(info.path) {
            continue;
        }
        let guard = middleware::from_fn_with_state((state.clone(), info.guard), access::guard);
        // `any` routes all methods through its fallback, which only `layer` wraps.
        let handler = if info.method == "ANY" {
            handler.layer(guard)
        } else {
            handler.route_layer(guard)
        };
        router = router.route(info.path, handler);
    }
    router
        .fallback(|| async { ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                ErrorCode::MethodNotAllowed,
                "this route does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(options.max_body_bytes))
        .layer(middleware::from_fn(crate::extract::refuse_nul_in_url))
        .layer(middleware::from_fn(hooks::secure_answers))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .with_state(state)
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
    flowmesh_services::trace::set_parent(&span, parent);
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
        "sandbox": {"jail": r.sandbox},
        "role": r.role,
    });
    (status, Json(body)).into_response()
}

async fn openapi(State(state): State<AppState>) -> Json<Value> {
    Json(crate::openapi::document(state.engine.output_cap()))
}

async fn schema() -> Json<Value> {
    Json(WorkflowDocument::json_schema())
}

async fn node_kinds(State(state): State<AppState>, _: Auth) -> Json<Value> {
    let kinds: Vec<Value> = state
        .engine
        .kinds()
        .into_iter()
        .map(|k| {
            json!({
                "type": k.primitive.as_str(), "kind": k.kind, "description": k.description,
                "outputs": k.outputs, "config_schema": k.config_schema, "example": k.example,
            })
        })
        .collect();
    Json(json!({"items": kinds}))
}

pub(crate) fn summary_json(s: &WorkflowSummary) -> Value {
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
    let mut response = (StatusCode::CREATED, Json(summary_json(&summary))).into_response();
    response
        .extensions_mut()
        .insert(AuditTarget(summary.id.to_string()));
    Ok(response)
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
    TypedQuery(query): TypedQuery<StartQuery>,
    headers: axum::http::HeaderMap,
    JsonBytes(body): JsonBytes,
) -> ApiResult {
    let workflow: WorkflowId = parse_id(&id, "workflow")?;
    // A timeout without `wait` is checked all the same, and then unused.
    let wait = query.wait.unwrap_or(false).then(|| {
        query
            .timeout
            .map_or(Duration::from_secs(30), HumanDuration::as_duration)
    });
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
    TypedQuery(query): TypedQuery<ExecutionsQuery>,
) -> ApiResult {
    let page = state
        .engine
        .list_executions(
            who.tenant,
            &ExecutionQuery {
                workflow: query.workflow_id,
                status: query.status,
                limit: query.limit.unwrap_or(50),
                cursor: query.cursor,
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
            ErrorCode::AlreadyFinished,
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
    headers: axum::http::HeaderMap,
    JsonBytes(body): JsonBytes,
) -> ApiResult {
    let execution: ExecutionId = parse_id(&id, "execution")?;
    let idempotency_key = idempotency_key(&headers)?;
    let body: Resume = if body.is_empty() {
        Resume::default()
    } else {
        typed_body(&body)?
    };
    let node = state
        .engine
        .resume_execution(ResumeRequest {
            tenant: who.tenant,
            execution,
            node: body.node,
            payload: body.payload,
            idempotency_key,
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
        .map_err(|_| ApiError::new(ErrorCode::NotFound, "sandbox not found"))?;
    state.engine.delete_sandbox(who.tenant, id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
