//! Expressions and templates, by minijinja: sandboxed (no I/O), with a fuel
//! limit against runaway loops, a size limit against values that grow past
//! what the node may output (fuel counts instructions, and one instruction
//! can repeat a string a million times), and Python-style string methods
//! (`email.endswith('@example.com')`) from minijinja-contrib.
//!
//! An undefined value (a name or field that is not there) is an error
//! wherever it is used, naming what is missing and what exists there; `is
//! defined`, the `default` filter and truth tests may still take one
//! (minijinja's semi-strict undefined). Before a text runs, the names it
//! reads, its filters, tests and functions are checked (`names`).

mod explain;
mod names;

use flowmesh_model::names::Names;
use minijinja::budget::{self, Limits};
use minijinja::machinery::{self, CodeGenerator};
use minijinja::value::{Value as MjValue, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, State, UndefinedBehavior};
use serde_json::{Map, Value};

use crate::{ErrorClass, NodeError};
use explain::Source;
pub use names::Problem;

/// All the values one evaluation builds may add up to this many times the
/// limit of one value.
const TOTAL_FACTOR: usize = 8;

pub struct Expressions {
    env: Environment<'static>,
}

/// What an evaluation reads (`trigger` and the upstream outputs), and how
/// large the values it builds may grow.
pub struct Scope {
    value: MjValue,
    limits: Limits,
}

impl Scope {
    /// `max_bytes` bounds each value, and the output, of an evaluation; all
    /// the values it builds together get `TOTAL_FACTOR` times that.
    pub fn new(scope: &Map<String, Value>, max_bytes: usize) -> Self {
        Self {
            value: MjValue::from(minijinja::value::Serde(scope)),
            limits: Limits {
                value_bytes: max_bytes,
                total_bytes: max_bytes.saturating_mul(TOTAL_FACTOR),
            },
        }
    }
}

fn error(e: Error) -> NodeError {
    match e.kind() {
        ErrorKind::OutOfFuel => {
            NodeError::permanent("the expression ran out of its computation budget")
        }
        ErrorKind::SizeLimitExceeded => NodeError {
            class: ErrorClass::OutputTooLarge,
            message: format!(
                "{}; the tenant's output limit (max_output_bytes) bounds each value a template builds, and {TOTAL_FACTOR} times it all of them together",
                e.detail().unwrap_or("the template built too large a value")
            ),
        },
        ErrorKind::UndefinedError => {
            NodeError::permanent(e.detail().map_or_else(|| e.to_string(), str::to_owned))
        }
        _ => NodeError::permanent(e.to_string()),
    }
}

/// A string that is one `{{ … }}` and nothing else: its value keeps its type.
fn lone_expression(s: &str) -> Option<&str> {
    let inner = s.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    let inner = inner.strip_prefix('-').unwrap_or(inner);
    let inner = inner.strip_suffix('-').unwrap_or(inner);
    (!inner.contains("{{") && !inner.contains("}}") && !inner.contains("{%"))
        .then_some(inner.trim())
}

/// An expression as written in a config: bare, or wholly wrapped in
/// `{{ … }}` like a template's lone expression (the same expression).
fn bare(expr: &str) -> &str {
    lone_expression(expr).unwrap_or(expr)
}

pub(crate) fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

/// Deepest a value is searched for an undefined value it holds.
const MAX_DEPTH: usize = 64;

impl Expressions {
    pub fn new(fuel: u64) -> Self {
        let mut env = Environment::new();
        env.set_fuel(Some(fuel));
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
        // Undefined values remember the lookup they came from, which the
        // error names; only errors pay for it.
        env.set_debug(true);
        env.set_unknown_method_callback(bounded_methods);
        env.set_recursion_limit(64);
        Self { env }
    }

    /// Evaluates an expression (bare, or wholly in `{{ … }}`) to JSON.
    pub fn eval(&self, expr: &str, scope: &Scope) -> Result<Value, NodeError> {
        let expr = bare(expr);
        budget::with_limits(scope.limits, || self.eval_json(expr, scope)).map_err(error)
    }

