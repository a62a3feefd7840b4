//! `ai`: one request to the tenant's language model, from a prompt
//! template, optionally answered as JSON that a schema checks.

use flowmesh_model::Primitive;
use flowmesh_model::validate::Outputs;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::Ctx;
use crate::kind::{Behaviour, NodeKind, Problems};
use crate::llm::{self, Call, ChatRequest, Completion, Llm, Message, answer_json};
use crate::{ErrorClass, NodeError, Outcome};

/// Most schema mismatches listed in one error.
const MAX_LISTED: usize = 5;

pub struct Ai;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[schemars(length(min = 1), extend("x-flowmesh-field" = "template"))]
    pub prompt: String,
    #[serde(default)]
    #[schemars(extend("x-flowmesh-field" = "template"))]
    pub system: Option<String>,
    /// The tenant's default model when absent.
    #[serde(default)]
    #[schemars(length(min = 1))]
    pub model: Option<String>,
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 2.0))]
    pub temperature: Option<f64>,
    #[serde(default)]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub max_tokens: Option<u64>,
    /// A JSON Schema: the answer must be JSON matching it, a mismatch fails the attempt.
    #[serde(default)]
    pub schema: Option<Map<String, Value>>,
    /// Stream the answer's text as it comes.
    #[serde(default)]
    pub stream: bool,
}

impl NodeKind for Ai {
    type Config = Config;
    const NAME: &'static str = "ai";
    const PRIMITIVE: Primitive = Primitive::Action;
    const DESCRIPTION: &'static str = "Asks the tenant's language model; config: prompt (a template), system, model, temperature, max_tokens, schema (a JSON Schema: the answer must be JSON matching it, a mismatch fails the attempt), stream. Output: text, json (with a schema), model, usage.";
    const BEHAVIOUR: Behaviour = Behaviour::OUTSIDE_CALL;

    fn example() -> Value {
        json!({
            "prompt": "Classify this message: {{ trigger.body.text }}",
            "temperature": 0,
            "schema": {"type": "object", "required": ["label"], "properties": {"label": {"type": "string"}}}
        })
    }

    fn check(config: &Config, problems: &mut Problems<'_>) -> Outputs {
        if let Some(schema) = &config.schema
            && let Err(e) = jsonschema::validator_for(&Value::Object(schema.clone()))
        {
            problems.push(
                "schema",
                "invalid_schema",
                format!("not a valid JSON Schema: {e}"),
            );
        }
        Outputs::Single
    }

    async fn run(config: Config, ctx: &Ctx<'_>) -> Result<Outcome, NodeError> {
        run(config, ctx, ctx.llm).await
    }
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

async fn run(config: Config, ctx: &Ctx<'_>, llm: &Llm) -> Result<Outcome, NodeError> {
    let schema = config.schema.map(Value::Object);
    let scope = ctx.scope();
    let mut system = match &config.system {
        Some(s) => ctx.expr.render_text(s, &scope)?,
        None => String::new(),
    };
    if let Some(schema) = &schema {
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
        schema: schema.clone(),
        stream: config.stream,
    };
    let completion = ask(ctx, llm, &request).await?;
    let mut output = json!({
        "text": completion.content,
        "model": completion.model,
        "usage": completion.usage,
        "cached": completion.cached,
    });
    if let Some(schema) = &schema {
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
