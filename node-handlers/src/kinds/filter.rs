//! `filter`: keeps the items of an array for which a condition holds.

use flowmesh_model::Primitive;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Ctx, items, output};
use crate::expr::Scope;
use crate::kind::{Behaviour, NodeKind};
use crate::{NodeError, Outcome};

pub struct Filter;

#[derive(Deserialize, JsonSchema)]
pub struct Config {
    /// Gives the array, for example `get.body.items`; `{{ … }}` around it is allowed.
    #[schemars(length(min = 1), extend("x-flowmesh-field" = "expression"))]
    pub items: String,
    /// Read for each item, bound as `item`.
    #[schemars(
        length(min = 1),
        extend("x-flowmesh-field" = "expression", "x-flowmesh-binds" = ["item"])
    )]
    pub condition: String,
}

impl NodeKind for Filter {
    type Config = Config;
    const NAME: &'static str = "filter";
    const PRIMITIVE: Primitive = Primitive::Condition;
    const DESCRIPTION: &'static str =
        "Keeps the items of an array that match; config: items, condition (item is bound).";
    const BEHAVIOUR: Behaviour = Behaviour::COMPUTE;

    fn example() -> Value {
        json!({"items": "trigger.body.orders", "condition": "item.total > 100"})
    }

    async fn run(config: Config, ctx: &Ctx<'_>) -> Result<Outcome, NodeError> {
        let items = items(ctx, &config.items)?;
        let mut kept = Vec::new();
        let mut item_scope = ctx.request.scope.clone();
        for item in items {
            item_scope.insert("item".to_owned(), item.clone());
            let scope = Scope::new(&item_scope, ctx.request.max_output_bytes);
            if ctx.expr.truthy(&config.condition, &scope)? {
                kept.push(item);
            }
        }
        output(Value::Array(kept))
    }
}
