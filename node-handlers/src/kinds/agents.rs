//! `agents`: a team of model-backed agents working through tasks, each
//! agent's answer feeding the next, within a budget of rounds and tokens.
//! `sequential` runs the tasks in their order; `plan` first asks a
//! coordinator which agent takes which task, in which order.

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::{Value, json};

use super::ai::{ask, check_model_settings, mismatches, positive};
use super::{Checker, Ctx};
use crate::llm::{ChatRequest, Llm, Message, Usage, answer_json};
use crate::{ErrorClass, NodeError, Outcome};

const DEFAULT_MAX_ROUNDS: u64 = 10;
const MAX_ROUNDS: u64 = 50;
const DEFAULT_MAX_TOKENS: u64 = 20_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Agent {
    id: String,
    role: String,
    goal: String,
    #[serde(default)]
    instructions: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Task {
    id: String,
    agent: String,
    description: String,
    #[serde(default)]
    expected_output: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    agents: Vec<Agent>,
    tasks: Vec<Task>,
    #[serde(default)]
    process: Option<String>,
    #[serde(default)]
    max_rounds: Option<u64>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    temperature: Option<f64>,
}

/// Every field of every list item, with precise locations.
pub(super) fn check(c: &mut Checker<'_>) {
    let mut agent_ids = HashSet::new();
    match c.get("agents").cloned() {
        Some(Value::Array(agents)) if !agents.is_empty() => {
            for (i, agent) in agents.iter().enumerate() {
                let at = format!("agents[{i}]");
                for field in ["id", "role", "goal"] {
                    match agent.get(field) {
                        Some(Value::String(s)) if !s.trim().is_empty() => {}
                        _ => c.push(
                            &format!("{at}.{field}"),
                            "required",
                            format!("each agent needs a {field} (a string)"),
                        ),
                    }
                }
                if let Some(id) = agent.get("id").and_then(Value::as_str)
                    && !agent_ids.insert(id.to_owned())
                {
                    c.push(
                        &format!("{at}.id"),
                        "duplicate",
                        format!("agent {id:?} is listed twice"),
                    );
                }
                if !matches!(agent.get("instructions"), None | Some(Value::String(_))) {
                    c.push(
                        &format!("{at}.instructions"),
                        "invalid_type",
                        "instructions must be a string",
                    );
                }
                unknown_keys(c, &at, agent, &["id", "role", "goal", "instructions"]);
            }
        }
        _ => c.push(
            "agents",
            "required",
            "agents must be a list of at least one agent",
        ),
    }
    match c.get("tasks").cloned() {
        Some(Value::Array(tasks)) if !tasks.is_empty() => {
            let mut task_ids = HashSet::new();
            for (i, task) in tasks.iter().enumerate() {
                let at = format!("tasks[{i}]");
                match task.get("id").and_then(Value::as_str) {
                    Some(id) if !id.trim().is_empty() => {
                        if !task_ids.insert(id.to_owned()) {
                            c.push(
                                &format!("{at}.id"),
                                "duplicate",
                                format!("task {id:?} is listed twice"),
                            );
                        }
                    }
                    _ => c.push(&format!("{at}.id"), "required", "each task needs an id"),
                }
                match task.get("agent").and_then(Value::as_str) {
                    Some(agent) if agent_ids.contains(agent) => {}
                    Some(agent) => c.push(
                        &format!("{at}.agent"),
                        "unknown_agent",
                        format!("no agent has the id {agent:?}"),
                    ),
                    None => c.push(
                        &format!("{at}.agent"),
                        "required",
                        "each task names its agent",
                    ),
                }
                match task.get("description") {
                    Some(Value::String(d)) if !d.trim().is_empty() => {
                        c.templates(&format!("{at}.description"), &Value::String(d.clone()));
                    }
                    _ => c.push(
                        &format!("{at}.description"),
                        "required",
                        "each task needs a description",
                    ),
                }
                if !matches!(task.get("expected_output"), None | Some(Value::String(_))) {
                    c.push(
                        &format!("{at}.expected_output"),
                        "invalid_type",
                        "expected_output must be a string",
                    );
                }
                unknown_keys(
                    c,
                    &at,
                    task,
                    &["id", "agent", "description", "expected_output"],
                );
            }
        }
        _ => c.push(
            "tasks",
            "required",
            "tasks must be a list of at least one task",
        ),
    }
    c.one_of("process", &["sequential", "plan"], "sequential");
    positive(c, "max_rounds", MAX_ROUNDS);
    positive(c, "max_tokens", 10_000_000);
    check_model_settings(c);
    c.only(
        &[
            "agents",
            "tasks",
            "process",
            "max_rounds",
            "max_tokens",
            "model",
            "temperature",
        ],
        "an agents node",
    );
}

fn unknown_keys(c: &mut Checker<'_>, at: &str, item: &Value, known: &[&str]) {
    for key in item.as_object().into_iter().flat_map(|o| o.keys()) {
        if !known.contains(&key.as_str()) {
            c.push(
                &format!("{at}.{key}"),
                "unknown_field",
                format!("the fields here are {}", known.join(", ")),
            );
        }
    }
}

/// One step of the work: a task for an agent.
struct Step<'c> {
    task: &'c Task,
    agent: &'c Agent,
    /// The task's description, rendered.
    description: &'c str,
}

