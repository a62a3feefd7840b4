//! `{METHOD} /hooks/{tenant}/{path}`: starts the published workflow whose
//! webhook trigger matches. Public by design: the path is the credential's
//! place, and the tenant's slug scopes it.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use flowmesh_api::ErrorCode;
use flowmesh_api::{Outcome, Until, WebhookRequest};
use flowmesh_model::ExecutionStatus;
use flowmesh_services::{Error, Started};
use serde_json::{Map, Value, json};

use crate::answers;
use crate::error::ApiError;
use crate::extract::{AppState, idempotency_key, is_json, parse_json, read_body, refuse_nul};
use crate::hook_limits::{Caller, WebhookRoute};

pub async fn webhook(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((tenant, path)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    method: Method,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    state.webhook_limits.admit_source(peer.ip())?;
    let idempotency_key = idempotency_key(&headers)?;
    let bytes = read_body(request, &state).await?;
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
    // The webhook's own bucket is taken once it is known to exist, so
    // made-up paths leave nothing behind.
    let route = WebhookRoute {
        tenant: &tenant,
        method: method.as_str(),
        path: &path,
    };
    let request = WebhookRequest {
        tenant_slug: tenant.clone(),
        method: method.as_str().to_owned(),
        path: path.clone(),
        headers: header_map,
        query,
        body: bytes.clone(),
    };
    // The caller is checked on the bytes as sent, before the body is read.
    let hook = match state.engine.authenticate_webhook(request).await {
        Ok(hook) => hook,
        Err(Error::Unauthenticated { challenge }) => {
            state.webhook_limits.admit_route(&route, Caller::Refused)?;
            return Ok(unauthenticated(challenge));
        }
        Err(e) => return Err(public_error(e)),
    };
    state.webhook_limits.admit_route(&route, Caller::Admitted)?;
    let body = body_value(&headers, &bytes)?;
    refuse_nul(&body)?;
    let started = state
        .engine
        .start_webhook(hook, body, idempotency_key)
        .await
        .map_err(public_error)?;
    if !started.responds {
        return Ok(accepted(&started));
    }
    let outcome = state
        .engine
        .await_outcome(&started, Until::Responded, std::time::Duration::MAX)
        .await;
    let answer = match outcome {
        Some(Outcome::Responded {
            status,
            headers,
            body,
        }) => responded(&started, status, headers, body),
        Some(Outcome::Finished {
            status: ExecutionStatus::Succeeded,
            ..
        })
        | None => accepted(&started),
        Some(Outcome::Finished { .. }) => {
            // The tenant reads what went wrong in the API; the anonymous
            // caller learns only whether sending again is safe.
            let retry_safe = !state
                .engine
                .outside_effects_started(&started)
                .await
                .map_err(public_error)?;
            failed(&started, retry_safe)
        }
    };
    Ok(answer)
}

/// The documented answer when the workflow has not answered (yet): 202 with
/// the execution id, never the run's internal data.
fn accepted(started: &Started) -> Response {
    let body = answers::Started::new(started.execution);
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

/// 401 with one message whatever failed (a missing header, a bad
/// signature, a stale timestamp, an unset secret): the caller learns
/// nothing of the check.
fn unauthenticated(challenge: Option<&'static str>) -> Response {
    let body =
        json!({"error": {"code": ErrorCode::Unauthenticated, "message": "authentication failed"}});
    let mut response = (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    if let Some(challenge) = challenge {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
    }
    response
}

/// How long a caller of a failed run that may be retried is asked to wait.
const RETRY_AFTER_SECONDS: &str = "5";

fn failed(started: &Started, retry_safe: bool) -> Response {
    if retry_safe {
        let body = json!({"error": {"code": ErrorCode::Unavailable, "message": "the request could not be processed; retrying is safe", "execution_id": started.execution}});
        let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECONDS),
        );
        response
    } else {
        let body = json!({"error": {"code": ErrorCode::Failed, "message": "the request failed after it had effects; retrying may repeat them", "execution_id": started.execution}});
        (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
    }
}

/// Headers a `respond` node may set: those that describe its own answer.
/// Anything else is dropped: framing and hop-by-hop headers (they would
/// desynchronise the connection), and headers that speak for the engine's
/// whole origin (cookies, CORS, HSTS, Clear-Site-Data, authentication
/// challenges, redirects, the security headers every answer carries).
const ALLOWED_HEADERS: [&str; 9] = [
    "cache-control",
    "content-disposition",
    "content-language",
    "content-type",
    "etag",
    "expires",
    "last-modified",
    "retry-after",
    "vary",
];

/// `x-` headers a `respond` node may not set anyway: browser security
/// switches, and those a proxy in front of the engine acts on.
const DROPPED_CUSTOM_HEADERS: [&str; 9] = [
    "x-accel-",
    "x-content-type-options",
    "x-dns-prefetch-control",
    "x-forwarded-",
    "x-frame-options",
    "x-permitted-cross-domain-policies",
    "x-real-ip",
    "x-sendfile",
    "x-xss-protection",
];

fn allowed(name: &HeaderName) -> bool {
    let name = name.as_str();
    ALLOWED_HEADERS.contains(&name)
        || (name.starts_with("x-")
            && !DROPPED_CUSTOM_HEADERS
                .iter()
                .any(|dropped| name.starts_with(dropped)))
}

fn responded(
    started: &Started,
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
) -> Response {
    // Informational answers (101 switches protocols) are refused when a
    // workflow is saved; a version published before that still cannot.
    let Some(status) = StatusCode::from_u16(status)
        .ok()
        .filter(|s| !s.is_informational())
    else {
        return failed(started, false);
    };
    // These answers have no content (RFC 9110 §15.3.5, §15.3.6, §15.4.5):
    // a length would make a client read the next answer as this one's body.
    let mut response = if matches!(
        status,
        StatusCode::NO_CONTENT | StatusCode::RESET_CONTENT | StatusCode::NOT_MODIFIED
    ) {
        (status, Body::empty()).into_response()
    } else {
        (status, Json(body)).into_response()
    };
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) && allowed(&name)
        {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// What every answer under `/hooks/` carries, errors included: no content
/// sniffing, and a policy that keeps a served page from running script or
/// reading the origin.
pub(crate) async fn secure_answers(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let hook = path == "/hooks" || path.starts_with("/hooks/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // The console shares the origin: nothing but its own page (which sets
    // its policy) may run there, whatever a workflow answers.
    if hook || !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("sandbox; default-src 'none'; frame-ancestors 'none'"),
        );
    }
    response
}

/// Errors an anonymous caller may see. A tenant's internal states (credits
/// spent, the store unreachable, anything internal) become one generic 503:
/// the tenant reads the reason in the API.
fn public_error(e: Error) -> ApiError {
    match e {
        Error::NoCredits(_) | Error::Unavailable(_) | Error::Upstream(_) | Error::Internal(_) => {
            if let Error::Internal(_) = &e {
                tracing::error!(error = %e, "internal error on a webhook");
            }
            let mut error = ApiError::new(
                ErrorCode::Unavailable,
                "the request could not be processed now; retrying is safe",
            );
            error.retry_after = Some(5);
            error
        }
        other => ApiError::from(other),
    }
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
