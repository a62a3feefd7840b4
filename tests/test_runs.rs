//! Test runs of any version with mocked nodes, and re-runs of a failed
//! execution on a newer version.

mod common;

use std::time::Duration;

use common::stub::StubServer;
use common::{Engine, Mode, error_message, eventually, node};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A manual and a webhook trigger (at `path`) into an outside call whose
/// answer a mapping reads.
fn fetching(stub: &StubServer, path: &str) -> Value {
    json!({"name": "fetching", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "hook", "type": "trigger", "kind": "webhook", "config": {"method": "POST", "path": path}},
        {"id": "fetch", "type": "action", "kind": "http_request", "retry": {"max_attempts": 1},
         "config": {"method": "POST", "url": stub.url("/ok/fetch"), "body": {"n": "{{ trigger.body.n }}"}}},
        {"id": "shape", "type": "data", "kind": "mapping",
         "config": {"mapping": {"status": "{{ fetch.status }}", "n": "{{ trigger.body.n }}"}}}
    ], "edges": [{"from": "start", "to": "fetch"}, {"from": "hook", "to": "fetch"},
                 {"from": "fetch", "to": "shape"}]})
}

async fn create(engine: &Engine, document: Value) -> String {
    let (status, body) = engine.post("/v1/workflows", document).await;
    assert_eq!(status, StatusCode::CREATED, "create: {body}");
    body["id"].as_str().unwrap().to_owned()
}

async fn save(engine: &Engine, id: &str, document: Value) {
    let (status, body) = engine
        .request(Method::PUT, &format!("/v1/workflows/{id}"), Some(document))
        .await;
    assert_eq!(status, StatusCode::OK, "save: {body}");
}

