//! Node handlers: the node kinds of flowmesh, their configuration checks and
//! their behaviour. This crate knows nothing of actors, buses or databases:
//! it turns a node, its upstream data and its secrets into an outcome.

pub mod expr;
pub mod kind;
mod kinds;
pub mod llm;
pub mod schedule;
mod ssrf;
pub mod webhook_auth;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use flowmesh_model::for_each::LoopSpec;
use flowmesh_model::names::Names;
use flowmesh_model::validate::{KindCatalog, Outputs, ValidationError};
use flowmesh_model::{
    HumanDuration, Node, OnError, Primitive, TenantId, WorkflowDocument, WorkflowGraph,
};
pub use flowmesh_sandbox::{Class as SandboxClass, Failure, Language, LimitsOverride, Returned};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use kind::{Behaviour, Bounds, Execution, KindInfo, NATS_ROUTE, NodeKind, Trigger};

/// Settings of the node handlers.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Options {
    pub http: HttpOptions,
    pub llm: llm::Options,
    /// Computation budget of one expression or template evaluation; a
    /// runaway template fails its node instead of spinning.
    pub expression_fuel: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            http: HttpOptions::default(),
            llm: llm::Options::default(),
            expression_fuel: 50_000,
        }
    }
}

/// Settings of `http_request`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpOptions {
    /// Hosts or CIDRs that may be reached although they are loopback,
    /// private or link-local (for example `127.0.0.1`, `10.0.0.0/8`).
    pub allow_hosts: Vec<String>,
    /// Timeout of a request whose node sets none.
    pub default_timeout: HumanDuration,
    /// Largest response body read; a larger one fails the node.
    pub max_response_bytes: usize,
    pub user_agent: String,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            allow_hosts: Vec::new(),
            default_timeout: HumanDuration::from_millis(30_000),
            max_response_bytes: 10 * 1024 * 1024,
            user_agent: concat!("flowmesh/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

impl HttpOptions {
    /// Reads a comma-separated allow-list.
    pub fn parse_allow_hosts(list: &str) -> Vec<String> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is wrong; fix it and start again.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The HTTP client of `what` cannot be built with these settings.
    #[error("invalid configuration: the {what} client cannot be built: {source}")]
    Client {
        what: &'static str,
        #[source]
        source: reqwest::Error,
    },
}

impl Error {
    pub fn is_retryable(&self) -> bool {
        false
    }
}

/// How a node attempt failed, which decides whether it is retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Network errors, HTTP 429 and 5xx: worth another attempt.
    Transient,
    /// Bad configuration or data, HTTP 4xx, an error raised by user code:
    /// another attempt fails the same way.
    Permanent,
    /// The attempt ran out of time.
    Timeout,
    /// Refused by a safety rule (a private address, a process started from
    /// a sandbox, for example).
    Denied,
    /// User code passed its memory or stack limit.
    Memory,
    /// User code returned more than its output limit.
    OutputTooLarge,
    /// The sandbox running user code died.
    Crashed,
    /// A language model's answer did not have the required shape; another
    /// attempt may well get one that has.
    InvalidOutput,
    /// The workflow ended itself (a `fail` node): never retried, never
    /// handled by `on_error`.
    Raised,
    /// A `while` reached its `max_iterations` or `max_duration` before its
    /// `until` held.
    LoopExhausted,
}

impl ErrorClass {
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorClass::Transient
                | ErrorClass::Timeout
                | ErrorClass::Crashed
                | ErrorClass::InvalidOutput
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Transient => "transient",
            ErrorClass::Permanent => "permanent",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Denied => "denied",
            ErrorClass::Memory => "memory",
            ErrorClass::OutputTooLarge => "output_too_large",
            ErrorClass::Crashed => "crashed",
            ErrorClass::InvalidOutput => "invalid_output",
            ErrorClass::Raised => "raised",
            ErrorClass::LoopExhausted => "loop_exhausted",
        }
    }
}

/// A failed attempt. The message never holds a secret's value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", class.as_str())]
pub struct NodeError {
    pub class: ErrorClass,
    pub message: String,
}

impl NodeError {
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            class: ErrorClass::Permanent,
            message: message.into(),
        }
    }

    /// How the journal shows it: `class: message`, or the message alone
    /// for a failure the workflow raised, whose message names its own code.
    pub fn describe(&self) -> String {
        match self.class {
            ErrorClass::Raised => self.message.clone(),
            class => format!("{}: {}", class.as_str(), self.message),
        }
    }
}

/// What an attempt produced.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The node's output; conditions also name the output taken.
    Output {
        value: Value,
        branch: Option<String>,
    },
    /// The answer to a synchronous caller.
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: Value,
    },
    /// Wait this long (durably), then succeed.
    Wait { duration: Duration },
    /// Wait (durably) for a resume through the API; its payload becomes
    /// the output. Without one in `timeout`, the node fails.
    AwaitResume { timeout: Option<Duration> },
    /// A `while` goes on: its next iteration starts from this state.
    Repeat { state: Value },
    /// Start the node's child execution (`call_workflow`) with this input;
    /// the execution records it, and waits for its end if the node says so.
    Call { input: Value },
}

