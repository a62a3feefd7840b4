//! What an anonymous webhook caller gets back: the workflow's own answer
//! (within safe headers), or a documented status with the execution id,
//! never the run's internal data or the tenant's internal states.

mod common;

use std::time::Duration;

use common::stub::StubServer;
use common::{Engine, Mode};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

fn hook_workflow(name: &str, path: &str, nodes: Value, edges: Value) -> Value {
    let mut all = vec![json!({"id": "hook", "type": "trigger", "kind": "webhook",
        "config": {"path": path, "method": "POST"}})];
    all.extend(nodes.as_array().unwrap().iter().cloned());
    json!({"name": name, "nodes": all, "edges": edges})
}

async fn call(
    engine: &Engine,
    slug: &str,
    path: &str,
    body: Value,
) -> (StatusCode, HeaderMap, String) {
    let response = engine
        .client()
        .post(engine.url(&format!("/hooks/{slug}/{path}")))
        .json(&body)
        .send()
        .await
        .unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    (status, headers, response.text().await.unwrap())
}

/// The answer names the execution and nothing of the run.
fn execution_id(text: &str) -> String {
    let body: Value = serde_json::from_str(text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    let id = body["execution_id"]
        .as_str()
        .or(body["error"]["execution_id"].as_str())
        .unwrap_or_else(|| panic!("no execution id in {text}"));
    id.to_owned()
}

fn assert_secured(headers: &HeaderMap) {
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("sandbox"), "{policy}");
}

async fn failed_runs(mode: Mode) {
    let stub = StubServer::start().await;
    let engine = Engine::start(mode).await;
    // Fails in a template before anything outside the engine was touched.
    engine
        .deploy(hook_workflow(
            "early",
            "early",
            json!([
                {"id": "check", "type": "data", "kind": "mapping",
                 "config": {"mapping": {"ok": "{{ trigger.body.email.endswith('@acme.io') }}"}}},
                {"id": "answer", "type": "action", "kind": "respond", "config": {"body": {"ok": true}}}
            ]),
            json!([{"from": "hook", "to": "check"}, {"from": "check", "to": "answer"}]),
        ))
        .await;
    let (status, headers, text) = call(&engine, "default", "early", json!({})).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
    assert!(headers.contains_key("retry-after"));
    assert_secured(&headers);
    for internal in ["check", "endswith", "mapping", "permanent"] {
        assert!(!text.contains(internal), "{internal} leaked: {text}");
    }
    // The tenant reads what went wrong.
    let id = execution_id(&text);
    let execution = engine.finished(&id).await;
    assert_eq!(execution["status"], "failed");
    assert!(
        execution["error"].to_string().contains("check"),
        "{execution}"
    );

    // Fails after an outside call: sending again may repeat it.
    engine
        .deploy(hook_workflow(
            "late",
            "late",
            json!([
                {"id": "fetch", "type": "action", "kind": "http_request",
                 "retry": {"max_attempts": 1},
                 "config": {"method": "GET", "url": stub.url("/status/404")}},
                {"id": "answer", "type": "action", "kind": "respond", "config": {"body": {"ok": true}}}
            ]),
            json!([{"from": "hook", "to": "fetch"}, {"from": "fetch", "to": "answer"}]),
        ))
        .await;
    let (status, headers, text) = call(&engine, "default", "late", json!({})).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{text}");
    assert!(!headers.contains_key("retry-after"));
    // The execution's id may hold "404" itself: it is left out of the check.
    let id = execution_id(&text);
    let rest = text.replace(&id, "");
    for internal in ["fetch", "404", "status", "http_request"] {
        assert!(!rest.contains(internal), "{internal} leaked: {text}");
    }
}
both_modes!(failed_runs_answer_5xx_without_internals, failed_runs);

async fn no_respond_on_the_branch(mode: Mode) {
    let engine = Engine::start(mode).await;
    engine
        .deploy(hook_workflow(
            "branch",
            "branch",
            json!([
                {"id": "vip", "type": "condition", "kind": "if_else",
                 "config": {"logic": "trigger.body.vip == true"}},
                {"id": "welcome", "type": "action", "kind": "respond", "config": {"body": {"welcome": "vip"}}},
                {"id": "internal", "type": "data", "kind": "mapping",
                 "config": {"mapping": {"secret_score": 42, "note": "internal-only"}}}
            ]),
            json!([
                {"from": "hook", "to": "vip"},
                {"from": "vip", "to": "welcome", "when": "true"},
                {"from": "vip", "to": "internal", "when": "false"}
            ]),
        ))
        .await;
    let (status, _, text) = call(&engine, "default", "branch", json!({"vip": true})).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!({"welcome": "vip"})
    );
    let (status, headers, text) = call(&engine, "default", "branch", json!({"vip": false})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{text}");
    assert_secured(&headers);
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        body.as_object().unwrap().len(),
        1,
        "only the execution id: {text}"
    );
    assert!(!text.contains("internal-only"));
    execution_id(&text);
}
both_modes!(a_run_without_an_answer_gets_202, no_respond_on_the_branch);