    /// Evaluates an expression for its truth (Python rules: empty is false;
    /// an undefined value is false).
    pub fn truthy(&self, expr: &str, scope: &Scope) -> Result<bool, NodeError> {
        let expr = bare(expr);
        budget::with_limits(scope.limits, || {
            let compiled = self.env.compile_expression(expr)?;
            Ok(compiled.eval(scope.value.clone())?.is_true())
        })
        .map_err(|e| self.explained(e, Source::Expression, scope))
        .map_err(error)
    }

    /// Renders every string of a JSON value as a template, recursively; all
    /// of them within one budget.
    pub fn render_value(&self, value: &Value, scope: &Scope) -> Result<Value, NodeError> {
        budget::with_limits(scope.limits, || self.render_each(value, scope)).map_err(error)
    }

    fn render_each(&self, value: &Value, scope: &Scope) -> Result<Value, Error> {
        match value {
            Value::String(s) if is_template(s) => match lone_expression(s) {
                Some(expr) => self.eval_json(expr, scope),
                None => {
                    let text = self.render(s, scope)?;
                    budget::charge(text.len())?;
                    Ok(Value::String(text))
                }
            },
            Value::Array(items) => items
                .iter()
                .map(|v| self.render_each(v, scope))
                .collect::<Result<_, _>>()
                .map(Value::Array),
            Value::Object(map) => map
                .iter()
                .map(|(k, v)| Ok((k.clone(), self.render_each(v, scope)?)))
                .collect::<Result<Map<_, _>, Error>>()
                .map(Value::Object),
            other => Ok(other.clone()),
        }
    }

    fn render(&self, template: &str, scope: &Scope) -> Result<String, Error> {
        self.env
            .render_str(template, scope.value.clone())
            .map_err(|e| self.explained(e, Source::Template(template), scope))
    }

    /// An expression's value as JSON. An undefined value is an error, but
    /// for the silent one of an `if` without `else` (null).
    fn eval_json(&self, expr: &str, scope: &Scope) -> Result<Value, Error> {
        let evaluated = self
            .env
            .compile_expression(expr)
            .and_then(|compiled| compiled.eval(scope.value.clone()));
        let value = evaluated.map_err(|e| self.explained(e, Source::Expression, scope))?;
        if value.is_undefined() {
            return self.printed(expr, scope).map(|()| Value::Null);
        }
        let json = to_json(&value)?;
        if holds_undefined(&value, 0) {
            let missing = explain::first_missing(expr, &scope.value).unwrap_or_else(|| {
                format!("the value of `{expr}` holds an undefined value; every value it holds must be defined")
            });
            return Err(Error::new(ErrorKind::UndefinedError, missing));
        }
        Ok(json)
    }

    /// Prints an expression whose value is undefined, for minijinja to say
    /// which lookup found nothing (it names it when the value is used).
    fn printed(&self, expr: &str, scope: &Scope) -> Result<(), Error> {
        match self.render(&format!("{{{{ {expr} }}}}"), scope) {
            Ok(_) => Ok(()),
            // `}}` inside a string of the expression.
            Err(e) if e.kind() == ErrorKind::SyntaxError => Err(self.explained(
                Error::new(ErrorKind::UndefinedError, format!("`{expr}` is undefined")),
                Source::Expression,
                scope,
            )),
            Err(e) => Err(e),
        }
    }

    fn explained(&self, e: Error, source: Source, scope: &Scope) -> Error {
        explain::explain(&self.env, e, source, &scope.value)
    }

    /// Renders a template to text.
    pub fn render_text(&self, template: &str, scope: &Scope) -> Result<String, NodeError> {
        if !is_template(template) {
            return Ok(template.to_owned());
        }
        budget::with_limits(scope.limits, || self.render(template, scope)).map_err(error)
    }

