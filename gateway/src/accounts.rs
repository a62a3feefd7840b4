//! Accounts: registration, login, invitations, users, API keys, secrets
//! and the audit log.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use flowmesh_api::{AcceptRequest, LoginRequest, RegisterRequest};
use flowmesh_services::records::{AuditQuery, AuditRecord, KeyInfo, SecretInfo, UserInfo};

use crate::access::{AuditTarget, AuditTenant, Auth};
use crate::answers::{
    Accepted, Invitation, Items, Me, NewApiKey, Page, Pending, SecretStored, Session, TenantRef,
};
use crate::bodies::{Accept, Invite, Login, NewKey, PutSecret, Register};
use crate::error::ApiError;
use crate::extract::{AppState, JsonBytes, TypedQuery, typed_body};
use crate::queries;
use crate::routes::ApiResult;
use crate::session::{self, CookieSession};

/// What registration and invitation acceptance answer; registration
/// answers the same whether or not the email already had an account, so it
/// never tells who has one.
fn sign_in_next(message: &'static str) -> Response {
    let body = Pending {
        status: Accepted::Accepted,
        message,
    };
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

pub(crate) async fn register(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    JsonBytes(body): JsonBytes,
) -> ApiResult {
    let r: Register = typed_body(&body)?;
    let created = state
        .engine
        .register(RegisterRequest {
            email: r.email,
            password: r.password,
            tenant: r.tenant,
            source: Some(peer.ip()),
        })
        .await?;
    let mut response = sign_in_next(
        "sign in with POST /v1/auth/login using this email and password; \
         if the email already had an account, nothing was created and its \
         own password still applies",
    );
    if let Some(tenant) = created {
        response.extensions_mut().insert(AuditTenant(tenant));
        response
            .extensions_mut()
            .insert(AuditTarget(tenant.to_string()));
    }
    Ok(response)
}

pub(crate) async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    JsonBytes(body): JsonBytes,
) -> Result<Json<Session>, ApiError> {
    Ok(Json(Session::from(sign_in(&state, peer, &body).await?)))
}

/// Checks a login's body and opens its session (a bearer token, or the
/// console's cookie).
pub(crate) async fn sign_in(
    state: &AppState,
    peer: SocketAddr,
    body: &[u8],
) -> Result<flowmesh_api::Session, ApiError> {
    let l: Login = typed_body(body)?;
    Ok(state
        .engine
        .login(LoginRequest {
            email: &l.email,
            password: &l.password,
            tenant: l.tenant,
            source: Some(peer.ip()),
        })
        .await?)
}

pub(crate) async fn logout(
    State(state): State<AppState>,
    Auth(who): Auth,
    cookie: Option<Extension<CookieSession>>,
) -> ApiResult {
    state.engine.logout(&who).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    if cookie.is_some() {
        response.headers_mut().insert(
            header::SET_COOKIE,
            session::set_cookie(None, state.secure_cookies),
        );
    }
    Ok(response)
}

pub(crate) async fn accept(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    JsonBytes(body): JsonBytes,
) -> ApiResult {
    let a: Accept = typed_body(&body)?;
    let tenant = state
        .engine
        .accept_invitation(AcceptRequest {
            token: &a.token,
            password: &a.password,
            source: Some(peer.ip()),
        })
        .await?;
    let mut response = sign_in_next(
        "sign in with POST /v1/auth/login using this email and password; \
         name this tenant (\"tenant\": its id) when the account belongs to several",
    );
    response.extensions_mut().insert(AuditTenant(tenant));
    Ok(response)
}

pub(crate) async fn me(Auth(who): Auth, cookie: Option<Extension<CookieSession>>) -> Json<Me> {
    Json(Me {
        csrf_token: cookie.map(|Extension(c)| c.csrf_token),
        tenant: TenantRef {
            id: who.tenant,
            slug: who.tenant_slug,
        },
        role: who.role,
        actor: who.actor,
    })
}

pub(crate) async fn invite(
    State(state): State<AppState>,
    Auth(who): Auth,
    JsonBytes(body): JsonBytes,
) -> ApiResult {
    let i: Invite = typed_body(&body)?;
    let (info, token) = state.engine.invite(&who, &i.email, i.role).await?;
    let target = AuditTarget(info.id.clone());
    let mut response = (StatusCode::CREATED, Json(Invitation { info, token })).into_response();
    response.extensions_mut().insert(target);
    Ok(response)
}

pub(crate) async fn users(
    State(state): State<AppState>,
    Auth(who): Auth,
) -> Result<Json<Items<UserInfo>>, ApiError> {
    let items = state.engine.users(who.tenant).await?;
    Ok(Json(Items { items }))
}

pub(crate) async fn remove_user(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.engine.remove_user(&who, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn create_key(
    State(state): State<AppState>,
    Auth(who): Auth,
    JsonBytes(body): JsonBytes,
) -> ApiResult {
    let k: NewKey = typed_body(&body)?;
    let (info, key) = state.engine.create_key(&who, &k.name, k.role).await?;
    let target = AuditTarget(info.id.clone());
    let mut response = (StatusCode::CREATED, Json(NewApiKey::new(info, key))).into_response();
    response.extensions_mut().insert(target);
    Ok(response)
}

pub(crate) async fn keys(
    State(state): State<AppState>,
    Auth(who): Auth,
) -> Result<Json<Items<KeyInfo>>, ApiError> {
    let items = state.engine.keys(who.tenant).await?;
    Ok(Json(Items { items }))
}

pub(crate) async fn revoke_key(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<Json<KeyInfo>, ApiError> {
    let info = state.engine.revoke_key(&who, &id).await?;
    Ok(Json(info))
}

pub(crate) async fn secrets(
    State(state): State<AppState>,
    Auth(who): Auth,
) -> Result<Json<Items<SecretInfo>>, ApiError> {
    let items = state.engine.secrets(who.tenant).await?;
    Ok(Json(Items { items }))
}

/// `PUT /v1/secrets/{name}` with `{"value": "..."}`; the value is never shown again.
pub(crate) async fn put_secret(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(name): Path<String>,
    JsonBytes(body): JsonBytes,
) -> Result<(StatusCode, Json<SecretStored>), ApiError> {
    let p: PutSecret = typed_body(&body)?;
    let created = state.engine.put_secret(who.tenant, &name, &p.value).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(SecretStored { name, created })))
}

pub(crate) async fn delete_secret(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.engine.delete_secret(who.tenant, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Filters: `actor`, `action` (or a prefix ending in `.`), `outcome`,
/// `since`/`until` (ms since the epoch), `cursor`, `limit` (1 to 500).
pub(crate) async fn audit(
    State(state): State<AppState>,
    Auth(who): Auth,
    TypedQuery(query): TypedQuery<queries::AuditQuery>,
) -> Result<Json<Page<AuditRecord>>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    let q = AuditQuery {
        actor: query.actor,
        action: query.action,
        outcome: query.outcome,
        since: query.since,
        until: query.until,
        before: query.cursor,
        limit,
    };
    let items = state.engine.audit_log(who.tenant, &q).await?;
    let next_cursor = (items.len() == limit as usize)
        .then(|| items.last().map(|r| r.id.clone()))
        .flatten();
    Ok(Json(Page { items, next_cursor }))
}
