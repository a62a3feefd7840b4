//! Fires the schedule triggers of published workflows. Every process that
//! runs executions (role `all` or `worker`) runs this loop; the store's compare-and-set lets exactly one of them fire
//! each tick, with the tick's execution created in the same transaction.
//! A tick is admitted like any start; one admission refuses (no credits,
//! input over the limit) is skipped, recorded, and the schedule moves on.

use std::time::Duration;

use flowmesh_model::validate::ValidationError;
use flowmesh_model::{Command, ExecutionId, Node, TenantId, ValidationErrors, WorkflowId};
use flowmesh_node_handlers::schedule::Schedule;
use flowmesh_node_handlers::{Registry, Trigger};
use flowmesh_store::{DueSchedule, Fire, NewExecution, NewSchedule, now_ms};
use serde_json::json;

use super::EngineHandle;
use crate::accounts::{EngineAudit, audit_engine};
use crate::error::Error;
use crate::shared::Shared;

/// Ticks looked at, from now on, for a schedule's shortest interval: enough
/// for any pattern's shortest gap to come round.
const SCAN_TICKS: usize = 1_000;

/// A workflow's schedules about to be published.
pub(super) struct Publishing<'a> {
    pub registry: &'a Registry,
    pub tenant: TenantId,
    pub workflow: WorkflowId,
    pub nodes: &'a [Node],
    pub now: i64,
}

/// The schedule triggers of a workflow being published, refused if one
/// ticks more often than this instance allows or if the tenant would hold
/// more schedules than it allows.
pub(super) async fn schedules_to_publish(
    shared: &Shared,
    publishing: &Publishing<'_>,
) -> Result<Vec<NewSchedule>, Error> {
    let limits = shared.options.schedules;
    let mut schedules = Vec::new();
    let mut problems = Vec::new();
    for (i, node) in publishing.nodes.iter().enumerate() {
        let Some(Trigger::Schedule(schedule)) = publishing.registry.trigger(node) else {
            continue;
        };
        // The document was validated when it was saved.
        let schedule = (*schedule).map_err(|p| Error::BadRequest(p.message))?;
        if let Some(gap) = shortest_gap_below(&schedule, publishing.now, limits.min_interval.0) {
            problems.push(ValidationError::new(
                format!("nodes[{i}].config.cron"),
                "schedule_too_frequent",
                format!(
                    "fires every {} s; this instance allows at most one tick every {} s",
                    gap.as_secs_f64(),
                    limits.min_interval.0.as_secs_f64()
                ),
            ));
        }
        schedules.push(NewSchedule {
            node: node.id.clone(),
            cron: schedule.expression.clone(),
            timezone: schedule.timezone.name().to_owned(),
            missed: schedule.missed.as_str().to_owned(),
            next_at: schedule.next_after(publishing.now).unwrap_or(i64::MAX),
        });
    }
    if !problems.is_empty() {
        return Err(Error::Invalid(ValidationErrors { errors: problems }));
    }
    if schedules.is_empty() {
        return Ok(schedules);
    }
    let others = shared
        .store
        .count_schedules(publishing.tenant, publishing.workflow)
        .await?;
    let total = others + schedules.len() as u64;
    if total > limits.max_per_tenant {
        return Err(Error::Invalid(ValidationErrors::one(ValidationError::new(
            "nodes",
            "too_many_schedules",
            format!(
                "this workflow's {} schedule triggers and the {others} of the tenant's other \
                 published workflows make {total}; this instance allows a tenant {} \
                 (unpublish or delete some first)",
                schedules.len(),
                limits.max_per_tenant
            ),
        ))));
    }
    Ok(schedules)
}

/// The first gap between two of the schedule's next ticks shorter than
/// `min`, if any.
fn shortest_gap_below(schedule: &Schedule, now: i64, min: Duration) -> Option<Duration> {
    let min = i64::try_from(min.as_millis()).unwrap_or(i64::MAX);
    let mut last = schedule.next_after(now)?;
    for _ in 0..SCAN_TICKS {
        let next = schedule.next_after(last)?;
        if next - last < min {
            return Some(Duration::from_millis(
                u64::try_from(next - last).unwrap_or(0),
            ));
        }
        last = next;
    }
    None
}

/// Due schedules handled per round, and rounds per look.
const BATCH: u32 = 100;
const MAX_ROUNDS: usize = 50;

pub(super) async fn fire_schedules(handle: EngineHandle) {
    let shared = handle.shared.clone();
    let mut tick = tokio::time::interval(shared.options.schedule_interval.0);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if shared.runtime.is_draining() {
            continue;
        }
        // Round after round while ticks are due: each round moves every
        // due schedule on by at least one tick.
        for _ in 0..MAX_ROUNDS {
            let due = match shared.store.due_schedules(now_ms(), BATCH).await {
                Ok(due) => due,
                Err(e) => {
                    tracing::warn!(error = %e, "could not look for due schedules");
                    break;
                }
            };
            let count = due.len();
            for schedule in &due {
                fire(&handle, schedule).await;
            }
            if count == 0 {
                break;
            }
        }
    }
}

