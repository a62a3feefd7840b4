//! Workflow semantics, end to end through the HTTP API, in both modes.

mod common;

use common::stub::StubServer;
use common::{Engine, Mode, node};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The example of the README, exactly as written there.
pub fn signup_workflow() -> Value {
    serde_json::from_str(include_str!("../docs/examples/signup.json")).expect("example parses")
}

async fn readme_example(mode: Mode) {
    let engine = Engine::start(mode).await;
    engine.deploy(signup_workflow()).await;
    let hook = engine.url("/hooks/default/signup");
    let welcome = engine
        .client()
        .post(&hook)
        .json(&json!({"email": "ada@example.com", "name": "Ada"}))
        .send()
        .await
        .unwrap();
    assert_eq!(welcome.status(), StatusCode::OK);
    assert_eq!(
        welcome.json::<Value>().await.unwrap(),
        json!({"welcome": "ADA"})
    );
    let reject = engine
        .client()
        .post(&hook)
        .json(&json!({"email": "bob@other.org", "name": "Bob"}))
        .send()
        .await
        .unwrap();
    assert_eq!(reject.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        reject.json::<Value>().await.unwrap(),
        json!({"error": "unknown domain bob@other.org"})
    );
}
both_modes!(readme_example_answers_through_the_webhook, readme_example);

async fn parallel_branches_merge(mode: Mode) {
    let stub = StubServer::start().await;
    let engine = Engine::start(mode).await;
    let workflow = engine
        .deploy(json!({"name": "fan", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "left", "type": "action", "kind": "http_request", "config": {"method": "POST", "url": stub.url("/ok/left"), "body": {"n": "{{ trigger.body.n }}"}}},
            {"id": "right", "type": "action", "kind": "http_request", "config": {"method": "POST", "url": stub.url("/ok/right"), "body": {"n": "{{ trigger.body.n }}"}}},
            {"id": "both", "type": "data", "kind": "merge"}
        ], "edges": [
            {"from": "start", "to": "left"}, {"from": "start", "to": "right"},
            {"from": "left", "to": "both"}, {"from": "right", "to": "both"}
        ]}))
        .await;
    let id = engine.start_execution(&workflow, json!({"n": 7})).await;
    let done = engine.finished(&id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["output"]["left"]["body"]["received"], json!({"n": 7}));
    assert_eq!(done["output"]["right"]["body"]["received"], json!({"n": 7}));
    assert_eq!(stub.hits("/ok/").len(), 2);
}
both_modes!(parallel_branches_run_and_merge, parallel_branches_merge);

async fn switch_and_filter(mode: Mode) {
    let engine = Engine::start(mode).await;
    let workflow = engine
        .deploy(json!({"name": "route", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "route", "type": "condition", "kind": "switch", "config": {"value": "trigger.body.kind", "cases": [
                {"name": "order", "equals": "order"}, {"name": "refund", "equals": "refund"}]}},
            {"id": "big", "type": "condition", "kind": "filter", "config": {"items": "trigger.body.items", "condition": "item.amount > 10"}},
            {"id": "refunded", "type": "data", "kind": "mapping", "config": {"mapping": {"refund": true}}},
            {"id": "other", "type": "data", "kind": "mapping", "config": {"mapping": {"other": "{{ trigger.body.kind }}"}}}
        ], "edges": [
            {"from": "start", "to": "route"},
            {"from": "route", "to": "big", "when": "order"},
            {"from": "route", "to": "refunded", "when": "refund"},
            {"from": "route", "to": "other", "when": "default"}
        ]}))
        .await;
    let order = engine
        .start_execution(
            &workflow,
            json!({"kind": "order", "items": [{"amount": 5}, {"amount": 50}, {"amount": 11}]}),
        )
        .await;
    let done = engine.finished(&order).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["output"], json!([{"amount": 50}, {"amount": 11}]));
    assert_eq!(node(&done, "refunded")["status"], "skipped");
    assert_eq!(node(&done, "other")["status"], "skipped");

    let unknown = engine
        .start_execution(&workflow, json!({"kind": "question"}))
        .await;
    let done = engine.finished(&unknown).await;
    assert_eq!(done["output"], json!({"other": "question"}));
    assert_eq!(node(&done, "big")["status"], "skipped");
}
both_modes!(switch_routes_and_filter_keeps_matches, switch_and_filter);

