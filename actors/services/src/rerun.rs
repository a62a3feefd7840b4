//! Re-running an execution from one of its nodes: on its own version, or
//! on another one (a fix published since), reusing what still applies.

use std::collections::{BTreeSet, HashMap};

use flowmesh_api::{RerunRequest, RerunVersion};
use flowmesh_model::graph::WorkflowGraph;
use flowmesh_model::names::TRIGGER;
use flowmesh_model::validate::ValidationError;
use flowmesh_model::{Command, ExecutionId, NodeStatus, Primitive};
use flowmesh_store::{ExecutionRecord, NewExecution, Origin, StepRecord, TestRun, now_ms};
use serde_json::{Map, Value};

use super::EngineHandle;
use crate::error::Error;
use crate::progress::Progress;

impl EngineHandle {
    /// A new execution that reuses the recorded outputs of the nodes
    /// upstream of `from_node` and runs from there. On the original's
    /// version every upstream node is reused; on another version only those
    /// that [`reusable`] finds.
    pub async fn rerun(&self, request: RerunRequest) -> Result<ExecutionId, Error> {
        let record = self
            .get_execution(request.tenant, request.execution)
            .await?;
        if !record.status.is_terminal() {
            return Err(Error::Conflict(
                "the execution is still running; re-run it once it has ended".into(),
            ));
        }
        let version = match request.version {
            None => record.version,
            Some(RerunVersion::Number(n)) => n,
            Some(RerunVersion::Published) => self
                .get_workflow(request.tenant, record.workflow)
                .await?
                .summary
                .published_version
                .ok_or_else(|| {
                    Error::Conflict(
                        "the workflow has no published version; name a version instead".into(),
                    )
                })?,
        };
        let original = self.graph(record.workflow, record.version).await?;
        let same_version = version == record.version;
        let graph = if same_version {
            original.clone()
        } else {
            self.version_graph(record.workflow, version).await?
        };
        let target =
            crate::rerun_scope::target("from_node", &request.from_node, request.scope.as_deref())?;
        let levels = match &target {
            Some(target) if same_version => self.rerun_levels(&record, target).await?,
            Some(_) => {
                return Err(Error::Field(ValidationError::new(
                    "version",
                    "not_rerunnable",
                    "an iteration is re-run on the original's version: its other iterations' \
                     steps are taken over as they are",
                )));
            }
            None => Vec::new(),
        };
        // Within a loop, the workflow runs again from its outermost loop.
        let from = levels
            .first()
            .map_or(request.from_node.as_str(), |l| l.node.id.as_str());
        let start = match graph.index.get(from) {
            Some(&i) if graph.node(i).primitive != Primitive::Trigger => i,
            _ if !same_version => {
                return Err(Error::Field(ValidationError::new(
                    "from_node",
                    "unknown_node",
                    format!("version {version} has no action, condition or data node {from:?}"),
                )));
            }
            _ => {
                return Err(Error::BadRequest(format!(
                    "from_node: {from:?} is not an action, condition or data node of this workflow"
                )));
            }
        };
        let started_by = record.trigger_node.as_str();
        let trigger_kept = graph
            .index
            .get(started_by)
            .is_some_and(|&i| graph.node(i).primitive == Primitive::Trigger);
        if !trigger_kept {
            return Err(Error::Field(ValidationError::new(
                "version",
                "unknown_node",
                format!(
                    "version {version} has no trigger {started_by:?}, which started the execution"
                ),
            )));
        }
        let upstream = upstream_of(&graph, start);
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
        let progress = Progress::new(original.clone(), &record);
        let reused = reusable(&progress, &graph, &upstream);
        let id = ExecutionId::new();
        let mut steps = Vec::new();
        for &i in &upstream {
            let node = graph.node(i);
            if node.primitive == Primitive::Trigger {
                continue;
            }
            let Some(recorded) = reused.get(&i) else {
                if same_version {
                    let status = original
                        .index
                        .get(&node.id)
                        .map_or(NodeStatus::Pending, |&j| progress.nodes[j].status);
                    return Err(Error::Conflict(format!(
                        "node {} upstream of {from} did not succeed in the original run ({status}); re-run from it instead",
                        node.id
                    )));
                }
                if request.input_override.contains_key(&node.id) {
                    return Err(Error::Field(ValidationError::new(
                        format!("input_override.{}", node.id),
                        "not_reused",
                        format!(
                            "node {} runs again on version {version} (it is new, its kind changed, \
                             or what it reads runs again): it has no recorded output to replace",
                            node.id
                        ),
                    )));
                }
                continue;
            };
            let mut step: StepRecord = (*recorded).clone();
            step.execution = id;
            if let Some(output) = request.input_override.get(&node.id) {
                step.output = Some(output.clone());
            }
            steps.push(step);
        }
        if let Some(target) = &target {
            let within = crate::rerun_scope::iteration_steps(&record, &levels, target)?;
            steps.extend(within.into_iter().map(|step| StepRecord {
                execution: id,
                ..step
            }));
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
        // A test run's re-run is a test run with its mocks, less those of
        // nodes the version it runs does not have or cannot mock (an id
        // that is a condition there would be given no branch).
        let test = record.test.as_ref().map(|test| TestRun {
            mocks: test
                .mocks
                .iter()
                .filter(|(node, _)| crate::test_runs::mockable(&graph, node))
                .map(|(node, mock)| (node.clone(), mock.clone()))
                .collect(),
        });
        let new = NewExecution {
            id,
            tenant: record.tenant,
            workflow: record.workflow,
            version,
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
                node: target.map_or(request.from_node.clone(), |t| t.text()),
            }),
            steps,
            traceparent: crate::trace::traceparent_of(&tracing::Span::current()),
            test,
            // A handler's re-run is a handler still: it starts none.
            handles: record.handles,
            called_by: None,
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

/// Every node upstream of `start`, transitively.
pub(crate) fn upstream_of(graph: &WorkflowGraph, start: usize) -> BTreeSet<usize> {
    let mut upstream = BTreeSet::new();
    let mut todo = vec![start];
    while let Some(i) = todo.pop() {
        for link in &graph.incoming[i] {
            if upstream.insert(link.node) {
                todo.push(link.node);
            }
        }
    }
    upstream
}

/// The recorded steps of the original run that the re-run's `graph` takes
/// over, by node index in `graph`: a node of `upstream` (not a trigger)
/// whose id and kind the original has, that succeeded or was skipped there,
/// and all of whose own upstream nodes are triggers or reused too (a node
/// whose input runs again would otherwise keep an output made from the
/// old input).
pub(crate) fn reusable<'a>(
    original: &'a Progress,
    graph: &WorkflowGraph,
    upstream: &BTreeSet<usize>,
) -> HashMap<usize, &'a StepRecord> {
    let mut decided: HashMap<usize, Option<&'a StepRecord>> = HashMap::new();
    // Upstream nodes in an order where each comes after what it reads.
    let mut order: Vec<usize> = Vec::new();
    let mut visiting: Vec<(usize, bool)> = upstream.iter().map(|&i| (i, false)).collect();
    let mut placed = BTreeSet::new();
    while let Some((i, expanded)) = visiting.pop() {
        if expanded {
            if placed.insert(i) {
                order.push(i);
            }
            continue;
        }
        if placed.contains(&i) {
            continue;
        }
        visiting.push((i, true));
        for link in &graph.incoming[i] {
            if !placed.contains(&link.node) {
                visiting.push((link.node, false));
            }
        }
    }
    for i in order {
        let node = graph.node(i);
        if node.primitive == Primitive::Trigger {
            continue;
        }
        let recorded = original.graph.index.get(&node.id).and_then(|&j| {
            let was = original.graph.node(j);
            let step = &original.nodes[j];
            let ended_well = matches!(step.status, NodeStatus::Succeeded | NodeStatus::Skipped);
            (was.kind == node.kind && was.primitive == node.primitive && ended_well).then_some(step)
        });
        let inputs_reused = graph.incoming[i].iter().all(|link| {
            graph.node(link.node).primitive == Primitive::Trigger
                || decided.get(&link.node).is_some_and(Option::is_some)
        });
        decided.insert(i, recorded.filter(|_| inputs_reused));
    }
    decided
        .into_iter()
        .filter_map(|(i, step)| Some((i, step?)))
        .collect()
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use flowmesh_model::WorkflowDocument;
    use serde_json::json;

