//! `call_workflow`: starts another published workflow of the same tenant
//! as a child execution, and (by default) waits for its end. Its config is
//! read here, where publishing (call cycles), the execution (which starts
//! the child) and the kind (which renders its input) all need it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::document::{Node, WorkflowDocument};
use crate::duration::HumanDuration;
use crate::for_each::LoopSpec;
use crate::ids::WorkflowId;

/// The kind's name.
pub const CALL_WORKFLOW: &str = "call_workflow";
/// The most calls deep a chain of executions may go: an execution started
/// by a call at this depth may not call again.
pub const MAX_CALL_DEPTH: u32 = 8;

/// What becomes of a child still running when its parent ends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnParentEnd {
    /// The child is cancelled.
    #[default]
    Cancel,
    /// The child runs on by itself.
    Abandon,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CallWorkflowConfig {
    /// The id of a workflow of the same tenant.
    pub workflow: WorkflowId,
    /// The version to run; the one published when the call starts if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub version: Option<i64>,
    /// The child's input (its trigger's `body`); every string in it is a template.
    #[serde(default)]
    #[schemars(extend("x-flowmesh-field" = "template"))]
    pub input: Value,
    /// Whether the node waits for the child's end (parked meanwhile) and
    /// takes its output, or succeeds as soon as the child is recorded.
    #[serde(default = "yes")]
    pub wait: bool,
    /// With `wait`, the node fails when the child has not ended in this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<HumanDuration>,
    /// What becomes of the child if the parent ends (or gives up waiting) first.
    #[serde(default)]
    pub on_parent_end: OnParentEnd,
}

fn yes() -> bool {
    true
}

impl CallWorkflowConfig {
    /// The config of a `call_workflow` node, if the node is one whose config reads.
    pub fn of(node: &Node) -> Option<Self> {
        (node.kind == CALL_WORKFLOW)
            .then(|| serde_json::from_value(node.config.clone()).ok())
            .flatten()
    }
}

/// A call a document makes, with the path of its `workflow` field.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub path: String,
    pub workflow: WorkflowId,
    pub version: Option<i64>,
}

/// Every call a document makes, loop bodies included.
pub fn calls(document: &WorkflowDocument) -> Vec<Call> {
    let mut found = Vec::new();
    collect(&document.nodes, "", &mut found);
    found
}

fn collect(nodes: &[Node], prefix: &str, found: &mut Vec<Call>) {
    for (i, node) in nodes.iter().enumerate() {
        let path = format!("{prefix}nodes[{i}]");
        if let Some(config) = CallWorkflowConfig::of(node) {
            found.push(Call {
                path: format!("{path}.config.workflow"),
                workflow: config.workflow,
                version: config.version,
            });
        }
        if let Some(spec) = LoopSpec::of(node) {
            collect(&spec.body.nodes, &format!("{path}.config.body."), found);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn calls_are_found_in_loop_bodies_with_their_paths() {
        let (a, b) = (WorkflowId::new(), WorkflowId::new());
        let document: WorkflowDocument = serde_json::from_value(json!({
            "name": "calls",
            "nodes": [
                {"id": "start", "type": "trigger", "kind": "manual"},
                {"id": "first", "type": "action", "kind": "call_workflow",
                 "config": {"workflow": a.to_string()}},
                {"id": "each", "type": "action", "kind": "for_each", "config": {
                    "items": "trigger.body.rows",
                    "body": {"nodes": [
                        {"id": "inner", "type": "action", "kind": "call_workflow",
                         "config": {"workflow": b.to_string(), "version": 3, "wait": false}}
                    ]}}}
            ],
            "edges": []
        }))
        .unwrap();
        assert_eq!(
            calls(&document),
            vec![
                Call {
                    path: "nodes[1].config.workflow".into(),
                    workflow: a,
                    version: None
                },
                Call {
                    path: "nodes[2].config.body.nodes[0].config.workflow".into(),
                    workflow: b,
                    version: Some(3)
                },
            ]
        );
    }

    #[test]
    fn defaults_wait_and_cancel_the_child() {
        let config: CallWorkflowConfig =
            serde_json::from_value(json!({"workflow": WorkflowId::new().to_string()})).unwrap();
        assert!(config.wait);
        assert_eq!(config.on_parent_end, OnParentEnd::Cancel);
        assert_eq!(config.input, Value::Null);
    }
}
