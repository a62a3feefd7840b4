//! `while`: repeats a body of nodes, carrying a state from one iteration to
//! the next, until a condition holds or a bound is reached.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::document::Node;
use crate::duration::HumanDuration;
use crate::for_each::Body;

/// The kind's name.
pub const WHILE: &str = "while";
/// The most iterations a node may allow.
pub const MAX_ITERATIONS: u32 = 10_000;
/// The name a body's expressions, `next_state` and `until` read the state by.
pub const STATE: &str = "state";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WhileConfig {
    /// The state the first iteration sees, for example `{'page': 1, 'rows': []}`.
    #[schemars(length(min = 1), extend("x-flowmesh-field" = "expression"))]
    pub state: String,
    /// The state after an iteration, read once its body has run: it sees
    /// `state` (the one the iteration saw), `index` and the body's nodes.
    #[schemars(
        length(min = 1),
        extend("x-flowmesh-field" = "expression", "x-flowmesh-binds" = ["state", "index"])
    )]
    pub next_state: String,
    /// Read after each iteration, `state` being the state after it: the
    /// loop ends when it holds.
    #[schemars(
        length(min = 1),
        extend("x-flowmesh-field" = "expression", "x-flowmesh-binds" = ["state", "index"])
    )]
    pub until: String,
    /// Iterations allowed; one more would fail the node with `loop_exhausted`.
    #[schemars(range(min = 1, max = 10000))]
    pub max_iterations: u32,
    /// Time allowed from the loop's start; past it, the node fails with
    /// `loop_exhausted` after the iteration running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<HumanDuration>,
    /// The nodes run in each iteration and the edges between them.
    pub body: Body,
}

impl WhileConfig {
    /// The config of a `while` node, if the node is one whose config reads.
    pub fn of(node: &Node) -> Option<Self> {
        (node.kind == WHILE)
            .then(|| serde_json::from_value(node.config.clone()).ok())
            .flatten()
    }
}
