//! Schedule triggers of published workflows: one row per trigger with its
//! next tick. Every process looks for due rows; the one whose
//! compare-and-set moves a row on creates that tick's execution in the
//! same transaction, so each tick fires once across all processes.

use flowmesh_model::{TenantId, WorkflowId};

use crate::{Error, NewExecution, Publish, Store, int, parse, text};

/// A schedule trigger as publishing records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewSchedule {
    pub node: String,
    pub cron: String,
    pub timezone: String,
    pub missed: String,
    /// The first tick (ms since the Unix epoch).
    pub next_at: i64,
}

/// A schedule whose tick has come.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueSchedule {
    pub workflow: WorkflowId,
    pub tenant: TenantId,
    pub node: String,
    /// The published version it starts.
    pub version: i64,
    pub cron: String,
    pub timezone: String,
    pub missed: String,
    pub next_at: i64,
}

/// Moves a due schedule to `next_at`, creating `execution` for the tick
/// that came (none: the tick is skipped).
#[derive(Clone, Copy, Debug)]
pub struct Fire<'a> {
    pub schedule: &'a DueSchedule,
    pub next_at: i64,
    pub execution: Option<&'a NewExecution>,
}

impl Store {
    /// Schedules due at `now`, taken round robin by tenant: every tenant's
    /// earliest due schedule comes before any tenant's second, so one
    /// tenant's many due schedules cannot hold back another's.
    pub async fn due_schedules(&self, now: i64, limit: u32) -> Result<Vec<DueSchedule>, Error> {
        let rows = sqlx::query(
            "SELECT * FROM (\
                SELECT s.*, row_number() OVER (PARTITION BY tenant_id ORDER BY next_at) AS turn \
                FROM schedules s WHERE next_at <= $1\
             ) due ORDER BY turn, next_at LIMIT $2",
        )
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(DueSchedule {
                    workflow: parse(row, "workflow_id")?,
                    tenant: parse(row, "tenant_id")?,
                    node: text(row, "node")?,
                    version: int(row, "version")?,
                    cron: text(row, "cron")?,
                    timezone: text(row, "timezone")?,
                    missed: text(row, "missed")?,
                    next_at: int(row, "next_at")?,
                })
            })
            .collect()
    }

    /// Schedule triggers of the tenant's published workflows, apart from
    /// `except`'s (the workflow being published again).
    pub async fn count_schedules(
        &self,
        tenant: TenantId,
        except: WorkflowId,
    ) -> Result<u64, Error> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM schedules WHERE tenant_id = $1 AND workflow_id <> $2",
        )
        .bind(tenant.to_string())
        .bind(except.to_string())
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(int(&row, "n")?).unwrap_or(0))
    }

    /// Fires a due schedule if no other process did first: returns whether
    /// this call moved it (and created the execution, if any).
    pub async fn fire_schedule(&self, fire: &Fire<'_>) -> Result<bool, Error> {
        let due = fire.schedule;
        let mut tx = self.pool.begin().await?;
        let moved = sqlx::query(
            "UPDATE schedules SET next_at = $4 WHERE workflow_id = $1 AND node = $2 AND next_at = $3",
        )
        .bind(due.workflow.to_string())
        .bind(&due.node)
        .bind(due.next_at)
        .bind(fire.next_at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if moved != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        if let Some(new) = fire.execution {
            crate::accept::insert_execution(&mut *tx, new, None, crate::now_ms()).await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}

/// Records the schedules of a workflow being published (those of the
/// version published before are already dropped).
pub(crate) async fn insert_schedules(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    publish: &Publish<'_>,
) -> Result<(), Error> {
    let (tenant, workflow) = (publish.tenant, publish.workflow);
    for s in publish.schedules {
        sqlx::query(
            "INSERT INTO schedules (workflow_id, node, tenant_id, version, cron, timezone, missed, next_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(workflow.to_string())
        .bind(&s.node)
        .bind(tenant.to_string())
        .bind(publish.version)
        .bind(&s.cron)
        .bind(&s.timezone)
        .bind(&s.missed)
        .bind(s.next_at)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