async fn fire(handle: &EngineHandle, due: &DueSchedule) {
    let shared = &*handle.shared;
    let schedule = match Schedule::new(&due.cron, &due.timezone, &due.missed) {
        Ok(schedule) => schedule,
        Err(problem) => {
            tracing::error!(workflow = %due.workflow, node = %due.node, error = %problem.message, "stored schedule no longer parses; it is not fired");
            return;
        }
    };
    let now = now_ms();
    let firing = schedule.decide(due.next_at, now);
    let mut refused = None;
    let execution = match firing.fire {
        Some(at) => match new_execution(shared, due, &schedule, at).await {
            Some(new) => {
                let payload_bytes = new.trigger.to_string().len();
                match handle.admit_start(new.tenant, payload_bytes).await {
                    Ok(()) => Some(new),
                    Err(e @ (Error::NoCredits(_) | Error::TooLarge(_))) => {
                        refused = Some(e);
                        None
                    }
                    Err(e) => {
                        tracing::warn!(workflow = %due.workflow, node = %due.node, error = %e, "could not admit schedule tick; trying again");
                        return;
                    }
                }
            }
            None => return,
        },
        None => {
            tracing::info!(workflow = %due.workflow, node = %due.node, tick = due.next_at, "schedule tick missed while no engine ran; skipped by its policy");
            None
        }
    };
    let request = Fire {
        schedule: due,
        next_at: firing.next,
        execution: execution.as_ref(),
    };
    match shared.store.fire_schedule(&request).await {
        Ok(true) => {
            if let Some(refusal) = refused {
                skipped(shared, due, &refusal).await;
            }
            if let Some(new) = execution {
                let command = Command::start(new.tenant, new.workflow, new.id);
                if let Err(e) = shared
                    .bus
                    .publish_command(&command, new.traceparent.as_deref())
                    .await
                {
                    tracing::warn!(execution = %new.id, error = %e, "start command not published; the claim sweep will start it");
                }
            }
        }
        // Another process fired this tick first.
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(workflow = %due.workflow, node = %due.node, error = %e, "could not fire schedule; trying again")
        }
    }
}

/// Records a tick admission refused: it is skipped, not retried.
async fn skipped(shared: &Shared, due: &DueSchedule, refusal: &Error) {
    let reason = refusal.code().as_str();
    tracing::warn!(tenant = %due.tenant, workflow = %due.workflow, node = %due.node, tick = due.next_at, reason, error = %refusal, "schedule tick refused by admission; skipped");
    crate::metrics::tick_skipped(due.tenant, reason);
    let event = EngineAudit {
        tenant: due.tenant,
        action: "schedule.tick_skipped",
        target: Some(format!("{}/{}", due.workflow, due.node)),
        outcome: reason,
    };
    audit_engine(shared, event).await;
}

/// The execution of one tick; its idempotency key makes the tick's
/// execution unique even apart from the schedule's compare-and-set.
async fn new_execution(
    shared: &Shared,
    due: &DueSchedule,
    schedule: &Schedule,
    at: i64,
) -> Option<NewExecution> {
    let document = match shared
        .store
        .workflow_version(due.workflow, due.version)
        .await
    {
        Ok(Some(document)) => document,
        Ok(None) => {
            tracing::error!(workflow = %due.workflow, version = due.version, "scheduled workflow version is gone");
            return None;
        }
        Err(e) => {
            tracing::warn!(workflow = %due.workflow, error = %e, "could not load scheduled workflow; trying again");
            return None;
        }
    };
    let now = now_ms();
    let tick = tracing::info_span!("schedule.tick", workflow = %due.workflow, node = %due.node);
    Some(NewExecution {
        id: ExecutionId::new(),
        tenant: due.tenant,
        workflow: due.workflow,
        version: due.version,
        trigger_node: due.node.clone(),
        trigger: json!({
            "scheduled_at_ms": at,
            "scheduled_at": schedule.local_time(at),
            "fired_at_ms": now,
        }),
        idempotency_key: Some(format!("schedule:{}:{}:{at}", due.workflow, due.node)),
        fingerprint: None,
        deadline_ms: document
            .settings
            .timeout
            .map(|t| now + t.0.as_millis() as i64),
        origin: None,
        steps: Vec::new(),
        traceparent: crate::trace::traceparent_of(&tick),
        test: None,
        handles: None,
        called_by: None,
    })
}