async fn retries(mode: Mode) {
    let stub = StubServer::start().await;
    let engine = Engine::start(mode).await;
    let workflow = engine
        .deploy(json!({"name": "flaky", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "call", "type": "action", "kind": "http_request",
             "config": {"url": stub.url("/flaky/a/2")},
             "retry": {"max_attempts": 4, "initial_backoff": "10ms", "max_backoff": "50ms", "multiplier": 2.0, "jitter": false}}
        ], "edges": [{"from": "start", "to": "call"}]}))
        .await;
    let id = engine.start_execution(&workflow, json!({})).await;
    let done = engine.finished(&id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(node(&done, "call")["attempts"], 3);
    let hits = stub.hits("/flaky/a");
    assert_eq!(hits.len(), 3);
    // Every attempt carries the same idempotency key, so the receiver can deduplicate.
    let key = hits[0].idempotency_key.clone().expect("idempotency key");
    assert!(
        hits.iter()
            .all(|h| h.idempotency_key.as_deref() == Some(key.as_str()))
    );
}
both_modes!(transient_failures_are_retried, retries);

async fn permanent_failure(mode: Mode) {
    let stub = StubServer::start().await;
    let engine = Engine::start(mode).await;
    let workflow = engine
        .deploy(json!({"name": "missing", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "call", "type": "action", "kind": "http_request", "config": {"url": stub.url("/status/404")}},
            {"id": "after", "type": "data", "kind": "mapping", "config": {"mapping": {"x": 1}}}
        ], "edges": [{"from": "start", "to": "call"}, {"from": "call", "to": "after"}]}))
        .await;
    let id = engine.start_execution(&workflow, json!({})).await;
    let done = engine.finished(&id).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(node(&done, "call")["status"], "failed");
    assert_eq!(node(&done, "call")["attempts"], 1, "a 404 is not retried");
    assert_eq!(node(&done, "after")["status"], "skipped");
    assert_eq!(stub.hits("/status/404").len(), 1);
}
both_modes!(permanent_failures_fail_the_execution, permanent_failure);

async fn node_timeout(mode: Mode) {
    let stub = StubServer::start().await;
    let engine = Engine::start(mode).await;
    let workflow = engine
        .deploy(json!({"name": "slow", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "call", "type": "action", "kind": "http_request", "config": {"url": stub.url("/slow/5000")},
             "timeout": "200ms", "retry": {"max_attempts": 2, "initial_backoff": "10ms"}}
        ], "edges": [{"from": "start", "to": "call"}]}))
        .await;
    let id = engine.start_execution(&workflow, json!({})).await;
    let done = engine.finished(&id).await;
    assert_eq!(done["status"], "failed");
    let call = node(&done, "call");
    assert_eq!(
        call["attempts"], 2,
        "timeouts are retried by policy: {call}"
    );
    assert!(
        call["error"].as_str().unwrap().starts_with("timeout"),
        "{call}"
    );
}
both_modes!(node_timeouts_fail_attempts, node_timeout);

async fn execution_timeout(mode: Mode) {
    let engine = Engine::start(mode).await;
    let workflow = engine
        .deploy(
            json!({"name": "late", "settings": {"timeout": "300ms"}, "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "pause", "type": "action", "kind": "wait", "config": {"duration": "1h"}}
        ], "edges": [{"from": "start", "to": "pause"}]}),
        )
        .await;
    let id = engine.start_execution(&workflow, json!({})).await;
    let done = engine.finished(&id).await;
    assert_eq!(done["status"], "timed_out", "{done}");
    assert_eq!(node(&done, "pause")["status"], "failed");
}
both_modes!(executions_time_out, execution_timeout);

