//! The record of execution events: written with the turn that produced
//! them, read back page by page to replay a stream exactly.

use flowmesh_model::{ExecutionEvent, ExecutionId, TenantId};
use futures::TryStreamExt;

use sqlx::any::AnyRow;

use crate::batch::{Batch, Binder};
use crate::{Backend, Error, Store, int, opt_int, text};

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

/// Records a turn's events; returns the position of the first.
pub(crate) async fn record(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    tenant: TenantId,
    events: &[ExecutionEvent],
) -> Result<Option<u64>, Error> {
    let mut batch = Batch::new(backend);
    add_record(&mut batch, backend, tenant, events)?;
    first_position(&batch.run(tx).await?, events.len())
}

/// Adds what records a turn's events; their positions come back as the
/// batch's rows (see [`first_position`]). The tenant's counter row stays
/// locked until the turn commits, so a reader that sees a position sees
/// every lower one committed too.
///
/// The counter and the events take one statement on PostgreSQL (a writing
/// common table expression); SQLite has none, but runs both statements of
/// the batch in one round trip. A recorded event's `position` is its
/// column, set when it is read, so the statement can number the events.
pub(crate) fn add_record(
    batch: &mut Batch,
    backend: Backend,
    tenant: TenantId,
    events: &[ExecutionEvent],
) -> Result<(), Error> {
    if events.is_empty() {
        return Ok(());
    }
    let mut bodies = Vec::with_capacity(events.len());
    for event in events {
        bodies.push(
            serde_json::to_string(event)
                .map_err(|e| Error::Invalid(format!("an event cannot be written as JSON: {e}")))?,
        );
    }
    let count = events.len() as i64;
    let upsert = |b: &mut Binder<'_>| {
        let (tenant, count) = (b.bind(tenant.to_string()), b.bind(count));
        let sql = format!(
            "INSERT INTO event_positions (tenant_id, last_position) VALUES ({tenant}, {count}) \
             ON CONFLICT (tenant_id) DO UPDATE SET last_position = event_positions.last_position + {count}"
        );
        (sql, tenant, count)
    };
    let values = |b: &mut Binder<'_>| {
        let rows: Vec<String> = events
            .iter()
            .zip(&bodies)
            .enumerate()
            .map(|(k, (event, body))| {
                format!(
                    "(CAST({} AS BIGINT), {}, CAST({} AS BIGINT), {})",
                    b.bind(k as i64 + 1),
                    b.bind(event.execution.to_string()),
                    b.bind(event.seq as i64),
                    b.bind(body.clone())
                )
            })
            .collect();
        format!(
            "v (k, execution_id, seq, event) AS (VALUES {})",
            rows.join(", ")
        )
    };
    let insert = |tenant: &str, count: &str| {
        format!(
            "INSERT INTO execution_events (tenant_id, position, execution_id, seq, event) \
             SELECT {tenant}, p.last_position - {count} + v.k, v.execution_id, v.seq, v.event"
        )
    };
    match backend {
        Backend::Sqlite => {
            batch.statement(|b| upsert(b).0);
            batch.statement(|b| {
                let (tenant, count) = (b.bind(tenant.to_string()), b.bind(count));
                format!(
                    "WITH {} {} FROM event_positions p, v WHERE p.tenant_id = {tenant} \
                     RETURNING position",
                    values(b),
                    insert(&tenant, &count)
                )
            });
        }
        Backend::Postgres => batch.statement(|b| {
            let (upsert, tenant, count) = upsert(b);
            format!(
                "WITH p AS ({upsert} RETURNING last_position), {} {} FROM p, v RETURNING position",
                values(b),
                insert(&tenant, &count)
            )
        }),
    }
    Ok(())
}

/// The position of the first of the `recorded` events a batch recorded
/// (its rows are the events' positions); none when it recorded none.
pub(crate) fn first_position(rows: &[AnyRow], recorded: usize) -> Result<Option<u64>, Error> {
    let mut first = None;
    for row in rows {
        let position = int(row, "position")? as u64;
        first = Some(first.map_or(position, |f: u64| f.min(position)));
    }
    if recorded > 0 && first.is_none() {
        return Err(Error::Corrupt("recorded events got no position".into()));
    }
    Ok(first)
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
                "SELECT position, event FROM execution_events WHERE tenant_id = $1 AND position > $2 \
                 ORDER BY position LIMIT $3",
                tenant.to_string(),
            ),
            EventScope::Execution(execution) => (
                "SELECT position, event FROM execution_events WHERE execution_id = $1 AND seq > $2 \
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
        let mut rows = query.fetch(self.reader());
        let (mut page, mut bytes) = (Vec::new(), 0);
        while bytes < PAGE_BYTES
            && let Some(row) = rows.try_next().await?
        {
            let body = text(&row, "event")?;
            bytes += body.len();
            let mut event: ExecutionEvent = serde_json::from_str(&body)
                .map_err(|e| Error::unreadable("a recorded event", e))?;
            event.position = int(&row, "position")? as u64;
            page.push(event);
        }
        Ok(page)
    }

    /// The position of the tenant's newest event (0 before the first).
    pub async fn last_event_position(&self, tenant: TenantId) -> Result<u64, Error> {
        let row = sqlx::query("SELECT last_position FROM event_positions WHERE tenant_id = $1")
            .bind(tenant.to_string())
            .fetch_optional(self.reader())
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
        .fetch_optional(self.reader())
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
                .fetch_one(self.reader())
                .await?;
        Ok(opt_int(&row, "seq")?.unwrap_or(0) as u64)
    }
}
