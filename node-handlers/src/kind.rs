//! What a node kind is: its name, primitive, typed config with a derived
//! JSON Schema, outputs, what the engine must know to run it, and its run
//! function. Each kind is one module of `kinds/` implementing [`NodeKind`];
//! the registry holds them behind [`Kind`].

use std::future::Future;
use std::marker::PhantomData;

use flowmesh_model::names::Names;
use flowmesh_model::validate::{Outputs, ValidationError};
use flowmesh_model::{Primitive, SchemaCheck};
use flowmesh_sandbox::Limits;
use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize as _, Serialize};
use serde_json::{Map, Value};

use crate::expr::{Expressions, Problem};
use crate::kinds::Ctx;
use crate::schedule::{self, Schedule};
use crate::webhook_auth::{self, WebhookAuth};
use crate::{NodeError, Outcome};

/// The schema keyword saying how a config field is read: `template`
/// (strings rendered against the scope), `expression` (evaluated; a value
/// wholly wrapped in `{{ … }}` is the same expression) or `value` (taken
/// as written).
pub const FIELD: &str = "x-flowmesh-field";

/// The schema keyword listing the names a template or expression field may
/// read besides the node's scope (a filter's condition reads `item`).
pub const BINDS: &str = "x-flowmesh-binds";

/// How the engine runs a node of a kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Execution {
    /// Starts executions; never run as a step.
    Trigger,
    /// Referenced by actions (a connection); never run.
    Referenced,
    /// Computed at once over its inputs within the execution's own turn
    /// (a wait it asks for is handed to the execution).
    Inline,
    /// Run as a task of its own, whose result the execution awaits.
    Task,
    /// A body of nodes that the engine itself runs node by node (`for_each`).
    /// The kind runs within the execution's turn twice: when the node
    /// starts (reading what to run), and once its body has settled (with
    /// what it gave, to build the output).
    Composite,
}

/// What the engine asks of a kind besides running it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Behaviour {
    pub execution: Execution,
    /// Computes inside the engine process or its sandboxes (templates,
    /// conditions, code): an engine that dies while one runs counts
    /// against its execution. Outside calls and waits do not.
    pub in_engine: bool,
    /// Acts outside the engine (calls a service, a model): once such a node
    /// has started, running the workflow again may repeat its effect.
    pub outside_effects: bool,
    /// Runs user code in a sandbox: its time is billed as sandbox time and
    /// its kills are counted.
    pub sandboxed: bool,
    /// Its output answers a synchronous caller.
    pub answers_caller: bool,
    /// Waits for a resume through the API, parked meanwhile.
    pub awaits_resume: bool,
    /// Starts a child execution, and may wait (parked) for its end.
    pub calls_workflow: bool,
    /// Its failure is the workflow's verdict on its run: neither retried
    /// nor handled by `on_error` (which is refused on it).
    pub ends_run: bool,
}

impl Behaviour {
    pub const fn of(execution: Execution) -> Self {
        Self {
            execution,
            in_engine: false,
            outside_effects: false,
            sandboxed: false,
            answers_caller: false,
            awaits_resume: false,
            calls_workflow: false,
            ends_run: false,
        }
    }

    pub const TRIGGER: Self = Self::of(Execution::Trigger);
    pub const REFERENCED: Self = Self::of(Execution::Referenced);
    /// Inline and computed in the engine: conditions and data kinds.
    pub const COMPUTE: Self = Self {
        in_engine: true,
        ..Self::of(Execution::Inline)
    };
    /// Inline, handing a wait to the execution.
    pub const WAIT: Self = Self::of(Execution::Inline);
    /// A task calling something outside the engine.
    pub const OUTSIDE_CALL: Self = Self {
        outside_effects: true,
        ..Self::of(Execution::Task)
    };

    /// The behaviour of an unknown kind: a plain task, which fails when run.
    pub const UNKNOWN: Self = Self::of(Execution::Task);

    pub fn is_inline(&self) -> bool {
        self.execution == Execution::Inline
    }

    /// Whether the execution runs it within its own turn: inline kinds,
    /// and composite ones, whose bodies it runs node by node.
    pub fn runs_in_turn(&self) -> bool {
        matches!(self.execution, Execution::Inline | Execution::Composite)
    }
}