async fn publish(engine: &Engine, id: &str, version: i64) {
    let (status, body) = engine
        .post(
            &format!("/v1/workflows/{id}/publish"),
            json!({"version": version}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "publish: {body}");
}

async fn test_run(engine: &Engine, path: &str, body: Value) -> (StatusCode, Value) {
    engine.post(path, body).await
}

/// The path of the first problem of a 422 answer.
fn problem_path(body: &Value) -> &str {
    body["error"]["details"][0]["path"]
        .as_str()
        .unwrap_or_default()
}

async fn hook_status(engine: &Engine, path: &str) -> StatusCode {
    engine
        .client()
        .post(engine.url(&format!("/hooks/default/{path}")))
        .json(&json!({"n": 1}))
        .send()
        .await
        .unwrap()
        .status()
}

async fn draft_test_runs(mode: Mode) {
    let stub = StubServer::start().await;
    let engine = Engine::start(mode).await;
    let workflow = create(&engine, fetching(&stub, "testruns-v1")).await;
    publish(&engine, &workflow, 1).await;
    save(&engine, &workflow, fetching(&stub, "testruns-v2")).await;
    let draft = format!("/v1/workflows/{workflow}/versions/2/executions");

    let (status, answer) = test_run(
        &engine,
        &format!("{draft}?wait=true&timeout=20s"),
        json!({"input": {"n": 5}, "mocks": {"fetch": {"status": 299, "body": {}}}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["status"], "succeeded", "{answer}");
    let id = answer["execution_id"].as_str().unwrap().to_owned();
    assert!(
        stub.hits("/ok/fetch").is_empty(),
        "a mocked node is not run"
    );
    let run = engine.execution(&id).await;
    assert_eq!(
        (run["test"].clone(), run["version"].clone()),
        (json!(true), json!(2))
    );
    let fetch = node(&run, "fetch");
    assert_eq!(
        (
            fetch["status"].clone(),
            fetch["mocked"].clone(),
            fetch["output"].clone()
        ),
        (
            json!("succeeded"),
            json!(true),
            json!({"status": 299, "body": {}})
        )
    );
    assert_eq!(
        node(&run, "shape")["output"],
        json!({"status": 299, "n": 5})
    );
    assert_eq!(node(&run, "shape")["mocked"], false);
    let (_, logs) = engine.get(&format!("/v1/executions/{id}/logs")).await;
    let logged = logs["nodes"].as_array().unwrap();
    let mocked: Vec<&str> = logged
        .iter()
        .filter(|n| n["mocked"] == true)
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert_eq!(mocked, ["fetch"], "{logs}");
    let events = engine.events_text(&id).await;
    assert!(
        events.contains("\"test\":true"),
        "the start event says it is a test: {events}"
    );

    // Without mocks the nodes run; a normal run is no test.
    let (status, answer) = test_run(
        &engine,
        &format!("{draft}?wait=true"),
        json!({"input": {"n": 2}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["status"], "succeeded", "{answer}");
    assert_eq!(stub.hits("/ok/fetch").len(), 1);
    let normal = engine.start_execution(&workflow, json!({"n": 1})).await;
    assert_eq!(engine.finished(&normal).await["test"], false);
    let listed = |filter: &'static str| {
        let engine = &engine;
        async move {
            let (status, page) = engine.get(&format!("/v1/executions{filter}")).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| (e["id"].as_str().unwrap().to_owned(), e["test"] == true))
                .collect::<Vec<_>>()
        }
    };
    assert!(listed("").await.contains(&(id.clone(), true)));
    assert!(listed("").await.contains(&(normal.clone(), false)));
    let tests = listed("?test=true").await;
    assert_eq!(tests.len(), 2);
    assert!(tests.iter().all(|(_, test)| *test));
    assert_eq!(listed("?test=false").await, [(normal, false)]);

    // The draft's webhook is not served: the published version's is.
    assert_eq!(
        hook_status(&engine, "testruns-v2").await,
        StatusCode::NOT_FOUND
    );
    assert!(hook_status(&engine, "testruns-v1").await.is_success());
}
both_modes!(a_draft_is_test_run_with_mocks, draft_test_runs);

async fn refusals(mode: Mode) {
    let stub = StubServer::start().await;
    let engine = Engine::start(mode).await;
    let workflow = engine.deploy(fetching(&stub, "refusals")).await;
    let v1 = format!("/v1/workflows/{workflow}/versions/1/executions");
    for (mocks, path) in [
        (json!({"nope": {}}), "mocks.nope"),
        (json!({"start": {}}), "mocks.start"),
        (json!({"hook": {}}), "mocks.hook"),
    ] {
        let (status, body) = test_run(&engine, &v1, json!({"mocks": mocks})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(problem_path(&body), path, "{body}");
    }
    let (status, body) = engine
        .post(
            &format!("/v1/workflows/{workflow}/executions"),
            json!({"n": 1, "mocks": {"fetch": {}}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(problem_path(&body), "mocks", "{body}");
    let (status, body) = test_run(
        &engine,
        &format!("/v1/workflows/{workflow}/versions/9/executions"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(error_message(&body).contains("version"), "{body}");
    let (status, body) = test_run(
        &engine,
        &format!("/v1/workflows/{workflow}/versions/two/executions"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = test_run(&engine, &v1, json!({"inputs": {}})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let stranger = engine.create_tenant("stranger").await;
    let (status, _) = engine
        .request_as(&stranger, Method::POST, &v1, Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(stub.hits("/ok/fetch").is_empty(), "nothing ran");

    // A mock is an output like any other: over the tenant's cap, the node fails.
    let (status, body) = engine
        .request(
            Method::PUT,
            "/v1/settings",
            Some(json!({"retention": "30d", "max_output_bytes": 1024})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let big = "x".repeat(2048);
    let (status, body) = test_run(
        &engine,
        &format!("{v1}?wait=true"),
        json!({"mocks": {"fetch": {"big": big}}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "failed", "{body}");
    assert!(body["error"].as_str().unwrap().contains("cap"), "{body}");
}
both_modes!(bad_test_runs_are_refused, refusals);

/// Waits for a resume, then calls out (mocked in the tests).
fn held(stub: &StubServer) -> Value {
    json!({"name": "held", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "hold", "type": "action", "kind": "wait_for_event", "config": {}},
        {"id": "fetch", "type": "action", "kind": "http_request", "retry": {"max_attempts": 1},
         "config": {"method": "POST", "url": stub.url("/ok/held"), "body": {}}},
        {"id": "shape", "type": "data", "kind": "mapping", "config": {"mapping": {"answer": "{{ fetch.answer }}"}}}
    ], "edges": [{"from": "start", "to": "hold"}, {"from": "hold", "to": "fetch"},
                 {"from": "fetch", "to": "shape"}]})
}

async fn mocks_survive(mode: Mode) {
    let stub = StubServer::start().await;
    let mut engine = Engine::start(mode).await;
    let workflow = create(&engine, held(&stub)).await;
    let (status, body) = test_run(
        &engine,
        &format!("/v1/workflows/{workflow}/versions/1/executions"),
        json!({"mocks": {"fetch": {"answer": "mocked"}}}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["execution_id"].as_str().unwrap().to_owned();
    eventually("the run waits", Duration::from_secs(20), || {
        let engine = &engine;
        let id = id.clone();
        async move {
            let run = engine.execution(&id).await;
            (node(&run, "hold")["status"] == "waiting").then_some(())
        }
    })
    .await;
    engine.kill_and_restart().await;
    let (status, body) = engine
        .post(&format!("/v1/executions/{id}/resume"), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let run = engine.finished(&id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(node(&run, "shape")["output"], json!({"answer": "mocked"}));
    assert!(
        stub.hits("/ok/held").is_empty(),
        "the mock outlived the restart"
    );

    // A re-run of a test run is a test run with the same mocks.
    let (status, body) = engine
        .post(
            &format!("/v1/executions/{id}/rerun"),
            json!({"from_node": "fetch"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let again = engine
        .finished(body["execution_id"].as_str().unwrap())
        .await;
    assert_eq!(again["status"], "succeeded", "{again}");
    assert_eq!(again["test"], true);
    assert_eq!(node(&again, "fetch")["mocked"], true);
    assert!(stub.hits("/ok/held").is_empty());
}
both_modes!(mocks_survive_a_restart_and_a_rerun, mocks_survive);

/// A call to `first`, then one to `second_url` that may fail at once.
fn two_calls(stub: &StubServer, first_kind: &str, second_url: &str) -> Value {
    let first = if first_kind == "mapping" {
        json!({"id": "first", "type": "data", "kind": "mapping", "config": {"mapping": {"from": "mapping"}}})
    } else {
        json!({"id": "first", "type": "action", "kind": "http_request",
               "config": {"method": "POST", "url": stub.url("/ok/first"), "body": {}}})
    };
    json!({"name": "two calls", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        first,
        {"id": "second", "type": "action", "kind": "http_request", "retry": {"max_attempts": 1},
         "config": {"method": "POST", "url": second_url, "body": {}}}
    ], "edges": [{"from": "start", "to": "first"}, {"from": "first", "to": "second"}]})
}

async fn rerun_on_newer(mode: Mode) {
    let stub = StubServer::start().await;
    let engine = Engine::start(mode).await;
    let workflow = engine
        .deploy(two_calls(&stub, "http_request", &stub.url("/status/500")))
        .await;
    let failed = engine.start_execution(&workflow, json!({})).await;
    let run = engine.finished(&failed).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(stub.hits("/ok/first").len(), 1);

    // Version 2 fixes the second call; it is published.
    save(
        &engine,
        &workflow,
        two_calls(&stub, "http_request", &stub.url("/ok/fixed")),
    )
    .await;
    publish(&engine, &workflow, 2).await;
    let rerun = |body: Value| {
        let engine = &engine;
        let path = format!("/v1/executions/{failed}/rerun");
        async move { engine.post(&path, body).await }
    };
    let (status, body) = rerun(json!({"from_node": "second", "version": "published"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let fixed = engine
        .finished(body["execution_id"].as_str().unwrap())
        .await;
    assert_eq!(fixed["status"], "succeeded", "{fixed}");
    assert_eq!(fixed["version"], 2);
    assert_eq!(fixed["rerun_of"]["execution_id"], failed.as_str());
    assert_eq!(stub.hits("/ok/first").len(), 1, "first is reused");
    assert_eq!(stub.hits("/ok/fixed").len(), 1);
    assert_eq!(
        node(&fixed, "first")["output"],
        node(&run, "first")["output"]
    );

    // On the original's version it fails again.
    let (status, body) = rerun(json!({"from_node": "second"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let same = engine
        .finished(body["execution_id"].as_str().unwrap())
        .await;
    assert_eq!(
        (same["status"].clone(), same["version"].clone()),
        (json!("failed"), json!(1))
    );

    // Version 3 makes `first` a mapping: a changed kind runs again.
    save(
        &engine,
        &workflow,
        two_calls(&stub, "mapping", &stub.url("/ok/fixed")),
    )
    .await;
    let (status, body) = rerun(json!({"from_node": "second", "version": 3})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let changed = engine
        .finished(body["execution_id"].as_str().unwrap())
        .await;
    assert_eq!(changed["status"], "succeeded", "{changed}");
    assert_eq!(
        node(&changed, "first")["output"],
        json!({"from": "mapping"})
    );

    // from_node must be in the version; the version must exist.
    let mut gone = two_calls(&stub, "http_request", &stub.url("/ok/fixed"));
    gone["nodes"][2]["id"] = json!("other");
    gone["edges"][1]["to"] = json!("other");
    save(&engine, &workflow, gone).await;
    let (status, body) = rerun(json!({"from_node": "second", "version": 4})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(problem_path(&body), "from_node", "{body}");
    let (status, body) = rerun(json!({"from_node": "second", "version": 9})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = rerun(json!({"from_node": "second", "version": "latest"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        error_message(&body).starts_with("version: must be a version number"),
        "{body}"
    );
}
both_modes!(a_failed_run_is_rerun_on_a_newer_version, rerun_on_newer);
