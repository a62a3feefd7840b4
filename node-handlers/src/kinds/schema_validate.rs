//! `schema_validate`: checks a value against a JSON Schema written in the
//! config, reporting each mismatch at its path.

use flowmesh_model::Primitive;
use flowmesh_model::schema::json_path;
use flowmesh_model::validate::Outputs;
use jsonschema::{PatternOptions, Validator};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Ctx, output};
use crate::kind::{Behaviour, NodeKind, Problems};
use crate::{NodeError, Outcome};

/// Most mismatches reported; a value wrong everywhere is not listed whole.
pub const MAX_ERRORS: usize = 100;

/// Mismatches the message of a failed node names.
const NAMED: usize = 10;

pub struct SchemaValidate;

#[derive(Deserialize, JsonSchema)]
pub struct Config {
    /// Gives the value checked, for example `trigger.body`; `{{ … }}` around it is allowed.
    #[schemars(length(min = 1), extend("x-flowmesh-field" = "expression"))]
    pub value: String,
    /// A JSON Schema (draft 4 to 2020-12; 2020-12 unless `$schema` says
    /// otherwise), taken as written. Its `pattern`s use linear-time
    /// regular expressions, and it may not refer to other documents.
    #[schemars(extend("type" = ["object", "boolean"], "x-flowmesh-field" = "value"))]
    pub schema: Value,
    /// Fails the node with the mismatches instead of outputting them.
    #[serde(default)]
    pub fail_on_invalid: bool,
}

/// Why a schema does not compile: where in it (a JSON pointer), and what.
struct Invalid {
    pointer: String,
    message: String,
}

/// A user's schema, compiled: patterns cannot backtrack, and without the
/// crate's resolver features a `$ref` to another document is refused.
fn compile(schema: &Value) -> Result<Validator, Invalid> {
    jsonschema::options()
        .with_pattern_options(PatternOptions::regex())
        .build(schema)
        .map_err(|e| Invalid {
            pointer: e.instance_path.to_string(),
            message: e.to_string(),
        })
}

impl NodeKind for SchemaValidate {
    type Config = Config;
    const NAME: &'static str = "schema_validate";
    const PRIMITIVE: Primitive = Primitive::Data;
    const DESCRIPTION: &'static str = "Checks a value against a JSON Schema; config: value, schema, fail_on_invalid. Output: valid, errors [{path, message}].";
    const BEHAVIOUR: Behaviour = Behaviour::COMPUTE;

    fn example() -> Value {
        json!({
            "value": "trigger.body",
            "schema": {"type": "object", "required": ["email"], "properties": {"email": {"type": "string"}}}
        })
    }

    fn check(config: &Config, problems: &mut Problems<'_>) -> Outputs {
        if let Err(e) = compile(&config.schema) {
            let at = json_path(&config.schema, &e.pointer);
            let field = if at.is_empty() || at.starts_with('[') {
                format!("schema{at}")
            } else {
                format!("schema.{at}")
            };
            problems.push(
                &field,
                "invalid_schema",
                format!("not a valid JSON Schema: {}", e.message),
            );
        }
        Outputs::Single
    }

