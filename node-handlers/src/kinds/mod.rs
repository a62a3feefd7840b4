//! The node kinds, one module each, and the list the registry is built
//! from.

pub mod agents;
pub mod aggregate;
pub mod ai;
pub mod call_workflow;
pub mod code;
pub mod credentials;
pub mod fail;
pub mod filter;
pub mod for_each;
pub mod http;
pub mod if_else;
pub mod json_path;
pub mod manual;
pub mod mapping;
pub mod merge;
pub mod nats;
pub mod regex;
pub mod respond;
pub mod schedule;
pub mod schema_validate;
pub mod split;
pub mod switch;
pub mod wait;
pub mod wait_for_event;
pub mod webhook;
pub mod while_loop;

#[cfg(test)]
mod testing;

use serde_json::{Map, Value};

use crate::expr::{Expressions, Scope};
use crate::kind::{Kind, registered};
use crate::llm::Llm;
use crate::{ErrorClass, NodeError, Outcome, RunRequest};

/// Every kind the registry knows, in the order the catalog lists them.
pub(crate) fn all() -> Vec<Box<dyn Kind>> {
    vec![
        registered::<manual::Manual>(),
        registered::<webhook::Webhook>(),
        registered::<nats::Nats>(),
        registered::<schedule::ScheduleTrigger>(),
        registered::<http::HttpRequest>(),
        registered::<code::Code>(),
        registered::<ai::Ai>(),
        registered::<agents::Agents>(),
        registered::<respond::Respond>(),
        registered::<fail::Fail>(),
        registered::<wait::Wait>(),
        registered::<wait_for_event::WaitForEvent>(),
        registered::<for_each::ForEach>(),
        registered::<while_loop::While>(),
        registered::<call_workflow::CallWorkflow>(),
        registered::<if_else::IfElse>(),
        registered::<switch::Switch>(),
        registered::<filter::Filter>(),
        registered::<mapping::Mapping>(),
        registered::<merge::Merge>(),
        registered::<split::Split>(),
        registered::<aggregate::Aggregate>(),
        registered::<json_path::JsonPath>(),
        registered::<regex::Regex>(),
        registered::<schema_validate::SchemaValidate>(),
        registered::<credentials::Credentials>(),
    ]
}

/// What a running kind sees: the engine's services and the attempt.
pub struct Ctx<'a> {
    pub expr: &'a Expressions,
    pub http: &'a http::HttpClient,
    pub llm: &'a Llm,
    pub request: &'a RunRequest<'a>,
}

impl Ctx<'_> {
    /// What the node's templates and expressions read, and how large the
    /// values they build may grow: the tenant's output limit.
    pub fn scope(&self) -> Scope {
        Scope::new(self.request.scope, self.request.max_output_bytes)
    }
}

/// An output taking no branch.
pub(crate) fn output(value: Value) -> Result<Outcome, NodeError> {
    Ok(Outcome::Output {
        value,
        branch: None,
    })
}

/// The HTTP methods an `http_request` sends, in any case.
pub(crate) const METHOD_PATTERN: &str = "^(?i)(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS)$";

/// A duration, or a template that renders one.
pub(crate) fn templated_duration(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let _ = generator;
    schemars::json_schema!({
        "type": "string",
        "format": "duration",
        "x-flowmesh-field": "template",
        "description": "A duration such as \"250ms\", \"5s\" or \"2h\", or a template that renders one."
    })
}

/// A path of field names or list indexes, as `split` and `aggregate` read it.
pub(crate) fn field_path(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let _ = generator;
    schemars::json_schema!({
        "type": "string",
        "pattern": "^[^.]+(\\.[^.]+)*$",
        "x-flowmesh-field": "value",
        "description": "a path of field names or list indexes separated by dots, such as `customer.email` or `lines.0.sku`"
    })
}

/// The array an `items` expression gives; anything else fails the node,
/// saying what it gave.
pub(crate) fn items(ctx: &Ctx<'_>, expr: &str) -> Result<Vec<Value>, NodeError> {
    match ctx.expr.eval(expr, &ctx.scope())? {
        Value::Array(items) => Ok(items),
        other => Err(NodeError::permanent(format!(
            "config.items must give an array, but `{expr}` gave {}",
            described(&other)
        ))),
    }
}

/// What a value is, for messages: its type, and an object's fields (the
/// list is most often one of them).
pub(crate) fn described(value: &Value) -> String {
    match value {
        Value::Object(map) if !map.is_empty() => format!("an object with {}", fields(map)),
        other => kind_of(other).to_owned(),
    }
}

pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The first few fields of an object, for messages.
fn fields(map: &Map<String, Value>) -> String {
    const LISTED: usize = 10;
    let mut names: Vec<&str> = map.keys().take(LISTED).map(String::as_str).collect();
    if map.len() > LISTED {
        names.push("…");
    }
    format!("fields {}", names.join(", "))
}

/// The value at `path` (a [`field_path`]) in item `i` of a list; the error
/// says what is missing and what is there.
pub(crate) fn pick<'v>(i: usize, item: &'v Value, path: &str) -> Result<&'v Value, NodeError> {
    let missing = |why: String| NodeError::permanent(format!("item {i} {why} (field {path:?})"));
    let mut at = item;
    for key in path.split('.') {
        at = match at {
            Value::Object(map) => map
                .get(key)
                .ok_or_else(|| missing(format!("has no field {key:?}; it has {}", fields(map))))?,
            Value::Array(list) => key
                .parse::<usize>()
                .ok()
                .and_then(|i| list.get(i))
                .ok_or_else(|| {
                    missing(format!("has no index {key:?} in a list of {}", list.len()))
                })?,
            other => {
                return Err(missing(format!(
                    "is {} where {key:?} is looked up",
                    kind_of(other)
                )));
            }
        };
    }
    Ok(at)
}

/// The bytes of the values a kind gathers for its output, so that one
/// over the tenant's cap fails as soon as it passes it, not once built.
pub(crate) struct OutputBudget {
    cap: usize,
    used: usize,
}

impl OutputBudget {
    pub(crate) fn new(ctx: &Ctx<'_>) -> Self {
        Self {
            cap: ctx.request.max_output_bytes,
            used: 0,
        }
    }

    pub(crate) fn charge(&mut self, bytes: usize) -> Result<(), NodeError> {
        self.used = self.used.saturating_add(bytes);
        self.fits(self.used)
    }

    /// Fails when `bytes` alone would pass the cap: what is about to be
    /// built is refused before it is.
    pub(crate) fn fits(&self, bytes: usize) -> Result<(), NodeError> {
        if bytes <= self.cap {
            return Ok(());
        }
        Err(NodeError {
            class: ErrorClass::OutputTooLarge,
            message: format!(
                "the output grew past this tenant's cap of {} bytes; select less or raise max_output_bytes in the tenant's settings",
                self.cap
            ),
        })
    }

    /// Charges a value's size as JSON, counted only up to the cap.
    pub(crate) fn charge_value(&mut self, value: &Value) -> Result<(), NodeError> {
        let mut counter = Counter {
            bytes: 0,
            limit: self.cap.saturating_sub(self.used).saturating_add(1),
        };
        // Stopped by the counter past the limit; the bytes counted tell.
        let _ = serde_json::to_writer(&mut counter, value);
        self.charge(counter.bytes)
    }
}

/// Counts what is written, refusing more once past its limit.
struct Counter {
    bytes: usize,
    limit: usize,
}

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes = self.bytes.saturating_add(buf.len());
        if self.bytes > self.limit {
            return Err(std::io::Error::other("over the output cap"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
