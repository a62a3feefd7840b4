//! `http_request`: one HTTP call, rendered from templates, guarded against
//! private addresses, with the step's idempotency key.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use flowmesh_model::{HumanDuration, Primitive};
use reqwest::redirect::Policy;
use reqwest::{Method, StatusCode};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Ctx, METHOD_PATTERN, credentials};
use crate::kind::{Behaviour, NodeKind};
use crate::ssrf::{AllowList, Denied};
use crate::{Error, ErrorClass, HttpOptions, NodeError, Outcome, RunRequest, SecretError};

const MAX_REDIRECTS: usize = 5;

pub struct HttpRequest;

#[derive(Deserialize, JsonSchema)]
pub struct Config {
    /// An http or https URL.
    #[schemars(length(min = 1), extend("x-flowmesh-field" = "template"))]
    pub url: String,
    /// GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS, in any case; GET when absent.
    #[serde(default)]
    #[schemars(pattern(METHOD_PATTERN))]
    pub method: Option<String>,
    #[serde(default)]
    #[schemars(extend("x-flowmesh-field" = "template"))]
    pub headers: Option<BTreeMap<String, String>>,
    /// Added to the URL's query string.
    #[serde(default)]
    #[schemars(extend("x-flowmesh-field" = "template"))]
    pub query: Option<BTreeMap<String, String>>,
    /// Sent as JSON; every string in it is a template.
    #[serde(default)]
    #[schemars(extend("x-flowmesh-field" = "template"))]
    pub body: Option<Value>,
    /// The engine's default (30s unless configured) when absent.
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    /// The id of a connection node whose secret is sent as a header.
    #[serde(default)]
    pub connection: Option<String>,
}

impl NodeKind for HttpRequest {
    type Config = Config;
    const NAME: &'static str = "http_request";
    const PRIMITIVE: Primitive = Primitive::Action;
    const DESCRIPTION: &'static str =
        "Calls an HTTP API; config: method, url, headers, query, body, timeout, connection.";
    const BEHAVIOUR: Behaviour = Behaviour::OUTSIDE_CALL;

    fn example() -> Value {
        json!({
            "method": "POST",
            "url": "https://api.example.com/users/{{ trigger.body.id }}",
            "headers": {"Accept": "application/json"},
            "body": {"email": "{{ trigger.body.email }}"},
            "timeout": "10s"
        })
    }

    async fn run(config: Config, ctx: &Ctx<'_>) -> Result<Outcome, NodeError> {
        ctx.http.run(&config, ctx).await
    }
}

pub struct HttpClient {
    client: reqwest::Client,
    credentialed: reqwest::Client,
    allow: Arc<AllowList>,
    default_timeout: Duration,
    max_response_bytes: usize,
}

/// A header value taken from a connection's secret.
struct Credential {
    header: String,
    value: String,
    secret: String,
}

