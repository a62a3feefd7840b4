//! Loops within an execution: a `for_each` node's first attempt reads its
//! items; its iterations then run as entries of their own (see the
//! progress' loops), and its last attempt builds its output from them.

use flowmesh_node_handlers::{ErrorClass, Execution, NodeError, Outcome};
use flowmesh_services::progress::MAX_STEPS;
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
        self.new_items(i, result).cloned()
    }

    fn new_items<'r>(
        &self,
        i: usize,
        result: &'r Result<Outcome, NodeError>,
    ) -> Option<&'r Vec<Value>> {
        let behaviour = self.ctx.runner.behaviour(self.progress.node(i));
        if behaviour.execution != Execution::Composite || self.progress.is_looping(i) {
            return None;
        }
        match result {
            Ok(Outcome::Output { value, .. }) => value.get("items")?.as_array(),
            _ => None,
        }
    }

    /// A loop's attempt that would bring the execution past the steps it
    /// may hold (nested loops multiply) fails instead: a `for_each` before
    /// any item runs, a `while` before its next iteration.
    pub(super) fn within_steps(
        &self,
        i: usize,
        result: Result<Outcome, NodeError>,
    ) -> Result<Outcome, NodeError> {
        let iterations = match &result {
            Ok(Outcome::Repeat { .. }) => 1,
            _ => match self.new_items(i, &result) {
                Some(items) => items.len(),
                None => return result,
            },
        };
        let after = self.progress.steps_after(i, iterations);
        if after <= MAX_STEPS {
            return result;
        }
        Err(NodeError {
            class: ErrorClass::LoopExhausted,
            message: format!(
                "this loop would bring the execution to {after} steps, over the {MAX_STEPS} \
                 one execution may hold (its nodes and every iteration's, nested loops \
                 multiplying); lower max_items or max_iterations, or start an execution per part"
            ),
        })
    }
}
