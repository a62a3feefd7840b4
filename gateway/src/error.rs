//! The one JSON error envelope, and the mapping of engine errors to HTTP
//! statuses.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flowmesh_actors::Error;
use serde_json::{Value, json};

/// `{"error": {"code", "message", "details"}}` with its status.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Value,
    /// Seconds after which a retry may succeed (429 and 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Value::Null,
            retry_after: None,
        }
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound(what) => ApiError::not_found(what),
            Error::Malformed(m) => {
                ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", m.to_string())
            }
            Error::Invalid(errors) => ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "invalid_workflow",
                message: errors.to_string(),
                details: json!(errors.errors),
                retry_after: None,
            },
            Error::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            Error::BadRequest(m) => ApiError::bad_request(m),
            Error::Unauthorized(m) => ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m),
            e @ Error::Unauthenticated { .. } => {
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", e.to_string())
            }
            Error::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", m),
            e @ Error::RateLimited { retry_after } => {
                let mut error =
                    ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", e.to_string());
                error.retry_after = Some(retry_after.as_secs_f64().ceil().max(1.0) as u64);
                error
            }
            Error::NoCredits(m) => ApiError::new(StatusCode::PAYMENT_REQUIRED, "no_credits", m),
            Error::KeyReused(m) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                m,
            ),
            Error::TooLarge(m) => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", m)
            }
            e @ Error::OverLimit { field, .. } => ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "over_limit",
                message: e.to_string(),
                details: json!({"field": field}),
                retry_after: None,
            },
            Error::Unconfigured(m) => {
                ApiError::new(StatusCode::NOT_IMPLEMENTED, "not_configured", m)
            }
            Error::NotGenerated {
                message,
                explanation,
                errors,
                rounds,
            } => ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "not_generated",
                message,
                details: json!({"explanation": explanation, "errors": errors, "rounds": rounds}),
                retry_after: None,
            },
            Error::Upstream(e) if e.is_retryable() => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "model_unavailable",
                e.to_string(),
            ),
            Error::Upstream(e) => {
                ApiError::new(StatusCode::BAD_GATEWAY, "model_error", e.to_string())
            }
            e @ Error::Unavailable(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                e.to_string(),
            ),
            e @ Error::Internal(_) => {
                tracing::error!(error = %e, "internal error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; retrying may help",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            json!({"error": {"code": self.code, "message": self.message, "details": self.details}});
        let mut response = (self.status, axum::Json(body)).into_response();
        match self.status {
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => {
                let seconds = self.retry_after.unwrap_or(1).to_string();
                if let Ok(value) = HeaderValue::from_str(&seconds) {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
            }
            StatusCode::UNAUTHORIZED => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}