/// How a trigger node starts executions, read from its config.
#[derive(Clone, Debug)]
pub enum Trigger {
    /// Started through the API.
    Manual,
    /// Reached by an HTTP request to its method and path (and started
    /// through the API too); `auth` checks callers, and is an error for a
    /// version stored before its rules, which then opens to no one.
    Webhook {
        method: String,
        path: String,
        auth: Option<Result<WebhookAuth, Vec<webhook_auth::Problem>>>,
    },
    /// Reached by a NATS message on its subject.
    Nats { subject: String },
    /// Started by the clock.
    Schedule(Box<Result<Schedule, schedule::Problem>>),
}

/// The method under which a `nats` trigger's subject is routed, beside
/// webhooks' HTTP methods.
pub const NATS_ROUTE: &str = "NATS";

impl Trigger {
    /// The (method, path) it is routed by: a webhook's HTTP method and path,
    /// or [`NATS_ROUTE`] and a subject.
    pub fn route(&self) -> Option<(String, String)> {
        match self {
            Trigger::Webhook { method, path, .. } => Some((method.clone(), path.clone())),
            Trigger::Nats { subject } => Some((NATS_ROUTE.to_owned(), subject.clone())),
            Trigger::Manual | Trigger::Schedule(_) => None,
        }
    }
}

/// What a document is checked against besides its own rules: the limits
/// where it will run (the instance's, or its tenant's own).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// A code node's limits where it sets none.
    pub code_defaults: Limits,
    /// The most a code node may ask for.
    pub code_maxima: Limits,
}

impl Default for Bounds {
    /// An instance's without settings of its own.
    fn default() -> Self {
        Bounds {
            code_defaults: Limits::default(),
            code_maxima: Limits::maxima(),
        }
    }
}

/// Problems a kind finds in its typed config, beyond what its schema says.
pub struct Problems<'a> {
    path: String,
    bounds: &'a Bounds,
    errors: &'a mut Vec<ValidationError>,
}

impl Problems<'_> {
    /// The limits the document is checked against.
    pub fn bounds(&self) -> &Bounds {
        self.bounds
    }

    /// A problem at `field` (below the node's `config`; empty for the config).
    pub fn push(&mut self, field: &str, code: &str, message: impl Into<String>) {
        let path = match field {
            "" => self.path.clone(),
            _ => format!("{}.{field}", self.path),
        };
        self.errors.push(ValidationError::new(path, code, message));
    }
}

/// One node kind. Implement it in one module of `kinds/` and add the
/// module's kind to `kinds::all`.
pub trait NodeKind: Send + Sync + 'static {
    /// The config, read from the node's `config`. Its derived schema is
    /// published and checked before it is deserialized; mark fields read
    /// as templates or expressions with [`FIELD`].
    type Config: DeserializeOwned + JsonSchema + Send;

    const NAME: &'static str;
    const PRIMITIVE: Primitive;
    const DESCRIPTION: &'static str;
    /// Its outputs, in words: `one`, or what outgoing edges name in `when`.
    const OUTPUTS: &'static str = "one";
    const BEHAVIOUR: Behaviour;

    /// A config that validates, for the catalog.
    fn example() -> Value;

    /// Rules the schema cannot state (references between fields, values
    /// other libraries parse); the node's outputs.
    fn check(config: &Self::Config, problems: &mut Problems<'_>) -> Outputs {
        let _ = (config, problems);
        Outputs::Single
    }

    /// How a trigger starts executions; none for other kinds.
    fn trigger(config: &Self::Config) -> Option<Trigger> {
        let _ = config;
        None
    }

    /// Runs one attempt. Triggers and connections are never run.
    fn run(
        config: Self::Config,
        ctx: &Ctx<'_>,
    ) -> impl Future<Output = Result<Outcome, NodeError>> + Send {
        let _ = (config, ctx);
        std::future::ready(Err(NodeError::permanent(format!(
            "{} {:?} does not run",
            Self::PRIMITIVE.as_str(),
            Self::NAME
        ))))
    }
}

/// A node kind, as offered to users and generators.
#[derive(Clone, Debug, Serialize)]
pub struct KindInfo {
    pub primitive: Primitive,
    pub kind: &'static str,
    pub description: &'static str,
    pub outputs: &'static str,
    /// The JSON Schema of its config, fields annotated with [`FIELD`].
    pub config_schema: Value,
    pub example: Value,
}

