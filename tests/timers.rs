//! Durable time: parked waits, waits for a resume, schedules.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::stub::StubServer;
use common::{Engine, Mode, eventually, node};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Parks anything with more than a second to wait.
const PARK_FAST: &[(&str, &str)] = &[("FLOWMESH_PARK_AFTER", "1s")];

fn approval(stub: &StubServer, timeout: Option<&str>) -> Value {
    let mut config = json!({});
    if let Some(timeout) = timeout {
        config["timeout"] = json!(timeout);
    }
    json!({"name": "approval", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "approve", "type": "action", "kind": "wait_for_event", "config": config},
        {"id": "notify", "type": "action", "kind": "http_request", "config": {"method": "POST", "url": stub.url("/ok/notify"),
         "body": {"approved": "{{ approve.payload.approved }}", "by": "{{ approve.payload.by }}"}}}
    ], "edges": [{"from": "start", "to": "approve"}, {"from": "approve", "to": "notify"}]})
}

async fn waiting_at(engine: &Engine, id: &str, at: &str) {
    eventually("the node waits", Duration::from_secs(20), || async {
        let e = engine.execution(id).await;
        (node(&e, at)["status"] == "waiting").then_some(())
    })
    .await;
}

async fn resume(engine: &Engine, id: &str, body: Value) -> (StatusCode, Value) {
    engine
        .post(&format!("/v1/executions/{id}/resume"), body)
        .await
}

