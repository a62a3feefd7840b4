//! One code per kind of refusal, the same in an HTTP error body
//! (`{"error": {"code": ...}}`) and in a NATS reply.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What kind of refusal an error is. The gateway maps each code to one
/// HTTP status; a NATS reply carries the code in its body and the status
/// in its `Flowmesh-Status` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is understood but not acceptable as given.
    BadRequest,
    /// The body is not JSON (or not the JSON asked for).
    MalformedJson,
    /// The body's content type is not one the route reads.
    UnsupportedMediaType,
    /// The workflow document breaks the rules; `details` lists every problem.
    InvalidWorkflow,
    /// A setting above what the instance's operator allows.
    OverLimit,
    /// An idempotency key already started an execution from a different request.
    IdempotencyKeyReused,
    /// No workflow could be generated from the description.
    NotGenerated,
    /// No valid credential, or a login that did not match.
    Unauthorized,
    /// A webhook caller did not prove it holds the trigger's secret.
    Unauthenticated,
    /// The caller's role does not allow this.
    Forbidden,
    /// The thing does not exist for this tenant.
    NotFound,
    /// The route does not take this method.
    MethodNotAllowed,
    /// The request did not arrive in time.
    RequestTimeout,
    /// The request conflicts with current state.
    Conflict,
    /// A login of a user of several tenants that names none; `details`
    /// lists them.
    TenantRequired,
    /// The execution has already finished.
    AlreadyFinished,
    /// The request was made on a version another one has replaced since
    /// (`If-Match`).
    PreconditionFailed,
    /// The events asked for were purged with their executions.
    EventsPurged,
    /// A body or input over the size limit.
    PayloadTooLarge,
    /// The tenant has no credits left.
    NoCredits,
    /// Too many requests; retry after the time given.
    RateLimited,
    /// Too many open event streams.
    TooManyStreams,
    /// This instance is not set up for the request.
    NotConfigured,
    /// The model provider answered with an error.
    ModelError,
    /// The model provider could not be reached; retrying is safe.
    ModelUnavailable,
    /// A dependency is unreachable; nothing was accepted and retrying is safe.
    Unavailable,
    /// A run failed after it had outside effects; retrying may repeat them.
    Failed,
    /// A fault inside the engine.
    Internal,
}

impl ErrorCode {
    /// Every code, for the error-code table and the API description.
    pub const ALL: [ErrorCode; 28] = [
        ErrorCode::BadRequest,
        ErrorCode::MalformedJson,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::InvalidWorkflow,
        ErrorCode::OverLimit,
        ErrorCode::IdempotencyKeyReused,
        ErrorCode::NotGenerated,
        ErrorCode::Unauthorized,
        ErrorCode::Unauthenticated,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::RequestTimeout,
        ErrorCode::Conflict,
        ErrorCode::TenantRequired,
        ErrorCode::AlreadyFinished,
        ErrorCode::PreconditionFailed,
        ErrorCode::EventsPurged,
        ErrorCode::PayloadTooLarge,
        ErrorCode::NoCredits,
        ErrorCode::RateLimited,
        ErrorCode::TooManyStreams,
        ErrorCode::NotConfigured,
        ErrorCode::ModelError,
        ErrorCode::ModelUnavailable,
        ErrorCode::Unavailable,
        ErrorCode::Failed,
        ErrorCode::Internal,
    ];

    /// The code as it is written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::MalformedJson => "malformed_json",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::InvalidWorkflow => "invalid_workflow",
            ErrorCode::OverLimit => "over_limit",
            ErrorCode::IdempotencyKeyReused => "idempotency_key_reused",
            ErrorCode::NotGenerated => "not_generated",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::Conflict => "conflict",
            ErrorCode::TenantRequired => "tenant_required",
            ErrorCode::AlreadyFinished => "already_finished",
            ErrorCode::PreconditionFailed => "precondition_failed",
            ErrorCode::EventsPurged => "events_purged",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::NoCredits => "no_credits",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::TooManyStreams => "too_many_streams",
            ErrorCode::NotConfigured => "not_configured",
            ErrorCode::ModelError => "model_error",
            ErrorCode::ModelUnavailable => "model_unavailable",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Failed => "failed",
            ErrorCode::Internal => "internal",
        }
    }

    /// Whether sending the same request again later may succeed.
    pub fn retry_may_help(self) -> bool {
        matches!(
            self,
            ErrorCode::RateLimited
                | ErrorCode::TooManyStreams
                | ErrorCode::ModelUnavailable
                | ErrorCode::Unavailable
                | ErrorCode::RequestTimeout
                | ErrorCode::Internal
        )
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_names_are_the_serde_names_and_all_are_listed() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::json!(code.as_str())
            );
            assert!(seen.insert(code), "{code} listed twice");
        }
        let schema = serde_json::to_value(schemars::schema_for!(ErrorCode)).unwrap();
        let listed = schema.to_string().matches("\"const\"").count()
            + schema["enum"].as_array().map_or(0, Vec::len);
        assert_eq!(listed, ErrorCode::ALL.len(), "{schema}");
    }
}
