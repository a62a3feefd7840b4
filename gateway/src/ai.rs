//! Routes for generating workflows, templates and the tenant's model
//! settings.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use flowmesh_api::{GenerateRequest, InstantiateRequest};
use serde_json::{Value, json};

use crate::access::{AuditTarget, Auth};
use crate::bodies;
use crate::extract::{AppState, JsonBytes, typed_body};
use crate::routes::{ApiResult, summary_json};

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
    let mut workflow = summary_json(&generated.workflow);
    workflow["document"] = json!(generated.document);
    let mut response = (
        StatusCode::CREATED,
        Json(json!({
            "workflow": workflow,
            "explanation": generated.explanation,
            "rounds": generated.rounds,
            "usage": generated.usage,
        })),
    )
        .into_response();
    response
        .extensions_mut()
        .insert(AuditTarget(generated.workflow.id.to_string()));
    Ok(response)
}

pub(crate) async fn templates(State(state): State<AppState>, _: Auth) -> ApiResult {
    Ok(Json(json!({"items": state.engine.templates()})).into_response())
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
    let mut workflow = summary_json(&summary);
    workflow["document"] = json!(document);
    let mut response = (StatusCode::CREATED, Json(workflow)).into_response();
    response
        .extensions_mut()
        .insert(AuditTarget(summary.id.to_string()));
    Ok(response)
}

fn settings_json(s: &flowmesh_services::ModelSettings) -> Value {
    json!({
        "base_url": s.base_url,
        "model": s.model,
        "api_key_secret": s.api_key_secret,
    })
}

pub(crate) async fn get_model_settings(
    State(state): State<AppState>,
    Auth(who): Auth,
) -> ApiResult {
    let settings = state.engine.model_settings(who.tenant).await?;
    Ok(Json(settings_json(&settings)).into_response())
}

pub(crate) async fn put_model_settings(
    State(state): State<AppState>,
    Auth(who): Auth,
    JsonBytes(body): JsonBytes,
) -> ApiResult {
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
    Ok(Json(settings_json(&settings)).into_response())
}
