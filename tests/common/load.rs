//! Load for durability tests: many executions accepted through the API by a
//! client that retries (same Idempotency-Key) until each is accepted, and
//! the check that every one ended with each node's effect journaled once.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::RwLock;

use super::stub::StubServer;
use super::{ADMIN_KEY, Engine};

/// A chain of outbound calls with a short wait in the middle, so that
/// executions are caught at every stage by a crash.
pub fn chain(stub: &StubServer) -> Value {
    let call = |id: &str| {
        json!({"id": id, "type": "action", "kind": "http_request",
               "retry": {"max_attempts": 20, "initial_backoff": "200ms", "max_backoff": "1s"},
               "config": {"method": "POST", "url": stub.url(&format!("/ok/{id}")), "body": {"run": "{{ trigger.body.run }}"}}})
    };
    json!({"name": "chain", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        call("a"),
        {"id": "pause", "type": "action", "kind": "wait", "config": {"duration": "300ms"}},
        call("b"),
        call("c")
    ], "edges": [{"from": "start", "to": "a"}, {"from": "a", "to": "pause"},
                 {"from": "pause", "to": "b"}, {"from": "b", "to": "c"}]})
}

/// The nodes of `chain` with outside effects.
pub const CALLS: [&str; 3] = ["a", "b", "c"];

/// Where the client sends requests; swapped when a process dies.
pub type Targets = Arc<RwLock<Vec<String>>>;

/// Starts `count` executions of `workflow`, `concurrency` at a time, over
/// whichever of `targets` answers. A request that fails or gets a 503 is
/// sent again with the same Idempotency-Key. Returns the execution ids (in
/// run order) and how many requests were refused or failed on the way.
pub async fn accept_all(
    targets: Targets,
    workflow: String,
    count: usize,
    concurrency: usize,
) -> (Vec<String>, usize) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let refused = Arc::new(AtomicUsize::new(0));
    let ids: Vec<String> = futures::stream::iter(0..count)
        .map(|run| {
            let (http, targets, refused) = (http.clone(), targets.clone(), refused.clone());
            let path = format!("/v1/workflows/{workflow}/executions");
            async move {
                let key = format!("run-{run}");
                // A client that honours Retry-After (1 s) more eagerly.
                let deadline = Instant::now() + Duration::from_secs(180);
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                for attempt in 0.. {
                    tick.tick().await;
                    let list = targets.read().await.clone();
                    let base = &list[attempt % list.len()];
                    let sent = http
                        .post(format!("{base}{path}"))
                        .bearer_auth(ADMIN_KEY)
                        .header("idempotency-key", &key)
                        .json(&json!({"run": run}))
                        .send()
                        .await;
                    if let Ok(resp) = sent {
                        if resp.status() == StatusCode::ACCEPTED {
                            let body: Value = resp.json().await.expect("json");
                            return body["execution_id"].as_str().expect("id").to_owned();
                        }
                        assert_eq!(
                            resp.status(),
                            StatusCode::SERVICE_UNAVAILABLE,
                            "only a 503 may refuse a valid start"
                        );
                        assert!(resp.headers().contains_key("retry-after"));
                    }
                    refused.fetch_add(1, Ordering::Relaxed);
                    assert!(Instant::now() < deadline, "run {run} was never accepted");
                }
                unreachable!("the attempts never end")
            }
        })
        .buffered(concurrency)
        .collect()
        .await;
    (ids, refused.load(Ordering::Relaxed))
}

/// Waits until every execution has ended, asking `engine`.
pub async fn all_finished(engine: &Engine, ids: &[String], limit: Duration) -> Vec<Value> {
    let deadline = Instant::now() + limit;
    let mut done: HashMap<String, Value> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    for id in ids {
        loop {
            let (status, e) = engine.get(&format!("/v1/executions/{id}")).await;
            if status == StatusCode::OK
                && !matches!(e["status"].as_str(), Some("queued" | "running"))
            {
                done.insert(id.clone(), e);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "execution {id} did not finish: {e}"
            );
            tick.tick().await;
        }
    }
    ids.iter().map(|id| done[id].clone()).collect()
}

/// What the sink saw: calls per effect (execution, node) by idempotency key.
pub struct Effects {
    /// Distinct idempotency keys, one per node effect.
    pub keys: usize,
    /// Calls beyond the first with the same key (at-least-once repeats).
    pub repeats: usize,
}

/// Checks that every execution succeeded with each node journaled once,
/// and that the sink saw exactly one idempotency key per node effect.
pub fn check_effects(stub: &StubServer, finished: &[Value]) -> Effects {
    let mut keys: HashMap<String, HashSet<String>> = HashMap::new();
    let mut calls = 0;
    for node in CALLS {
        for hit in stub.hits(&format!("/ok/{node}")) {
            let key = hit
                .idempotency_key
                .expect("every call carries an Idempotency-Key");
            keys.entry(format!("{node}:{}", hit.body["run"]))
                .or_default()
                .insert(key);
            calls += 1;
        }
    }
    for e in finished {
        assert_eq!(e["status"], "succeeded", "{e}");
        for node in CALLS {
            let step = super::node(e, node);
            assert_eq!(step["status"], "succeeded", "{e}");
            assert!(step["attempts"].as_u64().unwrap() >= 1);
        }
    }
    let runs = finished.len();
    assert_eq!(
        keys.len(),
        runs * CALLS.len(),
        "every node effect reached the sink"
    );
    for (effect, seen) in &keys {
        assert_eq!(
            seen.len(),
            1,
            "{effect} was called with different keys: {seen:?}"
        );
    }
    Effects {
        keys: keys.len(),
        repeats: calls - keys.len(),
    }
}

/// Succeeded executions of a workflow, as the engine counts them (0 while
/// it cannot answer).
pub async fn succeeded(engine: &Engine, workflow: &str) -> usize {
    let mut count = 0;
    let mut cursor = String::new();
    loop {
        let (status, page) = engine
            .get(&format!(
                "/v1/executions?workflow_id={workflow}&status=succeeded&limit=500{cursor}"
            ))
            .await;
        if status != StatusCode::OK {
            return 0;
        }
        count += page["items"].as_array().map_or(0, Vec::len);
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return count,
        }
    }
}
