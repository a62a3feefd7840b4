//! Looking into executions: statistics per workflow, an execution's logs,
//! and re-running an execution from one of its nodes.

use flowmesh_api::{NodeLog, RerunRequest};
use std::collections::{BTreeMap, BTreeSet};

use flowmesh_model::graph::WorkflowGraph;
use flowmesh_model::names::TRIGGER;
use flowmesh_model::{Command, ExecutionId, NodeStatus, Primitive, TenantId, WorkflowId};
use flowmesh_store::{ExecutionRecord, LastRun, NewExecution, Origin, StepRecord, now_ms};
use serde::Serialize;
use serde_json::{Map, Value};

use super::EngineHandle;
use crate::error::Error;
use crate::progress::Progress;

/// Finished runs the duration percentiles are taken over.
const STATS_SAMPLE: u32 = 10_000;

/// Keys whose values logs never show, whatever a node returned.
const SENSITIVE: [&str; 8] = [
    "authorization",
    "cookie",
    "password",
    "secret",
    "token",
    "api_key",
    "apikey",
    "x-api-key",
];

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct WorkflowStats {
    pub total: i64,
    pub by_status: BTreeMap<String, i64>,
    /// Succeeded among finished runs; none before any finished.
    pub success_rate: Option<f64>,
    /// Over the latest finished runs (at most 10,000), start to end.
    pub p50_ms: Option<i64>,
    pub p95_ms: Option<i64>,
    pub last_run: Option<LastRunView>,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct LastRunView {
    pub execution_id: ExecutionId,
    pub status: String,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// Hides the values of sensitive keys, at any depth.
fn redact(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let key = k.to_ascii_lowercase();
                    if SENSITIVE.iter().any(|s| key.contains(s)) {
                        (k.clone(), Value::String("[redacted]".into()))
                    } else {
                        (k.clone(), redact(v))
                    }
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        other => other.clone(),
    }
}

impl EngineHandle {
    pub async fn workflow_stats(
        &self,
        tenant: TenantId,
        workflow: WorkflowId,
    ) -> Result<WorkflowStats, Error> {
        self.get_workflow(tenant, workflow).await?;
        let stats = self
            .shared
            .store
            .workflow_stats(tenant, workflow, STATS_SAMPLE)
            .await?;
        let by_status: BTreeMap<String, i64> = stats
            .counts
            .iter()
            .map(|(s, n)| (s.as_str().to_owned(), *n))
            .collect();
        let finished: i64 = stats
            .counts
            .iter()
            .filter(|(s, _)| s.is_terminal())
            .map(|(_, n)| n)
            .sum();
        let succeeded = by_status.get("succeeded").copied().unwrap_or(0);
        let mut durations = stats.durations_ms;
        durations.sort_unstable();
        Ok(WorkflowStats {
            total: stats.counts.iter().map(|(_, n)| n).sum(),
            success_rate: (finished > 0).then(|| succeeded as f64 / finished as f64),
            p50_ms: percentile(&durations, 0.50),
            p95_ms: percentile(&durations, 0.95),
            by_status,
            last_run: stats.last.map(|l: LastRun| LastRunView {
                execution_id: l.id,
                status: l.status.as_str().to_owned(),
                created_at: l.created_at,
                finished_at: l.finished_at,
            }),
        })
    }

    /// Each node's attempts, input, output, error and printed lines, in the
    /// order the nodes started; sensitive values redacted.
    pub async fn execution_logs(
        &self,
        tenant: TenantId,
        id: ExecutionId,
    ) -> Result<Vec<NodeLog>, Error> {
        let record = self.get_execution(tenant, id).await?;
        let graph = self.graph(record.workflow, record.version).await?;
        let progress = Progress::new(graph.clone(), &record);
        let mut order: Vec<usize> = graph.flow_nodes().collect();
        // The trigger first (its output is what started the run), then the
        // nodes in the order they started.
        order.sort_by_key(|&i| {
            let step = &progress.nodes[i];
            let trigger = graph.node(i).primitive == Primitive::Trigger;
            (
                !trigger,
                step.started_at.is_none(),
                step.started_at,
                step.node.clone(),
            )
        });
        Ok(order
            .into_iter()
            .map(|i| {
                let step = &progress.nodes[i];
                let input = progress
                    .inputs(i)
                    .into_iter()
                    .filter_map(|from| {
                        let j = graph.index[&from];
                        let output = progress.nodes[j].output.as_ref()?;
                        Some((from, redact(output)))
                    })
                    .collect();
                NodeLog {
                    node: step.node.clone(),
                    kind: graph.node(i).kind.clone(),
                    status: step.status.as_str().to_owned(),
                    attempts: step.attempts,
                    started_at: step.started_at,
                    finished_at: step.finished_at,
                    input,
                    output: step.output.as_ref().map(redact),
                    error: step.error.clone(),
                    lines: step.logs.clone(),
                }
            })
            .collect())
    }

    /// A new execution of the same pinned version that reuses the recorded
    /// outputs of every node upstream of `from_node` and runs from there.
    pub async fn rerun(&self, request: RerunRequest) -> Result<ExecutionId, Error> {
        let record = self
            .get_execution(request.tenant, request.execution)
            .await?;
        if !record.status.is_terminal() {
            return Err(Error::Conflict(
                "the execution is still running; re-run it once it has ended".into(),
            ));
        }
        let graph = self.graph(record.workflow, record.version).await?;
        let from = request.from_node.as_str();
        let start = match graph.index.get(from) {
            Some(&i) if graph.node(i).primitive != Primitive::Trigger => i,
            _ => {
                return Err(Error::BadRequest(format!(
                    "from_node: {from:?} is not an action, condition or data node of this workflow"
                )));
            }
        };
        // Every node upstream of from_node, transitively.
        let mut upstream = BTreeSet::new();
        let mut todo = vec![start];
        while let Some(i) = todo.pop() {
            for link in &graph.incoming[i] {
                if upstream.insert(link.node) {
                    todo.push(link.node);
                }
            }
        }
        for key in request.input_override.keys() {
            let known =
                key == "trigger" || graph.index.get(key).is_some_and(|i| upstream.contains(i));
            if !known {
                return Err(Error::BadRequest(format!(
                    "input_override.{key}: not a node upstream of {from} (nor \"trigger\")"
                )));
            }
        }
        let trigger_override = trigger_override(&graph, &record, &request.input_override)?;
        let progress = Progress::new(graph.clone(), &record);
        let id = ExecutionId::new();
        let mut steps = Vec::new();
        for &i in &upstream {
            let node = graph.node(i);
            if node.primitive == Primitive::Trigger {
                continue;
            }
            let original = &progress.nodes[i];
            if !matches!(original.status, NodeStatus::Succeeded | NodeStatus::Skipped) {
                return Err(Error::Conflict(format!(
                    "node {} upstream of {from} did not succeed in the original run ({}); re-run from it instead",
                    node.id, original.status
                )));
            }
            let mut step: StepRecord = original.clone();
            step.execution = id;
            if let Some(output) = request.input_override.get(&node.id) {
                step.output = Some(output.clone());
            }
            steps.push(step);
        }
        let trigger = trigger_override
            .cloned()
            .unwrap_or_else(|| record.trigger.clone());
        // Admitted like a start: the trigger data and every override are the
        // caller's input to the new execution.
        let overridden: usize = request
            .input_override
            .iter()
            .filter(|(key, _)| {
                graph
                    .index
                    .get(key.as_str())
                    .is_some_and(|&i| graph.node(i).primitive != Primitive::Trigger)
            })
            .map(|(_, value)| value.to_string().len())
            .sum();
        let payload_bytes = trigger.to_string().len() + overridden;
        let new = NewExecution {
            id,
            tenant: record.tenant,
            workflow: record.workflow,
            version: record.version,
            trigger_node: record.trigger_node.clone(),
            trigger,
            idempotency_key: None,
            fingerprint: None,
            deadline_ms: graph
                .document
                .settings
                .timeout
                .map(|t| now_ms() + t.0.as_millis() as i64),
            origin: Some(Origin {
                execution: record.id,
                node: request.from_node.clone(),
            }),
            steps,
            traceparent: crate::trace::traceparent_of(&tracing::Span::current()),
        };
        self.create_admitted(&new, payload_bytes).await?;
        crate::metrics::execution_started(record.tenant, record.workflow);
        let command = Command::start(record.tenant, record.workflow, id);
        if let Err(e) = self.shared.bus.publish_command(&command, None).await {
            tracing::warn!(execution = %id, error = %e, "start command not published; the claim sweep will start it");
        }
        Ok(id)
    }
}

/// The new trigger data a re-run's overrides give: under `trigger`, or
/// under the id of the trigger node that started the execution (its output
/// is the trigger data, read by either name). Another trigger did not
/// start it, so it has no output to replace.
fn trigger_override<'a>(
    graph: &WorkflowGraph,
    record: &ExecutionRecord,
    overrides: &'a Map<String, Value>,
) -> Result<Option<&'a Value>, Error> {
    let started = record.trigger_node.as_str();
    for (key, _) in overrides {
        let other_trigger = key != started
            && graph
                .index
                .get(key.as_str())
                .is_some_and(|&i| graph.node(i).primitive == Primitive::Trigger);
        if other_trigger {
            return Err(Error::BadRequest(format!(
                "input_override.{key}: {key} is a trigger that did not start this execution \
                 ({started} did); to re-run with other trigger data, override \"trigger\""
            )));
        }
    }
    match (overrides.get(TRIGGER), overrides.get(started)) {
        (Some(_), Some(_)) => Err(Error::BadRequest(format!(
            "input_override.{started}: the trigger data, which input_override.trigger \
             also gives; give one of them"
        ))),
        (by_name, by_id) => Ok(by_name.or(by_id)),
    }
}
