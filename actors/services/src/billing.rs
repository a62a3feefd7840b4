//! Credits: balances, the ledger, usage, grants, automatic refills through
//! a payment provider, and the settlement loop.

use flowmesh_api::{GrantRequest, Receipt, RefillRequest};
use std::sync::Arc;

use flowmesh_model::TenantId;
use flowmesh_store::{
    AuditQuery, Balance, Credit, DailyUsage, LedgerEntry, PLATFORM_TENANT, TenantLimits,
};
use futures::future::BoxFuture;

use super::api::EngineHandle;
use crate::accounts::{EngineAudit, audit_engine};
use crate::error::Error;
use crate::shared::Shared;

/// Where automatic refills are paid. A real provider charges the tenant's
/// payment method here; the engine records the credits once the receipt is
/// back, under the request's idempotency key.
pub trait PaymentProvider: Send + Sync {
    fn refill(&self, request: RefillRequest) -> BoxFuture<'_, Result<Receipt, String>>;
}

/// Records refills in the ledger without charging anyone: for instances
/// that bill outside flowmesh.
pub struct LedgerOnly;

impl PaymentProvider for LedgerOnly {
    fn refill(&self, request: RefillRequest) -> BoxFuture<'_, Result<Receipt, String>> {
        Box::pin(async move {
            Ok(Receipt {
                id: request.idempotency_key,
            })
        })
    }
}

impl EngineHandle {
    pub async fn balance(&self, tenant: TenantId) -> Result<Balance, Error> {
        Ok(self.shared.store.balance(tenant).await?)
    }

    pub async fn ledger(
        &self,
        tenant: TenantId,
        limit: u32,
        before: Option<&str>,
    ) -> Result<Vec<LedgerEntry>, Error> {
        Ok(self.shared.store.ledger(tenant, limit, before).await?)
    }

    /// Usage per day and workflow between two days (`YYYY-MM-DD`, inclusive).
    pub async fn usage(
        &self,
        tenant: TenantId,
        from: &str,
        to: &str,
    ) -> Result<Vec<DailyUsage>, Error> {
        for (name, day) in [("from", from), ("to", to)] {
            if chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").is_err() {
                return Err(Error::BadRequest(format!(
                    "{name}: must be a day such as 2026-11-23"
                )));
            }
        }
        Ok(self.shared.store.usage(tenant, from, to).await?)
    }

    pub async fn set_auto_refill(
        &self,
        tenant: TenantId,
        refill: Option<(i64, i64)>,
    ) -> Result<(), Error> {
        if let Some((threshold, amount)) = refill
            && (threshold < 0 || amount <= 0)
        {
            return Err(Error::BadRequest(
                "threshold must be 0 or more and amount more than 0".into(),
            ));
        }
        Ok(self.shared.store.set_auto_refill(tenant, refill).await?)
    }

    async fn tenant_of_slug(&self, slug: &str) -> Result<TenantId, Error> {
        self.shared
            .store
            .tenant_by_slug(slug)
            .await?
            .ok_or(Error::NotFound("tenant"))
    }

    /// Adds credits to a tenant (the instance's administrators).
    pub async fn grant(&self, request: GrantRequest) -> Result<LedgerEntry, Error> {
        if request.amount == 0 || request.amount.abs() > 1_000_000_000_000 {
            return Err(Error::BadRequest(
                "amount: must be a non-zero whole number of credits up to 10^12".into(),
            ));
        }
        let tenant = self.tenant_of_slug(&request.tenant_slug).await?;
        let reference = request.idempotency_key.map(|k| format!("grant:{k}"));
        let entry = self
            .shared
            .store
            .credit(Credit {
                tenant,
                amount: request.amount,
                kind: "grant",
                reference: reference.as_deref(),
                actor: Some(&request.actor),
                note: request.note.as_deref(),
            })
            .await?;
        self.credits.forget(tenant);
        Ok(entry)
    }

    /// Sets a tenant's own limits (the instance's administrators).
    pub async fn set_limits(&self, slug: &str, limits: TenantLimits) -> Result<TenantId, Error> {
        for (name, value) in [
            ("rate_limit", limits.rate_limit),
            ("max_concurrent", limits.max_concurrent),
            ("max_payload_bytes", limits.max_payload_bytes),
        ] {
            if value.is_some_and(|v| v < 1) {
                return Err(Error::BadRequest(format!(
                    "{name}: must be 1 or more, or null for the instance default"
                )));
            }
        }
        let tenant = self.tenant_of_slug(slug).await?;
        self.shared.store.set_tenant_limits(tenant, &limits).await?;
        self.shared.settings.forget(tenant);
        Ok(tenant)
    }

    pub async fn tenants(&self) -> Result<Vec<flowmesh_store::TenantInfo>, Error> {
        Ok(self.shared.store.list_tenants().await?)
    }

    /// Whether a principal administers the instance: an owner or admin of
    /// the platform tenant.
    pub fn is_platform_admin(who: &flowmesh_store::Principal) -> bool {
        who.tenant_slug == PLATFORM_TENANT && who.role >= flowmesh_model::Role::Admin
    }
}

