//! `merge`: waits for every branch not skipped and combines their outputs.

use flowmesh_model::Primitive;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Ctx, output};
use crate::kind::{Behaviour, NodeKind};
use crate::{NodeError, Outcome};

pub struct Merge;

#[derive(Deserialize, JsonSchema)]
pub struct Config {
    /// object when absent.
    #[serde(default)]
    pub mode: Option<Mode>,
}

#[derive(Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// An object of the inputs' outputs by node id.
    Object,
    /// The inputs' outputs in one array, arrays flattened.
    Append,
    /// The inputs' objects merged, later keys winning.
    Shallow,
}

impl NodeKind for Merge {
    type Config = Config;
    const NAME: &'static str = "merge";
    const PRIMITIVE: Primitive = Primitive::Data;
    const DESCRIPTION: &'static str = "Waits for every branch not skipped and combines them; config: mode (object, append, shallow).";
    const BEHAVIOUR: Behaviour = Behaviour::COMPUTE;

    fn example() -> Value {
        json!({"mode": "shallow"})
    }

    async fn run(config: Config, ctx: &Ctx<'_>) -> Result<Outcome, NodeError> {
        let inputs = ctx.request.inputs.iter().map(|id| {
            (
                id,
                ctx.request.scope.get(id).cloned().unwrap_or(Value::Null),
            )
        });
        let value = match config.mode.unwrap_or(Mode::Object) {
            Mode::Append => Value::Array(
                inputs
                    .flat_map(|(_, v)| match v {
                        Value::Array(items) => items,
                        other => vec![other],
                    })
                    .collect(),
            ),
            Mode::Shallow => {
                let mut merged = Map::new();
                for (_, v) in inputs {
                    if let Value::Object(map) = v {
                        merged.extend(map);
                    }
                }
                Value::Object(merged)
            }
            Mode::Object => Value::Object(inputs.map(|(id, v)| (id.clone(), v)).collect()),
        };
        output(value)
    }
}
