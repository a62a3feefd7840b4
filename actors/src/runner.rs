//! The seam between executions and node handlers, so that supervision can be
//! tested with handlers that misbehave on purpose.

use flowmesh_model::Node;
use flowmesh_node_handlers::{NodeError, Outcome, Registry, RunRequest};
use futures::future::BoxFuture;

/// Runs one attempt of one node.
pub trait NodeRunner: Send + Sync + 'static {
    fn run<'a>(&'a self, request: RunRequest<'a>) -> BoxFuture<'a, Result<Outcome, NodeError>>;

    /// Whether the node's kind is a pure, instant computation over its
    /// inputs, which the execution runs within its own turn.
    fn is_inline(&self, node: &Node) -> bool;

    /// Whether the node's kind computes inside the engine or its sandboxes:
    /// an engine that dies while one runs counts against its execution.
    fn runs_in_engine(&self, node: &Node) -> bool;
}

/// The production runner: the node-handler registry.
pub struct RegistryRunner(pub Registry);

impl NodeRunner for RegistryRunner {
    fn run<'a>(&'a self, request: RunRequest<'a>) -> BoxFuture<'a, Result<Outcome, NodeError>> {
        Box::pin(self.0.run(request))
    }

    fn is_inline(&self, node: &Node) -> bool {
        self.0.is_inline(node)
    }

    fn runs_in_engine(&self, node: &Node) -> bool {
        self.0.runs_in_engine(node)
    }
}
