//! Resuming executions that wait for an event (`wait_for_event` nodes).

use flowmesh_model::{Command, ExecutionId, NodeStatus, Primitive, TenantId};
use flowmesh_store::NewSignal;
use serde_json::Value;

use super::EngineHandle;
use crate::error::Error;

/// A resume of an execution waiting at a `wait_for_event` node.
#[derive(Clone, Debug)]
pub struct ResumeRequest {
    pub tenant: TenantId,
    pub execution: ExecutionId,
    /// The waiting node; may be left out when the workflow has only one.
    pub node: Option<String>,
    /// Becomes the node's output, as `payload`.
    pub payload: Value,
}

impl EngineHandle {
    /// Records a resume durably, then makes its execution apply it: at once
    /// where it runs, or by taking it back if it is parked. Returns the
    /// node resumed.
    pub async fn resume_execution(&self, request: ResumeRequest) -> Result<String, Error> {
        let record = self
            .get_execution(request.tenant, request.execution)
            .await?;
        if record.status.is_terminal() {
            return Err(Error::Conflict(format!(
                "the execution already ended as {}; there is nothing to resume",
                record.status
            )));
        }
        let graph = self.graph(record.workflow, record.version).await?;
        let waits: Vec<&str> = graph
            .document
            .nodes
            .iter()
            .filter(|n| n.primitive == Primitive::Action && n.kind == "wait_for_event")
            .map(|n| n.id.as_str())
            .collect();
        let node = match (&request.node, waits.as_slice()) {
            (Some(node), _) if waits.contains(&node.as_str()) => node.clone(),
            (Some(node), _) => {
                return Err(Error::BadRequest(format!(
                    "node: {node:?} is not a wait_for_event node of this workflow (those are: {})",
                    waits.join(", ")
                )));
            }
            (None, [only]) => (*only).to_owned(),
            (None, []) => {
                return Err(Error::Conflict(
                    "the workflow has no wait_for_event node; nothing waits for a resume".into(),
                ));
            }
            (None, several) => {
                return Err(Error::BadRequest(format!(
                    "node: the workflow waits for events at several nodes ({}); name one",
                    several.join(", ")
                )));
            }
        };
        let status = record
            .steps
            .iter()
            .find(|s| s.node == node)
            .map_or(NodeStatus::Pending, |s| s.status);
        if status != NodeStatus::Waiting {
            return Err(Error::Conflict(format!(
                "node {node} is not waiting for a resume (it is {status}); \
                 a resume is accepted once it waits"
            )));
        }
        let signal = NewSignal {
            tenant: request.tenant,
            execution: request.execution,
            node: node.clone(),
            payload: request.payload,
        };
        let id = self
            .ctx
            .store
            .add_signal(&signal)
            .await?
            .ok_or_else(|| Error::Conflict("the execution ended meanwhile".into()))?;
        // The signal row is the durable part: a parked execution is due now
        // and the claim sweep takes it even if these commands are lost.
        let commands = [
            Command::SignalExecution {
                tenant: request.tenant,
                workflow: record.workflow,
                execution: request.execution,
                signal: id,
            },
            Command::StartExecution {
                tenant: request.tenant,
                workflow: record.workflow,
                execution: request.execution,
            },
        ];
        for command in commands {
            if let Err(e) = self.ctx.bus.publish_command(&command, None).await {
                tracing::warn!(execution = %request.execution, error = %e, "resume command not published; the claim sweep applies the resume");
            }
        }
        Ok(node)
    }
}
