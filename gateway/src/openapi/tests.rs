use super::*;

/// A listener lists only the routes it serves: with the operations routes
/// on a listener of their own, the API's description leaves them out.
#[test]
fn each_listener_describes_what_it_serves() {
    let listed = |surface| {
        let doc = document(8 << 20, surface);
        ["/health", "/ready", "/metrics", "/v1/workflows"]
            .map(|path| doc["paths"].get(path).is_some())
    };
    assert_eq!(listed(Surface::All), [true, true, true, true]);
    assert_eq!(listed(Surface::Public), [false, false, false, true]);
}

/// Every `$ref` under `value`.
fn references(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get("$ref") {
                found.push(r.clone());
            }
            o.values().for_each(|v| references(v, found));
        }
        Value::Array(a) => a.iter().for_each(|v| references(v, found)),
        _ => {}
    }
}

#[test]
fn every_route_is_described_and_every_reference_resolves() {
    let (doc, conflicts) = build(8 * 1024 * 1024, Surface::All);
    assert_eq!(
        conflicts,
        Vec::<String>::new(),
        "a request and an answer schema share a name: rename one (`#[schemars(rename)]`)"
    );
    assert_eq!(doc["openapi"], "3.1.0");
    for route in routes() {
        let path = route.path.replace("{*path}", "{path}");
        let method = match route.method {
            "ANY" => "post".to_owned(),
            m => m.to_lowercase(),
        };
        let op = &doc["paths"][&path][&method];
        let name = format!("{method} {path}");
        assert!(!route.summary.is_empty(), "{name}: a summary");
        assert_eq!(op["summary"], route.summary, "{name}");
        assert!(!route.replies.is_empty(), "{name}: an answer");
        for reply in &route.replies {
            let answer = &op["responses"][reply.status.to_string()];
            match reply.content {
                Content::Json(_) => assert!(
                    answer["content"][JSON]["schema"].is_object(),
                    "{name}: the schema of its {} answer",
                    reply.status
                ),
                Content::Text(media) => assert!(answer["content"][media].is_object(), "{name}"),
                Content::None => assert!(answer["content"].is_null(), "{name}"),
            }
        }
    }
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let mut found = Vec::new();
    references(&doc, &mut found);
    assert!(found.len() > 100, "{} references", found.len());
    for r in found {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{r} points outside the components"));
        assert!(schemas.contains_key(name), "{r} resolves to nothing");
    }
    assert!(
        schemas["Node"].is_object(),
        "the document's parts are components"
    );
}

#[test]
fn answers_name_their_fields_and_lists_their_items() {
    let doc = document(8 * 1024 * 1024, Surface::All);
    let schemas = &doc["components"]["schemas"];
    let answer = |method: &str, path: &str, status: &str| {
        let schema = &doc["paths"][path][method]["responses"][status]["content"][JSON]["schema"];
        let name = schema["$ref"]
            .as_str()
            .and_then(|r| r.strip_prefix("#/components/schemas/"))
            .unwrap_or_else(|| panic!("{method} {path}: {schema}"));
        &schemas[name]
    };
    for (method, path, status) in
        doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .unwrap()
                    .iter()
                    .flat_map(move |(method, op)| {
                        op["responses"]
                            .as_object()
                            .unwrap()
                            .iter()
                            .filter(|(status, _)| status.starts_with('2'))
                            .filter(|(_, a)| !a["content"][JSON].is_null())
                            .map(move |(status, _)| (method, path, status))
                    })
            })
    {
        let schema = answer(method, path, status);
        assert!(
            schema["properties"].is_object()
                || path.ends_with("openapi.json")
                || path.ends_with("/workflow"),
            "{method} {path} {status}: its fields are named: {schema}"
        );
    }
    let items = &answer("get", "/v1/workflows", "200")["properties"]["items"]["items"]["$ref"];
    assert_eq!(items, "#/components/schemas/WorkflowSummary");
    let items = &answer("get", "/v1/audit", "200")["properties"]["items"]["items"]["$ref"];
    assert_eq!(items, "#/components/schemas/AuditRecord");
    assert_eq!(
        answer("get", "/v1/workflows/{id}", "200")["properties"]["document"]["$ref"],
        "#/components/schemas/WorkflowDocument",
        "a workflow's document has the model's own schema"
    );
    assert_eq!(
        answer("get", "/ready", "503"),
        answer("get", "/ready", "200"),
        "not ready is the same answer"
    );
}

