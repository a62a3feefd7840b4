//! Looking into executions: statistics per workflow and an execution's logs.

use flowmesh_api::NodeLog;
use std::collections::{BTreeMap, HashMap};

use flowmesh_model::scope::Scope;
use flowmesh_model::{ExecutionId, NodeStatus, Primitive, TenantId, WorkflowId};
use flowmesh_store::LastRun;
use serde::Serialize;
use serde_json::Value;

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

/// Whether a test run's mock was a node's output.
pub fn mocked(record: &flowmesh_store::ExecutionRecord, step: &flowmesh_store::StepRecord) -> bool {
    step.status == NodeStatus::Succeeded
        && record
            .test
            .as_ref()
            .is_some_and(|test| crate::test_runs::mock_of(&test.mocks, &step.node).is_some())
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

/// Which workflows a list shows.
#[derive(Clone, Debug, Default)]
pub struct WorkflowFilter {
    /// Only those whose name holds this, whatever the case.
    pub q: Option<String>,
    pub state: Option<WorkflowState>,
    /// Only those with a failed or timed-out execution.
    pub failing: bool,
    /// With each one's statistics.
    pub stats: bool,
}

/// Whether a workflow has a published version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowState {
    Published,
    /// Never published, or taken out of service.
    Draft,
}

/// A workflow of a list, with its statistics when asked.
#[derive(Clone, Debug)]
pub struct ListedWorkflow {
    pub summary: flowmesh_store::WorkflowSummary,
    pub stats: Option<WorkflowStats>,
}

fn summarize(stats: flowmesh_store::WorkflowStats) -> WorkflowStats {
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
    WorkflowStats {
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
        Ok(summarize(stats))
    }

    /// The tenant's workflows that pass the filter, newest first, each
    /// with its statistics when asked (three statements for them all).
    pub async fn find_workflows(
        &self,
        tenant: TenantId,
        filter: &WorkflowFilter,
    ) -> Result<Vec<ListedWorkflow>, Error> {
        let mut stats = if filter.stats || filter.failing {
            self.shared
                .store
                .tenant_workflow_stats(tenant, STATS_SAMPLE)
                .await?
        } else {
            HashMap::new()
        };
        let needle = filter.q.as_deref().map(str::to_lowercase);
        let listed = self
            .list_workflows(tenant)
            .await?
            .into_iter()
            .filter(|w| {
                needle
                    .as_deref()
                    .is_none_or(|n| w.name.to_lowercase().contains(n))
            })
            .filter(|w| match filter.state {
                None => true,
                Some(WorkflowState::Published) => w.published_version.is_some(),
                Some(WorkflowState::Draft) => w.published_version.is_none(),
            })
            .filter_map(|summary| {
                let stats = summarize(stats.remove(&summary.id).unwrap_or_default());
                let failed = ["failed", "timed_out"]
                    .iter()
                    .any(|k| stats.by_status.get(*k).is_some_and(|n| *n > 0));
                (!filter.failing || failed).then(|| ListedWorkflow {
                    summary,
                    stats: filter.stats.then_some(stats),
                })
            })
            .collect();
        Ok(listed)
    }

    /// Each node's attempts, input, output, error and printed lines, in the
    /// order the nodes started; sensitive values redacted. With a scope,
    /// only the steps within it.
    pub async fn execution_logs(
        &self,
        tenant: TenantId,
        id: ExecutionId,
        scope: Option<&Scope>,
    ) -> Result<Vec<NodeLog>, Error> {
        let record = self.get_execution(tenant, id).await?;
        if let Some(scope) = scope {
            self.check_query_scope(&record, scope).await?;
        }
        let graph = self.graph(record.workflow, record.version).await?;
        let progress = Progress::new(graph, &record);
        let mut order: Vec<usize> = progress
            .entries()
            .filter(|&i| scope.is_none_or(|s| s.holds(&progress.nodes[i].node)))
            .collect();
        // The trigger first (its output is what started the run), then the
        // nodes in the order they started.
        order.sort_by_key(|&i| {
            let step = &progress.nodes[i];
            let trigger = progress.node(i).primitive == Primitive::Trigger;
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
                    .input_entries(i)
                    .into_iter()
                    .filter_map(|j| {
                        let output = progress.nodes[j].output.as_ref()?;
                        Some((progress.node(j).id.clone(), redact(output)))
                    })
                    .collect();
                NodeLog {
                    node: step.node.clone(),
                    kind: progress.node(i).kind.clone(),
                    status: step.status.as_str().to_owned(),
                    attempts: step.attempts,
                    started_at: step.started_at,
                    finished_at: step.finished_at,
                    input,
                    output: step.output.as_ref().map(redact),
                    error: step.error.clone(),
                    lines: step.logs.clone(),
                    mocked: mocked(&record, step),
                }
            })
            .collect())
    }
}
