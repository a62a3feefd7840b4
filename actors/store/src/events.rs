//! The record of execution events: written with the turn that produced
//! them, read back page by page to replay a stream exactly.

use flowmesh_model::{ExecutionEvent, ExecutionId, TenantId};
use futures::TryStreamExt;

use crate::{Error, Store, int, opt_int, text};

/// Most events one page of a replay holds.
pub const EVENT_PAGE: usize = 100;
/// A page ends once it holds this many bytes of events (at least one event),
/// so that a page of large node outputs stays small too.
const PAGE_BYTES: usize = 1024 * 1024;

/// Which events a replay reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventScope {
    /// Every event of the tenant, by position.
    Tenant,
    /// One execution's events, by `seq`.
    Execution(ExecutionId),
}

/// Where a tenant's stream stands, for a reader that resumes at `position`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resume {
    /// The position is 0, or one of the tenant's recorded events.
    Known,
    /// No event had this position yet: the newest is `last`.
    Future { last: u64 },
    /// The event at this position was purged with its execution.
    Purged,
}

/// Columns of one recorded event.
const EVENT_COLUMNS: usize = 5;

/// Records a turn's events; returns the position of the first. The
/// tenant's counter row stays locked until the turn commits, so a reader
/// that sees a position sees every lower one committed too.
pub(crate) async fn record(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tenant: TenantId,
    events: &[ExecutionEvent],
) -> Result<Option<u64>, Error> {
    if events.is_empty() {
        return Ok(None);
    }
    let count = events.len() as i64;
    let row = sqlx::query(
        "INSERT INTO event_positions (tenant_id, last_position) VALUES ($1, $2) \
         ON CONFLICT (tenant_id) DO UPDATE SET last_position = event_positions.last_position + $2 \
         RETURNING last_position",
    )
    .bind(tenant.to_string())
    .bind(count)
    .fetch_one(&mut **tx)
    .await?;
    let first = int(&row, "last_position")? - count + 1;
    // One statement for the turn's events: a round trip each would cost
    // the store's one connection (SQLite) most of a turn's time.
    let rows: Vec<String> = (0..events.len())
        .map(|r| {
            let at = r * EVENT_COLUMNS;
            format!(
                "(${}, ${}, ${}, ${}, ${})",
                at + 1,
                at + 2,
                at + 3,
                at + 4,
                at + 5
            )
        })
        .collect();
    let sql = format!(
        "INSERT INTO execution_events (tenant_id, position, execution_id, seq, event) VALUES {}",
        rows.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for (i, event) in events.iter().enumerate() {
        let position = first + i as i64;
        let mut recorded = event.clone();
        recorded.position = position as u64;
        let body = serde_json::to_string(&recorded)
            .map_err(|e| Error::Invalid(format!("an event cannot be written as JSON: {e}")))?;
        query = query
            .bind(tenant.to_string())
            .bind(position)
            .bind(event.execution.to_string())
            .bind(event.seq as i64)
            .bind(body);
    }
    query.execute(&mut **tx).await?;
    Ok(Some(first as u64))
}

impl Store {
    /// Recorded events after `after` (a position, or a `seq` for one
    /// execution), oldest first: at most [`EVENT_PAGE`] of them, fewer
    /// when they are large.
    pub async fn events_after(
        &self,
        tenant: TenantId,
        scope: EventScope,
        after: u64,
    ) -> Result<Vec<ExecutionEvent>, Error> {
        let (sql, key) = match scope {
            EventScope::Tenant => (
                "SELECT event FROM execution_events WHERE tenant_id = $1 AND position > $2 \
                 ORDER BY position LIMIT $3",
                tenant.to_string(),
            ),
            EventScope::Execution(execution) => (
                "SELECT event FROM execution_events WHERE execution_id = $1 AND seq > $2 \
                 AND tenant_id = $4 ORDER BY seq LIMIT $3",
                execution.to_string(),
            ),
        };
        let mut query = sqlx::query(sql)
            .bind(key)
            .bind(after as i64)
            .bind(EVENT_PAGE as i64);
        if let EventScope::Execution(_) = scope {
            query = query.bind(tenant.to_string());
        }
        let mut rows = query.fetch(&self.pool);
        let (mut page, mut bytes) = (Vec::new(), 0);
        while bytes < PAGE_BYTES
            && let Some(row) = rows.try_next().await?
        {
            let body = text(&row, "event")?;
            bytes += body.len();
            page.push(
                serde_json::from_str(&body)
                    .map_err(|e| Error::unreadable("a recorded event", e))?,
            );
        }
        Ok(page)
    }

    /// The position of the tenant's newest event (0 before the first).
    pub async fn last_event_position(&self, tenant: TenantId) -> Result<u64, Error> {
        let row = sqlx::query("SELECT last_position FROM event_positions WHERE tenant_id = $1")
            .bind(tenant.to_string())
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => int(&row, "last_position")? as u64,
            None => 0,
        })
    }

    /// Whether a reader may resume the tenant's stream after `position`.
    pub async fn resume_at(&self, tenant: TenantId, position: u64) -> Result<Resume, Error> {
        let last = self.last_event_position(tenant).await?;
        if position > last {
            return Ok(Resume::Future { last });
        }
        if position == 0 {
            return Ok(Resume::Known);
        }
        let found = sqlx::query(
            "SELECT 1 AS found FROM execution_events WHERE tenant_id = $1 AND position = $2",
        )
        .bind(tenant.to_string())
        .bind(position as i64)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match found {
            Some(_) => Resume::Known,
            None => Resume::Purged,
        })
    }

    /// The `seq` of an execution's newest recorded event (0 before the first).
    pub async fn last_event_seq(&self, execution: ExecutionId) -> Result<u64, Error> {
        let row =
            sqlx::query("SELECT MAX(seq) AS seq FROM execution_events WHERE execution_id = $1")
                .bind(execution.to_string())
                .fetch_one(&self.pool)
                .await?;
        Ok(opt_int(&row, "seq")?.unwrap_or(0) as u64)
    }
}
