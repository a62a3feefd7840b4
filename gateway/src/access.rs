//! Who may call what. Every route declares its [`Access`] in the route
//! table; one middleware authenticates the caller, checks the role, counts
//! the request against the tenant's rate limit, and writes the audit record
//! of routes that change something.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, RawPathParams, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use flowmesh_api::ErrorCode;
use flowmesh_model::{Role, TenantId};
use flowmesh_services::EngineHandle;
use flowmesh_services::records::{AuditRecord, Principal, now_ms};

use crate::error::ApiError;
use crate::extract::AppState;
use crate::session::{self, CookieSession};

/// What a route requires of its caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone; the handler decides (health, login, webhooks).
    Public,
    /// A user or key of the tenant with at least this role.
    Role(Role),
    /// An owner or admin of the platform tenant: the instance's administrators.
    Platform,
    /// The instance's metrics token (not a tenant's credential): metrics
    /// name every tenant and workflow.
    MetricsToken,
}

impl Access {
    pub fn allows(self, who: &Principal) -> bool {
        match self {
            Access::Public => true,
            Access::Role(role) => who.role >= role,
            Access::Platform => EngineHandle::is_platform_admin(who),
            Access::MetricsToken => false,
        }
    }
}

/// The guard of one route: its access rule and, for a route that changes
/// something, the action its audit records name.
#[derive(Clone, Copy, Debug)]
pub struct Guard {
    pub access: Access,
    pub audit: Option<&'static str>,
    /// An event stream, which also takes a stream ticket (`?ticket=`):
    /// a browser's EventSource or WebSocket cannot send a header.
    pub tickets: bool,
}

/// The id a handler created, for the audit record (set on the response).
#[derive(Clone, Debug)]
pub struct AuditTarget(pub String);

/// The tenant a public route acted for (registration), for its audit record.
#[derive(Clone, Copy, Debug)]
pub struct AuditTenant(pub TenantId);

/// The authenticated caller, as the guard found it.
pub struct Auth(pub Principal);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Auth)
            .ok_or_else(|| unauthorized("send a credential as `Authorization: Bearer <token>`"))
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(ErrorCode::Unauthorized, message)
}

