//! Plain language to a workflow: the tenant's model is asked for a document
//! of the engine's node kinds (structured output against the published
//! schema), the answer is checked by the same validator as any workflow,
//! and the problems go back to the model for a bounded number of repairs.
//! The result is a draft, never published.

use flowmesh_api::GenerateRequest;
use flowmesh_model::validate::{KindCatalog, ValidationError, validate};
use flowmesh_model::{TenantId, WorkflowDocument};
use flowmesh_node_handlers::KindInfo;
use flowmesh_node_handlers::llm::{self, Call, ChatRequest, Message, Usage};
use flowmesh_store::{ModelSettings, WorkflowSummary};
use serde_json::{Value, json};

use super::api::EngineHandle;
use crate::error::Error;

/// Longest prompt taken, in characters.
pub const MAX_PROMPT_CHARS: usize = 4_000;

/// A valid draft and how it came about.
#[derive(Clone, Debug)]
pub struct Generated {
    pub workflow: WorkflowSummary,
    pub document: WorkflowDocument,
    pub explanation: String,
    /// Requests made to the model (1 when the first answer was valid).
    pub rounds: u32,
    pub usage: Usage,
}

/// The document schema as the model's answer carries it: the workflow (or
/// null when it cannot be built) and an explanation.
fn answer_schema() -> Value {
    let mut document = WorkflowDocument::json_schema();
    let defs = document
        .as_object_mut()
        .and_then(|d| d.remove("$defs"))
        .unwrap_or_else(|| json!({}));
    if let Some(d) = document.as_object_mut() {
        d.remove("$schema");
        d.remove("title");
    }
    json!({
        "type": "object",
        "required": ["workflow", "explanation"],
        "properties": {
            "workflow": {"anyOf": [document, {"type": "null"}]},
            "explanation": {"type": "string"}
        },
        "$defs": defs
    })
}

/// What the model is told: the primitives, every node kind the engine has
/// (from the handler registry), how data flows, and the answer's schema.
fn instructions(kinds: &[KindInfo], schema: &Value) -> String {
    let mut text = String::from(
        "You design workflows for flowmesh, a workflow engine. A workflow is a JSON document \
         of nodes and edges built from five primitives: trigger (what starts a run), action \
         (does something), connection (credentials an action uses), condition (chooses a \
         branch) and data (reshapes data). Use only these node kinds, as `type` and `kind`:\n",
    );
    for k in kinds {
        text.push_str(&format!(
            "- {}/{}: {} Outputs: {}.\n",
            k.primitive.as_str(),
            k.kind,
            k.description,
            k.outputs
        ));
    }
    text.push_str(
        "\nStrings in a node's config may hold templates such as {{ trigger.body.email }}: \
         `trigger` is what started the run (trigger.body is the input) and every upstream \
         node's output is there by its id (null when a condition skipped that node); an \
         http_request's output is {status, headers, body}. A template may name only these \
         (and `item` in a filter's condition), and minijinja's own filters. Using a field \
         that is not there fails the run, so give an optional field a default \
         ({{ trigger.body.phone | default(none) }}, {{ trigger.body.name | default('there') }}) \
         or test it first (`trigger.body.phone is defined`, {% if trigger.body.phone %}). \
         Conditions take expressions without braces. Edges go from a node to the next; \
         an edge out of a condition names the output it follows in `when`. Every node id is \
         unique, every node is reachable from the trigger, and there is one trigger. Secrets \
         are never written into a workflow: an action refers to a connection node naming a \
         secret.\n\nAnswer with one JSON object only: {\"workflow\": <the document>, \
         \"explanation\": <a few sentences on what it does and what to fill in before \
         publishing>}; when the request cannot be built from these node kinds, answer \
         {\"workflow\": null, \"explanation\": <why>}. The answer follows this JSON Schema:\n",
    );
    text.push_str(&schema.to_string());
    text
}

