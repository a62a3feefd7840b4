//! One trace from the request (HTTP or NATS) to every node: spans exported over OTLP to a
//! local receiver, and the trace context the outside service received.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use common::stub::StubServer;
use common::{ADMIN_KEY, Engine, Mode, eventually};
use serde_json::{Value, json};

/// A span as the OTLP/HTTP JSON export carries it.
#[derive(Clone, Debug)]
struct Span {
    trace_id: String,
    name: String,
}

type Spans = Arc<Mutex<Vec<Span>>>;

async fn receive(State(spans): State<Spans>, body: axum::body::Bytes) -> &'static str {
    let export: Value = serde_json::from_slice(&body).expect("OTLP JSON");
    let mut spans = spans.lock().unwrap();
    for resource in export["resourceSpans"].as_array().into_iter().flatten() {
        for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
            for span in scope["spans"].as_array().into_iter().flatten() {
                spans.push(Span {
                    trace_id: span["traceId"].as_str().unwrap_or_default().to_lowercase(),
                    name: span["name"].as_str().unwrap_or_default().to_owned(),
                });
            }
        }
    }
    "{}"
}

async fn receiver() -> (String, Spans) {
    let spans: Spans = Arc::default();
    let app = Router::new()
        .route("/v1/traces", post(receive))
        .with_state(spans.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), spans)
}

/// Waits until spans of every wanted name were exported in `trace_id`.
async fn all_exported(spans: &Spans, trace_id: &str, wanted: &[&str]) {
    eventually("every span exported", Duration::from_secs(20), || async {
        let spans = spans.lock().unwrap();
        let names: BTreeSet<&str> = spans
            .iter()
            .filter(|s| s.trace_id == trace_id)
            .map(|s| s.name.as_str())
            .collect();
        wanted.iter().all(|w| names.contains(w)).then_some(())
    })
    .await;
}

/// A distributed engine exporting its spans to a local receiver, and a
/// stub for its nodes to call.
async fn traced(extra: &[(&str, &str)]) -> (Engine, Spans, StubServer) {
    let (endpoint, spans) = receiver().await;
    let stub = StubServer::start().await;
    let mut env = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    env.extend_from_slice(extra);
    let engine = Engine::start_with(Mode::Distributed, &env).await;
    (engine, spans, stub)
}