/// The bearer credential of a request, if it sends one.
fn bearer(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(Some)
        .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <token>`"))
}

/// The stream ticket a request sends as `?ticket=`, if any.
fn ticket(parts: &Parts) -> Option<String> {
    let query = parts.uri.query()?;
    serde_urlencoded::from_str::<crate::queries::TicketQuery>(query)
        .ok()?
        .ticket
}

/// The caller of a route: by bearer credential, by the console's session
/// cookie (then also the [`CookieSession`] it checked), or on an event
/// stream (`tickets`) by a stream ticket, used up by this request.
async fn caller(
    state: &AppState,
    parts: &Parts,
    tickets: bool,
) -> Result<(Principal, Option<CookieSession>), ApiError> {
    let header = parts.headers.contains_key(header::AUTHORIZATION);
    match (ticket(parts), tickets) {
        (Some(_), true) if header => Err(ApiError::bad_request(
            "ticket: send either a stream ticket or an Authorization header, not both",
        )),
        (Some(ticket), true) => Ok((state.engine.redeem_stream_ticket(&ticket).await?, None)),
        (Some(_), false) if !header => Err(unauthorized(
            "a stream ticket opens an event stream only (GET /v1/events, /v1/events/ws, \
             /v1/executions/{id}/events); send `Authorization: Bearer <token>` here",
        )),
        _ if !header => match session::from_cookie(&parts.headers) {
            Some(secret) => {
                let who = known(state, &secret).await?;
                let checked = session::check_request(parts, &secret)?;
                Ok((who, Some(checked)))
            }
            None => Err(unauthorized(
                "send a credential as `Authorization: Bearer <token>`",
            )),
        },
        _ => Ok((authenticate(state, parts).await?, None)),
    }
}

pub async fn authenticate(state: &AppState, parts: &Parts) -> Result<Principal, ApiError> {
    let credential = bearer(parts)?
        .ok_or_else(|| unauthorized("send a credential as `Authorization: Bearer <token>`"))?;
    known(state, credential).await
}

async fn known(state: &AppState, credential: &str) -> Result<Principal, ApiError> {
    state
        .engine
        .authenticate(credential)
        .await?
        .ok_or_else(|| unauthorized("unknown, revoked or expired credential"))
}

/// What a token is compared by: equal-length digests, compared in constant time.
pub fn token_digest(token: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).into()
}

/// Whether the request carries the instance's metrics token.
fn check_metrics_token(state: &AppState, parts: &Parts) -> Result<(), ApiError> {
    use subtle::ConstantTimeEq;
    let Some(expected) = &state.metrics_token else {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            "metrics are not served: the operator sets a token with --metrics-token \
             (FLOWMESH_METRICS_TOKEN), then scrapes with `Authorization: Bearer <token>`",
        ));
    };
    let sent = bearer(parts)?.ok_or_else(|| {
        unauthorized("send the instance's metrics token as `Authorization: Bearer <token>`")
    })?;
    if bool::from(token_digest(sent).ct_eq(expected)) {
        Ok(())
    } else {
        Err(unauthorized(
            "not the instance's metrics token (a tenant's credential does not read metrics)",
        ))
    }
}

/// The middleware of every route.
pub async fn guard(
    State((state, guard)): State<(AppState, Guard)>,
    params: RawPathParams,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let source = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let target = params
        .iter()
        .find(|(name, _)| matches!(*name, "id" | "name" | "slug"))
        .map(|(_, value)| value.to_owned());
    let who = match guard.access {
        Access::Public => None,
        Access::MetricsToken => match check_metrics_token(&state, &parts) {
            Ok(()) => None,
            Err(e) => return e.into_response(),
        },
        rule => {
            let (who, cookie) = match caller(&state, &parts, guard.tickets).await {
                Ok(found) => found,
                Err(e) => return e.into_response(),
            };
            if let Some(cookie) = cookie {
                parts.extensions.insert(cookie);
            }
            if !rule.allows(&who) {
                let needed = match rule {
                    Access::Role(role) => format!("the role {role} or higher"),
                    _ => "an administrator of the instance".to_owned(),
                };
                let refusal = ApiError::new(
                    ErrorCode::Forbidden,
                    format!("this needs {needed}; the credential has {}", who.role),
                );
                return audited(
                    &state,
                    guard,
                    Some(&who),
                    target,
                    source,
                    refusal.into_response(),
                )
                .await;
            }
            if let Err(e) = state.engine.admit(who.tenant).await {
                return ApiError::from(e).into_response();
            }
            parts.extensions.insert(who.clone());
            Some(who)
        }
    };
    let response = next.run(Request::from_parts(parts, body)).await;
    audited(&state, guard, who.as_ref(), target, source, response).await
}

async fn audited(
    state: &AppState,
    guard: Guard,
    who: Option<&Principal>,
    target: Option<String>,
    source: Option<String>,
    response: Response,
) -> Response {
    let Some(action) = guard.audit else {
        return response;
    };
    let tenant = who
        .map(|w| w.tenant)
        .or_else(|| response.extensions().get::<AuditTenant>().map(|t| t.0));
    let Some(tenant) = tenant else {
        return response;
    };
    let status = response.status();
    let outcome = if status.is_success() {
        "ok".to_owned()
    } else {
        status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase()
            .replace(' ', "_")
    };
    let target = response
        .extensions()
        .get::<AuditTarget>()
        .map(|t| t.0.clone())
        .or(target);
    let record = AuditRecord {
        id: uuid::Uuid::now_v7().to_string(),
        at: now_ms(),
        actor: who.map_or_else(|| "anonymous".to_owned(), |w| w.actor.clone()),
        action: action.to_owned(),
        target,
        source,
        outcome,
        status: i64::from(status.as_u16()),
    };
    state.engine.audit(tenant, record).await;
    response
}
