//! The node kinds' configs: their published schemas and examples, and
//! validation that reports every problem at once, at its path.

use flowmesh_model::names::Upstream;
use flowmesh_model::validate::{KindCatalog, check_json};
use flowmesh_model::{HumanDuration, Node, OnError, Primitive};
use flowmesh_node_handlers::kind::FIELD;
use flowmesh_node_handlers::{Bounds, Options, Registry};
use flowmesh_sandbox::Limits;
use serde_json::{Value, json};

fn registry() -> Registry {
    Registry::new(&Options::default()).unwrap()
}

fn node(primitive: Primitive, kind: &str, config: Value) -> Node {
    Node {
        id: "n".into(),
        primitive,
        kind: kind.into(),
        config,
        retry: None,
        timeout: None,
        on_error: Default::default(),
        ui: None,
    }
}

/// The (path, code) of every problem of one node's config, as the node
/// `n` after `get`, `a` and `x`.
fn problems(registry: &Registry, node: &Node) -> Vec<(String, String)> {
    let graph = Upstream::new(
        ["start", "get", "a", "x", "n", "later"],
        [
            ("start", "get"),
            ("get", "a"),
            ("a", "x"),
            ("x", "n"),
            ("n", "later"),
        ],
    );
    let mut errors = Vec::new();
    registry
        .check(node, "nodes[3]", &graph.names(4), &mut errors)
        .expect("a known kind");
    let mut found: Vec<(String, String)> = errors.into_iter().map(|e| (e.path, e.code)).collect();
    found.sort();
    found
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut list: Vec<(String, String)> = list
        .iter()
        .map(|(p, c)| (p.to_string(), c.to_string()))
        .collect();
    list.sort();
    list
}

/// Every property of an object schema, its `$defs` included.
fn properties(schema: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut objects = vec![schema];
    objects.extend(
        schema["$defs"]
            .as_object()
            .into_iter()
            .flat_map(|d| d.values()),
    );
    for object in objects {
        for (name, property) in object["properties"].as_object().into_iter().flatten() {
            out.push((name.clone(), property.clone()));
        }
    }
    out
}

#[test]
fn every_example_validates_and_every_field_says_how_it_is_read() {
    let registry = registry();
    let kinds = registry.kinds();
    assert_eq!(kinds.len(), 26);
    for info in kinds {
        let example = node(info.primitive, info.kind, info.example.clone());
        assert_eq!(problems(&registry, &example), vec![], "{}", info.kind);
        assert_eq!(info.config_schema["type"], "object", "{}", info.kind);
        let schema = &info.config_schema;
        for (name, property) in properties(schema) {
            // A structure's own fields say how they are read.
            let resolve = |s: &Value| match s["$ref"].as_str() {
                Some(r) => schema
                    .pointer(r.trim_start_matches('#'))
                    .cloned()
                    .unwrap_or_default(),
                None => s.clone(),
            };
            let structured = resolve(&property).get("properties").is_some()
                || resolve(&property["items"]).get("properties").is_some();
            let how = property[FIELD].as_str();
            assert!(
                structured || matches!(how, Some("template" | "expression" | "value")),
                "{}.{name}: {property}",
                info.kind
            );
        }
    }
}

#[test]
fn the_schema_says_which_fields_are_expressions() {
    let registry = registry();
    let schema = |kind: &str| {
        registry
            .kinds()
            .into_iter()
            .find(|k| k.kind == kind)
            .unwrap()
            .config_schema
    };
    assert_eq!(schema("filter")["properties"]["items"][FIELD], "expression");
    assert_eq!(schema("switch")["properties"]["value"][FIELD], "expression");
    assert_eq!(
        schema("if_else")["properties"]["logic"][FIELD],
        "expression"
    );
    assert_eq!(
        schema("http_request")["properties"]["url"][FIELD],
        "template"
    );
    assert_eq!(schema("code")["properties"]["source"][FIELD], "value");
}

