//! `webhook`: started by an HTTP request to `/hooks/{tenant}/{path}`,
//! checked against the trigger's `auth` before anything starts.

use flowmesh_model::Primitive;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::kind::Trigger;
use crate::kind::{Behaviour, NodeKind, Problems};
use crate::webhook_auth::WebhookAuth;
use flowmesh_model::validate::Outputs;

pub struct Webhook;

#[derive(Deserialize, JsonSchema)]
pub struct Config {
    /// Letters, digits, _ - . and single slashes; slashes around it are ignored.
    #[schemars(regex(pattern = r"^/*[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*/*$"))]
    pub path: String,
    /// GET, POST, PUT, PATCH or DELETE, in any case; POST when absent.
    #[serde(default)]
    #[schemars(regex(pattern = r"^(?i)(GET|POST|PUT|PATCH|DELETE)$"))]
    pub method: Option<String>,
    /// Who may call: {scheme, secret, ...} with scheme token, basic, hmac,
    /// github, stripe or slack and secret the name of a tenant secret;
    /// open to anyone when absent.
    #[serde(default)]
    #[schemars(schema_with = "auth_schema")]
    pub auth: Option<Value>,
}

fn auth_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": ["object", "null"],
        "description": "Who may call: {scheme, secret, ...}; scheme is token (header, prefix), basic (user), hmac (header, timestamp_header), github, stripe or slack; secret names a tenant secret.",
        "x-flowmesh-field": "value"
    })
}

fn auth(config: &Config) -> Option<Result<WebhookAuth, Vec<crate::webhook_auth::Problem>>> {
    match config.auth.as_ref()? {
        Value::Null => None,
        auth => Some(WebhookAuth::parse(auth)),
    }
}

impl NodeKind for Webhook {
    type Config = Config;
    const NAME: &'static str = "webhook";
    const PRIMITIVE: Primitive = Primitive::Trigger;
    const DESCRIPTION: &'static str = "Started by an HTTP request to /hooks/{tenant}/{path}; config: path, method, auth (scheme: token, basic, hmac, github, stripe or slack; secret: a tenant secret).";
    const BEHAVIOUR: Behaviour = Behaviour::TRIGGER;

    fn example() -> Value {
        json!({"path": "signup", "method": "POST", "auth": {"scheme": "github", "secret": "github_hook"}})
    }

    fn check(config: &Config, problems: &mut Problems<'_>) -> Outputs {
        if let Some(Err(found)) = auth(config) {
            for problem in found {
                problems.push(&problem.field, "invalid_auth", problem.message);
            }
        }
        Outputs::Single
    }

    fn trigger(config: &Config) -> Option<Trigger> {
        Some(Trigger::Webhook {
            method: config
                .method
                .as_deref()
                .unwrap_or("POST")
                .to_ascii_uppercase(),
            path: config.path.trim_matches('/').to_owned(),
            auth: auth(config),
        })
    }
}
