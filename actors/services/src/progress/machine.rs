//! A property test of the execution state machine: random graphs (actions
//! failing, continuing or routing on error), and random sequences of
//! decisions, attempt results (duplicated, stale, reordered), retries and
//! crashes that rebuild progress from the journal.
//! It follows the actor's rules for what a delivery may change, and checks
//! that no transition is ever illegal, that the journal never takes back a
//! settled node, and that every run can still be driven to its end.

use std::collections::BTreeMap;
use std::sync::Arc;

use flowmesh_model::graph::WorkflowGraph;
use flowmesh_model::lifecycle::NodeTransition;
use flowmesh_model::{NodeStatus, OnError, WorkflowDocument};
use flowmesh_store::{ExecutionRecord, StepRecord};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::{Decision, Progress};

/// Attempts allowed per node, as a retry policy would say.
const MAX_ATTEMPTS: u32 = 3;

#[derive(Clone, Copy, Debug)]
enum Result_ {
    Ok(bool),
    Transient,
    Permanent,
}

#[derive(Clone, Debug)]
enum Op {
    Decide,
    Deliver(usize),
    Duplicate(usize),
    Wake(usize),
    Crash,
}

/// Node `i` (after the trigger): a condition or an action with what its
/// failure does, and its parents (indexes into the nodes before it; 0 is
/// the trigger) with edge labels.
#[derive(Clone, Debug)]
struct NodeSpec {
    condition: bool,
    on_error: OnError,
    parents: Vec<(usize, u8)>,
}

fn on_error() -> impl Strategy<Value = OnError> {
    prop_oneof![
        Just(OnError::Fail),
        Just(OnError::Continue),
        Just(OnError::Route)
    ]
}

fn graph_strategy() -> impl Strategy<Value = Vec<NodeSpec>> {
    prop::collection::vec(
        (
            any::<bool>(),
            on_error(),
            prop::collection::vec((any::<usize>(), any::<u8>()), 1..3),
        ),
        1..7,
    )
    .prop_map(|raw| {
        raw.into_iter()
            .enumerate()
            .map(|(i, (condition, on_error, parents))| NodeSpec {
                condition,
                // Conditions name their branches on their edges: no route.
                on_error: match (condition, on_error) {
                    (true, OnError::Route) => OnError::Fail,
                    (_, on_error) => on_error,
                },
                // Parents come before the node: the graph is acyclic.
                parents: parents
                    .into_iter()
                    .map(|(p, label)| (p % (i + 1), label))
                    .collect(),
            })
            .collect()
    })
}

fn document(specs: &[NodeSpec]) -> WorkflowDocument {
    let id = |i: usize| {
        if i == 0 {
            "t".to_owned()
        } else {
            format!("n{i}")
        }
    };
    let mut nodes = vec![json!({"id": "t", "type": "trigger", "kind": "manual"})];
    let mut edges = Vec::new();
    for (k, spec) in specs.iter().enumerate() {
        let i = k + 1;
        nodes.push(if spec.condition {
            json!({"id": id(i), "type": "condition", "kind": "if_else", "config": {"logic": "true"}})
        } else {
            json!({"id": id(i), "type": "action", "kind": "http_request", "config": {"url": "http://x"}})
        });
        nodes[i]["on_error"] = json!(spec.on_error.as_str());
        let mut seen = Vec::new();
        for &(p, label) in &spec.parents {
            if seen.contains(&p) {
                continue;
            }
            seen.push(p);
            let mut edge = json!({"from": id(p), "to": id(i)});
            let parent = (p > 0).then(|| &specs[p - 1]);
            if parent.is_some_and(|s| s.condition) {
                edge["when"] = json!((label % 2 == 0).to_string());
            } else if parent.is_some_and(|s| s.on_error == OnError::Route) {
                // Plain (success), error or success.
                match label % 3 {
                    1 => edge["when"] = json!(OnError::ERROR),
                    2 => edge["when"] = json!(OnError::SUCCESS),
                    _ => {}
                }
            }
            edges.push(edge);
        }
    }
    WorkflowDocument::from_value(json!({"name": "g", "nodes": nodes, "edges": edges})).unwrap()
}

fn record(steps: Vec<StepRecord>) -> ExecutionRecord {
    super::tests::record(json!({}), steps)
}

