//! The OpenAPI 3.1 description of the API, made from the route table: every
//! route with its access, parameters, body and answers. Bodies the gateway
//! reads into types take their schemas from those types (schemars); the
//! workflow document's schema is the model's own.

use serde_json::{Map, Value, json};

use crate::access::Access;
use crate::routes::{RouteInfo, routes};

/// What one route takes and gives, beyond its path and access.
struct Doc {
    summary: &'static str,
    /// A component schema name for the JSON body, if it takes one.
    body: Option<&'static str>,
    /// Status and component schema name of the answer that means success.
    ok: (u16, Option<&'static str>),
    /// The answer is not JSON: Server-Sent Events, a WebSocket, or text.
    media: &'static str,
}

const JSON: &str = "application/json";

const fn doc(
    summary: &'static str,
    body: Option<&'static str>,
    ok: (u16, Option<&'static str>),
) -> Doc {
    Doc {
        summary,
        body,
        ok,
        media: JSON,
    }
}

fn describe(method: &str, path: &str) -> Option<Doc> {
    let d = match (method, path) {
        ("GET", "/health") => doc("Whether the process is up", None, (200, Some("Object"))),
        ("GET", "/ready") => doc(
            "Whether the store and the bus answer (503 when not)",
            None,
            (200, Some("Object")),
        ),
        ("GET", "/metrics") => Doc {
            media: "text/plain",
            ..doc(
                "Prometheus metrics, with the instance's metrics token (404 when it has none)",
                None,
                (200, None),
            )
        },
        ("GET", "/openapi.json") => doc("This description", None, (200, Some("Object"))),
        ("GET", "/v1/schema/workflow") => doc(
            "The JSON Schema of the workflow document",
            None,
            (200, Some("Object")),
        ),
        ("POST", "/v1/auth/register") => doc(
            "Create a tenant and its owner, then sign in (the same answer whether or not the email has an account)",
            Some("Register"),
            (202, Some("Pending")),
        ),
        ("POST", "/v1/auth/login") => doc("Open a session", Some("Login"), (200, Some("Session"))),
        ("POST", "/v1/auth/accept") => doc(
            "Accept an invitation, then sign in (the same answer whether or not the email has an account)",
            Some("Accept"),
            (202, Some("Pending")),
        ),
        ("POST", "/v1/auth/logout") => doc("End the caller's session", None, (204, None)),
        ("GET", "/v1/me") => doc("Who the credential is", None, (200, Some("Object"))),
        ("GET", "/v1/node-kinds") => doc("The node kinds", None, (200, Some("Items"))),
        ("GET", "/v1/workflows") => doc("List workflows", None, (200, Some("Items"))),
        ("POST", "/v1/workflows") => doc(
            "Create a workflow (a draft)",
            Some("WorkflowDocument"),
            (201, Some("WorkflowSummary")),
        ),
        ("POST", "/v1/workflows/generate") => doc(
            "Generate a draft workflow from a description (422 when none could be built)",
            Some("Generate"),
            (201, Some("Object")),
        ),
        ("GET", "/v1/templates") => doc(
            "The template library, with each template's parameters",
            None,
            (200, Some("Items")),
        ),
        ("POST", "/v1/templates/{id}/instantiate") => doc(
            "Create a draft workflow from a template",
            Some("Instantiate"),
            (201, Some("WorkflowSummary")),
        ),
        ("GET", "/v1/settings/llm") => doc(
            "The tenant's language-model endpoint (null: the instance's)",
            None,
            (200, Some("Object")),
        ),
        ("PUT", "/v1/settings/llm") => doc(
            "Set the tenant's language-model endpoint",
            Some("ModelSettings"),
            (200, Some("Object")),
        ),
        ("GET", "/v1/workflows/{id}") => doc(
            "Read a workflow and its latest document",
            None,
            (200, Some("WorkflowSummary")),
        ),
        ("PUT", "/v1/workflows/{id}") => doc(
            "Save a new draft version",
            Some("WorkflowDocument"),
            (200, Some("WorkflowSummary")),
        ),
        ("DELETE", "/v1/workflows/{id}") => doc("Delete a workflow", None, (204, None)),
        ("POST", "/v1/workflows/{id}/publish") => doc(
            "Publish the latest version",
            None,
            (200, Some("WorkflowSummary")),
        ),
        ("POST", "/v1/workflows/{id}/executions") => doc(
            "Start an execution of the published version (`?wait=true` answers with the result; an `Idempotency-Key` sent again with another input: 422)",
            Some("Object"),
            (202, Some("Started")),
        ),
        ("GET", "/v1/workflows/{id}/stats") => doc(
            "Execution statistics of a workflow",
            None,
            (200, Some("Object")),
        ),
        ("GET", "/v1/executions") => {
            doc("List executions, newest first", None, (200, Some("Page")))
        }
        ("GET", "/v1/executions/{id}") => doc(
            "An execution and each node's state",
            None,
            (200, Some("Execution")),
        ),
        ("POST", "/v1/executions/{id}/cancel") => {
            doc("Cancel an execution", None, (202, Some("Started")))
        }
        ("POST", "/v1/executions/{id}/resume") => doc(
            "Resume a wait_for_event node (the first resume wins; the same one again: 202, any other: 409)",
            Some("Resume"),
            (202, Some("Started")),
        ),
        ("GET", "/v1/executions/{id}/events") => Doc {
            media: "text/event-stream",
            ..doc(
                "Server-Sent Events of one execution, replayed from the record (after Last-Event-ID), until it ends",
                None,
                (200, None),
            )
        },
        ("GET", "/v1/executions/{id}/logs") => doc(
            "Each node's attempts, input, output and logs",
            None,
            (200, Some("Object")),
        ),
        ("POST", "/v1/executions/{id}/rerun") => doc(
            "Run again from a node, reusing recorded outputs upstream (admitted like a start: 402, 413)",
            Some("Rerun"),
            (202, Some("Started")),
        ),
        ("GET", "/v1/settings") => doc(
            "The tenant's retention and output cap",
            None,
            (200, Some("Object")),
        ),
        ("PUT", "/v1/settings") => doc(
            "Change the tenant's retention and output cap",
            Some("Settings"),
            (200, Some("Object")),
        ),
        ("GET", "/v1/sandboxes") => doc(
            "The tenant's live code sandboxes in this process",
            None,
            (200, Some("Items")),
        ),
        ("DELETE", "/v1/sandboxes/{id}") => doc("Tear a sandbox down", None, (204, None)),
        ("GET", "/v1/api-keys") => doc(
            "List API keys (by prefix) and who created each",
            None,
            (200, Some("ApiKeys")),
        ),
        ("POST", "/v1/api-keys") => doc(
            "Create an API key (shown once)",
            Some("NewKey"),
            (201, Some("CreatedApiKey")),
        ),
        ("DELETE", "/v1/api-keys/{id}") => doc(
            "Revoke an API key (a key an owner made: only an owner)",
            None,
            (200, Some("ApiKey")),
        ),
        ("GET", "/v1/users") => doc("List the tenant's users", None, (200, Some("Items"))),
        ("DELETE", "/v1/users/{id}") => doc("Remove a user", None, (204, None)),
        ("POST", "/v1/invitations") => doc(
            "Invite someone with a role (the token is shown once)",
            Some("Invite"),
            (201, Some("Object")),
        ),
        ("GET", "/v1/secrets") => doc(
            "List the tenant's secrets (names only)",
            None,
            (200, Some("Items")),
        ),
        ("PUT", "/v1/secrets/{name}") => doc(
            "Create or replace a secret",
            Some("PutSecret"),
            (200, Some("Object")),
        ),
        ("DELETE", "/v1/secrets/{name}") => doc("Delete a secret", None, (204, None)),
        ("GET", "/v1/audit") => doc("The audit log, newest first", None, (200, Some("Page"))),
        ("GET", "/v1/events") => Doc {
            media: "text/event-stream",
            ..doc(
                "Every execution event of the tenant from now on, or replayed from the record after Last-Event-ID",
                None,
                (200, None),
            )
        },
        ("POST", "/v1/stream-tickets") => doc(
            "A single-use ticket (60 s) that opens one event stream as `?ticket=`, for clients that cannot send a header",
            None,
            (201, Some("Object")),
        ),
        ("GET", "/v1/events/ws") => Doc {
            media: "application/octet-stream",
            ..doc("The same events over a WebSocket", None, (101, None))
        },
        ("GET", "/v1/usage") => doc("Usage per day and workflow", None, (200, Some("Object"))),
        ("GET", "/v1/billing") => doc(
            "Balance, automatic refill and ledger",
            None,
            (200, Some("Object")),
        ),
        ("PUT", "/v1/billing/auto-refill") => doc(
            "Set (or with null, clear) the automatic refill",
            Some("AutoRefill"),
            (200, Some("Object")),
        ),
        ("GET", "/v1/admin/tenants") => doc(
            "Every tenant (the instance's administrators)",
            None,
            (200, Some("Items")),
        ),
        ("POST", "/v1/admin/tenants/{slug}/credits") => doc(
            "Grant credits to a tenant",
            Some("Grant"),
            (201, Some("Object")),
        ),
        ("PUT", "/v1/admin/tenants/{slug}/limits") => doc(
            "Set a tenant's limits",
            Some("Limits"),
            (200, Some("Object")),
        ),
        ("ANY", "/hooks/{tenant}/{*path}") => doc(
            "A webhook of a published workflow (any method; an `Idempotency-Key` sent again with another request: 422)",
            Some("Any"),
            (202, Some("Object")),
        ),
        _ => return None,
    };
    Some(d)
}

/// Routes the table has that [`describe`] does not: kept empty by a test.
pub fn undocumented() -> Vec<String> {
    routes()
        .iter()
        .filter(|r| describe(r.method, r.path).is_none())
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

fn error_schema(components: &mut Map<String, Value>) -> Value {
    let code =
        serde_json::to_value(schemars::schema_for!(flowmesh_api::ErrorCode)).unwrap_or_default();
    let code = hoist(code, components);
    components.insert("ErrorCode".into(), code);
    json!({"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["code", "message"],
        "properties": {"code": reference("ErrorCode"), "message": {"type": "string"}, "details": {}}
    }}})
}

/// Moves a schemars schema's `$defs` into the components, pointing its
/// references there.
fn hoist(mut schema: Value, components: &mut Map<String, Value>) -> Value {
    if let Some(Value::Object(defs)) = schema.as_object_mut().and_then(|o| o.remove("$defs")) {
        for (name, def) in defs {
            let def = hoist(def, components);
            components.insert(name, def);
        }
    }
    if let Some(o) = schema.as_object_mut() {
        o.remove("$schema");
    }
    rewrite_refs(&mut schema);
    schema
}

fn rewrite_refs(value: &mut Value) {
    match value {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get_mut("$ref")
                && let Some(name) = r.strip_prefix("#/$defs/")
            {
                *r = format!("#/components/schemas/{name}");
            }
            o.values_mut().for_each(rewrite_refs);
        }
        Value::Array(a) => a.iter_mut().for_each(rewrite_refs),
        _ => {}
    }
}