/// Where secrets come from.
pub trait SecretSource: Send + Sync {
    /// The value of a tenant's secret; none when the tenant has no such secret.
    fn secret<'a>(
        &'a self,
        tenant: TenantId,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, SecretError>>;
}

/// Why a secret could not be read: the store's error, or what was found.
pub type SecretCause = std::sync::Arc<dyn std::error::Error + Send + Sync>;

/// Why a secret could not be read.
#[derive(Clone, Debug, thiserror::Error)]
pub enum SecretError {
    /// The store did not answer in time; the attempt may be retried.
    #[error("the secret store is unavailable: {0}")]
    Retryable(#[source] SecretCause),
    /// Secrets cannot be read here (no key, or a value that does not open).
    #[error("{0}")]
    Unavailable(#[source] SecretCause),
}

impl SecretError {
    /// Secrets cannot be read here, for the reason `why` says.
    pub fn unavailable(why: impl Into<String>) -> Self {
        let why: Box<dyn std::error::Error + Send + Sync> = why.into().into();
        SecretError::Unavailable(why.into())
    }
}

/// One call of user code, for the sandbox of its tenant and language.
#[derive(Clone, Debug)]
pub struct CodeRequest {
    pub tenant: TenantId,
    pub language: Language,
    pub source: String,
    /// What `input` is bound to, as JSON text.
    pub input: String,
    /// What the node asks for; the defaults and the tenant's maxima apply.
    pub limits: LimitsOverride,
}

/// Where code nodes run: the engine's sandboxes.
pub trait Sandboxes: Send + Sync {
    fn run(&self, request: CodeRequest) -> BoxFuture<'_, Result<Returned, Failure>>;
}

/// Log lines an attempt produced (a code node's console), kept with its step.
#[derive(Debug, Default)]
pub struct LogSink(std::sync::Mutex<Vec<String>>);

impl LogSink {
    pub fn extend(&self, lines: Vec<String>) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(lines);
    }

    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Tokens of language models an attempt used, metered as usage.
#[derive(Debug, Default)]
pub struct TokenMeter(std::sync::atomic::AtomicU64);

impl TokenMeter {
    pub fn add(&self, tokens: u64) {
        self.0
            .fetch_add(tokens, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn total(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// One attempt of one node.
pub struct RunRequest<'a> {
    pub tenant: TenantId,
    pub node: &'a Node,
    /// The whole workflow, to resolve connections.
    pub document: &'a WorkflowDocument,
    /// `trigger` and every upstream node's output by id.
    pub scope: &'a Map<String, Value>,
    /// The tenant's cap on one node's output, in bytes; it also bounds every
    /// value the node's templates build.
    pub max_output_bytes: usize,
    /// Upstream nodes whose edge into this node was taken, in edge order.
    pub inputs: &'a [String],
    pub secrets: &'a dyn SecretSource,
    /// Sent as `Idempotency-Key` so receivers can deduplicate retries.
    pub idempotency_key: &'a str,
    pub sandboxes: &'a dyn Sandboxes,
    pub logs: &'a LogSink,
    /// Where the tenant's own language-model settings are read.
    pub endpoints: &'a dyn llm::TenantEndpoints,
    pub meter: &'a TokenMeter,
    /// The W3C trace context of this attempt, sent on as `traceparent`
    /// with outbound requests; none when tracing is off.
    pub traceparent: Option<&'a str>,
}

/// The node kinds and what they need to run. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    expr: expr::Expressions,
    http: kinds::http::HttpClient,
    llm: llm::Llm,
    kinds: Vec<Box<dyn kind::Kind>>,
    /// Where each kind is in `kinds`, by primitive and name: the engine asks
    /// of every node it runs.
    index: HashMap<Primitive, HashMap<&'static str, usize>>,
}

impl Registry {
    pub fn new(options: &Options) -> Result<Registry, Error> {
        let expr = expr::Expressions::new(options.expression_fuel);
        let http = kinds::http::HttpClient::new(&options.http)?;
        let allow = Arc::new(ssrf::AllowList::parse(&options.http.allow_hosts)?);
        let provider = llm::OpenAiCompatible::new(&options.llm, allow, &options.http.user_agent)?;
        let llm = llm::Llm::new(&options.llm, Arc::new(provider));
        let kinds = kinds::all();
        let mut index: HashMap<Primitive, HashMap<&'static str, usize>> = HashMap::new();
        for (i, kind) in kinds.iter().enumerate() {
            index
                .entry(kind.primitive())
                .or_default()
                .insert(kind.name(), i);
        }
        Ok(Registry {
            inner: Arc::new(Inner {
                expr,
                http,
                llm,
                kinds,
                index,
            }),
        })
    }

    /// The language models, for callers outside a node (the generator).
    pub fn llm(&self) -> &llm::Llm {
        &self.inner.llm
    }

    /// The kind of a primitive with this name.
    pub fn kind(&self, primitive: Primitive, name: &str) -> Option<&dyn kind::Kind> {
        let i = *self.inner.index.get(&primitive)?.get(name)?;
        Some(self.inner.kinds[i].as_ref())
    }

    fn kind_of(&self, node: &Node) -> Option<&dyn kind::Kind> {
        self.kind(node.primitive, &node.kind)
    }

    /// Runs one attempt of an action, condition or data node.
    pub async fn run(&self, request: RunRequest<'_>) -> Result<Outcome, NodeError> {
        let node = request.node;
        let Some(kind) = self.kind_of(node) else {
            return Err(NodeError::permanent(format!(
                "{} {:?} is not a known kind",
                node.primitive.as_str(),
                node.kind
            )));
        };
        let ctx = kinds::Ctx {
            expr: &self.inner.expr,
            http: &self.inner.http,
            llm: &self.inner.llm,
            request: &request,
        };
        kind.run(&ctx).await
    }

    pub fn kinds(&self) -> Vec<KindInfo> {
        self.inner.kinds.iter().map(|k| k.info()).collect()
    }

    /// What the engine must know of a node's kind to run it.
    pub fn behaviour(&self, node: &Node) -> Behaviour {
        self.kind_of(node)
            .map_or(Behaviour::UNKNOWN, |k| k.behaviour())
    }

    /// How a trigger node starts executions; none for other nodes and for
    /// a config that does not read.
    pub fn trigger(&self, node: &Node) -> Option<Trigger> {
        self.kind_of(node)?.trigger(&node.config)
    }

    /// The (method, path) a trigger is routed by: a webhook's HTTP method
    /// and path, or [`NATS_ROUTE`] and a `nats` trigger's subject.
    pub fn route(&self, node: &Node) -> Option<(String, String)> {
        self.trigger(node)?.route()
    }

    /// Who may call a webhook trigger: none when anyone may (or the node is
    /// no webhook), an error for an `auth` stored before its rules.
    pub fn webhook_auth(
        &self,
        node: &Node,
    ) -> Option<Result<webhook_auth::WebhookAuth, Vec<webhook_auth::Problem>>> {
        match self.trigger(node)? {
            Trigger::Webhook { auth, .. } => auth,
            _ => None,
        }
    }

    /// The trigger an API start uses: a manual one, else a webhook.
    pub fn api_trigger(&self, graph: &WorkflowGraph) -> Option<usize> {
        let of = |want: fn(&Trigger) -> bool| {
            graph.find_trigger(|n| self.trigger(n).as_ref().is_some_and(want))
        };
        of(|t| matches!(t, Trigger::Manual))
            .or_else(|| of(|t| matches!(t, Trigger::Webhook { .. })))
    }

    /// Whether a workflow answers synchronous callers.
    pub fn responds(&self, graph: &WorkflowGraph) -> bool {
        graph
            .document
            .nodes
            .iter()
            .any(|n| self.behaviour(n).answers_caller)
    }
}

impl Registry {
    /// The node kinds, checking documents against `bounds`.
    pub fn bounded<'a>(&'a self, bounds: &'a Bounds) -> Bounded<'a> {
        Bounded {
            registry: self,
            bounds,
        }
    }
}

/// The node kinds checking documents against the limits where they will run.
pub struct Bounded<'a> {
    registry: &'a Registry,
    bounds: &'a Bounds,
}

impl KindCatalog for Bounded<'_> {
    fn check(
        &self,
        node: &Node,
        path: &str,
        names: &Names<'_>,
        errors: &mut Vec<ValidationError>,
    ) -> Option<Outputs> {
        let kind = self.registry.kind_of(node)?;
        if kind.behaviour().ends_run && node.on_error != OnError::Fail {
            errors.push(ValidationError::new(
                format!("{path}.on_error"),
                "unexpected",
                format!(
                    "{:?} ends the run on purpose; on_error does not apply to it",
                    node.kind
                ),
            ));
        }
        // A loop's `result` (`next_state`, `until`) reads its body's nodes.
        let body = LoopSpec::of(node);
        let mut names = names.clone();
        for inner in body.iter().flat_map(|c| &c.body.nodes) {
            names.bind(&inner.id);
        }
        let checking = kind::Checking {
            expr: &self.registry.inner.expr,
            path,
            names: &names,
            bounds: self.bounds,
            errors,
        };
        Some(kind.check(&node.config, checking))
    }

    fn kinds(&self, primitive: Primitive) -> Vec<String> {
        self.registry
            .inner
            .kinds
            .iter()
            .filter(|k| k.primitive() == primitive)
            .map(|k| k.name().to_owned())
            .collect()
    }
}

/// Checks against the bounds of an instance without settings of its own.
impl KindCatalog for Registry {
    fn check(
        &self,
        node: &Node,
        path: &str,
        names: &Names<'_>,
        errors: &mut Vec<ValidationError>,
    ) -> Option<Outputs> {
        self.bounded(&Bounds::default())
            .check(node, path, names, errors)
    }

    fn kinds(&self, primitive: Primitive) -> Vec<String> {
        self.bounded(&Bounds::default()).kinds(primitive)
    }
}
