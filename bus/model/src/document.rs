//! The workflow document: what users write, store and publish.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::duration::HumanDuration;
use crate::ids::WorkflowId;
use crate::on_error::OnError;
use crate::validate::{ValidationError, ValidationErrors};

/// Largest accepted document, in bytes of JSON.
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// A workflow: a directed acyclic graph of nodes built from five primitives.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowDocument {
    /// Human-readable name.
    pub name: String,
    /// Optional longer description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The nodes of the graph.
    pub nodes: Vec<Node>,
    /// Directed edges between nodes.
    #[serde(default)]
    pub edges: Vec<Edge>,
    /// Settings for every execution of this workflow.
    #[serde(default, skip_serializing_if = "ExecutionSettings::is_default")]
    pub settings: ExecutionSettings,
}

/// Settings that apply to a whole execution.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecutionSettings {
    /// An execution still running after this long is stopped as `timed_out`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<HumanDuration>,
    /// A workflow of the same tenant started on every run that ends failed
    /// or timed out, with what failed as its input. A run it starts starts
    /// no other when it fails in turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_error_workflow: Option<WorkflowId>,
}

impl ExecutionSettings {
    fn is_default(&self) -> bool {
        self == &Self::default()
    }
}

/// The five building blocks every node is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Primitive {
    /// Starts executions (webhook, manual, ...).
    Trigger,
    /// Does something: calls an API, responds, waits.
    Action,
    /// Holds access to an outside system (credentials); referenced by actions.
    Connection,
    /// Chooses which outgoing edges are taken.
    Condition,
    /// Reshapes or combines data.
    Data,
}

impl Primitive {
    pub const ALL: [Primitive; 5] = [
        Primitive::Trigger,
        Primitive::Action,
        Primitive::Connection,
        Primitive::Condition,
        Primitive::Data,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Primitive::Trigger => "trigger",
            Primitive::Action => "action",
            Primitive::Connection => "connection",
            Primitive::Condition => "condition",
            Primitive::Data => "data",
        }
    }
}

/// One node of the graph.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Unique within the workflow; expressions refer to the node's output by it.
    pub id: String,
    /// Which primitive the node is built from.
    #[serde(rename = "type")]
    pub primitive: Primitive,
    /// The node kind within its primitive, for example `webhook` or `http_request`.
    pub kind: String,
    /// Kind-specific configuration.
    #[serde(default = "empty_object")]
    pub config: Value,
    /// How failed attempts are retried; transient failures only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// Limit for one attempt of this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<HumanDuration>,
    /// What a failure does once the retry policy is exhausted.
    #[serde(default, skip_serializing_if = "OnError::is_default")]
    pub on_error: OnError,
    /// Where the console draws the node; kept with the document, never read
    /// when it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui: Option<NodeUi>,
}

/// A node's place on the console's canvas.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeUi {
    #[schemars(range(min = -1_000_000.0, max = 1_000_000.0))]
    pub x: f64,
    #[schemars(range(min = -1_000_000.0, max = 1_000_000.0))]
    pub y: f64,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// A directed edge. `when` names the output of the source that takes it: a
/// condition's branch, or `error` / `success` of a node with `on_error: route`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Edge {
    pub from: String,
    pub to: String,
    /// For edges leaving a condition: the output (`"true"`, `"false"`, a switch
    /// case or `"default"`) on which the edge is taken. For edges leaving a
    /// node with `on_error: route`: `"error"` or `"success"` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
}

/// Retry policy of a node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included. 1 disables retries.
    pub max_attempts: u32,
    pub initial_backoff: HumanDuration,
    pub max_backoff: HumanDuration,
    pub multiplier: f64,
    /// Spread each backoff randomly over [backoff/2, backoff].
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff: HumanDuration::from_millis(100),
            max_backoff: HumanDuration::from_millis(10_000),
            multiplier: 2.0,
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// The most attempts a policy may ask for.
    pub const MAX_ATTEMPTS: u32 = 100;

    /// Backoff before attempt `next_attempt` (2 for the first retry), without jitter.
    pub fn backoff_before(&self, next_attempt: u32) -> std::time::Duration {
        let exponent = next_attempt.saturating_sub(2).min(64) as i32;
        let base = self.initial_backoff.0.as_secs_f64() * self.multiplier.powi(exponent);
        let capped = base.min(self.max_backoff.0.as_secs_f64()).max(0.0);
        std::time::Duration::from_secs_f64(capped)
    }
}

impl WorkflowDocument {
    /// Parses JSON text, reporting the JSON path of the first problem.
    pub fn from_json(text: &[u8]) -> Result<Self, ValidationErrors> {
        if text.len() > MAX_DOCUMENT_BYTES {
            return Err(ValidationErrors::one(ValidationError::new(
                "",
                "too_large",
                format!(
                    "the document is {} bytes; at most {MAX_DOCUMENT_BYTES} are accepted",
                    text.len()
                ),
            )));
        }
        let de = &mut serde_json::Deserializer::from_slice(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = json_path(e.path());
            let inner = e.into_inner();
            let code = if inner.is_syntax() || inner.is_eof() {
                "malformed_json"
            } else {
                "invalid_document"
            };
            ValidationErrors::one(ValidationError::new(path, code, inner.to_string()))
        })
    }

    /// Parses an already-decoded JSON value, reporting the path of the first problem.
    pub fn from_value(value: Value) -> Result<Self, ValidationErrors> {
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path = json_path(e.path());
            ValidationErrors::one(ValidationError::new(
                path,
                "invalid_document",
                e.into_inner().to_string(),
            ))
        })
    }

    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// The JSON Schema of the document, as published at `/v1/schema/workflow`.
    pub fn json_schema() -> Value {
        serde_json::to_value(schemars::schema_for!(WorkflowDocument)).unwrap_or(Value::Null)
    }
}

/// Renders a serde path as `nodes[3].config.url`.
fn json_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_primitive_is_reported_at_its_path() {
        let text = br#"{"name":"x","nodes":[{"id":"a","type":"trigger","kind":"manual"},{"id":"b","type":"robot","kind":"x"}]}"#;
        let errs = WorkflowDocument::from_json(text).unwrap_err();
        assert_eq!(errs.errors[0].path, "nodes[1].type");
        assert_eq!(errs.errors[0].code, "invalid_document");
    }

    #[test]
    fn malformed_json_is_its_own_code() {
        let errs = WorkflowDocument::from_json(b"{\"name\": ").unwrap_err();
        assert_eq!(errs.errors[0].code, "malformed_json");
    }

    #[test]
    fn backoff_grows_and_caps() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff_before(2).as_millis(), 100);
        assert_eq!(p.backoff_before(3).as_millis(), 200);
        assert_eq!(p.backoff_before(30).as_millis(), 10_000);
    }

    #[test]
    fn schema_names_the_five_primitives() {
        let schema = WorkflowDocument::json_schema().to_string();
        for p in Primitive::ALL {
            assert!(schema.contains(p.as_str()), "{}", p.as_str());
        }
    }
}