fn components(max_output_bytes: u64) -> Map<String, Value> {
    use crate::bodies::*;
    let mut c = Map::new();
    let typed: [(&str, Value); 15] = [
        (
            "Generate",
            serde_json::to_value(schemars::schema_for!(Generate)).unwrap_or_default(),
        ),
        (
            "Instantiate",
            serde_json::to_value(schemars::schema_for!(Instantiate)).unwrap_or_default(),
        ),
        (
            "ModelSettings",
            serde_json::to_value(schemars::schema_for!(ModelSettings)).unwrap_or_default(),
        ),
        (
            "Register",
            serde_json::to_value(schemars::schema_for!(Register)).unwrap_or_default(),
        ),
        (
            "Login",
            serde_json::to_value(schemars::schema_for!(Login)).unwrap_or_default(),
        ),
        (
            "Accept",
            serde_json::to_value(schemars::schema_for!(Accept)).unwrap_or_default(),
        ),
        (
            "Invite",
            serde_json::to_value(schemars::schema_for!(Invite)).unwrap_or_default(),
        ),
        (
            "NewKey",
            serde_json::to_value(schemars::schema_for!(NewKey)).unwrap_or_default(),
        ),
        (
            "PutSecret",
            serde_json::to_value(schemars::schema_for!(PutSecret)).unwrap_or_default(),
        ),
        (
            "AutoRefill",
            serde_json::to_value(schemars::schema_for!(Option<AutoRefill>)).unwrap_or_default(),
        ),
        (
            "Grant",
            serde_json::to_value(schemars::schema_for!(Grant)).unwrap_or_default(),
        ),
        (
            "Limits",
            serde_json::to_value(schemars::schema_for!(Limits)).unwrap_or_default(),
        ),
        (
            "Resume",
            serde_json::to_value(schemars::schema_for!(Resume)).unwrap_or_default(),
        ),
        (
            "Rerun",
            serde_json::to_value(schemars::schema_for!(Rerun)).unwrap_or_default(),
        ),
        (
            "Settings",
            serde_json::to_value(schemars::schema_for!(Settings)).unwrap_or_default(),
        ),
    ];
    for (name, schema) in typed {
        let schema = hoist(schema, &mut c);
        c.insert(name.to_owned(), schema);
    }
    c["Settings"]["properties"]["max_output_bytes"]["maximum"] = json!(max_output_bytes);
    let document = hoist(flowmesh_model::WorkflowDocument::json_schema(), &mut c);
    c.insert("WorkflowDocument".into(), document);
    let id = json!({"type": "string"});
    let key = |extra: &[&str]| {
        let mut required = vec!["id", "name", "prefix", "role", "created_at", "created_by"];
        required.extend(extra);
        json!({"type": "object", "required": required, "properties": {
        "id": id, "name": {"type": "string"}, "prefix": {"type": "string"}, "role": {"type": "string"},
        "created_at": {"type": "integer"}, "revoked_at": {"type": ["integer", "null"]},
        "created_by": {"type": ["string", "null"], "description": "`user:<id>` or `key:<id>`; null for a key the instance made"},
        "key": {"type": "string"}}})
    };
    let rest: [(&str, Value); 13] = [
        ("ApiKey", key(&["revoked_at"])),
        ("CreatedApiKey", key(&["key"])),
        (
            "ApiKeys",
            json!({"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": key(&["revoked_at"])}}}),
        ),
        (
            "Pending",
            json!({"type": "object", "required": ["status", "message"], "properties": {
            "status": {"const": "accepted"}, "message": {"type": "string"}}}),
        ),
        ("Error", error_schema(&mut c)),
        ("Object", json!({"type": "object"})),
        ("Any", json!({})),
        (
            "Items",
            json!({"type": "object", "required": ["items"], "properties": {"items": {"type": "array"}}}),
        ),
        (
            "Page",
            json!({"type": "object", "required": ["items"], "properties": {"items": {"type": "array"}, "next_cursor": {"type": ["string", "null"]}}}),
        ),
        (
            "Session",
            json!({"type": "object", "required": ["token", "expires_at", "tenant", "role"], "properties": {
            "token": {"type": "string"}, "expires_at": {"type": "integer"}, "role": {"type": "string"},
            "tenant": {"type": "object", "properties": {"id": id, "slug": {"type": "string"}}}}}),
        ),
        (
            "WorkflowSummary",
            json!({"type": "object", "required": ["id", "name", "version"], "properties": {
            "id": id, "name": {"type": "string"}, "version": {"type": "integer"},
            "published_version": {"type": ["integer", "null"]}, "created_at": {"type": "integer"}, "updated_at": {"type": "integer"}}}),
        ),
        (
            "Started",
            json!({"type": "object", "required": ["execution_id"], "properties": {"execution_id": id}}),
        ),
        (
            "Execution",
            json!({"type": "object", "required": ["id", "workflow_id", "status", "nodes"], "properties": {
            "id": id, "workflow_id": id, "status": {"type": "string"}, "nodes": {"type": "array"}}}),
        ),
    ];
    for (name, schema) in rest {
        c.insert(name.to_owned(), schema);
    }
    c
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// The parameters of a route: its path's, its query type's (one per field,
/// described by the field's docs) and the headers it reads.
fn parameters(route: &RouteInfo, path: &str, components: &mut Map<String, Value>) -> Vec<Value> {
    let mut parameters: Vec<Value> = path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            let schema = match name {
                "name" => json!({"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,128}$"}),
                _ => json!({"type": "string"}),
            };
            json!({"name": name, "in": "path", "required": true, "schema": schema})
        })
        .collect();
    if let Some(query) = route.query {
        let schema = hoist(
            serde_json::to_value(query()).unwrap_or_default(),
            components,
        );
        let required = &schema["required"];
        let fields = schema["properties"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        parameters.extend(fields.into_iter().map(|(name, mut field)| {
            let description = field
                .as_object_mut()
                .and_then(|f| f.remove("description"))
                .unwrap_or_default();
            let required = required
                .as_array()
                .is_some_and(|r| r.contains(&json!(name)));
            json!({"name": name, "in": "query", "required": required,
                   "description": description, "schema": field})
        }));
    }
    parameters.extend(route.headers.iter().map(|h| {
        json!({"name": h.name, "in": "header", "required": false, "description": h.description,
               "schema": {"type": "string", "pattern": h.pattern}})
    }));
    parameters
}

