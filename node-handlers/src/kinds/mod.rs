//! The node kinds: the catalog, configuration checks, and (in submodules)
//! what each kind does.

pub mod agents;
pub mod ai;
pub mod code;
pub mod flow;
pub mod http;

use flowmesh_model::validate::{Outputs, ValidationError};
use flowmesh_model::{HumanDuration, Node, Primitive};
use serde_json::{Map, Value};

use crate::expr::{Expressions, Scope};
use crate::{KindInfo, RunRequest};

/// What a running kind sees.
pub struct Ctx<'a> {
    pub expr: &'a Expressions,
    pub request: &'a RunRequest<'a>,
}

impl Ctx<'_> {
    /// What the node's templates and expressions read, and how large the
    /// values they build may grow: the tenant's output limit.
    pub fn scope(&self) -> Scope {
        Scope::new(self.request.scope, self.request.max_output_bytes)
    }
}

const fn kind(
    primitive: Primitive,
    kind: &'static str,
    description: &'static str,
    outputs: &'static str,
) -> KindInfo {
    KindInfo {
        primitive,
        kind,
        description,
        outputs,
    }
}

pub const CATALOG: &[KindInfo] = &[
    kind(
        Primitive::Trigger,
        "manual",
        "Started through the API with a JSON input (trigger.body).",
        "one",
    ),
    kind(
        Primitive::Trigger,
        "webhook",
        "Started by an HTTP request to /hooks/{tenant}/{path}; config: path, method, auth (scheme: token, basic, hmac, github, stripe or slack; secret: a tenant secret).",
        "one",
    ),
    kind(
        Primitive::Trigger,
        "nats",
        "Started by a JSON message published to {prefix}.trigger.{tenant}.{subject} on NATS (distributed mode); a request gets the execution id, or the response of a respond node. config: subject (tokens of letters, digits, _ and -, joined by dots). trigger holds body and subject.",
        "one",
    ),
    kind(
        Primitive::Trigger,
        "schedule",
        "Starts the published workflow on a cron schedule; config: cron (5 fields, or 6 with seconds), timezone (IANA, default UTC), missed (skip or run_once: ticks missed while no engine ran). trigger holds scheduled_at.",
        "one",
    ),
    kind(
        Primitive::Action,
        "http_request",
        "Calls an HTTP API; config: method, url, headers, query, body, timeout, connection.",
        "one",
    ),
    kind(
        Primitive::Action,
        "code",
        "Runs JavaScript or Python in a sandbox; config: language, source (a function body of input), limits.",
        "one",
    ),
    kind(
        Primitive::Action,
        "ai",
        "Asks the tenant's language model; config: prompt (a template), system, model, temperature, max_tokens, schema (a JSON Schema: the answer must be JSON matching it, a mismatch fails the attempt), stream. Output: text, json (with a schema), model, usage.",
        "one",
    ),
    kind(
        Primitive::Action,
        "agents",
        "A team of model-backed agents; config: agents [{id, role, goal, instructions}], tasks [{id, agent, description (a template), expected_output}], process (sequential, or plan: a coordinator orders the work), max_rounds, max_tokens, model, temperature. Each answer feeds the next; output: final, contributions, rounds, usage.",
        "one",
    ),
    kind(
        Primitive::Action,
        "respond",
        "Answers the synchronous caller; config: status, headers, body.",
        "one",
    ),
    kind(
        Primitive::Action,
        "wait",
        "Waits durably; config: duration.",
        "one",
    ),
    kind(
        Primitive::Action,
        "wait_for_event",
        "Waits durably for POST /v1/executions/{id}/resume (human approval, a callback); its payload is the output. Config: timeout (optional; the node fails when it passes).",
        "one",
    ),
    kind(
        Primitive::Condition,
        "if_else",
        "Chooses the output true or false; config: logic (an expression).",
        "true, false",
    ),
    kind(
        Primitive::Condition,
        "switch",
        "Chooses the first matching case; config: value, cases [{name, equals | when}].",
        "case names, default",
    ),
    kind(
        Primitive::Condition,
        "filter",
        "Keeps the items of an array that match; config: items, condition (item is bound).",
        "one",
    ),
    kind(
        Primitive::Data,
        "mapping",
        "Builds an object from templates; config: mapping.",
        "one",
    ),
    kind(
        Primitive::Data,
        "merge",
        "Waits for every branch not skipped and combines them; config: mode (object, append, shallow).",
        "one",
    ),
    kind(
        Primitive::Connection,
        "credentials",
        "A secret that actions referencing it send as a header; config: secret, header, prefix.",
        "none",
    ),
];

pub const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
pub const WEBHOOK_METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// The route of a webhook trigger: (METHOD, path without surrounding slashes).
/// The method under which a `nats` trigger's subject is routed, beside
/// webhooks' HTTP methods.
pub const NATS_ROUTE: &str = "NATS";

