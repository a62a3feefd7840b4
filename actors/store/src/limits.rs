//! Per-tenant limits set by the instance's administrators, and the
//! concurrency slots they bound.

use flowmesh_model::{ExecutionId, ExecutionStatus, TenantId, WorkflowId};
use serde::{Deserialize, Serialize};

use crate::{Error, Slots, Store, Turn, now_ms, parse};

/// How long a start that found no free concurrency slot waits before a
/// claim sweep tries it again. Normally an execution of its tenant ends
/// first and wakes it; this is the safety net.
const SLOT_WAIT_MS: i64 = 30_000;
/// Spread of those retries, so that a tenant's waiting starts do not all
/// come back at once.
const SLOT_WAIT_SPREAD_MS: u128 = 5_000;
/// `executions.slot` of an execution holding a slot, and of one parked,
/// due, and waiting to take one again.
pub(crate) const SLOT_HELD: &str = "held";
const SLOT_WAITING: &str = "waiting";

/// A start that waited for a concurrency slot, woken because an execution
/// of its tenant gave one back: its start command is due now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Woken {
    pub execution: ExecutionId,
    pub workflow: WorkflowId,
}

/// A tenant's own limits; none means the instance default.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
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
        let mut tx = self.pool.begin().await?;
        // A new limit may leave slots free: starts waiting for one are due.
        let now = now_ms();
        sqlx::query(
            "UPDATE executions SET wake_at = $2 WHERE tenant_id = $1 AND owner IS NULL \
             AND (status = 'queued' OR slot = 'waiting') AND wake_at > $2",
        )
        .bind(tenant.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // Counted afresh: the running executions that are not parked hold
        // one each; parked ones take one when they are taken up again.
        sqlx::query(
            "UPDATE executions SET slot = CASE WHEN owner IS NULL THEN NULL ELSE 'held' END \
             WHERE tenant_id = $1 AND status = 'running'",
        )
        .bind(tenant.to_string())
        .execute(&mut *tx)
        .await?;
        let updated = sqlx::query(
            "UPDATE tenants SET rate_limit = $2, max_concurrent = $3, max_payload_bytes = $4, \
             running = (SELECT COUNT(*) FROM executions WHERE tenant_id = $1 AND status = 'running' \
             AND slot = 'held') WHERE id = $1",
        )
        .bind(tenant.to_string())
        .bind(limits.rate_limit)
        .bind(limits.max_concurrent)
        .bind(limits.max_payload_bytes)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // A new limit may leave slots free: starts waiting for one are due.
        let now = now_ms();
        sqlx::query(
            "UPDATE executions SET wake_at = $2 \
             WHERE tenant_id = $1 AND owner IS NULL AND status = 'queued' AND wake_at > $2",
        )
        .bind(tenant.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(updated == 1)
    }

    /// Takes a concurrency slot for a start, or for a parked execution taken
    /// up again, or else leaves the execution waiting for one: unowned, due
    /// again in [`SLOT_WAIT_MS`] unless an execution giving one back wakes
    /// it first. Returns whether it took a slot.
    pub(crate) async fn take_slot_or_wait(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        turn: &Turn<'_>,
        status: ExecutionStatus,
    ) -> Result<bool, Error> {
        let Turn {
            tenant,
            execution,
            owner,
            ..
        } = *turn;
        let instance = match turn.slots {
            Slots::Unlimited => return Ok(true),
            Slots::Limited { instance } => instance,
        };
        let mut taken = Self::take_slot(tx, tenant, instance).await?;
        if !taken {
            // Once the tenant's row is locked, a slot given back meanwhile is
            // seen, and one given back later finds this execution waiting (its
            // giver locks the row first): no wake-up falls between the two.
            sqlx::query(&format!(
                "SELECT running FROM tenants WHERE id = $1 {}",
                self.backend.lock_row()
            ))
            .bind(tenant.to_string())
            .fetch_optional(&mut **tx)
            .await?;
            taken = Self::take_slot(tx, tenant, instance).await?;
        }
        if taken {
            sqlx::query("UPDATE executions SET slot = $2 WHERE id = $1")
                .bind(execution.to_string())
                .bind(SLOT_HELD)
                .execute(&mut **tx)
                .await?;
            return Ok(true);
        }
        let spread = (execution.0.as_u128() % SLOT_WAIT_SPREAD_MS) as i64;
        sqlx::query(
            "UPDATE executions SET owner = NULL, wake_at = $3, in_process_by = NULL, \
             in_process_node = NULL, slot = $4 WHERE id = $1 AND owner = $2 AND status = $5",
        )
        .bind(execution.to_string())
        .bind(owner)
        .bind(now_ms() + SLOT_WAIT_MS + spread)
        .bind(SLOT_WAITING)
        .bind(status.as_str())
        .execute(&mut **tx)
        .await?;
        Ok(taken)
    }

    /// Takes a concurrency slot of the tenant, bounded by its own limit or
    /// else by the instance's; false when all are taken.
    pub(crate) async fn take_slot(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        tenant: TenantId,
        instance: Option<i64>,
    ) -> Result<bool, Error> {
        let taken = sqlx::query(
            "UPDATE tenants SET running = running + 1 WHERE id = $1 \
             AND (COALESCE(max_concurrent, $2) IS NULL OR running < COALESCE(max_concurrent, $2))",
        )
        .bind(tenant.to_string())
        .bind(instance)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        Ok(taken == 1)
    }

    /// Gives back the slot an execution holds, if it holds one: when it
    /// ends, and when it parks.
    pub(crate) async fn give_held_slot(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        tenant: TenantId,
        execution: ExecutionId,
    ) -> Result<Option<Woken>, Error> {
        let held = sqlx::query("UPDATE executions SET slot = NULL WHERE id = $1 AND slot = $2")
            .bind(execution.to_string())
            .bind(SLOT_HELD)
            .execute(&mut **tx)
            .await?
            .rows_affected();
        if held == 0 {
            return Ok(None);
        }
        Self::give_slot(tx, tenant).await
    }

    /// Gives a concurrency slot back and wakes the tenant's oldest start
    /// (or parked execution due again) waiting for one (made due now; the caller sends its start command).
    /// One already woken and not yet started is not woken twice.
    pub(crate) async fn give_slot(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        tenant: TenantId,
    ) -> Result<Option<Woken>, Error> {
        let given =
            sqlx::query("UPDATE tenants SET running = running - 1 WHERE id = $1 AND running > 0")
                .bind(tenant.to_string())
                .execute(&mut **tx)
                .await?
                .rows_affected();
        if given == 0 {
            return Ok(None);
        }
        let woken = sqlx::query(
            "UPDATE executions SET wake_at = $2 WHERE id = (\
             SELECT id FROM executions WHERE tenant_id = $1 AND owner IS NULL \
             AND (status = 'queued' OR slot = 'waiting') AND wake_at > $2 \
             ORDER BY created_at LIMIT 1) \
             RETURNING id, workflow_id",
        )
        .bind(tenant.to_string())
        .bind(now_ms())
        .fetch_optional(&mut **tx)
        .await?;
        woken
            .map(|row| {
                Ok(Woken {
                    execution: parse(&row, "id")?,
                    workflow: parse(&row, "workflow_id")?,
                })
            })
            .transpose()
    }
}