/// The budget and what has been spent of it.
struct Budget {
    rounds: u64,
    max_rounds: u64,
    usage: Usage,
    max_tokens: u64,
}

impl Budget {
    /// Room for one more model call, and how many tokens it may use.
    fn next(&self) -> Result<u64, NodeError> {
        if self.rounds >= self.max_rounds {
            return Err(NodeError::permanent(format!(
                "the agents reached max_rounds ({}) before finishing their tasks",
                self.max_rounds
            )));
        }
        let left = self.max_tokens.saturating_sub(self.usage.total_tokens);
        if left == 0 {
            return Err(NodeError::permanent(format!(
                "the agents used {} tokens, reaching max_tokens ({}) before finishing their tasks",
                self.usage.total_tokens, self.max_tokens
            )));
        }
        Ok(left)
    }
}

pub async fn run(ctx: &Ctx<'_>, llm: &Llm) -> Result<Outcome, NodeError> {
    let config: Config = serde_json::from_value(ctx.request.node.config.clone())
        .map_err(|e| NodeError::permanent(format!("invalid agents config: {e}")))?;
    let mut budget = Budget {
        rounds: 0,
        max_rounds: config.max_rounds.unwrap_or(DEFAULT_MAX_ROUNDS),
        usage: Usage::default(),
        max_tokens: config.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
    };
    let scope = ctx.scope();
    let descriptions = config
        .tasks
        .iter()
        .map(|t| ctx.expr.render_text(&t.description, &scope))
        .collect::<Result<Vec<_>, _>>()?;
    let base = |messages: Vec<Message>, max_tokens: u64| ChatRequest {
        model: config.model.clone(),
        messages,
        temperature: config.temperature,
        max_tokens: Some(max_tokens),
        ..ChatRequest::default()
    };
    let agent = |id: &str| config.agents.iter().find(|a| a.id == id);
    let (steps, plan) = if config.process.as_deref() == Some("plan") {
        let left = budget.next()?;
        let request = ChatRequest {
            schema: Some(plan_schema()),
            ..base(plan_messages(&config, &descriptions), left)
        };
        let answer = ask(ctx, llm, &request).await?;
        budget.rounds += 1;
        budget.usage.add(answer.usage);
        let plan = read_plan(&answer.content)?;
        let steps = plan
            .iter()
            .map(|(task_id, agent_id)| {
                let index = config.tasks.iter().position(|t| &t.id == task_id);
                match (index, agent(agent_id)) {
                    (Some(i), Some(agent)) => Ok(Step {
                        task: &config.tasks[i],
                        agent,
                        description: &descriptions[i],
                    }),
                    _ => Err(NodeError {
                        class: ErrorClass::InvalidOutput,
                        message: format!(
                            "the coordinator's plan names task {task_id:?} or agent {agent_id:?}, which do not exist"
                        ),
                    }),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let plan: Vec<Value> = plan
            .iter()
            .map(|(task, agent)| json!({"task": task, "agent": agent}))
            .collect();
        (steps, Some(plan))
    } else {
        let steps = config
            .tasks
            .iter()
            .zip(&descriptions)
            .map(|(task, description)| Step {
                task,
                agent: agent(&task.agent).unwrap_or(&config.agents[0]),
                description,
            })
            .collect();
        (steps, None)
    };
    let mut contributions: Vec<Value> = Vec::new();
    for step in &steps {
        let left = budget.next()?;
        let messages = step_messages(step, &contributions);
        let answer = ask(ctx, llm, &base(messages, left)).await?;
        budget.rounds += 1;
        budget.usage.add(answer.usage);
        if budget.usage.total_tokens > budget.max_tokens {
            return Err(NodeError::permanent(format!(
                "the agents used {} tokens, over max_tokens ({})",
                budget.usage.total_tokens, budget.max_tokens
            )));
        }
        contributions.push(json!({
            "agent": step.agent.id,
            "role": step.agent.role,
            "task": step.task.id,
            "output": answer.content,
        }));
    }
    let final_answer = contributions
        .last()
        .map(|c| c["output"].clone())
        .unwrap_or(Value::Null);
    let mut output = json!({
        "final": final_answer,
        "contributions": contributions,
        "rounds": budget.rounds,
        "usage": budget.usage,
    });
    if let Some(plan) = plan {
        output["plan"] = Value::Array(plan);
    }
    Ok(Outcome::Output {
        value: output,
        branch: None,
    })
}

fn persona(agent: &Agent) -> String {
    let mut text = format!("You are {}. Your goal: {}.", agent.role, agent.goal);
    if let Some(instructions) = &agent.instructions {
        text.push(' ');
        text.push_str(instructions);
    }
    text
}

fn step_messages(step: &Step<'_>, so_far: &[Value]) -> Vec<Message> {
    let mut task = format!("Your task: {}", step.description);
    if let Some(expected) = &step.task.expected_output {
        task.push_str(&format!("\nExpected output: {expected}"));
    }
    if !so_far.is_empty() {
        task.push_str("\n\nThe team's work so far:");
        for c in so_far {
            task.push_str(&format!(
                "\n\n[{} on {}]\n{}",
                c["role"].as_str().unwrap_or_default(),
                c["task"].as_str().unwrap_or_default(),
                c["output"].as_str().unwrap_or_default()
            ));
        }
    }
    vec![
        Message::new("system", persona(step.agent)),
        Message::new("user", task),
    ]
}

fn plan_schema() -> Value {
    json!({
        "type": "object",
        "required": ["steps"],
        "properties": {"steps": {"type": "array", "minItems": 1, "items": {
            "type": "object",
            "required": ["task", "agent"],
            "properties": {"task": {"type": "string"}, "agent": {"type": "string"}}
        }}}
    })
}

fn plan_messages(config: &Config, descriptions: &[String]) -> Vec<Message> {
    let agents: Vec<Value> = config
        .agents
        .iter()
        .map(|a| json!({"id": a.id, "role": a.role, "goal": a.goal}))
        .collect();
    let tasks: Vec<Value> = config
        .tasks
        .iter()
        .zip(descriptions)
        .map(|(t, d)| json!({"id": t.id, "description": d, "suggested_agent": t.agent}))
        .collect();
    vec![
        Message::new(
            "system",
            format!(
                "You coordinate a team. Decide which agent does which task, in which order; \
                 each step's result is passed to the next. Answer with JSON only, matching \
                 this JSON Schema:\n{}",
                plan_schema()
            ),
        ),
        Message::new(
            "user",
            json!({"agents": agents, "tasks": tasks}).to_string(),
        ),
    ]
}

/// The coordinator's steps as (task id, agent id).
fn read_plan(text: &str) -> Result<Vec<(String, String)>, NodeError> {
    let invalid = |message: String| NodeError {
        class: ErrorClass::InvalidOutput,
        message,
    };
    let value = answer_json(text)
        .map_err(|e| invalid(format!("the coordinator's plan is not JSON: {e}")))?;
    let wrong = mismatches(&plan_schema(), &value).map_err(NodeError::permanent)?;
    if !wrong.is_empty() {
        return Err(invalid(format!(
            "the coordinator's plan does not match its schema: {}",
            wrong.join("; ")
        )));
    }
    Ok(value["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["task"].as_str().unwrap_or_default().to_owned(),
                s["agent"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect())
}
