//! Routes for generating workflows, templates and the tenant's model
//! settings.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use flowmesh_api::{GenerateRequest, InstantiateRequest};
use flowmesh_services::Template;

use crate::access::{AuditTarget, Auth};
use crate::answers::{Generated, Items, ModelEndpoint, Workflow, WorkflowSummary};
use crate::bodies;
use crate::error::ApiError;
use crate::extract::{AppState, JsonBytes, typed_body};
use crate::routes::ApiResult;

/// Repair rounds when the request names none.
const DEFAULT_REPAIRS: i64 = 2;
const MAX_REPAIRS: i64 = 5;

pub(crate) async fn generate(
    State(state): State<AppState>,
    Auth(who): Auth,
    JsonBytes(body): JsonBytes,
) -> ApiResult {
    let body: bodies::Generate = typed_body(&body)?;
    let generated = state
        .engine
        .generate(GenerateRequest {
            tenant: who.tenant,
            prompt: body.prompt,
            repairs: body
                .repairs
                .unwrap_or(DEFAULT_REPAIRS)
                .clamp(0, MAX_REPAIRS) as u32,
        })
        .await?;
    let target = AuditTarget(generated.workflow.id.to_string());
    let body = Generated {
        workflow: Workflow {
            summary: WorkflowSummary::from(&generated.workflow),
            document: generated.document,
        },
        explanation: generated.explanation,
        rounds: generated.rounds,
        usage: generated.usage,
    };
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    response.extensions_mut().insert(target);
    Ok(response)
}

pub(crate) async fn templates(State(state): State<AppState>, _: Auth) -> Json<Items<Template>> {
    Json(Items {
        items: state.engine.templates().to_vec(),
    })
}

pub(crate) async fn instantiate(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    JsonBytes(body): JsonBytes,
) -> ApiResult {
    let body: bodies::Instantiate = typed_body(&body)?;
    let (summary, document) = state
        .engine
        .instantiate(InstantiateRequest {
            tenant: who.tenant,
            template: id,
            parameters: body.parameters,
            name: body.name,
        })
        .await?;
    let workflow = Workflow {
        summary: WorkflowSummary::from(&summary),
        document,
    };
    let mut response = (StatusCode::CREATED, Json(workflow)).into_response();
    response
        .extensions_mut()
        .insert(AuditTarget(summary.id.to_string()));
    Ok(response)
}

pub(crate) async fn get_model_settings(
    State(state): State<AppState>,
    Auth(who): Auth,
) -> Result<Json<ModelEndpoint>, ApiError> {
    let settings = state.engine.model_settings(who.tenant).await?;
    Ok(Json(ModelEndpoint::from(settings)))
}

pub(crate) async fn put_model_settings(
    State(state): State<AppState>,
    Auth(who): Auth,
    JsonBytes(body): JsonBytes,
) -> Result<Json<ModelEndpoint>, ApiError> {
    let body: bodies::ModelSettings = typed_body(&body)?;
    let settings = state
        .engine
        .set_model_settings(
            who.tenant,
            flowmesh_services::ModelSettings {
                base_url: body.base_url,
                model: body.model,
                api_key_secret: body.api_key_secret,
            },
        )
        .await?;
    Ok(Json(ModelEndpoint::from(settings)))
}