struct Sim {
    graph: Arc<WorkflowGraph>,
    progress: Progress,
    journal: BTreeMap<String, StepRecord>,
    /// Results on their way to the actor: (node, attempt, result).
    inflight: Vec<(usize, u32, Result_)>,
    results: Vec<Result_>,
    next_result: usize,
    failed: bool,
}

impl Sim {
    fn new(specs: &[NodeSpec], results: Vec<Result_>) -> Self {
        let graph = Arc::new(WorkflowGraph::new(document(specs)));
        let progress = Progress::new(graph.clone(), &record(Vec::new()));
        Sim {
            graph,
            progress,
            journal: BTreeMap::new(),
            inflight: Vec::new(),
            results,
            next_result: 0,
            failed: false,
        }
    }

    fn result(&mut self) -> Result_ {
        let r = self.results[self.next_result % self.results.len()];
        self.next_result += 1;
        r
    }

    fn start(&mut self, i: usize) {
        self.progress.apply(i, NodeTransition::Start).unwrap();
        self.progress.nodes[i].attempts += 1;
        let attempt = self.progress.nodes[i].attempts;
        let result = self.result();
        self.inflight.push((i, attempt, result));
    }

    fn apply(&mut self, op: &Op) {
        if self.failed {
            return;
        }
        match *op {
            Op::Decide => {
                for decision in self.progress.decide() {
                    match decision {
                        Decision::Run(i) => {
                            assert_eq!(self.progress.nodes[i].status, NodeStatus::Pending);
                            self.start(i);
                        }
                        Decision::Skip(i) => {
                            self.progress.apply(i, NodeTransition::Skip).unwrap();
                        }
                        Decision::Finish(_) => unreachable!("these graphs hold no loop"),
                    }
                }
            }
            Op::Deliver(k) if !self.inflight.is_empty() => {
                let (i, attempt, result) = self.inflight.remove(k % self.inflight.len());
                self.deliver(i, attempt, result);
            }
            Op::Duplicate(k) if !self.inflight.is_empty() => {
                let again = self.inflight[k % self.inflight.len()];
                self.inflight.push(again);
            }
            Op::Wake(k) => {
                let retrying: Vec<usize> = (0..self.progress.nodes.len())
                    .filter(|&i| self.progress.nodes[i].status == NodeStatus::Retrying)
                    .collect();
                if !retrying.is_empty() {
                    self.start(retrying[k % retrying.len()]);
                }
            }
            Op::Crash => {
                let steps = self.journal.values().cloned().collect();
                self.progress = Progress::new(self.graph.clone(), &record(steps));
                // As the actor's begin: an attempt in flight runs again
                // with its number; results of the old one may still come.
                for i in 0..self.progress.nodes.len() {
                    if self.progress.nodes[i].status == NodeStatus::Running {
                        let attempt = self.progress.nodes[i].attempts;
                        let result = self.result();
                        self.inflight.push((i, attempt, result));
                    }
                }
            }
            Op::Deliver(_) | Op::Duplicate(_) => {}
        }
        self.commit();
    }

    /// The actor's rule: only the result of the running attempt counts.
    fn deliver(&mut self, i: usize, attempt: u32, result: Result_) {
        let node = &self.progress.nodes[i];
        if node.status != NodeStatus::Running || node.attempts != attempt {
            return;
        }
        let on_error = self.graph.node(i).on_error;
        let output = json!({"node": i, "attempt": attempt});
        match result {
            Result_::Ok(branch) => {
                self.progress.apply(i, NodeTransition::Succeed).unwrap();
                self.progress.nodes[i].output = Some(output);
                if self.graph.node(i).kind == "if_else" {
                    self.progress.nodes[i].branch = Some(branch.to_string());
                } else if on_error == OnError::Route {
                    self.progress.nodes[i].branch = Some(OnError::SUCCESS.into());
                }
            }
            Result_::Transient if attempt < MAX_ATTEMPTS => {
                self.progress
                    .apply(i, NodeTransition::ScheduleRetry)
                    .unwrap();
            }
            // Retries spent: the error object stands in for the output.
            Result_::Transient | Result_::Permanent if on_error == OnError::Continue => {
                self.progress.apply(i, NodeTransition::Succeed).unwrap();
                self.progress.nodes[i].output = Some(output);
            }
            Result_::Transient | Result_::Permanent if on_error == OnError::Route => {
                self.progress.apply(i, NodeTransition::Fail).unwrap();
                self.progress.nodes[i].output = Some(output);
                self.progress.nodes[i].branch = Some(OnError::ERROR.into());
                assert!(self.progress.is_routed_failure(i));
            }
            Result_::Transient | Result_::Permanent => {
                self.progress.apply(i, NodeTransition::Fail).unwrap();
                // The execution fails: what has not settled is abandoned.
                for j in self.graph.flow_nodes().collect::<Vec<_>>() {
                    if !self.progress.nodes[j].status.is_terminal() {
                        self.progress.apply(j, NodeTransition::Abort).unwrap();
                    }
                }
                self.failed = true;
            }
        }
    }