/// The (method, path) a trigger is reached by: a webhook's HTTP method and
/// path, or [`NATS_ROUTE`] and a `nats` trigger's subject.
pub fn webhook_route(node: &Node) -> Option<(String, String)> {
    if node.primitive != Primitive::Trigger {
        return None;
    }
    if node.kind == "nats" {
        let subject = node.config.get("subject")?.as_str()?.to_owned();
        return Some((NATS_ROUTE.to_owned(), subject));
    }
    if node.kind != "webhook" {
        return None;
    }
    let path = node
        .config
        .get("path")?
        .as_str()?
        .trim_matches('/')
        .to_owned();
    let method = node
        .config
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or("POST")
        .to_ascii_uppercase();
    Some((method, path))
}

/// The keys of `config` not in `known`.
pub(crate) fn unknown_fields(config: &Map<String, Value>, known: &[&str]) -> Vec<String> {
    config
        .keys()
        .filter(|k| !known.contains(&k.as_str()))
        .cloned()
        .collect()
}

/// Problems of one node's config, pushed with their paths.
pub(crate) struct Checker<'a> {
    expr: &'a Expressions,
    config: &'a Value,
    path: String,
    errors: &'a mut Vec<ValidationError>,
}

impl Checker<'_> {
    pub(crate) fn push(&mut self, field: &str, code: &str, message: impl Into<String>) {
        let path = if field.is_empty() {
            self.path.clone()
        } else {
            format!("{}.{field}", self.path)
        };
        self.errors.push(ValidationError::new(path, code, message));
    }

    pub(crate) fn get(&self, field: &str) -> Option<&Value> {
        self.config.get(field)
    }

    pub(crate) fn required_str(&mut self, field: &str) -> Option<String> {
        match self.get(field) {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
            Some(Value::String(_)) | None => {
                self.push(field, "required", format!("{field} is required"));
                None
            }
            Some(_) => {
                self.push(field, "invalid_type", format!("{field} must be a string"));
                None
            }
        }
    }

    fn optional_str(&mut self, field: &str) -> Option<String> {
        match self.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.push(field, "invalid_type", format!("{field} must be a string"));
                None
            }
        }
    }

    /// Flags every field not in `known`.
    pub(crate) fn only(&mut self, known: &[&str], what: &str) {
        let unknown = self
            .config
            .as_object()
            .map(|config| unknown_fields(config, known))
            .unwrap_or_default();
        for field in unknown {
            self.push(
                &field,
                "unknown_field",
                format!("{what} takes {}", known.join(", ")),
            );
        }
    }

    pub(crate) fn expression(&mut self, field: &str) {
        if let Some(expr) = self.required_str(field)
            && let Err(e) = self.expr.check_expression(&expr)
        {
            self.push(field, "invalid_expression", e);
        }
    }

    /// Every string inside `value` must be a valid template.
    fn templates(&mut self, field: &str, value: &Value) {
        match value {
            Value::String(s) => {
                if let Err(e) = self.expr.check_template(s) {
                    self.push(field, "invalid_template", e);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.templates(&format!("{field}[{i}]"), item);
                }
            }
            Value::Object(map) => {
                for (k, v) in map {
                    self.templates(&format!("{field}.{k}"), v);
                }
            }
            _ => {}
        }
    }

    fn object_of_templates(&mut self, field: &str) {
        match self.get(field).cloned() {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (k, v) in &map {
                    if v.is_string() {
                        self.templates(&format!("{field}.{k}"), v);
                    } else {
                        self.push(&format!("{field}.{k}"), "invalid_type", "must be a string");
                    }
                }
            }
            Some(_) => self.push(
                field,
                "invalid_type",
                format!("{field} must be an object of strings"),
            ),
        }
    }

    pub(crate) fn one_of(&mut self, field: &str, allowed: &[&str], default: &str) -> String {
        let value = self
            .optional_str(field)
            .unwrap_or_else(|| default.to_owned());
        let upper = if allowed
            .iter()
            .all(|a| a.chars().all(|c| c.is_ascii_uppercase()))
        {
            value.to_ascii_uppercase()
        } else {
            value.clone()
        };
        if !allowed.contains(&upper.as_str()) {
            self.push(
                field,
                "invalid_value",
                format!("{field} must be one of {}", allowed.join(", ")),
            );
        }
        upper
    }

    fn duration(&mut self, field: &str, required: bool) {
        match (self.get(field), required) {
            (None, true) => self.push(
                field,
                "required",
                format!("{field} is required, for example \"5s\""),
            ),
            (None, false) => {}
            (Some(Value::String(s)), _) if s.contains("{{") => {
                let s = s.clone();
                self.templates(field, &Value::String(s));
            }
            (Some(Value::String(s)), _) => {
                if s.parse::<HumanDuration>().is_err() {
                    self.push(
                        field,
                        "invalid_duration",
                        format!(
                            "{s:?} is not a duration; write it like \"250ms\", \"5s\" or \"2h\""
                        ),
                    );
                }
            }
            (Some(_), _) => self.push(
                field,
                "invalid_type",
                format!("{field} must be a duration string"),
            ),
        }
    }
}

