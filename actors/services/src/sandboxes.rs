//! The sandbox API: a tenant's live sandboxes in this process.

use flowmesh_model::TenantId;

use crate::EngineHandle;
use crate::error::Error;
use crate::runtime::SandboxInfo;

impl EngineHandle {
    /// The tenant's live sandboxes in this process.
    pub async fn sandboxes(&self, tenant: TenantId) -> Result<Vec<SandboxInfo>, Error> {
        self.shared.runtime.sandboxes(tenant).await
    }

    /// Tears one of the tenant's sandboxes down; calls running in it finish.
    pub async fn delete_sandbox(&self, tenant: TenantId, id: uuid::Uuid) -> Result<(), Error> {
        if self.shared.runtime.stop_sandbox(tenant, id).await? {
            Ok(())
        } else {
            Err(Error::NotFound("sandbox"))
        }
    }
}
