//! `call_workflow`: child executions started by a node, waited for parked,
//! linked both ways, cancelled with their parent, and refused where they
//! could loop, end to end in both modes.

mod common;

use std::time::Duration;

use common::{ADMIN_KEY, Engine, Mode, eventually, node};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A child that doubles `trigger.body.n` (with `note` passed through).
fn doubler() -> Value {
    json!({"name": "doubler", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "twice", "type": "data", "kind": "mapping",
         "config": {"mapping": {"n": "{{ trigger.body.n * 2 }}", "note": "{{ trigger.body.note }}"}}}
    ], "edges": [{"from": "start", "to": "twice"}]})
}

/// The doubler after a short wait: its first turn does not end it, so it
/// runs as a running execution, holding a concurrency slot.
fn slow_doubler() -> Value {
    json!({"name": "slow doubler", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "pause", "type": "action", "kind": "wait", "config": {"duration": "100ms"}},
        {"id": "twice", "type": "data", "kind": "mapping",
         "config": {"mapping": {"n": "{{ trigger.body.n * 2 }}"}}}
    ], "edges": [{"from": "start", "to": "pause"}, {"from": "pause", "to": "twice"}]})
}

/// A parent with one call node (extra config merged in) after a manual trigger.
fn caller(child: &str, extra: Value) -> Value {
    let mut config =
        json!({"workflow": child, "input": {"n": "{{ trigger.body.n }}", "note": "from parent"}});
    for (k, v) in extra.as_object().into_iter().flatten() {
        config[k] = v.clone();
    }
    json!({"name": "caller", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "call", "type": "action", "kind": "call_workflow", "config": config}
    ], "edges": [{"from": "start", "to": "call"}]})
}

/// A child that waits for a resume, then fails if the payload says so.
fn waiting_child() -> Value {
    json!({"name": "approval", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "approve", "type": "action", "kind": "wait_for_event"},
        {"id": "check", "type": "condition", "kind": "if_else", "config": {"logic": "approve.payload.ok"}},
        {"id": "refuse", "type": "action", "kind": "fail", "config": {"message": "refused by {{ approve.payload.by }}"}},
        {"id": "done", "type": "data", "kind": "mapping", "config": {"mapping": {"by": "{{ approve.payload.by }}"}}}
    ], "edges": [
        {"from": "start", "to": "approve"},
        {"from": "approve", "to": "check"},
        {"from": "check", "to": "done", "when": "true"},
        {"from": "check", "to": "refuse", "when": "false"}
    ]})
}

fn child_id(execution: &Value) -> String {
    node(execution, "call")["output"]["execution_id"]
        .as_str()
        .unwrap_or_else(|| panic!("the call names its child: {execution:#}"))
        .to_owned()
}

/// The parent's call step, once it waits for its child.
async fn waiting_call(engine: &Engine, id: &str) -> Value {
    eventually(
        "the call waits for its child",
        Duration::from_secs(20),
        || async {
            let e = engine.execution(id).await;
            (node(&e, "call")["status"] == "waiting").then_some(e)
        },
    )
    .await
}

/// Polls until the child's approval step waits for its resume.
async fn child_waits(engine: &Engine, child: &str) {
    eventually("the child waits", Duration::from_secs(30), || async {
        let e = engine.execution(child).await;
        (node(&e, "approve")["status"] == "waiting").then_some(())
    })
    .await;
}

