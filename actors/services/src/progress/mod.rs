//! Where an execution stands, node by node, and what may run next. Pure
//! logic over the compiled graph and the journal; the actor does the I/O.

use std::sync::Arc;

use flowmesh_model::graph::WorkflowGraph;
use flowmesh_model::lifecycle::NodeTransition;
use flowmesh_model::names::TRIGGER;
use flowmesh_model::{IllegalTransition, Node, NodeStatus, OnError, Primitive};
use flowmesh_store::{ExecutionRecord, StepRecord};
use serde_json::{Map, Value};

/// What to do with a node whose predecessors are all settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Run(usize),
    Skip(usize),
}

pub struct Progress {
    pub graph: Arc<WorkflowGraph>,
    /// One journal entry per node of the graph, in graph order.
    pub nodes: Vec<StepRecord>,
}

impl Progress {
    /// Rebuilds progress from the journal. The trigger that fired counts as
    /// succeeded with the trigger data; other triggers are skipped.
    pub fn new(graph: Arc<WorkflowGraph>, record: &ExecutionRecord) -> Self {
        let mut nodes: Vec<StepRecord> = (0..graph.len())
            .map(|i| {
                let node = graph.node(i);
                let mut step = StepRecord {
                    execution: record.id,
                    node: node.id.clone(),
                    status: NodeStatus::Pending,
                    attempts: 0,
                    input: None,
                    output: None,
                    branch: None,
                    error: None,
                    started_at: None,
                    finished_at: None,
                    wake_at: None,
                    logs: Vec::new(),
                };
                if node.primitive == Primitive::Trigger {
                    if node.id == record.trigger_node {
                        step.status = NodeStatus::Succeeded;
                        step.output = Some(record.trigger.clone());
                    } else {
                        step.status = NodeStatus::Skipped;
                    }
                }
                step
            })
            .collect();
        for step in &record.steps {
            match graph.index.get(&step.node) {
                Some(&i) if graph.node(i).primitive != Primitive::Trigger => {
                    nodes[i] = step.clone()
                }
                _ => {}
            }
        }
        Self { graph, nodes }
    }

    pub fn apply(&mut self, i: usize, t: NodeTransition) -> Result<NodeStatus, IllegalTransition> {
        let next = self.nodes[i].status.apply(t)?;
        self.nodes[i].status = next;
        Ok(next)
    }

    /// A succeeded node takes its edges without `when` and those naming its
    /// branch; a failed one only those naming its branch, which only a
    /// failure routed by `on_error` has (`error`).
    fn edge_taken(&self, from: usize, when: Option<&str>) -> bool {
        let source = &self.nodes[from];
        let names_branch = || when.is_some() && source.branch.as_deref() == when;
        match source.status {
            NodeStatus::Succeeded => when.is_none() || names_branch(),
            NodeStatus::Failed => names_branch(),
            _ => false,
        }
    }

    /// Whether node `i` failed and `on_error: route` took its failure.
    pub fn is_routed_failure(&self, i: usize) -> bool {
        let state = &self.nodes[i];
        state.status == NodeStatus::Failed && state.branch.as_deref() == Some(OnError::ERROR)
    }

    /// Pending flow nodes whose predecessors are all settled: run those with
    /// at least one taken incoming edge, skip the others (skipping propagates
    /// because a skipped node takes no edge).
    pub fn decide(&self) -> Vec<Decision> {
        let mut out = Vec::new();
        for i in self.graph.flow_nodes() {
            if self.nodes[i].status != NodeStatus::Pending {
                continue;
            }
            let incoming = &self.graph.incoming[i];
            if !incoming
                .iter()
                .all(|l| self.nodes[l.node].status.is_terminal())
            {
                continue;
            }
            if incoming
                .iter()
                .any(|l| self.edge_taken(l.node, l.when.as_deref()))
            {
                out.push(Decision::Run(i));
            } else {
                out.push(Decision::Skip(i));
            }
        }
        out
    }

    /// Ids of the predecessors whose edge into `i` was taken, in edge order.
    pub fn inputs(&self, i: usize) -> Vec<String> {
        self.graph.incoming[i]
            .iter()
            .filter(|l| self.edge_taken(l.node, l.when.as_deref()))
            .map(|l| self.graph.node(l.node).id.clone())
            .collect()
    }

    /// What expressions see: the trigger data, every succeeded node's
    /// output, the error object of every routed failure, and null for
    /// every skipped node (so that a node after a branch may name the one
    /// not taken: its value is null, not undefined).
    pub fn scope(&self) -> Map<String, Value> {
        let mut scope = Map::new();
        for (i, state) in self.nodes.iter().enumerate() {
            let node = self.graph.node(i);
            let output = match (state.status, &state.output) {
                (NodeStatus::Succeeded, Some(output)) => output,
                (NodeStatus::Failed, Some(output)) if self.is_routed_failure(i) => output,
                (NodeStatus::Skipped, _) => &Value::Null,
                _ => continue,
            };
            if node.primitive == Primitive::Trigger && state.status == NodeStatus::Succeeded {
                scope.insert(TRIGGER.to_owned(), output.clone());
            }
            scope.insert(node.id.clone(), output.clone());
        }
        scope
    }

