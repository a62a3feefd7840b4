//! Control flow: what a loop costs per item beside a plain step, and what a
//! `call_workflow` round trip costs beside running the child alone.

use std::time::{Duration, Instant};

use anyhow::bail;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Plan;
use crate::engine::Engine;
use crate::load;

#[derive(Debug, Serialize, Deserialize)]
pub struct ControlFlow {
    pub items: usize,
    /// A `for_each` over `items` with a one-node pure body (`mapping`),
    /// from the execution's start to its end as the engine recorded them.
    pub pure_ms: f64,
    pub pure_per_item_ms: f64,
    /// The same list with an `http_request` body against the local no-op
    /// server, 10 iterations at once.
    pub http_ms: f64,
    /// Per item and lane: wall time × 10 / items, less one direct call.
    pub http_overhead_per_item_ms: f64,
    pub direct_call_p50_ms: f64,
    /// A parent calling a one-node child and waiting for it, `?wait=true`, p50.
    pub call_p50_ms: f64,
    /// The child alone, the same way.
    pub child_p50_ms: f64,
}

/// Runs of a loop's workflow, and of the call round trip.
const LOOP_RUNS: usize = 3;
const HTTP_CONCURRENCY: usize = 10;

pub async fn control_flow(
    engine: &Engine,
    plan: &Plan,
    sink_url: &str,
) -> anyhow::Result<ControlFlow> {
    let items = plan.loop_items;
    let pure = json!({"id": "shape", "type": "data", "kind": "mapping",
                      "config": {"mapping": {"n": "{{ item }}"}}});
    let http = json!({"id": "call", "type": "action", "kind": "http_request",
                      "config": {"url": sink_url, "query": {"n": "{{ item }}"}}});
    let pure_ms = best_loop_run(engine, "pure", pure, 1, items).await?;
    let http_ms = best_loop_run(engine, "http", http, HTTP_CONCURRENCY, items).await?;
    let mut direct = load::histogram();
    for _ in 0..plan.sequential {
        let t = Instant::now();
        engine.http.get(sink_url).send().await?;
        direct.record(t.elapsed().as_micros() as u64)?;
    }
    let direct_call_p50_ms = direct.value_at_quantile(0.5) as f64 / 1000.0;
    let (call_p50_ms, child_p50_ms) = call_round_trip(engine, plan).await?;
    let per_lane = http_ms * HTTP_CONCURRENCY as f64 / items as f64;
    Ok(ControlFlow {
        items,
        pure_ms,
        pure_per_item_ms: pure_ms / items as f64,
        http_ms,
        http_overhead_per_item_ms: (per_lane - direct_call_p50_ms).max(0.0),
        direct_call_p50_ms,
        call_p50_ms,
        child_p50_ms,
    })
}

/// The fastest of a few runs of a `for_each` over `items` with `body`,
/// in milliseconds between the start and the end the engine recorded.
async fn best_loop_run(
    engine: &Engine,
    name: &str,
    body: Value,
    concurrency: usize,
    items: usize,
) -> anyhow::Result<f64> {
    let doc = json!({"name": format!("loop-{name}"), "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "each", "type": "action", "kind": "for_each", "config": {
            "items": "trigger.body.items", "concurrency": concurrency,
            "max_items": items.max(1), "result": "index",
            "body": {"nodes": [body]}}}
    ], "edges": [{"from": "start", "to": "each"}]});
    let workflow = engine.deploy(&doc).await?;
    let list: Vec<usize> = (0..items).collect();
    let mut best = f64::MAX;
    for _ in 0..LOOP_RUNS {
        let started = engine
            .post(
                &format!("/v1/workflows/{workflow}/executions"),
                &json!({"items": list}),
            )
            .await?;
        let Some(id) = started["execution_id"].as_str() else {
            bail!("loop run not started: {started}");
        };
        let done = finished(engine, id, Duration::from_secs(600)).await?;
        if done["status"] != "succeeded" {
            bail!("loop run ended {}", done["status"]);
        }
        let (Some(from), Some(to)) = (done["started_at"].as_i64(), done["finished_at"].as_i64())
        else {
            bail!("loop run without its times: {done}");
        };
        best = best.min((to - from) as f64);
    }
    Ok(best)
}

async fn finished(engine: &Engine, id: &str, limit: Duration) -> anyhow::Result<Value> {
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tick.tick().await;
        let e = engine
            .get(&format!("/v1/executions/{id}?steps_limit=1"))
            .await?;
        if !matches!(e["status"].as_str(), Some("queued" | "running")) {
            return Ok(e);
        }
        if start.elapsed() > limit {
            bail!("execution {id} did not end within {limit:?}");
        }
    }
}

/// p50 of a parent that calls a one-node child and waits for it, and of
/// the child alone, each started with `?wait=true` one after another.
async fn call_round_trip(engine: &Engine, plan: &Plan) -> anyhow::Result<(f64, f64)> {
    let child = engine
        .deploy(&json!({"name": "callee", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "shape", "type": "data", "kind": "mapping", "config": {"mapping": {"ok": true}}}
        ], "edges": [{"from": "start", "to": "shape"}]}))
        .await?;
    let parent = engine
        .deploy(&json!({"name": "caller", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "call", "type": "action", "kind": "call_workflow", "config": {"workflow": child}}
        ], "edges": [{"from": "start", "to": "call"}]}))
        .await?;
    let mut p50 = Vec::new();
    for workflow in [&parent, &child] {
        let mut took = load::histogram();
        let path = format!("/v1/workflows/{workflow}/executions?wait=true");
        for _ in 0..plan.sequential {
            let t = Instant::now();
            let out = engine.post(&path, &json!({})).await?;
            if out["status"] != "succeeded" {
                bail!("call round trip ended {out}");
            }
            took.record(t.elapsed().as_micros() as u64)?;
        }
        p50.push(took.value_at_quantile(0.5) as f64 / 1000.0);
    }
    Ok((p50[0], p50[1]))
}
