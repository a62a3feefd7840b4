//! The scenarios of BENCHMARKS.md, each against a running engine.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::http::HeaderMap;
use axum::routing::any;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Plan;
use crate::engine::{Engine, KEY};
use crate::load::{self, Summary};

/// A local no-op API that counts the idempotency keys it receives.
#[derive(Clone, Default)]
pub struct Sink {
    keys: Arc<Mutex<HashMap<String, u32>>>,
}

impl Sink {
    pub async fn start() -> anyhow::Result<(String, Sink)> {
        let sink = Sink::default();
        let keys = sink.keys.clone();
        let app = axum::Router::new()
            .route("/v1/traces", any(|| async { "{}" }))
            .route(
                "/noop",
                any(move |headers: HeaderMap| {
                    let keys = keys.clone();
                    async move {
                        if let Some(k) =
                            headers.get("idempotency-key").and_then(|v| v.to_str().ok())
                        {
                            *keys
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .entry(k.to_owned())
                                .or_default() += 1;
                        }
                        "{}"
                    }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok((format!("http://{addr}/noop"), sink))
    }

    /// (distinct keys, requests beyond the first per key)
    pub fn counts(&self) -> (usize, u64) {
        let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        (
            keys.len(),
            keys.values().map(|&n| u64::from(n.saturating_sub(1))).sum(),
        )
    }
}

async fn poll_until(
    limit: Duration,
    mut probe: impl AsyncFnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tick.tick().await;
        if probe().await? {
            return Ok(start.elapsed());
        }
        if start.elapsed() > limit {
            bail!("not reached within {limit:?}");
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct WebhookSync {
    pub highest_rate_under_100ms: Option<Summary>,
    pub steps: Vec<Summary>,
    pub fixed_rate: Summary,
    /// Driven closed-loop by wrk at 32 connections (none without wrk).
    #[serde(default)]
    pub closed: Option<crate::closed::Closed>,
}

pub async fn webhook_sync(engine: &Engine, plan: &Plan) -> anyhow::Result<WebhookSync> {
    let doc: Value = serde_json::from_str(include_str!("../../../docs/examples/signup.json"))?;
    engine.deploy(&doc).await?;
    let url = engine.url("/hooks/default/signup");
    let client = engine.http.clone();
    let send = move |i: u64| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let body = json!({"email": format!("u{i}@example.com"), "name": "ada"});
            matches!(client.post(&url).json(&body).send().await, Ok(r) if r.status().is_success())
        }
    };
    let fixed_rate = load::fixed_rate(plan.fixed_rate, plan.step_duration, send.clone()).await;
    let (best, steps) = load::highest_rate(&plan.rates, plan.step_duration, 100.0, send).await;
    // Without wrk the run says so once, with the bare axum figure.
    let closed = crate::closed::run(&engine.url("/hooks/default/signup"), plan.closed_loop)
        .await
        .ok();
    Ok(WebhookSync {
        highest_rate_under_100ms: best,
        steps,
        fixed_rate,
        closed,
    })
}

#[derive(Debug, Serialize, Deserialize)]
pub struct DurableLatency {
    pub executions: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub direct_call_p50_ms: f64,
    pub overhead_per_step_p50_ms: f64,
}

pub async fn durable_latency(
    engine: &Engine,
    plan: &Plan,
    sink_url: &str,
) -> anyhow::Result<DurableLatency> {
    let call = |id: &str| json!({"id": id, "type": "action", "kind": "http_request", "config": {"url": sink_url}});
    let doc = json!({"name": "three-calls", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"}, call("a"), call("b"), call("c")
    ], "edges": [{"from": "start", "to": "a"}, {"from": "a", "to": "b"}, {"from": "b", "to": "c"}]});
    let workflow = engine.deploy(&doc).await?;
    let mut total = load::histogram();
    let path = format!("/v1/workflows/{workflow}/executions?wait=true");
    for _ in 0..plan.sequential {
        let t = Instant::now();
        let out = engine.post(&path, &json!({})).await?;
        if out["status"] != "succeeded" {
            bail!("durable-latency run ended {out}");
        }
        total.record(t.elapsed().as_micros() as u64)?;
    }
    let mut direct = load::histogram();
    for _ in 0..plan.sequential {
        let t = Instant::now();
        engine.http.get(sink_url).send().await?;
        direct.record(t.elapsed().as_micros() as u64)?;
    }
    let ms = |v: u64| v as f64 / 1000.0;
    let p50 = ms(total.value_at_quantile(0.5));
    let direct_p50 = ms(direct.value_at_quantile(0.5));
    Ok(DurableLatency {
        executions: plan.sequential,
        p50_ms: p50,
        p99_ms: ms(total.value_at_quantile(0.99)),
        direct_call_p50_ms: direct_p50,
        overhead_per_step_p50_ms: ((p50 - 3.0 * direct_p50) / 3.0).max(0.0),
    })
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Saturation {
    pub executions: usize,
    pub seconds: f64,
    pub executions_per_s: f64,
    pub steps_per_s: f64,
}

/// Starts `n` executions with `concurrency` clients as fast as accepted.
/// Starts `n` executions, `concurrency` at a time; returns their ids.
/// How long a 503 asks its caller to wait (one second without a header).
fn retry_after(resp: &reqwest::Response) -> Duration {
    let seconds = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(1);
    Duration::from_secs(seconds)
}

async fn start_many(
    engine: &Engine,
    workflow: &str,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<String>> {
    let path = format!("/v1/workflows/{workflow}/executions");
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..concurrency {
        let (http, url, next) = (engine.http.clone(), engine.url(&path), next.clone());
        clients.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < n {
                let resp = loop {
                    let resp = http
                        .post(&url)
                        .bearer_auth(KEY)
                        .json(&json!({}))
                        .send()
                        .await?;
                    // Past capacity the engine sheds starts: send again
                    // when it says to, as a well-behaved client does.
                    if resp.status() != reqwest::StatusCode::SERVICE_UNAVAILABLE {
                        break resp;
                    }
                    tokio::time::sleep(retry_after(&resp)).await;
                };
                if !resp.status().is_success() {
                    bail!("start refused: {}", resp.status());
                }
                let body: Value = resp.json().await?;
                ids.push(body["execution_id"].as_str().unwrap_or_default().to_owned());
            }
            anyhow::Ok(ids)
        }));
    }
    let mut ids = Vec::with_capacity(n);
    for c in clients {
        ids.extend(c.await??);
    }
    Ok(ids)
}

pub async fn saturation(engine: &Engine, plan: &Plan) -> anyhow::Result<Saturation> {
    let mut nodes = vec![json!({"id": "start", "type": "trigger", "kind": "manual"})];
    let mut edges = Vec::new();
    for i in 1..10 {
        nodes.push(json!({"id": format!("n{i}"), "type": "data", "kind": "mapping", "config": {"mapping": {"i": i}}}));
        let from = if i == 1 {
            "start".to_owned()
        } else {
            format!("n{}", i - 1)
        };
        edges.push(json!({"from": from, "to": format!("n{i}")}));
    }
    let workflow = engine
        .deploy(&json!({"name": "chain", "nodes": nodes, "edges": edges}))
        .await?;
    let start = Instant::now();
    start_many(engine, &workflow, plan.saturation, 64).await?;
    let n = plan.saturation;
    poll_until(Duration::from_secs(600), async || {
        Ok(engine.count(&workflow, "succeeded").await? >= n)
    })
    .await?;
    let seconds = start.elapsed().as_secs_f64();
    Ok(Saturation {
        executions: n,
        seconds,
        executions_per_s: n as f64 / seconds,
        steps_per_s: (n * 10) as f64 / seconds,
    })
}

#[derive(Debug, Serialize, Deserialize)]
pub struct FanOut {
    pub runs: usize,
    pub p50_ms: f64,
    pub overhead_per_branch_ms: f64,
}

pub async fn fan_out(engine: &Engine, plan: &Plan) -> anyhow::Result<FanOut> {
    let mut nodes = vec![
        json!({"id": "start", "type": "trigger", "kind": "manual"}),
        json!({"id": "join", "type": "data", "kind": "merge"}),
    ];
    let mut edges = Vec::new();
    for i in 0..100 {
        nodes.push(json!({"id": format!("b{i}"), "type": "data", "kind": "mapping", "config": {"mapping": {"i": i}}}));
        edges.push(json!({"from": "start", "to": format!("b{i}")}));
        edges.push(json!({"from": format!("b{i}"), "to": "join"}));
    }
    let workflow = engine
        .deploy(&json!({"name": "fan", "nodes": nodes, "edges": edges}))
        .await?;
    let mut h = load::histogram();
    for _ in 0..plan.fan_out_runs {
        let t = Instant::now();
        let out = engine
            .post(
                &format!("/v1/workflows/{workflow}/executions?wait=true"),
                &json!({}),
            )
            .await?;
        if out["status"] != "succeeded" {
            bail!("fan-out ended {out}");
        }
        h.record(t.elapsed().as_micros() as u64)?;
    }
    let p50 = h.value_at_quantile(0.5) as f64 / 1000.0;
    Ok(FanOut {
        runs: plan.fan_out_runs,
        p50_ms: p50,
        overhead_per_branch_ms: p50 / 100.0,
    })
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Parked {
    pub executions: usize,
    pub idle_rss_mb: f64,
    pub parked_rss_mb: f64,
    pub above_idle_mb: f64,
    /// From kill -9 to a restarted engine that answers ready.
    pub ready_after_kill_s: f64,
    /// From the restart until every waiting execution was resumed through
    /// the API and finished.
    pub resumed_all_after_kill_s: f64,
}

/// Executions waiting for a resume: what they cost while they wait, and
/// how fast all of them are resumed and finished after a kill -9.
pub async fn parked(engine: &mut Engine, plan: &Plan) -> anyhow::Result<Parked> {
    let doc = json!({"name": "parked", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "approve", "type": "action", "kind": "wait_for_event"}
    ], "edges": [{"from": "start", "to": "approve"}]});
    let workflow = engine.deploy(&doc).await?;
    let idle = engine.rss().context("engine memory")?;
    let n = plan.parked;
    let ids = start_many(engine, &workflow, n, 32).await?;
    // Running means waiting (the wait starts in the first turn); none
    // here means all parked.
    poll_until(Duration::from_secs(900), async || {
        let here = engine.get("/ready").await?["executions_here"]
            .as_u64()
            .unwrap_or(u64::MAX);
        Ok(here == 0 && engine.count(&workflow, "running").await? >= n)
    })
    .await?;
    let parked = engine.rss().context("engine memory")?;
    let restarted = engine.kill_and_restart()?;
    let ready = restarted.elapsed();
    resume_all(engine, &ids, 32).await?;
    poll_until(Duration::from_secs(900), async || {
        Ok(engine.count(&workflow, "succeeded").await? >= n)
    })
    .await?;
    let resumed = restarted.elapsed();
    let mb = |b: u64| b as f64 / 1_048_576.0;
    Ok(Parked {
        executions: n,
        idle_rss_mb: mb(idle),
        parked_rss_mb: mb(parked),
        above_idle_mb: mb(parked.saturating_sub(idle)),
        ready_after_kill_s: ready.as_secs_f64(),
        resumed_all_after_kill_s: resumed.as_secs_f64(),
    })
}

