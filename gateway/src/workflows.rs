//! Workflows: their documents, versions and publication, and what a
//! document is made of (its schema, the node kinds).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use flowmesh_model::{WorkflowDocument, WorkflowId};

use crate::access::{AuditTarget, Auth};
use crate::answers::{Items, JsonSchemaDocument, NodeKind, Workflow, WorkflowSummary};
use crate::error::ApiError;
use crate::extract::{AppState, JsonBytes, parse_id};
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
    Ok(response)
}

pub(crate) async fn list(
    State(state): State<AppState>,
    Auth(who): Auth,
) -> Result<Json<Items<WorkflowSummary>>, ApiError> {
    let items = state
        .engine
        .list_workflows(who.tenant)
        .await?
        .iter()
        .map(WorkflowSummary::from)
        .collect();
    Ok(Json(Items { items }))
}

pub(crate) async fn read(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<Json<Workflow>, ApiError> {
    let id: WorkflowId = parse_id(&id, "workflow")?;
    let record = state.engine.get_workflow(who.tenant, id).await?;
    Ok(Json(Workflow {
        summary: WorkflowSummary::from(&record.summary),
        document: record.document,
    }))
}

pub(crate) async fn update(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    JsonBytes(body): JsonBytes,
) -> Result<Json<WorkflowSummary>, ApiError> {
    let id: WorkflowId = parse_id(&id, "workflow")?;
    let summary = state.engine.update_workflow(who.tenant, id, &body).await?;
    Ok(Json(WorkflowSummary::from(&summary)))
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
) -> Result<Json<WorkflowSummary>, ApiError> {
    let id: WorkflowId = parse_id(&id, "workflow")?;
    let summary = state.engine.publish_workflow(who.tenant, id).await?;
    Ok(Json(WorkflowSummary::from(&summary)))
}
