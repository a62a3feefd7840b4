//! Kinds that shape the flow and the data: respond, wait, conditions,
//! mapping and merge.

use std::collections::HashSet;

use flowmesh_model::HumanDuration;
use flowmesh_model::validate::Outputs;
use serde_json::{Map, Value, json};

use super::{Checker, Ctx};
use crate::expr::Scope;
use crate::{NodeError, Outcome};

fn config<'a>(ctx: &'a Ctx<'_>, field: &str) -> Option<&'a Value> {
    ctx.request.node.config.get(field)
}

fn config_str<'a>(ctx: &'a Ctx<'_>, field: &str) -> Result<&'a str, NodeError> {
    config(ctx, field)
        .and_then(Value::as_str)
        .ok_or_else(|| NodeError::permanent(format!("config.{field} is missing")))
}

fn output(value: Value) -> Result<Outcome, NodeError> {
    Ok(Outcome::Output {
        value,
        branch: None,
    })
}

pub fn respond(ctx: &Ctx<'_>) -> Result<Outcome, NodeError> {
    let scope = ctx.scope();
    let status = config(ctx, "status").and_then(Value::as_u64).unwrap_or(200) as u16;
    let mut headers = Vec::new();
    if let Some(Value::Object(map)) = config(ctx, "headers") {
        for (name, template) in map {
            let value = ctx
                .expr
                .render_text(template.as_str().unwrap_or_default(), &scope)?;
            headers.push((name.clone(), value));
        }
    }
    let body = match config(ctx, "body") {
        Some(body) => ctx.expr.render_value(body, &scope)?,
        None => Value::Null,
    };
    Ok(Outcome::Respond {
        status,
        headers,
        body,
    })
}

pub fn wait(ctx: &Ctx<'_>) -> Result<Outcome, NodeError> {
    let scope = ctx.scope();
    let text = ctx.expr.render_text(config_str(ctx, "duration")?, &scope)?;
    let duration: HumanDuration = text.parse().map_err(|_| {
        NodeError::permanent(format!(
            "{text:?} is not a duration; write it like \"5s\" or \"2h\""
        ))
    })?;
    Ok(Outcome::Wait {
        duration: duration.0,
    })
}

pub fn wait_for_event(ctx: &Ctx<'_>) -> Result<Outcome, NodeError> {
    let Some(timeout) = config(ctx, "timeout") else {
        return Ok(Outcome::AwaitResume { timeout: None });
    };
    let scope = ctx.scope();
    let text = ctx
        .expr
        .render_text(timeout.as_str().unwrap_or_default(), &scope)?;
    let timeout: HumanDuration = text.parse().map_err(|_| {
        NodeError::permanent(format!(
            "timeout {text:?} is not a duration; write it like \"15m\" or \"7d\""
        ))
    })?;
    Ok(Outcome::AwaitResume {
        timeout: Some(timeout.0),
    })
}

pub fn if_else(ctx: &Ctx<'_>) -> Result<Outcome, NodeError> {
    let scope = ctx.scope();
    let result = ctx.expr.truthy(config_str(ctx, "logic")?, &scope)?;
    Ok(Outcome::Output {
        value: json!({"result": result}),
        branch: Some(result.to_string()),
    })
}

pub(crate) fn check_switch(c: &mut Checker<'_>) -> Outputs {
    c.expression("value");
    let mut names = Vec::new();
    match c.get("cases").cloned() {
        Some(Value::Array(cases)) if !cases.is_empty() => {
            let mut seen = HashSet::new();
            for (i, case) in cases.iter().enumerate() {
                let field = format!("cases[{i}]");
                match case.get("name").and_then(Value::as_str) {
                    Some("default") => c.push(
                        &format!("{field}.name"),
                        "reserved",
                        "\"default\" is the output when no case matches",
                    ),
                    Some(name) if !name.is_empty() => {
                        if !seen.insert(name.to_owned()) {
                            c.push(
                                &format!("{field}.name"),
                                "duplicate",
                                format!("case {name:?} is listed twice"),
                            );
                        }
                        names.push(name.to_owned());
                    }
                    _ => c.push(
                        &format!("{field}.name"),
                        "required",
                        "every case needs a name",
                    ),
                }
                match (case.get("equals"), case.get("when")) {
                    (Some(_), None) => {}
                    (None, Some(Value::String(expr))) => {
                        if let Err(e) = c.expr.check_expression(expr) {
                            c.push(&format!("{field}.when"), "invalid_expression", e);
                        }
                    }
                    _ => c.push(
                        &field,
                        "invalid_case",
                        "a case has either `equals` (a value) or `when` (an expression)",
                    ),
                }
            }
        }
        _ => c.push("cases", "required", "cases must be a non-empty array"),
    }
    names.push("default".to_owned());
    Outputs::Named(names)
}

pub fn switch(ctx: &Ctx<'_>) -> Result<Outcome, NodeError> {
    let scope = ctx.scope();
    let value = ctx.expr.eval(config_str(ctx, "value")?, &scope)?;
    let cases = config(ctx, "cases")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for case in &cases {
        let name = case.get("name").and_then(Value::as_str).unwrap_or_default();
        let matched = match (case.get("equals"), case.get("when").and_then(Value::as_str)) {
            (Some(expected), _) => *expected == value,
            (None, Some(expr)) => ctx.expr.truthy(expr, &scope)?,
            (None, None) => false,
        };
        if matched {
            return Ok(Outcome::Output {
                value: json!({"case": name, "value": value}),
                branch: Some(name.to_owned()),
            });
        }
    }
    Ok(Outcome::Output {
        value: json!({"case": "default", "value": value}),
        branch: Some("default".into()),
    })
}

pub fn filter(ctx: &Ctx<'_>) -> Result<Outcome, NodeError> {
    let scope = ctx.scope();
    let items = ctx.expr.eval(config_str(ctx, "items")?, &scope)?;
    let Value::Array(items) = items else {
        return Err(NodeError::permanent(format!(
            "config.items must give an array, not {}",
            kind_of(&items)
        )));
    };
    let condition = config_str(ctx, "condition")?;
    let mut kept = Vec::new();
    let mut item_scope = ctx.request.scope.clone();
    for item in items {
        item_scope.insert("item".to_owned(), item.clone());
        if ctx.expr.truthy(
            condition,
            &Scope::new(&item_scope, ctx.request.max_output_bytes),
        )? {
            kept.push(item);
        }
    }
    output(Value::Array(kept))
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub fn mapping(ctx: &Ctx<'_>) -> Result<Outcome, NodeError> {
    let scope = ctx.scope();
    let mapping = config(ctx, "mapping")
        .cloned()
        .unwrap_or(Value::Object(Map::new()));
    output(ctx.expr.render_value(&mapping, &scope)?)
}

pub fn merge(ctx: &Ctx<'_>) -> Result<Outcome, NodeError> {
    let mode = config(ctx, "mode")
        .and_then(Value::as_str)
        .unwrap_or("object");
    let inputs = ctx.request.inputs.iter().map(|id| {
        (
            id,
            ctx.request.scope.get(id).cloned().unwrap_or(Value::Null),
        )
    });
    let value = match mode {
        "append" => Value::Array(
            inputs
                .flat_map(|(_, v)| match v {
                    Value::Array(items) => items,
                    other => vec![other],
                })
                .collect(),
        ),
        "shallow" => {
            let mut merged = Map::new();
            for (_, v) in inputs {
                if let Value::Object(map) = v {
                    merged.extend(map);
                }
            }
            Value::Object(merged)
        }
        _ => Value::Object(inputs.map(|(id, v)| (id.clone(), v)).collect()),
    };
    output(value)
}
