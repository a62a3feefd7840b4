//! A template cannot build a value past the tenant's output limit: fuel
//! counts instructions, and one instruction can repeat a string a hundred
//! million times. The node fails with a clear error; the engine neither
//! aborts nor grows, and goes on serving every tenant.

mod common;

use std::time::Duration;

use common::{Engine, Mode, eventually, node};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The finding: 100 MB repeated 80 times, 8 GB of output.
const GROWING: &str = "{% set s = 'a' * 100000000 %}{% for i in range(80) %}{{ s }}{% endfor %}";

fn mapping_workflow(name: &str, template: &str) -> Value {
    json!({"name": name, "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "grow", "type": "data", "kind": "mapping", "config": {"mapping": {"text": template}}}
    ], "edges": [{"from": "start", "to": "grow"}]})
}

async fn growing_template_fails_its_node(mode: Mode) {
    let engine = Engine::start(mode).await;
    let bystander = engine.create_tenant("Bystander").await;
    let workflow = engine.deploy(mapping_workflow("grow", GROWING)).await;
    let before = engine.peak_rss();

    let id = engine.start_execution(&workflow, json!({})).await;
    let execution = engine.finished(&id).await;
    assert_eq!(execution["status"], "failed", "{execution:#}");
    let error = node(&execution, "grow")["error"]
        .as_str()
        .unwrap_or_default();
    assert!(
        error.starts_with(
            "output_too_large: the template built a value of more than 8388608 bytes;"
        ),
        "{error}"
    );
    assert!(error.contains("max_output_bytes"), "{error}");
    let grew = engine.peak_rss().saturating_sub(before);
    assert!(grew < 100 * 1024 * 1024, "the engine grew by {grew} bytes");

    // The same engine goes on: another tenant's template renders.
    let (status, body) = engine
        .request_as(
            &bystander,
            Method::POST,
            "/v1/workflows",
            Some(mapping_workflow("small", "{{ 'ab' * 3 }}")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let small = body["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/workflows/{small}/publish");
    let (status, body) = engine
        .request_as(&bystander, Method::POST, &path, Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let path = format!("/v1/workflows/{small}/executions");
    let (status, body) = engine
        .request_as(&bystander, Method::POST, &path, Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let path = format!("/v1/executions/{}", body["execution_id"].as_str().unwrap());
    let done = eventually("the bystander's execution", Duration::from_secs(30), || {
        let path = path.clone();
        let engine = &engine;
        let bystander = &bystander;
        async move {
            let (_, execution) = engine.request_as(bystander, Method::GET, &path, None).await;
            (execution["status"] == "succeeded").then_some(execution)
        }
    })
    .await;
    assert_eq!(node(&done, "grow")["output"], json!({"text": "ababab"}));
}
both_modes!(
    a_growing_template_fails_its_node_and_the_engine_serves_on,
    growing_template_fails_its_node
);