async fn resumed_by_a_person(mode: Mode) {
    let stub = StubServer::start().await;
    let mut engine = Engine::start_with(mode, PARK_FAST).await;
    let workflow = engine.deploy(approval(&stub, Some("1h"))).await;
    let id = engine.start_execution(&workflow, json!({})).await;
    waiting_at(&engine, &id, "approve").await;

    let (status, body) = resume(&engine, &id, json!({"node": "notify"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = resume(&engine, &id, json!({"payload": 1, "extra": 2})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let stranger = engine.create_tenant("stranger").await;
    let (status, _) = engine
        .request_as(
            &stranger,
            Method::POST,
            &format!("/v1/executions/{id}/resume"),
            Some(json!({"payload": {"approved": true}})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another tenant's execution");

    // The wait is durable: it survives the process.
    engine.kill_and_restart().await;
    let (status, body) = resume(
        &engine,
        &id,
        json!({"payload": {"approved": true, "by": "ada"}}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["node"], "approve");
    let done = engine.finished(&id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(node(&done, "approve")["output"]["payload"]["by"], "ada");
    let hits = stub.hits("/ok/notify");
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].body["by"], "ada");
    let (status, body) = resume(&engine, &id, json!({"payload": {}})).await;
    assert_eq!(status, StatusCode::CONFLICT, "finished: {body}");
}
both_modes!(
    a_wait_for_an_event_is_resumed_through_the_api,
    resumed_by_a_person
);

async fn resume_times_out(mode: Mode) {
    let stub = StubServer::start().await;
    let engine = Engine::start_with(mode, PARK_FAST).await;
    let workflow = engine.deploy(approval(&stub, Some("2s"))).await;
    let id = engine.start_execution(&workflow, json!({})).await;
    let done = engine.finished(&id).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(node(&done, "approve")["status"], "failed");
    assert_eq!(node(&done, "notify")["status"], "skipped");
    assert!(stub.hits("/ok/notify").is_empty());
}
both_modes!(
    a_wait_for_an_event_fails_when_nobody_resumes_it,
    resume_times_out
);

async fn cancel_parked(mode: Mode) {
    let stub = StubServer::start().await;
    let engine = Engine::start_with(mode, PARK_FAST).await;
    let workflow = engine.deploy(approval(&stub, None)).await;
    let id = engine.start_execution(&workflow, json!({})).await;
    waiting_at(&engine, &id, "approve").await;
    let (status, body) = engine
        .post(&format!("/v1/executions/{id}/cancel"), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let done = engine.finished(&id).await;
    assert_eq!(done["status"], "cancelled", "{done}");
}
both_modes!(a_parked_execution_can_be_cancelled, cancel_parked);

async fn parked_wait_survives(mode: Mode) {
    let stub = StubServer::start().await;
    let mut engine = Engine::start_with(mode, PARK_FAST).await;
    let workflow = engine
        .deploy(json!({"name": "nap", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "nap", "type": "action", "kind": "wait", "config": {"duration": "4s"}},
            {"id": "after", "type": "action", "kind": "http_request", "config": {"url": stub.url("/ok/after")}}
        ], "edges": [{"from": "start", "to": "nap"}, {"from": "nap", "to": "after"}]}))
        .await;
    let started = Instant::now();
    let id = engine.start_execution(&workflow, json!({})).await;
    waiting_at(&engine, &id, "nap").await;
    engine.kill_and_restart().await;
    let done = engine.finished(&id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(started.elapsed() >= Duration::from_secs(4));
    assert!(node(&done, "nap")["output"]["waited_ms"].as_i64().unwrap() >= 4_000);
    assert_eq!(stub.hits("/ok/after").len(), 1);
}
both_modes!(
    a_parked_wait_ends_on_time_after_a_crash,
    parked_wait_survives
);

/// Every second, from two processes: each tick runs once, none is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_schedule_tick_fires_once_across_processes() {
    let stub = StubServer::start().await;
    let engine = Engine::start(Mode::Distributed).await;
    let peer = engine.peer().await;
    let workflow = engine
        .deploy(json!({"name": "every-second", "nodes": [
            {"id": "tick", "type": "trigger", "kind": "schedule", "config": {"cron": "* * * * * *", "timezone": "Europe/Paris"}},
            {"id": "call", "type": "action", "kind": "http_request", "config": {"method": "POST", "url": stub.url("/ok/tick"),
             "body": {"at": "{{ trigger.scheduled_at_ms }}"}}}
        ], "edges": [{"from": "tick", "to": "call"}]}))
        .await;
    eventually("six ticks", Duration::from_secs(30), || async {
        (stub.hits("/ok/tick").len() >= 6).then_some(())
    })
    .await;
    let (status, _) = engine
        .request(Method::DELETE, &format!("/v1/workflows/{workflow}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, page) = peer
        .get(&format!("/v1/executions?workflow_id={workflow}&limit=500"))
        .await;
    let executions = page["items"].as_array().unwrap().len();
    // Calls in flight at the delete may still land; wait for the journal's count.
    let hits = eventually(
        "every execution's call",
        Duration::from_secs(20),
        || async {
            let hits = stub.hits("/ok/tick");
            (hits.len() >= executions).then_some(hits)
        },
    )
    .await;
    let ticks: Vec<i64> = hits
        .iter()
        .map(|h| {
            let at = &h.body["at"];
            at.as_i64()
                .or_else(|| at.as_str()?.parse().ok())
                .expect("a tick time")
        })
        .collect();
    let distinct: BTreeSet<i64> = ticks.iter().copied().collect();
    assert_eq!(distinct.len(), ticks.len(), "a tick ran twice: {ticks:?}");
    assert_eq!(ticks.len(), executions);
    let (first, last) = (distinct.first().unwrap(), distinct.last().unwrap());
    assert_eq!(
        ((last - first) / 1000 + 1) as usize,
        distinct.len(),
        "a tick was lost: {distinct:?}"
    );
}

/// Twenty different resumes of one wait at once: the first recorded wins
/// (202) and is the node's output, every other gets 409; the winner sent
/// again is answered 202 again.
async fn racing_resumes(mode: Mode) {
    let stub = StubServer::start().await;
    let engine = Engine::start(mode).await;
    let workflow = engine.deploy(approval(&stub, Some("1h"))).await;
    let id = engine.start_execution(&workflow, json!({})).await;
    waiting_at(&engine, &id, "approve").await;
    let answers = futures::future::join_all((0..20).map(|n| {
        let engine = &engine;
        let id = &id;
        async move {
            let payload = json!({"approved": true, "by": format!("person-{n}")});
            let (status, body) = resume(engine, id, json!({"payload": payload})).await;
            (status, body, payload)
        }
    }))
    .await;
    let accepted: Vec<_> = answers
        .iter()
        .filter(|(status, _, _)| *status == StatusCode::ACCEPTED)
        .collect();
    assert_eq!(accepted.len(), 1, "{answers:?}");
    for (status, body, _) in &answers {
        if *status != StatusCode::ACCEPTED {
            assert_eq!(*status, StatusCode::CONFLICT, "{body}");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(message.contains("already resumed"), "{message}");
        }
    }
    let winner = accepted[0].2.clone();
    let done = engine.finished(&id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(node(&done, "approve")["output"]["payload"], winner);
    assert_eq!(stub.hits("/ok/notify").len(), 1);
    let (status, body) = resume(&engine, &id, json!({"payload": winner})).await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "the same resume again: {body}"
    );
}
both_modes!(a_wait_takes_the_first_of_concurrent_resumes, racing_resumes);

/// A schedule of a tenant without credits starts nothing: each tick is
/// skipped, audited and counted, and the schedule moves on.
async fn schedule_without_credits(mode: Mode) {
    let stub = StubServer::start().await;
    let engine = Engine::start_with(mode, &[("FLOWMESH_INITIAL_CREDITS", "0")]).await;
    let owner = engine.create_tenant("Broke").await;
    let workflow = engine
        .deploy_as(
            &owner,
            json!({"name": "every-second", "nodes": [
                {"id": "tick", "type": "trigger", "kind": "schedule", "config": {"cron": "* * * * * *"}},
                {"id": "call", "type": "action", "kind": "http_request", "config": {"method": "POST", "url": stub.url("/ok/tick")}}
            ], "edges": [{"from": "tick", "to": "call"}]}),
        )
        .await;
    let skipped = eventually("two skipped ticks", Duration::from_secs(20), || async {
        let (_, audit) = engine
            .request_as(
                &owner,
                Method::GET,
                "/v1/audit?action=schedule.tick_skipped",
                None,
            )
            .await;
        let items = audit["items"].as_array()?.clone();
        (items.len() >= 2).then_some(items)
    })
    .await;
    assert_eq!(skipped[0]["outcome"], "no_credits", "{skipped:?}");
    assert_eq!(skipped[0]["actor"], "engine");
    assert_eq!(skipped[0]["target"], format!("{workflow}/tick"));
    let (_, page) = engine
        .request_as(
            &owner,
            Method::GET,
            &format!("/v1/executions?workflow_id={workflow}"),
            None,
        )
        .await;
    assert_eq!(page["items"], json!([]), "no execution started");
    assert!(stub.hits("/ok/tick").is_empty());
    let metrics = engine.metrics_text().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("flowmesh_schedule_ticks_skipped_total{")
                && l.contains("reason=\"no_credits\"")),
        "{metrics}"
    );
}
both_modes!(
    a_schedule_without_credits_starts_nothing,
    schedule_without_credits
);
