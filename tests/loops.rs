//! `for_each`: a body of nodes run once per item, its steps keyed by their
//! iteration, its output in input order; concurrency, bounds and item
//! failures; nested loops; and a loop resumed after the engine was killed
//! in the middle of it.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::stub::StubServer;
use common::{Engine, Mode, eventually, node};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// `start → each` over `items`, with this body and config besides.
fn looped(items: &str, body: Value, config: Value) -> Value {
    let mut config = config;
    config["items"] = json!(items);
    config["body"] = body;
    json!({"name": "loop", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "each", "type": "action", "kind": "for_each", "config": config}
    ], "edges": [{"from": "start", "to": "each"}]})
}

/// A body of one call to the stub per item.
fn calls(stub: &StubServer, path: &str) -> Value {
    json!({"nodes": [{"id": "call", "type": "action", "kind": "http_request",
        "config": {"method": "POST", "url": stub.url(path), "body": {"index": "{{ index }}", "item": "{{ item }}"}}}]})
}

/// Steps of the execution whose key starts with `prefix`.
fn steps<'a>(done: &'a Value, prefix: &str) -> Vec<&'a Value> {
    done["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| n["node"].as_str().is_some_and(|k| k.starts_with(prefix)))
        .collect()
}

/// Runs `workflow` on `input`, which must fail at `at`: the execution,
/// and that node's error.
async fn failed(engine: &Engine, workflow: &str, input: Value, at: &str) -> (Value, String) {
    let id = engine.start_execution(workflow, input).await;
    let done = engine.finished(&id).await;
    assert_eq!(done["status"], "failed", "{done}");
    let error = node(&done, at)["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (done, error)
}

async fn pure_body(mode: Mode) {
    let engine = Engine::start(mode).await;
    let body = json!({"nodes": [
        {"id": "double", "type": "data", "kind": "mapping",
         "config": {"mapping": {"id": "{{ item.id }}", "total": "{{ item.total * 2 }}"}}},
        {"id": "label", "type": "data", "kind": "mapping",
         "config": {"mapping": {"text": "#{{ index }} {{ double.id }} of {{ trigger.body.shop }}"}}}
    ], "edges": [{"from": "double", "to": "label"}]});
    let config = json!({"result": "{'total': double.total, 'label': label.text}"});
    let workflow = engine
        .deploy(looped("trigger.body.orders", body, config))
        .await;
    let orders = json!([{"id": "a", "total": 1}, {"id": "b", "total": 5}, {"id": "c", "total": 7}]);
    let id = engine
        .start_execution(&workflow, json!({"shop": "s1", "orders": orders}))
        .await;
    let done = engine.finished(&id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        done["output"],
        json!({
            "results": [
                {"total": 2, "label": "#0 a of s1"},
                {"total": 10, "label": "#1 b of s1"},
                {"total": 14, "label": "#2 c of s1"}
            ],
            "failures": [], "count": 3, "succeeded": 3, "failed": 0
        })
    );
    // Each iteration's steps are addressed by their scope.
    assert_eq!(steps(&done, "each[").len(), 6, "{done}");
    assert_eq!(
        node(&done, "each[1].double")["output"],
        json!({"id": "b", "total": 10})
    );
    assert_eq!(node(&done, "each")["status"], "succeeded");
    let (status, logs) = engine.get(&format!("/v1/executions/{id}/logs")).await;
    assert_eq!(status, StatusCode::OK, "{logs}");
    let label = logs["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|n| n["node"] == "each[2].label"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(label["status"], "succeeded", "{logs}");
    assert_eq!(label["kind"], "mapping", "{label}");
    let events = engine.events_text(&id).await;
    assert!(events.contains("each[0].label"), "{events}");
}
both_modes!(a_pure_body_runs_per_item_in_input_order, pure_body);

async fn concurrency(mode: Mode) {
    let stub = StubServer::start().await;
    let engine = Engine::start(mode).await;
    let workflow = engine
        .deploy(looped(
            "trigger.body",
            calls(&stub, "/slow/150"),
            json!({"concurrency": 2, "result": "call.status"}),
        ))
        .await;
    let id = engine
        .start_execution(&workflow, json!([1, 2, 3, 4, 5, 6]))
        .await;
    let done = engine.finished(&id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        done["output"]["results"],
        json!([200, 200, 200, 200, 200, 200])
    );
    // Never more than two calls at once, by the steps' times.
    let spans: Vec<(i64, i64)> = steps(&done, "each[")
        .iter()
        .map(|s| {
            (
                s["started_at"].as_i64().unwrap(),
                s["finished_at"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(spans.len(), 6);
    let most = spans
        .iter()
        .map(|&(start, _)| {
            spans
                .iter()
                .filter(|&&(s, f)| s <= start && start < f)
                .count()
        })
        .max();
    assert_eq!(most, Some(2), "{spans:?}");
    assert_eq!(stub.hits("/slow").len(), 6);
}
both_modes!(concurrency_is_never_exceeded, concurrency);

async fn bad_items(mode: Mode) {
    let stub = StubServer::start().await;
    let engine = Engine::start(mode).await;
    let bounded = engine
        .deploy(looped(
            "trigger.body",
            calls(&stub, "/ok/x"),
            json!({"max_items": 3}),
        ))
        .await;
    let (done, error) = failed(&engine, &bounded, json!([1, 2, 3, 4]), "each").await;
    assert!(
        error.contains("gave 4 items, over max_items (3)"),
        "{error}"
    );
    assert!(steps(&done, "each[").is_empty(), "no item ran: {done}");
    assert!(stub.hits("/ok").is_empty());

    let (_, error) = failed(&engine, &bounded, json!({"not": "a list"}), "each").await;
    assert!(error.contains("must give an array"), "{error}");
}
both_modes!(
    too_many_items_or_not_a_list_fail_the_node_before_any_item,
    bad_items
);

/// Nested loops multiply: one execution holds at most 20,000 steps, so a
/// loop whose iterations would pass that fails before any of them runs.
async fn too_many_steps(mode: Mode) {
    let engine = Engine::start(mode).await;
    let chain: Vec<Value> = (0..5)
        .map(|n| json!({"id": format!("m{n}"), "type": "data", "kind": "mapping", "config": {"mapping": {"n": n}}}))
        .collect();
    let edges: Vec<Value> = (1..5)
        .map(|n| json!({"from": format!("m{}", n - 1), "to": format!("m{n}")}))
        .collect();
    let workflow = engine
        .deploy(looped(
            "trigger.body",
            json!({"nodes": chain, "edges": edges}),
            json!({"max_items": 10_000}),
        ))
        .await;
    let items: Vec<u32> = (0..5_000).collect();
    let (done, error) = failed(&engine, &workflow, json!(items), "each").await;
    assert!(
        error.contains("25002 steps, over the 20000 one execution may hold"),
        "{error}"
    );
    assert!(error.starts_with("loop_exhausted"), "{error}");
    assert!(steps(&done, "each[").is_empty(), "no item ran: {done}");
}
both_modes!(
    a_loop_past_the_steps_one_execution_may_hold_fails_first,
    too_many_steps
);

async fn out_of_scope(mode: Mode) {
    let engine = Engine::start(mode).await;
    let (status, body) = engine
        .post("/v1/workflows", json!({"name": "bad", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "each", "type": "action", "kind": "for_each", "config": {
                "items": "trigger.body",
                "body": {"nodes": [{"id": "x", "type": "data", "kind": "mapping",
                    "config": {"mapping": {"later": "{{ after.value }}", "ok": "{{ item }}"}}}]}}},
            {"id": "after", "type": "data", "kind": "mapping", "config": {"mapping": {"value": "{{ each.count }}"}}},
            {"id": "other", "type": "action", "kind": "for_each", "config": {
                "items": "trigger.body",
                "body": {"nodes": [{"id": "y", "type": "data", "kind": "mapping",
                    "config": {"mapping": {"theirs": "{{ x.later }}"}}}]}}}
        ], "edges": [{"from": "start", "to": "each"}, {"from": "each", "to": "after"},
                     {"from": "start", "to": "other"}]}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let paths: Vec<&str> = body["error"]["details"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .filter_map(|d| d["path"].as_str())
        .collect();
    assert_eq!(
        paths,
        [
            "nodes[1].config.body.nodes[0].config.mapping.later",
            "nodes[3].config.body.nodes[0].config.mapping.theirs"
        ],
        "{body}"
    );
}
both_modes!(
    a_body_reading_outside_its_scope_is_refused_at_its_path,
    out_of_scope
);

async fn item_errors(mode: Mode) {
    let stub = StubServer::start().await;
    let engine = Engine::start(mode).await;
    let body = json!({"nodes": [{"id": "call", "type": "action", "kind": "http_request",
        "config": {"url": "{{ item }}"}}]});
    let items = json!([
        stub.url("/ok/a"),
        stub.url("/status/404"),
        stub.url("/ok/c")
    ]);
    let continuing = engine
        .deploy(looped(
            "trigger.body",
            body.clone(),
            json!({"on_item_error": "continue", "result": "call.body.name"}),
        ))
        .await;
    let id = engine.start_execution(&continuing, items.clone()).await;
    let done = engine.finished(&id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let output = &done["output"];
    assert_eq!(output["results"], json!(["a", null, "c"]), "{output}");
    assert_eq!(output["failures"][0]["index"], 1, "{output}");
    let error = output["failures"][0]["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("node call failed: permanent:") && error.contains("404"),
        "{error}"
    );
    assert_eq!(
        (output["count"].clone(), output["failed"].clone()),
        (json!(3), json!(1))
    );

    let failing = engine.deploy(looped("trigger.body", body, json!({}))).await;
    let id = engine.start_execution(&failing, items).await;
    let done = engine.finished(&id).await;
    assert_eq!(done["status"], "failed", "{done}");
    let error = done["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("each failed: permanent: item 1 failed: node call failed"),
        "{error}"
    );
    assert!(
        steps(&done, "each[2]").is_empty(),
        "no item starts after a failure: {done}"
    );
}
both_modes!(item_failures_fail_the_loop_or_are_listed, item_errors);

async fn nested(mode: Mode) {
    let engine = Engine::start(mode).await;
    let inner = json!({"id": "inner", "type": "action", "kind": "for_each", "config": {
        "items": "item.cells", "concurrency": 2,
        "result": "cell.value",
        "body": {"nodes": [{"id": "cell", "type": "data", "kind": "mapping",
            "config": {"mapping": {"value": "{{ trigger.body.name }}:{{ row.label }}:{{ index }}={{ item }}"}}}]}}});
    let body = json!({"nodes": [
        {"id": "row", "type": "data", "kind": "mapping", "config": {"mapping": {"label": "r{{ index }}"}}},
        inner
    ], "edges": [{"from": "row", "to": "inner"}]});
    let workflow = engine
        .deploy(looped(
            "trigger.body.rows",
            body,
            json!({"result": "inner.results"}),
        ))
        .await;
    let rows: Vec<Value> = (0..3)
        .map(|r| json!({"cells": (0..4).map(|c| r * 10 + c).collect::<Vec<_>>()}))
        .collect();
    let id = engine
        .start_execution(&workflow, json!({"name": "grid", "rows": rows}))
        .await;
    let done = engine.finished(&id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let expected: Vec<Vec<String>> = (0..3)
        .map(|r| {
            (0..4)
                .map(|c| format!("grid:r{r}:{c}={}", r * 10 + c))
                .collect()
        })
        .collect();
    assert_eq!(done["output"]["results"], json!(expected));
    let cells = steps(&done, "each[");
    let cells: Vec<&&Value> = cells
        .iter()
        .filter(|s| s["node"].as_str().is_some_and(|k| k.ends_with(".cell")))
        .collect();
    assert_eq!(cells.len(), 12, "{done}");
    assert!(cells.iter().all(|s| s["status"] == "succeeded"));
    assert_eq!(
        node(&done, "each[2].inner[3].cell")["output"],
        json!({"value": "grid:r2:3=23"})
    );
}
both_modes!(an_inner_loop_runs_whole_for_every_outer_item, nested);

/// What a loop of six calls gives, killed (or not) after its third call.
async fn six_calls(mode: Mode, kill: bool) -> (Value, BTreeMap<String, Vec<Value>>) {
    let stub = StubServer::start().await;
    let armed = "engine::attempt::returned=3*off->1*return";
    let env: &[(&str, &str)] = if kill { &[("FAILPOINTS", armed)] } else { &[] };
    let mut engine = Engine::start_with(mode, env).await;
    let workflow = engine
        .deploy(looped(
            "trigger.body",
            calls(&stub, "/ok/charge"),
            json!({"concurrency": 2, "result": "call.body.received"}),
        ))
        .await;
    let id = engine
        .start_execution(&workflow, json!(["a", "b", "c", "d", "e", "f"]))
        .await;
    if kill {
        engine.exited().await;
        engine.restart_without("FAILPOINTS").await;
    }
    let done = eventually("the loop ends", Duration::from_secs(60), || async {
        let e = engine.execution(&id).await;
        (!matches!(e["status"].as_str(), Some("queued" | "running"))).then_some(e)
    })
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let mut effects: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for hit in stub.hits("/ok/charge") {
        let key = hit.idempotency_key.unwrap_or_default();
        effects
            .entry(key.replacen(&id, "{execution}", 1))
            .or_default()
            .push(hit.body);
    }
    (done["output"].clone(), effects)
}

async fn resume(mode: Mode) {
    let (clean, _) = six_calls(mode, false).await;
    let (resumed, effects) = six_calls(mode, true).await;
    assert_eq!(resumed, clean);
    let keys: Vec<String> = (0..6)
        .map(|k| format!("{{execution}}:each[{k}]:call"))
        .collect();
    assert_eq!(
        effects.keys().cloned().collect::<Vec<_>>(),
        keys,
        "{effects:?}"
    );
    for (key, bodies) in &effects {
        // A call the kill cut off before it was journaled is sent again
        // under its key, with the same body.
        assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{key}: {bodies:?}");
    }
    let repeated = effects.values().filter(|b| b.len() > 1).count();
    assert!(
        repeated <= 2,
        "only calls in flight at the kill repeat: {effects:?}"
    );
}
both_modes!(a_loop_killed_midway_resumes_only_unfinished_items, resume);

async fn listed(mode: Mode) {
    let engine = Engine::start(mode).await;
    let (status, kinds) = engine.get("/v1/node-kinds").await;
    assert_eq!(status, StatusCode::OK);
    let listed = kinds["items"]
        .as_array()
        .and_then(|k| k.iter().find(|k| k["kind"] == "for_each"))
        .cloned()
        .unwrap_or_else(|| panic!("for_each is not listed: {kinds}"));
    assert_eq!(listed["type"], "action");
    let schema = &listed["config_schema"];
    assert_eq!(
        schema["properties"]["items"]["x-flowmesh-field"],
        "expression"
    );
    assert!(
        schema["required"]
            .as_array()
            .is_some_and(|r| r.contains(&json!("body"))),
        "{schema}"
    );
    assert_eq!(listed["example"]["body"]["nodes"][0]["id"], "charge");
}
both_modes!(node_kinds_list_for_each, listed);

async fn output_cap(mode: Mode) {
    let engine = Engine::start(mode).await;
    let cap = json!({"max_output_bytes": 300000});
    let (status, body) = engine
        .request(reqwest::Method::PUT, "/v1/settings", Some(cap))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let body = json!({"nodes": [{"id": "pad", "type": "data", "kind": "mapping",
        "config": {"mapping": {"text": "{{ 'x' * 100000 }}"}}}]});
    let whole = engine
        .deploy(looped("trigger.body", body.clone(), json!({})))
        .await;
    let (done, error) = failed(&engine, &whole, json!([1, 2, 3, 4]), "each").await;
    assert!(error.starts_with("output_too_large:"), "{error}");
    let ran = steps(&done, "each[");
    assert_eq!(ran.len(), 4, "the items ran first: {done}");
    assert!(ran.iter().all(|s| s["status"] == "succeeded"));

    let small = engine
        .deploy(looped(
            "trigger.body",
            body,
            json!({"result": "pad.text | length"}),
        ))
        .await;
    let id = engine.start_execution(&small, json!([1, 2, 3, 4])).await;
    let done = engine.finished(&id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        done["output"]["results"],
        json!([100000, 100000, 100000, 100000])
    );

    // Items over the cap are refused as the list is read, before any runs:
    // they would be journaled with the loop's step.
    let long = "x".repeat(100_000);
    let (done, error) = failed(&engine, &small, json!([long, long, long, long]), "each").await;
    assert!(error.starts_with("output_too_large:"), "{error}");
    assert!(steps(&done, "each[").is_empty(), "no item ran: {done}");
}
both_modes!(
    results_over_the_output_cap_fail_the_loop_after_its_items,
    output_cap
);

/// `start → w`, a `while` with this body and config besides.
fn repeated(body: Value, config: Value) -> Value {
    let mut config = config;
    config["body"] = body;
    json!({"name": "while", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "w", "type": "action", "kind": "while", "config": config}
    ], "edges": [{"from": "start", "to": "w"}]})
}

async fn while_loops(mode: Mode) {
    let stub = StubServer::start().await;
    let engine = Engine::start(mode).await;
    let body = json!({"nodes": [{"id": "step", "type": "data", "kind": "mapping",
        "config": {"mapping": {"add": "{{ state.n + trigger.body.by }}", "at": "{{ index }}"}}}]});
    let summing = engine
        .deploy(repeated(
            body.clone(),
            json!({
                "state": "{'n': 0, 'sum': 0}",
                "next_state": "{'n': state.n + 1, 'sum': state.sum + step.add}",
                "until": "state.n >= 4",
                "max_iterations": 10
            }),
        ))
        .await;
    let id = engine.start_execution(&summing, json!({"by": 1})).await;
    let done = engine.finished(&id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        done["output"],
        json!({"state": {"n": 4, "sum": 10}, "iterations": 4})
    );
    assert_eq!(steps(&done, "w[").len(), 4, "{done}");
    assert_eq!(
        node(&done, "w[3].step")["output"],
        json!({"add": 4, "at": 3})
    );

    let endless = engine
        .deploy(repeated(
            body,
            json!({
                "state": "{'n': 0}", "next_state": "{'n': state.n + 1}",
                "until": "false", "max_iterations": 3
            }),
        ))
        .await;
    let (done, error) = failed(&engine, &endless, json!({"by": 1}), "w").await;
    assert!(
        error.starts_with("loop_exhausted: `until` did not hold after max_iterations (3)"),
        "{error}"
    );
    assert_eq!(steps(&done, "w[").len(), 3, "{done}");

    let slow_call = json!({"nodes": [{"id": "call", "type": "action", "kind": "http_request",
        "config": {"url": stub.url("/slow/100"), "query": {"n": "{{ state }}"}}}]});
    let slow = engine
        .deploy(repeated(
            slow_call,
            json!({
                "state": "0", "next_state": "state + 1", "until": "false",
                "max_iterations": 10000, "max_duration": "300ms"
            }),
        ))
        .await;
    let (done, error) = failed(&engine, &slow, json!({}), "w").await;
    assert!(
        error.starts_with("loop_exhausted: `until` did not hold within max_duration (300ms)"),
        "{error}"
    );
    let ran = steps(&done, "w[").len();
    assert!(
        (3..=5).contains(&ran),
        "{ran} iterations of 100 ms in 300 ms: {done}"
    );
}
both_modes!(
    a_while_repeats_until_its_condition_or_fails_exhausted,
    while_loops
);

async fn unbounded_while(mode: Mode) {
    let engine = Engine::start(mode).await;
    let (status, body) = engine
        .post(
            "/v1/workflows",
            repeated(
                json!({"nodes": [{"id": "step", "type": "data", "kind": "mapping",
                "config": {"mapping": {"n": "{{ state }}"}}}]}),
                json!({"state": "0", "next_state": "state + 1", "until": "state > 3"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let details = body["error"]["details"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(details.len(), 1, "{body}");
    assert_eq!(
        details[0]["path"], "nodes[1].config.max_iterations",
        "{body}"
    );
}
both_modes!(
    a_while_without_max_iterations_is_refused_at_its_path,
    unbounded_while
);
