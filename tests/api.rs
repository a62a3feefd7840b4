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

/// One request and the error it must get.
struct Case {
    method: Method,
    path: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    key: Option<&'static str>,
    status: StatusCode,
    code: &'static str,
}

fn case(method: Method, path: impl Into<String>, status: StatusCode, code: &'static str) -> Case {
    Case {
        method,
        path: path.into(),
        content_type: None,
        body: vec![],
        key: Some(ADMIN_KEY),
        status,
        code,
    }
}

impl Case {
    fn body(mut self, content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        self.content_type = Some(content_type);
        self.body = body.into();
        self
    }

    fn key(mut self, key: Option<&'static str>) -> Self {
        self.key = key;
        self
    }
}

async fn send(engine: &Engine, case: &Case) -> (StatusCode, Value) {
    let mut req = engine
        .client()
        .request(case.method.clone(), engine.url(&case.path))
        .body(case.body.clone());
    if let Some(ct) = case.content_type {
        req = req.header("content-type", ct);
    }
    if let Some(key) = case.key {
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

/// Small enough that an oversized body still fits in loopback socket
/// buffers, so the client reads the 413 instead of a reset connection.
const BODY_LIMIT: usize = 256 * 1024;

async fn bad_input(mode: Mode) {
    let limit = BODY_LIMIT.to_string();
    let engine = Engine::start_with(mode, &[("FLOWMESH_MAX_BODY_BYTES", limit.as_str())]).await;
    let json = "application/json";
    let some_id = uuid::Uuid::now_v7();
    let cases = vec![
        case(
            Method::POST,
            "/v1/workflows",
            StatusCode::BAD_REQUEST,
            "malformed_json",
        )
        .body(json, "{\"name\": "),
        case(
            Method::POST,
            "/v1/workflows",
            StatusCode::BAD_REQUEST,
            "malformed_json",
        )
        .body(json, vec![0xff, 0xfe, 0x00]),
        case(
            Method::POST,
            "/v1/workflows",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        )
        .body("text/plain", "{}"),
        case(
            Method::POST,
            "/v1/workflows",
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        )
        .body(json, vec![b' '; BODY_LIMIT + 64 * 1024]),
        case(
            Method::GET,
            "/v1/workflows",
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        )
        .key(None),
        case(
            Method::GET,
            "/v1/workflows",
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        )
        .key(Some("fmk_wrong")),
        case(
            Method::GET,
            "/v1/workflows/not-a-uuid",
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        case(
            Method::GET,
            format!("/v1/workflows/{some_id}"),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        case(
            Method::GET,
            format!("/v1/executions/{some_id}"),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        case(
            Method::POST,
            format!("/v1/executions/{some_id}/cancel"),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        case(
            Method::GET,
            "/v1/executions?status=done",
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        case(
            Method::GET,
            "/v1/executions?limit=0",
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        case(
            Method::GET,
            "/v1/nothing-here",
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        case(
            Method::PATCH,
            "/v1/workflows",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        case(
            Method::POST,
            "/hooks/default/unknown",
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .body(json, "{}")
        .key(None),
        case(
            Method::POST,
            "/hooks/no-such-tenant/signup",
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .body(json, "{}")
        .key(None),
    ];
    for c in &cases {
        let (status, got) = send(&engine, c).await;
        assert_eq!(status, c.status, "{} {}: {got}", c.method, c.path);
        assert_eq!(
            got["error"]["code"], c.code,
            "{} {}: {got}",
            c.method, c.path
        );
        assert!(
            got["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{} {}: {got}",
            c.method,
            c.path
        );
    }
    // Deeply nested JSON is refused cleanly, not with a crash.
    let deep = format!(
        r#"{{"name": "deep", "nodes": [{{"id": "t", "type": "trigger", "kind": "manual", "config": {}{}}}]}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let deep = case(
        Method::POST,
        "/v1/workflows",
        StatusCode::BAD_REQUEST,
        "malformed_json",
    )
    .body(json, deep);
    let (status, got) = send(&engine, &deep).await;
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
