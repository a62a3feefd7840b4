//! `fail`: ends the run as failed with a message, for a branch that finds
//! the data wrong. Its failure is the workflow's verdict, not an accident:
//! it is not retried, and `on_error` (which would swallow it) is refused on
//! it at save.

use flowmesh_model::Primitive;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Ctx;
use crate::kind::{Behaviour, NodeKind};
use crate::{ErrorClass, NodeError, Outcome};

pub struct Fail;

#[derive(Deserialize, JsonSchema)]
pub struct Config {
    /// Why the run failed.
    #[schemars(extend("x-flowmesh-field" = "template"), length(min = 1))]
    pub message: String,
    /// A short code put before the message, for whoever reads failures.
    #[serde(default)]
    #[schemars(length(min = 1, max = 100), regex(pattern = r"^[A-Za-z0-9_.\-]+$"))]
    pub code: Option<String>,
}

impl NodeKind for Fail {
    type Config = Config;
    const NAME: &'static str = "fail";
    const PRIMITIVE: Primitive = Primitive::Action;
    const DESCRIPTION: &'static str = "Ends the execution as failed; config: message (a template), code. Not retried; on_error does not apply.";
    const BEHAVIOUR: Behaviour = Behaviour {
        ends_run: true,
        ..Behaviour::COMPUTE
    };

    fn example() -> Value {
        json!({"message": "amount must be positive, got {{ trigger.body.amount }}", "code": "invalid_amount"})
    }

    async fn run(config: Config, ctx: &Ctx<'_>) -> Result<Outcome, NodeError> {
        let message = ctx.expr.render_text(&config.message, &ctx.scope())?;
        let message = match config.code {
            Some(code) => format!("{code}: {message}"),
            None => message,
        };
        Err(NodeError {
            class: ErrorClass::Raised,
            message,
        })
    }
}
