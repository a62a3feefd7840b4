//! The lifecycle of a workflow: its versions listed and read, publication
//! withdrawn and an earlier version published again (a rollback), and edits
//! made only over the version they were made on (`If-Match`).

mod common;

use std::time::Duration;

use common::{ADMIN_KEY, Engine, Mode, eventually, node};
use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A webhook that answers with `v`: which version served it.
fn hook(v: i64) -> Value {
    json!({"name": format!("hook v{v}"), "nodes": [
        {"id": "in", "type": "trigger", "kind": "webhook", "config": {"method": "POST", "path": "lifecycle"}},
        {"id": "answer", "type": "action", "kind": "respond", "config": {"status": 200, "body": {"v": v}}}
    ], "edges": [{"from": "in", "to": "answer"}]})
}

/// Waits for a resume, then says which version it ran.
fn held(v: i64) -> Value {
    json!({"name": "held", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "hold", "type": "action", "kind": "wait_for_event", "config": {}},
        {"id": "done", "type": "data", "kind": "mapping", "config": {"mapping": {"v": v}}}
    ], "edges": [{"from": "start", "to": "hold"}, {"from": "hold", "to": "done"}]})
}

async fn save(engine: &Engine, id: &str, document: Value) -> Value {
    let (status, body) = engine
        .request(Method::PUT, &format!("/v1/workflows/{id}"), Some(document))
        .await;
    assert_eq!(status, StatusCode::OK, "save: {body}");
    body
}

async fn publish(engine: &Engine, id: &str, body: Value) -> (StatusCode, Value) {
    engine
        .post(&format!("/v1/workflows/{id}/publish"), body)
        .await
}

async fn unpublish(engine: &Engine, id: &str) -> (StatusCode, Value) {
    engine
        .post(&format!("/v1/workflows/{id}/unpublish"), json!({}))
        .await
}

