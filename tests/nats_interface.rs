//! NATS publishers and subscribers: a JSON message on a tenant's trigger
//! subject starts its published workflow (a request gets the reply), and
//! the tenant's event subjects carry the same events as its SSE stream.

mod common;

use std::time::Duration;

use common::{Engine, Mode, eventually};
use futures::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};

fn order_flow() -> Value {
    json!({"name": "orders", "nodes": [
        {"id": "in", "type": "trigger", "kind": "nats", "config": {"subject": "orders.created"}},
        {"id": "answer", "type": "action", "kind": "respond",
         "config": {"status": 201, "body": {"order": "{{ trigger.body.id }}", "via": "{{ trigger.subject }}"}}}
    ], "edges": [{"from": "in", "to": "answer"}]})
}

fn audit_flow() -> Value {
    json!({"name": "audit", "nodes": [
        {"id": "in", "type": "trigger", "kind": "nats", "config": {"subject": "audit"}},
        {"id": "note", "type": "data", "kind": "mapping", "config": {"mapping": {"seen": "{{ trigger.body.what }}"}}}
    ], "edges": [{"from": "in", "to": "note"}]})
}

async fn request(
    client: &async_nats::Client,
    subject: String,
    body: &[u8],
) -> (Option<String>, Value) {
    let reply = tokio::time::timeout(
        Duration::from_secs(20),
        client.request(subject, body.to_vec().into()),
    )
    .await
    .expect("a reply in time")
    .expect("a reply");
    let status = reply
        .headers
        .as_ref()
        .and_then(|h| h.get("Flowmesh-Status"))
        .map(|v| v.as_str().to_owned());
    (
        status,
        serde_json::from_slice(&reply.payload).expect("JSON reply"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_messages_start_workflows_and_subscribers_see_events() {
    let engine = Engine::start(Mode::Distributed).await;
    let key = engine.create_tenant("Nats Shop").await;
    engine.deploy_as(&key, order_flow()).await;
    engine.deploy_as(&key, audit_flow()).await;
    let client = async_nats::connect(&engine.servers.nats)
        .await
        .expect("NATS");
    let prefix = &engine.prefix;
    let mut events = client
        .subscribe(format!("{prefix}.events.nats-shop.>"))
        .await
        .unwrap();
    client.flush().await.unwrap();

    // A workflow that responds answers the request with its response.
    let (status, body) = request(
        &client,
        format!("{prefix}.trigger.nats-shop.orders.created"),
        br#"{"id": "A-17"}"#,
    )
    .await;
    assert_eq!(status.as_deref(), Some("201"));
    assert_eq!(body, json!({"order": "A-17", "via": "orders.created"}));

    // Another answers once the execution is recorded; it then runs.
    let (status, body) = request(
        &client,
        format!("{prefix}.trigger.nats-shop.audit"),
        br#"{"what": "login"}"#,
    )
    .await;
    assert_eq!(status.as_deref(), Some("202"));
    let id = body["execution_id"]
        .as_str()
        .expect("execution id")
        .to_owned();
    let done = eventually("the audit run ends", Duration::from_secs(20), || async {
        let (_, e) = engine
            .request_as(&key, Method::GET, &format!("/v1/executions/{id}"), None)
            .await;
        (e["status"] == "succeeded").then_some(e)
    })
    .await;
    assert_eq!(done["output"], json!({"seen": "login"}));

    // Subscribers got the same events as the execution's SSE stream.
    let mut seen: Vec<Value> = Vec::new();
    let finished = |seen: &Vec<Value>| {
        seen.iter()
            .any(|e| e["execution_id"] == id.as_str() && e["type"] == "execution_finished")
    };
    while !finished(&seen) {
        let message = tokio::time::timeout(Duration::from_secs(20), events.next())
            .await
            .expect("an event in time")
            .expect("subscribed");
        seen.push(serde_json::from_slice(&message.payload).expect("JSON event"));
    }
    let ours: Vec<&Value> = seen
        .iter()
        .filter(|e| e["execution_id"] == id.as_str())
        .collect();
    let kinds: Vec<&str> = ours.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"execution_started"));
    assert!(kinds.contains(&"node_succeeded"));
    let seqs: Vec<u64> = ours.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());

    // Bad input gets a clear error reply, and starts nothing.
    let (status, body) = request(
        &client,
        format!("{prefix}.trigger.nats-shop.audit"),
        b"{not json",
    )
    .await;
    assert_eq!(status, None);
    assert_eq!(body["error"]["code"], "malformed_json");
    let (_, body) = request(
        &client,
        format!("{prefix}.trigger.nats-shop.nothing.here"),
        b"{}",
    )
    .await;
    assert_eq!(body["error"]["code"], "not_found");
    let (_, body) = request(
        &client,
        format!("{prefix}.trigger.no-such-tenant.audit"),
        b"{}",
    )
    .await;
    assert_eq!(body["error"]["code"], "not_found");
    // The same trigger is not reachable over HTTP.
    let resp = engine
        .client()
        .request(
            Method::from_bytes(b"NATS").unwrap(),
            engine.url("/hooks/nats-shop/audit"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::NOT_FOUND);
}
