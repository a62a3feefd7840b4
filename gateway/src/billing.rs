//! Credits and usage, and the instance administrators' routes (tenants,
//! grants, limits).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use flowmesh_api::GrantRequest;
use flowmesh_services::records::{TenantLimits, day_of, now_ms};
use serde_json::json;

use crate::access::Auth;
use crate::bodies::{AutoRefill, Grant, Limits};
use crate::extract::{AppState, JsonBytes, TypedQuery, typed_body};
use crate::queries::{LedgerQuery, UsageQuery};
use crate::routes::{ApiResult, idempotency_key};

/// `?from=YYYY-MM-DD&to=YYYY-MM-DD`, by default the last 30 days.
pub(crate) async fn usage(
    State(state): State<AppState>,
    Auth(who): Auth,
    TypedQuery(query): TypedQuery<UsageQuery>,
) -> ApiResult {
    let from = query
        .from
        .unwrap_or_else(|| day_of(now_ms() - 29 * 86_400_000));
    let to = query.to.unwrap_or_else(|| day_of(now_ms()));
    let days = state.engine.usage(who.tenant, &from, &to).await?;
    let total = days.iter().fold(
        json!({"executions": 0, "node_runs": 0, "sandbox_ms": 0, "llm_tokens": 0, "credits": 0}),
        |mut t, d| {
            for (k, v) in [
                ("executions", d.executions),
                ("node_runs", d.node_runs),
                ("sandbox_ms", d.sandbox_ms),
                ("llm_tokens", d.llm_tokens),
                ("credits", d.credits),
            ] {
                t[k] = json!(t[k].as_i64().unwrap_or(0) + v);
            }
            t
        },
    );
    Ok(Json(json!({"from": from, "to": to, "total": total, "items": days})).into_response())
}

/// The balance, the automatic refill, and the newest ledger entries
/// (`?cursor=` pages back).
pub(crate) async fn billing(
    State(state): State<AppState>,
    Auth(who): Auth,
    TypedQuery(query): TypedQuery<LedgerQuery>,
) -> ApiResult {
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
        (Some(threshold), Some(amount)) => json!({"threshold": threshold, "amount": amount}),
        _ => serde_json::Value::Null,
    };
    Ok(Json(json!({
        "balance": balance.balance,
        "pending": balance.pending,
        "auto_refill": auto_refill,
        "ledger": ledger,
        "next_cursor": next_cursor,
    }))
    .into_response())
}

/// `PUT /v1/billing/auto-refill` with `{"threshold", "amount"}`, or `null` to turn it off.
pub(crate) async fn put_auto_refill(
    State(state): State<AppState>,
    Auth(who): Auth,
    JsonBytes(body): JsonBytes,
) -> ApiResult {
    let refill: Option<AutoRefill> = typed_body(&body)?;
    state
        .engine
        .set_auto_refill(who.tenant, refill.as_ref().map(|r| (r.threshold, r.amount)))
        .await?;
    let body = refill.map_or(
        serde_json::Value::Null,
        |r| json!({"threshold": r.threshold, "amount": r.amount}),
    );
    Ok(Json(json!({"auto_refill": body})).into_response())
}

pub(crate) async fn tenants(State(state): State<AppState>) -> ApiResult {
    let items = state.engine.tenants().await?;
    Ok(Json(json!({"items": items})).into_response())
}

/// `POST /v1/admin/tenants/{slug}/credits` with `{"amount", "note"}`; an
/// `Idempotency-Key` makes a retried grant count once.
pub(crate) async fn grant(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(slug): Path<String>,
    headers: HeaderMap,
    JsonBytes(body): JsonBytes,
) -> ApiResult {
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
    Ok((StatusCode::CREATED, Json(entry)).into_response())
}

/// `PUT /v1/admin/tenants/{slug}/limits` with `rate_limit`,
/// `max_concurrent`, `max_payload_bytes` (each a number, or null for the
/// instance default).
pub(crate) async fn put_limits(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    JsonBytes(body): JsonBytes,
) -> ApiResult {
    let l: Limits = typed_body(&body)?;
    let limits = TenantLimits {
        rate_limit: l.rate_limit,
        max_concurrent: l.max_concurrent,
        max_payload_bytes: l.max_payload_bytes,
    };
    state.engine.set_limits(&slug, limits).await?;
    Ok(Json(limits).into_response())
}
