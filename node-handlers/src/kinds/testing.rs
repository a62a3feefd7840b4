//! Runs and checks one node of a kind, as an execution and a save would,
//! for the kinds' own tests.

use flowmesh_model::names::Upstream;
use flowmesh_model::validate::KindCatalog;
use flowmesh_model::{Node, TenantId, WorkflowDocument};
use futures::future::BoxFuture;
use serde_json::{Value, json};

use crate::llm::{self, TenantEndpoint, TenantEndpoints};
use crate::{
    CodeRequest, Failure, LogSink, NodeError, Options, Outcome, Registry, Returned, RunRequest,
    SandboxClass, Sandboxes, SecretError, SecretSource, TokenMeter,
};

/// None of the services the data kinds never use.
struct Nothing;

impl SecretSource for Nothing {
    fn secret<'a>(
        &'a self,
        _: TenantId,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, SecretError>> {
        Box::pin(async { Ok(None) })
    }
}

impl Sandboxes for Nothing {
    fn run(&self, _: CodeRequest) -> BoxFuture<'_, Result<Returned, Failure>> {
        Box::pin(async { Err(Failure::new(SandboxClass::Crashed, "no sandbox here")) })
    }
}

impl TenantEndpoints for Nothing {
    fn tenant_endpoint(&self, _: TenantId) -> BoxFuture<'_, Result<TenantEndpoint, llm::Error>> {
        Box::pin(async { Ok(TenantEndpoint::default()) })
    }
}

fn node(registry: &Registry, kind: &str, config: Value) -> Node {
    let info = registry.kinds().into_iter().find(|k| k.kind == kind);
    let primitive = info.map(|k| k.primitive).expect("a known kind");
    Node {
        id: "n".into(),
        primitive,
        kind: kind.into(),
        config,
        retry: None,
        timeout: None,
        on_error: Default::default(),
        ui: None,
    }
}

/// The output of a node of `kind` reading `scope`, under a 1 MiB cap.
pub(crate) async fn run(kind: &str, config: Value, scope: &Value) -> Result<Value, NodeError> {
    run_capped(kind, config, scope, 1 << 20).await
}

/// The output of a node of `kind` reading `scope`, under a cap of `cap` bytes.
pub(crate) async fn run_capped(
    kind: &str,
    config: Value,
    scope: &Value,
    cap: usize,
) -> Result<Value, NodeError> {
    let registry = Registry::new(&Options::default()).expect("default options");
    let node = node(&registry, kind, config);
    let document = WorkflowDocument::from_value(json!({"name": "t", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"}, node
    ]}))
    .expect("a document");
    let scope = scope.as_object().cloned().unwrap_or_default();
    let outcome = registry
        .run(RunRequest {
            tenant: TenantId::new(),
            node: &node,
            document: &document,
            scope: &scope,
            max_output_bytes: cap,
            inputs: &[],
            secrets: &Nothing,
            idempotency_key: "exec:n",
            sandboxes: &Nothing,
            logs: &LogSink::default(),
            endpoints: &Nothing,
            meter: &TokenMeter::default(),
            traceparent: None,
        })
        .await?;
    match outcome {
        Outcome::Output { value, .. } => Ok(value),
        other => panic!("expected an output, got {other:?}"),
    }
}

/// Every problem of a config, as `(path, code, message)`, sorted: the node
/// is `nodes[1]`, after `start` and `fetch`.
pub(crate) fn explained(kind: &str, config: Value) -> Vec<(String, String, String)> {
    let registry = Registry::new(&Options::default()).expect("default options");
    let node = node(&registry, kind, config);
    let graph = Upstream::new(
        ["start", "fetch", "n"],
        [("start", "fetch"), ("fetch", "n")],
    );
    let mut errors = Vec::new();
    registry.check(&node, "nodes[1]", &graph.names(2), &mut errors);
    let mut found: Vec<_> = errors
        .into_iter()
        .map(|e| (e.path, e.code, e.message))
        .collect();
    found.sort();
    found
}

/// Every problem of a config, as `(path, code)`.
pub(crate) fn problems(kind: &str, config: Value) -> Vec<(String, String)> {
    explained(kind, config)
        .into_iter()
        .map(|(path, code, _)| (path, code))
        .collect()
}
