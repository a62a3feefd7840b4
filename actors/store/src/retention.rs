//! How long execution data is kept, per tenant, and the purge that enforces
//! it in bounded batches.

use flowmesh_model::{ExecutionId, TenantId};

use crate::limits::TenantLimits;
use crate::{Backend, Error, Store, now_ms, opt_int, parse, text};

/// Finished executions are kept this long unless the tenant says otherwise.
pub const DEFAULT_RETENTION_MS: i64 = 30 * 24 * 3_600_000;
/// Largest output of one node, unless the tenant says otherwise.
pub const DEFAULT_MAX_OUTPUT_BYTES: i64 = 8 * 1024 * 1024;

/// A tenant's limits on its execution data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TenantSettings {
    /// How long finished executions (and their logs) are kept, in ms.
    pub retention_ms: i64,
    /// Largest output one node may produce, in bytes of JSON.
    pub max_output_bytes: i64,
    /// Limits the instance's administrators set for the tenant.
    pub limits: TenantLimits,
}

impl Default for TenantSettings {
    fn default() -> Self {
        Self {
            retention_ms: DEFAULT_RETENTION_MS,
            max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
            limits: TenantLimits::default(),
        }
    }
}

/// A change to a tenant's settings. Each field: `None` keeps it,
/// `Some(None)` resets it to its default, `Some(Some(v))` sets it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SettingsChange {
    pub retention_ms: Option<Option<i64>>,
    pub max_output_bytes: Option<Option<i64>>,
}

fn bind_ids<'q>(
    sql: &'q str,
    ids: &'q [String],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    ids.iter().fold(sqlx::query(sql), |q, id| q.bind(id))
}

impl Store {
    pub async fn tenant_settings(&self, tenant: TenantId) -> Result<Option<TenantSettings>, Error> {
        let row = sqlx::query(
            "SELECT retention_ms, max_output_bytes, rate_limit, max_concurrent, max_payload_bytes \
             FROM tenants WHERE id = $1",
        )
        .bind(tenant.to_string())
        .fetch_optional(self.reader())
        .await?;
        row.map(|row| {
            Ok(TenantSettings {
                retention_ms: opt_int(&row, "retention_ms")?.unwrap_or(DEFAULT_RETENTION_MS),
                max_output_bytes: opt_int(&row, "max_output_bytes")?
                    .unwrap_or(DEFAULT_MAX_OUTPUT_BYTES),
                limits: TenantLimits {
                    rate_limit: opt_int(&row, "rate_limit")?,
                    max_concurrent: opt_int(&row, "max_concurrent")?,
                    max_payload_bytes: opt_int(&row, "max_payload_bytes")?,
                },
            })
        })
        .transpose()
    }

    /// Changes the fields a change names, in one statement, so changes of
    /// different fields made at once both stay; false when there is no
    /// such tenant.
    pub async fn set_tenant_settings(
        &self,
        tenant: TenantId,
        change: &SettingsChange,
    ) -> Result<bool, Error> {
        // A NULL column is the default.
        let mut sets = vec!["id = id".to_owned()];
        let mut values = Vec::new();
        for (column, field) in [
            ("retention_ms", change.retention_ms),
            ("max_output_bytes", change.max_output_bytes),
        ] {
            if let Some(value) = field {
                values.push(value);
                sets.push(format!("{column} = ${}", values.len() + 1));
            }
        }
        let sql = format!("UPDATE tenants SET {} WHERE id = $1", sets.join(", "));
        let query = values
            .into_iter()
            .fold(sqlx::query(&sql).bind(tenant.to_string()), |q, v| q.bind(v));
        let updated = query.execute(&self.pool).await?.rows_affected();
        Ok(updated == 1)
    }

    /// Deletes up to `batch` finished executions past their tenant's
    /// retention, with their journal, resumes, recorded events and blob
    /// links, and the blobs no step refers to any more; one transaction. Returns how many
    /// executions went.
    pub async fn purge_expired(&self, batch: u32) -> Result<usize, Error> {
        let mut tx = self.pool.begin().await?;
        let ids: Vec<ExecutionId> = sqlx::query(
            "SELECT e.id FROM executions e JOIN tenants t ON t.id = e.tenant_id \
             WHERE e.finished_at IS NOT NULL \
             AND e.finished_at < $1 - COALESCE(t.retention_ms, $2) LIMIT $3",
        )
        .bind(now_ms())
        .bind(DEFAULT_RETENTION_MS)
        .bind(i64::from(batch))
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|row| parse(row, "id"))
        .collect::<Result<_, _>>()?;
        if ids.is_empty() {
            tx.rollback().await?;
            return Ok(0);
        }
        let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
        let list: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
        let list = list.join(", ");
        let select = format!(
            "SELECT DISTINCT tenant_id, hash FROM step_blobs WHERE execution_id IN ({list})"
        );
        let blobs: Vec<(String, String)> = bind_ids(&select, &ids)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| Ok::<_, Error>((text(row, "tenant_id")?, text(row, "hash")?)))
            .collect::<Result<_, _>>()?;
        for table in [
            "step_blobs",
            "steps",
            "execution_signals",
            "execution_events",
        ] {
            let delete = format!("DELETE FROM {table} WHERE execution_id IN ({list})");
            bind_ids(&delete, &ids).execute(&mut *tx).await?;
        }
        let delete = format!("DELETE FROM executions WHERE id IN ({list})");
        bind_ids(&delete, &ids).execute(&mut *tx).await?;
        for (tenant, hash) in blobs {
            sqlx::query(
                "DELETE FROM blobs WHERE tenant_id = $1 AND hash = $2 AND NOT EXISTS \
                 (SELECT 1 FROM step_blobs sb WHERE sb.tenant_id = $1 AND sb.hash = $2)",
            )
            .bind(tenant)
            .bind(hash)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(ids.len())
    }

    /// Gives the space of purged rows back: SQLite returns free pages to
    /// the file system, PostgreSQL vacuums the tables the purge touches.
    pub async fn reclaim_space(&self) -> Result<(), Error> {
        let sql = match self.backend {
            Backend::Sqlite => "PRAGMA incremental_vacuum",
            Backend::Postgres => {
                "VACUUM executions, steps, step_blobs, blobs, execution_signals, execution_events"
            }
        };
        sqlx::query(sql).execute(&self.pool).await?;
        Ok(())
    }
}
