//! Executions: starting one, reading them, cancelling and resuming.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flowmesh_api::ErrorCode;
use flowmesh_api::Outcome as ExecutionOutcome;
use flowmesh_api::{ResumeRequest, StartRequest, TestRunRequest, Until};
use flowmesh_model::{ExecutionId, HumanDuration, WorkflowId};
use flowmesh_services::records::ExecutionQuery;
use flowmesh_services::scopes::StepsQuery;
use serde_json::Value;

use crate::access::Auth;
use crate::answers::{Cancelling, Execution, ExecutionItem, Finished, Page, Resumed, Started};
use crate::bodies::{Resume, TestRun};
use crate::error::ApiError;
use crate::extract::{
    AppState, JsonBytes, TypedQuery, idempotency_key, parse_id, parse_json, parse_version,
    typed_body,
};
use crate::queries::{ExecutionStepsQuery, ExecutionsQuery, StartQuery};
use crate::routes::ApiResult;

/// The answer to a synchronous caller once the execution finished or
/// responded.
fn outcome_response(started: &flowmesh_services::Started, outcome: ExecutionOutcome) -> Response {
    match outcome {
        ExecutionOutcome::Responded {
            status,
            headers,
            body,
        } => {
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
        ExecutionOutcome::Finished {
            status,
            output,
            error,
        } => {
            let body = Finished {
                execution_id: started.execution,
                status,
                output,
                error,
            };
            (StatusCode::OK, Json(body)).into_response()
        }
    }
}

pub(crate) async fn start(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    TypedQuery(query): TypedQuery<StartQuery>,
    headers: axum::http::HeaderMap,
    JsonBytes(body): JsonBytes,
) -> ApiResult {
    let workflow: WorkflowId = parse_id(&id, "workflow")?;
    let wait = wait_of(&query);
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
    answer_start(&state, started, wait).await
}

/// `{"input": ..., "mocks": ...}` on one version, published or not.
pub(crate) async fn test_run(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path((id, version)): Path<(String, String)>,
    TypedQuery(query): TypedQuery<StartQuery>,
    JsonBytes(body): JsonBytes,
) -> ApiResult {
    let workflow: WorkflowId = parse_id(&id, "workflow")?;
    let version = parse_version(&version)?;
    let wait = wait_of(&query);
    let body: TestRun = if body.is_empty() {
        TestRun::default()
    } else {
        typed_body(&body)?
    };
    let started = state
        .engine
        .test_run(TestRunRequest {
            tenant: who.tenant,
            workflow,
            version,
            input: Value::Object(body.input.unwrap_or_default()),
            mocks: body.mocks.unwrap_or_default(),
            wait: wait.is_some(),
        })
        .await?;
    answer_start(&state, started, wait).await
}

/// How long a start waits for its result: none unless `wait=true`. A
/// timeout without `wait` is checked all the same, and then unused.
fn wait_of(query: &StartQuery) -> Option<Duration> {
    query.wait.unwrap_or(false).then(|| {
        query
            .timeout
            .map_or(Duration::from_secs(30), HumanDuration::as_duration)
    })
}

/// 202 at once, or the result once it came within `wait`.
async fn answer_start(
    state: &AppState,
    started: flowmesh_services::Started,
    wait: Option<Duration>,
) -> ApiResult {
    match wait {
        None => Ok((StatusCode::ACCEPTED, Json(Started::new(started.execution))).into_response()),
        Some(timeout) => {
            let outcome = state
                .engine
                .await_outcome(&started, Until::Finished, timeout)
                .await;
            if let Some(outcome) = outcome {
                return Ok(outcome_response(&started, outcome));
            }
            // The wait ran out: queued when no process has taken it up yet
            // (a worker is busy or none runs), running once one has.
            let still = state
                .engine
                .get_execution(started.tenant, started.execution)
                .await?
                .status;
            let body = Started {
                execution_id: started.execution,
                status: Some(still),
            };
            Ok((StatusCode::ACCEPTED, Json(body)).into_response())
        }
    }
}

pub(crate) async fn read(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    TypedQuery(query): TypedQuery<ExecutionStepsQuery>,
) -> Result<Json<Execution>, ApiError> {
    let id: ExecutionId = parse_id(&id, "execution")?;
    let query = StepsQuery {
        scope: query.scope,
        after: query.steps_after,
        limit: query.steps_limit,
    };
    let view = state.engine.read_execution(who.tenant, id, &query).await?;
    let mut execution = Execution::from(&view.record);
    execution.next_steps_after = view.paging;
    Ok(Json(execution))
}

pub(crate) async fn list(
    State(state): State<AppState>,
    Auth(who): Auth,
    TypedQuery(query): TypedQuery<ExecutionsQuery>,
) -> Result<Json<Page<ExecutionItem>>, ApiError> {
    let page = state
        .engine
        .list_executions(
            who.tenant,
            &ExecutionQuery {
                workflow: query.workflow_id,
                status: query.status,
                test: query.test,
                limit: query.limit.unwrap_or(50),
                cursor: query.cursor,
                from: query.from,
                to: query.to,
            },
        )
        .await?;
    Ok(Json(Page {
        items: page.items.iter().map(ExecutionItem::from).collect(),
        next_cursor: page.next_cursor.map(|c| c.to_string()),
    }))
}

pub(crate) async fn cancel(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Cancelling>), ApiError> {
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
        Json(Cancelling {
            execution_id: id,
            status,
            cancel_requested: true,
        }),
    ))
}

/// `{"node": "...", "payload": ...}`, both optional.
pub(crate) async fn resume(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    JsonBytes(body): JsonBytes,
) -> Result<(StatusCode, Json<Resumed>), ApiError> {
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
            scope: body.scope,
            payload: body.payload,
            idempotency_key,
        })
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Resumed {
            execution_id: execution,
            node,
            resumed: true,
        }),
    ))
}
