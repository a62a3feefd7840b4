//! Error paths: what a node's failure does once its retries are spent
//! (`on_error`), and the `fail` node, end to end in both modes.

mod common;

use common::stub::StubServer;
use common::{Engine, Mode, node};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Three attempts, 10 ms apart: quick, and each one seen by the stub.
fn three_attempts() -> Value {
    json!({"max_attempts": 3, "initial_backoff": "10ms", "max_backoff": "10ms", "jitter": false})
}

/// Deploys a workflow, runs it once with `input`, and returns the ended execution.
async fn run_once(engine: &Engine, document: Value, input: Value) -> Value {
    let workflow = engine.deploy(document).await;
    let id = engine.start_execution(&workflow, input).await;
    engine.finished(&id).await
}

async fn route_runs_the_error_branch_after_every_retry(mode: Mode) {
    let stub = StubServer::start().await;
    let engine = Engine::start(mode).await;
    let document = json!({"name": "routed", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "call", "type": "action", "kind": "http_request", "on_error": "route",
         "retry": three_attempts(), "config": {"url": stub.url("/flaky/down/100")}},
        {"id": "report", "type": "action", "kind": "http_request", "config": {
            "method": "POST", "url": stub.url("/ok/report"),
            "body": {"code": "{{ call.error.code }}", "attempts": "{{ call.error.attempts }}"}}},
        {"id": "used", "type": "data", "kind": "mapping", "config": {"mapping": {"status": "{{ call.status }}"}}},
        {"id": "checked", "type": "data", "kind": "mapping", "config": {"mapping": {"ok": true}}}
    ], "edges": [
        {"from": "start", "to": "call"},
        {"from": "call", "to": "report", "when": "error"},
        {"from": "call", "to": "used"},
        {"from": "call", "to": "checked", "when": "success"}
    ]});
    let done = run_once(&engine, document, json!({})).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let paths: Vec<String> = stub.hits("/").into_iter().map(|h| h.path).collect();
    assert_eq!(
        paths,
        ["/flaky/down", "/flaky/down", "/flaky/down", "/ok/report"],
        "every attempt, then the error branch"
    );
    assert_eq!(
        stub.hits("/ok/report")[0].body,
        json!({"code": "transient", "attempts": 3})
    );
    let call = node(&done, "call");
    assert_eq!(call["status"], "failed", "{call}");
    assert_eq!(call["attempts"], 3);
    assert_eq!(node(&done, "report")["status"], "succeeded");
    assert_eq!(node(&done, "used")["status"], "skipped");
    assert_eq!(node(&done, "checked")["status"], "skipped");
}
both_modes!(
    route_runs_the_error_branch_after_every_retry,
    route_runs_the_error_branch_after_every_retry
);

async fn route_takes_the_success_edges_when_the_node_succeeds(mode: Mode) {
    let stub = StubServer::start().await;
    let engine = Engine::start(mode).await;
    let document = json!({"name": "routed", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "call", "type": "action", "kind": "http_request", "on_error": "route",
         "config": {"url": stub.url("/ok/up")}},
        {"id": "handled", "type": "data", "kind": "mapping", "config": {"mapping": {"handled": true}}},
        {"id": "used", "type": "data", "kind": "mapping", "config": {"mapping": {"name": "{{ call.body.name }}"}}}
    ], "edges": [
        {"from": "start", "to": "call"},
        {"from": "call", "to": "handled", "when": "error"},
        {"from": "call", "to": "used", "when": "success"}
    ]});
    let done = run_once(&engine, document, json!({})).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["output"], json!({"name": "up"}));
    assert_eq!(node(&done, "handled")["status"], "skipped");
}
both_modes!(
    route_takes_the_success_edges_when_the_node_succeeds,
    route_takes_the_success_edges_when_the_node_succeeds
);

