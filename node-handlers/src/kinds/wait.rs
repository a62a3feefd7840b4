//! `wait`: waits durably for a duration, then succeeds.

use flowmesh_model::{HumanDuration, Primitive};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Ctx, templated_duration};
use crate::kind::{Behaviour, NodeKind};
use crate::{NodeError, Outcome};

pub struct Wait;

#[derive(Deserialize, JsonSchema)]
pub struct Config {
    #[schemars(schema_with = "templated_duration")]
    pub duration: String,
}

impl NodeKind for Wait {
    type Config = Config;
    const NAME: &'static str = "wait";
    const PRIMITIVE: Primitive = Primitive::Action;
    const DESCRIPTION: &'static str = "Waits durably; config: duration.";
    const BEHAVIOUR: Behaviour = Behaviour::WAIT;

    fn example() -> Value {
        json!({"duration": "5m"})
    }

    async fn run(config: Config, ctx: &Ctx<'_>) -> Result<Outcome, NodeError> {
        let text = ctx.expr.render_text(&config.duration, &ctx.scope())?;
        let duration: HumanDuration = text.parse().map_err(|_| {
            NodeError::permanent(format!(
                "{text:?} is not a duration; write it like \"5s\" or \"2h\""
            ))
        })?;
        Ok(Outcome::Wait {
            duration: duration.0,
        })
    }
}
