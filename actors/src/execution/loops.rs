//! Loops within an execution: a `for_each` node's first attempt reads its
//! items; its iterations then run as entries of their own (see the
//! progress' loops), and its last attempt builds its output from them.

use flowmesh_node_handlers::{Execution, NodeError, Outcome};
use serde_json::Value;

use super::ExecutionState;

impl ExecutionState {
    /// The items a loop's first attempt read, which start its iterations
    /// (its output comes once they have settled).
    pub(super) fn loop_items(
        &self,
        i: usize,
        result: &Result<Outcome, NodeError>,
    ) -> Option<Vec<Value>> {
        let behaviour = self.ctx.runner.behaviour(self.progress.node(i));
        if behaviour.execution != Execution::Composite || self.progress.is_looping(i) {
            return None;
        }
        match result {
            Ok(Outcome::Output { value, .. }) => value.get("items")?.as_array().cloned(),
            _ => None,
        }
    }
}