    use super::*;

    /// `start → a → b → c`, with the kinds given, and more nodes before `c`.
    fn graph(kinds: [&str; 3], between: &[&str]) -> WorkflowGraph {
        let node = |id: &str, kind: &str| {
            let primitive = if kind == "mapping" { "data" } else { "action" };
            json!({"id": id, "type": primitive, "kind": kind, "config": {}})
        };
        let mut nodes = vec![
            json!({"id": "start", "type": "trigger", "kind": "manual"}),
            node("a", kinds[0]),
            node("b", kinds[1]),
            node("c", kinds[2]),
        ];
        let mut chain = vec!["start", "a", "b"];
        for id in between {
            nodes.push(node(id, "mapping"));
            chain.push(id);
        }
        chain.push("c");
        let edges: Vec<Value> = chain
            .windows(2)
            .map(|w| json!({"from": w[0], "to": w[1]}))
            .collect();
        let document =
            WorkflowDocument::from_value(json!({"name": "g", "nodes": nodes, "edges": edges}))
                .unwrap();
        WorkflowGraph::new(document)
    }

    /// The original run: `a` and `b` succeeded, `c` failed.
    fn original() -> Progress {
        let graph = Arc::new(graph(["http_request", "mapping", "http_request"], &[]));
        let nodes = (0..graph.len())
            .map(|i| {
                let id = graph.node(i).id.clone();
                StepRecord {
                    execution: ExecutionId::new(),
                    status: if id == "c" {
                        NodeStatus::Failed
                    } else {
                        NodeStatus::Succeeded
                    },
                    output: Some(json!({"was": id})),
                    node: id,
                    attempts: 1,
                    input: None,
                    branch: None,
                    error: None,
                    started_at: None,
                    finished_at: None,
                    wake_at: None,
                    logs: Vec::new(),
                }
            })
            .collect();
        Progress::of_steps(graph, nodes)
    }

    fn reused_ids(new: &WorkflowGraph) -> BTreeSet<String> {
        let original = original();
        let upstream = upstream_of(new, new.index["c"]);
        reusable(&original, new, &upstream)
            .into_keys()
            .map(|i| new.node(i).id.clone())
            .collect()
    }

    #[test]
    fn same_ids_and_kinds_are_reused() {
        let same = graph(["http_request", "mapping", "http_request"], &[]);
        assert_eq!(reused_ids(&same), BTreeSet::from(["a".into(), "b".into()]));
    }

    #[test]
    fn a_changed_kind_runs_again_and_so_does_what_reads_it() {
        let changed = graph(["mapping", "mapping", "http_request"], &[]);
        assert!(reused_ids(&changed).is_empty());
    }

    #[test]
    fn a_new_node_runs_and_what_came_before_it_is_reused() {
        let added = graph(["http_request", "mapping", "http_request"], &["d"]);
        assert_eq!(reused_ids(&added), BTreeSet::from(["a".into(), "b".into()]));
    }
}