    /// Checks an expression (bare, or wholly in `{{ … }}`): its syntax (the
    /// error), then what it reads against `names`.
    pub fn check_expression(&self, expr: &str, names: &Names<'_>) -> Result<Vec<Problem>, String> {
        let expr = bare(expr);
        let compiled = self
            .env
            .compile_expression(expr)
            .map_err(|e| e.to_string())?;
        let parsed = machinery::parse_expr(expr).map_err(|e| e.to_string())?;
        let mut code = CodeGenerator::new("<expression>", expr);
        code.compile_expr(&parsed);
        let (instructions, _) = code.finish();
        let undeclared = compiled.undeclared_variables(false);
        Ok(names::problems(
            &self.env,
            &undeclared,
            [&instructions],
            names,
        ))
    }

    /// Checks a template: its syntax (the error), then what it reads
    /// against `names`.
    pub fn check_template(
        &self,
        template: &str,
        names: &Names<'_>,
    ) -> Result<Vec<Problem>, String> {
        if !is_template(template) {
            return Ok(Vec::new());
        }
        if let Some(expr) = lone_expression(template) {
            return self.check_expression(expr, names);
        }
        let compiled = self
            .env
            .template_from_str(template)
            .map_err(|e| e.to_string())?;
        let code = machinery::get_compiled_template(&compiled);
        let undeclared = compiled.undeclared_variables(false);
        let all = std::iter::once(&code.instructions).chain(code.blocks.values());
        Ok(names::problems(&self.env, &undeclared, all, names))
    }
}

/// Whether a value holds an undefined value, down to [`MAX_DEPTH`].
fn holds_undefined(value: &MjValue, depth: usize) -> bool {
    if depth > MAX_DEPTH || !matches!(value.kind(), ValueKind::Seq | ValueKind::Map) {
        return false;
    }
    let Ok(mut items) = value.try_iter() else {
        return false;
    };
    items.any(|item| {
        let held = match value.kind() {
            ValueKind::Map => value.get_item(&item).unwrap_or(MjValue::from(())),
            _ => item,
        };
        held.is_undefined() || holds_undefined(&held, depth + 1)
    })
}

/// The Python string methods of minijinja-contrib, with those that can
/// build a large string from small ones checked against the size limit
/// before they allocate.
fn bounded_methods(
    state: &mut State,
    value: &MjValue,
    method: &str,
    args: &[MjValue],
) -> Result<MjValue, Error> {
    if let Some(s) = value.as_str() {
        match (method, args) {
            ("replace", [old, new, rest @ ..]) => {
                if let (Some(old), Some(new)) = (old.as_str(), new.as_str()) {
                    let count = rest
                        .first()
                        .and_then(|c| i64::try_from(c.clone()).ok())
                        .and_then(|c| usize::try_from(c).ok());
                    budget::check_replace(s, old, new, count)?;
                }
            }
            ("join", [items]) => return join(s, items),
            ("splitlines", _) => budget::check_items(s.matches('\n').count() + 1)?,
            _ => {}
        }
    }
    minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)
}

/// `str.join`, written within the size limit as it grows.
fn join(separator: &str, items: &MjValue) -> Result<MjValue, Error> {
    let mut out = budget::Limited::new(String::new());
    for (i, item) in items.try_iter()?.checked().enumerate() {
        let item = item?;
        let written = if i > 0 {
            std::fmt::Write::write_str(&mut out, separator)
        } else {
            Ok(())
        };
        written
            .and_then(|()| std::fmt::Write::write_fmt(&mut out, format_args!("{item}")))
            .map_err(|_| budget::write_error())?;
    }
    Ok(MjValue::from(out.into_inner()))
}

/// Counts the bytes of a value's JSON against the size limit.
struct Measure(usize);

impl std::io::Write for Measure {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 = self.0.saturating_add(buf.len());
        budget::check(self.0).map_err(std::io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A value as JSON; its JSON text is measured first, so a lazy value (a
/// repeated list of long strings) is refused before it is expanded.
fn to_json(value: &MjValue) -> Result<Value, Error> {
    let cannot = |e: serde_json::Error| {
        Error::new(
            ErrorKind::BadSerialization,
            format!("the value cannot be JSON: {e}"),
        )
    };
    serde_json::to_writer(Measure(0), value).map_err(cannot)?;
    serde_json::to_value(value).map_err(cannot)
}

#[cfg(test)]
mod tests;
