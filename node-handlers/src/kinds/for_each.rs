//! `for_each`: runs a body of nodes once per item of a list. The engine runs
//! the body; this kind reads the list when the node starts, and builds the
//! output once every iteration has settled (handed to it under `loop`).

use flowmesh_model::Primitive;
use flowmesh_model::for_each::{FOR_EACH, ForEachConfig, LOOP, MAX_ITEMS, OnItemError};
use serde_json::{Map, Value, json};

use super::{Ctx, items, output};
use crate::expr::Scope;
use crate::kind::{Behaviour, Execution, NodeKind};
use crate::{NodeError, Outcome};

pub struct ForEach;

impl NodeKind for ForEach {
    type Config = ForEachConfig;
    const NAME: &'static str = FOR_EACH;
    const PRIMITIVE: Primitive = Primitive::Action;
    const DESCRIPTION: &'static str = "Runs a body of nodes once per item of a list; config: items, body {nodes, edges}, concurrency, max_items, on_item_error (fail | continue), result (item, index and the body's nodes are bound).";
    const BEHAVIOUR: Behaviour = Behaviour {
        in_engine: true,
        ..Behaviour::of(Execution::Composite)
    };

    fn example() -> Value {
        json!({
            "items": "trigger.body.orders",
            "concurrency": 4,
            "on_item_error": "continue",
            "result": "{'id': item.id, 'status': charge.status}",
            "body": {"nodes": [{
                "id": "charge", "type": "action", "kind": "http_request",
                "config": {"method": "POST", "url": "https://payments.example.com/charges",
                           "body": {"order": "{{ item.id }}", "amount": "{{ item.total }}"}}
            }]}
        })
    }

    async fn run(config: ForEachConfig, ctx: &Ctx<'_>) -> Result<Outcome, NodeError> {
        match ctx.request.scope.get(LOOP) {
            None => start(&config, ctx),
            Some(settled) => finish(&config, settled, ctx),
        }
    }
}

/// The list to run over, bounded by `max_items` before any item runs.
fn start(config: &ForEachConfig, ctx: &Ctx<'_>) -> Result<Outcome, NodeError> {
    let items = items(ctx, &config.items)?;
    let max = config.max_items.min(MAX_ITEMS) as usize;
    if items.len() > max {
        return Err(NodeError::permanent(format!(
            "config.items gave {} items, over max_items ({max}); no item ran. Raise max_items (at most {MAX_ITEMS}) or split the list",
            items.len()
        )));
    }
    output(json!({ "items": items }))
}

/// The output from the settled iterations, in input order: each one's
/// `{"index", "scope"}` or `{"index", "error"}`.
fn finish(config: &ForEachConfig, settled: &Value, ctx: &Ctx<'_>) -> Result<Outcome, NodeError> {
    let iterations = settled
        .get("iterations")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut results = Vec::with_capacity(iterations.len());
    let mut failures = Vec::new();
    for iteration in iterations {
        let index = iteration.get("index").cloned().unwrap_or(Value::Null);
        let scope = iteration.get("scope").and_then(Value::as_object);
        match (scope, iteration.get("error")) {
            (Some(scope), None) => results.push(result(config, scope, ctx)?),
            (_, error) => {
                let error = error.cloned().unwrap_or(Value::Null);
                if config.on_item_error == OnItemError::Fail {
                    let message = error.as_str().unwrap_or("failed");
                    return Err(NodeError::permanent(format!(
                        "item {index} failed: {message}"
                    )));
                }
                results.push(Value::Null);
                failures.push(json!({"index": index, "error": error}));
            }
        }
    }
    let failed = failures.len();
    output(json!({
        "results": results,
        "failures": failures,
        "count": iterations.len(),
        "succeeded": iterations.len() - failed,
        "failed": failed,
    }))
}

/// One item's result: its `result` expression, or its body's outputs.
fn result(
    config: &ForEachConfig,
    scope: &Map<String, Value>,
    ctx: &Ctx<'_>,
) -> Result<Value, NodeError> {
    match &config.result {
        Some(expr) => ctx
            .expr
            .eval(expr, &Scope::new(scope, ctx.request.max_output_bytes)),
        None => Ok(Value::Object(
            config
                .body
                .nodes
                .iter()
                .filter_map(|n| Some((n.id.clone(), scope.get(&n.id)?.clone())))
                .collect(),
        )),
    }
}
