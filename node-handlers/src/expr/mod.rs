//! Expressions and templates, by minijinja: sandboxed (no I/O), with a fuel
//! limit against runaway loops, and Python-style string methods
//! (`email.endswith('@example.com')`) from minijinja-contrib.

use minijinja::value::Value as MjValue;
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use serde_json::{Map, Value};

use crate::NodeError;

pub struct Expressions {
    env: Environment<'static>,
}

fn error(e: minijinja::Error) -> NodeError {
    let message = match e.kind() {
        ErrorKind::OutOfFuel => "the expression ran out of its computation budget".to_owned(),
        _ => e.to_string(),
    };
    NodeError::permanent(message)
}

/// A string that is one `{{ … }}` and nothing else: its value keeps its type.
fn lone_expression(s: &str) -> Option<&str> {
    let inner = s.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    let inner = inner.strip_prefix('-').unwrap_or(inner);
    let inner = inner.strip_suffix('-').unwrap_or(inner);
    (!inner.contains("{{") && !inner.contains("}}") && !inner.contains("{%"))
        .then_some(inner.trim())
}

fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

impl Expressions {
    pub fn new(fuel: u64) -> Self {
        let mut env = Environment::new();
        env.set_fuel(Some(fuel));
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.set_recursion_limit(64);
        Self { env }
    }

    /// The scope as a template context.
    pub fn context(scope: &Map<String, Value>) -> MjValue {
        MjValue::from(minijinja::value::Serde(scope))
    }

    /// Evaluates an expression (no braces) to JSON.
    pub fn eval(&self, expr: &str, ctx: &MjValue) -> Result<Value, NodeError> {
        let compiled = self.env.compile_expression(expr).map_err(error)?;
        let value = compiled.eval(ctx.clone()).map_err(error)?;
        to_json(&value)
    }

    /// Evaluates an expression for its truth (Python rules: empty is false).
    pub fn truthy(&self, expr: &str, ctx: &MjValue) -> Result<bool, NodeError> {
        let compiled = self.env.compile_expression(expr).map_err(error)?;
        Ok(compiled.eval(ctx.clone()).map_err(error)?.is_true())
    }

    /// Renders every string of a JSON value as a template, recursively.
    pub fn render_value(&self, value: &Value, ctx: &MjValue) -> Result<Value, NodeError> {
        match value {
            Value::String(s) if is_template(s) => match lone_expression(s) {
                Some(expr) => self.eval(expr, ctx),
                None => self
                    .env
                    .render_str(s, ctx.clone())
                    .map(Value::String)
                    .map_err(error),
            },
            Value::Array(items) => items
                .iter()
                .map(|v| self.render_value(v, ctx))
                .collect::<Result<_, _>>()
                .map(Value::Array),
            Value::Object(map) => map
                .iter()
                .map(|(k, v)| Ok((k.clone(), self.render_value(v, ctx)?)))
                .collect::<Result<Map<_, _>, NodeError>>()
                .map(Value::Object),
            other => Ok(other.clone()),
        }
    }

    /// Renders a template to text.
    pub fn render_text(&self, template: &str, ctx: &MjValue) -> Result<String, NodeError> {
        if !is_template(template) {
            return Ok(template.to_owned());
        }
        self.env.render_str(template, ctx.clone()).map_err(error)
    }

    pub fn check_expression(&self, expr: &str) -> Result<(), String> {
        self.env
            .compile_expression(expr)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    pub fn check_template(&self, template: &str) -> Result<(), String> {
        if !is_template(template) {
            return Ok(());
        }
        match lone_expression(template) {
            Some(expr) => self.check_expression(expr),
            None => self
                .env
                .template_from_str(template)
                .map(|_| ())
                .map_err(|e| e.to_string()),
        }
    }
}

fn to_json(value: &MjValue) -> Result<Value, NodeError> {
    if value.is_undefined() {
        return Ok(Value::Null);
    }
    serde_json::to_value(value)
        .map_err(|e| NodeError::permanent(format!("the value cannot be JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;
    use serde_json::json;

    fn ctx(v: Value) -> MjValue {
        Expressions::context(v.as_object().unwrap())
    }

    #[test]
    fn python_string_methods_work() {
        let e = Expressions::new(10_000);
        let c = ctx(json!({"user": {"email": "ada@example.com"}}));
        assert!(e.truthy("user.email.endswith('@example.com')", &c).unwrap());
        assert!(!e.truthy("user.email.startswith('bob')", &c).unwrap());
    }

    #[test]
    fn lone_expressions_keep_their_type_and_templates_render_text() {
        let e = Expressions::new(10_000);
        let c = ctx(json!({"trigger": {"body": {"n": 21, "name": "ada", "tags": ["a"]}}}));
        let out = e
            .render_value(
                &json!({"double": "{{ trigger.body.n * 2 }}", "name": "{{ trigger.body.name | upper }}!",
                        "tags": "{{ trigger.body.tags }}", "missing": "[{{ trigger.body.nope.deeper }}]", "plain": 5}),
                &c,
            )
            .unwrap();
        assert_eq!(
            out,
            json!({"double": 42, "name": "ADA!", "tags": ["a"], "missing": "[]", "plain": 5})
        );
    }

    #[test]
    fn runaway_templates_run_out_of_fuel() {
        let e = Expressions::new(10_000);
        let err = e
            .render_text(
                "{% for i in range(100000000) %}x{% endfor %}",
                &ctx(json!({})),
            )
            .unwrap_err();
        assert_eq!(err.class, ErrorClass::Permanent);
    }

    #[test]
    fn syntax_errors_are_found_before_running() {
        let e = Expressions::new(10_000);
        assert!(e.check_template("{{ unclosed").is_err());
        assert!(e.check_template("{% if %}").is_err());
        assert!(e.check_expression("a ==").is_err());
        assert!(e.check_template("hello {{ name }}").is_ok());
    }
}
