//! Credits and usage, and the instance administrators' routes (tenants,
//! grants, limits).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use flowmesh_api::GrantRequest;
use flowmesh_services::records::{LedgerEntry, TenantInfo, TenantLimits, day_of, now_ms};

use crate::access::Auth;
use crate::answers::{AutoRefillSet, Billing, Items, Refill, UsageReport, UsageTotal};
use crate::bodies::{AutoRefill, Grant, Limits};
use crate::error::ApiError;
use crate::extract::{AppState, JsonBytes, TypedQuery, idempotency_key, typed_body};
use crate::queries::{LedgerQuery, UsageQuery};

/// `?from=YYYY-MM-DD&to=YYYY-MM-DD`, by default the last 30 days.
pub(crate) async fn usage(
    State(state): State<AppState>,
    Auth(who): Auth,
    TypedQuery(query): TypedQuery<UsageQuery>,
) -> Result<Json<UsageReport>, ApiError> {
    let from = query
        .from
        .unwrap_or_else(|| day_of(now_ms() - 29 * 86_400_000));
    let to = query.to.unwrap_or_else(|| day_of(now_ms()));
    let items = state.engine.usage(who.tenant, &from, &to).await?;
    Ok(Json(UsageReport {
        from,
        to,
        total: UsageTotal::of(&items),
        items,
    }))
}

/// The balance, the automatic refill, and the newest ledger entries
/// (`?cursor=` pages back).
pub(crate) async fn billing(
    State(state): State<AppState>,
    Auth(who): Auth,
    TypedQuery(query): TypedQuery<LedgerQuery>,
) -> Result<Json<Billing>, ApiError> {
    let limit = query.limit.unwrap_or(50);
    let balance = state.engine.balance(who.tenant).await?;
    let ledger = state
        .engine
        .ledger(who.tenant, limit, query.cursor.as_deref())
        .await?;
    let next_cursor = (ledger.len() == limit as usize)
        .then(|| ledger.last().map(|e| e.id.clone()))
        .flatten();
    let auto_refill = match (balance.refill_threshold, balance.refill_amount) {
        (Some(threshold), Some(amount)) => Some(Refill { threshold, amount }),
        _ => None,
    };
    Ok(Json(Billing {
        balance: balance.balance,
        pending: balance.pending,
        auto_refill,
        ledger,
        next_cursor,
    }))
}

/// `PUT /v1/billing/auto-refill` with `{"threshold", "amount"}`, or `null` to turn it off.
pub(crate) async fn put_auto_refill(
    State(state): State<AppState>,
    Auth(who): Auth,
    JsonBytes(body): JsonBytes,
) -> Result<Json<AutoRefillSet>, ApiError> {
    let refill: Option<AutoRefill> = typed_body(&body)?;
    state
        .engine
        .set_auto_refill(who.tenant, refill.as_ref().map(|r| (r.threshold, r.amount)))
        .await?;
    Ok(Json(AutoRefillSet {
        auto_refill: refill.map(|r| Refill {
            threshold: r.threshold,
            amount: r.amount,
        }),
    }))
}

pub(crate) async fn tenants(
    State(state): State<AppState>,
) -> Result<Json<Items<TenantInfo>>, ApiError> {
    let items = state.engine.tenants().await?;
    Ok(Json(Items { items }))
}

/// `POST /v1/admin/tenants/{slug}/credits` with `{"amount", "note"}`; an
/// `Idempotency-Key` makes a retried grant count once.
pub(crate) async fn grant(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(slug): Path<String>,
    headers: HeaderMap,
    JsonBytes(body): JsonBytes,
) -> Result<(StatusCode, Json<LedgerEntry>), ApiError> {
    let g: Grant = typed_body(&body)?;
    let entry = state
        .engine
        .grant(GrantRequest {
            tenant_slug: slug,
            amount: g.amount,
            note: g.note,
            idempotency_key: idempotency_key(&headers)?,
            actor: who.actor,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(entry)))
}

/// `PUT /v1/admin/tenants/{slug}/limits` with `rate_limit`,
/// `max_concurrent`, `max_payload_bytes` (each a number, or null for the
/// instance default).
pub(crate) async fn put_limits(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    JsonBytes(body): JsonBytes,
) -> Result<Json<TenantLimits>, ApiError> {
    let l: Limits = typed_body(&body)?;
    let limits = TenantLimits {
        rate_limit: l.rate_limit,
        max_concurrent: l.max_concurrent,
        max_payload_bytes: l.max_payload_bytes,
    };
    state.engine.set_limits(&slug, limits).await?;
    Ok(Json(limits))
}
