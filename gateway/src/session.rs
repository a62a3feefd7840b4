//! The console's session: the same session a login opens, carried in an
//! HttpOnly cookie instead of a bearer header, so that page scripts never
//! hold it and event streams open from the browser with no token in a URL.
//!
//! A request authenticated by the cookie that changes something must send
//! the session's CSRF token in `X-CSRF-Token`: another site can make a
//! browser send the cookie (where `SameSite` does not stop it) but cannot
//! read the token. The token is derived from the session's secret, so every
//! process checks it without shared state. The cookie's path is `/v1`: it
//! never reaches a tenant's webhook under `/hooks`.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::IntoResponse;
use flowmesh_api::ErrorCode;
use flowmesh_model::Role;
use schemars::JsonSchema;
use serde::Serialize;
use subtle::ConstantTimeEq;

use crate::answers::TenantRef;
use crate::error::ApiError;
use crate::extract::{AppState, JsonBytes};
use crate::routes::ApiResult;

/// The cookie's name.
pub const COOKIE: &str = "flowmesh_session";
/// The header a cookie-authenticated request that changes something sends.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Where the browser sends the cookie: the API only.
const COOKIE_PATH: &str = "/v1";

/// A request authenticated by the session cookie (an extension the guard
/// sets): what `GET /v1/me` and logout need to know about it.
#[derive(Clone, Debug)]
pub struct CookieSession {
    pub csrf_token: String,
}

/// The answer of `POST /v1/auth/session`: the session itself is in the
/// cookie, never in the body.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ConsoleSession {
    /// Send it as `X-CSRF-Token` with every request that changes something.
    pub csrf_token: String,
    /// Milliseconds since the Unix epoch.
    pub expires_at: i64,
    pub tenant: TenantRef,
    pub role: Role,
}

/// The CSRF token of a session: a digest of its secret under a label of
/// its own, so the token tells nothing about the secret.
pub fn csrf_token(session: &str) -> String {
    use sha2::Digest;
    let mut digest = sha2::Sha256::new();
    digest.update(b"flowmesh console csrf\0");
    digest.update(session.as_bytes());
    digest
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The session secret a request's cookie carries, if any.
pub fn from_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty())
}

/// Checks what a cookie-authenticated request must carry beyond the cookie:
/// the CSRF token on anything but a read, and, when the browser names the
/// page's origin, this host's.
pub fn check_request(parts: &Parts, session: &str) -> Result<CookieSession, ApiError> {
    let csrf = csrf_token(session);
    if let Some(origin) = parts.headers.get(header::ORIGIN) {
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok());
        let origin_host = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .map(|(_, rest)| rest);
        if host.is_none() || origin_host != host {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                "a request signed in by the console's cookie must come from the console's own origin",
            ));
        }
    }
    let reads = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    if !reads {
        let sent = parts
            .headers
            .get(CSRF_HEADER)
            .map(HeaderValue::as_bytes)
            .unwrap_or_default();
        if !bool::from(sent.ct_eq(csrf.as_bytes())) {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                "send the session's CSRF token as `X-CSRF-Token` (from POST /v1/auth/session \
                 or GET /v1/me); retrying with it is safe",
            ));
        }
    }
    Ok(CookieSession { csrf_token: csrf })
}

/// A `Set-Cookie` value carrying the session, or clearing it (`None`).
pub fn set_cookie(session: Option<(&str, i64)>, secure: bool) -> HeaderValue {
    let mut builder = cookie::Cookie::build((COOKIE, session.map_or("", |(s, _)| s)))
        .path(COOKIE_PATH)
        .http_only(true)
        .secure(secure)
        .same_site(cookie::SameSite::Strict);
    builder = match session {
        Some((_, max_age)) => builder.max_age(cookie::time::Duration::seconds(max_age.max(0))),
        None => builder.max_age(cookie::time::Duration::ZERO),
    };
    HeaderValue::from_str(&builder.build().to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("flowmesh_session=; Path=/v1; Max-Age=0"))
}

/// `POST /v1/auth/session`: a login whose session goes into the cookie.
pub(crate) async fn open(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    JsonBytes(body): JsonBytes,
) -> ApiResult {
    let session = crate::accounts::sign_in(&state, peer, &body).await?;
    let max_age = (session.expires_at - flowmesh_services::records::now_ms()) / 1000;
    let cookie = set_cookie(Some((&session.token, max_age)), state.secure_cookies);
    let answer = ConsoleSession {
        csrf_token: csrf_token(&session.token),
        expires_at: session.expires_at,
        tenant: TenantRef {
            id: session.tenant,
            slug: session.tenant_slug,
        },
        role: session.role,
    };
    let mut response = Json(answer).into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
