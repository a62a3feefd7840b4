//! `split`: a list inside a value (an API's `body.orders`) as the items of
//! the output, each whole or one field of it.

use flowmesh_model::Primitive;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Ctx, items, output, pick};
use crate::kind::{Behaviour, NodeKind};
use crate::{NodeError, Outcome};

pub struct Split;

#[derive(Deserialize, JsonSchema)]
pub struct Config {
    /// Gives the list, for example `fetch.body.orders`; `{{ … }}` around it is allowed.
    #[schemars(length(min = 1), extend("x-flowmesh-field" = "expression"))]
    pub items: String,
    #[serde(default)]
    #[schemars(schema_with = "super::field_path")]
    pub field: Option<String>,
}

impl NodeKind for Split {
    type Config = Config;
    const NAME: &'static str = "split";
    const PRIMITIVE: Primitive = Primitive::Data;
    const DESCRIPTION: &'static str = "Outputs a list given by an expression as an array of items, each whole or one field of it; config: items, field (a path such as customer.email).";
    const BEHAVIOUR: Behaviour = Behaviour::COMPUTE;

    fn example() -> Value {
        json!({"items": "trigger.body.orders", "field": "customer"})
    }

    async fn run(config: Config, ctx: &Ctx<'_>) -> Result<Outcome, NodeError> {
        let list = items(ctx, &config.items)?;
        let Some(field) = config.field else {
            return output(Value::Array(list));
        };
        let picked = list
            .iter()
            .enumerate()
            .map(|(i, item)| pick(i, item, &field).cloned())
            .collect::<Result<_, _>>()?;
        output(Value::Array(picked))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::kinds::testing::{explained, problems, run};

    #[tokio::test]
    async fn outputs_the_list_or_one_field_of_each_item() {
        let scope = json!({"fetch": {"body": {"orders": [
            {"id": 1, "customer": {"email": "a@x.test"}},
            {"id": 2, "customer": {"email": "b@x.test"}}
        ]}}});
        let whole = run("split", json!({"items": "fetch.body.orders"}), &scope).await;
        assert_eq!(whole.unwrap(), scope["fetch"]["body"]["orders"]);
        let emails = run(
            "split",
            json!({"items": "{{ fetch.body.orders }}", "field": "customer.email"}),
            &scope,
        )
        .await;
        assert_eq!(emails.unwrap(), json!(["a@x.test", "b@x.test"]));
        let indexed = run(
            "split",
            json!({"items": "fetch.body.orders", "field": "id"}),
            &scope,
        )
        .await;
        assert_eq!(indexed.unwrap(), json!([1, 2]));
        let empty = run("split", json!({"items": "[]"}), &scope).await;
        assert_eq!(empty.unwrap(), json!([]));
        let nested = run(
            "split",
            json!({"items": "[[1, 2], [3]]", "field": "0"}),
            &scope,
        )
        .await;
        assert_eq!(nested.unwrap(), json!([1, 3]));
    }

    #[tokio::test]
    async fn a_value_that_is_no_list_fails_saying_what_it_is() {
        let scope = json!({"fetch": {"body": {"orders": [{"id": 1}], "total": 1}}});
        let error = run("split", json!({"items": "fetch.body"}), &scope)
            .await
            .unwrap_err();
        assert_eq!(
            error.message,
            "config.items must give an array, but `fetch.body` gave an object with fields orders, total"
        );
        let error = run("split", json!({"items": "fetch.body.total"}), &scope)
            .await
            .unwrap_err();
        assert!(error.message.ends_with("gave a number"), "{error}");
        let error = run(
            "split",
            json!({"items": "fetch.body.orders", "field": "customer.email"}),
            &scope,
        )
        .await
        .unwrap_err();
        assert_eq!(
            error.message,
            "item 0 has no field \"customer\"; it has fields id (field \"customer.email\")"
        );
    }

    #[test]
    fn a_field_path_has_no_empty_part() {
        assert_eq!(
            explained("split", json!({"items": "trigger.body", "field": "a..b"})),
            [(
                "nodes[1].config.field".to_owned(),
                "invalid_value".to_owned(),
                "\"a..b\": a path of field names or list indexes separated by dots, such as `customer.email` or `lines.0.sku`".to_owned()
            )]
        );
        assert_eq!(
            problems("split", json!({"field": "a"})),
            [("nodes[1].config.items".to_owned(), "required".to_owned())]
        );
    }
}
