//! `nats`: started by a JSON message published on the tenant's subject.

use flowmesh_model::Primitive;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::kind::{Behaviour, NodeKind, Trigger};

pub struct Nats;

#[derive(Deserialize, JsonSchema)]
pub struct Config {
    /// Tokens of letters, digits, _ and - joined by dots (no wildcards), at most 128 characters.
    #[schemars(
        regex(pattern = r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$"),
        length(max = 128)
    )]
    pub subject: String,
}

impl NodeKind for Nats {
    type Config = Config;
    const NAME: &'static str = "nats";
    const PRIMITIVE: Primitive = Primitive::Trigger;
    const DESCRIPTION: &'static str = "Started by a JSON message published to {prefix}.trigger.{tenant}.{subject} on NATS (distributed mode); a request gets the execution id, or the response of a respond node. config: subject (tokens of letters, digits, _ and -, joined by dots). trigger holds body and subject.";
    const BEHAVIOUR: Behaviour = Behaviour::TRIGGER;

    fn example() -> Value {
        json!({"subject": "orders.created"})
    }

    fn trigger(config: &Config) -> Option<Trigger> {
        Some(Trigger::Nats {
            subject: config.subject.clone(),
        })
    }
}