/// Settles metered usage into balances, and pays for refills that became due.
pub(super) async fn settle(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(shared.options.tenancy.settle_interval.0);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // Bounded work per tick: a backlog is settled over several ticks.
        for _ in 0..50 {
            match shared.store.settle_usage().await {
                Ok((0, _)) => break,
                Ok((_, None)) => {}
                Ok((_, Some(due))) => refill(&shared, due).await,
                Err(e) => {
                    tracing::warn!(error = %e, "usage settlement failed; it is tried again");
                    break;
                }
            }
        }
    }
}

/// The window the refill cap counts over.
const REFILL_WINDOW_MS: i64 = 24 * 3_600_000;

/// Whether the tenant already had its refills of the last day; a refill
/// the cap stops is logged and counted, and audited once per window.
async fn refill_capped(shared: &Shared, due: &flowmesh_store::RefillDue) -> Result<bool, Error> {
    let cap = shared.options.tenancy.max_refills_per_day;
    let since = flowmesh_store::now_ms() - REFILL_WINDOW_MS;
    let refills = shared.store.refills_since(due.tenant, since).await?;
    if refills < i64::from(cap) {
        return Ok(false);
    }
    tracing::warn!(tenant = %due.tenant, refills, cap, balance = due.balance, "automatic refill not paid: the tenant reached its refills per day");
    crate::metrics::refill_capped(due.tenant);
    let query = AuditQuery {
        action: Some(REFILL_CAPPED.to_owned()),
        since: Some(since),
        limit: 1,
        ..AuditQuery::default()
    };
    if shared.store.audit_log(due.tenant, &query).await?.is_empty() {
        let event = EngineAudit {
            tenant: due.tenant,
            action: REFILL_CAPPED,
            target: None,
            outcome: "refill_cap_reached",
        };
        audit_engine(shared, event).await;
    }
    Ok(true)
}

/// The audit action of a refill the cap stopped.
const REFILL_CAPPED: &str = "billing.refill_capped";

async fn refill(shared: &Shared, due: flowmesh_store::RefillDue) {
    match refill_capped(shared, &due).await {
        Ok(false) => {}
        Ok(true) => return,
        Err(e) => {
            // Without the count the cap cannot hold: no payment this time.
            tracing::warn!(tenant = %due.tenant, error = %e, "could not count the tenant's refills; no refill paid");
            return;
        }
    }
    // The refill's own reference: a payment tried again (it failed, or its
    // answer was lost) is the same payment to the provider.
    let request = RefillRequest {
        tenant: due.tenant,
        amount: due.amount,
        idempotency_key: format!("refill:{}", due.reference),
    };
    match shared.payments.refill(request).await {
        Ok(receipt) => {
            let note = format!("balance was {}; receipt {}", due.balance, receipt.id);
            if let Err(e) = shared.store.record_refill(&due, &note).await {
                tracing::error!(tenant = %due.tenant, error = %e, receipt = %receipt.id, "a paid refill could not be recorded");
            }
        }
        Err(e) => tracing::warn!(tenant = %due.tenant, error = %e, "the refill payment failed"),
    }
}