/// A [`NodeKind`] with its types erased, as the registry holds it.
pub trait Kind: Send + Sync {
    fn name(&self) -> &'static str;
    fn primitive(&self) -> Primitive;
    fn info(&self) -> KindInfo;
    fn behaviour(&self) -> Behaviour;
    /// Checks a config against the schema, the annotated fields' syntax
    /// and names, then the kind's own rules.
    fn check(&self, config: &Value, checking: Checking<'_>) -> Outputs;
    fn trigger(&self, config: &Value) -> Option<Trigger>;
    fn run<'a>(&'a self, ctx: &'a Ctx<'a>) -> BoxFuture<'a, Result<Outcome, NodeError>>;
}

/// What checking a node's config needs, and where its problems go.
pub struct Checking<'a> {
    pub expr: &'a Expressions,
    /// The node's path (`nodes[3]`): problems are pushed below it.
    pub path: &'a str,
    /// What the node's templates and expressions may read.
    pub names: &'a Names<'a>,
    pub bounds: &'a Bounds,
    pub errors: &'a mut Vec<ValidationError>,
}

struct Registered<K> {
    schema: SchemaCheck,
    kind: PhantomData<fn() -> K>,
}

/// A kind for the registry.
pub(crate) fn registered<K: NodeKind>() -> Box<dyn Kind> {
    let mut schema = serde_json::to_value(schemars::schema_for!(K::Config)).unwrap_or(Value::Null);
    annotate_values(&mut schema);
    let schema = SchemaCheck::new(schema)
        .unwrap_or_else(|e| panic!("the config schema of {} does not compile: {e}", K::NAME));
    Box::new(Registered::<K> {
        schema,
        kind: PhantomData,
    })
}

impl<K: NodeKind> Kind for Registered<K> {
    fn name(&self) -> &'static str {
        K::NAME
    }

    fn primitive(&self) -> Primitive {
        K::PRIMITIVE
    }

    fn info(&self) -> KindInfo {
        KindInfo {
            primitive: K::PRIMITIVE,
            kind: K::NAME,
            description: K::DESCRIPTION,
            outputs: K::OUTPUTS,
            config_schema: self.schema.schema().clone(),
            example: K::example(),
        }
    }

    fn behaviour(&self) -> Behaviour {
        K::BEHAVIOUR
    }

    fn check(&self, config: &Value, checking: Checking<'_>) -> Outputs {
        let Checking {
            expr,
            path,
            names,
            bounds,
            errors,
        } = checking;
        let path = format!("{path}.config");
        let before = errors.len();
        self.schema.check(config, &path, errors);
        let schema_ok = errors.len() == before;
        let root = self.schema.schema();
        let mut fields = Fields {
            expr,
            root,
            names,
            errors,
        };
        fields.walk(root, config, &path);
        if !schema_ok {
            return Outputs::Unchecked;
        }
        match serde_path_to_error::deserialize::<_, K::Config>(config) {
            Ok(typed) => K::check(
                &typed,
                &mut Problems {
                    path,
                    bounds,
                    errors,
                },
            ),
            Err(e) => {
                let at = e.path().to_string();
                let at = if at == "." {
                    path
                } else {
                    format!("{path}.{at}")
                };
                errors.push(ValidationError::new(
                    at,
                    "invalid_value",
                    e.into_inner().to_string(),
                ));
                Outputs::Unchecked
            }
        }
    }

    fn trigger(&self, config: &Value) -> Option<Trigger> {
        K::trigger(&K::Config::deserialize(config).ok()?)
    }

    fn run<'a>(&'a self, ctx: &'a Ctx<'a>) -> BoxFuture<'a, Result<Outcome, NodeError>> {
        Box::pin(async move {
            let config = K::Config::deserialize(&ctx.request.node.config)
                .map_err(|e| NodeError::permanent(format!("invalid {} config: {e}", K::NAME)))?;
            K::run(config, ctx).await
        })
    }
}

