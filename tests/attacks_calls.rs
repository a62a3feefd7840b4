//! A hostile tenant against `call_workflow`: the limits a start is held to
//! hold for a child too, and nothing the tenant sends can make a parent
//! wait for a child that never runs.

mod common;

use std::time::Duration;

use common::{Engine, Mode, eventually, node};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn leaf() -> Value {
    json!({"name": "leaf", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "answer", "type": "data", "kind": "mapping", "config": {"mapping": {"n": 42}}}
    ], "edges": [{"from": "start", "to": "answer"}]})
}

/// A parent that waits for a resume before it calls `workflow`.
fn gated_caller(workflow: &str) -> Value {
    json!({"name": "caller", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "approve", "type": "action", "kind": "wait_for_event"},
        {"id": "call", "type": "action", "kind": "call_workflow",
         "config": {"workflow": workflow, "timeout": "1m"}}
    ], "edges": [{"from": "start", "to": "approve"}, {"from": "approve", "to": "call"}]})
}

async fn waiting_at(engine: &Engine, key: &str, id: &str, at: &str) {
    eventually("the node waits", Duration::from_secs(20), || async {
        let (_, e) = engine
            .request_as(key, Method::GET, &format!("/v1/executions/{id}"), None)
            .await;
        (node(&e, at)["status"] == "waiting").then_some(())
    })
    .await;
}

async fn ended(engine: &Engine, key: &str, id: &str) -> Value {
    eventually("the execution ends", Duration::from_secs(40), || async {
        let (_, e) = engine
            .request_as(key, Method::GET, &format!("/v1/executions/{id}"), None)
            .await;
        (!matches!(e["status"].as_str(), Some("queued" | "running"))).then_some(e)
    })
    .await
}

