//! The schemas of the description: one schemars generator for what
//! requests carry (read by serde: `#[serde(default)]` fields may be left
//! out) and one for what answers carry (written by serde: every field is
//! there unless it is skipped), both keeping their types' schemas as
//! components.

use schemars::generate::SchemaSettings;
use schemars::transform::{ReplaceBoolSchemas, Transform};
use schemars::{Schema, SchemaGenerator};
use serde_json::{Map, Value, json};

use crate::routes::SchemaFn;

/// `true` (any value) becomes `{}`, which says the same and every
/// OpenAPI tool reads.
fn plainly() -> ReplaceBoolSchemas {
    let mut transform = ReplaceBoolSchemas::default();
    transform.skip_additional_properties = true;
    transform
}

fn settings() -> SchemaSettings {
    SchemaSettings::draft2020_12()
        .with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.meta_schema = None;
        })
        .with_transform(plainly())
}

fn plain(mut schema: Schema) -> Value {
    plainly().transform(&mut schema);
    schema.to_value()
}

/// What request bodies are read with.
pub fn request_schemas() -> SchemaGenerator {
    settings().into_generator()
}

/// The schemas of one description, gathered as its operations ask for them.
pub(super) struct Schemas {
    requests: SchemaGenerator,
    answers: SchemaGenerator,
}

impl Schemas {
    pub fn new() -> Schemas {
        Schemas {
            requests: request_schemas(),
            answers: settings().for_serialize().into_generator(),
        }
    }

    /// The schema of a request body.
    pub fn request(&mut self, schema: SchemaFn) -> Value {
        plain(schema(&mut self.requests))
    }

    /// The schema of an answer.
    pub fn answer(&mut self, schema: SchemaFn) -> Value {
        plain(schema(&mut self.answers))
    }

    /// Every component, and the names the two generators gave to different
    /// schemas (the request's is kept; a test keeps this list empty).
    pub fn components(mut self) -> (Map<String, Value>, Vec<String>) {
        let error = error_schema(&mut self.requests);
        let mut components = self.requests.take_definitions(true);
        let mut conflicts = Vec::new();
        for (name, schema) in self.answers.take_definitions(true) {
            match components.get(&name) {
                Some(known) if *known != schema => conflicts.push(name),
                Some(_) => {}
                None => {
                    components.insert(name, schema);
                }
            }
        }
        components.insert("Error".into(), error);
        (components, conflicts)
    }
}

/// The one error body, `{"error": {"code", "message", "details"}}`, its
/// code one of [`flowmesh_api::ErrorCode`].
fn error_schema(generator: &mut SchemaGenerator) -> Value {
    let code = generator.subschema_for::<flowmesh_api::ErrorCode>();
    json!({"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["code", "message"],
        "properties": {"code": code, "message": {"type": "string"}, "details": {}}
    }}})
}

/// Moves a schemars schema's `$defs` into the components, pointing its
/// references there.
pub(super) fn hoist(mut schema: Value, components: &mut Map<String, Value>) -> Value {
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
