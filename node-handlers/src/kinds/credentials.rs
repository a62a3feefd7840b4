//! `credentials`: a secret that actions naming this connection send as a
//! header. Never run: `http_request` reads it.

use flowmesh_model::Primitive;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::kind::{Behaviour, NodeKind};

pub struct Credentials;

#[derive(Deserialize, JsonSchema)]
pub struct Config {
    /// The name of a tenant secret (never its value).
    #[schemars(length(min = 1))]
    pub secret: String,
    /// Authorization when absent.
    #[serde(default)]
    pub header: Option<String>,
    /// Written before the secret; "Bearer " when absent.
    #[serde(default)]
    pub prefix: Option<String>,
}

impl NodeKind for Credentials {
    type Config = Config;
    const NAME: &'static str = "credentials";
    const PRIMITIVE: Primitive = Primitive::Connection;
    const DESCRIPTION: &'static str =
        "A secret that actions referencing it send as a header; config: secret, header, prefix.";
    const OUTPUTS: &'static str = "none";
    const BEHAVIOUR: Behaviour = Behaviour::REFERENCED;

    fn example() -> Value {
        json!({"secret": "crm_token", "header": "Authorization", "prefix": "Bearer "})
    }
}
