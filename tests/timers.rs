//! Durable time: parked waits, waits for a resume, schedules.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::stub::StubServer;
use common::{
    Engine, Mode, SECOND_TICKS, assert_ran_one_at_a_time, eventually, every_second, node,
};
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
         "body": {"approved": "{{ approve.payload.approved | default(none) }}", "by": "{{ approve.payload.by | default(none) }}"}}}
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

/// A resume soon after the start (well within the bus's window for
/// duplicates) takes the parked execution back at once, not at the next
/// claim sweep, which this engine runs only every minute.
async fn resumed_soon_after_the_start(mode: Mode) {
    let stub = StubServer::start().await;
    let engine = Engine::start_with(
        mode,
        &[
            ("FLOWMESH_PARK_AFTER", "100ms"),
            ("FLOWMESH_CLAIM_INTERVAL", "1m"),
        ],
    )
    .await;
    let workflow = engine.deploy(approval(&stub, Some("1h"))).await;
    let id = engine.start_execution(&workflow, json!({})).await;
    waiting_at(&engine, &id, "approve").await;
    eventually("the execution parks", Duration::from_secs(10), || async {
        let text = engine.metrics_text().await;
        let parked = text
            .lines()
            .find_map(|l| l.strip_prefix("flowmesh_executions_parked_total "))
            .and_then(|v| v.trim().parse::<f64>().ok());
        (parked >= Some(1.0)).then_some(())
    })
    .await;
    let (status, body) = resume(&engine, &id, json!({"payload": {"by": "ada"}})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let done = eventually(
        "the resumed execution finishes before any sweep",
        Duration::from_secs(10),
        || async {
            let e = engine.execution(&id).await;
            (e["status"] == "succeeded").then_some(e)
        },
    )
    .await;
    assert_eq!(node(&done, "approve")["output"]["payload"]["by"], "ada");
    assert_eq!(stub.hits("/ok/notify").len(), 1);
}
both_modes!(
    a_resume_soon_after_the_start_is_applied_at_once,
    resumed_soon_after_the_start
);

/// With one concurrency slot, queued executions run one after another, each
/// woken by the end of the one before, not by a claim sweep (here a minute
/// apart).
async fn queued_for_a_slot(mode: Mode) {
    let engine = Engine::start_with(mode, &[("FLOWMESH_CLAIM_INTERVAL", "1m")]).await;
    let limits = json!({"rate_limit": null, "max_concurrent": 1, "max_payload_bytes": null});
    let (status, body) = engine
        .request(
            Method::PUT,
            "/v1/admin/tenants/default/limits",
            Some(limits),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    run_four_one_at_a_time(&engine).await;
}
both_modes!(
    queued_executions_are_woken_by_the_end_of_the_one_before,
    queued_for_a_slot
);

/// The instance's limit holds for a tenant that has none of its own.
async fn queued_for_an_instance_slot(mode: Mode) {
    let env = [
        ("FLOWMESH_CLAIM_INTERVAL", "1m"),
        ("FLOWMESH_TENANT_MAX_CONCURRENT", "1"),
    ];
    let engine = Engine::start_with(mode, &env).await;
    run_four_one_at_a_time(&engine).await;
}
both_modes!(
    the_instance_concurrency_limit_holds_for_every_tenant,
    queued_for_an_instance_slot
);

async fn run_four_one_at_a_time(engine: &Engine) {
    let workflow = engine
        .deploy(json!({"name": "slow", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "pause", "type": "action", "kind": "wait", "config": {"duration": "200ms"}}
        ], "edges": [{"from": "start", "to": "pause"}]}))
        .await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(engine.start_execution(&workflow, json!({})).await);
    }
    let mut finished = Vec::new();
    for id in &ids {
        let done = eventually(
            "every queued execution ran before any sweep",
            Duration::from_secs(15),
            || async {
                let e = engine.execution(id).await;
                (e["status"] == "succeeded").then_some(e)
            },
        )
        .await;
        finished.push(done);
    }
    assert_ran_one_at_a_time(&finished);
}

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
    assert_eq!(node(&done, "approve")["status"], "cancelled", "{done:#}");
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
    let engine = Engine::start_with(Mode::Distributed, &[SECOND_TICKS]).await;
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
    let engine = Engine::start_with(mode, &[("FLOWMESH_INITIAL_CREDITS", "0"), SECOND_TICKS]).await;
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
/// Lets every-second schedules through.
/// Publishes a workflow of the tenant of `key`: the status and body.
async fn publish(engine: &Engine, key: &str, workflow: &str) -> (StatusCode, Value) {
    let path = format!("/v1/workflows/{workflow}/publish");
    engine
        .request_as(key, Method::POST, &path, Some(json!({})))
        .await
}

/// Creates and publishes a workflow as the tenant of `key`: the publish's
/// status and body.
async fn publish_as(engine: &Engine, key: &str, document: Value) -> (StatusCode, Value) {
    let (status, body) = engine
        .request_as(key, Method::POST, "/v1/workflows", Some(document))
        .await;
    assert_eq!(status, StatusCode::CREATED, "create: {body}");
    publish(engine, key, body["id"].as_str().expect("id")).await
}

/// A schedule that ticks more often than the instance allows is refused
/// at publish, at the node's cron.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_ticking_too_often_is_refused() {
    let engine = Engine::start(Mode::Embedded).await;
    let key = engine.create_tenant("Eager").await;
    let document = json!({"name": "eager", "nodes": [
        {"id": "hourly", "type": "trigger", "kind": "schedule", "config": {"cron": "0 * * * *"}},
        {"id": "rapid", "type": "trigger", "kind": "schedule", "config": {"cron": "*/10 * * * * *"}}
    ]});
    let (status, body) = publish_as(&engine, &key, document).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        body["error"]["details"][0]["path"], "nodes[1].config.cron",
        "{body}"
    );
    assert_eq!(
        body["error"]["details"][0]["message"],
        "fires every 10 s; this instance allows at most one tick every 60 s"
    );
    let (status, body) = publish_as(
        &engine,
        &key,
        json!({"name": "hourly", "nodes": [
            {"id": "hourly", "type": "trigger", "kind": "schedule", "config": {"cron": "0 * * * *"}}
        ]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "an hourly schedule is fine: {body}");
}

/// A tenant holds at most the instance's number of schedules, across its
/// published workflows; publishing one again does not count it twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_holds_a_bounded_number_of_schedules() {
    let engine = Engine::start_with(
        Mode::Embedded,
        &[SECOND_TICKS, ("FLOWMESH_TENANT_MAX_SCHEDULES", "5")],
    )
    .await;
    let key = engine.create_tenant("Busy").await;
    let first = engine.deploy_as(&key, every_second("first", 3)).await;
    let (status, body) = publish(&engine, &key, &first).await;
    assert_eq!(status, StatusCode::OK, "publishing again: {body}");
    let (status, body) = publish_as(&engine, &key, every_second("second", 3)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["details"][0]["code"], "too_many_schedules");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("make 6; this instance allows a tenant 5"),
        "{message}"
    );
    let (status, body) = publish_as(&engine, &key, every_second("second", 2)).await;
    assert_eq!(status, StatusCode::OK, "up to the limit: {body}");
    // Another tenant has its own count.
    let other = engine.create_tenant("Other").await;
    engine.deploy_as(&other, every_second("theirs", 5)).await;
}
