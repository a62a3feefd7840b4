//! The sandbox API: a tenant's live sandboxes in this process.

use std::time::Duration;

use flowmesh_model::TenantId;
use ractor::rpc::CallResult;

use super::EngineHandle;
use crate::error::Error;
use crate::root::RootMsg;
use crate::sandbox::SandboxInfo;
use crate::tenant::TenantMsg;

const ASK_TIMEOUT: Duration = Duration::from_secs(5);

impl EngineHandle {
    /// The tenant's live sandboxes in this process.
    pub async fn sandboxes(&self, tenant: TenantId) -> Result<Vec<SandboxInfo>, Error> {
        let Some(root) = self.root()? else {
            return Ok(Vec::new());
        };
        match root
            .call(
                |reply| RootMsg::Tenant {
                    tenant,
                    msg: TenantMsg::ListSandboxes(reply),
                },
                Some(ASK_TIMEOUT),
            )
            .await
        {
            Ok(CallResult::Success(list)) => Ok(list),
            _ => Err(Error::Unavailable(
                "the tenant's actor did not answer".into(),
            )),
        }
    }

    /// Tears one of the tenant's sandboxes down; calls running in it finish.
    pub async fn delete_sandbox(&self, tenant: TenantId, id: uuid::Uuid) -> Result<(), Error> {
        let root = self.root()?.ok_or(Error::NotFound("sandbox"))?;
        match root
            .call(
                |reply| RootMsg::Tenant {
                    tenant,
                    msg: TenantMsg::StopSandbox { id, reply },
                },
                Some(ASK_TIMEOUT),
            )
            .await
        {
            Ok(CallResult::Success(true)) => Ok(()),
            Ok(CallResult::Success(false)) => Err(Error::NotFound("sandbox")),
            _ => Err(Error::Unavailable(
                "the tenant's actor did not answer".into(),
            )),
        }
    }

    /// The actor tree; none in a gateway, which runs no code.
    fn root(&self) -> Result<Option<&ractor::ActorRef<RootMsg>>, Error> {
        if !self.ctx.options.role.runs_executions() {
            return Ok(None);
        }
        self.ctx
            .root
            .get()
            .map(Some)
            .ok_or_else(|| Error::Unavailable("the engine is starting".into()))
    }
}
