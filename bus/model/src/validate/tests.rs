use super::*;
use serde_json::json;

/// A catalog that knows one kind per primitive, plus `if_else`.
struct TestCatalog;

impl KindCatalog for TestCatalog {
    fn check(
        &self,
        node: &Node,
        path: &str,
        _: &Names<'_>,
        errors: &mut Vec<ValidationError>,
    ) -> Option<Outputs> {
        match (node.primitive, node.kind.as_str()) {
            (Primitive::Condition, "if_else") => {
                Some(Outputs::Named(vec!["true".into(), "false".into()]))
            }
            (Primitive::Action, "http_request") => {
                if node.config.get("url").is_none() {
                    errors.push(ValidationError::new(
                        format!("{path}.config.url"),
                        "required",
                        "url",
                    ));
                }
                Some(Outputs::Single)
            }
            (Primitive::Trigger, "manual")
            | (Primitive::Action, "for_each")
            | (Primitive::Data, "mapping")
            | (Primitive::Connection, "credentials") => Some(Outputs::Single),
            _ => None,
        }
    }

    fn kinds(&self, _: Primitive) -> Vec<String> {
        vec!["manual".into()]
    }
}

fn check(doc: serde_json::Value) -> Vec<(String, String)> {
    let doc = WorkflowDocument::from_value(doc).unwrap();
    match validate(&doc, &TestCatalog) {
        Ok(()) => vec![],
        Err(e) => e.errors.into_iter().map(|e| (e.path, e.code)).collect(),
    }
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn accepts_a_valid_graph() {
    let doc = json!({"name": "ok", "nodes": [
        {"id": "t", "type": "trigger", "kind": "manual"},
        {"id": "c", "type": "condition", "kind": "if_else"},
        {"id": "m", "type": "data", "kind": "mapping"},
        {"id": "k", "type": "connection", "kind": "credentials"}
    ], "edges": [{"from": "t", "to": "c"}, {"from": "c", "to": "m", "when": "true"}]});
    assert_eq!(check(doc), vec![]);
}

#[test]
fn reports_every_problem_with_its_path() {
    let doc = json!({"name": "", "nodes": [
        {"id": "t", "type": "trigger", "kind": "manual"},
        {"id": "t", "type": "action", "kind": "http_request"},
        {"id": "9x", "type": "action", "kind": "teleport"},
        {"id": "c", "type": "condition", "kind": "if_else"},
        {"id": "k", "type": "connection", "kind": "credentials"}
    ], "edges": [
        {"from": "t", "to": "ghost"},
        {"from": "c", "to": "t"},
        {"from": "c", "to": "9x", "when": "maybe"},
        {"from": "t", "to": "k"}
    ]});
    assert_eq!(
        check(doc),
        pairs(&[
            ("name", "required"),
            ("nodes[1].id", "duplicate_id"),
            ("nodes[1].config.url", "required"),
            ("nodes[2].id", "invalid_id"),
            ("nodes[2].kind", "unknown_kind"),
            ("edges[0].to", "unknown_node"),
            ("edges[1].to", "edge_into_trigger"),
            ("edges[1].when", "required"),
            ("edges[2].when", "unknown_output"),
            ("edges[3].to", "edge_on_connection"),
        ])
    );
}

#[test]
fn an_unknown_kind_is_named_in_plain_english() {
    let doc = json!({"name": "x", "nodes": [
        {"id": "t", "type": "trigger", "kind": "manual"},
        {"id": "a", "type": "action", "kind": "teleport"}
    ], "edges": [{"from": "t", "to": "a"}]});
    let doc = WorkflowDocument::from_value(doc).unwrap();
    let errors = validate(&doc, &TestCatalog).unwrap_err().errors;
    assert_eq!(
        errors[0].message,
        "\"teleport\" is not a known action kind; known kinds: manual"
    );
}

#[test]
fn rejects_cycles() {
    let doc = json!({"name": "loop", "nodes": [
        {"id": "t", "type": "trigger", "kind": "manual"},
        {"id": "a", "type": "data", "kind": "mapping"},
        {"id": "b", "type": "data", "kind": "mapping"}
    ], "edges": [{"from": "t", "to": "a"}, {"from": "a", "to": "b"}, {"from": "b", "to": "a"}]});
    assert_eq!(check(doc), pairs(&[("edges", "cycle")]));
}

#[test]
fn a_cycle_names_only_its_nodes() {
    let doc = json!({"name": "loop", "nodes": [
        {"id": "t", "type": "trigger", "kind": "manual"},
        {"id": "check", "type": "condition", "kind": "if_else"},
        {"id": "reject", "type": "data", "kind": "mapping"},
        {"id": "user", "type": "data", "kind": "mapping"},
        {"id": "welcome", "type": "data", "kind": "mapping"}
    ], "edges": [
        {"from": "t", "to": "check"}, {"from": "check", "to": "reject", "when": "false"},
        {"from": "check", "to": "user", "when": "true"}, {"from": "user", "to": "check"},
        {"from": "user", "to": "welcome"}
    ]});
    let doc = WorkflowDocument::from_value(doc).unwrap();
    let errors = validate(&doc, &TestCatalog).unwrap_err().errors;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        errors[0].message,
        "the edges form a cycle: check → user → check; a workflow must be acyclic"
    );
}

