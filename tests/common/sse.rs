//! A reader of Server-Sent Events for the tests of event streams.

use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::Engine;

/// One Server-Sent Event: its id, name and data (JSON when it is).
#[derive(Clone, Debug, PartialEq)]
pub struct Sse {
    pub id: Option<String>,
    pub event: String,
    pub data: Value,
}

impl Sse {
    /// The id as a number.
    pub fn number(&self) -> u64 {
        self.id
            .as_deref()
            .expect("an id")
            .parse()
            .expect("a number")
    }
}

/// Reads Server-Sent Events from a response as they arrive.
pub struct SseReader {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl SseReader {
    pub async fn open(engine: &Engine, key: &str, path: &str, last_id: Option<&str>) -> SseReader {
        let mut request = engine.client().get(engine.url(path)).bearer_auth(key);
        if let Some(id) = last_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.expect("stream");
        SseReader::of(response)
    }

    /// Reads a response that must be a stream.
    pub fn of(response: reqwest::Response) -> SseReader {
        assert_eq!(response.status(), StatusCode::OK);
        SseReader {
            body: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next event (keep-alive comments skipped), within a deadline;
    /// `None` once the stream has ended.
    pub async fn next_or_end(&mut self) -> Option<Sse> {
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
                    let data = serde_json::from_str(&data).unwrap_or(Value::String(data));
                    return Some(Sse { id, event, data });
                }
                let chunk = self.body.next().await?.expect("bytes");
                self.buffer.push_str(&String::from_utf8_lossy(&chunk));
            }
        })
        .await
        .expect("an event in time")
    }

    /// The next event, within a deadline.
    pub async fn next(&mut self) -> Sse {
        self.next_or_end().await.expect("the stream stays open")
    }

    /// Every event until the stream ends.
    pub async fn until_closed(&mut self) -> Vec<Sse> {
        let mut events = Vec::new();
        while let Some(event) = self.next_or_end().await {
            events.push(event);
        }
        events
    }
}

/// A workflow of two mapping steps after a manual trigger.
pub fn three_steps() -> Value {
    json!({"name": "steps", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "a", "type": "data", "kind": "mapping", "config": {"mapping": {"n": 1}}},
        {"id": "b", "type": "data", "kind": "mapping", "config": {"mapping": {"n": 2}}}
    ], "edges": [{"from": "start", "to": "a"}, {"from": "a", "to": "b"}]})
}

/// Events read until `count` executions have finished.
pub async fn until_finished(reader: &mut SseReader, count: usize) -> Vec<Sse> {
    let mut events = Vec::new();
    let mut finished = 0;
    while finished < count {
        let event = reader.next().await;
        finished += usize::from(event.event == "execution_finished");
        events.push(event);
    }
    events
}
