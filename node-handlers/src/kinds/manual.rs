//! `manual`: started through the API with a JSON input.

use flowmesh_model::Primitive;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::kind::{Behaviour, NodeKind, Trigger};

pub struct Manual;

/// Takes no settings.
#[derive(Deserialize, JsonSchema)]
pub struct Config {}

impl NodeKind for Manual {
    type Config = Config;
    const NAME: &'static str = "manual";
    const PRIMITIVE: Primitive = Primitive::Trigger;
    const DESCRIPTION: &'static str = "Started through the API with a JSON input (trigger.body).";
    const BEHAVIOUR: Behaviour = Behaviour::TRIGGER;

    fn example() -> Value {
        json!({})
    }

    fn trigger(_: &Config) -> Option<Trigger> {
        Some(Trigger::Manual)
    }
}