/// Marks as `value` every property that says nothing else and is not a
/// structure whose own fields say it.
fn annotate_values(schema: &mut Value) {
    let defs = schema.get("$defs").cloned().unwrap_or_default();
    let resolve = |s: &Value| -> Value {
        match s.get("$ref").and_then(Value::as_str) {
            Some(r) => defs
                .get(r.rsplit('/').next().unwrap_or_default())
                .cloned()
                .unwrap_or_default(),
            None => s.clone(),
        }
    };
    let structure = |s: &Value| {
        resolve(s).get("properties").is_some()
            || s.get("items")
                .is_some_and(|i| resolve(i).get("properties").is_some())
    };
    let mark = |object: &mut Value| {
        let properties = object.get_mut("properties").and_then(Value::as_object_mut);
        for property in properties.into_iter().flat_map(|p| p.values_mut()) {
            if !structure(property)
                && let Some(map) = property.as_object_mut()
            {
                map.entry(FIELD).or_insert_with(|| Value::from("value"));
            }
        }
    };
    mark(schema);
    if let Some(defs) = schema.get_mut("$defs").and_then(Value::as_object_mut) {
        defs.values_mut().for_each(mark);
    }
}

/// Checks the fields a schema marks as templates or expressions, wherever
/// they are in a config: their syntax, then what they read.
struct Fields<'a, 'e> {
    expr: &'a Expressions,
    root: &'a Value,
    names: &'a Names<'a>,
    errors: &'e mut Vec<ValidationError>,
}

impl<'a> Fields<'a, '_> {
    fn walk(&mut self, schema: &'a Value, value: &Value, path: &str) {
        let schema = match schema.get("$ref") {
            Some(_) => self.resolve_root(schema),
            None => schema,
        };
        let how = schema.get(FIELD).and_then(Value::as_str);
        if matches!(how, Some("template" | "expression")) {
            let mut names = self.names.clone();
            let binds = schema.get(BINDS).and_then(Value::as_array);
            for name in binds.into_iter().flatten().filter_map(Value::as_str) {
                names.bind(name);
            }
            match how {
                Some("template") => self.templates(value, path, &names),
                _ => {
                    if let Value::String(text) = value {
                        let checked = self.expr.check_expression(text, &names);
                        self.push(path, "invalid_expression", checked);
                    }
                }
            }
            return;
        }
        let branches = schema.get("anyOf").and_then(Value::as_array);
        for branch in branches.into_iter().flatten() {
            if branch.get("$ref").is_some() || branch.get("properties").is_some() {
                self.walk(branch, value, path);
            }
        }
        match value {
            Value::Object(map) => self.object(schema, map, path),
            Value::Array(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        self.walk(item_schema, item, &format!("{path}[{i}]"));
                    }
                }
            }
            _ => {}
        }
    }

    fn resolve_root(&self, schema: &'a Value) -> &'a Value {
        let root: &'a Value = self.root;
        schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix('#'))
            .and_then(|pointer| root.pointer(pointer))
            .unwrap_or(schema)
    }

    fn object(&mut self, schema: &'a Value, map: &Map<String, Value>, path: &str) {
        let properties = schema.get("properties");
        let rest = schema.get("additionalProperties").filter(|s| s.is_object());
        for (key, value) in map {
            let field = properties.and_then(|p| p.get(key)).or(rest);
            if let Some(field) = field {
                self.walk(field, value, &format!("{path}.{key}"));
            }
        }
    }

    /// Every string inside `value` must be a valid template, reading
    /// only `names`.
    fn templates(&mut self, value: &Value, path: &str, names: &Names<'_>) {
        match value {
            Value::String(s) => {
                let checked = self.expr.check_template(s, names);
                self.push(path, "invalid_template", checked);
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.templates(item, &format!("{path}[{i}]"), names);
                }
            }
            Value::Object(map) => {
                for (k, v) in map {
                    self.templates(v, &format!("{path}.{k}"), names);
                }
            }
            _ => {}
        }
    }

    /// A field's problems: its syntax error (under `invalid`), or every
    /// problem with what it reads.
    fn push(&mut self, path: &str, invalid: &str, checked: Result<Vec<Problem>, String>) {
        match checked {
            Err(e) => self.errors.push(ValidationError::new(path, invalid, e)),
            Ok(problems) => self.errors.extend(
                problems
                    .into_iter()
                    .map(|p| ValidationError::new(path, p.code, p.message)),
            ),
        }
    }
}