fn parameter<'a>(doc: &'a Value, method: &str, path: &str, name: &str) -> &'a Value {
    doc["paths"][path][method]["parameters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("{method} {path} lists no {name}"))
}

#[test]
fn every_parameter_is_listed_from_its_type() {
    let doc = document(8 * 1024 * 1024, Surface::All);
    let limit = parameter(&doc, "get", "/v1/executions", "limit");
    assert_eq!(limit["in"], "query");
    assert_eq!(limit["required"], false);
    assert_eq!(limit["schema"]["maximum"], 500);
    assert!(limit["description"].as_str().unwrap().contains("50"));
    assert_eq!(
        parameter(&doc, "get", "/v1/executions", "cursor")["schema"]["format"],
        "uuid"
    );
    assert_eq!(
        parameter(&doc, "get", "/v1/executions", "status")["schema"]["enum"][0],
        "queued"
    );
    let steps_limit = parameter(&doc, "get", "/v1/executions/{id}", "steps_limit");
    assert_eq!(steps_limit["schema"]["maximum"], 1000);
    assert!(steps_limit["description"].as_str().unwrap().contains("200"));
    for (path, name) in [
        ("/v1/executions/{id}", "scope"),
        ("/v1/executions/{id}", "steps_after"),
        ("/v1/executions/{id}/logs", "scope"),
    ] {
        let p = parameter(&doc, "get", path, name);
        assert!(p["schema"]["pattern"].is_string(), "{path} {name}: {p}");
    }
    let wait = parameter(&doc, "post", "/v1/workflows/{id}/executions", "wait");
    assert_eq!(wait["schema"]["type"], "boolean", "{wait}");
    for (method, path) in [
        ("post", "/v1/workflows/{id}/executions"),
        ("post", "/v1/executions/{id}/resume"),
        ("post", "/hooks/{tenant}/{path}"),
    ] {
        assert_eq!(
            parameter(&doc, method, path, "Idempotency-Key")["in"],
            "header"
        );
    }
    for path in ["/v1/events", "/v1/executions/{id}/events"] {
        assert_eq!(
            parameter(&doc, "get", path, "Last-Event-ID")["in"],
            "header"
        );
        assert_eq!(parameter(&doc, "get", path, "ticket")["in"], "query");
    }
    for name in ["actor", "action", "since", "until", "cursor", "limit"] {
        parameter(&doc, "get", "/v1/audit", name);
    }
    for (name, format) in [("from", "date"), ("to", "date")] {
        assert_eq!(
            parameter(&doc, "get", "/v1/usage", name)["schema"]["format"],
            format
        );
    }
    for (path, item) in doc["paths"].as_object().unwrap() {
        let names = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'));
        for (method, op) in item.as_object().unwrap() {
            for name in names.clone() {
                let p = parameter(&doc, method, path, name);
                assert_eq!((&p["in"], &p["required"]), (&json!("path"), &json!(true)));
            }
            let ps = op["parameters"].as_array().unwrap();
            assert!(
                ps.iter()
                    .all(|p| p["description"].is_string() || p["in"] == "path"),
                "{method} {path}: every query and header parameter is described"
            );
            assert!(
                ps.iter().all(|p| !p["schema"].to_string().contains("null")),
                "{method} {path}: an absent value is no null"
            );
        }
    }
}

