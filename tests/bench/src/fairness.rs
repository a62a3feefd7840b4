//! Fairness: three quiet tenants at a steady rate, then the same with a
//! fourth sending ten times its share. Each tenant's share is its rate
//! limit (set by the platform's administrators, here twice the quiet rate,
//! so that the four shares together fit the machine); what the flood sends
//! beyond it is refused with 429 at the door, so the quiet tenants'
//! start-to-finish latency should stay within twice its baseline.

use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Plan;
use crate::engine::{Engine, KEY};
use crate::load::{self, Summary};

#[derive(Debug, Serialize, Deserialize)]
pub struct Fairness {
    /// Each quiet tenant's rate (executions per second).
    pub quiet_rate: f64,
    /// The flooding tenant's rate.
    pub noisy_rate: f64,
    /// Every tenant's rate limit (requests per second).
    pub share: f64,
    /// The quiet tenants' start-to-finish latency, alone.
    pub quiet_alone: Summary,
    /// The same during the flood.
    pub quiet_flooded: Summary,
    /// The flooding tenant: successes, and refusals in `errors`.
    pub noisy: Summary,
    /// quiet_flooded p99 / quiet_alone p99 (goal: at most 2).
    pub p99_ratio: f64,
    /// Code nodes of a quiet tenant while another's code runs to its limits.
    #[serde(default)]
    pub code: Option<CodeFairness>,
}

/// One tenant's small code nodes, run one after another, alone and while
/// another tenant's JavaScript and Python loops run to their time limits.
#[derive(Debug, Serialize, Deserialize)]
pub struct CodeFairness {
    pub alone: Summary,
    pub flooded: Summary,
    /// flooded p50 / alone p50 (goal: at most 2).
    pub p50_ratio: f64,
}

/// A registered tenant with its workflow.
struct Tenant {
    token: String,
    slug: String,
    workflow: String,
}

/// Registers a tenant (default limits) and signs in; returns its session
/// token and slug.
async fn register(engine: &Engine, name: &str) -> anyhow::Result<(String, String)> {
    let email = format!("owner@{name}.example.com");
    let password = "a long enough password";
    engine
        .http
        .post(engine.url("/v1/auth/register"))
        .json(&json!({"email": email, "password": password, "tenant": name}))
        .send()
        .await?
        .error_for_status()?;
    let session: Value = engine
        .http
        .post(engine.url("/v1/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = session["token"]
        .as_str()
        .context("session token")?
        .to_owned();
    let slug = session["tenant"]["slug"]
        .as_str()
        .context("slug")?
        .to_owned();
    Ok((token, slug))
}

/// Registers a tenant and deploys its workflow.
async fn tenant(engine: &Engine, name: &str, sink_url: &str) -> anyhow::Result<Tenant> {
    let (token, slug) = register(engine, name).await?;
    let doc = json!({"name": "work", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "shape", "type": "data", "kind": "mapping", "config": {"mapping": {"n": "{{ trigger.body.n }}"}}},
        {"id": "call", "type": "action", "kind": "http_request", "config": {"url": sink_url}},
        {"id": "done", "type": "data", "kind": "mapping", "config": {"mapping": {"ok": true}}}
    ], "edges": [{"from": "start", "to": "shape"}, {"from": "shape", "to": "call"}, {"from": "call", "to": "done"}]});
    let workflow = deploy(engine, &token, doc).await?;
    Ok(Tenant {
        token,
        slug,
        workflow,
    })
}

/// Runs `rate` synchronous starts per second for one tenant.
fn starts(
    engine: &Engine,
    token: &str,
    workflow: &str,
    rate: f64,
    duration: Duration,
) -> impl Future<Output = Summary> + use<> {
    let client = engine.http.clone();
    let url = engine.url(&format!("/v1/workflows/{workflow}/executions?wait=true"));
    let token = token.to_owned();
    let send = move |i: u64| {
        let (client, url, token) = (client.clone(), url.clone(), token.clone());
        async move {
            let resp = client
                .post(&url)
                .bearer_auth(&token)
                .json(&json!({"n": i}))
                .send()
                .await;
            // Reading the whole answer lets the connection be reused.
            match resp {
                Ok(r) => r.status().is_success() & r.bytes().await.is_ok(),
                Err(_) => false,
            }
        }
    };
    load::fixed_rate(rate, duration, send)
}

fn merge(parts: &[Summary]) -> Summary {
    let requests: u64 = parts.iter().map(|s| s.requests).sum();
    Summary {
        requests,
        errors: parts.iter().map(|s| s.errors).sum(),
        rate_offered: parts.iter().map(|s| s.rate_offered).sum(),
        rate_achieved: parts.iter().map(|s| s.rate_achieved).sum(),
        // The worst tenant's figures: fairness is about the one left behind.
        p50_ms: parts.iter().map(|s| s.p50_ms).fold(0.0, f64::max),
        p99_ms: parts.iter().map(|s| s.p99_ms).fold(0.0, f64::max),
        max_ms: parts.iter().map(|s| s.max_ms).fold(0.0, f64::max),
    }
}