    pub fn is_complete(&self) -> bool {
        self.graph
            .flow_nodes()
            .all(|i| self.nodes[i].status.is_terminal())
    }

    /// The first failure that fails the execution: a routed one does not.
    pub fn first_failure(&self) -> Option<(String, String)> {
        self.graph
            .flow_nodes()
            .find(|&i| self.nodes[i].status == NodeStatus::Failed && !self.is_routed_failure(i))
            .map(|i| {
                (
                    self.graph.node(i).id.clone(),
                    self.nodes[i].error.clone().unwrap_or_default(),
                )
            })
    }

    /// The execution's result: the body of the node that answered the
    /// caller (`answers_caller` says which kinds do), else the output of the
    /// one succeeded sink, else an object of sink outputs.
    pub fn result(&self, answers_caller: impl Fn(&Node) -> bool) -> Value {
        let succeeded = |i: usize| self.nodes[i].status == NodeStatus::Succeeded;
        let responder = self
            .graph
            .flow_nodes()
            .find(|&i| succeeded(i) && answers_caller(self.graph.node(i)));
        if let Some(i) = responder {
            return self.nodes[i]
                .output
                .as_ref()
                .and_then(|o| o.get("body").cloned())
                .unwrap_or(Value::Null);
        }
        let sinks: Vec<usize> = self
            .graph
            .flow_nodes()
            .filter(|&i| self.graph.outgoing[i].is_empty() && succeeded(i))
            .collect();
        match sinks.as_slice() {
            [] => Value::Null,
            [one] => self.nodes[*one].output.clone().unwrap_or(Value::Null),
            many => Value::Object(
                many.iter()
                    .map(|&i| {
                        (
                            self.graph.node(i).id.clone(),
                            self.nodes[i].output.clone().unwrap_or(Value::Null),
                        )
                    })
                    .collect(),
            ),
        }
    }
}

#[cfg(test)]
mod machine;

#[cfg(test)]
mod tests {
    use super::*;
    use flowmesh_model::WorkflowDocument;
    use serde_json::json;

    fn graph(doc: Value) -> Arc<WorkflowGraph> {
        Arc::new(WorkflowGraph::new(
            WorkflowDocument::from_value(doc).unwrap(),
        ))
    }

    /// A running execution with this trigger data and journal.
    pub(super) fn record(trigger: Value, steps: Vec<StepRecord>) -> ExecutionRecord {
        ExecutionRecord {
            id: flowmesh_model::ExecutionId::new(),
            tenant: flowmesh_model::TenantId::new(),
            workflow: flowmesh_model::WorkflowId::new(),
            version: 1,
            status: flowmesh_model::ExecutionStatus::Running,
            trigger_node: "t".into(),
            trigger,
            output: None,
            error: None,
            cancel_requested: false,
            deadline_ms: None,
            created_at: 0,
            started_at: None,
            finished_at: None,
            origin: None,
            traceparent: None,
            test: None,
            handles: None,
            steps,
            in_process: None,
            engine_death_at: None,
            last_event_seq: None,
        }
    }

    fn diamond() -> Arc<WorkflowGraph> {
        graph(json!({"name": "d", "nodes": [
            {"id": "t", "type": "trigger", "kind": "manual"},
            {"id": "c", "type": "condition", "kind": "if_else", "config": {"logic": "true"}},
            {"id": "a", "type": "data", "kind": "mapping"},
            {"id": "b", "type": "data", "kind": "mapping"},
            {"id": "after_b", "type": "data", "kind": "mapping"},
            {"id": "m", "type": "data", "kind": "merge"}
        ], "edges": [
            {"from": "t", "to": "c"},
            {"from": "c", "to": "a", "when": "true"},
            {"from": "c", "to": "b", "when": "false"},
            {"from": "b", "to": "after_b"},
            {"from": "a", "to": "m"},
            {"from": "after_b", "to": "m"}
        ]}))
    }

    fn succeed(p: &mut Progress, i: usize, output: Value, branch: Option<&str>) {
        p.apply(i, NodeTransition::Start).unwrap();
        p.apply(i, NodeTransition::Succeed).unwrap();
        p.nodes[i].output = Some(output);
        p.nodes[i].branch = branch.map(str::to_owned);
    }

    #[test]
    fn skipping_propagates_and_merge_waits_only_for_taken_inputs() {
        let mut p = Progress::new(diamond(), &record(json!({"body": {}}), vec![]));
        assert_eq!(p.decide(), vec![Decision::Run(1)]);
        succeed(&mut p, 1, json!({"result": true}), Some("true"));
        assert_eq!(p.decide(), vec![Decision::Run(2), Decision::Skip(3)]);
        p.apply(3, NodeTransition::Skip).unwrap();
        // after_b is skipped in turn; m still waits for a.
        assert_eq!(p.decide(), vec![Decision::Run(2), Decision::Skip(4)]);
        p.apply(4, NodeTransition::Skip).unwrap();
        succeed(&mut p, 2, json!({"x": 1}), None);
        assert_eq!(p.decide(), vec![Decision::Run(5)]);
        assert_eq!(p.inputs(5), vec!["a".to_owned()]);
        assert_eq!(p.scope()["b"], Value::Null, "skipped: null");
        assert_eq!(p.scope()["after_b"], Value::Null);
        succeed(&mut p, 5, json!({"a": {"x": 1}}), None);
        assert!(p.is_complete());
        assert_eq!(p.result(|_| false), json!({"a": {"x": 1}}));
    }

