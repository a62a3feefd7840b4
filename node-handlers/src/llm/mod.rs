//! Large language models: the provider trait, the OpenAI-compatible client
//! that implements it, and the per-tenant response cache in front of it.
//!
//! An endpoint (base URL, model, API key) comes from the instance's
//! settings, overridden per tenant; the tenant's key lives in its secrets.

mod cache;
mod openai;

use std::sync::Arc;

use flowmesh_model::{HumanDuration, TenantId};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use openai::OpenAiCompatible;

use crate::{SecretError, SecretSource};

/// Settings of the language-model client.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Options {
    /// Base URL of an OpenAI-compatible API, such as
    /// `https://api.openai.com/v1` or `http://localhost:11434/v1` (Ollama);
    /// none: tenants must set their own.
    pub base_url: Option<String>,
    /// Model used when a node or tenant names none.
    pub model: Option<String>,
    /// The instance's API key; never serialized.
    #[serde(skip_serializing)]
    pub api_key: Option<String>,
    /// Longest wait for a whole answer (for a streamed one: between chunks).
    pub timeout: HumanDuration,
    /// Further attempts after a 429, a 5xx or a network error.
    pub max_retries: u32,
    /// Longest `Retry-After` honoured; a longer one fails the call (retryable).
    pub max_retry_wait: HumanDuration,
    /// How long an answer to an identical deterministic request (temperature
    /// 0) is reused for the same tenant; zero turns the cache off.
    pub cache_ttl: HumanDuration,
    /// Most answers kept in the cache, all tenants together.
    pub cache_entries: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            base_url: None,
            model: None,
            api_key: None,
            timeout: HumanDuration::from_millis(120_000),
            max_retries: 3,
            max_retry_wait: HumanDuration::from_millis(30_000),
            cache_ttl: HumanDuration::from_millis(600_000),
            cache_entries: 10_000,
        }
    }
}

/// Where one call goes.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub base_url: String,
    pub model: String,
    pub api_key: Option<String>,
    /// A tenant chose it: private addresses only where the instance allows.
    pub guarded: bool,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("guarded", &self.guarded)
            .finish()
    }
}

/// A tenant's own endpoint settings; unset fields take the instance's.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantEndpoint {
    pub base_url: Option<String>,
    pub model: Option<String>,
    /// Name of the tenant's secret holding its API key.
    pub api_key_secret: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: impl Into<String>) -> Self {
        Self {
            role: role.to_owned(),
            content: content.into(),
        }
    }
}

/// One chat completion request, without the endpoint.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ChatRequest {
    /// A model for this call only; the endpoint's otherwise.
    #[serde(skip)]
    pub model: Option<String>,
    pub messages: Vec<Message>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// A JSON Schema the answer must follow (structured output).
    #[serde(skip)]
    pub schema: Option<Value>,
    /// Receive the answer as a stream of chunks.
    #[serde(skip)]
    pub stream: bool,
}

impl ChatRequest {
    /// Deterministic requests may be answered from the cache.
    fn is_deterministic(&self) -> bool {
        self.temperature == Some(0.0)
    }
}

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

impl Usage {
    pub fn add(&mut self, other: Usage) {
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.total_tokens += other.total_tokens;
    }
}