fn operation(route: &RouteInfo, d: &Doc, components: &mut Map<String, Value>) -> Value {
    let path = route.path.replace("{*path}", "{path}");
    let parameters = parameters(route, &path, components);
    let mut responses = Map::new();
    let ok = match (d.ok.1, d.media) {
        (Some(schema), JSON) => {
            json!({"description": d.summary, "content": {JSON: {"schema": reference(schema)}}})
        }
        (_, JSON) => json!({"description": d.summary}),
        (_, media) => {
            json!({"description": d.summary, "content": {media: {"schema": {"type": "string"}}}})
        }
    };
    responses.insert(d.ok.0.to_string(), ok.clone());
    if route.path == "/v1/secrets/{name}" && route.method == "PUT" {
        // 201 for a new secret, 200 for a replaced one.
        responses.insert("201".into(), ok);
    }
    let error = json!({"description": "an error; `error.message` says what and whether retrying helps",
                       "content": {JSON: {"schema": reference("Error")}}});
    let mut codes = vec![400, 404, 405, 413, 415, 429, 503];
    match route.guard.access {
        Access::Public => codes.push(401),
        _ => codes.extend([401, 402, 403]),
    }
    codes.extend([409, 422, 501]);
    if route.path == "/v1/workflows/generate" {
        // The model provider failed (503 when retrying is safe).
        codes.push(502);
    }
    if route.path == "/ready" {
        codes.push(503);
    }
    for code in codes {
        responses
            .entry(code.to_string())
            .or_insert_with(|| error.clone());
    }
    if route.path.starts_with("/hooks/") || route.path.ends_with("/executions") {
        // A synchronous start answers with the workflow's own response or result.
        responses.insert(
            "default".into(),
            json!({"description": "the workflow's response", "content": {JSON: {"schema": {}}}}),
        );
    }
    let mut op = json!({
        "operationId": format!("{} {path}", route.method.to_lowercase()),
        "summary": d.summary,
        "parameters": parameters,
        "responses": responses,
    });
    if route.guard.access == Access::Public {
        op["security"] = json!([]);
    }
    if let Some(body) = d.body {
        // Bodies the route can do without (start input, resume, webhooks) are optional.
        let required = !matches!(body, "Object" | "Resume" | "Any");
        op["requestBody"] =
            json!({"required": required, "content": {JSON: {"schema": reference(body)}}});
    }
    op
}

