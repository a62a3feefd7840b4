//! `wait_for_event`: waits durably, parked, for a resume through the API
//! (human approval, a callback); its payload becomes the output.

use flowmesh_model::{HumanDuration, Primitive};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Ctx, templated_duration};
use crate::kind::{Behaviour, NodeKind};
use crate::{NodeError, Outcome};

pub struct WaitForEvent;

#[derive(Deserialize, JsonSchema)]
pub struct Config {
    /// The node fails when no resume came in this long; it waits for ever when absent.
    #[serde(default)]
    #[schemars(schema_with = "templated_duration")]
    pub timeout: Option<String>,
}

impl NodeKind for WaitForEvent {
    type Config = Config;
    const NAME: &'static str = "wait_for_event";
    const PRIMITIVE: Primitive = Primitive::Action;
    const DESCRIPTION: &'static str = "Waits durably for POST /v1/executions/{id}/resume (human approval, a callback); its payload is the output. Config: timeout (optional; the node fails when it passes).";
    const BEHAVIOUR: Behaviour = Behaviour {
        awaits_resume: true,
        ..Behaviour::WAIT
    };

    fn example() -> Value {
        json!({"timeout": "7d"})
    }

    async fn run(config: Config, ctx: &Ctx<'_>) -> Result<Outcome, NodeError> {
        let Some(timeout) = config.timeout else {
            return Ok(Outcome::AwaitResume { timeout: None });
        };
        let text = ctx.expr.render_text(&timeout, &ctx.scope())?;
        let timeout: HumanDuration = text.parse().map_err(|_| {
            NodeError::permanent(format!(
                "timeout {text:?} is not a duration; write it like \"15m\" or \"7d\""
            ))
        })?;
        Ok(Outcome::AwaitResume {
            timeout: Some(timeout.0),
        })
    }
}
