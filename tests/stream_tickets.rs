//! Stream tickets: a browser, which cannot send an `Authorization` header
//! to an event stream, opens one with a short-lived single-use ticket.

mod common;

use std::time::Duration;

use common::sse::SseReader;
use common::{ADMIN_KEY, Engine, Mode, error_message, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn one_step() -> Value {
    json!({"name": "one", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "a", "type": "data", "kind": "mapping", "config": {"mapping": {"n": 1}}}
    ], "edges": [{"from": "start", "to": "a"}]})
}

/// A ticket for `key`'s tenant, and when it expires (ms since the epoch).
async fn ticket(engine: &Engine, key: &str) -> (String, i64) {
    let (status, body) = engine
        .request_as(key, reqwest::Method::POST, "/v1/stream-tickets", None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (
        body["ticket"].as_str().expect("a ticket").to_owned(),
        body["expires_at"].as_i64().expect("its expiry"),
    )
}

/// A request without any header but the ticket in its query.
async fn with_ticket(engine: &Engine, path: &str, ticket: &str) -> reqwest::Response {
    let separator = if path.contains('?') { '&' } else { '?' };
    engine
        .client()
        .get(engine.url(&format!("{path}{separator}ticket={ticket}")))
        .send()
        .await
        .unwrap()
}

async fn refusal(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or_default();
    (status, error_message(&body).to_owned())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A WebSocket handshake to the tenant stream with a ticket and no header.
async fn websocket(engine: &Engine, ticket: &str) -> Result<(), StatusCode> {
    let url = engine
        .url(&format!("/v1/events/ws?ticket={ticket}"))
        .replacen("http", "ws", 1);
    match tokio_tungstenite::connect_async(url).await {
        Ok(_) => Ok(()),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(response.status()),
        Err(e) => panic!("handshake failed: {e}"),
    }
}

async fn a_ticket_opens_one_stream_once(mode: Mode) {
    let engine = Engine::start_with(mode, &[("FLOWMESH_LOG", "debug")]).await;
    let workflow = engine.deploy(one_step()).await;
    let id = engine.start_execution(&workflow, json!({})).await;
    engine.finished(&id).await;
    let mut issued = Vec::new();

    let (sse, expires_at) = ticket(&engine, ADMIN_KEY).await;
    assert!(expires_at > now_ms() && expires_at <= now_ms() + 60_000);
    let path = format!("/v1/executions/{id}/events");
    let events = SseReader::of(with_ticket(&engine, &path, &sse).await)
        .until_closed()
        .await;
    assert_eq!(events.last().unwrap().event, "execution_finished");
    let (status, message) = refusal(with_ticket(&engine, &path, &sse).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(message.contains("already used"), "{message}");
    issued.push(sse);

    let (tenant_stream, _) = ticket(&engine, ADMIN_KEY).await;
    let response = with_ticket(&engine, "/v1/events", &tenant_stream).await;
    assert_eq!(response.status(), StatusCode::OK);
    drop(response);
    issued.push(tenant_stream);

    let (ws, _) = ticket(&engine, ADMIN_KEY).await;
    assert_eq!(websocket(&engine, &ws).await, Ok(()));
    assert_eq!(websocket(&engine, &ws).await, Err(StatusCode::UNAUTHORIZED));
    issued.push(ws);

    // Nothing but a stream takes a ticket.
    let (other, _) = ticket(&engine, ADMIN_KEY).await;
    let (status, message) = refusal(with_ticket(&engine, "/v1/workflows", &other).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(message.contains("event stream only"), "{message}");
    let (status, _) = refusal(
        engine
            .client()
            .post(engine.url(&format!("/v1/stream-tickets?ticket={other}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a ticket makes no ticket");
    issued.push(other);

    let log = engine.log_text();
    assert!(log.contains("/v1/"), "the log was written");
    for ticket in &issued {
        assert!(!log.contains(ticket.as_str()), "a ticket in the log");
    }
}
both_modes!(
    a_ticket_opens_one_stream_once_and_nothing_else,
    a_ticket_opens_one_stream_once
);

async fn an_expired_ticket_is_refused(mode: Mode) {
    let engine = Engine::start_with(mode, &[("FLOWMESH_STREAM_TICKET_TTL", "1ms")]).await;
    let (expired, expires_at) = ticket(&engine, ADMIN_KEY).await;
    eventually("the ticket expires", Duration::from_secs(5), || async {
        (now_ms() > expires_at).then_some(())
    })
    .await;
    let (status, message) = refusal(with_ticket(&engine, "/v1/events", &expired).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(message.contains("expired"), "{message}");
}
both_modes!(
    an_expired_ticket_is_refused_with_why,
    an_expired_ticket_is_refused
);

async fn a_ticket_reaches_its_own_tenant_only(mode: Mode) {
    let engine = Engine::start(mode).await;
    let stranger = engine.create_tenant("Stranger").await;
    let workflow = engine.deploy(one_step()).await;
    let id = engine.start_execution(&workflow, json!({})).await;
    engine.finished(&id).await;
    let (theirs, _) = ticket(&engine, &stranger).await;
    let path = format!("/v1/executions/{id}/events");
    let (status, _) = refusal(with_ticket(&engine, &path, &theirs).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Their tenant stream, replayed from its start, holds none of ours.
    let (theirs, _) = ticket(&engine, &stranger).await;
    let response = engine
        .client()
        .get(engine.url(&format!("/v1/events?ticket={theirs}")))
        .header("Last-Event-ID", "0")
        .send()
        .await
        .unwrap();
    let mut stream = SseReader::of(response);
    let own = engine.deploy_as(&stranger, one_step()).await;
    let started = engine.start_execution_as(&stranger, &own, json!({})).await;
    let first = stream.next().await;
    assert_eq!(first.data["execution_id"], started.as_str());
    assert_eq!(first.number(), 1);
}
both_modes!(
    a_ticket_reaches_its_own_tenant_only_in_both_modes,
    a_ticket_reaches_its_own_tenant_only
);
