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

/// Another tenant's workflow cannot be test-run or re-run by id, a version
/// out of range or of the wrong type is refused plainly, and settings that
/// go past the instance's bounds are refused: never a 500.
async fn hostile_ids_and_numbers(mode: Mode) {
    let stub = StubServer::start().await;
    let engine = Engine::start(mode).await;
    let other = engine.create_tenant("Prying").await;
    let workflow = engine.deploy(gated(&stub, true)).await;
    let execution = engine.start_execution(&workflow, json!({})).await;
    engine.finished(&execution).await;

    let as_other = |method: Method, path: String, body: Value| {
        let (engine, other) = (&engine, &other);
        async move { engine.request_as(other, method, &path, Some(body)).await }
    };
    let test_path =
        |version: &str| format!("/v1/workflows/{workflow}/versions/{version}/executions");
    let (status, body) = as_other(Method::POST, test_path("1"), json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let rerun = format!("/v1/executions/{execution}/rerun");
    let (status, body) = as_other(Method::POST, rerun.clone(), json!({"from_node": "gate"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    for version in ["0", "-1", "99999999999999999999", "1.5", "latest"] {
        let (status, body) = engine.post(&test_path(version), json!({})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{version}: {body}");
    }
    let (status, body) = engine
        .post(&test_path("9223372036854775807"), json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    for version in [
        json!(0),
        json!(-3),
        json!(1.5),
        json!(true),
        json!([1]),
        json!("Published"),
    ] {
        let (status, body) = engine
            .post(&rerun, json!({"from_node": "gate", "version": version}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{version}: {body}");
    }
    let (status, body) = engine
        .post(&rerun, json!({"from_node": "gate", "version": i64::MAX}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    for settings in [
        json!({"retention": "-1d"}),
        json!({"retention": "0s"}),
        json!({"retention": "99999999999999999999999d"}),
        json!({"retention": 30}),
        json!({"max_output_bytes": -1}),
        json!({"max_output_bytes": 1e300}),
        json!({"max_output_bytes": 1}),
        json!({"limits": {"max_concurrent": 1000000}}),
    ] {
        let (status, body) = engine
            .request(Method::PUT, "/v1/settings", Some(settings.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{settings}: {body}");
    }
    let (status, body) = engine
        .request(
            Method::PUT,
            "/v1/settings",
            Some(json!({"max_output_bytes": 256u64 * 1024 * 1024})),
        )
        .await;
    assert!(
        status.is_client_error(),
        "over the instance's cap: {status} {body}"
    );
    let (status, body) = engine.get("/v1/settings").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["retention"], "30days", "{body}");
}
both_modes!(hostile_ids_and_numbers, hostile_ids_and_numbers);
