//! `agents`: a team of model-backed agents working through tasks, each
//! agent's answer feeding the next, within a budget of rounds and tokens.
//! `sequential` runs the tasks in their order; `plan` first asks a
//! coordinator which agent takes which task, in which order.

use std::collections::HashSet;

use flowmesh_model::Primitive;
use flowmesh_model::validate::Outputs;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Ctx;
use super::ai::{ask, mismatches};
use crate::kind::{Behaviour, NodeKind, Problems};
use crate::llm::{ChatRequest, Llm, Message, Usage, answer_json};
use crate::{ErrorClass, NodeError, Outcome};

const DEFAULT_MAX_ROUNDS: u64 = 10;
const MAX_ROUNDS: u64 = 50;
const DEFAULT_MAX_TOKENS: u64 = 20_000;

pub struct Agents;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Agent {
    #[schemars(length(min = 1))]
    pub id: String,
    #[schemars(length(min = 1))]
    pub role: String,
    #[schemars(length(min = 1))]
    pub goal: String,
    #[serde(default)]
    pub instructions: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Task {
    #[schemars(length(min = 1))]
    pub id: String,
    /// The id of the agent that does it.
    pub agent: String,
    #[schemars(length(min = 1), extend("x-flowmesh-field" = "template"))]
    pub description: String,
    #[serde(default)]
    pub expected_output: Option<String>,
}

#[derive(Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Process {
    /// The tasks in their order.
    Sequential,
    /// A coordinator orders the work.
    Plan,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[schemars(length(min = 1))]
    pub agents: Vec<Agent>,
    #[schemars(length(min = 1))]
    pub tasks: Vec<Task>,
    /// sequential when absent.
    #[serde(default)]
    pub process: Option<Process>,
    #[serde(default)]
    #[schemars(range(min = 1, max = MAX_ROUNDS))]
    pub max_rounds: Option<u64>,
    #[serde(default)]
    #[schemars(range(min = 1, max = 10_000_000))]
    pub max_tokens: Option<u64>,
    #[serde(default)]
    #[schemars(length(min = 1))]
    pub model: Option<String>,
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 2.0))]
    pub temperature: Option<f64>,
}

impl NodeKind for Agents {
    type Config = Config;
    const NAME: &'static str = "agents";
    const PRIMITIVE: Primitive = Primitive::Action;
    const DESCRIPTION: &'static str = "A team of model-backed agents; config: agents [{id, role, goal, instructions}], tasks [{id, agent, description (a template), expected_output}], process (sequential, or plan: a coordinator orders the work), max_rounds, max_tokens, model, temperature. Each answer feeds the next; output: final, contributions, rounds, usage.";
    const BEHAVIOUR: Behaviour = Behaviour::OUTSIDE_CALL;

    fn example() -> Value {
        json!({
            "agents": [{"id": "writer", "role": "Writer", "goal": "Write a short, friendly answer"}],
            "tasks": [{"id": "answer", "agent": "writer", "description": "Answer: {{ trigger.body.question }}"}],
            "max_rounds": 3
        })
    }

    /// Ids are unique and every task names an agent.
    fn check(config: &Config, problems: &mut Problems<'_>) -> Outputs {
        let mut agent_ids = HashSet::new();
        for (i, agent) in config.agents.iter().enumerate() {
            if !agent_ids.insert(agent.id.as_str()) {
                problems.push(
                    &format!("agents[{i}].id"),
                    "duplicate",
                    format!("agent {:?} is listed twice", agent.id),
                );
            }
        }
        let mut task_ids = HashSet::new();
        for (i, task) in config.tasks.iter().enumerate() {
            if !task_ids.insert(task.id.as_str()) {
                problems.push(
                    &format!("tasks[{i}].id"),
                    "duplicate",
                    format!("task {:?} is listed twice", task.id),
                );
            }
            if !agent_ids.contains(task.agent.as_str()) {
                problems.push(
                    &format!("tasks[{i}].agent"),
                    "unknown_agent",
                    format!("no agent has the id {:?}", task.agent),
                );
            }
        }
        Outputs::Single
    }

    async fn run(config: Config, ctx: &Ctx<'_>) -> Result<Outcome, NodeError> {
        run(config, ctx, ctx.llm).await
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

async fn run(config: Config, ctx: &Ctx<'_>, llm: &Llm) -> Result<Outcome, NodeError> {
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
    let (steps, plan) = if matches!(config.process, Some(Process::Plan)) {
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