async fn cancellation(mode: Mode) {
    let engine = Engine::start(mode).await;
    let workflow = engine
        .deploy(json!({"name": "long", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "pause", "type": "action", "kind": "wait", "config": {"duration": "1h"}},
            {"id": "after", "type": "data", "kind": "mapping", "config": {"mapping": {"x": 1}}}
        ], "edges": [{"from": "start", "to": "pause"}, {"from": "pause", "to": "after"}]}))
        .await;
    let id = engine.start_execution(&workflow, json!({})).await;
    common::eventually("waiting", std::time::Duration::from_secs(20), || async {
        let e = engine.execution(&id).await;
        (node(&e, "pause")["wake_at"].is_number()).then_some(())
    })
    .await;
    let (status, body) = engine
        .post(&format!("/v1/executions/{id}/cancel"), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let done = engine.finished(&id).await;
    assert_eq!(done["status"], "cancelled");
    assert_eq!(node(&done, "pause")["status"], "cancelled", "{done:#}");
    assert_eq!(node(&done, "pause")["error"], Value::Null, "{done:#}");
    assert_eq!(node(&done, "after")["status"], "skipped");
    let (status, body) = engine
        .post(&format!("/v1/executions/{id}/cancel"), json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "already_finished");
}
both_modes!(cancellation_stops_a_running_execution, cancellation);

async fn sync_start(mode: Mode) {
    let engine = Engine::start(mode).await;
    let workflow = engine
        .deploy(json!({"name": "echo", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "shape", "type": "data", "kind": "mapping", "config": {"mapping": {"double": "{{ trigger.body.n * 2 }}"}}}
        ], "edges": [{"from": "start", "to": "shape"}]}))
        .await;
    let (status, body) = engine
        .post(
            &format!("/v1/workflows/{workflow}/executions?wait=true"),
            json!({"n": 21}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "succeeded");
    assert_eq!(body["output"], json!({"double": 42}));
}
both_modes!(wait_true_returns_the_result, sync_start);

async fn events_stream(mode: Mode) {
    let engine = Engine::start(mode).await;
    let workflow = engine
        .deploy(json!({"name": "sse", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "pause", "type": "action", "kind": "wait", "config": {"duration": "300ms"}},
            {"id": "shape", "type": "data", "kind": "mapping", "config": {"mapping": {"ok": true}}}
        ], "edges": [{"from": "start", "to": "pause"}, {"from": "pause", "to": "shape"}]}))
        .await;
    let id = engine.start_execution(&workflow, json!({})).await;
    // The stream closes by itself once the execution finishes.
    let text = engine.events_text(&id).await;
    let kinds: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(kinds.last(), Some(&"execution_finished"), "{text}");
    for expected in ["node_started", "node_succeeded"] {
        assert!(
            kinds.contains(&expected),
            "{expected} missing from {kinds:?}"
        );
    }
    // After the end, the stream is told from the journal.
    let again = engine.events_text(&id).await;
    assert!(again.contains("event: execution_finished"), "{again}");
}
both_modes!(events_stream_until_the_execution_finishes, events_stream);

async fn secrets_stay_secret(mode: Mode) {
    let stub = StubServer::start().await;
    let secret = "sk-live-0123456789abcdef";
    let engine = Engine::start(mode).await;
    engine.put_secret("api_token", secret).await;
    let workflow = engine.deploy(common::secret_workflow(&stub)).await;
    let id = engine.start_execution(&workflow, json!({})).await;
    let done = engine.finished(&id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let hits = stub.hits("/ok/secret");
    assert_eq!(
        hits[0].authorization.as_deref(),
        Some(format!("Bearer {secret}").as_str()),
        "the action got the secret"
    );
    assert!(
        !done.to_string().contains(secret),
        "the journal never holds the secret"
    );
    let events = engine.events_text(&id).await;
    assert!(!events.contains(secret), "events never hold the secret");
    let (_, workflow_json) = engine.get(&format!("/v1/workflows/{workflow}")).await;
    assert!(!workflow_json.to_string().contains(secret));
}
both_modes!(
    secrets_reach_actions_but_never_the_journal_or_events,
    secrets_stay_secret
);

async fn typo_fails_the_run(mode: Mode) {
    let engine = Engine::start(mode).await;
    let workflow = engine
        .deploy(json!({"name": "typo", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "greet", "type": "data", "kind": "mapping", "config": {"mapping": {
                "to": "{{ trigger.body.emial }}", "text": "Hello {{ trigger.body.name }}!"}}}
        ], "edges": [{"from": "start", "to": "greet"}]}))
        .await;
    let id = engine
        .start_execution(
            &workflow,
            json!({"email": "ada@example.com", "name": "Ada"}),
        )
        .await;
    let done = engine.finished(&id).await;
    assert_eq!(done["status"], "failed", "{done}");
    let error = node(&done, "greet")["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("trigger.body has no field \"emial\"; it has: email, name"),
        "{done}"
    );
}
both_modes!(
    a_typo_in_a_template_fails_the_run_naming_the_field,
    typo_fails_the_run
);

