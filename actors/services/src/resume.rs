//! Resuming executions that wait for an event (`wait_for_event` nodes).

use flowmesh_api::ResumeRequest;
use flowmesh_model::{Command, NodeStatus, StartCause};
use flowmesh_store::{ExecutionRecord, NewSignal, SignalAdded};
use serde_json::Value;

use super::EngineHandle;
use crate::error::Error;
use crate::rerun_scope::{refused, target};

impl EngineHandle {
    /// Records a resume durably, then makes its execution apply it: at once
    /// where it runs, or by taking it back if it is parked. Returns the
    /// node resumed. A wait takes the first resume recorded; that resume
    /// sent again (same payload, or same idempotency key while it is
    /// pending) is answered the same, any other is refused.
    pub async fn resume_execution(&self, request: ResumeRequest) -> Result<String, Error> {
        let record = self
            .get_execution(request.tenant, request.execution)
            .await?;
        let node = match self.waiting_in_iteration(&record, &request).await? {
            Some(key) => key,
            None => self.waiting_node(&record, &request).await?,
        };
        if record.status.is_terminal() {
            return applied(&record, node, &request.payload);
        }
        let status = record
            .steps
            .iter()
            .find(|s| s.node == node)
            .map_or(NodeStatus::Pending, |s| s.status);
        if status != NodeStatus::Waiting {
            return applied(&record, node, &request.payload);
        }
        let signal = NewSignal {
            tenant: request.tenant,
            execution: request.execution,
            node: node.clone(),
            payload: request.payload,
            idempotency_key: request.idempotency_key,
        };
        let id = match self.shared.store.add_signal(&signal).await? {
            Some(SignalAdded::Recorded(id)) => id,
            // Already recorded: its commands were sent when it was.
            Some(SignalAdded::Repeated(_)) => return Ok(node),
            Some(SignalAdded::Taken) => return Err(taken(&node)),
            Some(SignalAdded::NotWaiting) | None => {
                let record = self
                    .get_execution(request.tenant, request.execution)
                    .await?;
                return applied(&record, node, &signal.payload);
            }
        };
        // The signal row is the durable part: a parked execution is due now
        // and the claim sweep takes it even if these commands are lost.
        let commands = [
            Command::SignalExecution {
                tenant: request.tenant,
                workflow: record.workflow,
                execution: request.execution,
                signal: id.clone(),
            },
            Command::StartExecution {
                tenant: request.tenant,
                workflow: record.workflow,
                execution: request.execution,
                cause: StartCause::Resumed { signal: id },
            },
        ];
        for command in commands {
            if let Err(e) = self.shared.bus.publish_command(&command, None).await {
                tracing::warn!(execution = %request.execution, error = %e, "resume command not published; the claim sweep applies the resume");
            }
        }
        Ok(node)
    }
}

impl EngineHandle {
    /// The step key of the wait a resume names within a loop iteration
    /// (`node` with `scope`, or `node` as `each[3].approve`); none when it
    /// names a node of the workflow itself.
    async fn waiting_in_iteration(
        &self,
        record: &ExecutionRecord,
        request: &ResumeRequest,
    ) -> Result<Option<String>, Error> {
        let node = match (&request.node, &request.scope) {
            (Some(node), _) => node,
            (None, Some(_)) => {
                return Err(refused(
                    "node",
                    "unknown_node",
                    "name the wait_for_event node of the iteration the scope names",
                ));
            }
            (None, None) => return Ok(None),
        };
        let Some(target) = target("node", node, request.scope.as_deref())? else {
            return Ok(None);
        };
        let levels = self.target_levels(record, &target).await?;
        let (waits, within) = match levels.last() {
            Some(level) => (
                level
                    .spec
                    .body
                    .nodes
                    .iter()
                    .any(|n| n.id == target.node && self.registry().behaviour(n).awaits_resume),
                level.node.id.as_str(),
            ),
            None => (false, ""),
        };
        if !waits {
            return Err(refused(
                "node",
                "unknown_node",
                format!(
                    "the body of {within} has no wait_for_event node {:?}",
                    target.node
                ),
            ));
        }
        Ok(Some(target.text()))
    }

    /// The wait a resume names among the workflow's own nodes, or the only
    /// one there is.
    async fn waiting_node(
        &self,
        record: &ExecutionRecord,
        request: &ResumeRequest,
    ) -> Result<String, Error> {
        let graph = self.graph(record.workflow, record.version).await?;
        let waits: Vec<&str> = graph
            .document
            .nodes
            .iter()
            .filter(|n| self.registry().behaviour(n).awaits_resume)
            .map(|n| n.id.as_str())
            .collect();
        match (&request.node, waits.as_slice()) {
            (Some(node), _) if waits.contains(&node.as_str()) => Ok(node.clone()),
            (Some(node), _) => Err(Error::BadRequest(format!(
                "node: {node:?} is not a wait_for_event node of this workflow (those are: {}); \
                 one in a loop's body is named with its iteration's scope",
                waits.join(", ")
            ))),
            (None, [only]) => Ok((*only).to_owned()),
            (None, []) => Err(Error::Conflict(
                "the workflow has no wait_for_event node outside loops; a wait in a loop's body \
                 is resumed by its node and scope"
                    .into(),
            )),
            (None, several) => Err(Error::BadRequest(format!(
                "node: the workflow waits for events at several nodes ({}); name one",
                several.join(", ")
            ))),
        }
    }
}

/// The answer to a resume of a node that no longer waits: the resume that
/// ended its wait, sent again, is answered as it was; anything else is a
/// conflict.
fn applied(record: &ExecutionRecord, node: String, payload: &Value) -> Result<String, Error> {
    let step = record.steps.iter().find(|s| s.node == node);
    let resumed_with = step
        .filter(|s| s.status == NodeStatus::Succeeded)
        .and_then(|s| s.output.as_ref())
        .and_then(|output| output.get("payload"));
    if resumed_with == Some(payload) {
        return Ok(node);
    }
    if resumed_with.is_some() {
        return Err(taken(&node));
    }
    if record.status.is_terminal() {
        return Err(Error::Conflict(format!(
            "the execution already ended as {}; there is nothing to resume",
            record.status
        )));
    }
    let status = step.map_or(NodeStatus::Pending, |s| s.status);
    Err(Error::Conflict(format!(
        "node {node} is not waiting for a resume (it is {status}); \
         a resume is accepted once it waits"
    )))
}

fn taken(node: &str) -> Error {
    Error::Conflict(format!(
        "node {node} was already resumed with a different payload; a wait takes one resume, \
         the first recorded. Retrying this one will not help"
    ))
}
