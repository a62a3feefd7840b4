//! A node that failed for good (its retries spent, or a failure no retry
//! mends): what its `on_error` makes of it. `fail` fails the execution;
//! `continue` makes the node succeed with the error object as its output;
//! `route` journals the node failed with that object and takes only its
//! `error` edges.

use flowmesh_model::lifecycle::NodeTransition;
use flowmesh_model::{EventKind, OnError};
use flowmesh_node_handlers::{ErrorClass, NodeError};
use flowmesh_store::now_ms;
use ractor::ActorProcessingErr;
use serde_json::{Value, json};

use super::{AfterNode, ExecutionState};

impl ExecutionState {
    /// Stages the end of node `i`, failed with `error`; `retryable` says
    /// whether the error is of a kind worth another attempt.
    pub(super) fn node_failed(
        &mut self,
        i: usize,
        error: &NodeError,
        retryable: bool,
    ) -> Result<AfterNode, ActorProcessingErr> {
        let node = self.progress.node(i);
        let node_id = self.progress.nodes[i].node.clone();
        // A workflow's own verdict (a `fail` node) is never swallowed.
        let on_error = match error.class {
            ErrorClass::Raised => OnError::Fail,
            _ => node.on_error,
        };
        let message = error.describe();
        let object = || self.error_object(i, error, retryable);
        match on_error {
            OnError::Fail => {
                self.progress.apply(i, NodeTransition::Fail)?;
                self.end_failed(i, message.clone(), None);
                // Within a loop's body, the failure is its iteration's:
                // the loop makes of it what its on_item_error says.
                if self.progress.frame(i).is_some() && error.class != ErrorClass::Raised {
                    return Ok(AfterNode::Advance);
                }
                Ok(AfterNode::Fail(format!("node {node_id} failed: {message}")))
            }
            OnError::Continue => {
                let output = object();
                let after = self.succeed(i, output, None)?;
                self.progress.nodes[i].error = Some(message);
                Ok(after)
            }
            OnError::Route => {
                let output = object();
                self.progress.apply(i, NodeTransition::Fail)?;
                self.end_failed(i, message, Some(output));
                Ok(AfterNode::Advance)
            }
        }
    }

    /// What a continued or routed node hands on in place of an output.
    fn error_object(&self, i: usize, error: &NodeError, retryable: bool) -> Value {
        json!({"error": {
            "code": error.class.as_str(),
            "message": error.message,
            "retryable": retryable,
            "attempts": self.progress.nodes[i].attempts,
        }})
    }

    /// Journals and announces a failed node; a routed one keeps the error
    /// object as its output, for the nodes on its error edges.
    fn end_failed(&mut self, i: usize, message: String, routed: Option<Value>) {
        let state = &mut self.progress.nodes[i];
        state.error = Some(message.clone());
        state.finished_at = Some(now_ms());
        state.wake_at = None;
        if routed.is_some() {
            state.branch = Some(OnError::ERROR.to_owned());
        }
        state.output = routed;
        self.save(i);
        let node = self.progress.nodes[i].node.clone();
        self.emit(EventKind::NodeFailed {
            node,
            error: message,
        });
    }
}