#[test]
fn a_config_problem_does_not_hide_a_cycle() {
    let doc = json!({"name": "loop", "nodes": [
        {"id": "t", "type": "trigger", "kind": "manual"},
        {"id": "a", "type": "action", "kind": "http_request"},
        {"id": "b", "type": "data", "kind": "mapping"}
    ], "edges": [{"from": "t", "to": "a"}, {"from": "a", "to": "b"}, {"from": "b", "to": "a"}]});
    assert_eq!(
        check(doc),
        pairs(&[("nodes[1].config.url", "required"), ("edges", "cycle")])
    );
}

#[test]
fn a_document_that_does_not_parse_reports_every_problem() {
    let text = json!({"name": 3, "nodes": [
        {"id": "t", "type": "trigger", "kind": "manual"},
        {"id": "a", "type": "robot", "kind": "x"},
        {"id": "b", "type": "action", "kind": "http_request", "config": {}},
        {"id": "c", "type": "data", "kind": "mapping", "colour": "red"}
    ], "edges": [{"from": "t"}]})
    .to_string();
    let errors = check_json(text.as_bytes(), &TestCatalog)
        .unwrap_err()
        .errors;
    let mut found: Vec<(String, String)> = errors.into_iter().map(|e| (e.path, e.code)).collect();
    found.sort();
    assert_eq!(
        found,
        pairs(&[
            ("edges[0].to", "required"),
            ("name", "invalid_type"),
            ("nodes[1].type", "invalid_value"),
            ("nodes[2].config.url", "required"),
            ("nodes[3].colour", "unknown_field"),
        ])
    );
    let malformed = check_json(b"{\"name\": ", &TestCatalog).unwrap_err();
    assert_eq!(malformed.errors[0].code, "malformed_json");
}

#[test]
fn rejects_unreachable_nodes_and_missing_triggers() {
    let doc = json!({"name": "x", "nodes": [
        {"id": "t", "type": "trigger", "kind": "manual"},
        {"id": "a", "type": "data", "kind": "mapping"}
    ]});
    assert_eq!(check(doc), pairs(&[("nodes[1]", "unreachable")]));
    let doc = json!({"name": "x", "nodes": [{"id": "a", "type": "data", "kind": "mapping"}]});
    assert_eq!(check(doc), pairs(&[("nodes", "no_trigger")]));
}

#[test]
fn rejects_reserved_ids_and_bad_retry() {
    let doc = json!({"name": "x", "nodes": [
        {"id": "trigger", "type": "trigger", "kind": "manual",
         "retry": {"max_attempts": 0, "multiplier": 0.5}}
    ]});
    assert_eq!(
        check(doc),
        pairs(&[
            ("nodes[0].id", "reserved_id"),
            ("nodes[0].retry.max_attempts", "out_of_range"),
            ("nodes[0].retry.multiplier", "out_of_range"),
        ])
    );
}

#[test]
fn every_name_expressions_bind_is_refused_as_a_node_id() {
    for name in ["item", "index", "loop", "execution", "workflow", "vars"] {
        let doc = json!({"name": "x", "nodes": [
            {"id": "t", "type": "trigger", "kind": "manual"},
            {"id": name, "type": "data", "kind": "mapping"}
        ], "edges": [{"from": "t", "to": name}]});
        assert_eq!(
            check(doc),
            pairs(&[("nodes[1].id", "reserved_id")]),
            "{name}"
        );
    }
    let doc = json!({"name": "x", "nodes": [
        {"id": "t", "type": "trigger", "kind": "manual"},
        {"id": "items", "type": "data", "kind": "mapping"}
    ], "edges": [{"from": "t", "to": "items"}]});
    assert_eq!(check(doc), vec![]);
}

#[test]
fn a_loop_body_is_checked_as_a_workflow_at_its_paths() {
    let body = json!({"nodes": [
        {"id": "t2", "type": "trigger", "kind": "manual"},
        {"id": "start", "type": "data", "kind": "mapping"},
        {"id": "call", "type": "action", "kind": "http_request"},
        {"id": "inner", "type": "action", "kind": "for_each", "config": {
            "items": "item", "body": {"nodes": [{"id": "call", "type": "data", "kind": "mapping"}]}}}
    ], "edges": [
        {"from": "call", "to": "after"},
        {"from": "call", "to": "inner"},
        {"from": "inner", "to": "call"}
    ]});
    let found = check(json!({"name": "w", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "each", "type": "action", "kind": "for_each",
         "config": {"items": "trigger.body", "body": body}},
        {"id": "after", "type": "data", "kind": "mapping"}
    ], "edges": [{"from": "start", "to": "each"}, {"from": "each", "to": "after"}]}));
    let at = "nodes[1].config.body";
    let expected: Vec<(String, String)> = [
        ("nodes[0].type", "not_in_body"),
        ("nodes[1].id", "duplicate_id"),
        ("nodes[2].config.url", "required"),
        ("nodes[3].config.body.nodes[0].id", "duplicate_id"),
        ("edges[0].to", "unknown_node"),
        ("edges", "cycle"),
    ]
    .iter()
    .map(|(path, code)| (format!("{at}.{path}"), code.to_string()))
    .collect();
    assert_eq!(found, expected);
}

#[test]
fn an_empty_body_is_refused() {
    let found = check(json!({"name": "w", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "each", "type": "action", "kind": "for_each",
         "config": {"items": "trigger.body", "body": {"nodes": []}}}
    ], "edges": [{"from": "start", "to": "each"}]}));
    assert_eq!(found, pairs(&[("nodes[1].config.body.nodes", "required")]));
}
