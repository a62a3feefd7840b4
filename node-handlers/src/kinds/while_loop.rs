//! `while`: repeats a body of nodes with a carried state. The engine runs
//! the body; this kind reads the first state when the node starts, and
//! after each iteration (handed to it under `loop`) the next state and
//! whether `until` holds, within `max_iterations` and `max_duration`.

use flowmesh_model::Primitive;
use flowmesh_model::for_each::LOOP;
use flowmesh_model::while_loop::{STATE, WHILE, WhileConfig};
use serde_json::{Map, Value, json};

use super::{Ctx, output};
use crate::expr::Scope;
use crate::kind::{Behaviour, Execution, NodeKind};
use crate::{ErrorClass, NodeError, Outcome};

pub struct While;

impl NodeKind for While {
    type Config = WhileConfig;
    const NAME: &'static str = WHILE;
    const PRIMITIVE: Primitive = Primitive::Action;
    const DESCRIPTION: &'static str = "Repeats a body of nodes with a carried state; config: state, body {nodes, edges}, next_state, until (state, index and the body's nodes are bound), max_iterations, max_duration.";
    const BEHAVIOUR: Behaviour = Behaviour {
        in_engine: true,
        ..Behaviour::of(Execution::Composite)
    };

    fn example() -> Value {
        json!({
            "state": "{'page': 1, 'rows': 0}",
            "next_state": "{'page': state.page + 1, 'rows': state.rows + fetch.body['items'] | length}",
            "until": "not fetch.body['items']",
            "max_iterations": 20,
            "max_duration": "5m",
            "body": {"nodes": [{
                "id": "fetch", "type": "action", "kind": "http_request",
                "config": {"url": "https://api.example.com/rows?page={{ state.page }}"}
            }]}
        })
    }

    async fn run(config: WhileConfig, ctx: &Ctx<'_>) -> Result<Outcome, NodeError> {
        match ctx.request.scope.get(LOOP) {
            None => {
                let state = ctx.expr.eval(&config.state, &ctx.scope())?;
                output(json!({ "items": [state] }))
            }
            Some(settled) => next(&config, settled, ctx),
        }
    }
}

/// After an iteration: the loop's output once `until` holds, else the next
/// iteration's state, within the bounds.
fn next(config: &WhileConfig, settled: &Value, ctx: &Ctx<'_>) -> Result<Outcome, NodeError> {
    let last = settled["iterations"]
        .as_array()
        .and_then(|i| i.last())
        .cloned()
        .unwrap_or_default();
    let index = last["index"].as_u64().unwrap_or_default();
    let Value::Object(mut scope) = last["scope"].clone() else {
        let error = last["error"].as_str().unwrap_or("failed");
        return Err(NodeError::permanent(format!(
            "iteration {index} failed: {error}"
        )));
    };
    let state = eval(&config.next_state, &scope, ctx)?;
    scope.insert(STATE.to_owned(), state.clone());
    let iterations = index + 1;
    if ctx.expr.truthy(
        &config.until,
        &Scope::new(&scope, ctx.request.max_output_bytes),
    )? {
        return output(json!({ "state": state, "iterations": iterations }));
    }
    if iterations >= u64::from(config.max_iterations) {
        return Err(exhausted(format!(
            "`until` did not hold after max_iterations ({iterations}) iterations"
        )));
    }
    if let Some(max) = config.max_duration {
        let started = settled["started_at"].as_i64().unwrap_or_default();
        let elapsed = now_ms().saturating_sub(started);
        if elapsed > max.0.as_millis() as i64 {
            return Err(exhausted(format!(
                "`until` did not hold within max_duration ({max}) after {iterations} iterations"
            )));
        }
    }
    Ok(Outcome::Repeat { state })
}

fn eval(expr: &str, scope: &Map<String, Value>, ctx: &Ctx<'_>) -> Result<Value, NodeError> {
    ctx.expr
        .eval(expr, &Scope::new(scope, ctx.request.max_output_bytes))
}

fn exhausted(message: String) -> NodeError {
    NodeError {
        class: ErrorClass::LoopExhausted,
        message,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