async fn answer_after_a_wait(mode: Mode) {
    let engine = Engine::start_with(mode, &[("FLOWMESH_MAX_SYNC_WAIT", "2s")]).await;
    engine
        .deploy(hook_workflow(
            "slow",
            "slow",
            json!([
                {"id": "pause", "type": "action", "kind": "wait", "config": {"duration": "1h"}},
                {"id": "answer", "type": "action", "kind": "respond", "config": {"body": {"late": true}}}
            ]),
            json!([{"from": "hook", "to": "pause"}, {"from": "pause", "to": "answer"}]),
        ))
        .await;
    let response = engine
        .client()
        .post(engine.url("/hooks/default/slow"))
        .timeout(Duration::from_secs(20))
        .json(&json!({}))
        .send()
        .await
        .expect("answered within the bound");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let text = response.text().await.unwrap();
    let id = execution_id(&text);
    let (_, execution) = engine.get(&format!("/v1/executions/{id}")).await;
    assert_eq!(
        execution["status"], "running",
        "the run goes on: {execution}"
    );
}
both_modes!(an_answer_after_a_wait_is_bounded, answer_after_a_wait);

async fn unsafe_headers(mode: Mode) {
    let engine = Engine::start(mode).await;
    engine
        .deploy(hook_workflow(
            "page",
            "page",
            json!([
                {"id": "answer", "type": "action", "kind": "respond", "config": {
                    "status": 200,
                    "headers": {
                        "Content-Type": "text/html",
                        "Content-Length": "999",
                        "Transfer-Encoding": "chunked",
                        "Connection": "upgrade",
                        "Upgrade": "websocket",
                        "Set-Cookie": "session=stolen; Path=/",
                        "Access-Control-Allow-Origin": "https://attacker.example",
                        "Access-Control-Allow-Credentials": "true",
                        "Content-Security-Policy": "default-src *",
                        "X-Request-Kind": "page"
                    },
                    "body": "<script>alert(document.cookie)</script>"}}
            ]),
            json!([{"from": "hook", "to": "answer"}]),
        ))
        .await;
    // Two answers on one keep-alive connection: a forged Content-Length
    // would leave the second unreadable.
    for _ in 0..2 {
        let (status, headers, text) = call(&engine, "default", "page", json!({})).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        assert_secured(&headers);
        assert_eq!(headers["x-request-kind"], "page");
        assert_eq!(headers["content-type"], "text/html");
        for dropped in [
            "set-cookie",
            "access-control-allow-credentials",
            "upgrade",
            "transfer-encoding",
        ] {
            assert!(!headers.contains_key(dropped), "{dropped} was served");
        }
        assert_ne!(headers["content-length"], "999");
        assert!(text.contains("<script>"), "{text}");
    }

    // Switching protocols is refused when the workflow is saved.
    let (status, body) = engine
        .post(
            "/v1/workflows",
            hook_workflow(
                "switch",
                "switch",
                json!([{"id": "answer", "type": "action", "kind": "respond", "config": {"status": 101}}]),
                json!([{"from": "hook", "to": "answer"}]),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.to_string().contains("config.status"), "{body}");
}
both_modes!(respond_headers_are_made_safe, unsafe_headers);

async fn tenant_states_stay_private(mode: Mode) {
    let engine = Engine::start_with(mode, &[("FLOWMESH_INITIAL_CREDITS", "2")]).await;
    let owner = engine.create_tenant("Frugal").await;
    engine
        .deploy_as(
            &owner,
            hook_workflow(
                "paid",
                "paid",
                json!([{"id": "answer", "type": "action", "kind": "respond", "config": {"body": {"ok": true}}}]),
                json!([{"from": "hook", "to": "answer"}]),
            ),
        )
        .await;
    let mut refused = None;
    for _ in 0..20 {
        let (status, headers, text) = call(&engine, "frugal", "paid", json!({})).await;
        if status != StatusCode::OK {
            refused = Some((status, headers, text));
            break;
        }
    }
    let (status, headers, text) = refused.expect("the credits ran out");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
    assert!(headers.contains_key("retry-after"));
    assert!(!text.to_lowercase().contains("credit"), "{text}");
    // The tenant's own API still says why.
    let (status, body) = engine
        .request_as(&owner, reqwest::Method::GET, "/v1/billing", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
both_modes!(credits_spent_is_a_generic_503, tenant_states_stay_private);

async fn own_limits(mode: Mode) {
    let engine = Engine::start_with(
        mode,
        &[
            ("FLOWMESH_TENANT_RATE_LIMIT", "5"),
            ("FLOWMESH_WEBHOOK_RATE_PER_ADDRESS", "5"),
            ("FLOWMESH_WEBHOOK_RATE_PER_ROUTE", "10"),
        ],
    )
    .await;
    engine
        .deploy(hook_workflow(
            "open",
            "open",
            json!([{"id": "answer", "type": "action", "kind": "respond", "config": {"body": {"ok": true}}}]),
            json!([{"from": "hook", "to": "answer"}]),
        ))
        .await;
    // Probing made-up paths from one address: its own share, then 429.
    let prober = common::client_from("127.0.0.6");
    let probes = (0..40).map(|i| {
        let (prober, url) = (&prober, engine.url(&format!("/hooks/default/nothing-{i}")));
        async move {
            prober
                .post(url)
                .json(&json!({}))
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    let statuses = futures::future::join_all(probes).await;
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    let missing = statuses
        .iter()
        .filter(|s| **s == StatusCode::NOT_FOUND)
        .count();
    assert_eq!(missing + limited, 40, "{statuses:?}");
    assert!(
        missing >= 5 && limited >= 20,
        "one address's share: {statuses:?}"
    );
    // The tenant's own API allowance (a burst of 5) was not spent by any of it.
    for _ in 0..3 {
        let (status, body) = engine.get("/v1/workflows").await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // One webhook's share, from several addresses together.
    let calls = (0..60).map(|i| {
        let client = common::client_from(&format!("127.0.1.{}", 1 + i % 12));
        let url = engine.url("/hooks/default/open");
        async move {
            client
                .post(url)
                .json(&json!({}))
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    let statuses = futures::future::join_all(calls).await;
    let answered = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(answered + limited, 60, "{statuses:?}");
    assert!(
        answered >= 10 && limited >= 20,
        "the route's share: {statuses:?}"
    );
}
both_modes!(webhooks_have_limits_of_their_own, own_limits);

/// A webhook sent with an idempotency key, as an anonymous caller does.
async fn keyed_call(engine: &Engine, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
    let response = engine
        .client()
        .post(engine.url(&format!("/hooks/default/{path}")))
        .header("Idempotency-Key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

/// An API start with an idempotency key, waiting for the result.
async fn keyed_start(
    engine: &Engine,
    workflow: &str,
    key: &str,
    input: Value,
) -> (StatusCode, Value) {
    let response = engine
        .client()
        .post(engine.url(&format!("/v1/workflows/{workflow}/executions?wait=true")))
        .bearer_auth(common::ADMIN_KEY)
        .header("Idempotency-Key", key)
        .json(&input)
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

/// Idempotency keys belong to the workflow and trigger they were sent to,
/// and to the request: a webhook caller reusing a key of a private start
/// gets a run of its own, a key a webhook used does not swallow a start,
/// and a key reused with another request is refused.
async fn scoped_idempotency_keys(mode: Mode) {
    let engine = Engine::start(mode).await;
    let private = engine
        .deploy(json!({"name": "private", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "secret", "type": "data", "kind": "mapping", "config": {"mapping": {"token": "s3cr3t-{{ trigger.body.n }}"}}}
        ], "edges": [{"from": "start", "to": "secret"}]}))
        .await;
    engine
        .deploy(hook_workflow(
            "public",
            "public",
            json!([{"id": "echo", "type": "data", "kind": "mapping", "config": {"mapping": {"n": "{{ trigger.body.n }}"}}}]),
            json!([{"from": "hook", "to": "echo"}]),
        ))
        .await;

    let (status, private_run) = keyed_start(&engine, &private, "k-1", json!({"n": 1})).await;
    assert_eq!(status, StatusCode::OK, "{private_run}");
    assert_eq!(private_run["output"]["token"], "s3cr3t-1");
    let (status, hooked) = keyed_call(&engine, "public", "k-1", json!({"n": 2})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{hooked}");
    assert_ne!(hooked["execution_id"], private_run["execution_id"]);
    assert!(!hooked.to_string().contains("s3cr3t"), "{hooked}");

    // A key first sent through the webhook does not swallow a start.
    let (status, first_hook) = keyed_call(&engine, "public", "k-2", json!({"n": 3})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first_hook}");
    let (status, started) = keyed_start(&engine, &private, "k-2", json!({"n": 4})).await;
    assert_eq!(status, StatusCode::OK, "{started}");
    assert_ne!(started["execution_id"], first_hook["execution_id"]);
    assert_eq!(started["output"]["token"], "s3cr3t-4");

    // The same request again is answered with the same execution.
    let (status, again) = keyed_call(&engine, "public", "k-2", json!({"n": 3})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{again}");
    assert_eq!(again["execution_id"], first_hook["execution_id"]);
    let (status, again) = keyed_start(&engine, &private, "k-2", json!({"n": 4})).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["execution_id"], started["execution_id"]);

    // The same key with another request is refused, and says why.
    let (status, refused) = keyed_call(&engine, "public", "k-2", json!({"n": 5})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["error"]["code"], "idempotency_key_reused");
    let message = common::error_message(&refused);
    assert!(message.contains("different request"), "{message}");
    assert!(message.contains("will not help"), "{message}");
    let (status, refused) = keyed_start(&engine, &private, "k-1", json!({"n": 6})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert!(!refused.to_string().contains("s3cr3t"), "{refused}");
}
both_modes!(
    idempotency_keys_are_scoped_to_trigger_and_request,
    scoped_idempotency_keys
);
