//! One tenant's hostile code running to its limits leaves another tenant's
//! code nodes free to run: they are not queued behind it. How much the
//! flood slows them is a speed figure, measured by the benchmark harness
//! (`flowmesh-bench fairness`, "code fairness" in BENCHMARKS.md).

mod common;

use std::time::Duration;

use common::{Engine, Mode, code_workflow, eventually};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn another_tenants_hostile_code_does_not_hold_up_a_tenant() {
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
    // The default tenant floods with code that runs to its limits, in both
    // languages. Its JavaScript calls run one after another, so the last
    // one ends about three limits after the flood starts.
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
                json!({"wall": "4s"}),
            ))
            .await;
        for _ in 0..3 {
            flood.push(engine.start_execution(&noisy, json!({})).await);
        }
    }
    for id in &flood {
        eventually("the flood runs", Duration::from_secs(10), || async {
            (engine.execution(id).await["status"] == "running").then_some(())
        })
        .await;
    }
    for n in 0..10 {
        let (status, body) = engine
            .request_as(
                &quiet_key,
                Method::POST,
                &format!("/v1/workflows/{quiet}/executions?wait=true"),
                Some(json!({"n": n})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "succeeded", "{body}");
        assert_eq!(body["output"], n * 2, "{body}");
    }
    // Every quiet run finished while the whole flood was still running.
    for id in &flood {
        let execution = engine.execution(id).await;
        assert_eq!(execution["status"], "running", "{execution}");
    }
    for id in flood {
        let execution = engine.finished(&id).await;
        assert_eq!(execution["status"], "failed");
        let error = common::node(&execution, "code")["error"]
            .as_str()
            .unwrap_or_default();
        assert!(error.starts_with("timeout:"), "{execution}");
    }
}