/// The model's answer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Completion {
    pub content: String,
    pub model: String,
    pub usage: Usage,
    /// Answered from the cache: no tokens were spent on it.
    pub cached: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No endpoint or model is configured. Retrying will not help.
    #[error(
        "no language model is configured: set FLOWMESH_LLM_BASE_URL and FLOWMESH_LLM_MODEL, or the tenant's /v1/settings/llm ({0})"
    )]
    NotConfigured(&'static str),
    /// The tenant's API key secret cannot be read.
    #[error("the API key secret: {0}")]
    Secret(#[from] SecretError),
    /// The tenant's model settings cannot be read.
    #[error("the tenant's model settings cannot be read: {source}")]
    Settings {
        #[source]
        source: Cause,
        retryable: bool,
    },
    /// The provider could not be reached or did not answer in time; retrying is safe.
    #[error("the model provider is unreachable: {0}; retrying is safe")]
    Unreachable(#[source] Cause),
    /// A refused address (private or loopback) that is not allowed.
    #[error("the model provider's address is refused: {0}")]
    Denied(#[source] crate::ssrf::Denied),
    /// The provider answered with an error status.
    #[error("the model provider answered {status}: {message}{}", if *retryable { "; retrying is safe" } else { "" })]
    Status {
        status: u16,
        message: String,
        retryable: bool,
    },
    /// The provider's answer is not a chat completion. Retrying may help.
    #[error("the model provider's answer is malformed: {0}")]
    Malformed(#[source] Cause),
}

/// What an error was caused by: the client's or parser's own error, or
/// what was seen when there is none (a timeout, a missing field).
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

impl Error {
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Unreachable(_) | Error::Malformed(_) => true,
            Error::Status { retryable, .. } | Error::Settings { retryable, .. } => *retryable,
            Error::Secret(SecretError::Retryable(_)) => true,
            Error::NotConfigured(_) | Error::Secret(_) | Error::Denied(_) => false,
        }
    }
}

/// The JSON in a model's answer, with a Markdown code fence around it or not.
pub fn answer_json(text: &str) -> Result<Value, String> {
    let trimmed = text.trim();
    let inner = trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .and_then(|rest| rest.strip_suffix("```"))
        .unwrap_or(trimmed);
    serde_json::from_str(inner.trim()).map_err(|e| e.to_string())
}

/// A chat-completions protocol.
pub trait Provider: Send + Sync {
    /// One request, retried by the provider's policy; streamed or not.
    fn complete<'a>(
        &'a self,
        endpoint: &'a Endpoint,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<Completion, Error>>;
}

/// Where a tenant's own endpoint settings are read.
pub trait TenantEndpoints: Send + Sync {
    fn tenant_endpoint(&self, tenant: TenantId) -> BoxFuture<'_, Result<TenantEndpoint, Error>>;
}

/// The language models of the engine: a provider, the instance's defaults
/// and the cache. Cheap to clone.
#[derive(Clone)]
pub struct Llm {
    provider: Arc<dyn Provider>,
    defaults: Arc<Options>,
    cache: cache::Cache,
}

/// One call for a tenant.
pub struct Call<'a> {
    pub tenant: TenantId,
    pub request: &'a ChatRequest,
    pub endpoints: &'a dyn TenantEndpoints,
    pub secrets: &'a dyn SecretSource,
}

impl Llm {
    pub fn new(options: &Options, provider: Arc<dyn Provider>) -> Self {
        Self {
            provider,
            cache: cache::Cache::new(options.cache_ttl.0, options.cache_entries),
            defaults: Arc::new(options.clone()),
        }
    }

    /// Drops expired cached answers.
    pub fn sweep(&self) {
        self.cache.sweep();
    }

    /// The endpoint of a tenant: its own settings over the instance's.
    pub async fn endpoint(&self, call: &Call<'_>) -> Result<Endpoint, Error> {
        let own = call.endpoints.tenant_endpoint(call.tenant).await?;
        let guarded = own.base_url.is_some();
        let base_url = own
            .base_url
            .or_else(|| self.defaults.base_url.clone())
            .ok_or(Error::NotConfigured("no base URL"))?;
        let model = call
            .request
            .model
            .clone()
            .or(own.model)
            .or_else(|| self.defaults.model.clone())
            .ok_or(Error::NotConfigured("no model"))?;
        // The instance's key goes only to the instance's URL: a tenant's
        // server gets the tenant's own key, or none.
        let api_key =
            match own.api_key_secret {
                Some(name) => Some(call.secrets.secret(call.tenant, &name).await?.ok_or_else(
                    || SecretError::unavailable(format!("secret {name:?} is not set")),
                )?),
                None if guarded => None,
                None => self.defaults.api_key.clone(),
            };
        Ok(Endpoint {
            base_url,
            model,
            api_key,
            guarded,
        })
    }

    /// Asks the tenant's model; identical deterministic requests within the
    /// cache's lifetime are answered from it.
    pub async fn chat(&self, call: Call<'_>) -> Result<Completion, Error> {
        let endpoint = self.endpoint(&call).await?;
        let key = call
            .request
            .is_deterministic()
            .then(|| cache::key(call.tenant, &endpoint, call.request))
            .filter(|_| self.cache.is_on());
        if let Some(hit) = key.as_ref().and_then(|k| self.cache.get(k)) {
            return Ok(Completion {
                cached: true,
                usage: Usage::default(),
                ..hit
            });
        }
        let completion = self.provider.complete(&endpoint, call.request).await?;
        if let Some(key) = key {
            self.cache.put(key, completion.clone());
        }
        Ok(completion)
    }
}
