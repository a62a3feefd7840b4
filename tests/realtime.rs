//! Realtime: the tenant's stream of every execution event over SSE and
//! WebSocket, with per-execution sequence numbers, resumed after a
//! reconnect without a gap or a repeat.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::sse::{SseReader, three_steps, until_finished};
use common::{ADMIN_KEY, Engine, Mode};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn the_tenant_stream_resumes_without_gaps(mode: Mode) {
    let engine = Engine::start(mode).await;
    let stranger = engine.create_tenant("Stranger").await;
    let workflow = engine.deploy(three_steps()).await;
    let mut full = SseReader::open(&engine, ADMIN_KEY, "/v1/events", None).await;
    let mut stranger_stream = SseReader::open(&engine, &stranger, "/v1/events", None).await;
    let mut partial = SseReader::open(&engine, ADMIN_KEY, "/v1/events", None).await;
    let ids = [
        engine.start_execution(&workflow, json!({})).await,
        engine.start_execution(&workflow, json!({})).await,
    ];
    let everything = until_finished(&mut full, 2).await;
    for event in &everything {
        assert!(ids.contains(&event.data["execution_id"].as_str().unwrap().to_owned()));
    }
    // Per execution: sequence numbers 1, 2, 3, … in order.
    let mut by_execution: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for event in &everything {
        by_execution
            .entry(event.data["execution_id"].as_str().unwrap().to_owned())
            .or_default()
            .push(event.data["seq"].as_u64().unwrap());
    }
    for seqs in by_execution.values() {
        assert_eq!(*seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    }
    // Ids increase along the stream.
    let positions: Vec<u64> = everything
        .iter()
        .map(|e| e.id.as_ref().unwrap().parse().unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");

    // A client that read three events, dropped, and reconnected with the
    // last id gets exactly the rest.
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(partial.next().await);
    }
    drop(partial);
    let last = seen.last().unwrap().id.clone().unwrap();
    let mut resumed = SseReader::open(&engine, ADMIN_KEY, "/v1/events", Some(&last)).await;
    while seen.len() < everything.len() {
        seen.push(resumed.next().await);
    }
    assert_eq!(seen, everything, "no gap, no repeat");

    // Over WebSocket, from the same place: the same events.
    let ws_url = engine
        .url(&format!("/v1/events/ws?last_event_id={last}"))
        .replacen("http", "ws", 1);
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(ws_url)
            .unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {ADMIN_KEY}").parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("websocket");
    for expected in &everything[3..] {
        let message = tokio::time::timeout(Duration::from_secs(20), socket.next())
            .await
            .expect("a message in time")
            .expect("open")
            .expect("message");
        let got: Value = serde_json::from_str(message.to_text().unwrap()).unwrap();
        assert_eq!(got["id"].to_string(), *expected.id.as_ref().unwrap());
        assert_eq!(got["event"], expected.data);
    }

    // Another tenant's stream saw nothing of these: its first event is its own.
    let theirs = engine.deploy_as(&stranger, three_steps()).await;
    let started = engine
        .start_execution_as(&stranger, &theirs, json!({}))
        .await;
    let first = stranger_stream.next().await;
    assert_eq!(first.data["execution_id"], started.as_str());

    // A Last-Event-ID that is not one of the stream's ids is refused.
    let bad = engine
        .client()
        .get(engine.url("/v1/events"))
        .bearer_auth(ADMIN_KEY)
        .header("Last-Event-ID", "yesterday")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}
both_modes!(
    the_tenant_stream_resumes_after_a_reconnect,
    the_tenant_stream_resumes_without_gaps
);

/// Consumers on the engine's events stream in NATS.
async fn event_consumers(engine: &Engine) -> usize {
    let client = async_nats::connect(&engine.servers.nats).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let name = format!("{}_EVT", engine.prefix.to_uppercase());
    let mut stream = js.get_stream(name).await.unwrap();
    stream.info().await.unwrap().state.consumer_count
}

/// Fifty open streams of one tenant cost the process one JetStream
/// consumer, not fifty, and each still gets every event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_streams_share_one_consumer() {
    let engine = Engine::start(Mode::Distributed).await;
    let workflow = engine.deploy(three_steps()).await;
    let before = event_consumers(&engine).await;
    let mut streams = Vec::new();
    for _ in 0..50 {
        streams.push(SseReader::open(&engine, ADMIN_KEY, "/v1/events", None).await);
    }
    assert_eq!(
        event_consumers(&engine).await,
        before + 1,
        "one consumer for all the tenant's streams"
    );
    let id = engine.start_execution(&workflow, json!({})).await;
    let mut all = Vec::new();
    for stream in &mut streams {
        let events = until_finished(stream, 1).await;
        assert!(
            events.iter().all(|e| e.data["execution_id"] == id.as_str()),
            "{events:?}"
        );
        all.push(events);
    }
    assert!(
        all.windows(2).all(|w| w[0] == w[1]),
        "every stream got the same events"
    );
}
