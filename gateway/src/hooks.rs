//! `{METHOD} /hooks/{tenant}/{path}`: starts the published workflow whose
//! webhook trigger matches. Public by design: the path is the credential's
//! place, and the tenant's slug scopes it.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flowmesh_actors::{Until, WebhookRequest};
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::extract::{AppState, is_json, parse_json, read_body, refuse_nul};
use crate::routes::{idempotency_key, outcome_response};

pub async fn webhook(
    State(state): State<AppState>,
    Path((tenant, path)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    method: Method,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    let idempotency_key = idempotency_key(&headers)?;
    let bytes = read_body(request, &state).await?;
    let body = body_value(&headers, &bytes)?;
    refuse_nul(&body)?;
    let header_map: Map<String, Value> = headers
        .iter()
        .filter_map(|(name, value)| {
            Some((
                name.as_str().to_owned(),
                Value::String(value.to_str().ok()?.to_owned()),
            ))
        })
        .collect();
    let query: Map<String, Value> = query
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let request = WebhookRequest {
        tenant_slug: tenant,
        method: method.as_str().to_owned(),
        path,
        body,
        headers: header_map,
        query,
        idempotency_key,
    };
    let started = state.engine.webhook(request).await?;
    if !started.responds {
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({"execution_id": started.execution})),
        )
            .into_response());
    }
    let outcome = state
        .engine
        .await_outcome(&started, Until::Responded, std::time::Duration::MAX)
        .await?;
    Ok(outcome_response(&started, outcome))
}

/// JSON bodies are parsed; form bodies become objects; anything else is text.
fn body_value(headers: &HeaderMap, bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if is_json(content_type) {
        return parse_json(bytes);
    }
    if content_type.starts_with("application/x-www-form-urlencoded") {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(bytes)
            .map_err(|e| ApiError::bad_request(format!("the form body could not be read: {e}")))?;
        return Ok(Value::Object(
            pairs
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        ));
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(Value::String(text.to_owned())),
        Err(e) => Err(ApiError::bad_request(format!(
            "the body is neither JSON nor UTF-8 text (byte {})",
            e.valid_up_to()
        ))),
    }
}
