//! `json_path`: the values an RFC 9535 JSONPath query selects in a value.

use flowmesh_model::Primitive;
use flowmesh_model::validate::Outputs;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Ctx, OutputBudget, output};
use crate::kind::{Behaviour, NodeKind, Problems};
use crate::{NodeError, Outcome};

pub struct JsonPath;

#[derive(Deserialize, JsonSchema)]
pub struct Config {
    /// Gives the value queried, for example `fetch.body`; `{{ … }}` around it is allowed.
    #[schemars(length(min = 1), extend("x-flowmesh-field" = "expression"))]
    pub value: String,
    /// An RFC 9535 JSONPath query, such as `$.orders[?@.total > 100].id`.
    #[schemars(length(min = 1, max = 4096))]
    pub query: String,
}

impl NodeKind for JsonPath {
    type Config = Config;
    const NAME: &'static str = "json_path";
    const PRIMITIVE: Primitive = Primitive::Data;
    const DESCRIPTION: &'static str = "Selects values with an RFC 9535 JSONPath query; config: value, query. Output: matches (in document order), first (null when none).";
    const BEHAVIOUR: Behaviour = Behaviour::COMPUTE;

    fn example() -> Value {
        json!({"value": "trigger.body", "query": "$.orders[?@.total > 100].id"})
    }

    fn check(config: &Config, problems: &mut Problems<'_>) -> Outputs {
        if let Err(e) = serde_json_path::JsonPath::parse(&config.query) {
            problems.push(
                "query",
                "invalid_query",
                format!("not a JSONPath query: {e}"),
            );
        }
        Outputs::Single
    }

    async fn run(config: Config, ctx: &Ctx<'_>) -> Result<Outcome, NodeError> {
        let query = serde_json_path::JsonPath::parse(&config.query)
            .map_err(|e| NodeError::permanent(format!("config.query: {e}")))?;
        let value = ctx.expr.eval(&config.value, &ctx.scope())?;
        let mut budget = OutputBudget::new(ctx);
        let mut matches = Vec::new();
        for found in query.query(&value) {
            budget.charge_value(found)?;
            matches.push(found.clone());
        }
        let first = matches.first().cloned().unwrap_or(Value::Null);
        output(json!({"matches": matches, "first": first}))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::ErrorClass;
    use crate::kinds::testing::{explained, problems, run, run_capped};

    fn shop() -> serde_json::Value {
        json!({"fetch": {"body": {"orders": [
            {"id": "a", "total": 50, "lines": [{"sku": "x"}]},
            {"id": "b", "total": 150, "lines": [{"sku": "y"}, {"sku": "z"}]},
            {"id": "c", "total": 300, "lines": []}
        ]}}})
    }

    #[tokio::test]
    async fn selects_the_matches_and_the_first() {
        let big = run(
            "json_path",
            json!({"value": "fetch.body", "query": "$.orders[?@.total > 100].id"}),
            &shop(),
        )
        .await;
        assert_eq!(big.unwrap(), json!({"matches": ["b", "c"], "first": "b"}));
        let skus = run(
            "json_path",
            json!({"value": "{{ fetch.body }}", "query": "$..sku"}),
            &shop(),
        )
        .await;
        assert_eq!(
            skus.unwrap(),
            json!({"matches": ["x", "y", "z"], "first": "x"})
        );
        let none = run(
            "json_path",
            json!({"value": "fetch.body", "query": "$.missing"}),
            &shop(),
        )
        .await;
        assert_eq!(none.unwrap(), json!({"matches": [], "first": null}));
        let scalar = run("json_path", json!({"value": "42", "query": "$"}), &shop()).await;
        assert_eq!(scalar.unwrap(), json!({"matches": [42], "first": 42}));
        let regex = run(
            "json_path",
            json!({"value": "fetch.body", "query": "$.orders[?match(@.id, '[ab]')].total"}),
            &shop(),
        )
        .await;
        assert_eq!(regex.unwrap()["matches"], json!([50, 150]));
    }

    #[tokio::test]
    async fn matches_past_the_output_cap_fail_the_node() {
        let error = run_capped(
            "json_path",
            json!({"value": "fetch.body", "query": "$..*"}),
            &shop(),
            100,
        )
        .await
        .unwrap_err();
        assert_eq!(error.class, ErrorClass::OutputTooLarge, "{error}");
    }

    #[test]
    fn an_invalid_query_is_refused_with_the_parser_s_message() {
        let found = explained(
            "json_path",
            json!({"value": "fetch.body", "query": "$.orders[?@.total >]"}),
        );
        assert_eq!(found.len(), 1, "{found:?}");
        let (path, code, message) = &found[0];
        assert_eq!(
            (path.as_str(), code.as_str()),
            ("nodes[1].config.query", "invalid_query")
        );
        assert!(message.starts_with("not a JSONPath query: "), "{message}");
        assert_eq!(
            problems(
                "json_path",
                json!({"value": "fetch.body", "query": "orders"})
            ),
            [(
                "nodes[1].config.query".to_owned(),
                "invalid_query".to_owned()
            )]
        );
        // The query is checked once the config has the shape its schema says.
        assert_eq!(
            problems("json_path", json!({"value": 5, "query": "orders"})),
            [(
                "nodes[1].config.value".to_owned(),
                "invalid_type".to_owned()
            )]
        );
    }
}
