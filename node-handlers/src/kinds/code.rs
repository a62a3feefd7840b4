//! `code`: user code in JavaScript or Python, run by the engine's sandboxes.
//! `input` is the scope expressions see (`input.trigger.body`,
//! `input.<node id>`); what the code returns is the node's output, and what
//! it prints goes to the step's logs.

use flowmesh_model::Primitive;
use flowmesh_model::validate::Outputs;
use flowmesh_sandbox::{Class, Language, LimitsOverride};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::Instrument;

use super::Ctx;
use crate::kind::{Behaviour, Bounds, Execution, NodeKind, Problems};
use crate::{CodeRequest, ErrorClass, NodeError, Outcome};

pub struct Code;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub language: Language,
    /// The body of a function of `input`; what it returns is the output.
    #[schemars(length(min = 1))]
    pub source: String,
    /// Raise or lower the defaults, up to the tenant's maxima.
    #[serde(default)]
    pub limits: LimitsOverride,
}

impl NodeKind for Code {
    type Config = Config;
    const NAME: &'static str = "code";
    const PRIMITIVE: Primitive = Primitive::Action;
    const DESCRIPTION: &'static str = "Runs JavaScript or Python in a sandbox; config: language, source (a function body of input), limits.";
    const BEHAVIOUR: Behaviour = Behaviour {
        in_engine: true,
        sandboxed: true,
        ..Behaviour::of(Execution::Task)
    };

    fn example() -> Value {
        json!({
            "language": "javascript",
            "source": "return {total: input.trigger.body.items.length};",
            "limits": {"wall": "2s", "memory_mb": 64}
        })
    }

    /// Limits within the bounds where the workflow will run (checked again
    /// when it runs: the maxima may have changed since), and JavaScript
    /// that parses. Python is parsed when it runs: only its interpreter
    /// parses it, and that runs only in the jail of a process that runs
    /// executions.
    fn check(config: &Config, problems: &mut Problems<'_>) -> Outputs {
        let Bounds {
            code_defaults,
            code_maxima,
        } = problems.bounds().clone();
        for over in config.limits.problems(&code_defaults, &code_maxima) {
            let code = if over.above_maximum {
                "over_limit"
            } else {
                "invalid_value"
            };
            problems.push(&format!("limits.{}", over.field), code, over.message);
        }
        if config.language == Language::Javascript
            && let Err(e) = flowmesh_sandbox::check_javascript(&config.source)
        {
            problems.push(
                "source",
                "invalid_code",
                format!("the JavaScript does not parse: {e}"),
            );
        }
        Outputs::Single
    }

    async fn run(config: Config, ctx: &Ctx<'_>) -> Result<Outcome, NodeError> {
        run(config, ctx).await
    }
}

async fn run(config: Config, ctx: &Ctx<'_>) -> Result<Outcome, NodeError> {
    let request = ctx.request;
    let input = serde_json::to_string(request.scope)
        .map_err(|e| NodeError::permanent(format!("the input is not JSON: {e}")))?;
    let call = CodeRequest {
        tenant: request.tenant,
        language: config.language,
        source: config.source,
        input,
        limits: config.limits,
    };
    let span = tracing::info_span!("sandbox.run", language = ?call.language);
    match request.sandboxes.run(call).instrument(span).await {
        Ok(returned) => {
            request.logs.extend(returned.logs);
            Ok(Outcome::Output {
                value: returned.output,
                branch: None,
            })
        }
        Err(failure) => {
            request.logs.extend(failure.logs);
            Err(NodeError {
                class: match failure.class {
                    Class::Timeout => ErrorClass::Timeout,
                    Class::Memory => ErrorClass::Memory,
                    Class::OutputTooLarge => ErrorClass::OutputTooLarge,
                    Class::Crashed => ErrorClass::Crashed,
                    Class::Denied => ErrorClass::Denied,
                    Class::Code => ErrorClass::Permanent,
                },
                message: failure.message,
            })
        }
    }
}
