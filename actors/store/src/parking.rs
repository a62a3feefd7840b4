//! Parked executions and the resumes sent to them.
//!
//! An execution with nothing to do but wait gives up its owner and keeps
//! only `wake_at`; the claim sweep of any process takes it again when it is
//! due. A resume is a signal row: durable before it is acknowledged, and
//! consumed by the execution in the same transaction as the step it ends.

use flowmesh_model::{ExecutionId, TenantId};

use crate::{Error, Store, Woken, json, now_ms, opt_text, text};

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
    /// The resume's own idempotency key: a repeat with it is the same resume.
    pub idempotency_key: Option<String>,
}

/// What became of a resume sent to a waiting node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignalAdded {
    /// Recorded (the signal's id): the first resume of this wait.
    Recorded(String),
    /// The same resume (same payload or key) was recorded before (its id).
    Repeated(String),
    /// Another resume of this wait was recorded first.
    Taken,
    /// The node no longer waits (a resume was applied, or it timed out).
    NotWaiting,
}

/// Parks an execution its owner has nothing to do for until `wake_at`
/// (none: until a resume).
#[derive(Clone, Copy, Debug)]
pub struct Park<'a> {
    pub owner: &'a str,
    pub tenant: TenantId,
    pub execution: ExecutionId,
    pub wake_at: Option<i64>,
}

/// What became of a park.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parked {
    /// Parked; `woke`: the slot it gave back woke this start, due now.
    Parked {
        woke: Option<Woken>,
    },
    Refused,
}

/// Records a child's end for its parent's waiting step, in the child's
/// ending turn, and makes a parked parent due. Returns whether it was
/// recorded (the step still waits, and had no signal yet).
/// The signal's id is the child's: one end per child.
pub(crate) async fn tell_parent(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    signal: &NewSignal,
    id: &str,
) -> Result<bool, Error> {
    let now = now_ms();
    let inserted = sqlx::query(
        "INSERT INTO execution_signals (id, execution_id, node, payload, created_at, idempotency_key) \
         SELECT $1, $2, $3, $4, CAST($5 AS BIGINT), NULL WHERE EXISTS (SELECT 1 FROM steps \
         WHERE execution_id = $2 AND node = $3 AND status = 'waiting') \
         ON CONFLICT (execution_id, node) DO NOTHING",
    )
    .bind(id)
    .bind(signal.execution.to_string())
    .bind(&signal.node)
    .bind(signal.payload.to_string())
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if inserted == 1 {
        sqlx::query(
            "UPDATE executions SET wake_at = CASE WHEN owner IS NULL THEN $3 ELSE wake_at END \
             WHERE id = $1 AND tenant_id = $2 AND status IN ('queued', 'running')",
        )
        .bind(signal.execution.to_string())
        .bind(signal.tenant.to_string())
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(inserted == 1)
}

impl Store {
    /// Gives up ownership of a waiting execution, and the concurrency slot
    /// it holds (waking a start waiting for one). Refused when the writer
    /// no longer owns it, or a resume or a cancel arrived meanwhile: the
    /// owner applies that first.
    pub async fn park_execution(&self, park: &Park<'_>) -> Result<Parked, Error> {
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
            return Ok(Parked::Refused);
        }
        let woke = Self::give_held_slot(&mut tx, park.tenant, park.execution).await?;
        tx.commit().await?;
        Ok(Parked::Parked { woke })
    }

    /// Records a resume for a running execution of the tenant whose node
    /// waits, and makes a parked one due at once. A node's wait takes one
    /// resume: the first recorded wins. None when there is no such running
    /// execution.
    pub async fn add_signal(&self, signal: &NewSignal) -> Result<Option<SignalAdded>, Error> {
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
        let payload = signal.payload.to_string();
        let inserted = sqlx::query(
            "INSERT INTO execution_signals (id, execution_id, node, payload, created_at, idempotency_key) \
             SELECT $1, $2, $3, $4, CAST($5 AS BIGINT), $6 WHERE EXISTS (SELECT 1 FROM steps \
             WHERE execution_id = $2 AND node = $3 AND status = 'waiting') \
             ON CONFLICT (execution_id, node) DO NOTHING",
        )
        .bind(&id)
        .bind(signal.execution.to_string())
        .bind(&signal.node)
        .bind(&payload)
        .bind(now)
        .bind(&signal.idempotency_key)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 1 {
            tx.commit().await?;
            return Ok(Some(SignalAdded::Recorded(id)));
        }
        let first = sqlx::query(
            "SELECT id, payload, idempotency_key FROM execution_signals \
             WHERE execution_id = $1 AND node = $2",
        )
        .bind(signal.execution.to_string())
        .bind(&signal.node)
        .fetch_optional(&mut *tx)
        .await?;
        tx.rollback().await?;
        // The execution's row, locked above, serialises this with the turn
        // that applies a resume: no row here means that turn is in.
        let Some(first) = first else {
            return Ok(Some(SignalAdded::NotWaiting));
        };
        let same_key = signal.idempotency_key.is_some()
            && opt_text(&first, "idempotency_key")? == signal.idempotency_key;
        let same_payload = json(&first, "payload")? == Some(signal.payload.clone());
        Ok(Some(if same_key || same_payload {
            SignalAdded::Repeated(text(&first, "id")?)
        } else {
            SignalAdded::Taken
        }))
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
