//! Request extractors that answer bad input with the JSON error envelope.

use std::str::FromStr;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use flowmesh_api::ErrorCode;
use flowmesh_services::EngineHandle;

use crate::error::ApiError;
use crate::server::BodyDeadline;

#[derive(Clone)]
pub struct AppState {
    pub engine: EngineHandle,
    /// Open event streams by tenant, within the per-tenant cap.
    pub streams: std::sync::Arc<crate::stream::StreamSlots>,
    pub webhook_limits: std::sync::Arc<crate::hook_limits::WebhookLimits>,
    /// The SHA-256 digest of the token `GET /metrics` requires; none: not served.
    pub metrics_token: Option<[u8; 32]>,
    /// The routes this listener serves, which its API description lists.
    pub surface: crate::Surface,
    /// Whether the console's session cookie is marked `Secure`.
    pub secure_cookies: bool,
}

/// A JSON request body: the right content type, within the size limit.
pub struct JsonBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for JsonBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = read_body(req, state).await?;
        if bytes.is_empty() {
            return Ok(JsonBytes(bytes));
        }
        if !content_type.as_deref().is_some_and(is_json) {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "send the body as JSON with `Content-Type: application/json`",
            ));
        }
        // Only a body that spells the escape can hold NUL: parse just those.
        if bytes.windows(6).any(|w| w == br"\u0000")
            && let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes)
        {
            refuse_nul(&value)?;
        }
        Ok(JsonBytes(bytes))
    }
}

pub fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json")
}

/// Reads the whole body, answering 413 past the configured limit and 408
/// once `--body-read-timeout` has passed (a body trickled in would
/// otherwise hold its connection for as long as its sender likes).
pub async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    let deadline = req.extensions().get::<BodyDeadline>().copied();
    let read = Bytes::from_request(req, state);
    let read = match deadline {
        Some(BodyDeadline(deadline)) => {
            tokio::time::timeout_at(deadline, read).await.map_err(|_| {
                ApiError::new(
                    ErrorCode::RequestTimeout,
                    "the request body did not arrive within the body read timeout; \
                     retrying is safe",
                )
            })?
        }
        None => read.await,
    };
    read.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                ErrorCode::PayloadTooLarge,
                "the request body is over the size limit",
            )
        } else {
            ApiError::bad_request(format!("could not read the request body: {rejection}"))
        }
    })
}

/// Parses JSON, answering 400 with the line and column of the problem.
pub fn parse_json(bytes: &[u8]) -> Result<serde_json::Value, ApiError> {
    if bytes.is_empty() {
        return Ok(serde_json::Value::Object(Default::default()));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::new(ErrorCode::MalformedJson, e.to_string()))
}

/// Stored text (PostgreSQL `text` and `jsonb`) cannot hold the NUL
/// character, so a body that does is refused with where it is.
pub fn refuse_nul(value: &serde_json::Value) -> Result<(), ApiError> {
    match nul_at(value) {
        Some(pointer) => Err(ApiError::bad_request(format!(
            "{}: text cannot hold the NUL character (\\u0000)",
            if pointer.is_empty() { "/" } else { &pointer }
        ))),
        None => Ok(()),
    }
}

/// The JSON pointer of the first string or key holding NUL.
fn nul_at(value: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    let escape = |key: &str| key.replace('~', "~0").replace('/', "~1");
    match value {
        Value::String(s) if s.contains('\0') => Some(String::new()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_at(item).map(|rest| format!("/{i}{rest}"))),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            if key.contains('\0') {
                return Some(format!("/{}", escape(key)));
            }
            nul_at(item).map(|rest| format!("/{}{rest}", escape(key)))
        }),
        _ => None,
    }
}

/// The same rule for the URL: `%00` in the path or a query parameter.
pub async fn refuse_nul_in_url(request: Request, next: Next) -> Response {
    let has_nul = |text: &str| text.contains("%00");
    let uri = request.uri();
    if has_nul(uri.path()) {
        return ApiError::bad_request("the path holds the NUL character (%00)").into_response();
    }
    if let Some(query) = uri.query()
        && let Some(pair) = query.split('&').find(|pair| has_nul(pair))
    {
        let name = pair.split('=').next().unwrap_or_default();
        return ApiError::bad_request(format!(
            "query parameter {name}: text cannot hold the NUL character (%00)"
        ))
        .into_response();
    }
    next.run(request).await
}

/// The `Idempotency-Key` header, if sent: visible ASCII, 1 to 255 characters.
pub fn idempotency_key(headers: &axum::http::HeaderMap) -> Result<Option<String>, ApiError> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => {
            let key = v.to_str().map_err(|_| {
                ApiError::bad_request("the Idempotency-Key header must be visible ASCII")
            })?;
            if key.is_empty() || key.len() > 255 {
                return Err(ApiError::bad_request(
                    "the Idempotency-Key header must hold 1 to 255 characters",
                ));
            }
            Ok(Some(key.to_owned()))
        }
    }
}

/// An id in the path; one that cannot exist is simply not found.
pub fn parse_id<T: FromStr>(text: &str, what: &str) -> Result<T, ApiError> {
    text.parse().map_err(|_| ApiError::not_found(what))
}

/// A version number in the path (1 or more).
pub fn parse_version(text: &str) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| ApiError::bad_request("version: must be a version number (1 or more)"))
}

/// A JSON body read into `T`; a problem is a 400 naming where it is
/// (`tenant: invalid type: integer, expected a string`).
pub fn typed_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // serde would read a struct from an array of its fields, too.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_none() || first == Some(&b'[') {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::new(ErrorCode::MalformedJson, inner.to_string())
        } else if path == "." {
            ApiError::bad_request(inner.to_string())
        } else {
            ApiError::bad_request(format!("{path}: {inner}"))
        }
    })?;
    de.end()
        .map_err(|e| ApiError::new(ErrorCode::MalformedJson, e.to_string()))?;
    Ok(value)
}

/// The query string read into `T`. A value `T` refuses is a 400 naming the
/// parameter (`query parameter limit: must be between 1 and 500`); so is a
/// parameter `T` does not know, when its schema allows no others.
pub struct TypedQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for TypedQuery<T>
where
    T: serde::de::DeserializeOwned + schemars::JsonSchema,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let pairs = form_urlencoded::parse(query.as_bytes());
        let schema = crate::queries::schema_of::<T>();
        if schema.get("additionalProperties") == Some(&serde_json::Value::Bool(false)) {
            let known: Vec<&String> = schema
                .get("properties")
                .and_then(serde_json::Value::as_object)
                .map(|p| p.keys().collect())
                .unwrap_or_default();
            if let Some((unknown, _)) = pairs
                .clone()
                .find(|(name, _)| !known.iter().any(|k| **k == *name))
            {
                let known: Vec<&str> = known.iter().map(|k| k.as_str()).collect();
                return Err(ApiError::bad_request(format!(
                    "query parameter {unknown}: unknown; this route takes {}",
                    known.join(", ")
                )));
            }
        }
        let de = serde_urlencoded::Deserializer::new(pairs);
        serde_path_to_error::deserialize(de)
            .map(TypedQuery)
            .map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                if path == "." {
                    ApiError::bad_request(format!("query: {inner}"))
                } else {
                    ApiError::bad_request(format!("query parameter {path}: {inner}"))
                }
            })
    }
}
