//! `schedule`: starts the published workflow on a cron schedule.

use flowmesh_model::Primitive;
use flowmesh_model::validate::Outputs;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::kind::{Behaviour, NodeKind, Problems, Trigger};
use crate::schedule::{Problem, Schedule};

pub struct ScheduleTrigger;

#[derive(Deserialize, JsonSchema)]
pub struct Config {
    /// Five fields, or six with seconds first, for example "0 9 * * MON-FRI".
    pub cron: String,
    /// An IANA time zone such as "Europe/Paris"; UTC when absent.
    #[serde(default)]
    pub timezone: Option<String>,
    /// What happens to ticks missed while no engine ran: skip (the default) or run_once.
    #[serde(default)]
    pub missed: Option<Missed>,
}

#[derive(Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Missed {
    Skip,
    RunOnce,
}

fn schedule(config: &Config) -> Result<Schedule, Problem> {
    let missed = match config.missed {
        None | Some(Missed::Skip) => "skip",
        Some(Missed::RunOnce) => "run_once",
    };
    Schedule::new(
        &config.cron,
        config.timezone.as_deref().unwrap_or("UTC"),
        missed,
    )
}

impl NodeKind for ScheduleTrigger {
    type Config = Config;
    const NAME: &'static str = "schedule";
    const PRIMITIVE: Primitive = Primitive::Trigger;
    const DESCRIPTION: &'static str = "Starts the published workflow on a cron schedule; config: cron (5 fields, or 6 with seconds), timezone (IANA, default UTC), missed (skip or run_once: ticks missed while no engine ran). trigger holds scheduled_at.";
    const BEHAVIOUR: Behaviour = Behaviour::TRIGGER;

    fn example() -> Value {
        json!({"cron": "0 9 * * MON-FRI", "timezone": "Europe/Paris", "missed": "skip"})
    }

    fn check(config: &Config, problems: &mut Problems<'_>) -> Outputs {
        if let Err(problem) = schedule(config) {
            problems.push(problem.field, "invalid_schedule", problem.message);
        }
        Outputs::Single
    }

    fn trigger(config: &Config) -> Option<Trigger> {
        Some(Trigger::Schedule(Box::new(schedule(config))))
    }
}
