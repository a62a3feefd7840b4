//! Checks a JSON value against a JSON Schema and reports every mismatch at
//! once, each at its JSON path (`nodes[3].config.url`) with a stable code.
//! The workflow document and every node kind's config are checked this way
//! before they are deserialized.

use jsonschema::error::ValidationErrorKind;
use serde_json::Value;

use crate::HumanDuration;
use crate::validate::ValidationError;

/// Keyword of an object's schema whose text is added to the message of an
/// unknown field found in it: where the thing that field wanted lives.
pub const HINT: &str = "x-flowmesh-hint";

/// A compiled schema.
pub struct SchemaCheck {
    schema: Value,
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for SchemaCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaCheck").finish_non_exhaustive()
    }
}

/// Format `duration`: a human duration, or a template that renders one (its
/// field's annotation has the template itself checked).
fn is_duration(text: &str) -> bool {
    text.contains("{{") || text.parse::<HumanDuration>().is_ok()
}

impl SchemaCheck {
    /// Compiles `schema`; an error names what is wrong with it.
    pub fn new(schema: Value) -> Result<Self, String> {
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .with_format("duration", is_duration)
            .build(&schema)
            .map_err(|e| e.to_string())?;
        Ok(Self { schema, validator })
    }

    pub fn schema(&self) -> &Value {
        &self.schema
    }

    /// Pushes every mismatch of `instance`, located under `path`.
    pub fn check(&self, instance: &Value, path: &str, errors: &mut Vec<ValidationError>) {
        for e in self.validator.iter_errors(instance) {
            let at = join(path, &json_path(instance, e.instance_path.as_str()));
            let message = e.to_string();
            // The schema holding the failed keyword.
            let holder = self.subschema(e.schema_path.as_str());
            let described = || {
                holder
                    .and_then(|s| s.get("description"))
                    .and_then(Value::as_str)
                    .map(|d| format!("{}: {d}", e.instance))
            };
            match e.kind {
                ValidationErrorKind::AdditionalProperties { unexpected }
                | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
                    let known: Vec<&str> = holder
                        .and_then(|s| s.get("properties"))
                        .and_then(Value::as_object)
                        .map(|p| p.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    let hint = holder
                        .and_then(|s| s.get(HINT))
                        .and_then(Value::as_str)
                        .map(|h| format!("{h}; "))
                        .unwrap_or_default();
                    for field in unexpected {
                        errors.push(ValidationError::new(
                            join(&at, &field),
                            "unknown_field",
                            format!("{hint}the fields here are {}", known.join(", ")),
                        ));
                    }
                }
                ValidationErrorKind::Required { property } => {
                    let field = property.as_str().unwrap_or_default();
                    errors.push(ValidationError::new(
                        join(&at, field),
                        "required",
                        format!("{field} is required"),
                    ));
                }
                ValidationErrorKind::MinLength { limit: 1 } => {
                    errors.push(ValidationError::new(at, "required", "may not be empty"))
                }
                ValidationErrorKind::Type { .. } => {
                    errors.push(ValidationError::new(at, "invalid_type", message));
                }
                ValidationErrorKind::Format { format } if format == "duration" => {
                    errors.push(ValidationError::new(
                        at,
                        "invalid_duration",
                        format!(
                            "{} is not a duration; write it like \"250ms\", \"5s\" or \"2h\"",
                            e.instance
                        ),
                    ));
                }
                ValidationErrorKind::Pattern { .. } | ValidationErrorKind::Format { .. } => {
                    let message = described().unwrap_or(message);
                    errors.push(ValidationError::new(at, "invalid_value", message));
                }
                _ => errors.push(ValidationError::new(at, "invalid_value", message)),
            }
        }
    }

    /// The schema object holding the last keyword of `schema_path`,
    /// following `$ref`s into the root's `$defs`.
    fn subschema(&self, schema_path: &str) -> Option<&Value> {
        let mut segments: Vec<String> = schema_path
            .split('/')
            .skip(1)
            .map(|s| s.replace("~1", "/").replace("~0", "~"))
            .collect();
        segments.pop();
        let mut at = &self.schema;
        for segment in segments {
            at = if segment == "$ref" {
                let reference = at.get("$ref")?.as_str()?;
                self.schema.pointer(reference.strip_prefix('#')?)?
            } else if let Value::Array(items) = at {
                items.get(segment.parse::<usize>().ok()?)?
            } else {
                at.get(&segment)?
            };
        }
        Some(at)
    }
}

fn join(path: &str, tail: &str) -> String {
    match (path.is_empty(), tail.is_empty() || tail.starts_with('[')) {
        (true, _) => tail.to_owned(),
        (false, true) => format!("{path}{tail}"),
        (false, false) => format!("{path}.{tail}"),
    }
}

/// Renders a JSON pointer into `instance` as `nodes[3].config.url`.
pub fn json_path(instance: &Value, pointer: &str) -> String {
    let mut out = String::new();
    let mut at = Some(instance);
    for segment in pointer.split('/').skip(1) {
        let key = segment.replace("~1", "/").replace("~0", "~");
        match at {
            Some(Value::Array(items)) => {
                let index = key.parse::<usize>().ok();
                out.push_str(&format!("[{key}]"));
                at = index.and_then(|i| items.get(i));
            }
            other => {
                if !out.is_empty() {
                    out.push('.');
                }
                at = other.and_then(|v| v.get(&key));
                out.push_str(&key);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn found(schema: Value, instance: Value) -> Vec<(String, String)> {
        let check = SchemaCheck::new(schema).unwrap();
        let mut errors = Vec::new();
        check.check(&instance, "nodes[2].config", &mut errors);
        errors.into_iter().map(|e| (e.path, e.code)).collect()
    }

    #[test]
    fn every_mismatch_is_reported_at_its_path() {
        let schema = json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["url"],
            "properties": {
                "url": {"type": "string"},
                "timeout": {"type": "string", "format": "duration"},
                "list": {"type": "array", "items": {"$ref": "#/$defs/Item"}}
            },
            "$defs": {"Item": {
                "type": "object", "additionalProperties": false,
                "properties": {"n": {"type": "integer", "maximum": 3}}
            }}
        });
        let mut got = found(
            schema,
            json!({"timeout": "soon", "list": [{"n": 1}, {"n": 9, "x": 1}], "extra": 1}),
        );
        got.sort();
        let expected: Vec<(String, String)> = [
            ("nodes[2].config.extra", "unknown_field"),
            ("nodes[2].config.list[1].n", "invalid_value"),
            ("nodes[2].config.list[1].x", "unknown_field"),
            ("nodes[2].config.timeout", "invalid_duration"),
            ("nodes[2].config.url", "required"),
        ]
        .iter()
        .map(|(p, c)| (p.to_string(), c.to_string()))
        .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn unknown_fields_list_the_known_ones_and_the_hint() {
        let check = SchemaCheck::new(json!({
            "$ref": "#/$defs/Limits",
            "$defs": {"Limits": {"type": "object", "additionalProperties": false,
                "x-flowmesh-hint": "no network here",
                "properties": {"wall": {"type": "string"}}}}
        }))
        .unwrap();
        let mut errors = Vec::new();
        check.check(&json!({"network": true}), "", &mut errors);
        assert_eq!(errors[0].path, "network");
        assert_eq!(
            errors[0].message,
            "no network here; the fields here are wall"
        );
    }

    #[test]
    fn numeric_keys_of_objects_stay_keys() {
        assert_eq!(json_path(&json!({"a": {"0": 1}}), "/a/0"), "a.0");
        assert_eq!(json_path(&json!({"a": [1]}), "/a/0"), "a[0]");
    }
}
