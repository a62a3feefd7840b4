//! The operations routes (liveness, readiness, metrics) and this API's
//! own description.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::answers::{Check, Health, OpenApiDocument, Ready, SandboxReport, Up};
use crate::error::ApiError;
use crate::extract::AppState;

/// Prometheus text format; every metric is described in flowmesh-actors'
/// metrics module.
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
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

pub(crate) async fn health() -> Json<Health> {
    Json(Health { status: Up::Ok })
}

pub(crate) async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Ready>) {
    let r = state.engine.ready().await;
    let ready = r.store.is_ok() && r.bus.is_ok();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Ready {
        ready,
        store: Check::of(&r.store),
        bus: Check::of(&r.bus),
        transport: r.transport,
        executions_here: r.executions_here,
        sandbox: SandboxReport { jail: r.sandbox },
        role: r.role,
    };
    (status, Json(body))
}

pub(crate) async fn openapi(State(state): State<AppState>) -> Json<OpenApiDocument> {
    Json(OpenApiDocument(crate::openapi::document(
        state.engine.output_cap(),
        state.surface,
    )))
}
