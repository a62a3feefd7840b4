//! A workflow's lifecycle: saving versions (optionally only over the
//! version the edit was made on), reading them, publishing one (an earlier
//! one too: a rollback) and taking the workflow out of service.

use flowmesh_model::{TenantId, WorkflowDocument, WorkflowId};
use flowmesh_store::{
    Publish, Update, Updated, VersionInfo, VersionsQuery, WorkflowSummary, now_ms,
};

use crate::api::EngineHandle;
use crate::error::Error;

/// Saving a new version of a workflow from a request body.
#[derive(Clone, Copy, Debug)]
pub struct SaveRequest<'a> {
    pub tenant: TenantId,
    pub workflow: WorkflowId,
    pub body: &'a [u8],
    /// The version the edit was made on (`If-Match`), if the caller said.
    pub expected: Option<i64>,
}

/// One version of a workflow and its document.
#[derive(Clone, Debug)]
pub struct VersionRecord {
    pub workflow: WorkflowSummary,
    pub version: i64,
    pub created_at: i64,
    pub document: WorkflowDocument,
}

impl EngineHandle {
    pub async fn update_workflow(&self, save: SaveRequest<'_>) -> Result<WorkflowSummary, Error> {
        let document = self.check_document(save.tenant, save.body).await?;
        let update = Update {
            tenant: save.tenant,
            workflow: save.workflow,
            document: &document,
            expected: save.expected,
        };
        match self.shared.store.update_workflow(&update).await? {
            Updated::Saved(summary) => Ok(summary),
            Updated::NotFound => Err(Error::NotFound("workflow")),
            Updated::Stale { latest } => Err(Error::Stale(format!(
                "the edit was made on version {}, but version {latest} was saved since; \
                 read the workflow again and redo the edit on version {latest}",
                save.expected.unwrap_or_default()
            ))),
        }
    }

    /// Publishes a version (the latest when none is named); its webhook,
    /// NATS and schedule triggers replace those of the version published
    /// before.
    pub async fn publish_workflow(
        &self,
        tenant: TenantId,
        id: WorkflowId,
        version: Option<i64>,
    ) -> Result<WorkflowSummary, Error> {
        let version = match version {
            Some(v) => v,
            None => self.get_workflow(tenant, id).await?.summary.latest_version,
        };
        let record = self.workflow_version(tenant, id, version).await?;
        self.check_calls_on_publish(tenant, id, &record.document)
            .await?;
        let nodes = &record.document.nodes;
        let routes: Vec<(String, String)> = nodes
            .iter()
            .filter_map(|n| self.registry().route(n))
            .collect();
        let publishing = crate::schedule::Publishing {
            registry: self.registry(),
            tenant,
            workflow: id,
            nodes,
            now: now_ms(),
        };
        let schedules = crate::schedule::schedules_to_publish(&self.shared, &publishing).await?;
        let publish = Publish {
            tenant,
            workflow: id,
            version,
            routes: &routes,
            schedules: &schedules,
        };
        self.shared
            .store
            .publish_workflow(&publish)
            .await?
            .ok_or(Error::NotFound("workflow"))
    }

    /// Takes the workflow out of service: its triggers stop, executions
    /// already started run on with their version.
    pub async fn unpublish_workflow(
        &self,
        tenant: TenantId,
        id: WorkflowId,
    ) -> Result<WorkflowSummary, Error> {
        self.shared
            .store
            .unpublish_workflow(tenant, id)
            .await?
            .ok_or(Error::NotFound("workflow"))
    }

    /// A page of the workflow's versions, newest first, with the workflow.
    pub async fn workflow_versions(
        &self,
        q: &VersionsQuery,
    ) -> Result<(WorkflowSummary, Vec<VersionInfo>), Error> {
        self.shared
            .store
            .workflow_versions(q)
            .await?
            .ok_or(Error::NotFound("workflow"))
    }

    pub async fn workflow_version(
        &self,
        tenant: TenantId,
        id: WorkflowId,
        version: i64,
    ) -> Result<VersionRecord, Error> {
        let (workflow, document, created_at) = self
            .shared
            .store
            .tenant_workflow_version(tenant, id, version)
            .await?
            .ok_or(Error::NotFound("workflow version"))?;
        Ok(VersionRecord {
            workflow,
            version,
            created_at,
            document,
        })
    }
}
