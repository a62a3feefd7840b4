//! The node kinds, run one by one as an execution would run them, with a
//! local HTTP server standing in for outside APIs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Redirect;
use axum::routing::any;
use axum::{Json, Router};
use flowmesh_model::TenantId;
use flowmesh_model::validate::validate;
use flowmesh_model::{HumanDuration, WorkflowDocument};
use flowmesh_node_handlers::llm::{TenantEndpoint, TenantEndpoints};
use flowmesh_node_handlers::{
    CodeRequest, ErrorClass, Failure, HttpOptions, LogSink, NodeError, Options, Outcome, Registry,
    Returned, RunRequest, Sandboxes, SecretError, SecretSource, TokenMeter,
};
use flowmesh_sandbox::{JsEngine, Limits, Request};
use futures::future::BoxFuture;
use serde_json::{Map, Value, json};

struct Secrets(HashMap<&'static str, &'static str>);

impl SecretSource for Secrets {
    fn secret<'a>(
        &'a self,
        _: TenantId,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, SecretError>> {
        Box::pin(async move { Ok(self.0.get(name).map(|s| s.to_string())) })
    }
}

/// JavaScript in this process, in the engine the worker processes run
/// (the engine gives each tenant a worker process of its own).
struct InProcessSandbox;

impl Sandboxes for InProcessSandbox {
    fn run(&self, request: CodeRequest) -> BoxFuture<'_, Result<Returned, Failure>> {
        Box::pin(async move {
            let limits = request
                .limits
                .resolve(&Limits::default(), &Limits::maxima())
                .expect("limits within the maxima");
            let request = Request::from(&flowmesh_sandbox::Call {
                source: request.source,
                input: request.input,
                limits,
            });
            tokio::task::spawn_blocking(move || {
                JsEngine::new()
                    .expect("a JavaScript engine")
                    .run(&request)
                    .into_result()
            })
            .await
            .expect("the call ran")
        })
    }
}

fn registry(allow: &[&str]) -> Registry {
    let options = Options {
        http: HttpOptions {
            allow_hosts: allow.iter().map(|s| s.to_string()).collect(),
            default_timeout: HumanDuration::from_millis(2_000),
            ..Default::default()
        },
        ..Default::default()
    };
    Registry::new(&options).unwrap()
}

fn document(nodes: Value) -> WorkflowDocument {
    WorkflowDocument::from_value(json!({"name": "t", "nodes": nodes})).unwrap()
}

async fn run(
    registry: &Registry,
    doc: &WorkflowDocument,
    id: &str,
    scope: &Map<String, Value>,
) -> Result<Outcome, NodeError> {
    run_logged(registry, doc, id, scope).await.0
}

/// Tenants here have no model settings of their own.
struct InstanceEndpoint;

impl TenantEndpoints for InstanceEndpoint {
    fn tenant_endpoint(
        &self,
        _: TenantId,
    ) -> BoxFuture<'_, Result<TenantEndpoint, flowmesh_node_handlers::llm::Error>> {
        Box::pin(async { Ok(TenantEndpoint::default()) })
    }
}

/// Runs a node; returns its result and what it printed.
async fn run_logged(
    registry: &Registry,
    doc: &WorkflowDocument,
    id: &str,
    scope: &Map<String, Value>,
) -> (Result<Outcome, NodeError>, Vec<String>) {
    let secrets = Secrets(HashMap::from([("token", "s3cr3t-value")]));
    let inputs: Vec<String> = scope.keys().filter(|k| *k != "trigger").cloned().collect();
    let sandboxes = InProcessSandbox;
    let logs = LogSink::default();
    let result = registry
        .run(RunRequest {
            tenant: TenantId::new(),
            node: doc.node(id).unwrap(),
            document: doc,
            scope,
            max_output_bytes: 8 * 1024 * 1024,
            inputs: &inputs,
            secrets: &secrets,
            idempotency_key: "exec-1:call",
            sandboxes: &sandboxes,
            logs: &logs,
            endpoints: &InstanceEndpoint,
            meter: &TokenMeter::default(),
            traceparent: None,
        })
        .await;
    (result, logs.take())
}

