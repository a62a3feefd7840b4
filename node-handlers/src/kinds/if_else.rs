//! `if_else`: takes the output `true` or `false` by an expression.

use flowmesh_model::Primitive;
use flowmesh_model::validate::Outputs;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Ctx;
use crate::kind::{Behaviour, NodeKind, Problems};
use crate::{NodeError, Outcome};

pub struct IfElse;

#[derive(Deserialize, JsonSchema)]
pub struct Config {
    /// For example `user.body.age >= 18`; `{{ … }}` around it is allowed.
    #[schemars(length(min = 1), extend("x-flowmesh-field" = "expression"))]
    pub logic: String,
}

impl NodeKind for IfElse {
    type Config = Config;
    const NAME: &'static str = "if_else";
    const PRIMITIVE: Primitive = Primitive::Condition;
    const DESCRIPTION: &'static str =
        "Chooses the output true or false; config: logic (an expression).";
    const OUTPUTS: &'static str = "true, false";
    const BEHAVIOUR: Behaviour = Behaviour::COMPUTE;

    fn example() -> Value {
        json!({"logic": "trigger.body.email.endswith('@example.com')"})
    }

    fn check(_: &Config, _: &mut Problems<'_>) -> Outputs {
        Outputs::Named(vec!["true".into(), "false".into()])
    }

    async fn run(config: Config, ctx: &Ctx<'_>) -> Result<Outcome, NodeError> {
        let result = ctx.expr.truthy(&config.logic, &ctx.scope())?;
        Ok(Outcome::Output {
            value: json!({"result": result}),
            branch: Some(result.to_string()),
        })
    }
}
