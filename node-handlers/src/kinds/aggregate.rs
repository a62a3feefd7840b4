//! `aggregate`: one field of every item of a list, collected in an array.

use std::collections::HashSet;

use flowmesh_model::Primitive;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Ctx, items, output, pick};
use crate::kind::{Behaviour, NodeKind};
use crate::{NodeError, Outcome};

pub struct Aggregate;

#[derive(Deserialize, JsonSchema)]
pub struct Config {
    /// Gives the list, for example `each_order.results`; `{{ … }}` around it is allowed.
    #[schemars(length(min = 1), extend("x-flowmesh-field" = "expression"))]
    pub items: String,
    #[schemars(schema_with = "super::field_path")]
    pub field: String,
    /// Keeps each value once, where it first appears.
    #[serde(default)]
    pub unique: bool,
}

impl NodeKind for Aggregate {
    type Config = Config;
    const NAME: &'static str = "aggregate";
    const PRIMITIVE: Primitive = Primitive::Data;
    const DESCRIPTION: &'static str = "Collects one field of every item of a list into an array; config: items, field (a path such as customer.email), unique.";
    const BEHAVIOUR: Behaviour = Behaviour::COMPUTE;

    fn example() -> Value {
        json!({"items": "trigger.body.orders", "field": "customer.email", "unique": true})
    }

    async fn run(config: Config, ctx: &Ctx<'_>) -> Result<Outcome, NodeError> {
        let list = items(ctx, &config.items)?;
        // serde_json's maps are sorted, so equal values print alike.
        let mut seen = HashSet::new();
        let mut collected = Vec::new();
        for (i, item) in list.iter().enumerate() {
            let value = pick(i, item, &config.field)?;
            if !config.unique || seen.insert(value.to_string()) {
                collected.push(value.clone());
            }
        }
        output(Value::Array(collected))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::kinds::testing::{problems, run};

    fn orders() -> serde_json::Value {
        json!({"fetch": {"body": [
            {"customer": {"email": "a@x.test", "tags": {"b": 1, "a": 2}}},
            {"customer": {"email": "b@x.test", "tags": {"a": 2, "b": 1}}},
            {"customer": {"email": "a@x.test", "tags": {"a": 3}}}
        ]}})
    }

    #[tokio::test]
    async fn collects_a_field_of_every_item_once_or_as_often_as_it_appears() {
        let all = run(
            "aggregate",
            json!({"items": "fetch.body", "field": "customer.email"}),
            &orders(),
        )
        .await;
        assert_eq!(all.unwrap(), json!(["a@x.test", "b@x.test", "a@x.test"]));
        let unique = run(
            "aggregate",
            json!({"items": "fetch.body", "field": "customer.email", "unique": true}),
            &orders(),
        )
        .await;
        assert_eq!(unique.unwrap(), json!(["a@x.test", "b@x.test"]));
        // Objects are equal whatever the order their fields were written in.
        let tags = run(
            "aggregate",
            json!({"items": "fetch.body", "field": "customer.tags", "unique": true}),
            &orders(),
        )
        .await;
        assert_eq!(tags.unwrap(), json!([{"a": 2, "b": 1}, {"a": 3}]));
        let none = run("aggregate", json!({"items": "[]", "field": "x"}), &orders()).await;
        assert_eq!(none.unwrap(), json!([]));
    }

    #[tokio::test]
    async fn an_item_without_the_field_fails_naming_it() {
        let scope = json!({"fetch": {"body": [{"customer": {"email": "a"}}, {"customer": 7}]}});
        let error = run(
            "aggregate",
            json!({"items": "fetch.body", "field": "customer.email"}),
            &scope,
        )
        .await
        .unwrap_err();
        assert_eq!(
            error.message,
            "item 1 is a number where \"email\" is looked up (field \"customer.email\")"
        );
        let error = run(
            "aggregate",
            json!({"items": "fetch.body[0]", "field": "customer"}),
            &scope,
        )
        .await
        .unwrap_err();
        assert_eq!(
            error.message,
            "config.items must give an array, but `fetch.body[0]` gave an object with fields customer"
        );
    }

    #[test]
    fn the_field_is_required() {
        assert_eq!(
            problems("aggregate", json!({"items": "fetch.body", "unique": "yes"})),
            [
                ("nodes[1].config.field".to_owned(), "required".to_owned()),
                (
                    "nodes[1].config.unique".to_owned(),
                    "invalid_type".to_owned()
                )
            ]
        );
    }
}