async fn resume(engine: &Engine, id: &str, payload: Value) {
    let (status, body) = engine
        .post(
            &format!("/v1/executions/{id}/resume"),
            json!({"payload": payload}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

async fn child_output_becomes_the_nodes(mode: Mode) {
    let engine = Engine::start(mode).await;
    let child = engine.deploy(doubler()).await;
    let parent = engine.deploy(caller(&child, json!({}))).await;
    let id = engine.start_execution(&parent, json!({"n": 21})).await;
    let done = engine.finished(&id).await;
    assert_eq!(done["status"], "succeeded", "{done:#}");
    let call = node(&done, "call");
    assert_eq!(call["output"]["status"], "succeeded", "{call}");
    assert_eq!(call["output"]["output"]["n"], 42, "{call}");
    assert_eq!(call["output"]["workflow_id"], child.as_str());
    // Linked both ways: the child names its parent and the calling step.
    let child_run = engine.execution(&child_id(&done)).await;
    assert_eq!(child_run["status"], "succeeded");
    assert_eq!(child_run["workflow_id"], child.as_str());
    assert_eq!(child_run["parent"]["execution_id"], id.as_str());
    assert_eq!(child_run["parent"]["node"], "call");
    assert_eq!(child_run["parent"]["depth"], 1);
    assert_eq!(
        child_run["trigger"]["body"],
        json!({"n": 21, "note": "from parent"})
    );
    // And in events: the parent's names the child, the child's its parent.
    let events = engine.events_text(&id).await;
    assert!(events.contains("event: child_started"), "{events}");
    assert!(events.contains(&child_id(&done)), "{events}");
    let events = engine.events_text(&child_id(&done)).await;
    assert!(events.contains("event: called_by"), "{events}");
    assert!(events.contains(&id), "{events}");
}
both_modes!(
    a_called_childs_output_becomes_the_call_nodes,
    child_output_becomes_the_nodes
);

async fn fire_and_forget(mode: Mode) {
    let engine = Engine::start(mode).await;
    let child = engine.deploy(waiting_child()).await;
    let parent = engine.deploy(caller(&child, json!({"wait": false}))).await;
    let id = engine.start_execution(&parent, json!({"n": 1})).await;
    let done = engine.finished(&id).await;
    assert_eq!(done["status"], "succeeded", "{done:#}");
    assert_eq!(node(&done, "call")["output"]["status"], "started");
    // The parent succeeded; a child it did not wait for runs on.
    let child_run = child_id(&done);
    child_waits(&engine, &child_run).await;
    resume(&engine, &child_run, json!({"ok": true, "by": "ada"})).await;
    let child_done = engine.finished(&child_run).await;
    assert_eq!(child_done["status"], "succeeded", "{child_done:#}");
}
both_modes!(
    a_call_that_does_not_wait_succeeds_at_once_and_its_child_runs_on,
    fire_and_forget
);

/// The child waits for a resume, then fails: the call node fails with the
/// child's error, and so does the run; with `on_error: continue` the run
/// goes on with the error as the node's output.
async fn childs_failure_is_the_nodes(mode: Mode) {
    let engine = Engine::start_with(mode, &[("FLOWMESH_PARK_AFTER", "1s")]).await;
    let child = engine.deploy(waiting_child()).await;
    let parent = engine.deploy(caller(&child, json!({}))).await;
    let id = engine.start_execution(&parent, json!({"n": 1})).await;
    let waiting = waiting_call(&engine, &id).await;
    let child_run = child_id(&waiting);
    child_waits(&engine, &child_run).await;
    resume(&engine, &child_run, json!({"ok": false, "by": "bob"})).await;
    let done = engine.finished(&id).await;
    assert_eq!(done["status"], "failed", "{done:#}");
    let call = node(&done, "call");
    assert_eq!(call["status"], "failed");
    let error = call["error"].as_str().unwrap_or_default();
    assert!(error.contains("refused by bob"), "{error}");
    assert!(error.contains(&child_run), "{error}");

    let mut document = caller(&child, json!({}));
    document["nodes"][1]["on_error"] = json!("continue");
    let parent = engine.deploy(document).await;
    let id = engine.start_execution(&parent, json!({"n": 1})).await;
    let waiting = waiting_call(&engine, &id).await;
    let child_run = child_id(&waiting);
    child_waits(&engine, &child_run).await;
    resume(&engine, &child_run, json!({"ok": false, "by": "eve"})).await;
    let done = engine.finished(&id).await;
    assert_eq!(done["status"], "succeeded", "{done:#}");
    let message = node(&done, "call")["output"]["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(message.contains("refused by eve"), "{done:#}");
}
both_modes!(
    a_childs_failure_after_a_resume_is_the_call_nodes_failure,
    childs_failure_is_the_nodes
);

/// A tenant allowed one execution at a time runs a parent that waits for
/// its child: the waiting parent gives its slot back.
async fn one_slot_parent_and_child(mode: Mode) {
    let engine = Engine::start_with(mode, &[("FLOWMESH_CLAIM_INTERVAL", "1m")]).await;
    let limits = json!({"rate_limit": null, "max_concurrent": 1, "max_payload_bytes": null});
    let (status, body) = engine
        .request(
            Method::PUT,
            "/v1/admin/tenants/default/limits",
            Some(limits),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let child = engine.deploy(slow_doubler()).await;
    let parent = engine
        .deploy(caller(&child, json!({"timeout": "1m"})))
        .await;
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(engine.start_execution(&parent, json!({"n": n})).await);
    }
    for (n, id) in ids.iter().enumerate() {
        let done = eventually(
            "the parent ran to completion through its child",
            Duration::from_secs(30),
            || async {
                let e = engine.execution(id).await;
                (e["status"] != "queued" && e["status"] != "running").then_some(e)
            },
        )
        .await;
        assert_eq!(done["status"], "succeeded", "{done:#}");
        assert_eq!(node(&done, "call")["output"]["output"]["n"], 2 * n);
    }
}
both_modes!(
    a_tenant_limited_to_one_execution_runs_a_parent_that_waits_for_its_child,
    one_slot_parent_and_child
);

/// A parent cancelled while it waits cancels its child; a call whose
/// timeout passes fails, and cancels its child too.
async fn cancel_and_timeout_reach_the_child(mode: Mode) {
    let engine = Engine::start_with(mode, &[("FLOWMESH_PARK_AFTER", "1s")]).await;
    let child = engine.deploy(waiting_child()).await;
    let parent = engine.deploy(caller(&child, json!({}))).await;
    let id = engine.start_execution(&parent, json!({"n": 1})).await;
    let child_run = child_id(&waiting_call(&engine, &id).await);
    let (status, body) = engine
        .post(&format!("/v1/executions/{id}/cancel"), json!({}))
        .await;
    assert!(status.is_success(), "{body}");
    assert_eq!(engine.finished(&id).await["status"], "cancelled");
    assert_eq!(engine.finished(&child_run).await["status"], "cancelled");

    let parent = engine
        .deploy(caller(&child, json!({"timeout": "1s"})))
        .await;
    let id = engine.start_execution(&parent, json!({"n": 1})).await;
    let done = engine.finished(&id).await;
    assert_eq!(done["status"], "failed", "{done:#}");
    let error = node(&done, "call")["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(error.contains("timeout"), "{error}");
    // The error names the child it gave up on.
    let timed_out = error
        .split_whitespace()
        .find(|word| word.len() == 36 && word.matches('-').count() == 4)
        .unwrap_or_else(|| panic!("no child id in {error:?}"));
    assert_eq!(engine.finished(timed_out).await["status"], "cancelled");

    // `abandon`: the child outlives its parent.
    let parent = engine
        .deploy(caller(&child, json!({"on_parent_end": "abandon"})))
        .await;
    let id = engine.start_execution(&parent, json!({"n": 1})).await;
    let child_run = child_id(&waiting_call(&engine, &id).await);
    engine
        .post(&format!("/v1/executions/{id}/cancel"), json!({}))
        .await;
    assert_eq!(engine.finished(&id).await["status"], "cancelled");
    let child_now = engine.execution(&child_run).await;
    assert_eq!(child_now["status"], "running", "{child_now:#}");
}
both_modes!(
    cancelling_a_waiting_parent_or_timing_out_its_call_cancels_the_child,
    cancel_and_timeout_reach_the_child
);

/// Saves a new version of a workflow, then publishes it: the publish's answer.
async fn save_and_publish(engine: &Engine, workflow: &str, document: Value) -> (StatusCode, Value) {
    let path = format!("/v1/workflows/{workflow}");
    let (status, body) = engine.request(Method::PUT, &path, Some(document)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let publish = format!("{path}/publish");
    engine
        .request(Method::POST, &publish, Some(json!({})))
        .await
}

/// Calls that cannot work are refused where they can be known: an unknown
/// (or another tenant's) workflow when saved, an unpublished one and a
/// cycle when published, each at its path.
async fn bad_calls_are_refused(mode: Mode) {
    let engine = Engine::start(mode).await;
    let other = engine.create_tenant("Other").await;
    let theirs = engine.deploy_as(&other, doubler()).await;
    let (status, body) = engine
        .request_as(
            ADMIN_KEY,
            Method::POST,
            "/v1/workflows",
            Some(caller(&theirs, json!({}))),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let details = body["error"]["details"].to_string();
    assert!(details.contains("nodes[1].config.workflow"), "{body}");
    assert!(details.contains("unknown_workflow"), "{body}");

    // A draft never published cannot be called without a version.
    let (status, body) = engine
        .request(Method::POST, "/v1/workflows", Some(doubler()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let draft = body["id"].as_str().unwrap().to_owned();
    let (status, body) = engine
        .request(
            Method::POST,
            "/v1/workflows",
            Some(caller(&draft, json!({}))),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let parent = body["id"].as_str().unwrap().to_owned();
    let (status, body) = engine
        .request(
            Method::POST,
            &format!("/v1/workflows/{parent}/publish"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.to_string().contains("not_published"), "{body}");

    // a → b published; then b calling a is a cycle, refused at b's publish.
    let b = engine.deploy(doubler()).await;
    let a = engine.deploy(caller(&b, json!({}))).await;
    let (status, body) = save_and_publish(&engine, &b, caller(&a, json!({}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let details = body["error"]["details"].to_string();
    assert!(details.contains("call_cycle"), "{body}");
    assert!(details.contains("nodes[1].config.workflow"), "{body}");
    // A workflow calling itself is one too.
    let (status, body) = save_and_publish(&engine, &b, caller(&b, json!({}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.to_string().contains("call_cycle"), "{body}");
}
both_modes!(
    calls_to_unknown_unpublished_or_cyclic_workflows_are_refused_at_their_paths,
    bad_calls_are_refused
);

/// Calls nest at most 8 deep: a chain of nine workflows fails at the
/// ninth call with a message saying so.
async fn depth_is_bounded(mode: Mode) {
    let engine = Engine::start(mode).await;
    let mut next = engine.deploy(doubler()).await;
    for _ in 0..9 {
        next = engine.deploy(caller(&next, json!({}))).await;
    }
    let id = engine.start_execution(&next, json!({"n": 1})).await;
    let done = eventually("the chain ends", Duration::from_secs(60), || async {
        let e = engine.execution(&id).await;
        (e["status"] != "queued" && e["status"] != "running").then_some(e)
    })
    .await;
    assert_eq!(done["status"], "failed", "{done:#}");
    let error = done["error"].as_str().unwrap_or_default();
    assert!(error.contains("at most 8 deep"), "{error}");
}
both_modes!(calls_nest_at_most_eight_deep, depth_is_bounded);

/// An engine killed while a parent waits for its child: after the restart
/// the child is resumed and the parent ends with its output, and the call
/// started exactly one child.
async fn crash_while_waiting(mode: Mode) {
    let mut engine = Engine::start_with(mode, &[("FLOWMESH_PARK_AFTER", "1s")]).await;
    let child = engine.deploy(waiting_child()).await;
    let parent = engine.deploy(caller(&child, json!({}))).await;
    let id = engine.start_execution(&parent, json!({"n": 1})).await;
    let child_run = child_id(&waiting_call(&engine, &id).await);
    engine.kill_and_restart().await;
    child_waits(&engine, &child_run).await;
    resume(&engine, &child_run, json!({"ok": true, "by": "ada"})).await;
    let done = engine.finished(&id).await;
    assert_eq!(done["status"], "succeeded", "{done:#}");
    assert_eq!(node(&done, "call")["output"]["output"]["by"], "ada");
    let (_, list) = engine
        .get(&format!("/v1/executions?workflow_id={child}"))
        .await;
    let children = list["items"].as_array().map(Vec::len).unwrap_or_default();
    assert_eq!(children, 1, "{list:#}");
}
both_modes!(
    a_crash_while_a_parent_waits_starts_no_second_child,
    crash_while_waiting
);

/// A child needs credits like any execution: a loop of calls stops when
/// the tenant's run out, with a message saying so, instead of creating
/// children the tenant cannot pay for.
async fn children_need_credits(mode: Mode) {
    let engine = Engine::start_with(mode, &[("FLOWMESH_INITIAL_CREDITS", "20")]).await;
    let owner = engine.create_tenant("Thrifty").await;
    let child = engine.deploy_as(&owner, doubler()).await;
    let parent = engine
        .deploy_as(
            &owner,
            json!({"name": "fan out", "nodes": [
                {"id": "start", "type": "trigger", "kind": "manual"},
                {"id": "each", "type": "action", "kind": "for_each", "config": {
                    "items": "trigger.body.items",
                    "body": {"nodes": [
                        {"id": "call", "type": "action", "kind": "call_workflow",
                         "config": {"workflow": child, "input": {"n": "{{ item }}", "note": "fan"}}}
                    ]}}}
            ], "edges": [{"from": "start", "to": "each"}]}),
        )
        .await;
    let items: Vec<u32> = (0..40).collect();
    let id = engine
        .start_execution_as(&owner, &parent, json!({"items": items}))
        .await;
    let done = eventually("the fan-out ends", Duration::from_secs(60), || async {
        let (_, e) = engine
            .request_as(&owner, Method::GET, &format!("/v1/executions/{id}"), None)
            .await;
        (e["status"] != "queued" && e["status"] != "running").then_some(e)
    })
    .await;
    assert_eq!(done["status"], "failed", "{done:#}");
    let error = done["error"].as_str().unwrap_or_default();
    assert!(error.contains("no credits left"), "{error}");
    let (_, children) = engine
        .request_as(
            &owner,
            Method::GET,
            &format!("/v1/executions?workflow_id={child}&limit=100"),
            None,
        )
        .await;
    let started = children["items"].as_array().map(Vec::len).unwrap_or(99);
    assert!(started < 20, "20 credits paid for {started} children");
}
both_modes!(
    a_loop_of_calls_stops_when_the_tenants_credits_run_out,
    children_need_credits
);

/// A call whose workflow was taken out of service after the caller was
/// published fails its node at run time, saying why.
async fn unpublished_since(mode: Mode) {
    let engine = Engine::start(mode).await;
    let child = engine.deploy(doubler()).await;
    let parent = engine.deploy(caller(&child, json!({}))).await;
    let (status, body) = engine
        .request(
            Method::POST,
            &format!("/v1/workflows/{child}/unpublish"),
            Some(json!({})),
        )
        .await;
    assert!(status.is_success(), "{body}");
    let id = engine.start_execution(&parent, json!({"n": 1})).await;
    let done = engine.finished(&id).await;
    assert_eq!(done["status"], "failed", "{done:#}");
    let error = node(&done, "call")["error"].as_str().unwrap_or_default();
    assert!(error.contains("has no published version"), "{error}");
}
both_modes!(
    a_call_to_a_workflow_unpublished_since_fails_its_node_saying_why,
    unpublished_since
);
