//! Workflows, their versions and their webhook routes. Every call is scoped
//! by tenant: another tenant's workflow is simply not found.

use flowmesh_model::{TenantId, WorkflowDocument, WorkflowId};
use sqlx::any::AnyRow;

use crate::{
    Error, Publish, Store, Update, Updated, VersionInfo, VersionsQuery, WorkflowRecord,
    WorkflowSummary, int, now_ms, opt_int, opt_text, parse, text,
};

/// What a trigger's route leads to: the tenant its slug names, and the
/// published workflow and version that route, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub tenant: TenantId,
    pub workflow: Option<(WorkflowId, i64)>,
}

const SUMMARY_COLUMNS: &str = "id, name, latest_version, published_version, created_at, updated_at";

fn summary(row: &AnyRow) -> Result<WorkflowSummary, Error> {
    Ok(WorkflowSummary {
        id: parse(row, "id")?,
        name: text(row, "name")?,
        latest_version: int(row, "latest_version")?,
        published_version: opt_int(row, "published_version")?,
        created_at: int(row, "created_at")?,
        updated_at: int(row, "updated_at")?,
    })
}

fn document_text(doc: &WorkflowDocument) -> Result<String, Error> {
    serde_json::to_string(doc).map_err(Error::Document)
}

fn document(row: &AnyRow) -> Result<WorkflowDocument, Error> {
    let text = text(row, "document")?;
    serde_json::from_str(&text).map_err(|e| Error::unreadable("workflow document", e))
}