async fn continue_hands_on_the_error_after_three_attempts(mode: Mode) {
    let stub = StubServer::start().await;
    let engine = Engine::start(mode).await;
    let document = json!({"name": "continued", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "call", "type": "action", "kind": "http_request", "on_error": "continue",
             "retry": three_attempts(), "config": {"url": stub.url("/flaky/gone/100")}},
            {"id": "after", "type": "data", "kind": "mapping", "config": {"mapping": {"seen": "{{ call.error.code }}"}}}
        ], "edges": [{"from": "start", "to": "call"}, {"from": "call", "to": "after"}]});
    let workflow = engine.deploy(document).await;
    let id = engine.start_execution(&workflow, json!({})).await;
    let done = engine.finished(&id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["output"], json!({"seen": "transient"}));
    assert_eq!(stub.hits("/flaky/gone").len(), 3);

    let (status, logs) = engine.get(&format!("/v1/executions/{id}/logs")).await;
    assert_eq!(status, StatusCode::OK, "{logs}");
    let call = logs["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|n| n["node"] == "call"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(call["status"], "succeeded", "{call}");
    assert_eq!(call["attempts"], 3, "{call}");
    let error = &call["output"]["error"];
    assert_eq!(error["code"], "transient", "{call}");
    assert_eq!(error["retryable"], true);
    assert_eq!(error["attempts"], 3);
    assert!(
        error["message"].as_str().is_some_and(|m| m.contains("503")),
        "{call}"
    );
    assert!(
        call["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("transient: ")),
        "{call}"
    );
}
both_modes!(
    continue_hands_on_the_error_after_three_attempts,
    continue_hands_on_the_error_after_three_attempts
);

async fn a_fail_node_ends_the_run_with_its_message(mode: Mode) {
    let engine = Engine::start(mode).await;
    let workflow = engine
        .deploy(json!({"name": "checked", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "positive", "type": "condition", "kind": "if_else", "config": {"logic": "trigger.body.amount > 0"}},
            {"id": "reject", "type": "action", "kind": "fail", "retry": three_attempts(), "config": {
                "message": "amount must be positive, got {{ trigger.body.amount }}", "code": "invalid_amount"}},
            {"id": "accept", "type": "data", "kind": "mapping", "config": {"mapping": {"ok": true}}}
        ], "edges": [
            {"from": "start", "to": "positive"},
            {"from": "positive", "to": "reject", "when": "false"},
            {"from": "positive", "to": "accept", "when": "true"}
        ]}))
        .await;
    let id = engine
        .start_execution(&workflow, json!({"amount": -5}))
        .await;
    let done = engine.finished(&id).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(
        done["error"],
        "node reject failed: invalid_amount: amount must be positive, got -5"
    );
    let reject = node(&done, "reject");
    assert_eq!(reject["attempts"], 1, "not retried: {reject}");

    let id = engine
        .start_execution(&workflow, json!({"amount": 5}))
        .await;
    let done = engine.finished(&id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["output"], json!({"ok": true}));
}
both_modes!(
    a_fail_node_ends_the_run_with_its_message,
    a_fail_node_ends_the_run_with_its_message
);

/// Each refused detail as (path, code).
fn details(body: &Value) -> Vec<(String, String)> {
    body["error"]["details"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            let text = |k: &str| d[k].as_str().unwrap_or_default().to_owned();
            (text("path"), text("code"))
        })
        .collect()
}