/// Why an answer is not a valid workflow, by location.
fn problems(
    catalog: &dyn KindCatalog,
    answer: &str,
) -> Result<(WorkflowDocument, String), Problem> {
    let value: Value = match flowmesh_node_handlers::llm::answer_json(answer) {
        Ok(value) => value,
        Err(e) => {
            return Err(Problem::Invalid(vec![ValidationError::new(
                "",
                "not_json",
                format!("the answer is not JSON: {e}"),
            )]));
        }
    };
    let (workflow, explanation) = carried(value)?;
    let text = workflow.to_string();
    let document = WorkflowDocument::from_json(text.as_bytes())
        .map_err(|e| Problem::Invalid(prefixed(e.errors)))?;
    validate(&document, catalog).map_err(|e| Problem::Invalid(prefixed(e.errors)))?;
    Ok((document, explanation))
}

/// The workflow and the explanation an answer carries: the object asked
/// for, or a bare workflow document (from a model that ignored the
/// structured-output request), taken as it is.
fn carried(value: Value) -> Result<(Value, String), Problem> {
    let shape = |what: &str| {
        Problem::Invalid(vec![ValidationError::new(
            "",
            "invalid_answer",
            format!(
                "the answer is {what}, not an object {{\"workflow\": <the document>, \"explanation\": <text>}}"
            ),
        )])
    };
    let mut answer = match value {
        Value::Object(answer) => answer,
        Value::Array(_) => return Err(shape("a list")),
        Value::String(_) => return Err(shape("a string")),
        Value::Number(_) | Value::Bool(_) | Value::Null => return Err(shape("a single value")),
    };
    let explanation = answer
        .get("explanation")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    match answer.remove("workflow") {
        Some(Value::Null) => Err(Problem::Refused(explanation)),
        Some(workflow) => Ok((workflow, explanation)),
        None if answer.contains_key("nodes") => Ok((Value::Object(answer), String::new())),
        None => {
            let fields: Vec<&str> = answer.keys().map(String::as_str).collect();
            Err(Problem::Invalid(vec![ValidationError::new(
                "workflow",
                "required",
                format!(
                    "the answer has no `workflow` (the document, or null when it cannot be built){}",
                    match fields.is_empty() {
                        true => String::new(),
                        false => format!("; it has: {}", fields.join(", ")),
                    }
                ),
            )]))
        }
    }
}

/// Locations inside the answer's `workflow`.
fn prefixed(errors: Vec<ValidationError>) -> Vec<ValidationError> {
    errors
        .into_iter()
        .map(|e| ValidationError {
            path: if e.path.is_empty() {
                "workflow".to_owned()
            } else {
                format!("workflow.{}", e.path)
            },
            ..e
        })
        .collect()
}

enum Problem {
    /// The answer breaks the rules; each problem listed.
    Invalid(Vec<ValidationError>),
    /// The model says the request cannot be built.
    Refused(String),
}

fn upstream(e: llm::Error) -> Error {
    match e {
        // The tenant can set its own endpoint: a state to change, not a
        // missing feature of the server.
        llm::Error::NotConfigured(_) => Error::Conflict(e.to_string()),
        e => Error::Upstream(e),
    }
}

