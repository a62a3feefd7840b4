//! The audit log: who changed what, when, from where, and how it ended.

use flowmesh_model::TenantId;
use serde::Serialize;
use sqlx::any::AnyRow;

use crate::{Error, Store, int, opt_text, text};

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct AuditRecord {
    pub id: String,
    pub at: i64,
    /// `user:{id}`, `key:{id}`, or `anonymous` (a login or registration).
    pub actor: String,
    /// What was done, such as `workflow.publish`.
    pub action: String,
    /// The id of what it was done to, when there is one.
    pub target: Option<String>,
    /// The client's address.
    pub source: Option<String>,
    /// `ok`, or the error code of the refusal.
    pub outcome: String,
    /// The HTTP status of the answer.
    pub status: i64,
}

#[derive(Clone, Debug, Default)]
pub struct AuditQuery {
    pub actor: Option<String>,
    /// An action, or an action prefix ending in `.` (such as `workflow.`).
    pub action: Option<String>,
    pub outcome: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// Newest first; the last id of the previous page.
    pub before: Option<String>,
    pub limit: u32,
}

fn record(row: &AnyRow) -> Result<AuditRecord, Error> {
    Ok(AuditRecord {
        id: text(row, "id")?,
        at: int(row, "at")?,
        actor: text(row, "actor")?,
        action: text(row, "action")?,
        target: opt_text(row, "target")?,
        source: opt_text(row, "source")?,
        outcome: text(row, "outcome")?,
        status: int(row, "status")?,
    })
}

impl Store {
    pub async fn audit(&self, tenant: TenantId, r: &AuditRecord) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO audit_log (id, tenant_id, at, actor, action, target, source, outcome, status) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&r.id)
        .bind(tenant.to_string())
        .bind(r.at)
        .bind(&r.actor)
        .bind(&r.action)
        .bind(&r.target)
        .bind(&r.source)
        .bind(&r.outcome)
        .bind(r.status)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn audit_log(
        &self,
        tenant: TenantId,
        q: &AuditQuery,
    ) -> Result<Vec<AuditRecord>, Error> {
        let (action_exact, action_prefix) = match &q.action {
            Some(a) if a.ends_with('.') => (None, Some(format!("{a}%"))),
            Some(a) => (Some(a.clone()), None),
            None => (None, None),
        };
        let rows = sqlx::query(
            "SELECT id, at, actor, action, target, source, outcome, status FROM audit_log \
             WHERE tenant_id = $1 AND ($2 IS NULL OR actor = $2) AND ($3 IS NULL OR action = $3) \
             AND ($4 IS NULL OR action LIKE $4) AND ($5 IS NULL OR outcome = $5) \
             AND ($6 IS NULL OR at >= $6) AND ($7 IS NULL OR at < $7) AND ($8 IS NULL OR id < $8) \
             ORDER BY id DESC LIMIT $9",
        )
        .bind(tenant.to_string())
        .bind(&q.actor)
        .bind(action_exact)
        .bind(action_prefix)
        .bind(&q.outcome)
        .bind(q.since)
        .bind(q.until)
        .bind(&q.before)
        .bind(i64::from(q.limit.clamp(1, 500)))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record).collect()
    }
}
