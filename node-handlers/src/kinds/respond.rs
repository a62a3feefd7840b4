//! `respond`: the answer to a synchronous caller (a webhook's HTTP
//! response, a NATS request's reply).

use std::collections::BTreeMap;

use flowmesh_model::Primitive;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Ctx;
use crate::kind::{Behaviour, NodeKind};
use crate::{NodeError, Outcome};

pub struct Respond;

#[derive(Deserialize, JsonSchema)]
pub struct Config {
    /// An HTTP status from 200 to 599 (informational 1xx answers are not allowed); 200 when absent.
    #[serde(default)]
    #[schemars(range(min = 200, max = 599))]
    pub status: Option<u16>,
    #[serde(default)]
    #[schemars(extend("x-flowmesh-field" = "template"))]
    pub headers: Option<BTreeMap<String, String>>,
    /// Every string in it is a template.
    #[serde(default)]
    #[schemars(extend("x-flowmesh-field" = "template"))]
    pub body: Option<Value>,
}

impl NodeKind for Respond {
    type Config = Config;
    const NAME: &'static str = "respond";
    const PRIMITIVE: Primitive = Primitive::Action;
    const DESCRIPTION: &'static str =
        "Answers the synchronous caller; config: status, headers, body.";
    const BEHAVIOUR: Behaviour = Behaviour {
        answers_caller: true,
        ..Behaviour::COMPUTE
    };

    fn example() -> Value {
        json!({"status": 201, "headers": {"X-Request": "{{ trigger.body.id }}"}, "body": {"ok": true}})
    }

    async fn run(config: Config, ctx: &Ctx<'_>) -> Result<Outcome, NodeError> {
        let scope = ctx.scope();
        let mut headers = Vec::new();
        for (name, template) in config.headers.iter().flatten() {
            headers.push((name.clone(), ctx.expr.render_text(template, &scope)?));
        }
        let body = match &config.body {
            Some(body) => ctx.expr.render_value(body, &scope)?,
            None => Value::Null,
        };
        Ok(Outcome::Respond {
            status: config.status.unwrap_or(200),
            headers,
            body,
        })
    }
}
