//! Realtime: the tenant's stream of every execution event over SSE and
//! WebSocket, with per-execution sequence numbers, resumed after a
//! reconnect without a gap or a repeat.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{ADMIN_KEY, Engine, Mode};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// One Server-Sent Event: its id, name and JSON data.
#[derive(Clone, Debug, PartialEq)]
struct Sse {
    id: Option<String>,
    event: String,
    data: Value,
}

/// Reads Server-Sent Events from a response as they arrive.
struct SseReader {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl SseReader {
    async fn open(engine: &Engine, key: &str, path: &str, last_id: Option<&str>) -> SseReader {
        let mut request = engine.client().get(engine.url(path)).bearer_auth(key);
        if let Some(id) = last_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.expect("stream");
        assert_eq!(response.status(), StatusCode::OK);
        SseReader {
            body: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next event (keep-alive comments skipped), within a deadline.
    async fn next(&mut self) -> Sse {
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let block: String = self.buffer.drain(..end + 2).collect();
                    let (mut id, mut event, mut data) = (None, String::new(), String::new());
                    for line in block.lines() {
                        if let Some(v) = line.strip_prefix("id:") {
                            id = Some(v.trim().to_owned());
                        } else if let Some(v) = line.strip_prefix("event:") {
                            event = v.trim().to_owned();
                        } else if let Some(v) = line.strip_prefix("data:") {
                            data.push_str(v.trim());
                        }
                    }
                    if event.is_empty() {
                        continue;
                    }
                    let data = serde_json::from_str(&data).expect("JSON data");
                    return Sse { id, event, data };
                }
                let chunk = self
                    .body
                    .next()
                    .await
                    .expect("the stream stays open")
                    .expect("bytes");
                self.buffer.push_str(&String::from_utf8_lossy(&chunk));
            }
        })
        .await
        .expect("an event in time")
    }
}

fn three_steps() -> Value {
    json!({"name": "steps", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "a", "type": "data", "kind": "mapping", "config": {"mapping": {"n": 1}}},
        {"id": "b", "type": "data", "kind": "mapping", "config": {"mapping": {"n": 2}}}
    ], "edges": [{"from": "start", "to": "a"}, {"from": "a", "to": "b"}]})
}

/// Events of `count` executions, read until each has finished.
async fn until_finished(reader: &mut SseReader, count: usize) -> Vec<Sse> {
    let mut events = Vec::new();
    let mut finished = 0;
    while finished < count {
        let event = reader.next().await;
        finished += usize::from(event.event == "execution_finished");
        events.push(event);
    }
    events
}

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
    let (status, body) = engine
        .request_as(
            &stranger,
            reqwest::Method::POST,
            &format!("/v1/workflows/{theirs}/executions"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let first = stranger_stream.next().await;
    assert_eq!(first.data["execution_id"], body["execution_id"]);

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
