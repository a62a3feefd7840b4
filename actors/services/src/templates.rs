//! The template library: realistic workflows with parameters. A template
//! is instantiated into a draft: parameters checked and substituted
//! (`"${name}"`), the document validated like any other.

use flowmesh_api::InstantiateRequest;
use std::sync::OnceLock;

use flowmesh_model::WorkflowDocument;
use flowmesh_model::validate::MAX_NAME_CHARS;
use flowmesh_store::WorkflowSummary;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::api::EngineHandle;
use crate::error::Error;

macro_rules! templates {
    ($($id:literal),+ $(,)?) => {
        &[$(($id, include_str!(concat!("../templates/", $id, ".json")))),+]
    };
}

/// Every template by id, as shipped.
const FILES: &[(&str, &str)] = templates![
    "approval-with-resume",
    "daily-ai-digest",
    "form-to-crm-with-filter",
    "github-issue-labeler",
    "invoice-code-transform",
    "lead-enrichment",
    "llm-ticket-triage",
    "multi-agent-research-brief",
    "nightly-http-sync",
    "order-fulfillment-router",
    "payment-failure-followup",
    "signup-welcome",
    "uptime-monitor",
    "webhook-to-slack",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ParameterType {
    String,
    /// An http or https URL.
    Url,
    Number,
    Boolean,
}

#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Parameter {
    pub name: String,
    pub description: String,
    #[serde(rename = "type")]
    pub kind: ParameterType,
    #[serde(default)]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
}

#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Template {
    pub id: String,
    pub name: String,
    pub description: String,
    pub category: String,
    pub parameters: Vec<Parameter>,
    /// The document, with `${parameter}` placeholders: a workflow document
    /// once instantiated, free-form until then.
    #[schemars(with = "Map<String, Value>")]
    pub workflow: Value,
}

/// The parsed library; a template that does not parse is a build mistake
/// the library's test catches.
pub fn library() -> &'static [Template] {
    static LIBRARY: OnceLock<Vec<Template>> = OnceLock::new();
    LIBRARY.get_or_init(|| {
        FILES
            .iter()
            .filter_map(|(id, text)| match serde_json::from_str::<Template>(text) {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::error!(template = id, error = %e, "a template does not parse");
                    None
                }
            })
            .collect()
    })
}

/// A parameter's value, checked against its type.
fn check(p: &Parameter, value: &Value) -> Result<(), String> {
    let ok = match p.kind {
        ParameterType::String => value.as_str().is_some_and(|s| !s.is_empty()),
        ParameterType::Url => value.as_str().is_some_and(is_web_url),
        ParameterType::Number => value.is_number(),
        ParameterType::Boolean => value.is_boolean(),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "parameters.{}: must be {}",
            p.name,
            match p.kind {
                ParameterType::String => "a non-empty string",
                ParameterType::Url => "an http or https URL",
                ParameterType::Number => "a number",
                ParameterType::Boolean => "true or false",
            }
        ))
    }
}

/// An http or https URL with a host (what the node checks further).
pub(super) fn is_web_url(s: &str) -> bool {
    (s.starts_with("http://") || s.starts_with("https://"))
        && s.split("://").nth(1).is_some_and(|rest| {
            let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
            !host.is_empty() && !host.contains(char::is_whitespace)
        })
}

/// Replaces `${name}` placeholders: a whole-string placeholder takes the
/// value with its type, one inside a string its text.
fn substitute(value: &Value, values: &Map<String, Value>) -> Value {
    match value {
        Value::String(s) => {
            if let Some(name) = s.strip_prefix("${").and_then(|r| r.strip_suffix('}'))
                && let Some(v) = values.get(name)
            {
                return v.clone();
            }
            let mut out = s.clone();
            for (name, v) in values {
                let text = match v {
                    Value::String(t) => t.clone(),
                    other => other.to_string(),
                };
                out = out.replace(&format!("${{{name}}}"), &text);
            }
            Value::String(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| substitute(v, values)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), substitute(v, values)))
                .collect(),
        ),
        other => other.clone(),
    }
}

impl Template {
    /// The document with the given parameters (defaults for the rest).
    pub fn render(&self, given: &Map<String, Value>) -> Result<Value, Error> {
        if let Some(unknown) = given
            .keys()
            .find(|k| !self.parameters.iter().any(|p| &p.name == *k))
        {
            return Err(Error::BadRequest(format!(
                "parameters.{unknown}: template {} has no such parameter",
                self.id
            )));
        }
        let mut values = Map::new();
        for p in &self.parameters {
            let value = match (given.get(&p.name), &p.default) {
                (Some(v), _) => v.clone(),
                (None, Some(d)) => d.clone(),
                (None, None) => {
                    return Err(Error::BadRequest(format!(
                        "parameters.{}: required ({})",
                        p.name, p.description
                    )));
                }
            };
            check(p, &value).map_err(Error::BadRequest)?;
            values.insert(p.name.clone(), value);
        }
        Ok(substitute(&self.workflow, &values))
    }
}

impl EngineHandle {
    pub fn templates(&self) -> &'static [Template] {
        library()
    }

    /// A draft workflow from a template, validated like any other.
    pub async fn instantiate(
        &self,
        request: InstantiateRequest,
    ) -> Result<(WorkflowSummary, WorkflowDocument), Error> {
        let template = library()
            .iter()
            .find(|t| t.id == request.template)
            .ok_or(Error::NotFound("template"))?;
        let mut document = template.render(&request.parameters)?;
        if let Some(name) = request.name {
            if super::blank(&name) || name.chars().count() > MAX_NAME_CHARS {
                return Err(Error::BadRequest(format!(
                    "name: must be 1 to {MAX_NAME_CHARS} characters with something besides spaces"
                )));
            }
            document["name"] = Value::String(name);
        }
        let document = self
            .check_document(request.tenant, document.to_string().as_bytes())
            .await?;
        let summary = self
            .shared
            .store
            .create_workflow(request.tenant, &document)
            .await?;
        Ok((summary, document))
    }
}