    async fn run(config: Config, ctx: &Ctx<'_>) -> Result<Outcome, NodeError> {
        let validator = compile(&config.schema).map_err(|e| {
            NodeError::permanent(format!("config.schema is not valid: {}", e.message))
        })?;
        let value = ctx.expr.eval(&config.value, &ctx.scope())?;
        let errors: Vec<(String, String)> = validator
            .iter_errors(&value)
            .take(MAX_ERRORS)
            .map(|e| (json_path(&value, e.instance_path.as_str()), e.to_string()))
            .collect();
        if config.fail_on_invalid && !errors.is_empty() {
            let named: Vec<String> = errors
                .iter()
                .take(NAMED)
                .map(|(path, message)| match path.as_str() {
                    "" => message.clone(),
                    path => format!("{path}: {message}"),
                })
                .collect();
            return Err(NodeError::permanent(format!(
                "the value does not match the schema: {}",
                named.join("; ")
            )));
        }
        let listed: Vec<Value> = errors
            .iter()
            .map(|(path, message)| json!({"path": path, "message": message}))
            .collect();
        output(json!({"valid": errors.is_empty(), "errors": listed}))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::kinds::testing::{explained, run};

    fn signup() -> serde_json::Value {
        json!({
            "type": "object",
            "required": ["email", "age"],
            "properties": {
                "email": {"type": "string", "pattern": "^[^@]+@[^@]+$"},
                "age": {"type": "integer", "minimum": 18},
                "tags": {"type": "array", "items": {"type": "string"}}
            }
        })
    }

    #[tokio::test]
    async fn reports_every_mismatch_at_its_path() {
        let scope = json!({"fetch": {"body": {"email": "nope", "age": 12, "tags": ["a", 3]}}});
        let checked = run(
            "schema_validate",
            json!({"value": "fetch.body", "schema": signup()}),
            &scope,
        )
        .await
        .unwrap();
        assert_eq!(checked["valid"], false);
        let mut paths: Vec<&str> = checked["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["path"].as_str().unwrap())
            .collect();
        paths.sort();
        assert_eq!(paths, ["age", "email", "tags[1]"]);
        let good = json!({"fetch": {"body": {"email": "a@x.test", "age": 30}}});
        let checked = run(
            "schema_validate",
            json!({"value": "fetch.body", "schema": signup()}),
            &good,
        )
        .await;
        assert_eq!(checked.unwrap(), json!({"valid": true, "errors": []}));
        let missing = run(
            "schema_validate",
            json!({"value": "{{ fetch.body.tags }}", "schema": {"type": "object"}}),
            &json!({"fetch": {"body": {"tags": []}}}),
        )
        .await
        .unwrap();
        assert_eq!(missing["errors"][0]["path"], "");
        assert_eq!(
            missing["errors"][0]["message"],
            "[] is not of type \"object\""
        );
    }

    #[tokio::test]
    async fn fail_on_invalid_fails_the_node_with_the_mismatches() {
        let scope = json!({"fetch": {"body": {"email": "a@x.test"}}});
        let error = run(
            "schema_validate",
            json!({"value": "fetch.body", "schema": signup(), "fail_on_invalid": true}),
            &scope,
        )
        .await
        .unwrap_err();
        assert_eq!(
            error.message,
            "the value does not match the schema: \"age\" is a required property"
        );
    }

    #[tokio::test]
    async fn patterns_cannot_backtrack_and_the_list_is_bounded() {
        let slow = json!({"type": "string", "pattern": "^(a+)+$"});
        let scope = json!({"fetch": {"text": format!("{}!", "a".repeat(5_000))}});
        let checked = run(
            "schema_validate",
            json!({"value": "fetch.text", "schema": slow}),
            &scope,
        )
        .await
        .unwrap();
        assert_eq!(checked["valid"], false);
        let many = json!({"fetch": {"list": vec![0; 500]}});
        let checked = run(
            "schema_validate",
            json!({"value": "fetch.list", "schema": {"items": {"type": "string"}}}),
            &many,
        )
        .await
        .unwrap();
        assert_eq!(
            checked["errors"].as_array().unwrap().len(),
            super::MAX_ERRORS
        );
    }

    #[test]
    fn an_invalid_schema_is_refused_at_its_path() {
        let found = explained(
            "schema_validate",
            json!({"value": "fetch.body", "schema": {"properties": {"age": {"type": "integr"}}}}),
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (found[0].0.as_str(), found[0].1.as_str()),
            (
                "nodes[1].config.schema.properties.age.type",
                "invalid_schema"
            )
        );
        let found = explained(
            "schema_validate",
            json!({"value": "fetch.body", "schema": {"$ref": "https://example.com/s.json"}}),
        );
        assert_eq!(found[0].1, "invalid_schema", "{found:?}");
        let found = explained(
            "schema_validate",
            json!({"value": "fetch.body", "schema": {"type": "string", "pattern": "(?=a)"}}),
        );
        assert_eq!(found[0].1, "invalid_schema", "{found:?}");
    }
}
