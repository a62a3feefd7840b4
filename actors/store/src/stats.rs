//! Execution statistics of one workflow.

use std::collections::HashMap;

use flowmesh_model::{ExecutionId, ExecutionStatus, TenantId, WorkflowId};

use crate::{Error, Store, int, opt_int, parse};

/// Counts by status, recent durations and the latest run of a workflow.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkflowStats {
    pub counts: Vec<(ExecutionStatus, i64)>,
    /// Durations (ms, from start to end) of the most recent finished runs.
    pub durations_ms: Vec<i64>,
    pub last: Option<LastRun>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LastRun {
    pub id: ExecutionId,
    pub status: ExecutionStatus,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

impl Store {
    /// Statistics of a workflow's executions; durations over the latest
    /// `sample` finished runs.
    pub async fn workflow_stats(
        &self,
        tenant: TenantId,
        workflow: WorkflowId,
        sample: u32,
    ) -> Result<WorkflowStats, Error> {
        let (t, w) = (tenant.to_string(), workflow.to_string());
        let counts = sqlx::query(
            "SELECT status, COUNT(*) AS n FROM executions \
             WHERE tenant_id = $1 AND workflow_id = $2 GROUP BY status",
        )
        .bind(&t)
        .bind(&w)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| Ok((parse(row, "status")?, int(row, "n")?)))
        .collect::<Result<Vec<_>, Error>>()?;
        let durations_ms = sqlx::query(
            "SELECT finished_at - COALESCE(started_at, created_at) AS took FROM executions \
             WHERE tenant_id = $1 AND workflow_id = $2 AND finished_at IS NOT NULL \
             ORDER BY finished_at DESC LIMIT $3",
        )
        .bind(&t)
        .bind(&w)
        .bind(i64::from(sample))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| int(row, "took"))
        .collect::<Result<Vec<_>, Error>>()?;
        let last = sqlx::query(
            "SELECT id, status, created_at, finished_at FROM executions \
             WHERE tenant_id = $1 AND workflow_id = $2 ORDER BY created_at DESC, id DESC LIMIT 1",
        )
        .bind(&t)
        .bind(&w)
        .fetch_optional(&self.pool)
        .await?
        .map(|row| {
            Ok::<_, Error>(LastRun {
                id: parse(&row, "id")?,
                status: parse(&row, "status")?,
                created_at: int(&row, "created_at")?,
                finished_at: opt_int(&row, "finished_at")?,
            })
        })
        .transpose()?;
        Ok(WorkflowStats {
            counts,
            durations_ms,
            last,
        })
    }
}

impl Store {
    /// Statistics of every workflow of a tenant with executions, in three
    /// statements whatever their number; durations over the tenant's latest
    /// `sample` finished runs.
    pub async fn tenant_workflow_stats(
        &self,
        tenant: TenantId,
        sample: u32,
    ) -> Result<HashMap<WorkflowId, WorkflowStats>, Error> {
        let t = tenant.to_string();
        let mut all: HashMap<WorkflowId, WorkflowStats> = HashMap::new();
        let counts = sqlx::query(
            "SELECT workflow_id, status, COUNT(*) AS n FROM executions \
             WHERE tenant_id = $1 GROUP BY workflow_id, status",
        )
        .bind(&t)
        .fetch_all(self.reader())
        .await?;
        for row in &counts {
            let w: WorkflowId = parse(row, "workflow_id")?;
            let count = (parse(row, "status")?, int(row, "n")?);
            entry(&mut all, w).counts.push(count);
        }
        let durations = sqlx::query(
            "SELECT workflow_id, finished_at - COALESCE(started_at, created_at) AS took \
             FROM executions WHERE tenant_id = $1 AND finished_at IS NOT NULL \
             ORDER BY finished_at DESC LIMIT $2",
        )
        .bind(&t)
        .bind(i64::from(sample))
        .fetch_all(self.reader())
        .await?;
        for row in &durations {
            let w: WorkflowId = parse(row, "workflow_id")?;
            let took = int(row, "took")?;
            entry(&mut all, w).durations_ms.push(took);
        }
        let last = sqlx::query(
            "SELECT e.workflow_id, e.id, e.status, e.created_at, e.finished_at FROM executions e \
             JOIN (SELECT workflow_id, MAX(created_at) AS at FROM executions \
                   WHERE tenant_id = $1 GROUP BY workflow_id) m \
             ON m.workflow_id = e.workflow_id AND m.at = e.created_at \
             WHERE e.tenant_id = $1",
        )
        .bind(&t)
        .fetch_all(self.reader())
        .await?;
        for row in &last {
            let w: WorkflowId = parse(row, "workflow_id")?;
            let run = LastRun {
                id: parse(row, "id")?,
                status: parse(row, "status")?,
                created_at: int(row, "created_at")?,
                finished_at: opt_int(row, "finished_at")?,
            };
            let stats = entry(&mut all, w);
            // Runs created in the same millisecond: the latest id wins, as
            // for one workflow's statistics.
            if stats.last.as_ref().is_none_or(|l| l.id < run.id) {
                stats.last = Some(run);
            }
        }
        Ok(all)
    }
}

/// How many unfinished executions one workflow of one tenant has in a status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unfinished {
    pub tenant: TenantId,
    pub workflow: WorkflowId,
    pub status: ExecutionStatus,
    pub count: i64,
}

impl Store {
    /// Unfinished executions (queued, or running: parked ones included) by
    /// tenant, workflow and status.
    pub async fn unfinished(&self) -> Result<Vec<Unfinished>, Error> {
        sqlx::query(
            "SELECT tenant_id, workflow_id, status, COUNT(*) AS n FROM executions \
             WHERE status IN ('queued', 'running') GROUP BY tenant_id, workflow_id, status",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(Unfinished {
                tenant: parse(row, "tenant_id")?,
                workflow: parse(row, "workflow_id")?,
                status: parse(row, "status")?,
                count: int(row, "n")?,
            })
        })
        .collect()
    }
}

fn entry(all: &mut HashMap<WorkflowId, WorkflowStats>, w: WorkflowId) -> &mut WorkflowStats {
    all.entry(w).or_default()
}
