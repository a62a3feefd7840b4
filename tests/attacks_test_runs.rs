//! Test runs and re-runs under attack: mocks that reach nodes a test run
//! refuses to mock, through a re-run on another version.

mod common;

use common::stub::StubServer;
use common::{Engine, Mode, node};
use reqwest::Method;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// `start → gate → {yes, no}`: `gate` an outside call (version 1) or a
/// condition that always answers false (version 2).
fn gated(stub: &StubServer, gate_is_condition: bool) -> Value {
    let gate = if gate_is_condition {
        json!({"id": "gate", "type": "condition", "kind": "if_else", "config": {"logic": "false"}})
    } else {
        json!({"id": "gate", "type": "action", "kind": "http_request", "retry": {"max_attempts": 1},
               "config": {"method": "POST", "url": stub.url("/ok/gate"), "body": {}}})
    };
    let (yes, no) = if gate_is_condition {
        (
            json!({"from": "gate", "to": "yes", "when": "true"}),
            json!({"from": "gate", "to": "no", "when": "false"}),
        )
    } else {
        (
            json!({"from": "gate", "to": "yes"}),
            json!({"from": "gate", "to": "no"}),
        )
    };
    json!({"name": "gated", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        gate,
        {"id": "yes", "type": "action", "kind": "http_request", "retry": {"max_attempts": 1},
         "config": {"method": "POST", "url": stub.url("/ok/yes"), "body": {}}},
        {"id": "no", "type": "data", "kind": "mapping", "config": {"mapping": {"branch": "no"}}}
    ], "edges": [{"from": "start", "to": "gate"}, yes, no]})
}

/// A test run's mock of an outside call must not become the output of a
/// condition when the test run is re-run on a version where that id is a
/// condition: a test run refuses to mock conditions, since a mock cannot
/// choose a branch.
async fn rerun_mock_on_a_condition(mode: Mode) {
    let stub = StubServer::start().await;
    let engine = Engine::start(mode).await;
    let (status, body) = engine.post("/v1/workflows", gated(&stub, false)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let workflow = body["id"].as_str().unwrap().to_owned();
    let (status, body) = engine
        .post(
            &format!("/v1/workflows/{workflow}/versions/1/executions"),
            json!({"mocks": {"gate": {"status": 200}, "yes": {"ok": 1}}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let first = body["execution_id"].as_str().unwrap().to_owned();
    let run = engine.finished(&first).await;
    assert_eq!(run["status"], "succeeded", "{run}");

    let (status, body) = engine
        .request(
            Method::PUT,
            &format!("/v1/workflows/{workflow}"),
            Some(gated(&stub, true)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = engine
        .post(
            &format!("/v1/executions/{first}/rerun"),
            json!({"from_node": "gate", "version": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let again = engine
        .finished(body["execution_id"].as_str().unwrap())
        .await;
    assert_eq!(again["status"], "succeeded", "{again}");
    assert_eq!(again["test"], true);
    let gate = node(&again, "gate");
    assert_eq!(gate["mocked"], false, "{again}");
    assert_eq!(gate["branch"], "false", "{again}");
    assert_eq!(node(&again, "no")["status"], "succeeded", "{again}");
    assert_eq!(node(&again, "yes")["status"], "skipped", "{again}");
}
both_modes!(a_rerun_does_not_mock_a_condition, rerun_mock_on_a_condition);
