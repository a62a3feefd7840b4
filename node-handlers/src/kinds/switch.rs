//! `switch`: takes the output of the first case that matches a value,
//! else `default`.

use std::collections::HashSet;

use flowmesh_model::Primitive;
use flowmesh_model::validate::Outputs;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use super::Ctx;
use crate::kind::{Behaviour, NodeKind, Problems};
use crate::{NodeError, Outcome};

pub struct Switch;

#[derive(Deserialize, JsonSchema)]
pub struct Config {
    /// The value the cases compare; `{{ … }}` around it is allowed.
    #[schemars(length(min = 1), extend("x-flowmesh-field" = "expression"))]
    pub value: String,
    #[schemars(length(min = 1))]
    pub cases: Vec<Case>,
}

/// A case has either `equals` or `when`.
#[derive(Deserialize, JsonSchema)]
pub struct Case {
    /// The output it takes; `default` is reserved.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Matches when the value equals this.
    #[serde(default, deserialize_with = "present")]
    pub equals: Option<Value>,
    /// Matches when this expression is true.
    #[serde(default)]
    #[schemars(extend("x-flowmesh-field" = "expression"))]
    pub when: Option<String>,
}

/// `equals: null` compares with null: present is not absent.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

impl NodeKind for Switch {
    type Config = Config;
    const NAME: &'static str = "switch";
    const PRIMITIVE: Primitive = Primitive::Condition;
    const DESCRIPTION: &'static str =
        "Chooses the first matching case; config: value, cases [{name, equals | when}].";
    const OUTPUTS: &'static str = "case names, default";
    const BEHAVIOUR: Behaviour = Behaviour::COMPUTE;

    fn example() -> Value {
        json!({"value": "trigger.body.plan", "cases": [
            {"name": "pro", "equals": "pro"},
            {"name": "big", "when": "trigger.body.seats > 100"}
        ]})
    }

    fn check(config: &Config, problems: &mut Problems<'_>) -> Outputs {
        let mut names = Vec::new();
        let mut seen = HashSet::new();
        for (i, case) in config.cases.iter().enumerate() {
            let field = format!("cases[{i}]");
            if case.name == "default" {
                problems.push(
                    &format!("{field}.name"),
                    "reserved",
                    "\"default\" is the output when no case matches",
                );
            } else if !seen.insert(case.name.as_str()) {
                problems.push(
                    &format!("{field}.name"),
                    "duplicate",
                    format!("case {:?} is listed twice", case.name),
                );
            } else {
                names.push(case.name.clone());
            }
            if case.equals.is_some() == case.when.is_some() {
                problems.push(
                    &field,
                    "invalid_case",
                    "a case has either `equals` (a value) or `when` (an expression)",
                );
            }
        }
        names.push("default".to_owned());
        Outputs::Named(names)
    }

    async fn run(config: Config, ctx: &Ctx<'_>) -> Result<Outcome, NodeError> {
        let scope = ctx.scope();
        let value = ctx.expr.eval(&config.value, &scope)?;
        for case in &config.cases {
            let matched = match (&case.equals, &case.when) {
                (Some(expected), _) => *expected == value,
                (None, Some(expr)) => ctx.expr.truthy(expr, &scope)?,
                (None, None) => false,
            };
            if matched {
                return Ok(Outcome::Output {
                    value: json!({"case": case.name, "value": value}),
                    branch: Some(case.name.clone()),
                });
            }
        }
        Ok(Outcome::Output {
            value: json!({"case": "default", "value": value}),
            branch: Some("default".into()),
        })
    }
}
