//! The node-kind catalog and validation through the API: every kind's
//! schema and example, and documents whose every problem comes back at once.

mod common;

use common::{Engine, Mode};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A workflow holding one node with the config, wired as its kind allows.
fn holding(kind: &Value) -> Value {
    let primitive = kind["type"].as_str().unwrap();
    let node =
        json!({"id": "n", "type": primitive, "kind": kind["kind"], "config": kind["example"]});
    match primitive {
        "trigger" => json!({"name": "example", "nodes": [node]}),
        "connection" => json!({"name": "example", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"}, node
        ]}),
        _ => json!({"name": "example", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"}, node
        ], "edges": [{"from": "start", "to": "n"}]}),
    }
}

/// Whether every top-level field of a schema says how it is read, or
/// refers to a structure (whose fields the node handlers' tests check).
fn annotated(schema: &Value) -> Result<(), String> {
    let fields = schema["properties"].as_object().into_iter().flatten();
    for (name, field) in fields {
        let how = field["x-flowmesh-field"].as_str();
        let refers = field.get("$ref").is_some() || field["items"].get("$ref").is_some();
        if !refers && !matches!(how, Some("template" | "expression" | "value")) {
            return Err(format!("{name}: {field}"));
        }
    }
    Ok(())
}

async fn node_kinds(mode: Mode) {
    let engine = Engine::start(mode).await;
    let (status, kinds) = engine.get("/v1/node-kinds").await;
    assert_eq!(status, StatusCode::OK, "{kinds}");
    let kinds = kinds["items"].as_array().unwrap();
    assert!(kinds.len() >= 17, "{kinds:?}");
    for kind in kinds {
        let name = kind["kind"].as_str().unwrap();
        for field in ["type", "description", "outputs"] {
            assert!(kind[field].is_string(), "{name}: {field}");
        }
        let schema = &kind["config_schema"];
        assert_eq!(schema["type"], "object", "{name}: {schema}");
        assert!(schema["$schema"].is_string(), "{name}: {schema}");
        if let Err(field) = annotated(schema) {
            panic!("{name}: {field} does not say how it is read");
        }
        let mut document = holding(kind);
        if name == "call_workflow" {
            // Its example names a workflow that must be the tenant's.
            let (_, callee) = engine.post("/v1/workflows", holding(&kinds[0])).await;
            document["nodes"][1]["config"]["workflow"] = callee["id"].clone();
        }
        let (status, body) = engine.post("/v1/workflows", document).await;
        assert_eq!(status, StatusCode::CREATED, "{name}'s example: {body}");
    }
    let filter = kinds.iter().find(|k| k["kind"] == "filter").unwrap();
    assert_eq!(
        filter["config_schema"]["properties"]["items"]["x-flowmesh-field"],
        "expression"
    );
}
both_modes!(
    every_kind_publishes_its_schema_and_a_valid_example,
    node_kinds
);

fn paths(body: &Value) -> Vec<String> {
    let mut paths: Vec<String> = body["error"]["details"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|d| d["path"].as_str().unwrap().to_owned())
        .collect();
    paths.sort();
    paths
}

async fn several_problems(mode: Mode) {
    let engine = Engine::start(mode).await;
    // A node that does not parse hides nothing else.
    let (status, body) = engine
        .post("/v1/workflows", json!({"name": "bad", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "r", "type": "robot", "kind": "x"},
            {"id": "get", "type": "action", "kind": "http_request", "config": {"url": "{{ oops", "method": "FETCH"}},
            {"id": "f", "type": "condition", "kind": "filter", "config": {"items": "{{ get.body.items }}"}}
        ]}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "invalid_workflow");
    assert_eq!(
        paths(&body),
        [
            "nodes[1].type",
            "nodes[2].config.method",
            "nodes[2].config.url",
            "nodes[3].config.condition",
            // `get` is not upstream of `f`: nothing leads from it there.
            "nodes[3].config.items"
        ]
    );

    // Config problems do not hide a cycle, which names only its nodes.
    let (status, body) = engine
        .post("/v1/workflows", json!({"name": "loop", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "check", "type": "condition", "kind": "if_else", "config": {"logic": "{{ user.ok }}"}},
            {"id": "user", "type": "action", "kind": "respond", "config": {"status": 99, "body": "{{ nope"}},
            {"id": "welcome", "type": "data", "kind": "mapping", "config": {"mapping": {}}}
        ], "edges": [
            {"from": "start", "to": "check"}, {"from": "check", "to": "user", "when": "true"},
            {"from": "user", "to": "check"}, {"from": "check", "to": "welcome", "when": "false"}
        ]}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        paths(&body),
        ["edges", "nodes[2].config.body", "nodes[2].config.status"]
    );
    let cycle = body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["code"] == "cycle")
        .unwrap();
    assert!(
        cycle["message"]
            .as_str()
            .unwrap()
            .contains("check → user → check"),
        "{cycle}"
    );
}
both_modes!(
    every_problem_of_a_document_comes_back_at_once,
    several_problems
);

/// The (path, code, message) of every problem of a refused document.
fn details(body: &Value) -> Vec<(String, String, String)> {
    let mut found: Vec<(String, String, String)> = body["error"]["details"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|d| {
            let text = |key: &str| d[key].as_str().unwrap_or_default().to_owned();
            (text("path"), text("code"), text("message"))
        })
        .collect();
    found.sort();
    found
}

