//! The calls a workflow makes (`call_workflow`), checked where they can
//! be known: on save, that each names a workflow of the tenant; on
//! publish, that each reaches a version that exists and that no chain of
//! published (or named) calls leads back to the workflow being published,
//! or into a cycle of its own.

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
    /// exists, and none leads back to `workflow` or into a cycle.
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
                        "calling {} leads back to this workflow or into a cycle of calls ({}); \
                         a workflow may not call itself, directly or through others",
                        call.workflow,
                        chain.join(" → ")
                    ),
                ));
            }
        }
        refuse(errors)
    }

    /// The version a call runs and its document: the named version, or the
    /// published one.
    async fn called_version(
        &self,
        tenant: TenantId,
        call: &Call,
    ) -> Result<Result<(i64, WorkflowDocument), ValidationError>, Error> {
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
            Some(document) => Ok(Ok((version, document))),
            None => Ok(Err(ValidationError::new(
                call.path.replace(".workflow", ".version"),
                "unknown_version",
                format!("workflow {} has no version {version}", call.workflow),
            ))),
        }
    }

    /// The chain of calls by which `call` leads back to `workflow`, or into
    /// a cycle of its own (a version naming itself, say), if it does
    /// (following each call's published or named version).
    async fn leads_back(
        &self,
        tenant: TenantId,
        workflow: WorkflowId,
        call: &Call,
        target: (i64, WorkflowDocument),
    ) -> Result<Option<Vec<String>>, Error> {
        let names = |path: &[(WorkflowId, i64)]| {
            path.iter()
                .map(|(w, v)| format!("{w} version {v}"))
                .collect::<Vec<_>>()
        };
        let (version, document) = target;
        let mut seen = HashSet::new();
        let mut stack = vec![(document, vec![(call.workflow, version)])];
        while let Some((document, path)) = stack.pop() {
            let Some(&at) = path.last() else { continue };
            if at.0 == workflow {
                return Ok(Some(names(&path)));
            }
            if !seen.insert(at) || seen.len() > MAX_FOLLOWED {
                continue;
            }
            for next in calls(&document) {
                if next.workflow == workflow {
                    let mut chain = names(&path);
                    chain.push(workflow.to_string());
                    return Ok(Some(chain));
                }
                let Ok((version, document)) = self.called_version(tenant, &next).await? else {
                    continue;
                };
                let mut path = path.clone();
                path.push((next.workflow, version));
                // Depth first: a call back into the chain walked is a cycle
                // that would run until the depth bound, however it started.
                if path[..path.len() - 1].contains(&(next.workflow, version)) {
                    return Ok(Some(names(&path)));
                }
                if !seen.contains(&(next.workflow, version)) {
                    stack.push((document, path));
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
