//! Execution data in bounds: a per-tenant cap on node outputs, and
//! retention that purges old executions and gives their space back.

mod common;

use std::time::Duration;

use common::{Engine, Mode, eventually};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Waits for `execution` to fail at its node `big`, over the output cap;
/// returns that node.
async fn output_too_large(engine: &Engine, execution: &str) -> Value {
    let failed = engine.finished(execution).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let big = common::node(&failed, "big").clone();
    assert!(
        big["error"]
            .as_str()
            .unwrap()
            .starts_with("output_too_large:"),
        "{big}"
    );
    big
}

async fn data_stays_in_bounds(mode: Mode) {
    let engine = Engine::start_with(mode, &[("FLOWMESH_RETENTION_INTERVAL", "300ms")]).await;
    let (status, defaults) = engine.get("/v1/settings").await;
    assert_eq!(status, StatusCode::OK, "{defaults}");
    assert_eq!(defaults["max_output_bytes"], 8 * 1024 * 1024);
    for bad in [
        json!({"retention": "0s", "max_output_bytes": 300000}),
        json!({"retention": "1h", "max_output_bytes": 10}),
        json!({"retention": "soon", "max_output_bytes": 300000}),
        json!({"retention": "1h", "colour": "blue"}),
    ] {
        let (status, _) = engine
            .request(Method::PUT, "/v1/settings", Some(bad.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let set = |retention: &str| json!({"retention": retention, "max_output_bytes": 300000});
    let (status, body) = engine
        .request(Method::PUT, "/v1/settings", Some(set("1h")))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let workflow = engine
        .deploy(json!({"name": "big", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "big", "type": "action", "kind": "code", "retry": {"max_attempts": 1},
             "config": {"language": "javascript",
                        "source": "let s = input.trigger.body.i; while (s.length < input.trigger.body.n) { s += Math.random().toString(36).slice(2); } return s;"}},
            {"id": "done", "type": "data", "kind": "mapping", "config": {"mapping": {"ok": true}}}
        ], "edges": [{"from": "start", "to": "big"}, {"from": "big", "to": "done"}]}))
        .await;
    // Over the cap: the node fails clearly, and nothing of it is stored.
    let over = engine
        .start_execution(&workflow, json!({"i": "over", "n": 400_000}))
        .await;
    let big = output_too_large(&engine, &over).await;
    assert!(big["output"].is_null());

    let mut ids = vec![over];
    for i in 0..30 {
        let id = engine
            .start_execution(&workflow, json!({"i": i.to_string(), "n": 150_000}))
            .await;
        ids.push(id);
    }
    for id in &ids[1..] {
        assert_eq!(engine.finished(id).await["status"], "succeeded");
    }
    let full = engine.store_bytes().await;

    let (status, _) = engine
        .request(Method::PUT, "/v1/settings", Some(set("1ms")))
        .await;
    assert_eq!(status, StatusCode::OK);
    eventually(
        "every expired execution purged",
        Duration::from_secs(30),
        || async {
            for id in &ids {
                let (status, _) = engine.get(&format!("/v1/executions/{id}")).await;
                if status != StatusCode::NOT_FOUND {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    let reclaimed = eventually("the space given back", Duration::from_secs(30), || async {
        let now = engine.store_bytes().await;
        (now < full / 2).then_some(now)
    })
    .await;
    println!("{mode:?}: execution data {full} bytes full, {reclaimed} after the purge");
}
both_modes!(
    outputs_are_capped_and_expired_data_is_reclaimed,
    data_stays_in_bounds
);

/// A tenant cannot raise its output cap past the operator's bound (256 MiB
/// used to be accepted, and one node could then fill the disk); a cap set
/// before the operator lowered the bound obeys the bound.
async fn output_caps_obey_the_instance(mode: Mode) {
    let mut engine = Engine::start(mode).await;
    let huge = json!({"retention": "1h", "max_output_bytes": 256 * 1024 * 1024});
    let (status, body) = engine
        .request(Method::PUT, "/v1/settings", Some(huge))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "over_limit");
    assert_eq!(body["error"]["details"]["field"], "max_output_bytes");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("max_output_bytes:") && message.contains("8388608"),
        "{message}"
    );
    let (_, settings) = engine.get("/v1/settings").await;
    assert_eq!(settings["max_output_bytes"], 8 * 1024 * 1024, "unchanged");
    let at_bound = json!({"retention": "1h", "max_output_bytes": 8 * 1024 * 1024});
    let (status, body) = engine
        .request(Method::PUT, "/v1/settings", Some(at_bound))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The operator lowers the bound below what the tenant chose.
    engine
        .restart_with("FLOWMESH_TENANT_MAX_OUTPUT_BYTES", "4096")
        .await;
    let (_, settings) = engine.get("/v1/settings").await;
    assert_eq!(settings["max_output_bytes"], 4096, "{settings}");
    let workflow = engine
        .deploy(json!({"name": "sized", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "big", "type": "data", "kind": "mapping",
             "config": {"mapping": {"text": "{{ trigger.body.text }}"}}}
        ], "edges": [{"from": "start", "to": "big"}]}))
        .await;
    let over = engine
        .start_execution(&workflow, json!({"text": "x".repeat(6000)}))
        .await;
    output_too_large(&engine, &over).await;
    let under = engine
        .start_execution(&workflow, json!({"text": "x".repeat(1000)}))
        .await;
    assert_eq!(engine.finished(&under).await["status"], "succeeded");
}
both_modes!(
    output_caps_are_bounded_by_the_instance,
    output_caps_obey_the_instance
);

/// A change names only the settings it changes: those left out keep their
/// values, a null goes back to the default, an unknown field is refused.
async fn settings_change_in_part(mode: Mode) {
    let engine = Engine::start(mode).await;
    let put = |body: Value| engine.request(Method::PUT, "/v1/settings", Some(body));
    let (_, defaults) = engine.get("/v1/settings").await;
    let (status, body) = put(json!({"max_output_bytes": 4096})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["max_output_bytes"], 4096);
    assert_eq!(body["retention"], defaults["retention"], "kept");
    let (status, body) = put(json!({"retention": "1h"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["retention"], "1h");
    assert_eq!(body["max_output_bytes"], 4096, "kept");
    let (_, read) = engine.get("/v1/settings").await;
    assert_eq!(read, body, "stored as answered");

    let (status, body) = put(json!({})).await;
    assert_eq!((status, &body), (StatusCode::OK, &read), "nothing changes");
    let (status, body) = put(json!({"max_output_bytes": null})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["max_output_bytes"], defaults["max_output_bytes"]);
    assert_eq!(body["retention"], "1h", "kept");
    let (status, body) = put(json!({"retention": null})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, defaults);

    for (bad, field) in [
        (json!({"retention": "1h", "colour": "blue"}), "colour"),
        (json!({"max_output_bytes": "big"}), "max_output_bytes"),
        (json!({"retention": 5}), "retention"),
    ] {
        let (status, body) = put(bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{bad}: {message}");
    }
    let (_, after) = engine.get("/v1/settings").await;
    assert_eq!(after, defaults, "a refused change changes nothing");
}
both_modes!(settings_change_in_part, settings_change_in_part);
