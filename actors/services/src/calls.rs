//! The calls a workflow makes (`call_workflow`), checked where they can
//! be known: on save, that each names a workflow of the tenant; on
//! publish, that each reaches a version that exists and that no chain of
//! published calls leads back to the workflow being published.

use std::collections::HashSet;

use flowmesh_model::call_workflow::{Call, calls};
use flowmesh_model::{TenantId, ValidationError, ValidationErrors, WorkflowDocument, WorkflowId};

use crate::api::EngineHandle;
use crate::error::Error;

/// Most workflows a publish follows calls through before it stops looking
/// for a cycle (the depth bound still holds at run time).
const MAX_FOLLOWED: usize = 1_000;

impl EngineHandle {
    /// Every call names a workflow of this tenant.
    pub(crate) async fn check_call_targets(
        &self,
        tenant: TenantId,
        document: &WorkflowDocument,
    ) -> Result<(), Error> {
        let mut errors = Vec::new();
        for call in calls(document) {
            if self
                .shared
                .store
                .get_workflow(tenant, call.workflow)
                .await?
                .is_none()
            {
                errors.push(unknown(&call));
            }
        }
        refuse(errors)
    }

    /// Every call of the version being published reaches a version that
    /// exists, and none leads back to `workflow`.
    pub(crate) async fn check_calls_on_publish(
        &self,
        tenant: TenantId,
        workflow: WorkflowId,
        document: &WorkflowDocument,
    ) -> Result<(), Error> {
        let mut errors = Vec::new();
        for call in calls(document) {
            let target = match self.called_version(tenant, &call).await? {
                Ok(target) => target,
                Err(error) => {
                    errors.push(error);
                    continue;
                }
            };
            if let Some(chain) = self.leads_back(tenant, workflow, &call, target).await? {
                errors.push(ValidationError::new(
                    call.path.clone(),
                    "call_cycle",
                    format!(
                        "calling {} leads back to this workflow ({}); a workflow may not call \
                         itself, directly or through others",
                        call.workflow,
                        chain.join(" → ")
                    ),
                ));
            }
        }
        refuse(errors)
    }

    /// The document a call runs: the named version, or the published one.
    async fn called_version(
        &self,
        tenant: TenantId,
        call: &Call,
    ) -> Result<Result<WorkflowDocument, ValidationError>, Error> {
        let store = &self.shared.store;
        let Some(found) = store.get_workflow(tenant, call.workflow).await? else {
            return Ok(Err(unknown(call)));
        };
        let Some(version) = call.version.or(found.summary.published_version) else {
            return Ok(Err(ValidationError::new(
                call.path.clone(),
                "not_published",
                format!(
                    "workflow {} has no published version; publish it first, or name a version",
                    call.workflow
                ),
            )));
        };
        match store.workflow_version(call.workflow, version).await? {
            Some(document) => Ok(Ok(document)),
            None => Ok(Err(ValidationError::new(
                call.path.replace(".workflow", ".version"),
                "unknown_version",
                format!("workflow {} has no version {version}", call.workflow),
            ))),
        }
    }

    /// The chain of workflows by which `call` leads back to `workflow`, if
    /// it does (following each workflow's published or named versions).
    async fn leads_back(
        &self,
        tenant: TenantId,
        workflow: WorkflowId,
        call: &Call,
        target: WorkflowDocument,
    ) -> Result<Option<Vec<String>>, Error> {
        let mut seen = HashSet::new();
        let mut stack = vec![(call.workflow, target, vec![call.workflow.to_string()])];
        while let Some((at, document, chain)) = stack.pop() {
            if at == workflow {
                return Ok(Some(chain));
            }
            if !seen.insert(at) || seen.len() > MAX_FOLLOWED {
                continue;
            }
            for next in calls(&document) {
                if next.workflow == workflow {
                    let mut chain = chain.clone();
                    chain.push(workflow.to_string());
                    return Ok(Some(chain));
                }
                if seen.contains(&next.workflow) {
                    continue;
                }
                if let Ok(document) = self.called_version(tenant, &next).await? {
                    let mut chain = chain.clone();
                    chain.push(next.workflow.to_string());
                    stack.push((next.workflow, document, chain));
                }
            }
        }
        Ok(None)
    }
}

fn unknown(call: &Call) -> ValidationError {
    ValidationError::new(
        call.path.clone(),
        "unknown_workflow",
        format!("this tenant has no workflow {}", call.workflow),
    )
}

fn refuse(errors: Vec<ValidationError>) -> Result<(), Error> {
    if errors.is_empty() {
        return Ok(());
    }
    Err(Error::Invalid(ValidationErrors { errors }))
}