async fn misplaced_error_paths_are_refused_at_their_paths(mode: Mode) {
    let engine = Engine::start(mode).await;
    let (status, body) = engine
        .post("/v1/workflows", json!({"name": "bad", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual", "on_error": "continue"},
            {"id": "call", "type": "action", "kind": "http_request", "config": {"url": "http://example.com"}},
            {"id": "routed", "type": "action", "kind": "http_request", "on_error": "route",
             "config": {"url": "http://example.com"}},
            {"id": "check", "type": "condition", "kind": "if_else", "on_error": "route", "config": {"logic": "true"}},
            {"id": "stop", "type": "action", "kind": "fail", "on_error": "continue", "config": {"message": "no"}},
            {"id": "key", "type": "connection", "kind": "credentials", "on_error": "route", "config": {"secret": "s"}},
            {"id": "a", "type": "data", "kind": "mapping", "config": {"mapping": {}}},
            {"id": "b", "type": "data", "kind": "mapping", "config": {"mapping": {}}}
        ], "edges": [
            {"from": "start", "to": "call"},
            {"from": "call", "to": "routed", "when": "error"},
            {"from": "routed", "to": "a", "when": "failure"},
            {"from": "routed", "to": "check", "when": "success"},
            {"from": "check", "to": "stop", "when": "true"},
            {"from": "check", "to": "b", "when": "error"}
        ]}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "invalid_workflow");
    let mut found = details(&body);
    found.sort();
    let expected = [
        ("edges[1].when", "needs_route"),
        ("edges[2].when", "unknown_output"),
        ("edges[5].when", "unknown_output"),
        ("nodes[0].on_error", "unexpected"),
        ("nodes[3].on_error", "unexpected"),
        ("nodes[4].on_error", "unexpected"),
        ("nodes[5].on_error", "unexpected"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(p, c)| (p.to_string(), c.to_string()))
        .collect();
    assert_eq!(found, expected, "{body}");

    let (status, body) = engine
        .post(
            "/v1/workflows",
            json!({"name": "bad", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "call", "type": "action", "kind": "http_request", "on_error": "ignore",
             "config": {"url": "http://example.com"}}
        ], "edges": [{"from": "start", "to": "call"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        details(&body),
        [("nodes[1].on_error".to_owned(), "invalid_value".to_owned())]
    );
}
both_modes!(
    misplaced_error_paths_are_refused_at_their_paths,
    misplaced_error_paths_are_refused_at_their_paths
);

async fn a_resume_that_never_comes_can_be_routed(mode: Mode) {
    let engine = Engine::start(mode).await;
    let document = json!({"name": "approval", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "approve", "type": "action", "kind": "wait_for_event", "on_error": "route",
         "config": {"timeout": "50ms"}},
        {"id": "expired", "type": "data", "kind": "mapping",
         "config": {"mapping": {"why": "{{ approve.error.code }}", "retryable": "{{ approve.error.retryable }}"}}},
        {"id": "approved", "type": "data", "kind": "mapping", "config": {"mapping": {"ok": true}}}
    ], "edges": [
        {"from": "start", "to": "approve"},
        {"from": "approve", "to": "expired", "when": "error"},
        {"from": "approve", "to": "approved"}
    ]});
    let done = run_once(&engine, document, json!({})).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        done["output"],
        json!({"why": "timeout", "retryable": false})
    );
    assert_eq!(node(&done, "approve")["status"], "failed");
    assert_eq!(node(&done, "approved")["status"], "skipped");
}
both_modes!(
    a_resume_that_never_comes_can_be_routed,
    a_resume_that_never_comes_can_be_routed
);

/// The example of the README's "Error paths", exactly as written there.
const README_EXAMPLE: &str = include_str!("../docs/examples/error_paths.json");

async fn the_readme_example_rejects_with_its_message(mode: Mode) {
    assert!(
        include_str!("../README.md").contains(README_EXAMPLE),
        "the README shows docs/examples/error_paths.json as it is"
    );
    let engine = Engine::start(mode).await;
    let document: Value = serde_json::from_str(README_EXAMPLE).expect("the example parses");
    let done = run_once(&engine, document, json!({"amount": -5})).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(
        done["error"],
        "node reject failed: invalid_amount: amount must be positive, got -5"
    );
    assert_eq!(node(&done, "charge")["status"], "skipped");
}
both_modes!(
    the_readme_example_rejects_with_its_message,
    the_readme_example_rejects_with_its_message
);
