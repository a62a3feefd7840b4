//! Past capacity the engine sheds load instead of queueing without bound:
//! a process holds at most `--max-executions-here` live executions (the
//! rest wait on the bus), and once `--max-queued-starts` wait there, new
//! starts get 503 with Retry-After and nothing is recorded. What was
//! accepted still runs to its end.

mod common;

use std::sync::Mutex;
use std::time::Duration;

use common::{Engine, Mode, eventually};
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

const LIVE: usize = 2;

fn holding() -> Value {
    json!({"name": "holding", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "hook", "type": "trigger", "kind": "webhook", "config": {"path": "holding", "method": "POST"}},
        {"id": "hold", "type": "action", "kind": "wait", "config": {"duration": "1s"}},
        {"id": "echo", "type": "data", "kind": "mapping", "config": {"mapping": {"n": "{{ trigger.body.n }}"}}}
    ], "edges": [
        {"from": "start", "to": "hold"}, {"from": "hook", "to": "hold"}, {"from": "hold", "to": "echo"}
    ]})
}

/// The most executions whose runs overlap at one moment.
fn most_at_once(finished: &[Value]) -> usize {
    let mut moments: Vec<(i64, i32)> = Vec::new();
    for execution in finished {
        let at = |field: &str| {
            execution[field]
                .as_i64()
                .expect("a finished execution's times")
        };
        moments.push((at("started_at"), 1));
        moments.push((at("finished_at"), -1));
    }
    // An end and a start at the same millisecond do not overlap.
    moments.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, change) in moments {
        now += change;
        most = most.max(now);
    }
    most as usize
}

async fn sheds_past_capacity(mode: Mode) {
    let engine = Engine::start_with(
        mode,
        &[
            // Every start through the bus, where the queue is.
            ("FLOWMESH_MAX_STARTED_HERE", "0"),
            ("FLOWMESH_MAX_EXECUTIONS_HERE", "2"),
            ("FLOWMESH_MAX_QUEUED_STARTS", "3"),
        ],
    )
    .await;
    let workflow = engine.deploy(holding()).await;
    let path = format!("/v1/workflows/{workflow}/executions");
    let accepted = Mutex::new(Vec::new());
    let mut n = 0;
    // Start one execution after another until one is refused.
    let refusal = eventually(
        "a start refused past capacity",
        Duration::from_secs(30),
        || {
            n += 1;
            let request = engine
                .client()
                .post(engine.url(&path))
                .bearer_auth(common::ADMIN_KEY)
                .json(&json!({"n": n}));
            let accepted = &accepted;
            async move {
                let response = request.send().await.expect("start");
                if response.status() == StatusCode::ACCEPTED {
                    let body: Value = response.json().await.expect("json");
                    let id = body["execution_id"].as_str().expect("id").to_owned();
                    accepted.lock().unwrap().push(id);
                    return None;
                }
                Some(response)
            }
        },
    )
    .await;
    let mut accepted = accepted.into_inner().unwrap();
    assert_eq!(refusal.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        refusal
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap()),
        Some("1")
    );
    let body: Value = refusal.json().await.expect("json");
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("past its capacity"), "{body}");
    assert!(message.contains("retrying is safe"), "{body}");
    let metrics = engine.metrics_text().await;
    let shed: f64 = metrics
        .lines()
        .find_map(|line| {
            line.strip_prefix("flowmesh_starts_shed_total ")?
                .parse()
                .ok()
        })
        .unwrap_or_default();
    assert!(shed >= 1.0, "{metrics}");

    // A public webhook caller is refused the same way while the queue is full.
    let hook = engine
        .client()
        .post(engine.url("/hooks/default/holding"))
        .json(&json!({"n": 0}))
        .send()
        .await
        .expect("webhook");
    if hook.status() == StatusCode::ACCEPTED {
        let body: Value = hook.json().await.expect("json");
        accepted.push(body["execution_id"].as_str().expect("id").to_owned());
    } else {
        assert_eq!(hook.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(hook.headers().contains_key(header::RETRY_AFTER));
    }

    // Everything accepted runs to its end, never more than the bound at once.
    let mut finished = Vec::new();
    for id in &accepted {
        let execution = engine.finished(id).await;
        assert_eq!(execution["status"], "succeeded", "{execution:#}");
        finished.push(execution);
    }
    assert!(
        most_at_once(&finished) <= LIVE,
        "more than {LIVE} executions ran at once: {finished:#?}"
    );
    // The refused starts left nothing behind.
    let (status, page) = engine
        .request(
            Method::GET,
            &format!("/v1/executions?workflow_id={workflow}&limit=200"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let listed = page["items"].as_array().map_or(0, Vec::len);
    assert_eq!(listed, accepted.len(), "{page:#}");

    // With the queue drained, starts are accepted again.
    eventually(
        "a start accepted again",
        Duration::from_secs(30),
        || async {
            let (status, _) = engine.post(&path, json!({"n": -1})).await;
            (status == StatusCode::ACCEPTED).then_some(())
        },
    )
    .await;
}
both_modes!(
    past_capacity_starts_are_shed_and_accepted_ones_finish,
    sheds_past_capacity
);