fn scope(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn output(outcome: Outcome) -> Value {
    match outcome {
        Outcome::Output { value, .. } => value,
        other => panic!("expected an output, got {other:?}"),
    }
}

#[tokio::test]
async fn the_readme_example_validates_and_runs() {
    let registry = registry(&[]);
    let text = include_str!("../../docs/examples/signup.json");
    let doc = WorkflowDocument::from_json(text.as_bytes()).unwrap();
    validate(&doc, &registry).unwrap();
    assert_eq!(
        registry.route(doc.node("hook").unwrap()),
        Some(("POST".into(), "signup".into()))
    );
    for (email, branch, status, body) in [
        ("ada@example.com", "true", 200, json!({"welcome": "ADA"})),
        (
            "bob@other.org",
            "false",
            422,
            json!({"error": "unknown domain bob@other.org"}),
        ),
    ] {
        let mut s = scope(json!({"trigger": {"body": {"email": email, "name": "ada"}}}));
        let user = output(run(&registry, &doc, "user", &s).await.unwrap());
        assert_eq!(user["email"], email);
        s.insert("user".into(), user);
        let Outcome::Output { branch: chosen, .. } =
            run(&registry, &doc, "check", &s).await.unwrap()
        else {
            panic!()
        };
        assert_eq!(chosen.as_deref(), Some(branch));
        let answer = if branch == "true" {
            "welcome"
        } else {
            "reject"
        };
        match run(&registry, &doc, answer, &s).await.unwrap() {
            Outcome::Respond {
                status: got,
                body: got_body,
                ..
            } => assert_eq!((got, got_body), (status, body)),
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn every_kind_checks_its_config() {
    let registry = registry(&[]);
    let doc = WorkflowDocument::from_value(json!({"name": "bad", "nodes": [
        {"id": "t", "type": "trigger", "kind": "webhook", "config": {"path": "a b", "method": "TRACE"}},
        {"id": "h", "type": "action", "kind": "http_request", "config": {"url": "{{ oops", "timeout": "soon", "method": "FETCH"}},
        {"id": "r", "type": "action", "kind": "respond", "config": {"status": 999}},
        {"id": "w", "type": "action", "kind": "wait", "config": {}},
        {"id": "c", "type": "condition", "kind": "if_else", "config": {"logic": "a =="}},
        {"id": "s", "type": "condition", "kind": "switch", "config": {"value": "x", "cases": [{"name": "default", "equals": 1}, {"name": "a"}]}},
        {"id": "f", "type": "condition", "kind": "filter", "config": {"items": "x"}},
        {"id": "m", "type": "data", "kind": "mapping", "config": {"mapping": 3}},
        {"id": "g", "type": "data", "kind": "merge", "config": {"mode": "zip"}},
        {"id": "k", "type": "connection", "kind": "credentials", "config": {}}
    ], "edges": [
        {"from": "t", "to": "h"}, {"from": "h", "to": "r"}, {"from": "r", "to": "w"}, {"from": "w", "to": "c"},
        {"from": "c", "to": "s", "when": "true"}, {"from": "s", "to": "f", "when": "a"}, {"from": "f", "to": "m"}, {"from": "m", "to": "g"}
    ]}))
    .unwrap();
    let errors = validate(&doc, &registry).unwrap_err().errors;
    let found: Vec<(&str, &str)> = errors
        .iter()
        .map(|e| (e.path.as_str(), e.code.as_str()))
        .collect();
    for expected in [
        ("nodes[0].config.path", "invalid_value"),
        ("nodes[0].config.method", "invalid_value"),
        ("nodes[1].config.url", "invalid_template"),
        ("nodes[1].config.timeout", "invalid_duration"),
        ("nodes[1].config.method", "invalid_value"),
        ("nodes[2].config.status", "invalid_value"),
        ("nodes[3].config.duration", "required"),
        ("nodes[4].config.logic", "invalid_expression"),
        ("nodes[5].config.cases[0].name", "reserved"),
        ("nodes[5].config.cases[1]", "invalid_case"),
        ("nodes[6].config.condition", "required"),
        ("nodes[7].config.mapping", "invalid_type"),
        ("nodes[8].config.mode", "invalid_value"),
        ("nodes[9].config.secret", "required"),
    ] {
        assert!(
            found.contains(&expected),
            "{expected:?} missing from {found:?}"
        );
    }
}

#[tokio::test]
async fn conditions_and_data_kinds_behave() {
    let registry = registry(&[]);
    let doc = document(json!([
        {"id": "sw", "type": "condition", "kind": "switch", "config": {"value": "trigger.body.kind", "cases": [
            {"name": "big", "when": "trigger.body.n > 10"}, {"name": "order", "equals": "order"}]}},
        {"id": "f", "type": "condition", "kind": "filter", "config": {"items": "trigger.body.items", "condition": "item.ok"}},
        {"id": "fb", "type": "condition", "kind": "filter", "config": {"items": "{{ trigger.body.items }}", "condition": "{{ item.ok }}"}},
        {"id": "bad", "type": "condition", "kind": "filter", "config": {"items": "trigger.body.kind", "condition": "item"}},
        {"id": "append", "type": "data", "kind": "merge", "config": {"mode": "append"}},
        {"id": "shallow", "type": "data", "kind": "merge", "config": {"mode": "shallow"}},
        {"id": "obj", "type": "data", "kind": "merge"},
        {"id": "w", "type": "action", "kind": "wait", "config": {"duration": "{{ trigger.body.pause }}"}}
    ]));
    let s = scope(
        json!({"trigger": {"body": {"kind": "order", "n": 3, "pause": "2s", "items": [{"ok": true}, {"ok": false}]}}}),
    );
    let Outcome::Output { branch, .. } = run(&registry, &doc, "sw", &s).await.unwrap() else {
        panic!()
    };
    assert_eq!(branch.as_deref(), Some("order"));
    assert_eq!(
        output(run(&registry, &doc, "f", &s).await.unwrap()),
        json!([{"ok": true}])
    );
    assert_eq!(
        output(run(&registry, &doc, "fb", &s).await.unwrap()),
        json!([{"ok": true}]),
        "an expression in braces is the same expression"
    );
    assert_eq!(
        run(&registry, &doc, "bad", &s).await.unwrap_err().class,
        ErrorClass::Permanent
    );
    assert_eq!(
        run(&registry, &doc, "w", &s).await.unwrap(),
        Outcome::Wait {
            duration: Duration::from_secs(2)
        }
    );
    let inputs = scope(json!({"a": [1, 2], "b": {"x": 1}, "c": {"x": 2, "y": 3}}));
    assert_eq!(
        output(run(&registry, &doc, "append", &inputs).await.unwrap()),
        json!([1, 2, {"x": 1}, {"x": 2, "y": 3}])
    );
    assert_eq!(
        output(run(&registry, &doc, "shallow", &inputs).await.unwrap()),
        json!({"x": 2, "y": 3})
    );
    assert_eq!(
        output(run(&registry, &doc, "obj", &inputs).await.unwrap())["b"],
        json!({"x": 1})
    );
}

#[tokio::test]
async fn a_fail_node_raises_its_rendered_message() {
    let registry = registry(&[]);
    let doc = document(json!([
        {"id": "coded", "type": "action", "kind": "fail",
         "config": {"message": "amount {{ trigger.body.n }} is too small", "code": "too_small"}},
        {"id": "plain", "type": "action", "kind": "fail", "config": {"message": "no"}}
    ]));
    let s = scope(json!({"trigger": {"body": {"n": 3}}}));
    let error = run(&registry, &doc, "coded", &s).await.unwrap_err();
    assert_eq!(error.class, ErrorClass::Raised);
    assert!(!error.class.is_retryable());
    assert_eq!(error.describe(), "too_small: amount 3 is too small");
    let error = run(&registry, &doc, "plain", &s).await.unwrap_err();
    assert_eq!(error.describe(), "no");
}

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<(String, HeaderMap, Value)>>>);

async fn local_server() -> (SocketAddr, Seen) {
    let seen = Seen::default();
    let record = seen.clone();
    let app = Router::new()
        .route(
            "/echo",
            any(
                move |headers: HeaderMap,
                      Query(q): Query<HashMap<String, String>>,
                      body: Option<Json<Value>>| {
                    let record = record.clone();
                    async move {
                        let body = body.map(|b| b.0).unwrap_or(Value::Null);
                        record.0.lock().unwrap().push((
                            "echo".into(),
                            headers.clone(),
                            body.clone(),
                        ));
                        let auth = headers
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned();
                        Json(json!({"query": q, "body": body, "auth_echo": auth}))
                    }
                },
            ),
        )
        .route(
            "/status/{code}",
            any(|Path(code): Path<u16>| async move { StatusCode::from_u16(code).unwrap() }),
        )
        .route(
            "/slow",
            any(|| async {
                tokio::time::sleep(Duration::from_secs(10)).await;
                "late"
            }),
        )
        .route(
            "/redirect-private",
            any(|| async { Redirect::temporary("http://169.254.169.254/latest/meta-data") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, seen)
}

#[tokio::test]
async fn http_request_renders_sends_and_injects_credentials() {
    let (addr, seen) = local_server().await;
    let registry = registry(&["127.0.0.1"]);
    let doc = document(json!([
        {"id": "call", "type": "action", "kind": "http_request", "config": {
            "method": "POST", "url": format!("http://{addr}/echo"), "query": {"q": "{{ trigger.body.q }}"},
            "headers": {"x-name": "{{ trigger.body.name | upper }}"}, "body": {"n": "{{ trigger.body.n }}"},
            "connection": "api"}},
        {"id": "api", "type": "connection", "kind": "credentials", "config": {"secret": "token"}}
    ]));
    let s = scope(json!({"trigger": {"body": {"q": "find me", "name": "ada", "n": 5}}}));
    let out = output(run(&registry, &doc, "call", &s).await.unwrap());
    assert_eq!(out["status"], 200);
    assert_eq!(out["body"]["query"], json!({"q": "find me"}));
    assert_eq!(out["body"]["body"], json!({"n": 5}));
    assert!(
        !out.to_string().contains("s3cr3t-value"),
        "the secret never comes back: {out}"
    );
    let hits = seen.0.lock().unwrap().clone();
    let (_, headers, _) = &hits[0];
    assert_eq!(headers["authorization"], "Bearer s3cr3t-value");
    assert_eq!(headers["idempotency-key"], "exec-1:call");
    assert_eq!(headers["x-name"], "ADA");
}

#[tokio::test]
async fn http_failures_are_classified() {
    let (addr, _) = local_server().await;
    let registry = registry(&["127.0.0.1"]);
    let call = |path: &str, timeout: Option<&str>| {
        let mut config = json!({"url": format!("http://{addr}{path}")});
        if let Some(t) = timeout {
            config["timeout"] = json!(t);
        }
        document(
            json!([{"id": "call", "type": "action", "kind": "http_request", "config": config}]),
        )
    };
    let s = scope(json!({}));
    for (path, timeout, class) in [
        ("/status/503", None, ErrorClass::Transient),
        ("/status/429", None, ErrorClass::Transient),
        ("/status/404", None, ErrorClass::Permanent),
        ("/slow", Some("200ms"), ErrorClass::Timeout),
        ("/redirect-private", None, ErrorClass::Denied),
    ] {
        let err = run(&registry, &call(path, timeout), "call", &s)
            .await
            .unwrap_err();
        assert_eq!(err.class, class, "{path}: {err}");
    }
}

#[tokio::test]
async fn private_addresses_are_denied_unless_allowed() {
    let (addr, _) = local_server().await;
    let strict = registry(&[]);
    let s = scope(json!({}));
    for url in [
        format!("http://{addr}/echo"),
        format!("http://localhost:{}/echo", addr.port()),
        "http://169.254.169.254/latest/meta-data".to_owned(),
        "http://[::1]/".to_owned(),
        "http://10.0.0.1/".to_owned(),
        "http://metadata.google.internal/".to_owned(),
    ] {
        let doc = document(
            json!([{"id": "call", "type": "action", "kind": "http_request", "config": {"url": url}}]),
        );
        let err = run(&strict, &doc, "call", &s).await.unwrap_err();
        assert_eq!(err.class, ErrorClass::Denied, "{url}: {err}");
    }
    let doc = document(
        json!([{"id": "call", "type": "action", "kind": "http_request", "config": {"url": "file:///etc/passwd"}}]),
    );
    assert_eq!(
        run(&strict, &doc, "call", &s).await.unwrap_err().class,
        ErrorClass::Permanent
    );
}

#[tokio::test]
async fn credentialed_requests_do_not_follow_redirects() {
    let (addr, _) = local_server().await;
    let registry = registry(&["127.0.0.1"]);
    let doc = document(json!([
        {"id": "call", "type": "action", "kind": "http_request",
         "config": {"url": format!("http://{addr}/redirect-private"), "connection": "api"}},
        {"id": "api", "type": "connection", "kind": "credentials", "config": {"secret": "token", "header": "X-Api-Key", "prefix": ""}}
    ]));
    let out = output(
        run(&registry, &doc, "call", &scope(json!({})))
            .await
            .unwrap(),
    );
    assert_eq!(out["status"], 307, "the redirect is the answer: {out}");
}

#[tokio::test]
async fn a_header_that_cannot_be_sent_is_permanent() {
    let registry = registry(&["127.0.0.1"]);
    let doc = document(
        json!([{"id": "call", "type": "action", "kind": "http_request",
        "config": {"url": "http://127.0.0.1:9/", "headers": {"x-bad": "{{ trigger.body.v }}"}}}]),
    );
    let s = scope(json!({"trigger": {"body": {"v": "line\nbreak"}}}));
    assert_eq!(
        run(&registry, &doc, "call", &s).await.unwrap_err().class,
        ErrorClass::Permanent
    );
}

#[tokio::test]
async fn a_missing_secret_fails_without_leaking() {
    let registry = registry(&["127.0.0.1"]);
    let doc = document(json!([
        {"id": "call", "type": "action", "kind": "http_request", "config": {"url": "http://127.0.0.1:9/", "connection": "api"}},
        {"id": "api", "type": "connection", "kind": "credentials", "config": {"secret": "absent"}}
    ]));
    let err = run(&registry, &doc, "call", &scope(json!({})))
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent);
}

#[tokio::test]
async fn code_nodes_see_the_scope_and_their_output_and_console_are_kept() {
    let doc = document(json!([
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "calc", "type": "action", "kind": "code", "config": {
            "language": "javascript",
            "source": "console.log('seen', input.user.name); return {total: input.trigger.body.a + input.trigger.body.b, name: input.user.name};"
        }}
    ]));
    let (result, logs) = run_logged(
        &registry(&[]),
        &doc,
        "calc",
        &scope(json!({"trigger": {"body": {"a": 2, "b": 3}}, "user": {"name": "ada"}})),
    )
    .await;
    assert_eq!(
        result.unwrap(),
        Outcome::Output {
            value: json!({"total": 5, "name": "ada"}),
            branch: None
        }
    );
    assert_eq!(logs, vec!["seen ada"]);
}

#[tokio::test]
async fn code_node_failures_are_classified() {
    for (source, limits, class) in [
        (
            "while (true) {}",
            json!({"wall": "200ms"}),
            ErrorClass::Timeout,
        ),
        ("const f = () => f(); f();", json!({}), ErrorClass::Memory),
        (
            "return 'x'.repeat(4096);",
            json!({"output_bytes": 1024}),
            ErrorClass::OutputTooLarge,
        ),
        (
            "throw new TypeError('bad input');",
            json!({}),
            ErrorClass::Permanent,
        ),
    ] {
        let doc = document(json!([
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "calc", "type": "action", "kind": "code", "config": {
                "language": "javascript", "source": source, "limits": limits
            }}
        ]));
        let error = run(&registry(&[]), &doc, "calc", &scope(json!({"trigger": {}})))
            .await
            .unwrap_err();
        assert_eq!(error.class, class, "{source}: {error}");
    }
}

#[test]
fn code_node_configs_are_checked_at_their_paths() {
    let doc = document(json!([
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "calc", "type": "action", "kind": "code", "config": {
            "language": "ruby", "limits": {"memory_mb": 1, "cpu": 3, "network": true}, "extra": true
        }}
    ]));
    let errors = validate(&doc, &registry(&[])).unwrap_err().errors;
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    for path in [
        "nodes[1].config.language",
        "nodes[1].config.source",
        "nodes[1].config.limits.memory_mb",
        "nodes[1].config.limits.cpu",
        "nodes[1].config.limits.network",
        "nodes[1].config.extra",
    ] {
        assert!(paths.contains(&path), "{path} missing from {paths:?}");
    }
}