impl HttpClient {
    pub fn new(options: &HttpOptions) -> Result<Self, Error> {
        let allow = Arc::new(AllowList::parse(&options.allow_hosts)?);
        let redirect_allow = allow.clone();
        let policy = Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                return attempt.error(Denied(format!("more than {MAX_REDIRECTS} redirects")));
            }
            let host = attempt.url().host_str().unwrap_or_default().to_owned();
            match redirect_allow.check_host(&host) {
                Ok(()) => attempt.follow(),
                Err(denied) => attempt.error(denied),
            }
        });
        let build = |policy: Policy| {
            crate::ssrf::client_builder(&allow)
                .user_agent(options.user_agent.clone())
                .redirect(policy)
                .build()
                .map_err(|source| Error::Client {
                    what: "http_request",
                    source,
                })
        };
        let client = build(policy)?;
        // A credential may be a custom header that redirects would carry to
        // another host, so credentialed requests answer with the 3xx instead.
        let credentialed = build(Policy::none())?;
        Ok(Self {
            client,
            credentialed,
            allow,
            default_timeout: options.default_timeout.0,
            max_response_bytes: options.max_response_bytes,
        })
    }

    async fn credential(
        request: &RunRequest<'_>,
        connection: Option<&str>,
    ) -> Result<Option<Credential>, NodeError> {
        let Some(id) = connection else {
            return Ok(None);
        };
        let connection = request
            .document
            .node(id)
            .filter(|n| n.primitive == Primitive::Connection)
            .ok_or_else(|| NodeError::permanent(format!("connection {id:?} does not exist")))?;
        let credentials::Config {
            secret,
            header,
            prefix,
        } = credentials::Config::deserialize(&connection.config)
            .map_err(|e| NodeError::permanent(format!("connection {id:?} is not valid: {e}")))?;
        let value = match request.secrets.secret(request.tenant, &secret).await {
            Ok(Some(value)) => value,
            Ok(None) => {
                return Err(NodeError::permanent(format!(
                    "secret {secret:?} of connection {id:?} is not set"
                )));
            }
            Err(SecretError::Retryable(e)) => {
                return Err(NodeError {
                    class: ErrorClass::Transient,
                    message: format!("secret {secret:?} of connection {id:?}: {e}"),
                });
            }
            Err(SecretError::Unavailable(e)) => {
                return Err(NodeError::permanent(format!(
                    "secret {secret:?} of connection {id:?}: {e}"
                )));
            }
        };
        let header = header.unwrap_or_else(|| "Authorization".to_owned());
        let prefix = prefix.unwrap_or_else(|| "Bearer ".to_owned());
        Ok(Some(Credential {
            header,
            value: format!("{prefix}{value}"),
            secret: value,
        }))
    }

    async fn run(&self, config: &Config, ctx: &Ctx<'_>) -> Result<Outcome, NodeError> {
        let credential = Self::credential(ctx.request, config.connection.as_deref()).await?;
        let result = self.call(config, ctx, credential.as_ref()).await;
        // A secret must never leave through an error or an echoing server.
        match (result, &credential) {
            (Ok(Outcome::Output { value, branch }), Some(c)) => Ok(Outcome::Output {
                value: redact_value(value, &c.secret),
                branch,
            }),
            (Err(mut e), Some(c)) => {
                e.message = e.message.replace(&c.secret, "[redacted]");
                Err(e)
            }
            (result, _) => result,
        }
    }

    async fn call(
        &self,
        config: &Config,
        ctx: &Ctx<'_>,
        credential: Option<&Credential>,
    ) -> Result<Outcome, NodeError> {
        let scope = ctx.scope();
        let url_text = ctx.expr.render_text(&config.url, &scope)?;
        let mut url = reqwest::Url::parse(url_text.trim())
            .map_err(|e| NodeError::permanent(format!("url {url_text:?} is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(NodeError::permanent(format!(
                "only http and https URLs are allowed, not {}",
                url.scheme()
            )));
        }
        let host = url.host_str().unwrap_or_default().to_owned();
        self.allow.check_host(&host).map_err(|d| NodeError {
            class: ErrorClass::Denied,
            message: d.to_string(),
        })?;
        if let Some(query) = &config.query {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, &ctx.expr.render_text(v, &scope)?);
            }
        }
        let method = match config.method.as_deref() {
            None | Some("") => Method::GET,
            Some(text) => Method::from_bytes(text.to_ascii_uppercase().as_bytes())
                .map_err(|_| NodeError::permanent("invalid method"))?,
        };
        let timeout = config.timeout.map_or(self.default_timeout, |t| t.0);
        let client = if credential.is_some() {
            &self.credentialed
        } else {
            &self.client
        };
        let mut request = client
            .request(method, url)
            .timeout(timeout)
            .header("Idempotency-Key", ctx.request.idempotency_key);
        if let Some(traceparent) = ctx.request.traceparent {
            request = request.header("traceparent", traceparent);
        }
        for (name, template) in config.headers.iter().flatten() {
            request = request.header(name.as_str(), ctx.expr.render_text(template, &scope)?);
        }
        if let Some(c) = credential {
            request = request.header(c.header.as_str(), c.value.as_str());
        }
        if let Some(body) = &config.body {
            request = request.json(&ctx.expr.render_value(body, &scope)?);
        }
        let response = request.send().await.map_err(classify)?;
        self.read(response).await
    }

    async fn read(&self, mut response: reqwest::Response) -> Result<Outcome, NodeError> {
        let status = response.status();
        let headers: Map<String, Value> = response
            .headers()
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    k.as_str().to_ascii_lowercase(),
                    Value::String(v.to_str().ok()?.to_owned()),
                ))
            })
            .collect();
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(classify)? {
            if bytes.len() + chunk.len() > self.max_response_bytes {
                return Err(NodeError::permanent(format!(
                    "the response is larger than {} bytes",
                    self.max_response_bytes
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Err(NodeError {
                class: ErrorClass::Transient,
                message: format!("the server answered {status}"),
            });
        }
        if status.is_client_error() {
            return Err(NodeError::permanent(format!(
                "the server answered {status}"
            )));
        }
        Ok(Outcome::Output {
            value: json!({"status": status.as_u16(), "headers": headers, "body": body}),
            branch: None,
        })
    }
}

fn classify(e: reqwest::Error) -> NodeError {
    let mut source: Option<&dyn std::error::Error> = Some(&e);
    while let Some(s) = source {
        if let Some(denied) = s.downcast_ref::<Denied>() {
            return NodeError {
                class: ErrorClass::Denied,
                message: denied.to_string(),
            };
        }
        source = s.source();
    }
    if e.is_builder() {
        return NodeError::permanent(format!("the request cannot be built: {}", e.without_url()));
    }
    let class = if e.is_timeout() {
        ErrorClass::Timeout
    } else {
        ErrorClass::Transient
    };
    let host = e
        .url()
        .and_then(|u| u.host_str())
        .unwrap_or_default()
        .to_owned();
    let message = format!("request to {host} failed: {}", e.without_url());
    NodeError { class, message }
}

fn redact_value(value: Value, secret: &str) -> Value {
    if secret.is_empty() {
        return value;
    }
    match value {
        Value::String(s) => Value::String(s.replace(secret, "[redacted]")),
        Value::Array(items) => {
            Value::Array(items.into_iter().map(|v| redact_value(v, secret)).collect())
        }
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, redact_value(v, secret)))
                .collect(),
        ),
        other => other,
    }
}