/// Checks a node's config; `None` when the kind is unknown for its primitive.
pub fn check(
    expr: &Expressions,
    node: &Node,
    path: &str,
    errors: &mut Vec<ValidationError>,
) -> Option<Outputs> {
    let mut c = Checker {
        expr,
        config: &node.config,
        path: format!("{path}.config"),
        errors,
    };
    if !node.config.is_object() {
        c.push("", "invalid_type", "config must be an object");
        return CATALOG
            .iter()
            .any(|k| k.primitive == node.primitive && k.kind == node.kind)
            .then_some(Outputs::Single);
    }
    let outputs = match (node.primitive, node.kind.as_str()) {
        (Primitive::Trigger, "manual") => Outputs::Single,
        (Primitive::Trigger, "schedule") => {
            if let Some(Err(problem)) = crate::schedule::Schedule::of_node(node) {
                c.push(problem.field, "invalid_schedule", problem.message);
            }
            Outputs::Single
        }
        (Primitive::Trigger, "nats") => {
            if let Some(subject) = c.required_str("subject") {
                let ok = subject.len() <= 128
                    && subject.split('.').all(|token| {
                        !token.is_empty()
                            && token
                                .chars()
                                .all(|ch| ch.is_ascii_alphanumeric() || "_-".contains(ch))
                    });
                if !ok {
                    c.push(
                        "subject",
                        "invalid_value",
                        "subject: tokens of letters, digits, _ and - joined by dots (no wildcards), at most 128 characters",
                    );
                }
            }
            Outputs::Single
        }
        (Primitive::Trigger, "webhook") => {
            if let Some(p) = c.required_str("path") {
                let trimmed = p.trim_matches('/');
                let ok = !trimmed.is_empty()
                    && trimmed
                        .chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || "_-/.".contains(ch))
                    && !trimmed.contains("//");
                if !ok {
                    c.push(
                        "path",
                        "invalid_value",
                        "path may hold letters, digits, _ - . and single slashes",
                    );
                }
            }
            c.one_of("method", &WEBHOOK_METHODS, "POST");
            if let Some(Err(problems)) = crate::webhook_auth::WebhookAuth::of_node(node) {
                for problem in problems {
                    c.push(&problem.field, "invalid_auth", problem.message);
                }
            }
            Outputs::Single
        }
        (Primitive::Action, "http_request") => {
            if let Some(url) = c.required_str("url") {
                c.templates("url", &Value::String(url));
            }
            c.one_of("method", &METHODS, "GET");
            c.object_of_templates("headers");
            c.object_of_templates("query");
            if let Some(body) = c.get("body").cloned() {
                c.templates("body", &body);
            }
            c.duration("timeout", false);
            Outputs::Single
        }
        (Primitive::Action, "code") => {
            code::check(&mut c);
            Outputs::Single
        }
        (Primitive::Action, "ai") => {
            ai::check(&mut c);
            Outputs::Single
        }
        (Primitive::Action, "agents") => {
            agents::check(&mut c);
            Outputs::Single
        }
        (Primitive::Action, "respond") => {
            match c.get("status") {
                None => {}
                Some(Value::Number(n)) if n.as_u64().is_some_and(|s| (200..=599).contains(&s)) => {}
                Some(_) => c.push(
                    "status",
                    "invalid_value",
                    "status must be an HTTP status from 200 to 599 (informational 1xx answers are not allowed)",
                ),
            }
            c.object_of_templates("headers");
            if let Some(body) = c.get("body").cloned() {
                c.templates("body", &body);
            }
            Outputs::Single
        }
        (Primitive::Action, "wait") => {
            c.duration("duration", true);
            Outputs::Single
        }
        (Primitive::Action, "wait_for_event") => {
            c.duration("timeout", false);
            Outputs::Single
        }
        (Primitive::Condition, "if_else") => {
            c.expression("logic");
            Outputs::Named(vec!["true".into(), "false".into()])
        }
        (Primitive::Condition, "switch") => flow::check_switch(&mut c),
        (Primitive::Condition, "filter") => {
            c.expression("items");
            c.expression("condition");
            Outputs::Single
        }
        (Primitive::Data, "mapping") => {
            match c.get("mapping").cloned() {
                Some(Value::Object(map)) => c.templates("mapping", &Value::Object(map)),
                Some(_) => c.push("mapping", "invalid_type", "mapping must be an object"),
                None => c.push("mapping", "required", "mapping is required"),
            }
            Outputs::Single
        }
        (Primitive::Data, "merge") => {
            c.one_of("mode", &["object", "append", "shallow"], "object");
            Outputs::Single
        }
        (Primitive::Connection, "credentials") => {
            c.required_str("secret");
            c.optional_str("header");
            c.optional_str("prefix");
            Outputs::Single
        }
        _ => return None,
    };
    Some(outputs)
}