#[test]
fn the_error_code_is_the_enum_of_codes() {
    let doc = document(8 * 1024 * 1024, Surface::All);
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["Error"]["properties"]["error"]["properties"]["code"]["$ref"],
        "#/components/schemas/ErrorCode"
    );
    let text = schemas["ErrorCode"].to_string();
    for code in ["bad_request", "not_found", "idempotency_key_reused"] {
        assert!(text.contains(&format!("\"{code}\"")), "{code}: {text}");
    }
}

/// Every object that names its properties names all of them: a field an
/// answer carries and its schema does not is a mismatch, too.
fn closed(value: &mut Value) {
    match value {
        Value::Object(o) => {
            if o.contains_key("properties") && !o.contains_key("additionalProperties") {
                o.insert("additionalProperties".into(), Value::Bool(false));
            }
            o.values_mut().for_each(closed);
        }
        Value::Array(a) => a.iter_mut().for_each(closed),
        _ => {}
    }
}

/// Checks a real answer against what the description says `method path`
/// answers with `status`, formats included (as Schemathesis does).
fn conforms(doc: &Value, method: &str, path: &str, status: u16, answer: impl serde::Serialize) {
    let mut schema =
        doc["paths"][path][method]["responses"][status.to_string()]["content"][JSON]["schema"]
            .clone();
    assert!(
        schema.is_object(),
        "{method} {path} answers {status} with JSON"
    );
    schema["components"] = doc["components"].clone();
    closed(&mut schema);
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let answer = serde_json::to_value(answer).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&answer)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} {status}: {answer} does not conform: {errors:?}"
    );
}