async fn resume_all(engine: &Engine, ids: &[String], concurrency: usize) -> anyhow::Result<()> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let ids: Arc<Vec<String>> = Arc::new(ids.to_vec());
    let mut clients = Vec::new();
    for _ in 0..concurrency {
        let (http, base, next, ids) = (
            engine.http.clone(),
            engine.url(""),
            next.clone(),
            ids.clone(),
        );
        clients.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(id) = ids.get(i) else {
                    return anyhow::Ok(());
                };
                let resp = http
                    .post(format!("{base}/v1/executions/{id}/resume"))
                    .bearer_auth(KEY)
                    .json(&json!({"payload": {"approved": true}}))
                    .send()
                    .await?;
                if !resp.status().is_success() {
                    bail!("resume refused: {}", resp.status());
                }
            }
        }));
    }
    for c in clients {
        c.await??;
    }
    Ok(())
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Recovery {
    pub executions: usize,
    pub finished_after_restart_s: f64,
    pub lost: usize,
    pub node_effects: usize,
    pub outbound_retries_seen_by_sink: u64,
}

pub async fn recovery(
    engine: &mut Engine,
    plan: &Plan,
    sink_url: &str,
    sink: &Sink,
) -> anyhow::Result<Recovery> {
    let doc = json!({"name": "recover", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "before", "type": "action", "kind": "http_request", "config": {"url": sink_url}},
        {"id": "pause", "type": "action", "kind": "wait", "config": {"duration": "2s"}},
        {"id": "after", "type": "action", "kind": "http_request", "config": {"url": sink_url}}
    ], "edges": [{"from": "start", "to": "before"}, {"from": "before", "to": "pause"}, {"from": "pause", "to": "after"}]});
    let workflow = engine.deploy(&doc).await?;
    let n = plan.recovery;
    start_many(engine, &workflow, n, 32).await?;
    engine.kill_and_restart()?;
    let restarted = Instant::now();
    poll_until(Duration::from_secs(900), async || {
        Ok(engine.count(&workflow, "succeeded").await? >= n)
    })
    .await?;
    let finished = restarted.elapsed().as_secs_f64();
    let succeeded = engine.count(&workflow, "succeeded").await?;
    let (keys, retries) = sink.counts();
    Ok(Recovery {
        executions: n,
        finished_after_restart_s: finished,
        lost: n.saturating_sub(succeeded),
        node_effects: keys,
        outbound_retries_seen_by_sink: retries,
    })
}

#[derive(Debug, Serialize, Deserialize)]
pub struct TracingCost {
    /// Per-step overhead p50 (ms), embedded, without any OTEL_* setting.
    pub off_per_step_ms: f64,
    /// The same with every span exported over OTLP/HTTP to a local receiver.
    pub on_per_step_ms: f64,
}

/// The durable-latency scenario in embedded mode with tracing off, then on.
pub async fn tracing_cost(plan: &Plan) -> anyhow::Result<TracingCost> {
    let (sink_url, _sink) = Sink::start().await?;
    let receiver = sink_url.trim_end_matches("/noop").to_owned();
    let mut overhead = Vec::new();
    for otlp_endpoint in [None, Some(receiver)] {
        let target = crate::engine::Target {
            mode: crate::engine::Mode::Embedded,
            nats_url: String::new(),
            otlp_endpoint,
        };
        let engine = Engine::start(&target, "127.0.0.1").await?;
        overhead.push(
            durable_latency(&engine, plan, &sink_url)
                .await?
                .overhead_per_step_p50_ms,
        );
    }
    Ok(TracingCost {
        off_per_step_ms: overhead[0],
        on_per_step_ms: overhead[1],
    })
}
