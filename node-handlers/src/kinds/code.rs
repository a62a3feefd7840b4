//! `code`: user code in JavaScript or Python, run by the engine's sandboxes.
//! `input` is the scope expressions see (`input.trigger.body`,
//! `input.<node id>`); what the code returns is the node's output, and what
//! it prints goes to the step's logs.

use flowmesh_model::HumanDuration;
use flowmesh_sandbox::{Class, Language, Limits, LimitsOverride};
use serde::Deserialize;
use tracing::Instrument;

use super::{Checker, Ctx};
use crate::{CodeRequest, ErrorClass, NodeError, Outcome};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    language: Language,
    source: String,
    #[serde(default)]
    limits: LimitsOverride,
}

pub async fn run(ctx: &Ctx<'_>) -> Result<Outcome, NodeError> {
    let request = ctx.request;
    let config: Config = serde_json::from_value(request.node.config.clone())
        .map_err(|e| NodeError::permanent(format!("invalid code config: {e}")))?;
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

/// The fields of a code node's `limits`.
const LIMITS: &[&str] = &["wall", "memory_mb", "output_bytes"];

/// The config's shape; the tenant's maxima are applied when the node runs.
pub(super) fn check(c: &mut Checker<'_>) {
    c.one_of("language", &["javascript", "python"], "");
    c.required_str("source");
    let unknown: Vec<String> = c
        .get("limits")
        .and_then(serde_json::Value::as_object)
        .into_iter()
        .flat_map(|limits| limits.keys())
        .filter(|k| !LIMITS.contains(&k.as_str()))
        .cloned()
        .collect();
    for field in &unknown {
        let mut message = format!("limits takes {}", LIMITS.join(", "));
        if field == "network" {
            message = format!(
                "code has no network: outbound calls go through an http_request node (and its \
                 SSRF guard); {message}"
            );
        }
        c.push(&format!("limits.{field}"), "unknown_field", message);
    }
    // The known fields are checked too, without the unknown ones.
    let known = c.get("limits").cloned().map(|mut limits| {
        if let Some(limits) = limits.as_object_mut() {
            limits.retain(|k, _| LIMITS.contains(&k.as_str()));
        }
        limits
    });
    match known.map(serde_json::from_value::<LimitsOverride>) {
        None => {}
        Some(Ok(limits)) => {
            // Only the lower bounds here: no maxima can make these valid.
            let unbounded = Limits {
                wall: HumanDuration::from_millis(u64::MAX / 2),
                memory_mb: u64::MAX,
                output_bytes: u64::MAX,
            };
            if let Err(over) = limits.resolve(&Limits::default(), &unbounded) {
                c.push(
                    &format!("limits.{}", over.field),
                    "invalid_value",
                    over.message,
                );
            }
        }
        Some(Err(e)) => c.push("limits", "invalid_value", e.to_string()),
    }
    c.only(&["language", "source", "limits"], "a code node");
}
