//! `call_workflow`: starts another published workflow of the tenant as a
//! child execution. This kind renders the child's input; the execution
//! records the child with the step and, with `wait`, parks until its end.

use flowmesh_model::Primitive;
use flowmesh_model::call_workflow::{CALL_WORKFLOW, CallWorkflowConfig};
use flowmesh_model::validate::Outputs;
use serde_json::{Value, json};

use super::Ctx;
use crate::kind::{Behaviour, NodeKind, Problems};
use crate::{NodeError, Outcome};

pub struct CallWorkflow;

impl NodeKind for CallWorkflow {
    type Config = CallWorkflowConfig;
    const NAME: &'static str = CALL_WORKFLOW;
    const PRIMITIVE: Primitive = Primitive::Action;
    const DESCRIPTION: &'static str = "Starts another published workflow of the tenant as a child execution and, with wait (the default), waits parked for its end and takes its output; config: workflow, version, input (templates), wait, timeout, on_parent_end (cancel | abandon).";
    const BEHAVIOUR: Behaviour = Behaviour {
        calls_workflow: true,
        in_engine: true,
        ..Behaviour::WAIT
    };

    fn example() -> Value {
        json!({
            "workflow": "0190c6a4-5b1e-7f7a-9d0e-1c2b3a4d5e6f",
            "input": {"order": "{{ trigger.body.order_id }}"},
            "wait": true,
            "timeout": "10m"
        })
    }

    fn check(config: &CallWorkflowConfig, problems: &mut Problems<'_>) -> Outputs {
        if !config.wait && config.timeout.is_some() {
            problems.push(
                "timeout",
                "invalid_value",
                "a timeout applies to a call that waits; remove it or set wait to true",
            );
        }
        Outputs::Single
    }

    async fn run(config: CallWorkflowConfig, ctx: &Ctx<'_>) -> Result<Outcome, NodeError> {
        let input = ctx.expr.render_value(&config.input, &ctx.scope())?;
        Ok(Outcome::Call { input })
    }
}
