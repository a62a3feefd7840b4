//! A local server speaking the OpenAI chat-completions protocol, replaying
//! recorded answers (tests/llm/*.json): each recording names strings the
//! request's messages must contain and the answer to give, optionally
//! only a number of times, or an error status with a Retry-After. Asked
//! to stream, it sends the recorded answer as Server-Sent Events chunks.
//! It keeps every request for the tests to inspect.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Clone, Debug, Deserialize)]
pub struct Recording {
    /// Every string must occur in the request's messages.
    #[serde(rename = "match")]
    pub needles: Vec<String>,
    /// Served this many times, then skipped; always when absent.
    #[serde(default)]
    pub times: Option<u32>,
    /// An error status instead of an answer.
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub retry_after: Option<String>,
    /// The assistant's content (a JSON value is sent as its text).
    #[serde(default)]
    pub content: Value,
    #[serde(default)]
    pub usage: Option<Value>,
}

#[derive(Clone, Debug)]
pub struct Request {
    pub at: Instant,
    pub authorization: Option<String>,
    pub body: Value,
}

impl Request {
    /// Every message's content, joined.
    pub fn text(&self) -> String {
        self.body["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["content"].as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[derive(Default)]
struct Replay {
    recordings: Vec<(Recording, u32)>,
    requests: Vec<Request>,
}

#[derive(Clone)]
pub struct LlmServer {
    pub addr: SocketAddr,
    state: Arc<Mutex<Replay>>,
}

impl LlmServer {
    /// Serves the recordings of `tests/llm/{name}.json`.
    pub async fn start(name: &str) -> LlmServer {
        let path = format!("{}/tests/llm/{name}.json", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).expect("recordings");
        let recordings: Vec<Recording> = serde_json::from_str(&text).expect("recordings parse");
        let state = Arc::new(Mutex::new(Replay {
            recordings: recordings.into_iter().map(|r| (r, 0)).collect(),
            requests: Vec::new(),
        }));
        let app = Router::new()
            .route("/v1/chat/completions", post(complete))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind llm");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        LlmServer { addr, state }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }

    /// The engine's settings for this server as the instance's model.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("FLOWMESH_LLM_BASE_URL", self.base_url()),
            ("FLOWMESH_LLM_MODEL", "replay-1".to_owned()),
            ("FLOWMESH_LLM_API_KEY", "instance-key".to_owned()),
        ]
    }
}

async fn complete(
    State(state): State<Arc<Mutex<Replay>>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let request = Request {
        at: Instant::now(),
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: body.clone(),
    };
    let text = request.text();
    let found = {
        let mut replay = state.lock().unwrap();
        replay.requests.push(request);
        replay
            .recordings
            .iter_mut()
            .find(|(r, used)| {
                r.times.is_none_or(|t| *used < t) && r.needles.iter().all(|n| text.contains(n))
            })
            .map(|(r, used)| {
                *used += 1;
                r.clone()
            })
    };
    let Some(recording) = found else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"message": format!("no recording matches: {text:.200}")}})),
        )
            .into_response();
    };
    if let Some(status) = recording.status {
        let mut response = (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            Json(json!({"error": {"message": "recorded failure"}})),
        )
            .into_response();
        if let Some(after) = recording.retry_after {
            response
                .headers_mut()
                .insert("retry-after", after.parse().unwrap());
        }
        return response;
    }
    let content = match &recording.content {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let usage = recording.usage.clone().unwrap_or_else(
        || json!({"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}),
    );
    if body["stream"] == true {
        let mut events = String::new();
        let pieces: Vec<String> = content
            .chars()
            .collect::<Vec<_>>()
            .chunks(7)
            .map(|c| c.iter().collect())
            .collect();
        for piece in pieces {
            let chunk = json!({"model": "replay-1", "choices": [{"index": 0, "delta": {"content": piece}}]});
            events.push_str(&format!("data: {chunk}\n\n"));
        }
        let last = json!({"model": "replay-1", "choices": [], "usage": usage});
        events.push_str(&format!("data: {last}\n\ndata: [DONE]\n\n"));
        return ([("content-type", "text/event-stream")], events).into_response();
    }
    Json(json!({
        "id": "chatcmpl-replay",
        "object": "chat.completion",
        "model": "replay-1",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": usage,
    }))
    .into_response()
}
