//! `for_each`: a body of nodes run once per item of a list. Its config is
//! read here, where both the document's validation (the body's nodes are
//! checked as nodes) and an execution's progress (which runs them) need it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use std::collections::{HashMap, HashSet};

use crate::document::{Edge, Node, Primitive, WorkflowDocument};
use crate::graph::WorkflowGraph;
use crate::names::Upstream;
use crate::on_error;
use crate::validate::{
    KindCatalog, Place, ValidationError, check_cycles, check_edges, check_node, check_node_id,
    check_retry, successors,
};
use crate::while_loop::{STATE, WhileConfig};

/// The kind's name.
pub const FOR_EACH: &str = "for_each";
/// Items allowed when a node sets no `max_items`.
pub const DEFAULT_MAX_ITEMS: u32 = 1_000;
/// The most items a node may allow.
pub const MAX_ITEMS: u32 = 10_000;
/// The most iterations a node may run at once.
pub const MAX_CONCURRENCY: u32 = 100;
/// The names a body's expressions read besides the outer scope.
pub const ITEM: &str = "item";
pub const INDEX: &str = "index";
/// Where, in the scope of a loop's last attempt, its settled iterations are
/// handed to the kind. A reserved name: no node can take it.
pub const LOOP: &str = "loop";

/// What a failed item does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnItemError {
    /// The node fails once the iterations running settle; no more start.
    #[default]
    Fail,
    /// The failure is listed in the output with its index; the others run.
    Continue,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForEachConfig {
    /// Gives the list, for example `trigger.body.orders`; `{{ … }}` around it is allowed.
    #[schemars(length(min = 1), extend("x-flowmesh-field" = "expression"))]
    pub items: String,
    /// Iterations run at once.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 100))]
    pub concurrency: u32,
    /// A longer list fails the node before any item runs.
    #[serde(default = "default_max_items")]
    #[schemars(range(min = 1, max = 10000))]
    pub max_items: u32,
    #[serde(default)]
    pub on_item_error: OnItemError,
    /// Each item's result, read after its body ran: it sees `item`, `index`
    /// and the body's nodes. Without it, the outputs of the body's nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1),
        extend("x-flowmesh-field" = "expression", "x-flowmesh-binds" = ["item", "index"])
    )]
    pub result: Option<String>,
    /// The nodes run for each item and the edges between them; they read
    /// the scope of the loop, `item` and `index`.
    pub body: Body,
}

/// A loop's body: nodes and edges of their own, never wired to the nodes
/// outside (so the document stays acyclic).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Body {
    pub nodes: Vec<Node>,
    #[serde(default)]
    pub edges: Vec<Edge>,
}

fn one() -> u32 {
    1
}

fn default_max_items() -> u32 {
    DEFAULT_MAX_ITEMS
}

/// What the engine needs of a loop node (`for_each` or `while`) to run
/// its body.
#[derive(Clone, Debug)]
pub struct LoopSpec {
    pub body: Body,
    /// Iterations run at once.
    pub concurrency: u32,
    /// Whether a failed iteration stops the loop.
    pub stop_on_failure: bool,
    /// The name an iteration's value is bound to: `item`, or `state`.
    pub binds: &'static str,
    /// Whether only the last iteration is handed to the kind once the
    /// started ones settle (a `while` decides from it alone).
    pub last_only: bool,
}

impl LoopSpec {
    pub fn of(node: &Node) -> Option<Self> {
        if let Some(config) = ForEachConfig::of(node) {
            return Some(LoopSpec {
                body: config.body,
                concurrency: config.concurrency.max(1),
                stop_on_failure: config.on_item_error == OnItemError::Fail,
                binds: ITEM,
                last_only: false,
            });
        }
        WhileConfig::of(node).map(|config| LoopSpec {
            body: config.body,
            concurrency: 1,
            stop_on_failure: true,
            binds: STATE,
            last_only: true,
        })
    }

    /// The body as a graph of its own, to walk like a workflow's.
    pub fn body_graph(&self) -> WorkflowGraph {
        WorkflowGraph::from_parts(self.body.nodes.clone(), self.body.edges.clone())
    }
}