#[test]
fn expression_fields_take_an_expression_bare_or_in_braces() {
    let registry = registry();
    for config in [
        json!({"items": "{{ get.body.items }}", "condition": "{{ item.ok }}"}),
        json!({"items": "get.body.items", "condition": "item.ok"}),
    ] {
        let filter = node(Primitive::Condition, "filter", config);
        assert_eq!(problems(&registry, &filter), vec![]);
    }
    let switch = node(
        Primitive::Condition,
        "switch",
        json!({"value": "{{ trigger.body.plan }}", "cases": [{"name": "big", "when": "{{ trigger.body.n > 9 }}"}]}),
    );
    assert_eq!(problems(&registry, &switch), vec![]);
    let if_else = node(
        Primitive::Condition,
        "if_else",
        json!({"logic": "{{ a > 1 }}"}),
    );
    assert_eq!(problems(&registry, &if_else), vec![]);
    let broken = node(
        Primitive::Condition,
        "if_else",
        json!({"logic": "{{ a > }}"}),
    );
    assert_eq!(
        problems(&registry, &broken),
        pairs(&[("nodes[3].config.logic", "invalid_expression")])
    );
}

#[test]
fn a_filter_s_condition_reads_item_and_its_items_do_not() {
    let registry = registry();
    let schema = registry
        .kinds()
        .into_iter()
        .find(|k| k.kind == "filter")
        .unwrap()
        .config_schema;
    assert_eq!(
        schema["properties"]["condition"]["x-flowmesh-binds"],
        json!(["item"])
    );
    let filter = node(
        Primitive::Condition,
        "filter",
        json!({"items": "item.list", "condition": "item.ok and later.ok | uppr"}),
    );
    assert_eq!(
        problems(&registry, &filter),
        pairs(&[
            ("nodes[3].config.condition", "not_upstream"),
            ("nodes[3].config.condition", "unknown_filter"),
            ("nodes[3].config.items", "unknown_name"),
        ])
    );
}

#[test]
fn every_bad_field_of_a_config_is_reported() {
    let registry = registry();
    let code = node(
        Primitive::Action,
        "code",
        json!({"language": "ruby", "source": "", "limits": {"memory_mb": "lots", "output_bytes": -1}}),
    );
    assert_eq!(
        problems(&registry, &code),
        pairs(&[
            ("nodes[3].config.language", "invalid_value"),
            ("nodes[3].config.limits.memory_mb", "invalid_type"),
            ("nodes[3].config.limits.output_bytes", "invalid_value"),
            ("nodes[3].config.source", "required"),
        ])
    );
    let agents = node(
        Primitive::Action,
        "agents",
        json!({
            "agents": [{"id": "a", "goal": "g"}],
            "tasks": [{"id": "t", "agent": "a", "description": "{{ oops"}],
            "process": "chaos", "max_rounds": 0
        }),
    );
    assert_eq!(
        problems(&registry, &agents),
        pairs(&[
            ("nodes[3].config.agents[0].role", "required"),
            ("nodes[3].config.max_rounds", "invalid_value"),
            ("nodes[3].config.process", "invalid_value"),
            ("nodes[3].config.tasks[0].description", "invalid_template"),
        ])
    );
}

#[test]
fn leniencies_stay() {
    let registry = registry();
    for (primitive, kind, config) in [
        (
            Primitive::Trigger,
            "webhook",
            json!({"path": "/in/", "method": "post"}),
        ),
        (
            Primitive::Action,
            "http_request",
            json!({"url": "https://x.test", "method": "patch"}),
        ),
        (
            Primitive::Action,
            "wait",
            json!({"duration": "{{ trigger.body.pause }}"}),
        ),
        (
            Primitive::Action,
            "wait_for_event",
            json!({"timeout": "{{ trigger.body.within }}"}),
        ),
        (
            Primitive::Condition,
            "switch",
            json!({"value": "x", "cases": [{"name": "none", "equals": null}]}),
        ),
    ] {
        assert_eq!(
            problems(&registry, &node(primitive, kind, config)),
            vec![],
            "{kind}"
        );
    }
    let hook = node(
        Primitive::Trigger,
        "webhook",
        json!({"path": "/in/", "method": "post"}),
    );
    assert_eq!(
        registry.route(&hook),
        Some(("POST".to_owned(), "in".to_owned()))
    );
}

