//! Where an execution stands, node by node, and what may run next. Pure
//! logic over the compiled graph and the journal; the actor does the I/O.
//!
//! The entries are the graph's nodes, in graph order, then the instances
//! of loop bodies: one per body node and iteration, added as iterations
//! start (see `loops`).

mod loops;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use flowmesh_model::graph::{Link, WorkflowGraph};
use flowmesh_model::lifecycle::NodeTransition;
use flowmesh_model::names::TRIGGER;
use flowmesh_model::{ExecutionId, IllegalTransition, Node, NodeStatus, OnError, Primitive};
use flowmesh_store::{ExecutionRecord, StepRecord};
use serde_json::{Map, Value};

use loops::Loop;
pub use loops::{Frame, MAX_STEPS};

/// What to do with a node whose predecessors are all settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Run(usize),
    Skip(usize),
    /// Every iteration of loop `i` has settled: build its output.
    Finish(usize),
}

pub struct Progress {
    pub graph: Arc<WorkflowGraph>,
    /// One journal entry per entry: the graph's nodes, then instances.
    pub nodes: Vec<StepRecord>,
    /// Where each entry is defined, beside `nodes`.
    slots: Vec<Slot>,
    /// Entries by step key (a node's id, `each[3].charge` for an instance).
    pub index: HashMap<String, usize>,
    /// Loops whose items are known, by entry.
    loops: BTreeMap<usize, Loop>,
    /// Journaled steps of instances whose iteration is not restored yet.
    journal: HashMap<String, StepRecord>,
}

/// An entry's node: the graph it is defined in (the workflow's or a
/// loop's body), its place there, and the iteration it runs in.
#[derive(Clone)]
struct Slot {
    graph: Arc<WorkflowGraph>,
    at: usize,
    frame: Option<Arc<Frame>>,
}

impl Progress {
    /// Rebuilds progress from the journal. The trigger that fired counts as
    /// succeeded with the trigger data; other triggers are skipped. Loops
    /// that were running get back the iterations that had started.
    pub fn new(graph: Arc<WorkflowGraph>, record: &ExecutionRecord) -> Self {
        let nodes: Vec<StepRecord> = (0..graph.len())
            .map(|i| {
                let node = graph.node(i);
                let mut step = pending(record.id, node.id.clone());
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
        let mut progress = Self::of_steps(graph, nodes);
        for step in &record.steps {
            match progress.index.get(&step.node) {
                Some(&i) if progress.node(i).primitive != Primitive::Trigger => {
                    progress.nodes[i] = step.clone()
                }
                Some(_) => {}
                None => {
                    progress.journal.insert(step.node.clone(), step.clone());
                }
            }
        }
        progress.restore_loops();
        progress
    }

    /// Progress over the graph's nodes as these steps say, in graph order.
    pub(crate) fn of_steps(graph: Arc<WorkflowGraph>, nodes: Vec<StepRecord>) -> Self {
        let slots = (0..graph.len())
            .map(|at| Slot {
                graph: graph.clone(),
                at,
                frame: None,
            })
            .collect();
        let index = (0..graph.len())
            .map(|i| (graph.node(i).id.clone(), i))
            .collect();
        Self {
            graph,
            nodes,
            slots,
            index,
            loops: BTreeMap::new(),
            journal: HashMap::new(),
        }
    }

    /// The node entry `i` runs.
    pub fn node(&self, i: usize) -> &Node {
        let slot = &self.slots[i];
        slot.graph.node(slot.at)
    }

    /// Every entry taking part in the execution (connections are only
    /// referenced), instances included.
    pub fn entries(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.nodes.len()).filter(|&i| self.node(i).primitive != Primitive::Connection)
    }

    /// The entry's predecessors: along the graph's edges, or its body's
    /// within the same iteration.
    fn incoming(&self, i: usize) -> Vec<Link> {
        let slot = &self.slots[i];
        let links = slot.graph.incoming[slot.at].iter().cloned();
        match &slot.frame {
            None => links.collect(),
            Some(frame) => links
                .map(|l| Link {
                    node: frame.first + l.node,
                    when: l.when,
                })
                .collect(),
        }
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
    /// A body's first nodes run when their iteration starts. Loops whose
    /// iterations have all settled are finished (see [`Progress::admit`]
    /// for how iterations start).
    pub fn decide(&self) -> Vec<Decision> {
        let mut out = Vec::new();
        for i in self.entries() {
            if self.nodes[i].status != NodeStatus::Pending {
                continue;
            }
            let incoming = self.incoming(i);
            if !incoming
                .iter()
                .all(|l| self.nodes[l.node].status.is_terminal())
            {
                continue;
            }
            let starts_iteration = incoming.is_empty() && self.slots[i].frame.is_some();
            if starts_iteration
                || incoming
                    .iter()
                    .any(|l| self.edge_taken(l.node, l.when.as_deref()))
            {
                out.push(Decision::Run(i));
            } else {
                out.push(Decision::Skip(i));
            }
        }
        out.extend(self.finished_loops().map(Decision::Finish));
        out
    }

    /// Ids of the predecessors whose edge into `i` was taken, in edge order.
    pub fn inputs(&self, i: usize) -> Vec<String> {
        self.input_entries(i)
            .into_iter()
            .map(|j| self.node(j).id.clone())
            .collect()
    }

    /// The entries whose edge into `i` was taken, in edge order.
    pub fn input_entries(&self, i: usize) -> Vec<usize> {
        self.incoming(i)
            .iter()
            .filter(|l| self.edge_taken(l.node, l.when.as_deref()))
            .map(|l| l.node)
            .collect()
    }

    /// What expressions see: the trigger data, every succeeded node's
    /// output, the error object of every routed failure, and null for
    /// every skipped node (so that a node after a branch may name the one
    /// not taken: its value is null, not undefined).
    pub fn scope(&self) -> Map<String, Value> {
        let mut scope = Map::new();
        self.add_outputs(0..self.graph.len(), &mut scope);
        scope
    }

    /// Adds the outputs of `entries` to a scope, by node id.
    fn add_outputs(&self, entries: std::ops::Range<usize>, scope: &mut Map<String, Value>) {
        for i in entries {
            let state = &self.nodes[i];
            let node = self.node(i);
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

/// A pending step of this execution.
fn pending(execution: ExecutionId, node: String) -> StepRecord {
    StepRecord {
        execution,
        node,
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
            called_by: None,
            holds_slot: false,
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
