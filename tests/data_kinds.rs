//! The small data kinds (`split`, `aggregate`, `json_path`, `regex`,
//! `schema_validate`) saved and run through the HTTP API, their bad configs
//! refused at their paths, and the names expressions bind refused as node
//! ids.

mod common;

use common::{Engine, Mode, node};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Every data kind, one after another over the trigger's order list.
fn orders_workflow() -> Value {
    json!({"name": "orders", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "orders", "type": "data", "kind": "split",
         "config": {"items": "trigger.body.page.orders"}},
        {"id": "customers", "type": "data", "kind": "split",
         "config": {"items": "orders", "field": "customer"}},
        {"id": "emails", "type": "data", "kind": "aggregate",
         "config": {"items": "customers", "field": "email", "unique": true}},
        {"id": "big", "type": "data", "kind": "json_path",
         "config": {"value": "{{ trigger.body.page }}", "query": "$.orders[?@.total > 100].id"}},
        {"id": "refs", "type": "data", "kind": "regex",
         "config": {"text": "trigger.body.note", "pattern": "#(?<order>\\d+)", "mode": "extract"}},
        {"id": "masked", "type": "data", "kind": "regex",
         "config": {"text": "trigger.body.note", "pattern": "(\\w)[\\w.]*@", "mode": "replace",
                    "replacement": "$1***@"}},
        {"id": "has_ref", "type": "data", "kind": "regex",
         "config": {"text": "trigger.body.note", "pattern": "{{ trigger.body.wanted }}"}},
        {"id": "checked", "type": "data", "kind": "schema_validate",
         "config": {"value": "trigger.body.page", "schema": {
             "type": "object", "required": ["orders"],
             "properties": {"orders": {"type": "array", "items": {
                 "type": "object", "required": ["id", "total"],
                 "properties": {"total": {"type": "number", "minimum": 0}}}}}}}}
    ], "edges": [
        {"from": "start", "to": "orders"}, {"from": "orders", "to": "customers"},
        {"from": "customers", "to": "emails"}, {"from": "emails", "to": "big"},
        {"from": "big", "to": "refs"}, {"from": "refs", "to": "masked"},
        {"from": "masked", "to": "has_ref"}, {"from": "has_ref", "to": "checked"}
    ]})
}

fn page(last_total: Value) -> Value {
    json!({
        "page": {"orders": [
            {"id": "o1", "total": 50, "customer": {"email": "ada@x.test"}},
            {"id": "o2", "total": 150, "customer": {"email": "bob@x.test"}},
            {"id": "o3", "total": last_total, "customer": {"email": "ada@x.test"}}
        ]},
        "note": "ada@x.test asks about #101 and #102",
        "wanted": "#10[0-9]"
    })
}

async fn every_kind_runs(mode: Mode) {
    let engine = Engine::start(mode).await;
    let workflow = engine.deploy(orders_workflow()).await;

    let id = engine.start_execution(&workflow, page(json!(300))).await;
    let done = engine.finished(&id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let output = |id: &str| node(&done, id)["output"].clone();
    assert_eq!(output("orders").as_array().map(Vec::len), Some(3));
    assert_eq!(output("customers")[1], json!({"email": "bob@x.test"}));
    assert_eq!(output("emails"), json!(["ada@x.test", "bob@x.test"]));
    assert_eq!(
        output("big"),
        json!({"matches": ["o2", "o3"], "first": "o2"})
    );
    assert_eq!(
        output("refs"),
        json!({"count": 2, "matches": [
            {"text": "#101", "groups": ["101"], "named": {"order": "101"}},
            {"text": "#102", "groups": ["102"], "named": {"order": "102"}}
        ]})
    );
    assert_eq!(
        output("masked"),
        json!({"text": "a***@x.test asks about #101 and #102", "replaced": 1})
    );
    assert_eq!(output("has_ref")["matched"], true);
    assert_eq!(output("has_ref")["match"]["text"], "#101");
    assert_eq!(output("checked"), json!({"valid": true, "errors": []}));

    // A mismatch is data, at its path, unless the node is told to fail.
    let id = engine.start_execution(&workflow, page(json!(-1))).await;
    let done = engine.finished(&id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let checked = &node(&done, "checked")["output"];
    assert_eq!(checked["valid"], false, "{checked}");
    assert_eq!(
        checked["errors"],
        json!([{"path": "orders[2].total", "message": "-1 is less than the minimum of 0"}])
    );
    assert_eq!(node(&done, "big")["output"]["matches"], json!(["o2"]));
}
both_modes!(every_data_kind_saves_and_runs, every_kind_runs);

async fn bad_input_fails_the_node(mode: Mode) {
    let engine = Engine::start(mode).await;
    let workflow = engine
        .deploy(json!({"name": "strict", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "checked", "type": "data", "kind": "schema_validate",
             "config": {"value": "trigger.body", "fail_on_invalid": true,
                        "schema": {"type": "object", "required": ["orders"]}}},
            {"id": "orders", "type": "data", "kind": "split",
             "config": {"items": "trigger.body.orders"}}
        ], "edges": [{"from": "start", "to": "checked"}, {"from": "checked", "to": "orders"}]}))
        .await;

    let id = engine
        .start_execution(&workflow, json!({"order": {"id": 1}}))
        .await;
    let done = engine.finished(&id).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(
        node(&done, "checked")["error"],
        "permanent: the value does not match the schema: \"orders\" is a required property"
    );
    assert_eq!(node(&done, "orders")["status"], "skipped", "{done}");

    let id = engine
        .start_execution(&workflow, json!({"orders": {"id": 1, "total": 5}}))
        .await;
    let done = engine.finished(&id).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(
        node(&done, "orders")["error"],
        "permanent: config.items must give an array, but `trigger.body.orders` gave an object with fields id, total"
    );
}
both_modes!(
    bad_input_fails_the_node_saying_why,
    bad_input_fails_the_node
);

