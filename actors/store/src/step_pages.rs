//! Part of an execution's journal: a loop of many items holds thousands of
//! steps, so a reader picks the keys it wants and loads only those.

use flowmesh_model::{ExecutionId, TenantId};

use crate::executions::{execution, step};
use crate::{Error, ExecutionRecord, StepRecord, Store, text};

/// Keys per `IN (...)` list, well under what either database binds.
const KEYS_PER_STATEMENT: usize = 500;

impl Store {
    /// An execution of the tenant without its steps.
    pub async fn execution_head(
        &self,
        tenant: TenantId,
        id: ExecutionId,
    ) -> Result<Option<ExecutionRecord>, Error> {
        let row = sqlx::query("SELECT * FROM executions WHERE id = $1 AND tenant_id = $2")
            .bind(id.to_string())
            .bind(tenant.to_string())
            .fetch_optional(self.reader())
            .await?;
        row.map(|row| execution(&row, Vec::new())).transpose()
    }

    /// The key of every step an execution has journaled.
    pub async fn step_keys(&self, id: ExecutionId) -> Result<Vec<String>, Error> {
        let rows = sqlx::query("SELECT node FROM steps WHERE execution_id = $1")
            .bind(id.to_string())
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(|row| text(row, "node")).collect()
    }

    /// The steps of an execution with these keys, in the order they
    /// started (those not started last).
    pub async fn steps_named(
        &self,
        id: ExecutionId,
        keys: &[String],
    ) -> Result<Vec<StepRecord>, Error> {
        let mut steps = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(KEYS_PER_STATEMENT) {
            let list: Vec<String> = (0..chunk.len()).map(|n| format!("${}", n + 2)).collect();
            let sql = format!(
                "SELECT * FROM steps WHERE execution_id = $1 AND node IN ({})",
                list.join(", ")
            );
            let mut query = sqlx::query(&sql).bind(id.to_string());
            for key in chunk {
                query = query.bind(key);
            }
            for row in query.fetch_all(self.reader()).await? {
                steps.push(step(&row)?);
            }
        }
        steps.sort_by(|a, b| {
            (a.started_at.is_none(), a.started_at, &a.node).cmp(&(
                b.started_at.is_none(),
                b.started_at,
                &b.node,
            ))
        });
        self.resolve_blobs(id, &mut steps).await?;
        Ok(steps)
    }
}