/// The whole description, stating this instance's bound on a tenant's
/// output cap (`max_output_bytes`).
pub fn document(max_output_bytes: u64) -> Value {
    let mut paths: Map<String, Value> = Map::new();
    let mut schemas = components(max_output_bytes);
    for route in routes() {
        let Some(d) = describe(route.method, route.path) else {
            continue;
        };
        let path = route.path.replace("{*path}", "{path}");
        let method = if route.method == "ANY" {
            "post"
        } else {
            &route.method.to_lowercase()
        };
        let item = paths.entry(path).or_insert_with(|| json!({}));
        item[method] = operation(&route, &d, &mut schemas);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "flowmesh",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Multi-tenant workflow automation engine. Every route but health, login, registration and webhooks takes `Authorization: Bearer <token>` (a session token or an API key).",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_described() {
        assert_eq!(undocumented(), Vec::<String>::new());
        let doc = document(8 * 1024 * 1024);
        let text = doc.to_string();
        assert!(
            !text.contains("#/$defs/"),
            "references point into the components"
        );
        assert_eq!(doc["openapi"], "3.1.0");
        assert!(
            doc["components"]["schemas"]["Node"].is_object(),
            "the document's parts are components"
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
        let doc = document(8 * 1024 * 1024);
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
        let doc = document(8 * 1024 * 1024);
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
}