/// Optional fields are read with `default`, `is defined` or a truth test;
/// on the other branch a misspelt field fails the run.
async fn optional_fields(mode: Mode) {
    let engine = Engine::start(mode).await;
    let workflow = engine
        .deploy(json!({"name": "optional", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "has_phone", "type": "condition", "kind": "if_else", "config": {"logic": "trigger.body.phone"}},
            {"id": "shape", "type": "data", "kind": "mapping", "config": {"mapping": {
                "phone": "{{ trigger.body.phone | default(none) }}",
                "name": "{{ trigger.body.name | default('there') }}",
                "known": "{{ trigger.body.phone is defined }}",
                "text": "Hi{% if trigger.body.name %} {{ trigger.body.name }}{% endif %}!"}}},
            {"id": "call", "type": "data", "kind": "mapping", "config": {"mapping": {
                "number": "{{ trigger.body.phone.nubmer }}"}}}
        ], "edges": [
            {"from": "start", "to": "has_phone"},
            {"from": "has_phone", "to": "shape", "when": "false"},
            {"from": "has_phone", "to": "call", "when": "true"}
        ]}))
        .await;
    let id = engine.start_execution(&workflow, json!({})).await;
    let done = engine.finished(&id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        done["output"],
        json!({"phone": null, "name": "there", "known": false, "text": "Hi!"})
    );
    let id = engine
        .start_execution(&workflow, json!({"phone": {"number": "555"}}))
        .await;
    let done = engine.finished(&id).await;
    assert_eq!(done["status"], "failed", "{done}");
    let error = node(&done, "call")["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("trigger.body.phone has no field \"nubmer\"; it has: number"),
        "{done}"
    );
}
both_modes!(missing_fields_may_be_defaulted_or_tested, optional_fields);

async fn after_a_skipped_branch(mode: Mode) {
    let engine = Engine::start(mode).await;
    let workflow = engine
        .deploy(json!({"name": "branches", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "big", "type": "condition", "kind": "if_else", "config": {"logic": "trigger.body.n > 10"}},
            {"id": "large", "type": "data", "kind": "mapping", "config": {"mapping": {"size": "large"}}},
            {"id": "small", "type": "data", "kind": "mapping", "config": {"mapping": {"size": "small"}}},
            {"id": "after", "type": "data", "kind": "mapping", "config": {"mapping": {
                "size": "{{ large.size if large else small.size }}",
                "large": "{{ large }}", "large_is_none": "{{ large is none }}"}}}
        ], "edges": [
            {"from": "start", "to": "big"},
            {"from": "big", "to": "large", "when": "true"}, {"from": "big", "to": "small", "when": "false"},
            {"from": "large", "to": "after"}, {"from": "small", "to": "after"}
        ]}))
        .await;
    let id = engine.start_execution(&workflow, json!({"n": 3})).await;
    let done = engine.finished(&id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(node(&done, "large")["status"], "skipped");
    assert_eq!(
        done["output"],
        json!({"size": "small", "large": null, "large_is_none": true})
    );
}
both_modes!(
    a_node_after_a_branch_reads_the_skipped_node_as_null,
    after_a_skipped_branch
);
