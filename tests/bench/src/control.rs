//! Control flow: what a loop costs per item beside a plain step, and what a
//! `call_workflow` round trip costs beside running the child alone.

use std::time::Instant;

use anyhow::bail;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Plan;
use crate::engine::Engine;
use crate::load;

#[derive(Debug, Serialize, Deserialize)]
pub struct ControlFlow {
    pub items: usize,
    /// The same workflow without the loop (its trigger and one `mapping`),
    /// `?wait=true`, the fastest of the runs.
    pub baseline_ms: f64,
    /// A `for_each` over `items` with a one-node pure body (`mapping`),
    /// `?wait=true`, the fastest of the runs.
    pub pure_ms: f64,
    /// (pure − baseline) / items.
    pub pure_per_item_ms: f64,
    /// The same list with an `http_request` body against the local no-op
    /// server, 10 iterations at once.
    pub http_ms: f64,
    /// (http − baseline) / items, less a tenth of a direct call (the call
    /// itself, 10 at once).
    pub http_per_item_ms: f64,
    pub direct_call_p50_ms: f64,
    /// The per-step overhead measured in the same run (durable-latency).
    pub per_step_ms: f64,
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
    let baseline = json!({"name": "no-loop", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "shape", "type": "data", "kind": "mapping", "config": {"mapping": {"n": 1}}}
    ], "edges": [{"from": "start", "to": "shape"}]});
    let baseline_ms = fastest(engine, &baseline, &json!({}), plan.sequential).await?;
    let list: Vec<usize> = (0..items).collect();
    let input = json!({"items": list});
    let pure_ms = fastest(engine, &looping("pure", pure, 1, items), &input, LOOP_RUNS).await?;
    let http_loop = looping("http", http, HTTP_CONCURRENCY, items);
    let http_ms = fastest(engine, &http_loop, &input, LOOP_RUNS).await?;
    let mut direct = load::histogram();
    for _ in 0..plan.sequential {
        let t = Instant::now();
        engine.http.get(sink_url).send().await?;
        direct.record(t.elapsed().as_micros() as u64)?;
    }
    let direct_call_p50_ms = direct.value_at_quantile(0.5) as f64 / 1000.0;
    let per_step_ms = crate::scenarios::durable_latency(engine, plan, sink_url)
        .await?
        .overhead_per_step_p50_ms;
    let (call_p50_ms, child_p50_ms) = call_round_trip(engine, plan).await?;
    let per_item = |run: f64| ((run - baseline_ms) / items as f64).max(0.0);
    Ok(ControlFlow {
        items,
        baseline_ms,
        pure_ms,
        pure_per_item_ms: per_item(pure_ms),
        http_ms,
        http_per_item_ms: (per_item(http_ms) - direct_call_p50_ms / HTTP_CONCURRENCY as f64)
            .max(0.0),
        direct_call_p50_ms,
        per_step_ms,
        call_p50_ms,
        child_p50_ms,
    })
}

/// A workflow of a `for_each` over `trigger.body.items` with `body`.
fn looping(name: &str, body: Value, concurrency: usize, items: usize) -> Value {
    json!({"name": format!("loop-{name}"), "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "each", "type": "action", "kind": "for_each", "config": {
            "items": "trigger.body.items", "concurrency": concurrency,
            "max_items": items.max(1), "result": "index",
            "body": {"nodes": [body]}}}
    ], "edges": [{"from": "start", "to": "each"}]})
}

/// The fastest of `runs` runs of `doc` with `input`, `?wait=true`, in
/// milliseconds as the client saw them.
async fn fastest(engine: &Engine, doc: &Value, input: &Value, runs: usize) -> anyhow::Result<f64> {
    let workflow = engine.deploy(doc).await?;
    let path = format!("/v1/workflows/{workflow}/executions?wait=true");
    let mut best = f64::MAX;
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let out = engine.post(&path, input).await?;
        if out["status"] != "succeeded" {
            bail!("{} ended {}", doc["name"], out["status"]);
        }
        best = best.min(t.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(best)
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
