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
}

/// A registered tenant with its workflow.
struct Tenant {
    token: String,
    slug: String,
    workflow: String,
}

/// Registers a tenant and deploys its workflow.
async fn tenant(engine: &Engine, name: &str, sink_url: &str) -> anyhow::Result<Tenant> {
    let session: Value = engine
        .http
        .post(engine.url("/v1/auth/register"))
        .json(&json!({"email": format!("owner@{name}.example.com"), "password": "a long enough password", "tenant": name}))
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
    let doc = json!({"name": "work", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "shape", "type": "data", "kind": "mapping", "config": {"mapping": {"n": "{{ trigger.body.n }}"}}},
        {"id": "call", "type": "action", "kind": "http_request", "config": {"url": sink_url}},
        {"id": "done", "type": "data", "kind": "mapping", "config": {"mapping": {"ok": true}}}
    ], "edges": [{"from": "start", "to": "shape"}, {"from": "shape", "to": "call"}, {"from": "call", "to": "done"}]});
    let post = |path: String, body: Value| {
        let token = token.clone();
        async move {
            let resp = engine
                .http
                .post(engine.url(&path))
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await?;
            let status = resp.status();
            let value: Value = resp.json().await.unwrap_or(Value::Null);
            anyhow::ensure!(status.is_success(), "POST {path}: {status} {value}");
            Ok::<Value, anyhow::Error>(value)
        }
    };
    let created = post("/v1/workflows".into(), doc).await?;
    let id = created["id"].as_str().context("workflow id")?.to_owned();
    post(format!("/v1/workflows/{id}/publish"), json!({})).await?;
    Ok(Tenant {
        token,
        slug,
        workflow: id,
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
    })
}
