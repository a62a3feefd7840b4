//! Per-tenant limits set by the instance's administrators, and the
//! concurrency slots they bound.

use flowmesh_model::TenantId;
use serde::{Deserialize, Serialize};

use crate::{Error, Store};

/// A tenant's own limits; none means the instance default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantLimits {
    /// API requests and webhook calls per second (a burst of twice that).
    pub rate_limit: Option<i64>,
    /// Executions running at once; more wait, queued.
    pub max_concurrent: Option<i64>,
    /// Largest start input or webhook body, in bytes.
    pub max_payload_bytes: Option<i64>,
}

impl Store {
    /// Sets a tenant's limits; returns false for an unknown tenant. Setting
    /// a concurrency limit counts the tenant's running executions afresh.
    pub async fn set_tenant_limits(
        &self,
        tenant: TenantId,
        limits: &TenantLimits,
    ) -> Result<bool, Error> {
        let updated = sqlx::query(
            "UPDATE tenants SET rate_limit = $2, max_concurrent = $3, max_payload_bytes = $4, \
             running = (SELECT COUNT(*) FROM executions WHERE tenant_id = $1 AND status = 'running') \
             WHERE id = $1",
        )
        .bind(tenant.to_string())
        .bind(limits.rate_limit)
        .bind(limits.max_concurrent)
        .bind(limits.max_payload_bytes)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(updated == 1)
    }

    /// Takes a concurrency slot of the tenant; false when all are taken.
    pub(crate) async fn take_slot(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        tenant: TenantId,
    ) -> Result<bool, Error> {
        let taken = sqlx::query(
            "UPDATE tenants SET running = running + 1 WHERE id = $1 \
             AND (max_concurrent IS NULL OR running < max_concurrent)",
        )
        .bind(tenant.to_string())
        .execute(&mut **tx)
        .await?
        .rows_affected();
        Ok(taken == 1)
    }

    pub(crate) async fn give_slot(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        tenant: TenantId,
    ) -> Result<(), Error> {
        sqlx::query(
            "UPDATE tenants SET running = running - 1 WHERE id = $1 AND running > 0 \
             AND max_concurrent IS NOT NULL",
        )
        .bind(tenant.to_string())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}