/// The webhook's status and answer.
async fn call_hook(engine: &Engine) -> (StatusCode, Value) {
    let resp = engine
        .client()
        .post(engine.url("/hooks/default/lifecycle"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn versions_listed_and_read(mode: Mode) {
    let engine = Engine::start(mode).await;
    let id = engine.deploy(hook(1)).await;
    save(&engine, &id, hook(2)).await;
    save(&engine, &id, hook(3)).await;
    let (status, body) = publish(&engine, &id, json!({"version": 2})).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, page) = engine.get(&format!("/v1/workflows/{id}/versions")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let listed: Vec<(i64, bool)> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["version"].as_i64().unwrap(), v["published"] == true))
        .collect();
    assert_eq!(listed, [(3, false), (2, true), (1, false)]);
    assert!(page["items"][0]["created_at"].as_i64().unwrap() > 0);
    assert_eq!(page["next_cursor"], Value::Null);

    // Paged like the other long lists.
    let (_, first) = engine
        .get(&format!("/v1/workflows/{id}/versions?limit=2"))
        .await;
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let (_, rest) = engine
        .get(&format!(
            "/v1/workflows/{id}/versions?limit=2&cursor={cursor}"
        ))
        .await;
    assert_eq!(rest["items"][0]["version"], 1);
    assert_eq!(rest["next_cursor"], Value::Null);

    let (status, one) = engine.get(&format!("/v1/workflows/{id}/versions/1")).await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(
        (one["version"].clone(), one["published"].clone()),
        (json!(1), json!(false))
    );
    assert_eq!(one["workflow_id"], id.as_str());
    assert_eq!(one["document"]["name"], "hook v1");
    let (_, two) = engine.get(&format!("/v1/workflows/{id}/versions/2")).await;
    assert_eq!(
        (two["published"].clone(), two["document"]["name"].clone()),
        (json!(true), json!("hook v2"))
    );

    let (status, body) = engine.get(&format!("/v1/workflows/{id}/versions/4")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = engine
        .get(&format!("/v1/workflows/{id}/versions/two"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let stranger = engine.create_tenant("stranger").await;
    for path in [
        format!("/v1/workflows/{id}/versions"),
        format!("/v1/workflows/{id}/versions/1"),
    ] {
        let (status, _) = engine.request_as(&stranger, Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "another tenant's: {path}");
    }
}
both_modes!(versions_are_listed_and_read, versions_listed_and_read);

async fn unpublished_and_rolled_back(mode: Mode) {
    let engine = Engine::start(mode).await;
    let id = engine.deploy(hook(1)).await;
    assert_eq!(call_hook(&engine).await, (StatusCode::OK, json!({"v": 1})));
    save(&engine, &id, hook(2)).await;
    let (status, body) = publish(&engine, &id, json!({})).await;
    assert_eq!(
        (status, body["published_version"].clone()),
        (StatusCode::OK, json!(2))
    );
    assert_eq!(call_hook(&engine).await, (StatusCode::OK, json!({"v": 2})));

    let (status, body) = unpublish(&engine, &id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["published_version"], Value::Null);
    assert_eq!(body["version"], 2, "nothing is deleted");
    assert_eq!(call_hook(&engine).await.0, StatusCode::NOT_FOUND);
    let (status, _) = engine
        .post(&format!("/v1/workflows/{id}/executions"), json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "not published: not started");

    // A rollback: the earlier version serves again, the later one stays.
    let (status, body) = publish(&engine, &id, json!({"version": 1})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["published_version"].clone(), body["version"].clone()),
        (json!(1), json!(2))
    );
    assert_eq!(call_hook(&engine).await, (StatusCode::OK, json!({"v": 1})));
    let (status, body) = publish(&engine, &id, json!({"version": 3})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = publish(&engine, &id, json!({"version": 0})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let (status, audit) = engine.get("/v1/audit?action=workflow.").await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["target"] == id.as_str() && r["outcome"] == "ok")
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "workflow.publish",
            "workflow.unpublish",
            "workflow.publish",
            "workflow.update",
            "workflow.publish",
            "workflow.create"
        ]
    );

    let stranger = engine.create_tenant("stranger").await;
    let (status, _) = engine
        .request_as(
            &stranger,
            Method::POST,
            &format!("/v1/workflows/{id}/unpublish"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another tenant's workflow");
    assert_eq!(call_hook(&engine).await.0, StatusCode::OK);
}
both_modes!(
    unpublish_and_rollback_leave_versions_be,
    unpublished_and_rolled_back
);

async fn running_keeps_its_version(mode: Mode) {
    let engine = Engine::start(mode).await;
    let id = engine.deploy(held(1)).await;
    let running = engine.start_execution(&id, json!({})).await;
    eventually("the node waits", Duration::from_secs(20), || async {
        let e = engine.execution(&running).await;
        (node(&e, "hold")["status"] == "waiting").then_some(())
    })
    .await;
    save(&engine, &id, held(2)).await;
    let (status, _) = publish(&engine, &id, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = unpublish(&engine, &id).await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = engine
        .post(&format!("/v1/executions/{running}/resume"), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let done = engine.finished(&running).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        (done["version"].clone(), done["output"].clone()),
        (json!(1), json!({"v": 1}))
    );
}
both_modes!(
    a_running_execution_keeps_its_version,
    running_keeps_its_version
);

/// Lets every-second schedules through.
const SECOND_TICKS: (&str, &str) = ("FLOWMESH_SCHEDULE_MIN_INTERVAL", "1s");

fn every_second(name: &str) -> Value {
    json!({"name": name, "nodes": [
        {"id": "tick", "type": "trigger", "kind": "schedule", "config": {"cron": "* * * * * *"}}
    ]})
}

async fn executions_of(engine: &Engine, workflow: &str) -> usize {
    let (_, page) = engine
        .get(&format!("/v1/executions?workflow_id={workflow}&limit=500"))
        .await;
    page["items"].as_array().map_or(0, Vec::len)
}

async fn schedules_stop(mode: Mode) {
    let engine = Engine::start_with(mode, &[SECOND_TICKS]).await;
    let stopped = engine.deploy(every_second("stopped")).await;
    eventually("a tick", Duration::from_secs(20), || async {
        (executions_of(&engine, &stopped).await >= 1).then_some(())
    })
    .await;
    let (status, _) = unpublish(&engine, &stopped).await;
    assert_eq!(status, StatusCode::OK);
    let at_unpublish = executions_of(&engine, &stopped).await;

    // Three ticks of another schedule: time enough for the first to tick
    // again, had it not stopped.
    let clock = engine.deploy(every_second("clock")).await;
    eventually("three ticks", Duration::from_secs(20), || async {
        (executions_of(&engine, &clock).await >= 3).then_some(())
    })
    .await;
    let now = executions_of(&engine, &stopped).await;
    assert!(
        now <= at_unpublish + 1,
        "{now} ticks after unpublishing at {at_unpublish}"
    );

    // Published again (version 1 still), it ticks again.
    let (status, body) = publish(&engine, &stopped, json!({"version": 1})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    eventually("ticks again", Duration::from_secs(20), || async {
        (executions_of(&engine, &stopped).await > now).then_some(())
    })
    .await;
}
both_modes!(an_unpublished_schedule_stops, schedules_stop);

/// A PUT with `If-Match`; its status, answer and `ETag`.
async fn save_over(
    engine: &Engine,
    id: &str,
    if_match: &str,
    document: Value,
) -> (StatusCode, Value, Option<String>) {
    let resp = engine
        .client()
        .put(engine.url(&format!("/v1/workflows/{id}")))
        .bearer_auth(ADMIN_KEY)
        .header("If-Match", if_match)
        .json(&document)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let etag = etag_of(&resp);
    (status, resp.json().await.unwrap_or(Value::Null), etag)
}

fn etag_of(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_owned())
}

async fn edits_over_a_version(mode: Mode) {
    let engine = Engine::start(mode).await;
    let (status, created) = engine.post("/v1/workflows", hook(1)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let read = engine
        .client()
        .get(engine.url(&format!("/v1/workflows/{id}")))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    let etag = etag_of(&read).expect("an ETag");
    assert_eq!(etag, "\"1\"");

    let (status, body, etag) = save_over(&engine, &id, &etag, hook(2)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["version"].clone(), etag.as_deref()),
        (json!(2), Some("\"2\""))
    );

    // Another edit of version 1 came second: refused, nothing saved.
    let (status, body, _) = save_over(&engine, &id, "1", hook(3)).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{body}");
    assert_eq!(body["error"]["code"], "precondition_failed");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("version 2"),
        "{body}"
    );
    let (_, page) = engine.get(&format!("/v1/workflows/{id}/versions")).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);

    for bad in ["two", "0", "\"2", "W/\"2\"", ""] {
        let (status, body, _) = save_over(&engine, &id, bad, hook(3)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "If-Match {bad:?}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("If-Match"),
            "{body}"
        );
    }
    let (status, body, _) = save_over(&engine, &id, "*", hook(3)).await;
    assert_eq!(
        (status, body["version"].clone()),
        (StatusCode::OK, json!(3))
    );
    // Without If-Match, as before: saved whatever came first.
    assert_eq!(save(&engine, &id, hook(4)).await["version"], 4);

    // Edits of the same version at once: exactly one is saved.
    let racing = (0..8).map(|i| save_over(&engine, &id, "\"4\"", hook(10 + i)));
    let statuses: Vec<StatusCode> = join_all(racing)
        .await
        .into_iter()
        .map(|(s, _, _)| s)
        .collect();
    let saved = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::PRECONDITION_FAILED)
        .count();
    assert_eq!((saved, refused), (1, 7), "{statuses:?}");
    let (_, page) = engine.get(&format!("/v1/workflows/{id}/versions")).await;
    assert_eq!(page["items"][0]["version"], 5);

    let (status, _, _) = save_over(
        &engine,
        "0190d5f5-0000-7000-8000-000000000000",
        "1",
        hook(1),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
both_modes!(an_edit_is_saved_only_over_its_version, edits_over_a_version);

/// The reply to a request on a trigger subject of the default tenant.
async fn trigger(client: &async_nats::Client, subject: String) -> Value {
    let reply = tokio::time::timeout(
        Duration::from_secs(20),
        client.request(subject, b"{}".to_vec().into()),
    )
    .await
    .expect("a reply in time")
    .expect("a reply");
    serde_json::from_slice(&reply.payload).expect("JSON reply")
}

/// NATS triggers are routed by the published version, like webhooks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpublished_nats_trigger_stops() {
    let engine = Engine::start(Mode::Distributed).await;
    let id = engine
        .deploy(json!({"name": "subject", "nodes": [
            {"id": "in", "type": "trigger", "kind": "nats", "config": {"subject": "lifecycle"}},
            {"id": "answer", "type": "action", "kind": "respond", "config": {"status": 200, "body": {"served": true}}}
        ], "edges": [{"from": "in", "to": "answer"}]}))
        .await;
    let prefix = &engine.prefix;
    let client = async_nats::ConnectOptions::new()
        .custom_inbox_prefix(format!("{prefix}.inbox.default"))
        .connect(&engine.servers.nats)
        .await
        .expect("NATS");
    let subject = format!("{prefix}.trigger.default.lifecycle");
    assert_eq!(
        trigger(&client, subject.clone()).await,
        json!({"served": true})
    );

    let (status, _) = unpublish(&engine, &id).await;
    assert_eq!(status, StatusCode::OK);
    let refused = trigger(&client, subject.clone()).await;
    assert_eq!(refused["error"]["code"], "not_found", "{refused}");

    let (status, _) = publish(&engine, &id, json!({"version": 1})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(trigger(&client, subject).await, json!({"served": true}));
}
