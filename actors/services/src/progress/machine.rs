//! A property test of the execution state machine: random graphs (actions
//! failing, continuing or routing on error, nodes waiting for a signal,
//! `for_each` and `while` loops nested up to two deep), and random
//! sequences of decisions, attempt results (duplicated, stale, reordered),
//! retries, signals and crashes that rebuild progress from the journal.
//! It follows the actor's rules for what a delivery may change, and checks
//! that no transition is ever illegal, that no settled step (a body's
//! included) is taken back or runs again, that no loop has more unsettled
//! iterations than its concurrency, that the execution never holds more
//! steps than its loops were allowed, and that every run can still be
//! driven to its end.

mod loops;

use std::collections::{BTreeMap, BTreeSet, HashMap};
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
/// The kind standing for every node that waits for a signal (a call's
/// child ending, a resume).
const WAITS: &str = "call_workflow";

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
    /// A signal for a waiting kind's step: its child succeeded or not.
    Signal(usize, bool),
    Crash,
}

#[derive(Clone, Debug)]
enum Kind {
    Condition,
    Action,
    Wait,
    ForEach {
        concurrency: u32,
        continue_items: bool,
        items: usize,
        body: Vec<NodeSpec>,
    },
    While {
        max_iterations: u32,
        body: Vec<NodeSpec>,
    },
}