#[test]
fn a_document_that_does_not_parse_still_has_its_configs_checked() {
    let text = json!({"name": "x", "nodes": [
        {"id": "t", "type": "trigger", "kind": "manual"},
        {"id": "r", "type": "robot", "kind": "x"},
        {"id": "f", "type": "condition", "kind": "filter", "config": {"items": "a ==", "condition": "{{ item }}"}},
        {"id": "h", "type": "action", "kind": "http_request", "config": {"url": "{{ oops", "timeout": "soon"}}
    ]})
    .to_string();
    let errors = check_json(text.as_bytes(), &registry()).unwrap_err().errors;
    let mut found: Vec<(String, String)> = errors.into_iter().map(|e| (e.path, e.code)).collect();
    found.sort();
    assert_eq!(
        found,
        pairs(&[
            ("nodes[1].type", "invalid_value"),
            ("nodes[2].config.items", "invalid_expression"),
            ("nodes[3].config.timeout", "invalid_duration"),
            ("nodes[3].config.url", "invalid_template"),
        ])
    );
}

/// Every problem of a document with its message, checked against `bounds`.
fn checked(text: &Value, bounds: &Bounds) -> Vec<(String, String, String)> {
    let text = text.to_string();
    let registry = registry();
    let errors = match check_json(text.as_bytes(), &registry.bounded(bounds)) {
        Ok(_) => Vec::new(),
        Err(e) => e.errors,
    };
    let mut found: Vec<_> = errors
        .into_iter()
        .map(|e| (e.path, e.code, e.message))
        .collect();
    found.sort();
    found
}

#[test]
fn code_is_parsed_and_its_limits_bounded_when_saved() {
    let document = json!({"name": "code", "nodes": [
        {"id": "t", "type": "trigger", "kind": "manual"},
        {"id": "ok", "type": "action", "kind": "code", "config": {
            "language": "javascript", "source": "return {n: input.trigger.body.n};"}},
        {"id": "js", "type": "action", "kind": "code", "config": {
            "language": "javascript", "source": "const a = 1;\nreturn (a +;",
            "limits": {"memory_mb": 4096, "wall": "1m"}}},
        {"id": "py", "type": "action", "kind": "code", "config": {
            "language": "python", "source": "return (", "limits": {"output_bytes": 33554432}}},
        {"id": "h", "type": "action", "kind": "http_request", "config": {"url": "{{ oops"}}
    ], "edges": [{"from": "t", "to": "ok"}, {"from": "ok", "to": "js"},
                 {"from": "js", "to": "py"}, {"from": "py", "to": "h"}]});
    let found = checked(&document, &Bounds::default());
    let at: Vec<(&str, &str)> = found
        .iter()
        .map(|(path, code, _)| (path.as_str(), code.as_str()))
        .collect();
    assert_eq!(
        at,
        [
            ("nodes[2].config.limits.memory_mb", "over_limit"),
            ("nodes[2].config.limits.wall", "over_limit"),
            ("nodes[2].config.source", "invalid_code"),
            ("nodes[3].config.limits.output_bytes", "over_limit"),
            ("nodes[4].config.url", "invalid_template"),
        ]
    );
    assert_eq!(found[0].2, "4096 MiB is more than the allowed 512 MiB");
    assert_eq!(
        found[2].2,
        "the JavaScript does not parse: line 2, column 12: unexpected token in expression: ';'"
    );
    // A tenant's own maxima are what its documents are checked against.
    let generous = Bounds {
        code_maxima: Limits {
            wall: HumanDuration::from_millis(120_000),
            memory_mb: 8_192,
            output_bytes: 64 << 20,
        },
        ..Bounds::default()
    };
    let found = checked(&document, &generous);
    let paths: Vec<&str> = found.iter().map(|(path, _, _)| path.as_str()).collect();
    assert_eq!(paths, ["nodes[2].config.source", "nodes[4].config.url"]);
}

#[test]
fn on_error_is_refused_on_a_fail_node() {
    let registry = registry();
    let mut fail = node(Primitive::Action, "fail", json!({"message": "no"}));
    assert_eq!(problems(&registry, &fail), vec![]);
    fail.on_error = OnError::Route;
    assert_eq!(
        problems(&registry, &fail),
        pairs(&[("nodes[3].on_error", "unexpected")])
    );
}
