//! What a node's failure does once its retries are exhausted (`on_error`),
//! and the rules a document follows to use it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::document::{Node, Primitive};
use crate::validate::ValidationError;

/// What a node's failure does once its retries are exhausted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// The execution fails.
    #[default]
    Fail,
    /// The node succeeds with the error object as its output.
    Continue,
    /// The node fails and only its edges with `"when": "error"` are taken.
    Route,
}

impl OnError {
    /// The branch a routed node's edges name for its failure.
    pub const ERROR: &'static str = "error";
    /// The branch a routed node's edges name for its success (the branch of
    /// an edge without `when`).
    pub const SUCCESS: &'static str = "success";

    pub fn as_str(self) -> &'static str {
        match self {
            OnError::Fail => "fail",
            OnError::Continue => "continue",
            OnError::Route => "route",
        }
    }

    pub(crate) fn is_default(&self) -> bool {
        *self == OnError::Fail
    }
}

/// `on_error` is for nodes that run, and `route` for those whose edges do
/// not already name branches.
pub(crate) fn check_node(node: &Node, path: &str) -> Option<ValidationError> {
    let refusal = match (node.primitive, node.on_error) {
        (_, OnError::Fail) => return None,
        (Primitive::Trigger | Primitive::Connection, _) => format!(
            "{} {:?} never runs as a step; remove on_error",
            node.primitive.as_str(),
            node.id
        ),
        (Primitive::Condition, OnError::Route) => format!(
            "the edges of condition {:?} already name its branches; use \"continue\" or \"fail\"",
            node.id
        ),
        _ => return None,
    };
    Some(ValidationError::new(path, "unexpected", refusal))
}

/// Checks the `when` (at `path`) of an edge leaving `from`, a node with a
/// single output: only a node that routes its failures names branches.
pub(crate) fn check_branch(from: &Node, when: &str, path: &str) -> Option<ValidationError> {
    let route_branch = when == OnError::ERROR || when == OnError::SUCCESS;
    match (from.on_error == OnError::Route, route_branch) {
        (true, true) => None,
        (true, false) => Some(ValidationError::new(
            path,
            "unknown_output",
            format!(
                "{:?} routes its failures: `when` is \"error\" or \"success\", not {when:?}",
                from.id
            ),
        )),
        (false, true) => Some(ValidationError::new(
            path,
            "needs_route",
            format!(
                "`when: {when:?}` is for nodes that route their failures; set \"on_error\": \"route\" on {:?}",
                from.id
            ),
        )),
        (false, false) => Some(ValidationError::new(
            path,
            "unexpected",
            format!("{:?} has a single output; remove `when`", from.id),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(value: serde_json::Value) -> Node {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn only_running_nodes_take_on_error_and_conditions_do_not_route() {
        let trigger =
            node(json!({"id": "t", "type": "trigger", "kind": "manual", "on_error": "continue"}));
        let refused = check_node(&trigger, "nodes[0].on_error").unwrap();
        assert_eq!(
            (refused.path.as_str(), refused.code.as_str()),
            ("nodes[0].on_error", "unexpected")
        );
        let key = node(
            json!({"id": "k", "type": "connection", "kind": "credentials", "on_error": "route"}),
        );
        assert!(check_node(&key, "p").is_some());
        let condition =
            node(json!({"id": "c", "type": "condition", "kind": "if_else", "on_error": "route"}));
        assert!(check_node(&condition, "p").is_some());
        let continued = node(
            json!({"id": "c", "type": "condition", "kind": "if_else", "on_error": "continue"}),
        );
        assert!(check_node(&continued, "p").is_none());
        let action =
            node(json!({"id": "a", "type": "action", "kind": "http_request", "on_error": "route"}));
        assert!(check_node(&action, "p").is_none());
    }

    #[test]
    fn only_a_routing_node_names_error_and_success() {
        let routed =
            node(json!({"id": "a", "type": "action", "kind": "http_request", "on_error": "route"}));
        let plain = node(json!({"id": "a", "type": "action", "kind": "http_request"}));
        assert!(check_branch(&routed, "error", "w").is_none());
        assert!(check_branch(&routed, "success", "w").is_none());
        let code = |e: Option<ValidationError>| e.map(|e| (e.path, e.code));
        assert_eq!(
            code(check_branch(&routed, "true", "w")),
            Some(("w".into(), "unknown_output".into()))
        );
        assert_eq!(
            code(check_branch(&plain, "error", "w")),
            Some(("w".into(), "needs_route".into()))
        );
        assert_eq!(
            code(check_branch(&plain, "x", "w")),
            Some(("w".into(), "unexpected".into()))
        );
    }

    #[test]
    fn fail_is_the_default_and_is_not_written() {
        let plain = node(json!({"id": "a", "type": "action", "kind": "http_request"}));
        assert_eq!(plain.on_error, OnError::Fail);
        assert!(
            serde_json::to_value(&plain)
                .unwrap()
                .get("on_error")
                .is_none()
        );
    }
}
