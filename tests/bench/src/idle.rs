//! Idle memory: tenants that each ran once leave nothing behind. Tenants,
//! their owner keys (stored as SHA-256 digests: no password hashing),
//! credits and one published workflow each are written straight into the
//! engine's store; then every tenant runs its workflow once through the
//! API with its own key. The engine's resident memory is read at idle
//! before the load, right after it, and once twice the idle period
//! (`--actor-idle-after`, short for the run) has passed: it should be back
//! within 50 MB of where it started.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use flowmesh_model::WorkflowDocument;
use flowmesh_store::{Credit, Publish, Store};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::engine::{Engine, KEY, Target};

/// How far above its baseline the engine may stay once idle.
pub const MARGIN_MB: f64 = 50.0;
/// Tenants seeded, and runs in flight, at once.
const CONCURRENCY: usize = 32;
const METRICS_TOKEN: &str = "bench-metrics-token";

#[derive(Debug, Serialize, Deserialize)]
pub struct IdleMemory {
    pub tenants: usize,
    /// The engine's `--actor-idle-after` for the run.
    pub actor_idle_after_s: u64,
    pub seeded_in_s: f64,
    pub ran_in_s: f64,
    pub failed_runs: usize,
    /// After start-up and a warm-up on the platform tenant.
    pub baseline_rss_mb: f64,
    /// Right after the last run.
    pub loaded_rss_mb: f64,
    /// From the last run until no tenant or workflow actor was left.
    pub actors_gone_after_s: f64,
    /// Twice the idle period after the last run.
    pub settled_rss_mb: f64,
    pub above_baseline_mb: f64,
    pub within_margin: bool,
}

fn document() -> Value {
    json!({"name": "once", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "shape", "type": "data", "kind": "mapping", "config": {"mapping": {"n": "{{ trigger.body.n }}"}}}
    ], "edges": [{"from": "start", "to": "shape"}]})
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

pub async fn idle_memory(
    target: &Target,
    tenants: usize,
    idle_s: u64,
) -> anyhow::Result<IdleMemory> {
    let idle = Duration::from_secs(idle_s);
    let setting = format!("{idle_s}s");
    let env = [
        ("FLOWMESH_ACTOR_IDLE_AFTER", setting.as_str()),
        ("FLOWMESH_METRICS_TOKEN", METRICS_TOKEN),
    ];
    let engine = Engine::start_with(target, "127.0.0.1", &env).await?;
    // Pools, threads and what is made on first use belong to the baseline.
    let warm = engine.deploy(&document()).await?;
    for n in 0..50 {
        run(&engine.http, &engine.url(""), KEY, &warm, n).await?;
    }
    let baseline = engine.rss().context("engine memory")?;

    let started = Instant::now();
    let seeded = seed(&engine, tenants).await?;
    let seeded_in = started.elapsed();

    let started = Instant::now();
    let failed_runs = run_all(&engine, seeded).await?;
    let ran_in = started.elapsed();
    let loaded = engine.rss().context("engine memory")?;

    let load_ended = Instant::now();
    while actors(&engine).await? > 0 {
        if load_ended.elapsed() > idle * 2 + Duration::from_secs(300) {
            bail!("tenant and workflow actors were still running long after the idle period");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let actors_gone_after = load_ended.elapsed();
    // Ten minutes after the load are twice the default idle period: the
    // run keeps that proportion.
    tokio::time::sleep((idle * 2).saturating_sub(load_ended.elapsed())).await;
    let settled = engine.rss().context("engine memory")?;
    let above = mb(settled.saturating_sub(baseline));
    Ok(IdleMemory {
        tenants,
        actor_idle_after_s: idle_s,
        seeded_in_s: seeded_in.as_secs_f64(),
        ran_in_s: ran_in.as_secs_f64(),
        failed_runs,
        baseline_rss_mb: mb(baseline),
        loaded_rss_mb: mb(loaded),
        actors_gone_after_s: actors_gone_after.as_secs_f64(),
        settled_rss_mb: mb(settled),
        above_baseline_mb: above,
        within_margin: above <= MARGIN_MB,
    })
}

/// A seeded tenant: its owner key and its workflow.
struct Seeded {
    key: String,
    workflow: String,
}

/// Writes `tenants` tenants, each with an owner key, credits and a
/// published workflow, straight into the engine's store.
async fn seed(engine: &Engine, tenants: usize) -> anyhow::Result<Vec<Seeded>> {
    let store = Store::connect(&engine.store_options()).await?;
    let document: Arc<WorkflowDocument> = Arc::new(serde_json::from_value(document())?);
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let (store, document, next) = (store.clone(), document.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut seeded = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= tenants {
                    return anyhow::Ok(seeded);
                }
                let (tenant, key) = store.create_tenant(&format!("idle-{n}")).await?;
                store
                    .credit(Credit {
                        tenant,
                        amount: 1_000_000,
                        kind: "grant",
                        reference: None,
                        actor: None,
                        note: Some("idle-memory benchmark"),
                    })
                    .await?;
                let workflow = store.create_workflow(tenant, &document).await?.id;
                let publish = Publish {
                    tenant,
                    workflow,
                    version: 1,
                    routes: &[],
                    schedules: &[],
                };
                store.publish_workflow(&publish).await?;
                seeded.push(Seeded {
                    key,
                    workflow: workflow.to_string(),
                });
            }
        }));
    }
    let mut all = Vec::with_capacity(tenants);
    for worker in workers {
        all.extend(worker.await??);
    }
    Ok(all)
}

/// One synchronous run of a workflow with a tenant's key.
async fn run(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    workflow: &str,
    n: usize,
) -> anyhow::Result<()> {
    let resp = http
        .post(format!(
            "{base}/v1/workflows/{workflow}/executions?wait=true"
        ))
        .bearer_auth(key)
        .json(&json!({"n": n}))
        .send()
        .await?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() || body["status"] != "succeeded" {
        bail!("run refused or failed: {status} {body}");
    }
    Ok(())
}

/// Runs every seeded tenant's workflow once; returns how many failed.
async fn run_all(engine: &Engine, seeded: Vec<Seeded>) -> anyhow::Result<usize> {
    let (seeded, next, failed) = (
        Arc::new(seeded),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let mut clients = Vec::new();
    for _ in 0..CONCURRENCY {
        let (seeded, next, failed) = (seeded.clone(), next.clone(), failed.clone());
        let (http, base) = (engine.http.clone(), engine.url(""));
        clients.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let Some(tenant) = seeded.get(n) else { return };
                if run(&http, &base, &tenant.key, &tenant.workflow, n)
                    .await
                    .is_err()
                {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for client in clients {
        client.await?;
    }
    Ok(failed.load(Ordering::Relaxed))
}

/// Tenant and workflow actors alive in the engine, from its metrics.
async fn actors(engine: &Engine) -> anyhow::Result<u64> {
    let text = engine
        .http
        .get(engine.url("/metrics"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let mut alive = 0.0;
    for line in text.lines() {
        for kind in ["tenant", "workflow"] {
            if let Some(value) = line.strip_prefix(&format!("flowmesh_actors{{kind=\"{kind}\"}} "))
            {
                alive += value.trim().parse::<f64>().unwrap_or(0.0);
            }
        }
    }
    Ok(alive as u64)
}
