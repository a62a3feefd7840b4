//! One tenant's hostile code running to its limits leaves another tenant's
//! code nodes at their pace. Alone in its test binary, so that no other test
//! shares the machine while it measures.

mod common;

use std::time::{Duration, Instant};

use common::{Engine, Mode, code_workflow};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// Latency of a small code node for a tenant, median of `runs`.
async fn median_latency(engine: &Engine, key: &str, workflow: &str, runs: usize) -> Duration {
    let mut took = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let (status, body) = engine
            .request_as(
                key,
                Method::POST,
                &format!("/v1/workflows/{workflow}/executions?wait=true"),
                Some(json!({"n": 2})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "succeeded", "{body}");
        took.push(started.elapsed());
    }
    took.sort();
    took[took.len() / 2]
}

#[tokio::test]
async fn another_tenants_hostile_code_leaves_a_tenant_at_its_pace() {
    let engine = Engine::start(Mode::Embedded).await;
    let quiet_key = engine.create_tenant("quiet").await;
    let quiet = engine
        .deploy_as(
            &quiet_key,
            code_workflow(
                "small",
                "javascript",
                "return input.trigger.body.n * 2;",
                json!({}),
            ),
        )
        .await;
    let baseline = median_latency(&engine, &quiet_key, &quiet, 21).await;
    // The default tenant floods with code that runs to its limits, in both
    // languages.
    let mut flood = Vec::new();
    for (language, source) in [
        ("javascript", "while (true) {}"),
        ("python", "while True:\n    pass"),
    ] {
        let noisy = engine
            .deploy(code_workflow(
                "noisy",
                language,
                source,
                json!({"wall": "2s"}),
            ))
            .await;
        for _ in 0..3 {
            flood.push(engine.start_execution(&noisy, json!({})).await);
        }
    }
    let during = median_latency(&engine, &quiet_key, &quiet, 21).await;
    assert!(
        during <= baseline * 2 + Duration::from_millis(5),
        "quiet tenant: {baseline:?} before, {during:?} during the flood"
    );
    for id in flood {
        let execution = engine.finished(&id).await;
        assert_eq!(execution["status"], "failed");
    }
}
