//! A local HTTP server standing in for outside APIs. It records every
//! request (path, idempotency key, body) so tests can count effects.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::any;
use axum::{Json, Router};
use serde_json::{Value, json};

#[derive(Clone, Debug)]
pub struct Hit {
    pub path: String,
    pub idempotency_key: Option<String>,
    pub authorization: Option<String>,
    pub traceparent: Option<String>,
    pub body: Value,
}

#[derive(Clone, Default)]
pub struct Stub {
    hits: Arc<Mutex<Vec<Hit>>>,
    failures: Arc<Mutex<HashMap<String, u32>>>,
}

pub struct StubServer {
    pub addr: SocketAddr,
    pub stub: Stub,
}

impl StubServer {
    /// Routes: `/ok/{name}` echoes; `/api/{*rest}` answers like a typical
    /// JSON API (a record with an id, a status and a list of items); `/flaky/{name}/{n}` answers 503 n times
    /// per name then 200; `/slow/{ms}` answers after a delay; `/status/{code}`.
    pub async fn start() -> StubServer {
        let stub = Stub::default();
        let app = Router::new()
            .route("/ok/{name}", any(ok))
            .route("/flaky/{name}/{n}", any(flaky))
            .route("/slow/{ms}", any(slow))
            .route("/status/{code}", any(status))
            .route("/api/{*rest}", any(api))
            .with_state(stub.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind stub");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        StubServer { addr, stub }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn hits(&self, path_prefix: &str) -> Vec<Hit> {
        self.stub
            .hits
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.path.starts_with(path_prefix))
            .cloned()
            .collect()
    }
}

fn record(stub: &Stub, path: String, headers: &HeaderMap, body: &Option<Json<Value>>) {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    stub.hits.lock().unwrap().push(Hit {
        path,
        idempotency_key: header("idempotency-key"),
        authorization: header("authorization"),
        traceparent: header("traceparent"),
        body: body.as_ref().map(|b| b.0.clone()).unwrap_or(Value::Null),
    });
}

async fn ok(
    State(stub): State<Stub>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Json<Value> {
    record(&stub, format!("/ok/{name}"), &headers, &body);
    Json(json!({"name": name, "received": body.map(|b| b.0)}))
}

async fn api(
    State(stub): State<Stub>,
    Path(rest): Path<String>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Json<Value> {
    record(&stub, format!("/api/{rest}"), &headers, &body);
    Json(json!({
        "id": "rec-1",
        "fulfillment_id": "F-1",
        "status": "ok",
        "items": [
            {"id": 1, "title": "Release notes published", "name": "Ada", "email": "ada@acme.io", "updated_at": 1},
            {"id": 2, "title": "Invoice paid", "name": "Bob", "email": "bob@acme.io", "updated_at": 2}
        ],
        "received": body.map(|b| b.0),
    }))
}

async fn flaky(
    State(stub): State<Stub>,
    Path((name, n)): Path<(String, u32)>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> (StatusCode, Json<Value>) {
    record(&stub, format!("/flaky/{name}"), &headers, &body);
    let mut failures = stub.failures.lock().unwrap();
    let seen = failures.entry(name.clone()).or_default();
    *seen += 1;
    if *seen <= n {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "try again"})),
        )
    } else {
        (
            StatusCode::OK,
            Json(json!({"name": name, "attempt": *seen})),
        )
    }
}

async fn slow(State(stub): State<Stub>, Path(ms): Path<u64>, headers: HeaderMap) -> Json<Value> {
    record(&stub, format!("/slow/{ms}"), &headers, &None);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Json(json!({"slept_ms": ms}))
}

async fn status(State(stub): State<Stub>, Path(code): Path<u16>, headers: HeaderMap) -> StatusCode {
    record(&stub, format!("/status/{code}"), &headers, &None);
    StatusCode::from_u16(code).unwrap_or(StatusCode::OK)
}