async fn resume(engine: &Engine, key: &str, id: &str) {
    let (status, body) = engine
        .request_as(
            key,
            Method::POST,
            &format!("/v1/executions/{id}/resume"),
            Some(json!({"payload": {}})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "resume: {body}");
}

/// A tenant whose credits ran out starts nothing through a call either:
/// the call fails its node, and no child is recorded.
async fn no_credits_no_children(mode: Mode) {
    let engine = Engine::start_with(mode, &[("FLOWMESH_INITIAL_CREDITS", "20")]).await;
    let owner = engine.create_tenant("Broke caller").await;
    let leaf = engine.deploy_as(&owner, leaf()).await;
    let caller = engine.deploy_as(&owner, gated_caller(&leaf)).await;
    let parent = engine.start_execution_as(&owner, &caller, json!({})).await;
    waiting_at(&engine, &owner, &parent, "approve").await;
    let mut drained = 0;
    loop {
        let (status, body) = engine
            .request_as(
                &owner,
                Method::POST,
                &format!("/v1/workflows/{leaf}/executions?wait=true"),
                Some(json!({})),
            )
            .await;
        if status == StatusCode::PAYMENT_REQUIRED {
            break;
        }
        assert_eq!(status, StatusCode::OK, "{body}");
        drained += 1;
        assert!(drained < 30, "20 credits never ran out");
    }
    resume(&engine, &owner, &parent).await;
    let done = ended(&engine, &owner, &parent).await;
    assert_eq!(done["status"], "failed", "{done}");
    let call = node(&done, "call");
    assert!(
        call["error"]
            .as_str()
            .unwrap_or_default()
            .contains("credits"),
        "the call says why: {call}"
    );
    let (_, listed) = engine
        .request_as(
            &owner,
            Method::GET,
            &format!("/v1/executions?workflow_id={leaf}&limit=100"),
            None,
        )
        .await;
    let runs = listed["items"].as_array().map_or(0, Vec::len);
    assert_eq!(runs, drained, "no child was recorded: {listed}");
}
both_modes!(
    a_tenant_without_credits_starts_no_child,
    no_credits_no_children
);

/// An execution started through the API with the idempotency key a call
/// would give its child does not stand in for the child: the parent gets
/// a child of its own, and its end.
async fn squatted_child_key(mode: Mode) {
    let engine = Engine::start(mode).await;
    let owner = engine.create_tenant("Squatter").await;
    let leaf = engine.deploy_as(&owner, leaf()).await;
    let caller = engine.deploy_as(&owner, gated_caller(&leaf)).await;
    let parent = engine.start_execution_as(&owner, &caller, json!({})).await;
    waiting_at(&engine, &owner, &parent, "approve").await;
    for attempt in 0..3 {
        let resp = engine
            .client()
            .post(engine.url(&format!("/v1/workflows/{leaf}/executions")))
            .bearer_auth(&owner)
            .header("Idempotency-Key", format!("call:{parent}:call:{attempt}"))
            .json(&json!({"squatted": true}))
            .send()
            .await
            .expect("start");
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
    }
    resume(&engine, &owner, &parent).await;
    let done = ended(&engine, &owner, &parent).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let call = node(&done, "call");
    assert_eq!(call["output"]["output"], json!({"n": 42}), "{call}");
    let child = call["output"]["execution_id"].as_str().expect("child");
    let (status, child) = engine
        .request_as(
            &owner,
            Method::GET,
            &format!("/v1/executions/{child}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "the child exists: {child}");
    assert_eq!(child["parent"]["execution_id"], json!(parent), "{child}");
}
both_modes!(
    a_squatted_idempotency_key_does_not_orphan_a_call,
    squatted_child_key
);

/// A child's output is held to the tenant's `max_output_bytes` as the call
/// step's output, like any node's: a child with several large ends does
/// not put more than the cap into one step of its parent.
async fn child_output_over_the_cap(mode: Mode) {
    let engine = Engine::start(mode).await;
    let owner = engine.create_tenant("Hoarder").await;
    let (status, body) = engine
        .request_as(
            &owner,
            Method::PUT,
            "/v1/settings",
            Some(json!({"max_output_bytes": 300000})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let pads: Vec<Value> = (0..4)
        .map(|n| {
            json!({"id": format!("pad{n}"), "type": "data", "kind": "mapping",
            "config": {"mapping": {"text": "{{ 'x' * 100000 }}"}}})
        })
        .collect();
    let edges: Vec<Value> = (0..4)
        .map(|n| json!({"from": "start", "to": format!("pad{n}")}))
        .collect();
    let mut nodes = vec![json!({"id": "start", "type": "trigger", "kind": "manual"})];
    nodes.extend(pads);
    let wide = engine
        .deploy_as(
            &owner,
            json!({"name": "wide", "nodes": nodes, "edges": edges}),
        )
        .await;
    let caller = engine
        .deploy_as(
            &owner,
            json!({"name": "caller", "nodes": [
                {"id": "start", "type": "trigger", "kind": "manual"},
                {"id": "call", "type": "action", "kind": "call_workflow", "config": {"workflow": wide}}
            ], "edges": [{"from": "start", "to": "call"}]}),
        )
        .await;
    let parent = engine.start_execution_as(&owner, &caller, json!({})).await;
    let done = ended(&engine, &owner, &parent).await;
    assert_eq!(done["status"], "failed", "{done}");
    let call = node(&done, "call");
    let error = call["error"].as_str().unwrap_or_default();
    assert!(error.contains("output_too_large"), "{error}");
    let size = serde_json::to_vec(&call["output"]).unwrap().len();
    assert!(size < 300000, "the step holds {size} bytes");
}
both_modes!(
    a_child_output_over_the_cap_fails_the_call,
    child_output_over_the_cap
);

/// A parent whose calls wait inside a loop's body parks like any other
/// waiting call and gives its slot back: a tenant limited to one execution
/// at a time still runs it through its children.
async fn calls_in_a_loop_under_one_slot(mode: Mode) {
    let engine = Engine::start(mode).await;
    let owner = engine.create_tenant("One slot").await;
    let limits = json!({"rate_limit": null, "max_concurrent": 1, "max_payload_bytes": null});
    let (status, body) = engine
        .request(
            Method::PUT,
            "/v1/admin/tenants/one-slot/limits",
            Some(limits),
        )
        .await;
    assert!(status.is_success(), "{body}");
    // A child that runs a while (not one that ends in its first turn).
    let pause = engine
        .deploy_as(
            &owner,
            json!({"name": "pause", "nodes": [
                {"id": "start", "type": "trigger", "kind": "manual"},
                {"id": "pause", "type": "action", "kind": "wait", "config": {"duration": "200ms"}}
            ], "edges": [{"from": "start", "to": "pause"}]}),
        )
        .await;
    let caller = engine
        .deploy_as(
            &owner,
            json!({"name": "looped caller", "nodes": [
                {"id": "start", "type": "trigger", "kind": "manual"},
                {"id": "each", "type": "action", "kind": "for_each", "config": {
                    "items": "[1, 2, 3]", "concurrency": 3,
                    "body": {"nodes": [{"id": "call", "type": "action", "kind": "call_workflow",
                                        "config": {"workflow": pause}}]}}}
            ], "edges": [{"from": "start", "to": "each"}]}),
        )
        .await;
    let parent = engine.start_execution_as(&owner, &caller, json!({})).await;
    let done = ended(&engine, &owner, &parent).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(node(&done, "each")["output"]["succeeded"], 3, "{done}");
}
both_modes!(
    calls_in_a_loop_park_their_parent,
    calls_in_a_loop_under_one_slot
);

/// A draft that names its own version in a call is a cycle however it is
/// reached: publishing a workflow that calls that version is refused, as
/// a chain leading back to the workflow published is.
async fn cycle_through_a_named_version(mode: Mode) {
    let engine = Engine::start(mode).await;
    let owner = engine.create_tenant("Looper").await;
    let selfish = engine.deploy_as(&owner, leaf()).await;
    let draft = json!({"name": "selfish", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "again", "type": "action", "kind": "call_workflow",
         "config": {"workflow": selfish, "version": 2, "wait": false}}
    ], "edges": [{"from": "start", "to": "again"}]});
    let (status, body) = engine
        .request_as(
            &owner,
            Method::PUT,
            &format!("/v1/workflows/{selfish}"),
            Some(draft),
        )
        .await;
    assert!(status.is_success(), "draft saved: {body}");
    let outer = json!({"name": "outer", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "call", "type": "action", "kind": "call_workflow",
         "config": {"workflow": selfish, "version": 2}}
    ], "edges": [{"from": "start", "to": "call"}]});
    let (status, body) = engine
        .request_as(&owner, Method::POST, "/v1/workflows", Some(outer))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let outer = body["id"].as_str().expect("id").to_owned();
    let (status, body) = engine
        .request_as(
            &owner,
            Method::POST,
            &format!("/v1/workflows/{outer}/publish"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["details"][0]["code"], "call_cycle", "{body}");
    assert_eq!(
        body["error"]["details"][0]["path"], "nodes[1].config.workflow",
        "{body}"
    );
}
both_modes!(
    a_cycle_through_a_named_version_is_refused,
    cycle_through_a_named_version
);

/// The failure handler's run cannot be squatted either: a start of the
/// handler's workflow sent first with the key a handler run once carried
/// (`on_error:{execution}`) does not stand in for it.
async fn squatted_handler_key(mode: Mode) {
    let engine = Engine::start(mode).await;
    let owner = engine.create_tenant("Handler squatter").await;
    let handler = engine
        .deploy_as(
            &owner,
            json!({"name": "handler", "nodes": [
                {"id": "start", "type": "trigger", "kind": "manual"},
                {"id": "note", "type": "data", "kind": "mapping",
                 "config": {"mapping": {"failed": "{{ trigger.body.execution.id }}"}}}
            ], "edges": [{"from": "start", "to": "note"}]}),
        )
        .await;
    let guarded = engine
        .deploy_as(
            &owner,
            json!({"name": "guarded", "settings": {"on_error_workflow": handler}, "nodes": [
                {"id": "start", "type": "trigger", "kind": "manual"},
                {"id": "approve", "type": "action", "kind": "wait_for_event"},
                {"id": "boom", "type": "action", "kind": "fail", "config": {"message": "boom"}}
            ], "edges": [{"from": "start", "to": "approve"}, {"from": "approve", "to": "boom"}]}),
        )
        .await;
    let id = engine.start_execution_as(&owner, &guarded, json!({})).await;
    waiting_at(&engine, &owner, &id, "approve").await;
    let resp = engine
        .client()
        .post(engine.url(&format!("/v1/workflows/{handler}/executions")))
        .bearer_auth(&owner)
        .header("Idempotency-Key", format!("on_error:{id}"))
        .json(&json!({"squatted": true}))
        .send()
        .await
        .expect("start");
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    resume(&engine, &owner, &id).await;
    assert_eq!(ended(&engine, &owner, &id).await["status"], "failed");
    eventually(
        "the handler ran for the failure",
        Duration::from_secs(30),
        || async {
            let (_, list) = engine
                .request_as(
                    &owner,
                    Method::GET,
                    &format!("/v1/executions?workflow_id={handler}"),
                    None,
                )
                .await;
            for item in list["items"].as_array().into_iter().flatten() {
                let run = item["id"].as_str().unwrap_or_default();
                let (_, e) = engine
                    .request_as(&owner, Method::GET, &format!("/v1/executions/{run}"), None)
                    .await;
                if e["handles_failure_of"] == json!(id) && e["status"] == "succeeded" {
                    return Some(());
                }
            }
            None
        },
    )
    .await;
}
both_modes!(
    a_squatted_key_does_not_stand_in_for_a_failure_handler,
    squatted_handler_key
);