pub async fn fairness(engine: &Engine, plan: &Plan, sink_url: &str) -> anyhow::Result<Fairness> {
    let (quiet_rate, noisy_rate, share) =
        (plan.fair_rate, plan.fair_rate * 20.0, plan.fair_rate * 2.0);
    let mut quiet = Vec::new();
    for n in 0..3 {
        quiet.push(tenant(engine, &format!("quiet-{n}"), sink_url).await?);
    }
    let noisy = tenant(engine, "noisy", sink_url).await?;
    for t in quiet.iter().chain([&noisy]) {
        let slug = &t.slug;
        let resp = engine
            .http
            .put(engine.url(&format!("/v1/admin/tenants/{slug}/limits")))
            .bearer_auth(KEY)
            .json(&json!({"rate_limit": share as i64, "max_concurrent": null, "max_payload_bytes": null}))
            .send()
            .await?;
        anyhow::ensure!(
            resp.status().is_success(),
            "limits of {slug}: {}",
            resp.status()
        );
    }
    let duration = plan.step_duration * 2;
    let alone = futures::future::join_all(
        quiet
            .iter()
            .map(|t| starts(engine, &t.token, &t.workflow, quiet_rate, duration)),
    )
    .await;
    let flood = starts(engine, &noisy.token, &noisy.workflow, noisy_rate, duration);
    let during = futures::future::join_all(
        quiet
            .iter()
            .map(|t| starts(engine, &t.token, &t.workflow, quiet_rate, duration)),
    );
    let (noisy_summary, flooded) = tokio::join!(flood, during);
    let code = code_fairness(engine).await?;
    let quiet_alone = merge(&alone);
    let quiet_flooded = merge(&flooded);
    Ok(Fairness {
        quiet_rate,
        noisy_rate,
        share,
        p99_ratio: quiet_flooded.p99_ms / quiet_alone.p99_ms.max(0.001),
        quiet_alone,
        quiet_flooded,
        noisy: noisy_summary,
        code: Some(code),
    })
}

/// POSTs a workflow document with `token` and publishes it; returns its id.
async fn deploy(engine: &Engine, token: &str, doc: Value) -> anyhow::Result<String> {
    let created: Value = engine
        .http
        .post(engine.url("/v1/workflows"))
        .bearer_auth(token)
        .json(&doc)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = created["id"].as_str().context("workflow id")?.to_owned();
    engine
        .http
        .post(engine.url(&format!("/v1/workflows/{id}/publish")))
        .bearer_auth(token)
        .json(&json!({}))
        .send()
        .await?
        .error_for_status()?;
    Ok(id)
}

fn code_doc(language: &str, source: &str) -> Value {
    json!({"name": "code", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "code", "type": "action", "kind": "code", "retry": {"max_attempts": 1},
         "config": {"language": language, "source": source, "limits": {"wall": "10s"}}}
    ], "edges": [{"from": "start", "to": "code"}]})
}

/// Runs `runs` small code nodes of `tenant` one after another.
async fn sequential_code(
    engine: &Engine,
    token: &str,
    workflow: &str,
    runs: usize,
) -> anyhow::Result<Summary> {
    let url = engine.url(&format!("/v1/workflows/{workflow}/executions?wait=true"));
    let mut h = load::histogram();
    let started = std::time::Instant::now();
    let mut errors = 0;
    for n in 0..runs {
        let call = std::time::Instant::now();
        let resp = engine
            .http
            .post(&url)
            .bearer_auth(token)
            .json(&json!({"n": n}))
            .send()
            .await?;
        let ok = resp.status().is_success();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if ok && body["status"] == "succeeded" {
            h.record(call.elapsed().as_micros().max(1) as u64)?;
        } else {
            errors += 1;
        }
    }
    Ok(load::summarize(&h, errors, 0.0, started.elapsed()))
}

async fn code_fairness(engine: &Engine) -> anyhow::Result<CodeFairness> {
    const RUNS: usize = 60;
    // A tenant of its own, at the default limits.
    let (token, _) = register(engine, "coder").await?;
    let small = deploy(
        engine,
        &token,
        code_doc("javascript", "return input.trigger.body.n * 2;"),
    )
    .await?;
    let alone = sequential_code(engine, &token, &small, RUNS).await?;
    // The platform's own tenant floods: three calls in each language, each
    // looping until its ten-second limit.
    for (language, source) in [
        ("javascript", "while (true) {}"),
        ("python", "while True:\n    pass"),
    ] {
        let noisy = deploy(engine, KEY, code_doc(language, source)).await?;
        for _ in 0..3 {
            engine
                .http
                .post(engine.url(&format!("/v1/workflows/{noisy}/executions")))
                .bearer_auth(KEY)
                .json(&json!({}))
                .send()
                .await?
                .error_for_status()?;
        }
    }
    let flooded = sequential_code(engine, &token, &small, RUNS).await?;
    Ok(CodeFairness {
        p50_ratio: flooded.p50_ms / alone.p50_ms.max(0.001),
        alone,
        flooded,
    })
}
