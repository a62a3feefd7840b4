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
        if let Err(refused) = parse(&config.query) {
            problems.push("query", refused.code, refused.message);
        }
        Outputs::Single
    }

    async fn run(config: Config, ctx: &Ctx<'_>) -> Result<Outcome, NodeError> {
        let query = parse(&config.query)
            .map_err(|e| NodeError::permanent(format!("config.query: {}", e.message)))?;
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

/// Most descendant segments (`..`) in a query: each one multiplies the
/// work by the depth of the value.
pub const MAX_DESCENDANTS: usize = 2;

/// Why a query is refused.
struct Refused {
    code: &'static str,
    message: String,
}

/// A query that parses and whose work grows at most with the size of the
/// value times its depth.
fn parse(query: &str) -> Result<serde_json_path::JsonPath, Refused> {
    let parsed = serde_json_path::JsonPath::parse(query).map_err(|e| Refused {
        code: "invalid_query",
        message: format!("not a JSONPath query: {e}"),
    })?;
    match too_costly(query) {
        Some(why) => Err(Refused {
            code: "too_costly",
            message: why.to_owned(),
        }),
        None => Ok(parsed),
    }
}

/// What in a query (one that parses) makes its work grow faster than its
/// value: too many descendant segments, or the root read inside a filter,
/// once per node the filter tests.
fn too_costly(query: &str) -> Option<&'static str> {
    let mut quote = None;
    let mut escaped = false;
    // For each open bracket, whether it holds a filter selector.
    let mut brackets: Vec<bool> = Vec::new();
    let mut descendants = 0;
    let mut previous = None;
    for c in query.chars() {
        if let Some(q) = quote {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                _ if c == q => quote = None,
                _ => {}
            }
            continue;
        }
        match c {
            '\'' | '"' => quote = Some(c),
            '[' => brackets.push(false),
            ']' => {
                brackets.pop();
            }
            '?' => {
                if let Some(filter) = brackets.last_mut() {
                    *filter = true;
                }
            }
            '$' if brackets.contains(&true) => {
                return Some(
                    "a filter may read the node it tests (`@`) but not the root (`$`), which it would read again for every node",
                );
            }
            // A third `.` after `..` is no new segment (and does not parse).
            '.' if previous == Some('.') => {
                descendants += 1;
                previous = None;
                continue;
            }
            _ => {}
        }
        previous = Some(c);
    }
    (descendants > MAX_DESCENDANTS).then_some(
        "at most 2 descendant segments (`..`) in a query: each one multiplies the work by the depth of the value",
    )
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
        let functions = run(
            "json_path",
            json!({"value": "fetch.body", "query": "$.orders[?length(@.lines) > 0].total"}),
            &shop(),
        )
        .await;
        assert_eq!(functions.unwrap()["matches"], json!([50, 150]));
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
    fn a_query_whose_work_outgrows_its_value_is_refused() {
        for query in [
            "$..a..b..c",
            "$..[?@..[?@..x]]",
            "$.orders[?@.total > $.limit]",
            "$[0, ?count($..*) > 1]",
        ] {
            assert_eq!(
                problems("json_path", json!({"value": "fetch.body", "query": query})),
                [("nodes[1].config.query".to_owned(), "too_costly".to_owned())],
                "{query}"
            );
        }
        for query in [
            "$..a..b",
            "$..[?@..x]",
            "$.orders[?@.note == '$..x..y..z']",
            "$['a..b..c..d']",
            "$.orders[?@.tags[?@ == 'x']].id",
        ] {
            assert_eq!(
                problems("json_path", json!({"value": "fetch.body", "query": query})),
                [],
                "{query}"
            );
        }
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
        // The `regex` kind matches text; `match` and `search` are left out.
        for query in ["orders", "$.orders[?match(@.id, 'a.*')]"] {
            assert_eq!(
                problems("json_path", json!({"value": "fetch.body", "query": query})),
                [(
                    "nodes[1].config.query".to_owned(),
                    "invalid_query".to_owned()
                )],
                "{query}"
            );
        }
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
