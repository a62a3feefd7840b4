//! `mapping`: builds an object from templates.

use flowmesh_model::Primitive;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Ctx, output};
use crate::kind::{Behaviour, NodeKind};
use crate::{NodeError, Outcome};

pub struct Mapping;

#[derive(Deserialize, JsonSchema)]
pub struct Config {
    /// The output; every string in it is a template.
    #[schemars(extend("x-flowmesh-field" = "template"))]
    pub mapping: Map<String, Value>,
}

impl NodeKind for Mapping {
    type Config = Config;
    const NAME: &'static str = "mapping";
    const PRIMITIVE: Primitive = Primitive::Data;
    const DESCRIPTION: &'static str = "Builds an object from templates; config: mapping.";
    const BEHAVIOUR: Behaviour = Behaviour::COMPUTE;

    fn example() -> Value {
        json!({"mapping": {"email": "{{ trigger.body.email | lower }}", "source": "signup"}})
    }

    async fn run(config: Config, ctx: &Ctx<'_>) -> Result<Outcome, NodeError> {
        output(
            ctx.expr
                .render_value(&Value::Object(config.mapping), &ctx.scope())?,
        )
    }
}
