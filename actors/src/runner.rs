//! The seam between executions and node handlers, so that supervision can be
//! tested with handlers that misbehave on purpose.

use flowmesh_model::Node;
use flowmesh_node_handlers::{Behaviour, NodeError, Outcome, Registry, RunRequest};
use futures::future::BoxFuture;

/// Runs one attempt of one node.
pub trait NodeRunner: Send + Sync + 'static {
    fn run<'a>(&'a self, request: RunRequest<'a>) -> BoxFuture<'a, Result<Outcome, NodeError>>;

    /// What the execution must know of the node's kind: whether it runs
    /// within the execution's own turn, inside the engine, in a sandbox,
    /// answers a caller or waits for a resume.
    fn behaviour(&self, node: &Node) -> Behaviour;
}

/// The production runner: the node-handler registry.
pub struct RegistryRunner(pub Registry);

impl NodeRunner for RegistryRunner {
    fn run<'a>(&'a self, request: RunRequest<'a>) -> BoxFuture<'a, Result<Outcome, NodeError>> {
        Box::pin(self.0.run(request))
    }

    fn behaviour(&self, node: &Node) -> Behaviour {
        self.0.behaviour(node)
    }
}
