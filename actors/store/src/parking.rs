//! Parked executions and the resumes sent to them.
//!
//! An execution with nothing to do but wait gives up its owner and keeps
//! only `wake_at`; the claim sweep of any process takes it again when it is
//! due. A resume is a signal row: durable before it is acknowledged, and
//! consumed by the execution in the same transaction as the step it ends.

use flowmesh_model::{ExecutionId, TenantId};

use crate::{Error, Store, json, now_ms, text};

/// A resume waiting to be applied by its execution.
#[derive(Clone, Debug, PartialEq)]
pub struct Signal {
    pub id: String,
    pub node: String,
    pub payload: serde_json::Value,
}

/// A resume to record for an execution of `tenant`.
#[derive(Clone, Debug)]
pub struct NewSignal {
    pub tenant: TenantId,
    pub execution: ExecutionId,
    pub node: String,
    pub payload: serde_json::Value,
}

/// Parks an execution its owner has nothing to do for until `wake_at`
/// (none: until a resume).
#[derive(Clone, Copy, Debug)]
pub struct Park<'a> {
    pub owner: &'a str,
    pub execution: ExecutionId,
    pub wake_at: Option<i64>,
}

impl Store {
    /// Gives up ownership of a waiting execution. Refused (false) when the
    /// writer no longer owns it, or a resume or a cancel arrived meanwhile:
    /// the owner applies that first.
    pub async fn park_execution(&self, park: &Park<'_>) -> Result<bool, Error> {
        let mut tx = self.pool.begin().await?;
        let parked = sqlx::query(
            "UPDATE executions SET owner = NULL, wake_at = $3 \
             WHERE id = $1 AND owner = $2 AND status = 'running' AND cancel_requested = 0 \
             AND NOT EXISTS (SELECT 1 FROM execution_signals WHERE execution_id = $1)",
        )
        .bind(park.execution.to_string())
        .bind(park.owner)
        .bind(park.wake_at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // A resume or a cancel recorded while this update waited for the
        // row passes the checks above, which see the rows of before the
        // wait (PostgreSQL's read committed); a new statement sees it, and
        // the execution then stays with its actor to apply it instead of
        // sleeping past it.
        let pending = sqlx::query(
            "SELECT 1 AS pending FROM executions WHERE id = $1 AND (cancel_requested <> 0 \
             OR EXISTS (SELECT 1 FROM execution_signals WHERE execution_id = $1))",
        )
        .bind(park.execution.to_string())
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
        if parked != 1 || pending {
            tx.rollback().await?;
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Records a resume for a running execution of the tenant, and makes a
    /// parked one due at once. Returns the signal's id, or none when there
    /// is no such running execution.
    pub async fn add_signal(&self, signal: &NewSignal) -> Result<Option<String>, Error> {
        let mut tx = self.pool.begin().await?;
        let now = now_ms();
        let found = sqlx::query(
            "UPDATE executions SET wake_at = CASE WHEN owner IS NULL THEN $3 ELSE wake_at END \
             WHERE id = $1 AND tenant_id = $2 AND status IN ('queued', 'running')",
        )
        .bind(signal.execution.to_string())
        .bind(signal.tenant.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if found != 1 {
            tx.rollback().await?;
            return Ok(None);
        }
        let id = uuid::Uuid::now_v7().to_string();
        sqlx::query(
            "INSERT INTO execution_signals (id, execution_id, node, payload, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&id)
        .bind(signal.execution.to_string())
        .bind(&signal.node)
        .bind(signal.payload.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(id))
    }

    /// The resumes not yet applied to an execution, oldest first.
    pub async fn signals(&self, execution: ExecutionId) -> Result<Vec<Signal>, Error> {
        let rows = sqlx::query(
            "SELECT id, node, payload FROM execution_signals WHERE execution_id = $1 \
             ORDER BY created_at, id",
        )
        .bind(execution.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Signal {
                    id: text(row, "id")?,
                    node: text(row, "node")?,
                    payload: json(row, "payload")?.unwrap_or_default(),
                })
            })
            .collect()
    }
}