impl EngineHandle {
    /// Generates a draft workflow from a description. Tokens used are
    /// charged whatever the outcome.
    pub async fn generate(&self, request: GenerateRequest) -> Result<Generated, Error> {
        let prompt = request.prompt.trim();
        if super::blank(prompt) {
            return Err(Error::BadRequest("prompt: describe the workflow".into()));
        }
        if prompt.chars().count() > MAX_PROMPT_CHARS {
            return Err(Error::BadRequest(format!(
                "prompt: at most {MAX_PROMPT_CHARS} characters"
            )));
        }
        self.admit_start(request.tenant, prompt.len()).await?;
        let bounds = self.bounds(request.tenant).await?;
        let catalog = self.registry().bounded(&bounds);
        let schema = answer_schema();
        let mut chat = ChatRequest {
            messages: vec![
                Message::new("system", instructions(&self.kinds(), &schema)),
                Message::new("user", prompt),
            ],
            temperature: Some(0.0),
            schema: Some(schema),
            ..ChatRequest::default()
        };
        let mut usage = Usage::default();
        let mut rounds = 0;
        let outcome = loop {
            rounds += 1;
            let answer = self
                .registry()
                .llm()
                .chat(Call {
                    tenant: request.tenant,
                    request: &chat,
                    endpoints: &self.shared.endpoints,
                    secrets: &self.shared.secrets,
                })
                .await;
            let answer = match answer {
                Ok(answer) => answer,
                Err(e) => break Err(upstream(e)),
            };
            usage.add(answer.usage);
            match problems(&catalog, &answer.content) {
                Ok(found) => break Ok(found),
                Err(Problem::Refused(explanation)) => {
                    break Err(Error::NotGenerated {
                        message:
                            "the model could not build this workflow from flowmesh's node kinds"
                                .into(),
                        explanation,
                        errors: Vec::new(),
                        rounds,
                    });
                }
                Err(Problem::Invalid(errors)) if rounds > request.repairs => {
                    break Err(Error::NotGenerated {
                        message: format!(
                            "no valid workflow after {rounds} answers; the last one had {} problems",
                            errors.len()
                        ),
                        explanation: String::new(),
                        errors,
                        rounds,
                    });
                }
                Err(Problem::Invalid(errors)) => {
                    let listed: Vec<String> = errors
                        .iter()
                        .map(|e| format!("- {} ({}): {}", e.path, e.code, e.message))
                        .collect();
                    chat.messages
                        .push(Message::new("assistant", answer.content));
                    chat.messages.push(Message::new(
                        "user",
                        format!(
                            "That answer is not a valid workflow:\n{}\nAnswer again with the whole corrected JSON object.",
                            listed.join("\n")
                        ),
                    ));
                }
            }
        };
        self.charge_generation(request.tenant, usage).await?;
        let (document, explanation) = outcome?;
        let workflow = self
            .shared
            .store
            .create_workflow(request.tenant, &document)
            .await?;
        Ok(Generated {
            workflow,
            document,
            explanation,
            rounds,
            usage,
        })
    }

    async fn charge_generation(&self, tenant: TenantId, usage: Usage) -> Result<(), Error> {
        if usage.total_tokens == 0 {
            return Ok(());
        }
        let mut record = flowmesh_store::Usage {
            workflow: flowmesh_model::WorkflowId(uuid::Uuid::nil()),
            executions: 0,
            node_runs: 0,
            sandbox_ms: 0,
            llm_tokens: usage.total_tokens as i64,
            credits: 0,
        };
        record.credits = self.shared.options.tenancy.prices.charge(&record);
        self.shared.store.record_usage(tenant, &record).await?;
        crate::metrics::credits_used(tenant, record.credits);
        Ok(())
    }
}

impl EngineHandle {
    /// The tenant's own language-model settings.
    pub async fn model_settings(&self, tenant: TenantId) -> Result<ModelSettings, Error> {
        Ok(self.shared.store.model_settings(tenant).await?)
    }

    /// Replaces the tenant's language-model settings; `None` fields take
    /// the instance's.
    pub async fn set_model_settings(
        &self,
        tenant: TenantId,
        settings: ModelSettings,
    ) -> Result<ModelSettings, Error> {
        if let Some(url) = &settings.base_url
            && !crate::templates::is_web_url(url)
        {
            return Err(Error::BadRequest(
                "base_url: an http or https URL with a host".into(),
            ));
        }
        if let Some(model) = &settings.model
            && (super::blank(model) || model.chars().count() > 200)
        {
            return Err(Error::BadRequest("model: 1 to 200 characters".into()));
        }
        if let Some(name) = &settings.api_key_secret
            && !flowmesh_store::valid_secret_name(name)
        {
            return Err(Error::BadRequest(
                "api_key_secret: the name of one of the tenant's secrets".into(),
            ));
        }
        if !self
            .shared
            .store
            .set_model_settings(tenant, &settings)
            .await?
        {
            return Err(Error::NotFound("tenant"));
        }
        Ok(settings)
    }
}