#[test]
fn real_answers_conform_to_their_schemas() {
    use flowmesh_model::{
        ExecutionId, ExecutionStatus, HumanDuration, NodeStatus, Role, TenantId, WorkflowId,
    };
    use flowmesh_services::records::{
        self, ExecutionRecord, ExecutionSummary, KeyInfo, LedgerEntry, StepRecord, StreamTicket,
    };

    use crate::answers::*;

    let doc = document(8 * 1024 * 1024, Surface::All);
    let execution = ExecutionId::new();
    let summary = records::WorkflowSummary {
        id: WorkflowId::new(),
        name: "signup".into(),
        latest_version: 2,
        published_version: None,
        created_at: 1,
        updated_at: 2,
    };
    let document = flowmesh_model::WorkflowDocument::from_json(
        br#"{"name": "signup", "nodes": [{"id": "hook", "type": "trigger", "kind": "webhook",
             "config": {"path": "signup"}}]}"#,
    )
    .unwrap();
    conforms(
        &doc,
        "get",
        "/v1/workflows/{id}",
        200,
        Workflow {
            summary: WorkflowSummary::from(&summary),
            document: document.clone(),
        },
    );
    let version = || WorkflowVersion {
        version: 2,
        created_at: 1,
        published: true,
    };
    conforms(
        &doc,
        "get",
        "/v1/workflows/{id}/versions",
        200,
        Page {
            items: vec![version()],
            next_cursor: Some("2".into()),
        },
    );
    conforms(
        &doc,
        "get",
        "/v1/workflows/{id}/versions/{version}",
        200,
        WorkflowVersionDocument {
            workflow_id: summary.id,
            version: version(),
            document,
        },
    );
    conforms(
        &doc,
        "get",
        "/v1/workflows",
        200,
        Items {
            items: vec![WorkflowSummary::from(&summary)],
        },
    );
    let record = ExecutionRecord {
        id: execution,
        tenant: TenantId::new(),
        workflow: summary.id,
        version: 1,
        status: ExecutionStatus::Running,
        trigger_node: "hook".into(),
        trigger: serde_json::json!({"body": [1, "two"]}),
        output: None,
        error: None,
        cancel_requested: false,
        deadline_ms: None,
        created_at: 1,
        started_at: Some(2),
        finished_at: None,
        origin: Some(records::Origin {
            execution: ExecutionId::new(),
            node: "hook".into(),
        }),
        traceparent: None,
        test: Some(records::TestRun::default()),
        handles: None,
        called_by: None,
        holds_slot: false,
        steps: vec![StepRecord {
            execution,
            node: "hook".into(),
            status: NodeStatus::Waiting,
            attempts: 1,
            input: None,
            output: Some(serde_json::json!("text")),
            branch: None,
            error: None,
            started_at: Some(2),
            finished_at: None,
            wake_at: Some(9),
            logs: vec!["line".into()],
        }],
        in_process: None,
        engine_death_at: None,
        last_event_seq: None,
    };
    conforms(
        &doc,
        "get",
        "/v1/executions/{id}",
        200,
        Execution::from(&record),
    );
    conforms(
        &doc,
        "get",
        "/v1/executions",
        200,
        Page {
            items: vec![ExecutionItem::from(&ExecutionSummary {
                id: execution,
                workflow: summary.id,
                version: 1,
                status: ExecutionStatus::Succeeded,
                created_at: 1,
                finished_at: Some(3),
                test: false,
            })],
            next_cursor: Some(execution.to_string()),
        },
    );
    let path = "/v1/workflows/{id}/executions";
    conforms(&doc, "post", path, 202, Started::new(execution));
    conforms(
        &doc,
        "post",
        path,
        202,
        Started {
            execution_id: execution,
            status: Some(ExecutionStatus::Running),
        },
    );
    conforms(
        &doc,
        "post",
        path,
        200,
        Finished {
            execution_id: execution,
            status: ExecutionStatus::Failed,
            output: None,
            error: Some("boom".into()),
        },
    );
    let key = KeyInfo {
        id: "k1".into(),
        name: "ci".into(),
        prefix: "fm_123456789".into(),
        role: Role::Editor,
        created_at: 1,
        revoked_at: None,
        created_by: Some("user:u1".into()),
        creator_role: Some(Role::Owner),
    };
    conforms(
        &doc,
        "get",
        "/v1/api-keys",
        200,
        Items {
            items: vec![key.clone()],
        },
    );
    conforms(
        &doc,
        "post",
        "/v1/api-keys",
        201,
        NewApiKey::new(key, "fm_secret".into()),
    );
    let entry = LedgerEntry {
        id: "l1".into(),
        at: 1,
        delta: 100,
        balance_after: 100,
        kind: "grant".into(),
        reference: None,
        actor: Some("key:k1".into()),
        note: None,
    };
    conforms(
        &doc,
        "get",
        "/v1/billing",
        200,
        Billing {
            balance: 100,
            pending: 3,
            auto_refill: Some(Refill {
                threshold: 10,
                amount: 50,
            }),
            ledger: vec![entry.clone()],
            next_cursor: None,
        },
    );
    conforms(&doc, "post", "/v1/admin/tenants/{slug}/credits", 201, entry);
    conforms(
        &doc,
        "put",
        "/v1/billing/auto-refill",
        200,
        AutoRefillSet { auto_refill: None },
    );
    conforms(
        &doc,
        "get",
        "/v1/settings",
        200,
        flowmesh_api::Settings {
            retention: HumanDuration::from_millis(30 * 86_400_000 + 5_400_000),
            max_output_bytes: 1024,
        },
    );
    conforms(
        &doc,
        "post",
        "/v1/auth/login",
        200,
        Session::from(flowmesh_api::Session {
            token: "t".into(),
            expires_at: 5,
            tenant: TenantId::new(),
            tenant_slug: "acme".into(),
            role: Role::Owner,
        }),
    );
    conforms(
        &doc,
        "post",
        "/v1/stream-tickets",
        201,
        StreamTicket {
            ticket: "st_1".into(),
            expires_at: 5,
        },
    );
    conforms(
        &doc,
        "put",
        "/v1/secrets/{name}",
        201,
        SecretStored {
            name: "token".into(),
            created: true,
        },
    );
    conforms(&doc, "get", "/health", 200, Health { status: Up::Ok });
}
