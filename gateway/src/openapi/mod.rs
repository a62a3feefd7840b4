//! The OpenAPI 3.1 description of the API, made from the route table:
//! every route with its access, parameters, body and answers. Bodies and
//! answers are described by their types' schemas (schemars, `schemas.rs`);
//! the workflow document's schema is the model's own.

mod schemas;
#[cfg(test)]
mod tests;

use serde_json::{Map, Value, json};

use crate::Surface;
use crate::access::Access;
use crate::routes::{Content, RouteInfo, routes};
pub(crate) use schemas::request_schemas;
use schemas::{Schemas, hoist};

const JSON: &str = "application/json";

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
                "version" => json!({"type": "integer", "minimum": 1, "maximum": i64::MAX}),
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

fn operation(route: &RouteInfo, schemas: &mut Schemas, hoisted: &mut Map<String, Value>) -> Value {
    let path = route.path.replace("{*path}", "{path}");
    let parameters = parameters(route, &path, hoisted);
    let mut responses = Map::new();
    for reply in &route.replies {
        let answer = match reply.content {
            Content::Json(schema) => json!({"description": route.summary,
                "content": {JSON: {"schema": schemas.answer(schema)}}}),
            Content::Text(media) => json!({"description": route.summary,
                "content": {media: {"schema": {"type": "string"}}}}),
            Content::None => json!({"description": route.summary}),
        };
        responses.insert(reply.status.to_string(), answer);
    }
    let error = json!({"description": "an error; `error.message` says what and whether retrying helps",
                       "content": {JSON: {"schema": reference("Error")}}});
    let mut codes = vec![400, 404, 405, 413, 415, 429, 503];
    match route.guard.access {
        Access::Public => codes.push(401),
        _ => codes.extend([401, 402, 403]),
    }
    codes.extend([409, 422, 501]);
    codes.extend(route.errors);
    for code in codes {
        responses
            .entry(code.to_string())
            .or_insert_with(|| error.clone());
    }
    if route.workflow_answers {
        responses.insert(
            "default".into(),
            json!({"description": "the workflow's own response (a `respond` node's status and body)",
                   "content": {JSON: {"schema": {}}}}),
        );
    }
    let mut op = json!({
        "operationId": format!("{} {path}", route.method.to_lowercase()),
        "summary": route.summary,
        "parameters": parameters,
        "responses": responses,
    });
    if route.guard.access == Access::Public {
        op["security"] = json!([]);
    }
    if let Some(body) = route.body {
        op["requestBody"] = json!({"required": body.required,
            "content": {JSON: {"schema": schemas.request(body.schema)}}});
    }
    op
}

/// The whole description, stating this instance's bound on a tenant's
/// output cap (`max_output_bytes`).
pub fn document(max_output_bytes: u64, surface: Surface) -> Value {
    let (document, conflicts) = build(max_output_bytes, surface);
    if !conflicts.is_empty() {
        tracing::error!(?conflicts, "request and answer schemas share these names");
    }
    document
}

/// The description, and the component names that requests and answers
/// gave to different schemas (a test keeps them apart).
fn build(max_output_bytes: u64, surface: Surface) -> (Value, Vec<String>) {
    let mut paths: Map<String, Value> = Map::new();
    let mut schemas = Schemas::new();
    let mut hoisted = Map::new();
    for route in routes().into_iter().filter(|r| surface.serves(r.path)) {
        let path = route.path.replace("{*path}", "{path}");
        let method = if route.method == "ANY" {
            "post"
        } else {
            &route.method.to_lowercase()
        };
        let item = paths.entry(path).or_insert_with(|| json!({}));
        item[method] = operation(&route, &mut schemas, &mut hoisted);
    }
    let (mut components, conflicts) = schemas.components();
    components.extend(hoisted);
    if let Some(cap) = components
        .get_mut("Settings")
        .and_then(|s| s.pointer_mut("/properties/max_output_bytes"))
    {
        cap["maximum"] = json!(max_output_bytes);
    }
    let document = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "flowmesh",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Multi-tenant workflow automation engine. Every route but health, login, registration and webhooks takes `Authorization: Bearer <token>` (a session token or an API key).",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    });
    (document, conflicts)
}