    #[test]
    fn journal_restores_completed_nodes() {
        let g = diamond();
        let step = StepRecord {
            execution: flowmesh_model::ExecutionId::new(),
            node: "c".into(),
            status: NodeStatus::Succeeded,
            attempts: 1,
            input: None,
            output: Some(json!({"result": false})),
            branch: Some("false".into()),
            error: None,
            started_at: Some(1),
            finished_at: Some(2),
            wake_at: None,
            logs: Vec::new(),
        };
        let p = Progress::new(g, &record(json!({"body": {"n": 1}}), vec![step]));
        assert_eq!(p.decide(), vec![Decision::Skip(2), Decision::Run(3)]);
        assert_eq!(p.scope()["trigger"], json!({"body": {"n": 1}}));
        assert_eq!(p.scope()["c"], json!({"result": false}));
        assert!(!p.scope().contains_key("b"), "pending: not in scope");
    }

    /// `t → a (on_error: route)`, `a → ok` plain, `a → handled` on error,
    /// `a → also_ok` on success, then `after` reading both sides.
    fn routed() -> Arc<WorkflowGraph> {
        graph(json!({"name": "r", "nodes": [
            {"id": "t", "type": "trigger", "kind": "manual"},
            {"id": "a", "type": "action", "kind": "http_request", "on_error": "route"},
            {"id": "ok", "type": "data", "kind": "mapping"},
            {"id": "handled", "type": "data", "kind": "mapping"},
            {"id": "also_ok", "type": "data", "kind": "mapping"},
            {"id": "after", "type": "data", "kind": "merge"}
        ], "edges": [
            {"from": "t", "to": "a"},
            {"from": "a", "to": "ok"},
            {"from": "a", "to": "handled", "when": "error"},
            {"from": "a", "to": "also_ok", "when": "success"},
            {"from": "ok", "to": "after"},
            {"from": "handled", "to": "after"}
        ]}))
    }

    #[test]
    fn a_routed_failure_takes_only_its_error_edges_and_does_not_fail_the_run() {
        let mut p = Progress::new(routed(), &record(json!({}), vec![]));
        p.apply(1, NodeTransition::Start).unwrap();
        p.apply(1, NodeTransition::Fail).unwrap();
        let error = json!({"error": {"code": "transient", "message": "503", "retryable": true, "attempts": 3}});
        p.nodes[1].output = Some(error.clone());
        p.nodes[1].branch = Some(OnError::ERROR.into());
        assert!(p.is_routed_failure(1));
        assert_eq!(
            p.decide(),
            vec![Decision::Skip(2), Decision::Run(3), Decision::Skip(4)]
        );
        assert_eq!(p.inputs(3), vec!["a".to_owned()]);
        assert_eq!(p.scope()["a"], error, "the error branch reads the error");
        p.apply(2, NodeTransition::Skip).unwrap();
        p.apply(4, NodeTransition::Skip).unwrap();
        succeed(&mut p, 3, json!({"handled": true}), None);
        assert_eq!(p.decide(), vec![Decision::Run(5)]);
        succeed(&mut p, 5, json!({}), None);
        assert!(p.is_complete());
        assert_eq!(p.first_failure(), None);
    }

    #[test]
    fn a_routing_node_that_succeeds_takes_its_plain_and_success_edges() {
        let mut p = Progress::new(routed(), &record(json!({}), vec![]));
        succeed(&mut p, 1, json!({"status": 200}), Some(OnError::SUCCESS));
        assert_eq!(
            p.decide(),
            vec![Decision::Run(2), Decision::Skip(3), Decision::Run(4)]
        );
    }

    #[test]
    fn an_unrouted_failure_takes_no_edge_and_fails_the_run() {
        let mut p = Progress::new(routed(), &record(json!({}), vec![]));
        p.apply(1, NodeTransition::Start).unwrap();
        p.apply(1, NodeTransition::Fail).unwrap();
        p.nodes[1].error = Some("permanent: 404".into());
        assert!(!p.is_routed_failure(1));
        assert!(!p.scope().contains_key("a"));
        assert_eq!(
            p.decide(),
            vec![Decision::Skip(2), Decision::Skip(3), Decision::Skip(4)]
        );
        assert_eq!(
            p.first_failure(),
            Some(("a".to_owned(), "permanent: 404".to_owned()))
        );
    }

    #[test]
    fn illegal_transitions_are_refused() {
        let mut p = Progress::new(diamond(), &record(json!({}), vec![]));
        assert!(p.apply(1, NodeTransition::Succeed).is_err());
        assert_eq!(p.nodes[1].status, NodeStatus::Pending);
    }
}