/// The (path, code) of each problem `details` found.
fn at(found: &[(String, String, String)]) -> Vec<(&str, &str)> {
    found
        .iter()
        .map(|(path, code, _)| (path.as_str(), code.as_str()))
        .collect()
}

async fn unknown_names(mode: Mode) {
    let engine = Engine::start(mode).await;
    let (status, body) = engine
        .post("/v1/workflows", json!({"name": "names", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "get", "type": "action", "kind": "http_request", "config": {"url": "https://api.example.com/users"}},
            {"id": "shape", "type": "data", "kind": "mapping", "config": {"mapping": {
                "email": "{{ usr.email }}", "name": "{{ trigger.body.name | uppr }}", "next": "{{ later.id }}",
                "ok": "{% for u in get.body.users %}{{ u.email | lower }}{% endfor %}"}}},
            {"id": "keep", "type": "condition", "kind": "filter", "config": {
                "items": "{{ get.body.users }}", "condition": "item.active and ghost(item)"}},
            {"id": "later", "type": "data", "kind": "mapping", "config": {"mapping": {"n": "{{ keep | length }}"}}}
        ], "edges": [
            {"from": "start", "to": "get"}, {"from": "get", "to": "shape"},
            {"from": "shape", "to": "keep"}, {"from": "keep", "to": "later"}
        ]}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "invalid_workflow");
    let found = details(&body);
    assert_eq!(
        at(&found),
        [
            ("nodes[2].config.mapping.email", "unknown_name"),
            ("nodes[2].config.mapping.name", "unknown_filter"),
            ("nodes[2].config.mapping.next", "not_upstream"),
            ("nodes[3].config.condition", "unknown_function"),
        ],
        "{body}"
    );
    assert_eq!(
        found[0].2,
        "unknown name `usr`; known here: trigger, start, get"
    );
    assert!(
        found[1]
            .2
            .starts_with("unknown filter `uppr`; known filters: ")
            && found[1].2.contains("upper"),
        "{}",
        found[1].2
    );
    assert_eq!(
        found[2].2,
        "`later` is not upstream of this node: it has no output yet when this node runs"
    );
    assert!(
        found[3].2.starts_with("unknown function `ghost`"),
        "{}",
        found[3].2
    );
}
both_modes!(
    unknown_names_filters_and_functions_are_refused_at_save,
    unknown_names
);

/// A workflow whose code node has `source` and `limits`, beside an
/// `http_request` whose url does not compile.
fn with_code(source: &str, limits: Value) -> Value {
    json!({"name": "code", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "score", "type": "action", "kind": "code", "config": {
            "language": "javascript", "source": source, "limits": limits}},
        {"id": "send", "type": "action", "kind": "http_request", "config": {"url": "{{ oops"}}
    ], "edges": [{"from": "start", "to": "score"}, {"from": "score", "to": "send"}]})
}

async fn code_checked_when_saved(mode: Mode) {
    let roomy = r#"{"roomy": {"wall": "60s", "memory_mb": 2048, "output_bytes": 16777216}}"#;
    let engine = Engine::start_with(mode, &[("FLOWMESH_SANDBOX_TENANT_MAXIMA", roomy)]).await;
    let broken = "const total = input.trigger.body.items.length;\nreturn {total: total +};";
    let (status, body) = engine
        .post(
            "/v1/workflows",
            with_code(broken, json!({"memory_mb": 1024})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let found = details(&body);
    assert_eq!(
        at(&found),
        [
            ("nodes[1].config.limits.memory_mb", "over_limit"),
            ("nodes[1].config.source", "invalid_code"),
            ("nodes[2].config.url", "invalid_template"),
        ],
        "{body}"
    );
    assert_eq!(found[0].2, "1024 MiB is more than the allowed 512 MiB");
    assert_eq!(
        found[1].2,
        "the JavaScript does not parse: line 2, column 23: unexpected token in expression: '}'"
    );

    // A new version is checked the same way.
    let fine = "return {total: input.trigger.body.items.length};";
    let mut document = with_code(fine, json!({"memory_mb": 256}));
    document["nodes"][2]["config"]["url"] = json!("https://example.com/{{ score.total }}");
    let id = engine.deploy(document.clone()).await;
    document["nodes"][1]["config"]["source"] = json!("return (");
    document["nodes"][1]["config"]["limits"] = json!({"wall": "2m"});
    let (status, body) = engine
        .request(
            reqwest::Method::PUT,
            &format!("/v1/workflows/{id}"),
            Some(document.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let paths: Vec<String> = details(&body).into_iter().map(|(p, _, _)| p).collect();
    assert_eq!(
        paths,
        ["nodes[1].config.limits.wall", "nodes[1].config.source"]
    );

    // A tenant with maxima of its own is held to them, not the instance's.
    document["nodes"][1]["config"]["source"] = json!(fine);
    document["nodes"][1]["config"]["limits"] = json!({"memory_mb": 1024, "wall": "45s"});
    let key = engine.create_tenant("roomy").await;
    let (status, body) = engine
        .request_as(
            &key,
            reqwest::Method::POST,
            "/v1/workflows",
            Some(document.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let other = engine.create_tenant("cramped").await;
    let (status, body) = engine
        .request_as(
            &other,
            reqwest::Method::POST,
            "/v1/workflows",
            Some(document),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}
both_modes!(
    code_that_does_not_parse_or_asks_too_much_is_refused_at_save,
    code_checked_when_saved
);
