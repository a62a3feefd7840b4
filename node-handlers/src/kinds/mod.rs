//! The node kinds, one module each, and the list the registry is built
//! from.

pub mod agents;
pub mod ai;
pub mod code;
pub mod credentials;
pub mod fail;
pub mod filter;
pub mod http;
pub mod if_else;
pub mod manual;
pub mod mapping;
pub mod merge;
pub mod nats;
pub mod respond;
pub mod schedule;
pub mod switch;
pub mod wait;
pub mod wait_for_event;
pub mod webhook;

use serde_json::Value;

use crate::expr::{Expressions, Scope};
use crate::kind::{Kind, registered};
use crate::llm::Llm;
use crate::{NodeError, Outcome, RunRequest};

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
        registered::<if_else::IfElse>(),
        registered::<switch::Switch>(),
        registered::<filter::Filter>(),
        registered::<mapping::Mapping>(),
        registered::<merge::Merge>(),
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
