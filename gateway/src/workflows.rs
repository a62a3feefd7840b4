//! Workflows: their documents, versions and publication, and what a
//! document is made of (its schema, the node kinds).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flowmesh_model::{WorkflowDocument, WorkflowId};
use flowmesh_services::records::VersionsQuery;
use flowmesh_services::{SaveRequest, WorkflowFilter};

use crate::access::{AuditTarget, Auth};
use crate::answers::{
    Items, JsonSchemaDocument, NodeKind, Page, Workflow, WorkflowSummary, WorkflowVersion,
    WorkflowVersionDocument,
};
use crate::bodies;
use crate::error::ApiError;
use crate::extract::{AppState, JsonBytes, TypedQuery, parse_id, parse_version, typed_body};
use crate::queries;
use crate::routes::ApiResult;

pub(crate) async fn schema() -> Json<JsonSchemaDocument> {
    Json(JsonSchemaDocument(WorkflowDocument::json_schema()))
}

pub(crate) async fn node_kinds(State(state): State<AppState>, _: Auth) -> Json<Items<NodeKind>> {
    let items = state
        .engine
        .kinds()
        .into_iter()
        .map(|k| NodeKind {
            primitive: k.primitive,
            kind: k.kind,
            description: k.description,
            outputs: k.outputs,
            config_schema: k.config_schema,
            example: k.example,
        })
        .collect();
    Json(Items { items })
}

pub(crate) async fn create(
    State(state): State<AppState>,
    Auth(who): Auth,
    JsonBytes(body): JsonBytes,
) -> ApiResult {
    let summary = state.engine.create_workflow(who.tenant, &body).await?;
    let mut response = (StatusCode::CREATED, Json(WorkflowSummary::from(&summary))).into_response();
    response
        .extensions_mut()
        .insert(AuditTarget(summary.id.to_string()));
    with_etag(&mut response, summary.latest_version);
    Ok(response)
}

/// The longest search text a list takes.
const MAX_SEARCH: usize = 200;

pub(crate) async fn list(
    State(state): State<AppState>,
    Auth(who): Auth,
    TypedQuery(query): TypedQuery<queries::WorkflowsQuery>,
) -> Result<Json<Items<WorkflowSummary>>, ApiError> {
    if query
        .q
        .as_ref()
        .is_some_and(|q| q.chars().count() > MAX_SEARCH)
    {
        return Err(ApiError::bad_request(format!(
            "q: at most {MAX_SEARCH} characters"
        )));
    }
    let filter = WorkflowFilter {
        q: query.q.filter(|q| !q.trim().is_empty()),
        state: query.state,
        failing: query.failing.unwrap_or(false),
        stats: query.stats.unwrap_or(false),
    };
    let items = state
        .engine
        .find_workflows(who.tenant, &filter)
        .await?
        .into_iter()
        .map(|listed| WorkflowSummary {
            stats: listed.stats,
            ..WorkflowSummary::from(&listed.summary)
        })
        .collect();
    Ok(Json(Items { items }))
}

/// The latest version as an entity tag: what `If-Match` sends back.
fn with_etag(response: &mut Response, version: i64) {
    if let Ok(value) = HeaderValue::from_str(&format!("\"{version}\"")) {
        response.headers_mut().insert(header::ETAG, value);
    }
}

pub(crate) async fn read(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> ApiResult {
    let id: WorkflowId = parse_id(&id, "workflow")?;
    let record = state.engine.get_workflow(who.tenant, id).await?;
    let mut response = Json(Workflow {
        summary: WorkflowSummary::from(&record.summary),
        document: record.document,
    })
    .into_response();
    with_etag(&mut response, record.summary.latest_version);
    Ok(response)
}

/// The version an edit was made on, from `If-Match`: a version number,
/// bare or quoted as the `ETag` gives it; `*` (any) checks nothing.
fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let must = || {
        ApiError::bad_request(
            "If-Match: must be the version the edit was made on, as the ETag gives it (such as \"3\")",
        )
    };
    let text = value.to_str().map_err(|_| must())?;
    if text == "*" {
        return Ok(None);
    }
    let bare = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    // Digits only, no leading zero: the ETag's own form.
    if bare.starts_with('0') || !bare.bytes().all(|b| b.is_ascii_digit()) {
        return Err(must());
    }
    bare.parse::<i64>().map(Some).map_err(|_| must())
}

pub(crate) async fn update(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBytes(body): JsonBytes,
) -> ApiResult {
    let id: WorkflowId = parse_id(&id, "workflow")?;
    let expected = if_match(&headers)?;
    let summary = state
        .engine
        .update_workflow(SaveRequest {
            tenant: who.tenant,
            workflow: id,
            body: &body,
            expected,
        })
        .await?;
    let mut response = Json(WorkflowSummary::from(&summary)).into_response();
    with_etag(&mut response, summary.latest_version);
    Ok(response)
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: WorkflowId = parse_id(&id, "workflow")?;
    state.engine.delete_workflow(who.tenant, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn publish(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    JsonBytes(body): JsonBytes,
) -> Result<Json<WorkflowSummary>, ApiError> {
    let id: WorkflowId = parse_id(&id, "workflow")?;
    let body: bodies::Publish = if body.is_empty() {
        bodies::Publish::default()
    } else {
        typed_body(&body)?
    };
    if body.version.is_some_and(|v| v < 1) {
        return Err(ApiError::bad_request("version: must be 1 or more"));
    }
    let summary = state
        .engine
        .publish_workflow(who.tenant, id, body.version)
        .await?;
    Ok(Json(WorkflowSummary::from(&summary)))
}

pub(crate) async fn unpublish(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<Json<WorkflowSummary>, ApiError> {
    let id: WorkflowId = parse_id(&id, "workflow")?;
    let summary = state.engine.unpublish_workflow(who.tenant, id).await?;
    Ok(Json(WorkflowSummary::from(&summary)))
}

pub(crate) async fn versions(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    TypedQuery(query): TypedQuery<queries::VersionsQuery>,
) -> Result<Json<Page<WorkflowVersion>>, ApiError> {
    let id: WorkflowId = parse_id(&id, "workflow")?;
    let limit = query.limit.unwrap_or(50);
    let (workflow, versions) = state
        .engine
        .workflow_versions(&VersionsQuery {
            tenant: who.tenant,
            workflow: id,
            before: query.cursor,
            limit,
        })
        .await?;
    let next_cursor = (versions.len() == limit as usize)
        .then(|| versions.last().map(|v| v.version.to_string()))
        .flatten();
    let items = versions
        .into_iter()
        .map(|v| WorkflowVersion {
            version: v.version,
            created_at: v.created_at,
            published: workflow.published_version == Some(v.version),
        })
        .collect();
    Ok(Json(Page { items, next_cursor }))
}

pub(crate) async fn version(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path((id, version)): Path<(String, String)>,
) -> Result<Json<WorkflowVersionDocument>, ApiError> {
    let id: WorkflowId = parse_id(&id, "workflow")?;
    let version = parse_version(&version)?;
    let record = state
        .engine
        .workflow_version(who.tenant, id, version)
        .await?;
    Ok(Json(WorkflowVersionDocument {
        workflow_id: id,
        version: WorkflowVersion {
            version,
            created_at: record.created_at,
            published: record.workflow.published_version == Some(version),
        },
        document: record.document,
    }))
}
