//! What survives: restarts mid-run, repeated webhooks, graceful shutdown.

mod common;

use std::time::Duration;

use common::stub::StubServer;
use common::{Engine, Mode, eventually, node};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn two_calls_with_a_wait(stub: &StubServer, pause: &str) -> Value {
    json!({"name": "resume", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "first", "type": "action", "kind": "http_request", "config": {"method": "POST", "url": stub.url("/ok/first"), "body": {"run": "{{ trigger.body.run }}"}}},
        {"id": "pause", "type": "action", "kind": "wait", "config": {"duration": pause}},
        {"id": "second", "type": "action", "kind": "http_request", "config": {"method": "POST", "url": stub.url("/ok/second"), "body": {"run": "{{ trigger.body.run }}"}}}
    ], "edges": [{"from": "start", "to": "first"}, {"from": "first", "to": "pause"}, {"from": "pause", "to": "second"}]})
}

async fn restart_mid_run(mode: Mode) {
    let stub = StubServer::start().await;
    let mut engine = Engine::start(mode).await;
    let workflow = engine.deploy(two_calls_with_a_wait(&stub, "1500ms")).await;
    let id = engine.start_execution(&workflow, json!({"run": 1})).await;
    eventually(
        "first node done and waiting",
        Duration::from_secs(20),
        || async {
            let e = engine.execution(&id).await;
            (node(&e, "pause")["wake_at"].is_number()).then_some(())
        },
    )
    .await;
    engine.kill_and_restart().await;
    let done = engine.finished(&id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        stub.hits("/ok/first").len(),
        1,
        "a completed node must not run again"
    );
    assert_eq!(stub.hits("/ok/second").len(), 1);
    assert_eq!(node(&done, "first")["attempts"], 1);
}
both_modes!(
    a_restart_mid_run_resumes_without_rerunning_completed_nodes,
    restart_mid_run
);

async fn graceful_shutdown(mode: Mode) {
    let stub = StubServer::start().await;
    let mut engine = Engine::start(mode).await;
    let workflow = engine
        .deploy(json!({"name": "inflight", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "slow", "type": "action", "kind": "http_request", "config": {"url": stub.url("/slow/500")}},
            {"id": "after", "type": "action", "kind": "http_request", "config": {"url": stub.url("/ok/after")}}
        ], "edges": [{"from": "start", "to": "slow"}, {"from": "slow", "to": "after"}]}))
        .await;
    let id = engine.start_execution(&workflow, json!({})).await;
    eventually("slow call in flight", Duration::from_secs(20), || async {
        (!stub.hits("/slow/").is_empty()).then_some(())
    })
    .await;
    let status = engine.terminate().await;
    assert!(status.success(), "graceful exit: {status}");
    // The in-flight attempt finished and was journaled before exit.
    engine.start_again().await;
    let done = engine.finished(&id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        stub.hits("/slow/").len(),
        1,
        "the in-flight node finished before exit and is not run again"
    );
    assert_eq!(stub.hits("/ok/after").len(), 1);
}
both_modes!(
    graceful_shutdown_finishes_in_flight_nodes,
    graceful_shutdown
);

/// A caller waiting for a run's result when the process stops is answered
/// with the execution's id (202), not a dropped connection: the execution
/// is recorded and goes on after the restart.
async fn a_stop_answers_waiting_callers(mode: Mode) {
    let mut engine = Engine::start(mode).await;
    let workflow = engine
        .deploy(json!({"name": "held", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "hold", "type": "action", "kind": "wait_for_event", "config": {}},
            {"id": "answer", "type": "action", "kind": "respond", "config": {"status": 200, "body": {"done": true}}}
        ], "edges": [{"from": "start", "to": "hold"}, {"from": "hold", "to": "answer"}]}))
        .await;
    let waiting = tokio::spawn(
        engine
            .client()
            .post(engine.url(&format!(
                "/v1/workflows/{workflow}/executions?wait=true&timeout=30s"
            )))
            .bearer_auth(common::ADMIN_KEY)
            .json(&json!({}))
            .send(),
    );
    let id = eventually("the run waits", Duration::from_secs(20), || async {
        let (_, list) = engine
            .get(&format!("/v1/executions?workflow_id={workflow}"))
            .await;
        let id = list["items"].get(0)?["id"].as_str()?.to_owned();
        let run = engine.execution(&id).await;
        (node(&run, "hold")["status"] == "waiting").then_some(id)
    })
    .await;
    let status = engine.terminate().await;
    assert!(status.success(), "graceful exit: {status}");
    let answer = waiting
        .await
        .unwrap()
        .expect("an answer, not a dropped connection");
    assert_eq!(answer.status(), StatusCode::ACCEPTED);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["execution_id"], id.as_str(), "{body}");

    engine.start_again().await;
    let (resumed, body) = engine
        .post(&format!("/v1/executions/{id}/resume"), json!({}))
        .await;
    assert_eq!(resumed, StatusCode::ACCEPTED, "{body}");
    let done = engine.finished(&id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
}
both_modes!(
    a_stop_answers_waiting_callers_with_their_execution,
    a_stop_answers_waiting_callers
);

async fn idempotent_webhook(mode: Mode) {
    let engine = Engine::start(mode).await;
    engine
        .deploy(json!({"name": "hook", "nodes": [
            {"id": "hook", "type": "trigger", "kind": "webhook", "config": {"path": "orders/new"}},
            {"id": "shape", "type": "data", "kind": "mapping", "config": {"mapping": {"id": "{{ trigger.body.id }}"}}}
        ], "edges": [{"from": "hook", "to": "shape"}]}))
        .await;
    let send = || async {
        let resp = engine
            .client()
            .post(engine.url("/hooks/default/orders/new"))
            .header("Idempotency-Key", "order-42")
            .json(&json!({"id": 42}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
        resp.json::<Value>().await.unwrap()["execution_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let first = send().await;
    let second = send().await;
    assert_eq!(first, second);
    let done = engine.finished(&first).await;
    assert_eq!(done["output"], json!({"id": 42}));
    let (_, list) = engine.get("/v1/executions").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
}
both_modes!(
    a_repeated_webhook_with_the_same_key_runs_once,
    idempotent_webhook
);
