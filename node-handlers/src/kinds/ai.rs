//! `ai`: one request to the tenant's language model, from a prompt
//! template, optionally answered as JSON that a schema checks.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Checker, Ctx};
use crate::llm::{self, Call, ChatRequest, Completion, Llm, Message, answer_json};
use crate::{ErrorClass, NodeError, Outcome};

/// Most schema mismatches listed in one error.
const MAX_LISTED: usize = 5;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    prompt: String,
    #[serde(default)]
    system: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    schema: Option<Value>,
    #[serde(default)]
    stream: bool,
}

/// Settings shared by the `ai` and `agents` kinds.
pub(super) fn check_model_settings(c: &mut Checker<'_>) {
    match c.get("model") {
        None | Some(Value::Null) => {}
        Some(Value::String(m)) if !m.trim().is_empty() => {}
        Some(_) => c.push("model", "invalid_type", "model must be a model name"),
    }
    match c.get("temperature") {
        None | Some(Value::Null) => {}
        Some(Value::Number(t)) if t.as_f64().is_some_and(|t| (0.0..=2.0).contains(&t)) => {}
        Some(_) => c.push(
            "temperature",
            "invalid_value",
            "temperature must be a number from 0 to 2",
        ),
    }
}

pub(super) fn positive(c: &mut Checker<'_>, field: &str, max: u64) {
    match c.get(field) {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) if n.as_u64().is_some_and(|n| (1..=max).contains(&n)) => {}
        Some(_) => c.push(
            field,
            "invalid_value",
            format!("{field} must be a whole number from 1 to {max}"),
        ),
    }
}

pub(super) fn check(c: &mut Checker<'_>) {
    if let Some(prompt) = c.required_str("prompt") {
        c.templates("prompt", &Value::String(prompt));
    }
    match c.get("system").cloned() {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => c.templates("system", &Value::String(s)),
        Some(_) => c.push("system", "invalid_type", "system must be a string"),
    }
    check_model_settings(c);
    positive(c, "max_tokens", 1_000_000);
    match c.get("schema").cloned() {
        None | Some(Value::Null) => {}
        Some(schema @ Value::Object(_)) => {
            if let Err(e) = jsonschema::validator_for(&schema) {
                c.push(
                    "schema",
                    "invalid_schema",
                    format!("not a valid JSON Schema: {e}"),
                );
            }
        }
        Some(_) => c.push(
            "schema",
            "invalid_type",
            "schema must be a JSON Schema object",
        ),
    }
    match c.get("stream") {
        None | Some(Value::Bool(_)) => {}
        Some(_) => c.push("stream", "invalid_type", "stream must be true or false"),
    }
    c.only(
        &[
            "prompt",
            "system",
            "model",
            "temperature",
            "max_tokens",
            "schema",
            "stream",
        ],
        "an ai node",
    );
}

/// What a failed model call means for the node.
pub(super) fn node_error(e: llm::Error) -> NodeError {
    let class = match &e {
        llm::Error::Denied(_) => ErrorClass::Denied,
        e if e.is_retryable() => ErrorClass::Transient,
        _ => ErrorClass::Permanent,
    };
    NodeError {
        class,
        message: e.to_string(),
    }
}

/// Asks the tenant's model and meters the tokens it spent.
pub(super) async fn ask(
    ctx: &Ctx<'_>,
    llm: &Llm,
    request: &ChatRequest,
) -> Result<Completion, NodeError> {
    let completion = llm
        .chat(Call {
            tenant: ctx.request.tenant,
            request,
            endpoints: ctx.request.endpoints,
            secrets: ctx.request.secrets,
        })
        .await
        .map_err(node_error)?;
    ctx.request.meter.add(completion.usage.total_tokens);
    Ok(completion)
}

/// Checks an answer against a schema; the mismatches, by location.
pub(super) fn mismatches(schema: &Value, value: &Value) -> Result<Vec<String>, String> {
    let validator = jsonschema::validator_for(schema).map_err(|e| e.to_string())?;
    Ok(validator
        .iter_errors(value)
        .take(MAX_LISTED)
        .map(|e| {
            let at = e.instance_path.to_string();
            format!("at {}: {e}", if at.is_empty() { "/" } else { &at })
        })
        .collect())
}

pub async fn run(ctx: &Ctx<'_>, llm: &Llm) -> Result<Outcome, NodeError> {
    let config: Config = serde_json::from_value(ctx.request.node.config.clone())
        .map_err(|e| NodeError::permanent(format!("invalid ai config: {e}")))?;
    let scope = ctx.scope();
    let mut system = match &config.system {
        Some(s) => ctx.expr.render_text(s, &scope)?,
        None => String::new(),
    };
    if let Some(schema) = &config.schema {
        // Said in words too, for servers without structured output.
        system.push_str(&format!(
            "\n\nAnswer with one JSON value only, matching this JSON Schema:\n{schema}"
        ));
    }
    let mut messages = Vec::new();
    if !system.trim().is_empty() {
        messages.push(Message::new("system", system.trim()));
    }
    messages.push(Message::new(
        "user",
        ctx.expr.render_text(&config.prompt, &scope)?,
    ));
    let request = ChatRequest {
        model: config.model,
        messages,
        temperature: config.temperature,
        max_tokens: config.max_tokens,
        schema: config.schema.clone(),
        stream: config.stream,
    };
    let completion = ask(ctx, llm, &request).await?;
    let mut output = json!({
        "text": completion.content,
        "model": completion.model,
        "usage": completion.usage,
        "cached": completion.cached,
    });
    if let Some(schema) = &config.schema {
        let invalid = |message: String| NodeError {
            class: ErrorClass::InvalidOutput,
            message,
        };
        let value = answer_json(&completion.content)
            .map_err(|e| invalid(format!("the model's answer is not JSON: {e}")))?;
        let wrong = mismatches(schema, &value).map_err(NodeError::permanent)?;
        if !wrong.is_empty() {
            return Err(invalid(format!(
                "the model's answer does not match the schema: {}",
                wrong.join("; ")
            )));
        }
        output["json"] = value;
    }
    Ok(Outcome::Output {
        value: output,
        branch: None,
    })
}