/// A node of a graph or body, what its failure does, and its parents
/// (indexes into the nodes before it; in the workflow's graph 0 is the
/// trigger) with edge labels.
#[derive(Clone, Debug)]
struct NodeSpec {
    kind: Kind,
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

/// Kinds of a workflow's nodes (`top`) or a body's, with loops while
/// `depth` allows.
fn kind(depth: u32, top: bool) -> BoxedStrategy<Kind> {
    let mut kinds = vec![
        (4, Just(Kind::Action).boxed()),
        (1, Just(Kind::Wait).boxed()),
    ];
    if top {
        kinds.push((3, Just(Kind::Condition).boxed()));
    }
    if depth > 0 {
        let for_each = (1..=3u32, any::<bool>(), 0..=4usize, body(depth - 1)).prop_map(
            |(concurrency, continue_items, items, body)| Kind::ForEach {
                concurrency,
                continue_items,
                items,
                body,
            },
        );
        let while_ = (1..=3u32, body(depth - 1)).prop_map(|(max_iterations, body)| Kind::While {
            max_iterations,
            body,
        });
        kinds.push((2, for_each.boxed()));
        kinds.push((1, while_.boxed()));
    }
    prop::strategy::Union::new_weighted(kinds).boxed()
}

type Raw = (Kind, OnError, Vec<(usize, u8)>);

fn raw(depth: u32, top: bool) -> impl Strategy<Value = Raw> {
    (
        kind(depth, top),
        on_error(),
        prop::collection::vec((any::<usize>(), any::<u8>()), 1..3),
    )
}

fn body(depth: u32) -> BoxedStrategy<Vec<NodeSpec>> {
    prop::collection::vec(raw(depth, false), 1..4)
        .prop_map(|raw| arrange(raw, false))
        .boxed()
}

fn graph_strategy() -> impl Strategy<Value = Vec<NodeSpec>> {
    prop::collection::vec(raw(2, true), 1..7).prop_map(|raw| arrange(raw, true))
}

/// Parents come before the node, so that the graph is acyclic; in a body,
/// a node drawing itself as its parent is one more that starts the body.
fn arrange(raw: Vec<Raw>, top: bool) -> Vec<NodeSpec> {
    raw.into_iter()
        .enumerate()
        .map(|(k, (kind, on_error, parents))| NodeSpec {
            // Conditions name their branches on their edges: no route.
            on_error: match (&kind, on_error) {
                (Kind::Condition, OnError::Route) => OnError::Fail,
                (_, on_error) => on_error,
            },
            kind,
            parents: parents
                .into_iter()
                .map(|(p, label)| (p % (k + 1), label))
                .filter(|&(p, _)| top || p < k)
                .collect(),
        })
        .collect()
}

/// The nodes and edges of a graph or body; `prefix` makes the ids unique
/// (`n2`, a body's `n2b0`, `n2b0b1`). Loops are listed by id.
fn graph_json(
    specs: &[NodeSpec],
    prefix: &str,
    top: bool,
    loops: &mut HashMap<String, Kind>,
) -> (Vec<Value>, Vec<Value>) {
    let offset = usize::from(top);
    let id = |slot: usize| match top && slot == 0 {
        true => "t".to_owned(),
        false => format!("{prefix}{slot}"),
    };
    let mut nodes = Vec::new();
    if top {
        nodes.push(json!({"id": "t", "type": "trigger", "kind": "manual"}));
    }
    let mut edges = Vec::new();
    for (k, spec) in specs.iter().enumerate() {
        let slot = k + offset;
        nodes.push(node_json(spec, &id(slot), loops));
        let mut seen = Vec::new();
        for &(p, label) in &spec.parents {
            if seen.contains(&p) {
                continue;
            }
            seen.push(p);
            let mut edge = json!({"from": id(p), "to": id(slot)});
            let parent = p.checked_sub(offset).map(|s| &specs[s]);
            if parent.is_some_and(|s| matches!(s.kind, Kind::Condition)) {
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
    (nodes, edges)
}

/// Configs only need to read as documents: the simulation decides every
/// attempt's result.
fn node_json(spec: &NodeSpec, id: &str, loops: &mut HashMap<String, Kind>) -> Value {
    let mut body = |specs: &[NodeSpec]| {
        let (nodes, edges) = graph_json(specs, &format!("{id}b"), false, loops);
        json!({"nodes": nodes, "edges": edges})
    };
    let mut node = match &spec.kind {
        Kind::Condition => {
            json!({"id": id, "type": "condition", "kind": "if_else", "config": {"logic": "true"}})
        }
        Kind::Action => {
            json!({"id": id, "type": "action", "kind": "http_request", "config": {"url": "http://x"}})
        }
        Kind::Wait => json!({"id": id, "type": "action", "kind": WAITS, "config": {}}),
        Kind::ForEach {
            concurrency,
            continue_items,
            body: specs,
            ..
        } => json!({"id": id, "type": "action", "kind": "for_each", "config": {
            "items": "trigger.body", "concurrency": concurrency, "body": body(specs),
            "on_item_error": if *continue_items { "continue" } else { "fail" }
        }}),
        Kind::While {
            max_iterations,
            body: specs,
        } => json!({"id": id, "type": "action", "kind": "while", "config": {
            "state": "0", "next_state": "state + 1", "until": "false",
            "max_iterations": max_iterations, "body": body(specs)
        }}),
    };
    if matches!(spec.kind, Kind::ForEach { .. } | Kind::While { .. }) {
        loops.insert(id.to_owned(), spec.kind.clone());
    }
    node["on_error"] = json!(spec.on_error.as_str());
    node
}

fn document(specs: &[NodeSpec]) -> (WorkflowDocument, HashMap<String, Kind>) {
    let mut loops = HashMap::new();
    let (nodes, edges) = graph_json(specs, "n", true, &mut loops);
    let doc = json!({"name": "g", "nodes": nodes, "edges": edges});
    (WorkflowDocument::from_value(doc).unwrap(), loops)
}

fn record(steps: Vec<StepRecord>) -> ExecutionRecord {
    super::tests::record(json!({}), steps)
}

struct Sim {
    graph: Arc<WorkflowGraph>,
    /// Loop nodes by id, with what the simulation makes them do.
    loops: HashMap<String, Kind>,
    progress: Progress,
    journal: BTreeMap<String, StepRecord>,
    /// Step keys the journal has seen settled: none may run again.
    settled: BTreeSet<String>,
    /// Results on their way to the actor: (step key, attempt, result).
    inflight: Vec<(String, u32, Result_)>,
    /// Signals in the store, kept until their step waits: (step key, ok).
    signals: Vec<(String, bool)>,
    results: Vec<Result_>,
    next_result: usize,
    /// The most steps the loops' checks allowed the execution so far.
    allowed: usize,
    failed: bool,
}

impl Sim {
    fn new(specs: &[NodeSpec], results: Vec<Result_>) -> Self {
        let (doc, loops) = document(specs);
        let graph = Arc::new(WorkflowGraph::new(doc));
        let progress = Progress::new(graph.clone(), &record(Vec::new()));
        Sim {
            allowed: graph.len(),
            graph,
            loops,
            progress,
            journal: BTreeMap::new(),
            settled: BTreeSet::new(),
            inflight: Vec::new(),
            signals: Vec::new(),
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

    fn key(&self, i: usize) -> String {
        self.progress.nodes[i].node.clone()
    }

    fn kind(&self, i: usize) -> &str {
        &self.progress.node(i).kind
    }

    /// A new attempt: a loop's runs within the turn, others are sent off.
    fn start(&mut self, i: usize) {
        let key = self.key(i);
        assert!(
            !self.settled.contains(&key),
            "{key} runs again after it settled"
        );
        self.progress.apply(i, NodeTransition::Start).unwrap();
        self.progress.nodes[i].attempts += 1;
        if self.loops.contains_key(&self.progress.node(i).id) {
            self.start_loop(i);
            return;
        }
        let attempt = self.progress.nodes[i].attempts;
        let result = self.result();
        self.inflight.push((key, attempt, result));
    }

    fn apply(&mut self, op: &Op) {
        if self.failed {
            return;
        }
        match *op {
            Op::Decide => self.advance(),
            Op::Deliver(k) if !self.inflight.is_empty() => {
                let (key, attempt, result) = self.inflight.remove(k % self.inflight.len());
                self.deliver(&key, attempt, result);
            }
            Op::Duplicate(k) if !self.inflight.is_empty() => {
                let again = self.inflight[k % self.inflight.len()].clone();
                self.inflight.push(again);
            }
            Op::Wake(k) => self.wake(k),
            Op::Signal(k, ok) => self.signal(k, ok),
            Op::Crash => self.crash(),
            Op::Deliver(_) | Op::Duplicate(_) => {}
        }
        self.commit();
    }

    /// The actor's advance: starts iterations, then runs, skips and
    /// finishes what became decidable, until nothing is.
    fn advance(&mut self) {
        for _ in 0..1_000 {
            if self.failed {
                return;
            }
            self.progress.admit();
            self.check_concurrency();
            let decisions = self.progress.decide();
            if decisions.is_empty() {
                break;
            }
            for decision in decisions {
                if self.failed {
                    return;
                }
                match decision {
                    Decision::Run(i) => {
                        assert_eq!(self.progress.nodes[i].status, NodeStatus::Pending);
                        self.start(i);
                    }
                    Decision::Skip(i) => {
                        self.progress.apply(i, NodeTransition::Skip).unwrap();
                    }
                    Decision::Finish(l) => self.finish_loop(l),
                }
            }
        }
        self.apply_signals();
    }

    /// The actor's rule: only the result of the running attempt counts.
    fn deliver(&mut self, key: &str, attempt: u32, result: Result_) {
        let Some(&i) = self.progress.index.get(key) else {
            return;
        };
        let node = &self.progress.nodes[i];
        if node.status != NodeStatus::Running || node.attempts != attempt {
            return;
        }
        let output = json!({"node": key, "attempt": attempt});
        match result {
            Result_::Ok(_) if self.kind(i) == WAITS => {
                self.progress.apply(i, NodeTransition::Wait).unwrap();
            }
            Result_::Ok(branch) => {
                let branch = (self.kind(i) == "if_else").then(|| branch.to_string());
                self.succeed(i, output, branch);
            }
            Result_::Transient if attempt < MAX_ATTEMPTS => {
                self.progress
                    .apply(i, NodeTransition::ScheduleRetry)
                    .unwrap();
            }
            Result_::Transient | Result_::Permanent => self.node_failed(i),
        }
    }

    /// As the actor's succeed: a routing node takes its `success` edges.
    fn succeed(&mut self, i: usize, output: Value, branch: Option<String>) {
        self.progress.apply(i, NodeTransition::Succeed).unwrap();
        let routes = self.progress.node(i).on_error == OnError::Route;
        let state = &mut self.progress.nodes[i];
        state.output = Some(output);
        state.branch = branch.or_else(|| routes.then(|| OnError::SUCCESS.to_owned()));
    }

    /// A failure for good, as its `on_error` says; within a body an
    /// unrouted one is its iteration's, elsewhere it fails the execution.
    fn node_failed(&mut self, i: usize) {
        let attempt = self.progress.nodes[i].attempts;
        let output = json!({"error": {"code": "permanent"}, "attempt": attempt});
        match self.progress.node(i).on_error {
            OnError::Continue => self.succeed(i, output, None),
            OnError::Route => {
                self.progress.apply(i, NodeTransition::Fail).unwrap();
                self.progress.nodes[i].output = Some(output);
                self.progress.nodes[i].branch = Some(OnError::ERROR.into());
                assert!(self.progress.is_routed_failure(i));
            }
            OnError::Fail => {
                self.progress.apply(i, NodeTransition::Fail).unwrap();
                self.progress.nodes[i].error = Some("permanent: no".into());
                if self.progress.frame(i).is_none() {
                    self.fail_execution();
                }
            }
        }
    }

    /// The execution fails: what has not settled is abandoned.
    fn fail_execution(&mut self) {
        for j in self.progress.entries().collect::<Vec<_>>() {
            if !self.progress.nodes[j].status.is_terminal() {
                self.progress.apply(j, NodeTransition::Abort).unwrap();
            }
        }
        self.failed = true;
    }

    /// A retry's time came, or a wait's: it timed out without its signal.
    fn wake(&mut self, k: usize) {
        let sleeping: Vec<usize> = (0..self.progress.nodes.len())
            .filter(|&i| {
                let status = self.progress.nodes[i].status;
                matches!(status, NodeStatus::Retrying | NodeStatus::Waiting)
            })
            .collect();
        let Some(&i) = sleeping.get(k % sleeping.len().max(1)) else {
            return;
        };
        match self.progress.nodes[i].status {
            NodeStatus::Retrying => self.start(i),
            _ => self.node_failed(i),
        }
    }

    fn crash(&mut self) {
        let steps = self.journal.values().cloned().collect();
        self.progress = Progress::new(self.graph.clone(), &record(steps));
        // As the actor's begin: an attempt in flight runs again with its
        // number (results of the old one may still come); a loop whose
        // items are known carries on with its iterations instead.
        for i in 0..self.progress.nodes.len() {
            if self.progress.nodes[i].status != NodeStatus::Running || self.progress.is_looping(i) {
                continue;
            }
            if self.loops.contains_key(&self.progress.node(i).id) {
                self.start_loop(i);
            } else {
                let attempt = self.progress.nodes[i].attempts;
                let result = self.result();
                self.inflight.push((self.key(i), attempt, result));
            }
        }
        self.apply_signals();
    }

    /// Writes every changed step to the journal, as the actor's turn does,
    /// checking that no settled step is taken back or changed, and that the
    /// execution holds no more steps than its loops were allowed.
    fn commit(&mut self) {
        assert!(self.progress.nodes.len() <= self.allowed);
        assert!(self.allowed <= super::MAX_STEPS);
        self.check_concurrency();
        for step in &self.progress.nodes {
            if step.status == NodeStatus::Pending {
                continue;
            }
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
            if (step.status == NodeStatus::Succeeded || routed) && step.node != "t" {
                // The journal keeps the result of the attempt it counts.
                let output = step
                    .output
                    .as_ref()
                    .expect("a succeeded node has its output");
                assert_eq!(output["attempt"], json!(step.attempts), "{}", step.node);
            }
            if step.status.is_terminal() {
                self.settled.insert(step.node.clone());
            }
            self.journal.insert(step.node.clone(), step.clone());
        }
    }

    /// Drives the run to its end: no stuck state is reachable. Waiting
    /// steps get their signal, retries their time.
    fn finish(&mut self) {
        for _ in 0..1_000 {
            if self.failed || self.progress.is_complete() {
                return;
            }
            self.apply(&Op::Decide);
            while !self.inflight.is_empty() && !self.failed {
                self.apply(&Op::Deliver(0));
            }
            let waiting: Vec<String> = (0..self.progress.nodes.len())
                .filter(|&i| self.progress.nodes[i].status == NodeStatus::Waiting)
                .map(|i| self.key(i))
                .collect();
            self.signals
                .extend(waiting.into_iter().map(|key| (key, true)));
            self.apply_signals();
            let retrying = (0..self.progress.nodes.len())
                .find(|&i| self.progress.nodes[i].status == NodeStatus::Retrying);
            if let Some(i) = retrying {
                self.start(i);
            }
            self.commit();
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
        1 => (any::<usize>(), any::<bool>()).prop_map(|(k, ok)| Op::Signal(k, ok)),
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
    fn deliveries_duplicates_reorders_signals_and_crashes_keep_the_invariants(
        specs in graph_strategy(),
        results in prop::collection::vec(result(), 1..20),
        ops in prop::collection::vec(op(), 0..100),
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
            for i in sim.progress.entries() {
                let step = &sim.progress.nodes[i];
                prop_assert!(step.status.is_terminal(), "{} is {}", step.node, step.status);
            }
        } else {
            let ended_it = |i: usize| {
                sim.progress.nodes[i].status == NodeStatus::Failed
                    && sim.graph.node(i).on_error == OnError::Fail
            };
            prop_assert!(sim.graph.flow_nodes().any(ended_it), "only on_error: fail ends a run");
        }
        sim.check_failed_items_fail_their_loop();
        // What the journal says is what a reload sees.
        let steps: Vec<StepRecord> = sim.journal.values().cloned().collect();
        let reloaded = Progress::new(sim.graph.clone(), &record(steps));
        let statuses = |p: &Progress| {
            p.nodes.iter().map(|n| (n.node.clone(), n.status)).collect::<BTreeMap<_, _>>()
        };
        prop_assert_eq!(statuses(&reloaded), statuses(&sim.progress));
        let _: Value = reloaded.result(|_| false);
    }
}