impl Store {
    pub async fn create_workflow(
        &self,
        tenant: TenantId,
        doc: &WorkflowDocument,
    ) -> Result<WorkflowSummary, Error> {
        let id = WorkflowId::new();
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO workflows (id, tenant_id, name, latest_version, created_at, updated_at) \
             VALUES ($1, $2, $3, 1, $4, $4)",
        )
        .bind(id.to_string())
        .bind(tenant.to_string())
        .bind(&doc.name)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO workflow_versions (workflow_id, version, document, created_at) VALUES ($1, 1, $2, $3)")
            .bind(id.to_string())
            .bind(document_text(doc)?)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(WorkflowSummary {
            id,
            name: doc.name.clone(),
            latest_version: 1,
            published_version: None,
            created_at: now,
            updated_at: now,
        })
    }

    pub async fn list_workflows(&self, tenant: TenantId) -> Result<Vec<WorkflowSummary>, Error> {
        let rows = sqlx::query(&format!(
            "SELECT {SUMMARY_COLUMNS} FROM workflows WHERE tenant_id = $1 AND deleted_at IS NULL ORDER BY id DESC"
        ))
        .bind(tenant.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(summary).collect()
    }

    pub async fn get_workflow(
        &self,
        tenant: TenantId,
        id: WorkflowId,
    ) -> Result<Option<WorkflowRecord>, Error> {
        let row = sqlx::query(
            "SELECT w.id, w.name, w.latest_version, w.published_version, w.created_at, w.updated_at, v.document \
             FROM workflows w JOIN workflow_versions v ON v.workflow_id = w.id AND v.version = w.latest_version \
             WHERE w.id = $1 AND w.tenant_id = $2 AND w.deleted_at IS NULL",
        )
        .bind(id.to_string())
        .bind(tenant.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(WorkflowRecord {
                summary: summary(&row)?,
                document: document(&row)?,
            })
        })
        .transpose()
    }

    /// Adds a draft version; the published version keeps running. With an
    /// expected version, the check and the save are one statement, so of
    /// two edits of the same version only the first is saved.
    pub async fn update_workflow(&self, update: &Update<'_>) -> Result<Updated, Error> {
        let (tenant, id) = (update.tenant, update.workflow);
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(&format!(
            "UPDATE workflows SET latest_version = latest_version + 1, name = $3, updated_at = $4 \
             WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL \
             AND ($5 IS NULL OR latest_version = $5) RETURNING {SUMMARY_COLUMNS}"
        ))
        .bind(id.to_string())
        .bind(tenant.to_string())
        .bind(&update.document.name)
        .bind(now)
        .bind(update.expected)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(match self.get_summary(tenant, id).await? {
                Some(current) => Updated::Stale {
                    latest: current.latest_version,
                },
                None => Updated::NotFound,
            });
        };
        let updated = summary(&row)?;
        sqlx::query("INSERT INTO workflow_versions (workflow_id, version, document, created_at) VALUES ($1, $2, $3, $4)")
            .bind(id.to_string())
            .bind(updated.latest_version)
            .bind(document_text(update.document)?)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Updated::Saved(updated))
    }

    async fn get_summary(
        &self,
        tenant: TenantId,
        id: WorkflowId,
    ) -> Result<Option<WorkflowSummary>, Error> {
        let row = sqlx::query(&format!(
            "SELECT {SUMMARY_COLUMNS} FROM workflows WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL"
        ))
        .bind(id.to_string())
        .bind(tenant.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(summary).transpose()
    }

    /// A page of a workflow's versions, newest first, with the workflow
    /// (none: no such workflow).
    pub async fn workflow_versions(
        &self,
        q: &VersionsQuery,
    ) -> Result<Option<(WorkflowSummary, Vec<VersionInfo>)>, Error> {
        let Some(workflow) = self.get_summary(q.tenant, q.workflow).await? else {
            return Ok(None);
        };
        let rows = sqlx::query(
            "SELECT version, created_at FROM workflow_versions \
             WHERE workflow_id = $1 AND ($2 IS NULL OR version < $2) \
             ORDER BY version DESC LIMIT $3",
        )
        .bind(q.workflow.to_string())
        .bind(q.before)
        .bind(i64::from(q.limit.clamp(1, 500)))
        .fetch_all(&self.pool)
        .await?;
        let versions = rows
            .iter()
            .map(|row| {
                Ok(VersionInfo {
                    version: int(row, "version")?,
                    created_at: int(row, "created_at")?,
                })
            })
            .collect::<Result<_, Error>>()?;
        Ok(Some((workflow, versions)))
    }

    /// One version of a tenant's workflow: the workflow, the version's
    /// document and when it was saved.
    pub async fn tenant_workflow_version(
        &self,
        tenant: TenantId,
        id: WorkflowId,
        version: i64,
    ) -> Result<Option<(WorkflowSummary, WorkflowDocument, i64)>, Error> {
        let row = sqlx::query(
            "SELECT w.id, w.name, w.latest_version, w.published_version, w.created_at, w.updated_at, \
             v.document, v.created_at AS saved_at \
             FROM workflows w JOIN workflow_versions v ON v.workflow_id = w.id AND v.version = $3 \
             WHERE w.id = $1 AND w.tenant_id = $2 AND w.deleted_at IS NULL",
        )
        .bind(id.to_string())
        .bind(tenant.to_string())
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| Ok((summary(&row)?, document(&row)?, int(&row, "saved_at")?)))
            .transpose()
    }

    /// Deletes a workflow (its history stays for the executions that ran it)
    /// and frees its webhook routes.
    pub async fn delete_workflow(&self, tenant: TenantId, id: WorkflowId) -> Result<bool, Error> {
        let mut tx = self.pool.begin().await?;
        let deleted = sqlx::query(
            "UPDATE workflows SET deleted_at = $3 WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL",
        )
        .bind(id.to_string())
        .bind(tenant.to_string())
        .bind(now_ms())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if deleted == 1 {
            clear_triggers(&mut tx, id).await?;
        }
        tx.commit().await?;
        Ok(deleted == 1)
    }

    /// Publishes a version (an earlier one too: a rollback); its webhook
    /// routes and schedules replace those of the version published before.
    pub async fn publish_workflow(
        &self,
        publish: &Publish<'_>,
    ) -> Result<Option<WorkflowSummary>, Error> {
        let (tenant, id) = (publish.tenant, publish.workflow);
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(&format!(
            "UPDATE workflows SET published_version = $4, updated_at = $3 \
             WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL AND latest_version >= $4 \
             RETURNING {SUMMARY_COLUMNS}"
        ))
        .bind(id.to_string())
        .bind(tenant.to_string())
        .bind(now_ms())
        .bind(publish.version)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let summary = summary(&row)?;
        clear_triggers(&mut tx, id).await?;
        for (method, path) in publish.routes {
            let holder = sqlx::query("SELECT workflow_id FROM webhook_routes WHERE tenant_id = $1 AND method = $2 AND path = $3")
                .bind(tenant.to_string())
                .bind(method)
                .bind(path)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(holder) = holder {
                return Err(Error::Conflict(format!(
                    "the webhook {method} /{path} is already served by workflow {}",
                    text(&holder, "workflow_id")?
                )));
            }
            sqlx::query("INSERT INTO webhook_routes (tenant_id, method, path, workflow_id) VALUES ($1, $2, $3, $4)")
                .bind(tenant.to_string())
                .bind(method)
                .bind(path)
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        crate::schedules::insert_schedules(&mut tx, publish).await?;
        tx.commit().await?;
        Ok(Some(summary))
    }

    /// Takes a workflow out of service: no version is published, and its
    /// webhook routes, NATS subjects and schedules are freed. Its versions
    /// and executions stay.
    pub async fn unpublish_workflow(
        &self,
        tenant: TenantId,
        id: WorkflowId,
    ) -> Result<Option<WorkflowSummary>, Error> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(&format!(
            "UPDATE workflows SET published_version = NULL, updated_at = $3 \
             WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL RETURNING {SUMMARY_COLUMNS}"
        ))
        .bind(id.to_string())
        .bind(tenant.to_string())
        .bind(now_ms())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let summary = summary(&row)?;
        clear_triggers(&mut tx, id).await?;
        tx.commit().await?;
        Ok(Some(summary))
    }

    pub async fn workflow_version(
        &self,
        id: WorkflowId,
        version: i64,
    ) -> Result<Option<WorkflowDocument>, Error> {
        let row = sqlx::query(
            "SELECT document FROM workflow_versions WHERE workflow_id = $1 AND version = $2",
        )
        .bind(id.to_string())
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| document(&row)).transpose()
    }

    /// The tenant a slug names and, if it has one, the published workflow
    /// whose trigger routes `method` and `path`: one query, because every
    /// webhook request asks both.
    pub async fn find_route(
        &self,
        slug: &str,
        method: &str,
        path: &str,
    ) -> Result<Option<Route>, Error> {
        let row = sqlx::query(
            "SELECT t.id AS tenant_id, w.id AS workflow_id, w.published_version FROM tenants t \
             LEFT JOIN webhook_routes r ON r.tenant_id = t.id AND r.method = $2 AND r.path = $3 \
             LEFT JOIN workflows w ON w.id = r.workflow_id AND w.deleted_at IS NULL \
             AND w.published_version IS NOT NULL \
             WHERE t.slug = $1",
        )
        .bind(slug)
        .bind(method)
        .bind(path)
        .fetch_optional(self.reader())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let workflow = match opt_text(&row, "workflow_id")? {
            Some(_) => Some((parse(&row, "workflow_id")?, int(&row, "published_version")?)),
            None => None,
        };
        Ok(Some(Route {
            tenant: parse(&row, "tenant_id")?,
            workflow,
        }))
    }
}

/// Frees a workflow's webhook routes (NATS subjects among them) and drops
/// its schedules.
async fn clear_triggers(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: WorkflowId,
) -> Result<(), Error> {
    for table in ["webhook_routes", "schedules"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE workflow_id = $1"))
            .bind(id.to_string())
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