impl ForEachConfig {
    /// The config of a `for_each` node, if the node is one whose config reads.
    pub fn of(node: &Node) -> Option<Self> {
        (node.kind == FOR_EACH)
            .then(|| serde_json::from_value(node.config.clone()).ok())
            .flatten()
    }
}

/// Where a body is checked: its loop node's path, the names its loop
/// sees, and the kinds.
pub(crate) struct Within<'a> {
    pub path: &'a str,
    pub outer: &'a [String],
    pub catalog: &'a dyn KindCatalog,
}

/// Checks a loop's body as a workflow of its own whose nodes also read the
/// loop's scope, `item` (or `state`) and `index`; `taken` holds the ids
/// used so far.
pub(crate) fn check_body(
    spec: &LoopSpec,
    within: &Within<'_>,
    taken: &mut HashSet<String>,
    errors: &mut Vec<ValidationError>,
) {
    let body = &spec.body;
    let path = format!("{}.config.body", within.path);
    if body.nodes.is_empty() {
        errors.push(ValidationError::new(
            format!("{path}.nodes"),
            "required",
            "a loop's body needs at least one node",
        ));
    }
    let upstream = Upstream::new(
        body.nodes.iter().map(|n| n.id.as_str()),
        body.edges.iter().map(|e| (e.from.as_str(), e.to.as_str())),
    );
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut outputs = Vec::with_capacity(body.nodes.len());
    for (j, node) in body.nodes.iter().enumerate() {
        let at = format!("{path}.nodes[{j}]");
        check_node_id(&node.id, &format!("{at}.id"), errors);
        index.entry(node.id.as_str()).or_insert(j);
        if !taken.insert(node.id.clone()) {
            errors.push(ValidationError::new(
                format!("{at}.id"),
                "duplicate_id",
                format!("node id {:?} is used more than once", node.id),
            ));
        }
        if matches!(node.primitive, Primitive::Trigger | Primitive::Connection) {
            errors.push(ValidationError::new(
                format!("{at}.type"),
                "not_in_body",
                format!(
                    "a {} node cannot be in a loop's body; put it outside",
                    node.primitive.as_str()
                ),
            ));
        }
        if let Some(retry) = &node.retry {
            check_retry(retry, &format!("{at}.retry"), errors);
        }
        errors.extend(on_error::check_node(node, &format!("{at}.on_error")));
        let mut names = upstream.names(j);
        for name in within.outer {
            names.bind(name);
        }
        names.bind(spec.binds);
        names.bind(INDEX);
        let inner = LoopSpec::of(node);
        let deeper: Vec<String> = names.bound().map(str::to_owned).collect();
        let place = Place {
            path: &at,
            names: &names,
        };
        outputs.push(check_node(node, &place, within.catalog, errors));
        if let Some(inner) = &inner {
            let nested = Within {
                path: &at,
                outer: &deeper,
                catalog: within.catalog,
            };
            check_body(inner, &nested, taken, errors);
        }
    }
    let doc = WorkflowDocument {
        name: String::new(),
        description: None,
        nodes: body.nodes.clone(),
        edges: body.edges.clone(),
        settings: Default::default(),
    };
    let prefix = format!("{path}.");
    check_edges(&doc, &index, &outputs, &prefix, errors);
    check_cycles(&doc, &successors(&doc, &index), &prefix, errors);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_and_body() {
        let node: Node = serde_json::from_value(json!({
            "id": "each", "type": "action", "kind": "for_each",
            "config": {"items": "trigger.body", "body": {"nodes": [
                {"id": "double", "type": "data", "kind": "mapping"}
            ]}}
        }))
        .unwrap();
        let config = ForEachConfig::of(&node).unwrap();
        assert_eq!(config.concurrency, 1);
        assert_eq!(config.max_items, DEFAULT_MAX_ITEMS);
        assert_eq!(config.on_item_error, OnItemError::Fail);
        assert_eq!(LoopSpec::of(&node).unwrap().body_graph().len(), 1);
    }
}
