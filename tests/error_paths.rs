//! Error paths: what a node's failure does once its retries are spent
//! (`on_error`), and the `fail` node, end to end in both modes.

mod common;

use std::time::Duration;

use common::stub::StubServer;
use common::{Engine, Mode, node};
use reqwest::{Method, StatusCode};
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

/// The executions of a workflow, newest first.
async fn executions_of(engine: &Engine, workflow: &str) -> Vec<Value> {
    let (status, body) = engine
        .get(&format!("/v1/executions?workflow_id={workflow}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"].as_array().cloned().unwrap_or_default()
}

/// The one execution of a workflow, once it has ended.
async fn its_one_run(engine: &Engine, workflow: &str) -> Value {
    let id = common::eventually("a run of the handler", Duration::from_secs(30), || async {
        let runs = executions_of(engine, workflow).await;
        runs.first()?["id"].as_str().map(str::to_owned)
    })
    .await;
    engine.finished(&id).await
}

/// A handler that reports its input to the stub, then fails; its own
/// `on_error_workflow` is itself.
async fn deploy_failing_handler(engine: &Engine, stub: &StubServer) -> String {
    let handler = |settings: Value| {
        json!({"name": "handler", "settings": settings, "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "report", "type": "action", "kind": "http_request", "config": {
                "method": "POST", "url": stub.url("/ok/handled"), "body": "{{ trigger.body }}"}},
            {"id": "boom", "type": "action", "kind": "fail", "config": {"message": "the handler failed too"}}
        ], "edges": [{"from": "start", "to": "report"}, {"from": "report", "to": "boom"}]})
    };
    let id = engine.deploy(handler(json!({}))).await;
    let path = format!("/v1/workflows/{id}");
    let (status, body) = engine
        .request(
            Method::PUT,
            &path,
            Some(handler(json!({"on_error_workflow": id}))),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = engine.post(&format!("{path}/publish"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    id
}

async fn a_failed_run_starts_its_handler_whose_failure_starts_none(mode: Mode) {
    let stub = StubServer::start().await;
    let engine = Engine::start(mode).await;
    let handler = deploy_failing_handler(&engine, &stub).await;
    let workflow = engine
        .deploy(json!({"name": "guarded", "settings": {"on_error_workflow": handler}, "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "reject", "type": "action", "kind": "fail", "config": {"message": "bad order {{ trigger.body.order }}"}}
        ], "edges": [{"from": "start", "to": "reject"}]}))
        .await;
    let id = engine.start_execution(&workflow, json!({"order": 7})).await;
    let done = engine.finished(&id).await;
    assert_eq!(done["status"], "failed", "{done}");

    let handled = its_one_run(&engine, &handler).await;
    assert_eq!(handled["status"], "failed", "{handled}");
    let input = &stub.hits("/ok/handled")[0].body;
    assert_eq!(
        input,
        &json!({
            "failed_node": "reject",
            "error": "node reject failed: bad order 7",
            "execution": {"id": id, "status": "failed"},
            "workflow": {"id": workflow, "version": 1},
            "trigger": {"body": {"order": 7}, "headers": {}, "query": {}}
        })
    );
    // The handler's end is written with any handler it starts: none.
    assert_eq!(executions_of(&engine, &handler).await.len(), 1);
    assert_eq!(stub.hits("/ok/handled").len(), 1);
}
both_modes!(
    a_failed_run_starts_its_handler_whose_failure_starts_none,
    a_failed_run_starts_its_handler_whose_failure_starts_none
);

async fn a_timed_out_run_starts_its_handler(mode: Mode) {
    let engine = Engine::start(mode).await;
    let handler = engine
        .deploy(json!({"name": "handler", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "note", "type": "data", "kind": "mapping", "config": {"mapping": {
                "status": "{{ trigger.body.execution.status }}", "node": "{{ trigger.body.failed_node }}"}}}
        ], "edges": [{"from": "start", "to": "note"}]}))
        .await;
    let workflow = engine
        .deploy(json!({"name": "slow", "settings": {"timeout": "300ms", "on_error_workflow": handler}, "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "pause", "type": "action", "kind": "wait", "config": {"duration": "1h"}}
        ], "edges": [{"from": "start", "to": "pause"}]}))
        .await;
    let id = engine.start_execution(&workflow, json!({})).await;
    let done = engine.finished(&id).await;
    assert_eq!(done["status"], "timed_out", "{done}");
    let handled = its_one_run(&engine, &handler).await;
    assert_eq!(handled["status"], "succeeded", "{handled}");
    assert_eq!(
        handled["output"],
        json!({"status": "timed_out", "node": null})
    );
}
both_modes!(
    a_timed_out_run_starts_its_handler,
    a_timed_out_run_starts_its_handler
);

async fn the_handler_is_a_workflow_of_the_same_tenant(mode: Mode) {
    let engine = Engine::start(mode).await;
    let other = engine.create_tenant("other handlers").await;
    let theirs = engine
        .deploy_as(
            &other,
            json!({"name": "theirs", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"}]}),
        )
        .await;
    for handler in [theirs.as_str(), "not-an-id"] {
        let (status, body) = engine
            .post(
                "/v1/workflows",
                json!({"name": "guarded", "settings": {"on_error_workflow": handler}, "nodes": [
                {"id": "start", "type": "trigger", "kind": "manual"}]}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let found = details(&body);
        assert_eq!(found.len(), 1, "{body}");
        assert_eq!(found[0].0, "settings.on_error_workflow", "{body}");
    }
}
both_modes!(
    the_handler_is_a_workflow_of_the_same_tenant,
    the_handler_is_a_workflow_of_the_same_tenant
);