/// The (path, code) of every problem of a refused document.
fn problems(body: &Value) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = body["error"]["details"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|d| {
            let at = |f: &str| d[f].as_str().unwrap_or_default().to_owned();
            (at("path"), at("code"))
        })
        .collect();
    found.sort();
    found
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(p, c)| (p.to_string(), c.to_string()))
        .collect()
}

async fn bad_configs_refused(mode: Mode) {
    let engine = Engine::start(mode).await;
    let (status, body) = engine
        .post("/v1/workflows", json!({"name": "bad", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "s", "type": "data", "kind": "split",
             "config": {"items": "trigger.body.orders", "field": "customer..email"}},
            {"id": "a", "type": "data", "kind": "aggregate", "config": {"items": "s"}},
            {"id": "j", "type": "data", "kind": "json_path",
             "config": {"value": "trigger.body", "query": "$.orders[?@.total >]"}},
            {"id": "r", "type": "data", "kind": "regex",
             "config": {"text": "trigger.body.note", "pattern": "(unclosed", "mode": "replace"}},
            {"id": "v", "type": "data", "kind": "schema_validate",
             "config": {"value": "trigger.body", "schema": {"properties": {"age": {"type": "integr"}}}}},
            {"id": "deep", "type": "data", "kind": "json_path",
             "config": {"value": "trigger.body", "query": "$..a..b..c"}}
        ], "edges": [
            {"from": "start", "to": "s"}, {"from": "s", "to": "a"}, {"from": "a", "to": "j"},
            {"from": "j", "to": "r"}, {"from": "r", "to": "v"}, {"from": "v", "to": "deep"}
        ]}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        problems(&body),
        pairs(&[
            ("nodes[1].config.field", "invalid_value"),
            ("nodes[2].config.field", "required"),
            ("nodes[3].config.query", "invalid_query"),
            ("nodes[4].config.pattern", "invalid_regex"),
            ("nodes[4].config.replacement", "required"),
            (
                "nodes[5].config.schema.properties.age.type",
                "invalid_schema"
            ),
            ("nodes[6].config.query", "too_costly"),
        ])
    );
    let message = |path: &str| {
        body["error"]["details"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|d| d["path"] == path)
            .and_then(|d| d["message"].as_str())
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        message("nodes[4].config.pattern").contains("unclosed group"),
        "{body}"
    );
    assert!(
        message("nodes[3].config.query").starts_with("not a JSONPath query: "),
        "{body}"
    );

    let (status, kinds) = engine.get("/v1/node-kinds").await;
    assert_eq!(status, StatusCode::OK);
    let kinds = kinds["items"].as_array().unwrap();
    for (kind, field) in [
        ("split", "items"),
        ("aggregate", "items"),
        ("json_path", "value"),
        ("regex", "text"),
        ("schema_validate", "value"),
    ] {
        let listed = kinds.iter().find(|k| k["kind"] == kind);
        let listed = listed.unwrap_or_else(|| panic!("{kind} is not listed"));
        assert_eq!(listed["type"], "data", "{kind}");
        let schema = &listed["config_schema"]["properties"];
        assert_eq!(schema[field]["x-flowmesh-field"], "expression", "{kind}");
    }
}
both_modes!(bad_configs_are_refused_at_their_paths, bad_configs_refused);

async fn reserved_ids(mode: Mode) {
    let engine = Engine::start(mode).await;
    let names = [
        "item",
        "index",
        "loop",
        "trigger",
        "execution",
        "workflow",
        "vars",
    ];
    let mut nodes = vec![json!({"id": "start", "type": "trigger", "kind": "manual"})];
    let mut edges = Vec::new();
    for name in names {
        nodes.push(
            json!({"id": name, "type": "data", "kind": "mapping", "config": {"mapping": {}}}),
        );
        edges.push(json!({"from": "start", "to": name}));
    }
    let (status, body) = engine
        .post(
            "/v1/workflows",
            json!({"name": "reserved", "nodes": nodes, "edges": edges}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let expected: Vec<(String, String)> = (1..=names.len())
        .map(|i| (format!("nodes[{i}].id"), "reserved_id".to_owned()))
        .collect();
    assert_eq!(problems(&body), expected);
}
both_modes!(names_expressions_bind_are_refused_as_node_ids, reserved_ids);