/// Runs the workflow to its end, sending `traceparent`.
async fn run_with(engine: &Engine, workflow: &str, traceparent: &str) {
    let resp = engine
        .client()
        .post(engine.url(&format!("/v1/workflows/{workflow}/executions?wait=true")))
        .bearer_auth(ADMIN_KEY)
        .header("traceparent", traceparent)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_links_the_request_the_bus_and_every_node() {
    // Every start crosses the bus (a run handed over in the process is
    // traced below).
    let (engine, spans, stub) = traced(&[("FLOWMESH_MAX_STARTED_HERE", "0")]).await;
    let workflow = engine
        .deploy(json!({"name": "traced", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "fetch", "type": "action", "kind": "http_request", "config": {"url": stub.url("/ok/fetch")}},
            {"id": "shape", "type": "data", "kind": "mapping", "config": {"mapping": {"ok": true}}},
            {"id": "score", "type": "action", "kind": "code", "config": {"language": "javascript", "source": "return 1;"}}
        ], "edges": [{"from": "start", "to": "fetch"}, {"from": "fetch", "to": "shape"}, {"from": "shape", "to": "score"}]}))
        .await;
    // The caller's own trace: everything must join it.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    run_with(
        &engine,
        &workflow,
        &format!("00-{trace_id}-00f067aa0ba902b7-01"),
    )
    .await;
    let hits = stub.hits("/ok/fetch");
    let sent = hits[0]
        .traceparent
        .as_deref()
        .expect("traceparent sent out");
    assert_eq!(sent.split('-').nth(1), Some(trace_id), "{sent}");

    let wanted = [
        "POST /v1/workflows/{id}/executions",
        "bus.publish",
        "bus.consume",
        "workflow.start",
        "execution.turn",
        "node fetch",
        "node shape",
        "node score",
        "sandbox.run",
    ];
    all_exported(&spans, trace_id, &wanted).await;

    // A malformed traceparent from a caller is ignored, never passed on:
    // the run gets a trace of its own.
    let before = stub.hits("/ok/fetch").len();
    run_with(&engine, &workflow, "00-zzzz-not-a-trace").await;
    let hits = stub.hits("/ok/fetch");
    assert_eq!(hits.len(), before + 1);
    let passed = hits.last().unwrap().traceparent.clone().unwrap_or_default();
    assert!(!passed.contains("zzzz"), "{passed}");
    assert!(!passed.contains(trace_id), "{passed}");
    assert_eq!(passed.len(), 55, "a valid traceparent of its own: {passed}");

    // A run started by a NATS message joins the publisher's trace too.
    engine
        .deploy(json!({"name": "traced-nats", "nodes": [
            {"id": "in", "type": "trigger", "kind": "nats", "config": {"subject": "traced"}},
            {"id": "call", "type": "action", "kind": "http_request", "config": {"url": stub.url("/ok/nats")}}
        ], "edges": [{"from": "in", "to": "call"}]}))
        .await;
    let nats_trace = "0af7651916cd43dd8448eb211c80319c";
    let client = async_nats::ConnectOptions::new()
        .custom_inbox_prefix(format!("{}.inbox.default", engine.prefix))
        .connect(&engine.servers.nats)
        .await
        .expect("NATS");
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(
        "traceparent",
        format!("00-{nats_trace}-b7ad6b7169203331-01").as_str(),
    );
    // Until the trigger subscription is in place the server has no responders.
    let reply = eventually(
        "a reply to the NATS request",
        Duration::from_secs(20),
        || {
            let (client, headers) = (client.clone(), headers.clone());
            let subject = format!("{}.trigger.default.traced", engine.prefix);
            async move {
                client
                    .request_with_headers(subject, headers, "{}".into())
                    .await
                    .ok()
            }
        },
    )
    .await;
    let started: Value = serde_json::from_slice(&reply.payload).expect("JSON reply");
    assert!(started["execution_id"].is_string(), "{started}");
    let hit = eventually(
        "the NATS run calls out",
        Duration::from_secs(20),
        || async { stub.hits("/ok/nats").pop() },
    )
    .await;
    let sent = hit.traceparent.as_deref().expect("traceparent sent out");
    assert_eq!(sent.split('-').nth(1), Some(nats_trace), "{sent}");
    let wanted = ["nats trigger", "bus.publish", "bus.consume", "node call"];
    all_exported(&spans, nats_trace, &wanted).await;
}

/// A run handed to the actors of the process that accepted it joins the
/// caller's trace as well, without a bus hop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_started_where_it_was_accepted_joins_the_callers_trace() {
    let (engine, spans, stub) = traced(&[]).await;
    let workflow = engine
        .deploy(json!({"name": "traced here", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "fetch", "type": "action", "kind": "http_request", "config": {"url": stub.url("/ok/here")}}
        ], "edges": [{"from": "start", "to": "fetch"}]}))
        .await;
    let trace_id = "5ce0e9a56015fec5aadfa328ae398115";
    run_with(
        &engine,
        &workflow,
        &format!("00-{trace_id}-ab42124a3c573678-01"),
    )
    .await;
    let wanted = [
        "POST /v1/workflows/{id}/executions",
        "execution.hand_over",
        "workflow.start",
        "execution.turn",
        "node fetch",
    ];
    all_exported(&spans, trace_id, &wanted).await;
    let sent = stub.hits("/ok/here")[0]
        .traceparent
        .clone()
        .unwrap_or_default();
    assert_eq!(sent.split('-').nth(1), Some(trace_id), "{sent}");
}
