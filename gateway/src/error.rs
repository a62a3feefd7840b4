//! The one JSON error envelope, and the mapping of error codes to HTTP
//! statuses.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flowmesh_api::ErrorCode;
use flowmesh_services::Error;
use serde_json::{Value, json};

/// The HTTP status of each error code: the one place codes meet statuses.
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::BadRequest | ErrorCode::MalformedJson => StatusCode::BAD_REQUEST,
        ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::InvalidWorkflow
        | ErrorCode::OverLimit
        | ErrorCode::IdempotencyKeyReused
        | ErrorCode::NotGenerated => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::Unauthorized | ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        ErrorCode::Conflict | ErrorCode::TenantRequired | ErrorCode::AlreadyFinished => {
            StatusCode::CONFLICT
        }
        ErrorCode::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
        ErrorCode::EventsPurged => StatusCode::GONE,
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::NoCredits => StatusCode::PAYMENT_REQUIRED,
        ErrorCode::RateLimited | ErrorCode::TooManyStreams => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::NotConfigured => StatusCode::NOT_IMPLEMENTED,
        ErrorCode::ModelError => StatusCode::BAD_GATEWAY,
        ErrorCode::ModelUnavailable | ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Failed | ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// `{"error": {"code", "message", "details"}}`; its status is its code's.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub details: Value,
    /// Seconds after which a retry may succeed (429 and 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: Value::Null,
            retry_after: None,
        }
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let code = e.code();
        match e {
            Error::NotFound(what) => ApiError::not_found(what),
            Error::Invalid(errors) => {
                ApiError::new(code, errors.to_string()).with_details(json!(errors.errors))
            }
            Error::Field(error) => {
                ApiError::new(code, error.to_string()).with_details(json!([error]))
            }
            e @ Error::RateLimited { retry_after } => {
                let mut error = ApiError::new(code, e.to_string());
                error.retry_after = Some(retry_after.as_secs_f64().ceil().max(1.0) as u64);
                error
            }
            Error::TenantRequired(ref tenants) => {
                let details = json!({"tenants": tenants});
                ApiError::new(code, e.to_string()).with_details(details)
            }
            e @ Error::OverLimit { field, .. } => {
                ApiError::new(code, e.to_string()).with_details(json!({"field": field}))
            }
            Error::NotGenerated {
                message,
                explanation,
                errors,
                rounds,
            } => ApiError::new(code, message).with_details(
                json!({"explanation": explanation, "errors": errors, "rounds": rounds}),
            ),
            e @ Error::Internal(_) => {
                tracing::error!(error = %e, "internal error");
                ApiError::new(code, "internal error; retrying may help")
            }
            Error::Malformed(m) => ApiError::new(code, m.to_string()),
            Error::Upstream(e) => ApiError::new(code, e.to_string()),
            Error::Conflict(m)
            | Error::BadRequest(m)
            | Error::Stale(m)
            | Error::Unauthorized(m)
            | Error::Forbidden(m)
            | Error::NoCredits(m)
            | Error::KeyReused(m)
            | Error::TooLarge(m)
            | Error::Unconfigured(m) => ApiError::new(code, m),
            e @ (Error::Unauthenticated { .. } | Error::Unavailable(_)) => {
                ApiError::new(code, e.to_string())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            json!({"error": {"code": self.code, "message": self.message, "details": self.details}});
        let status = status_of(self.code);
        let mut response = (status, axum::Json(body)).into_response();
        match status {
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
