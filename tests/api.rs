//! The HTTP API's contract: workflow lifecycle, versions, and a clear 4xx
//! (never a 500) for every class of bad input.

mod common;

use common::{ADMIN_KEY, Engine, Mode};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn minimal(name: &str) -> Value {
    json!({"name": name, "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "shape", "type": "data", "kind": "mapping", "config": {"mapping": {"v": "{{ trigger.body.v }}"}}}
    ], "edges": [{"from": "start", "to": "shape"}]})
}

async fn lifecycle(mode: Mode) {
    let engine = Engine::start(mode).await;
    let (status, created) = engine.post("/v1/workflows", minimal("one")).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["version"], 1);
    let id = created["id"].as_str().unwrap().to_owned();

    // Not published yet: executions are refused with a reason.
    let (status, body) = engine
        .post(&format!("/v1/workflows/{id}/executions"), json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    let (status, _) = engine
        .post(&format!("/v1/workflows/{id}/publish"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let first = engine.start_execution(&id, json!({"v": 1})).await;

    // A new draft does not change what runs until it is published.
    let mut v2 = minimal("one");
    v2["nodes"][1]["config"]["mapping"]["v2"] = json!(true);
    let (status, body) = engine
        .request(Method::PUT, &format!("/v1/workflows/{id}"), Some(v2))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["version"], 2);
    assert_eq!(body["published_version"], 1);
    let second = engine.start_execution(&id, json!({"v": 2})).await;
    assert_eq!(engine.finished(&second).await["output"], json!({"v": 2}));
    assert_eq!(engine.finished(&first).await["version"], 1);

    let (status, _) = engine
        .post(&format!("/v1/workflows/{id}/publish"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let third = engine.start_execution(&id, json!({"v": 3})).await;
    let done = engine.finished(&third).await;
    assert_eq!(done["version"], 2);
    assert_eq!(done["output"], json!({"v": 3, "v2": true}));

    let (status, list) = engine.get("/v1/workflows").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let (status, list) = engine
        .get(&format!(
            "/v1/executions?workflow_id={id}&status=succeeded&limit=2"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    let cursor = list["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let (_, rest) = engine
        .get(&format!(
            "/v1/executions?workflow_id={id}&limit=2&cursor={cursor}"
        ))
        .await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);

    let (status, _) = engine
        .request(Method::DELETE, &format!("/v1/workflows/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = engine.get(&format!("/v1/workflows/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
}
both_modes!(workflows_have_versions_and_a_lifecycle, lifecycle);

async fn invalid_documents(mode: Mode) {
    let engine = Engine::start(mode).await;
    let (status, body) = engine
        .post("/v1/workflows", json!({"name": "bad", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "a", "type": "data", "kind": "mapping", "config": {"mapping": {}}},
            {"id": "b", "type": "data", "kind": "mapping", "config": {"mapping": {}}},
            {"id": "call", "type": "action", "kind": "http_request", "config": {}}
        ], "edges": [
            {"from": "start", "to": "a"}, {"from": "a", "to": "b"}, {"from": "b", "to": "a"}, {"from": "start", "to": "call"}
        ]}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "invalid_workflow");
    let paths: Vec<&str> = body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"nodes[3].config.url"), "{paths:?}");

    let (status, body) = engine.post("/v1/workflows", json!({"name": "cycle", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "a", "type": "data", "kind": "mapping", "config": {"mapping": {}}},
        {"id": "b", "type": "data", "kind": "mapping", "config": {"mapping": {}}}
    ], "edges": [{"from": "start", "to": "a"}, {"from": "a", "to": "b"}, {"from": "b", "to": "a"}]})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["details"][0]["code"], "cycle");

    let (status, body) = engine
        .post(
            "/v1/workflows",
            json!({"name": "x", "nodes": [{"id": "t", "type": "robot", "kind": "x"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["details"][0]["path"], "nodes[0].type");

    let (status, body) = engine
        .post(
            "/v1/workflows",
            json!({"name": "x", "nodes": [
        {"id": "t", "type": "trigger", "kind": "manual"},
        {"id": "m", "type": "data", "kind": "mapping", "config": {"mapping": {"a": "{{ unclosed"}}}
    ], "edges": [{"from": "t", "to": "m"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]["details"][0]["path"]
            .as_str()
            .unwrap()
            .starts_with("nodes[1].config"),
        "{body}"
    );
}
both_modes!(
    invalid_documents_list_every_problem_with_its_path,
    invalid_documents
);

async fn raw(
    engine: &Engine,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
    key: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = engine.client().request(method, engine.url(path)).body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn bad_input(mode: Mode) {
    let engine = Engine::start(mode).await;
    let json_ct = Some("application/json");
    let key = Some(ADMIN_KEY);
    let cases: Vec<(
        Method,
        String,
        Option<&str>,
        Vec<u8>,
        Option<&str>,
        StatusCode,
        &str,
    )> = vec![
        (
            Method::POST,
            "/v1/workflows".into(),
            json_ct,
            b"{\"name\": ".to_vec(),
            key,
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            Method::POST,
            "/v1/workflows".into(),
            json_ct,
            vec![0xff, 0xfe, 0x00],
            key,
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            Method::POST,
            "/v1/workflows".into(),
            Some("text/plain"),
            b"{}".to_vec(),
            key,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            Method::POST,
            "/v1/workflows".into(),
            json_ct,
            vec![b' '; 2 * 1024 * 1024],
            key,
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            Method::GET,
            "/v1/workflows".into(),
            None,
            vec![],
            None,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            Method::GET,
            "/v1/workflows".into(),
            None,
            vec![],
            Some("fmk_wrong"),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            Method::GET,
            "/v1/workflows/not-a-uuid".into(),
            None,
            vec![],
            key,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::GET,
            format!("/v1/workflows/{}", uuid::Uuid::now_v7()),
            None,
            vec![],
            key,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::GET,
            format!("/v1/executions/{}", uuid::Uuid::now_v7()),
            None,
            vec![],
            key,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::POST,
            format!("/v1/executions/{}/cancel", uuid::Uuid::now_v7()),
            None,
            vec![],
            key,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::GET,
            "/v1/executions?status=done".into(),
            None,
            vec![],
            key,
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            Method::GET,
            "/v1/executions?limit=0".into(),
            None,
            vec![],
            key,
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            Method::GET,
            "/v1/nothing-here".into(),
            None,
            vec![],
            key,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::PATCH,
            "/v1/workflows".into(),
            None,
            vec![],
            key,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            Method::POST,
            "/hooks/default/unknown".into(),
            json_ct,
            b"{}".to_vec(),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::POST,
            "/hooks/no-such-tenant/signup".into(),
            json_ct,
            b"{}".to_vec(),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (method, path, ct, body, key, want_status, want_code) in cases {
        let (status, got) = raw(&engine, method.clone(), &path, ct, body, key).await;
        assert_eq!(status, want_status, "{method} {path}: {got}");
        assert_eq!(got["error"]["code"], want_code, "{method} {path}: {got}");
        assert!(
            got["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{method} {path}: {got}"
        );
    }
    // Deeply nested JSON is refused cleanly, not with a crash.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let (status, got) = raw(
        &engine,
        Method::POST,
        "/v1/workflows",
        json_ct,
        deep.into_bytes(),
        key,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{got}");
    // The engine is still healthy afterwards.
    let (status, _) = engine.get("/ready").await;
    assert_eq!(status, StatusCode::OK);
}
both_modes!(bad_input_gets_a_clear_error, bad_input);

#[tokio::test]
async fn health_ready_and_schema_are_served() {
    let engine = Engine::start(Mode::Embedded).await;
    let (status, body) = engine.get("/health").await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let (status, body) = engine.get("/ready").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["transport"], "in-process");
    let (status, schema) = engine.get("/v1/schema/workflow").await;
    assert_eq!(status, StatusCode::OK);
    assert!(schema.to_string().contains("connection"));
    let (status, kinds) = engine.get("/v1/node-kinds").await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = kinds["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kind"].as_str().unwrap())
        .collect();
    for kind in [
        "manual",
        "webhook",
        "http_request",
        "respond",
        "wait",
        "if_else",
        "switch",
        "filter",
        "mapping",
        "merge",
        "credentials",
    ] {
        assert!(names.contains(&kind), "{kind} missing");
    }
}
