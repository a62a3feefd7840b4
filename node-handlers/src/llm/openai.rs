//! The OpenAI chat-completions protocol, as OpenAI, Ollama, vLLM and others
//! speak it: one POST to `{base_url}/chat/completions`, answered whole or
//! as Server-Sent Events.

use std::sync::Arc;
use std::time::Duration;

use eventsource_stream::Eventsource;
use futures::StreamExt;
use futures::future::BoxFuture;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde_json::{Value, json};

use super::{ChatRequest, Completion, Endpoint, Error, Options, Provider, Usage};
use crate::ssrf::{AllowList, Denied};

/// Longest error message kept from a provider's answer.
const MAX_ERROR_CHARS: usize = 500;
/// First wait before another attempt without a `Retry-After`; it doubles.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

pub struct OpenAiCompatible {
    /// For the instance's own endpoint, which its operators chose.
    trusted: reqwest::Client,
    /// For endpoints a tenant chose: private addresses only when allowed.
    guarded: reqwest::Client,
    allow: Arc<AllowList>,
    timeout: Duration,
    max_retries: u32,
    max_retry_wait: Duration,
}

/// A failed attempt and how long the provider asked to wait.
struct Failure {
    error: Error,
    retry_after: Option<Duration>,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure {
            error,
            retry_after: None,
        }
    }
}

impl OpenAiCompatible {
    pub fn new(
        options: &Options,
        allow: Arc<AllowList>,
        user_agent: &str,
    ) -> Result<Self, crate::Error> {
        let build = |builder: reqwest::ClientBuilder| {
            builder
                .user_agent(user_agent)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|source| crate::Error::Client {
                    what: "language-model",
                    source,
                })
        };
        Ok(Self {
            trusted: build(reqwest::Client::builder())?,
            guarded: build(crate::ssrf::client_builder(&allow))?,
            allow,
            timeout: options.timeout.0,
            max_retries: options.max_retries,
            max_retry_wait: options.max_retry_wait.0,
        })
    }

    fn body(endpoint: &Endpoint, request: &ChatRequest) -> Value {
        let mut body = serde_json::to_value(request).unwrap_or_else(|_| json!({}));
        body["model"] = json!(endpoint.model);
        body["stream"] = json!(request.stream);
        if request.stream {
            body["stream_options"] = json!({"include_usage": true});
        }
        if let Some(schema) = &request.schema {
            body["response_format"] = json!({
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": schema},
            });
        }
        body
    }

    async fn attempt(
        &self,
        endpoint: &Endpoint,
        request: &ChatRequest,
    ) -> Result<Completion, Failure> {
        let url = format!(
            "{}/chat/completions",
            endpoint.base_url.trim_end_matches('/')
        );
        let client = if endpoint.guarded {
            let host = reqwest::Url::parse(&url)
                .map_err(|_| Error::NotConfigured("the base URL is not a URL"))?
                .host_str()
                .unwrap_or_default()
                .to_owned();
            self.allow.check_host(&host).map_err(Error::Denied)?;
            &self.guarded
        } else {
            &self.trusted
        };
        let mut http = client.post(&url).json(&Self::body(endpoint, request));
        if !request.stream {
            http = http.timeout(self.timeout);
        }
        if let Some(key) = &endpoint.api_key {
            http = http.bearer_auth(key);
        }
        let response = tokio::time::timeout(self.timeout, http.send())
            .await
            .map_err(|_| Error::Unreachable("no answer in time".into()))?
            .map_err(classify)?;
        let status = response.status();
        if !status.is_success() {
            let retry_after = retry_after(response.headers());
            let text = response.text().await.unwrap_or_default();
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                .unwrap_or(text)
                .chars()
                .take(MAX_ERROR_CHARS)
                .collect();
            let retryable = status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::REQUEST_TIMEOUT
                || status.is_server_error();
            return Err(Failure {
                error: Error::Status {
                    status: status.as_u16(),
                    message,
                    retryable,
                },
                retry_after,
            });
        }
        if request.stream {
            Ok(self.read_stream(endpoint, response).await?)
        } else {
            let body: Value = response
                .json()
                .await
                .map_err(|e| Error::Malformed(Box::new(e)))?;
            Ok(completion(endpoint, &body)?)
        }
    }

    /// Gathers a streamed answer; the timeout applies between chunks.
    async fn read_stream(
        &self,
        endpoint: &Endpoint,
        response: reqwest::Response,
    ) -> Result<Completion, Error> {
        let mut events = response.bytes_stream().eventsource();
        let mut content = String::new();
        let mut usage = Usage::default();
        let mut model = endpoint.model.clone();
        loop {
            let event = tokio::time::timeout(self.timeout, events.next())
                .await
                .map_err(|_| Error::Unreachable("the stream stalled".into()))?;
            let Some(event) = event else {
                return Err(Error::Malformed("the stream ended without [DONE]".into()));
            };
            let event = event.map_err(|e| Error::Unreachable(Box::new(e)))?;
            if event.data.trim() == "[DONE]" {
                break;
            }
            let chunk: Value =
                serde_json::from_str(&event.data).map_err(|e| Error::Malformed(Box::new(e)))?;
            if let Some(piece) = chunk["choices"][0]["delta"]["content"].as_str() {
                content.push_str(piece);
            }
            if let Some(m) = chunk["model"].as_str() {
                model = m.to_owned();
            }
            if chunk["usage"].is_object() {
                usage = usage_of(&chunk["usage"]);
            }
        }
        Ok(Completion {
            content,
            model,
            usage,
            cached: false,
        })
    }
}

impl Provider for OpenAiCompatible {
    fn complete<'a>(
        &'a self,
        endpoint: &'a Endpoint,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<Completion, Error>> {
        Box::pin(async move {
            let mut attempt = 0;
            loop {
                let failure = match self.attempt(endpoint, request).await {
                    Ok(completion) => return Ok(completion),
                    Err(failure) => failure,
                };
                if !failure.error.is_retryable() || attempt >= self.max_retries {
                    return Err(failure.error);
                }
                let wait = failure
                    .retry_after
                    .unwrap_or(FIRST_BACKOFF * 2u32.saturating_pow(attempt));
                if wait > self.max_retry_wait {
                    return Err(failure.error);
                }
                tracing::debug!(attempt, ?wait, error = %failure.error, "the model provider is asked again");
                // Not a wait for a race: the provider asked for this pause
                // (Retry-After), or it is the backoff between attempts.
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
        })
    }
}

/// `Retry-After` as seconds or as an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

fn usage_of(usage: &Value) -> Usage {
    let n = |field: &str| usage[field].as_u64().unwrap_or(0);
    let (prompt, completion) = (n("prompt_tokens"), n("completion_tokens"));
    Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: usage["total_tokens"]
            .as_u64()
            .unwrap_or(prompt + completion),
    }
}

fn completion(endpoint: &Endpoint, body: &Value) -> Result<Completion, Error> {
    let content = body["choices"][0]["message"]["content"]
        .as_str()
        .ok_or_else(|| Error::Malformed("no choices[0].message.content".into()))?;
    Ok(Completion {
        content: content.to_owned(),
        model: body["model"].as_str().unwrap_or(&endpoint.model).to_owned(),
        usage: usage_of(&body["usage"]),
        cached: false,
    })
}

fn classify(e: reqwest::Error) -> Error {
    let mut source: Option<&dyn std::error::Error> = Some(&e);
    while let Some(s) = source {
        if let Some(denied) = s.downcast_ref::<Denied>() {
            return Error::Denied(Denied(denied.0.clone()));
        }
        source = s.source();
    }
    Error::Unreachable(Box::new(e.without_url()))
}