    /// Writes every node to the journal, checking that no settled entry
    /// is taken back or changed.
    fn commit(&mut self) {
        for step in &self.progress.nodes {
            if let Some(before) = self.journal.get(&step.node)
                && before.status.is_terminal()
            {
                assert_eq!(before.status, step.status, "{} was settled", step.node);
                assert_eq!(
                    before.output, step.output,
                    "{} changed its output",
                    step.node
                );
            }
            let routed = step.status == NodeStatus::Failed && step.output.is_some();
            if (step.status == NodeStatus::Succeeded || routed) && self.graph.index[&step.node] > 0
            {
                // The journal keeps the result of the attempt it counts.
                let output = step
                    .output
                    .as_ref()
                    .expect("a succeeded node has its output");
                assert_eq!(output["attempt"], json!(step.attempts), "{}", step.node);
            }
            self.journal.insert(step.node.clone(), step.clone());
        }
    }

    /// Drives the run to its end: no stuck state is reachable.
    fn finish(&mut self) {
        for _ in 0..1_000 {
            if self.failed || self.progress.is_complete() {
                return;
            }
            self.apply(&Op::Decide);
            while !self.inflight.is_empty() && !self.failed {
                self.apply(&Op::Deliver(0));
            }
            self.apply(&Op::Wake(0));
        }
        panic!("the run never ended: {:?}", self.progress.nodes);
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Decide),
        4 => any::<usize>().prop_map(Op::Deliver),
        1 => any::<usize>().prop_map(Op::Duplicate),
        1 => any::<usize>().prop_map(Op::Wake),
        1 => Just(Op::Crash),
    ]
}

fn result() -> impl Strategy<Value = Result_> {
    prop_oneof![
        6 => any::<bool>().prop_map(Result_::Ok),
        2 => Just(Result_::Transient),
        1 => Just(Result_::Permanent),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn deliveries_duplicates_reorders_and_crashes_keep_the_invariants(
        specs in graph_strategy(),
        results in prop::collection::vec(result(), 1..20),
        ops in prop::collection::vec(op(), 0..60),
    ) {
        let mut sim = Sim::new(&specs, results);
        for op in &ops {
            sim.apply(op);
        }
        sim.finish();
        if !sim.failed {
            // Failures that on_error continued or routed do not fail the run.
            for i in sim.graph.flow_nodes() {
                let status = sim.progress.nodes[i].status;
                let settled = matches!(status, NodeStatus::Succeeded | NodeStatus::Skipped);
                prop_assert!(settled || sim.progress.is_routed_failure(i), "{status}");
            }
            prop_assert_eq!(sim.progress.first_failure(), None);
        } else {
            let ended_it = |i: usize| {
                sim.progress.nodes[i].status == NodeStatus::Failed
                    && sim.graph.node(i).on_error == OnError::Fail
            };
            prop_assert!(sim.graph.flow_nodes().any(ended_it), "only on_error: fail ends a run");
        }
        // What the journal says is what a reload sees.
        let steps: Vec<StepRecord> = sim.journal.values().cloned().collect();
        let reloaded = Progress::new(sim.graph.clone(), &record(steps));
        let statuses = |p: &Progress| p.nodes.iter().map(|n| n.status).collect::<Vec<_>>();
        prop_assert_eq!(statuses(&reloaded), statuses(&sim.progress));
        let _: Value = reloaded.result(|_| false);
    }
}
