//! Loops: a `for_each` or `while` node's iterations as entries of their
//! own. Once its items are known (journaled with its step, so a replay
//! never evaluates them again; a `while`'s are its states, one added after
//! each iteration), the loop starts iterations up to its concurrency; each
//! adds one entry per body node, keyed by its scope (`each[3].charge`,
//! `outer[1].inner[2].node`). Rebuilt from the journal, a loop gets back
//! the iterations that had started, so that finished ones never run again.

use std::sync::Arc;

use flowmesh_model::NodeStatus;
use flowmesh_model::for_each::{INDEX, ITEM, LOOP, LoopSpec};
use flowmesh_model::graph::WorkflowGraph;
use serde_json::{Map, Value, json};

use super::{Progress, Slot};

/// One iteration of a loop.
#[derive(Debug)]
pub struct Frame {
    /// The loop's entry.
    pub owner: usize,
    pub index: usize,
    pub item: Value,
    /// Its scope: `each[3]`, `outer[1].inner[2]`.
    pub key: String,
    /// The entry of the body's first node in this iteration.
    pub first: usize,
}

/// A loop whose items are known.
pub(super) struct Loop {
    spec: LoopSpec,
    body: Arc<WorkflowGraph>,
    items: Vec<Value>,
    /// The frame of each iteration that has started, by index.
    started: Vec<Option<Arc<Frame>>>,
}

/// Where a loop's step keeps its items.
const ITEMS: &str = "items";
/// Where a `while`'s step says how many states came before the one it
/// keeps (the last).
const BEFORE: &str = "before";

/// Steps one execution may hold: its nodes and every loop iteration's.
/// Nested loops multiply (a loop of 10,000 items in one of 10,000), so
/// each loop's items are checked against what the execution holds already.
pub const MAX_STEPS: usize = 20_000;

impl Progress {
    /// The iteration entry `i` runs in; none for the graph's nodes.
    pub fn frame(&self, i: usize) -> Option<&Frame> {
        self.slots[i].frame.as_deref()
    }

    /// Whether entry `i` is a loop whose items are known.
    pub fn is_looping(&self, i: usize) -> bool {
        self.loops.contains_key(&i)
    }

    /// The steps the execution would hold once every loop has run the
    /// iterations it knows of, and loop `i` `iterations` more: what it
    /// holds, and what the iterations not started yet will add.
    pub fn steps_after(&self, i: usize, iterations: usize) -> usize {
        let per = LoopSpec::of(self.node(i)).map_or(0, |spec| spec.body.nodes.len());
        let coming = self.loops.values().fold(0usize, |sum, lp| {
            let waiting = lp.started.iter().filter(|f| f.is_none()).count();
            sum.saturating_add(waiting.saturating_mul(lp.body.len()))
        });
        self.nodes
            .len()
            .saturating_add(coming)
            .saturating_add(per.saturating_mul(iterations))
    }

    /// Records loop `i`'s items with its step, ready to start iterations.
    pub fn set_items(&mut self, i: usize, items: Vec<Value>) {
        let Some(spec) = LoopSpec::of(self.node(i)) else {
            return;
        };
        self.nodes[i].input = Some(json!({ ITEMS: items }));
        let body = Arc::new(spec.body_graph());
        self.loops.insert(
            i,
            Loop {
                spec,
                body,
                started: vec![None; items.len()],
                items,
            },
        );
    }

    /// Adds a `while`'s state after its last iteration: the next one starts
    /// with it. Only that state is journaled with the loop's step, beside
    /// how many came before: the iterations before it have settled and
    /// their steps hold what they did, and journaling every state again at
    /// each iteration would write more with the square of the iterations.
    pub fn push_state(&mut self, i: usize, state: Value) {
        let Some(lp) = self.loops.get_mut(&i) else {
            return;
        };
        let before = lp.items.len();
        self.nodes[i].input = Some(json!({ ITEMS: [&state], BEFORE: before }));
        lp.items.push(state);
        lp.started.push(None);
    }

    /// Gives back loops their items and started iterations, from the
    /// journal (entries are added as this goes: nested loops too).
    pub(super) fn restore_loops(&mut self) {
        let mut i = 0;
        while i < self.nodes.len() {
            self.restore_loop(i);
            i += 1;
        }
    }

    fn restore_iterations(&mut self, l: usize) {
        let Some(lp) = self.loops.get(&l) else {
            return;
        };
        let key = &self.nodes[l].node;
        let started: Vec<usize> = (0..lp.items.len())
            .filter(|k| {
                (0..lp.body.len()).any(|j| {
                    let step = format!("{key}[{k}].{}", lp.body.node(j).id);
                    self.journal.contains_key(&step)
                })
            })
            .collect();
        for k in started {
            self.start_iteration(l, k);
        }
    }

    /// Starts iterations of running loops while they have room: in input
    /// order, at most `concurrency` unsettled at once, and none after a
    /// failure when a failed item fails the loop. Says whether any started.
    pub fn admit(&mut self) -> bool {
        let mut admitted = false;
        let loops: Vec<usize> = self.loops.keys().copied().collect();
        for l in loops {
            if self.nodes[l].status != NodeStatus::Running {
                continue;
            }
            loop {
                let lp = &self.loops[&l];
                let frames = || lp.started.iter().flatten();
                let unsettled = frames().filter(|f| !self.settled(f)).count();
                let stop = lp.spec.stop_on_failure
                    && frames().any(|f| self.settled(f) && self.failure(f).is_some());
                let next = lp.started.iter().position(Option::is_none);
                match next {
                    Some(k) if !stop && unsettled < lp.spec.concurrency as usize => {
                        self.start_iteration(l, k);
                        admitted = true;
                    }
                    _ => break,
                }
            }
        }
        admitted
    }

    /// Adds the entries of iteration `k` of loop `l`, with what the journal
    /// holds for them.
    fn start_iteration(&mut self, l: usize, k: usize) {
        let Some(lp) = self.loops.get(&l) else {
            return;
        };
        let body = lp.body.clone();
        let frame = Arc::new(Frame {
            owner: l,
            index: k,
            item: lp.items[k].clone(),
            key: format!("{}[{k}]", self.nodes[l].node),
            first: self.nodes.len(),
        });
        for at in 0..body.len() {
            let key = format!("{}.{}", frame.key, body.node(at).id);
            let execution = self.nodes[l].execution;
            let step = self
                .journal
                .remove(&key)
                .unwrap_or_else(|| super::pending(execution, key.clone()));
            self.index.insert(key, self.nodes.len());
            self.nodes.push(step);
            self.slots.push(Slot {
                graph: body.clone(),
                at,
                frame: Some(frame.clone()),
            });
        }
        if let Some(lp) = self.loops.get_mut(&l) {
            lp.started[k] = Some(frame.clone());
        }
        // A nested loop that had started has its items in its step.
        for i in frame.first..self.nodes.len() {
            self.restore_loop(i);
        }
    }

    /// A loop that had read its items gets them back, and the iterations
    /// that had started (a settled loop too: its steps are shown).
    fn restore_loop(&mut self, i: usize) {
        // A nested loop is restored with its iteration; restoring it again
        // would forget the iterations that had started.
        if self.loops.contains_key(&i) {
            return;
        }
        let Some(input) = self.nodes[i].input.clone() else {
            return;
        };
        let Some(Value::Array(kept)) = input.get(ITEMS) else {
            return;
        };
        // The states of a `while`'s settled iterations are not kept: they
        // are read again from nowhere (only its last iteration decides).
        let before = input.get(BEFORE).and_then(Value::as_u64).unwrap_or(0);
        let mut items = vec![Value::Null; usize::try_from(before).unwrap_or(0)];
        items.extend(kept.iter().cloned());
        self.set_items(i, items);
        self.nodes[i].input = Some(input);
        self.restore_iterations(i);
    }

    fn members(&self, frame: &Frame) -> std::ops::Range<usize> {
        let len = self.slots[frame.first].graph.len();
        frame.first..frame.first + len
    }

    fn settled(&self, frame: &Frame) -> bool {
        self.members(frame)
            .all(|i| self.nodes[i].status.is_terminal())
    }

    /// Why an iteration failed: its first failure that no `on_error` took.
    fn failure(&self, frame: &Frame) -> Option<String> {
        self.members(frame)
            .find(|&i| self.nodes[i].status == NodeStatus::Failed && !self.is_routed_failure(i))
            .map(|i| {
                let error = self.nodes[i].error.as_deref().unwrap_or("failed");
                format!("node {} failed: {error}", self.node(i).id)
            })
    }

    /// Running loops whose iterations have all settled, or that a failed
    /// item stops once those started have.
    pub(super) fn finished_loops(&self) -> impl Iterator<Item = usize> + '_ {
        self.loops.iter().filter_map(|(&l, lp)| {
            if self.nodes[l].status != NodeStatus::Running {
                return None;
            }
            let frames = || lp.started.iter().flatten();
            let all_settled = frames().all(|f| self.settled(f));
            let complete = lp.started.iter().all(Option::is_some);
            let stopped = lp.spec.stop_on_failure && frames().any(|f| self.failure(f).is_some());
            (all_settled && (complete || stopped)).then_some(l)
        })
    }

    /// What entry `i`'s expressions read: the graph's outputs, and within an
    /// iteration its loop's scope, `item`, `index` and the iteration's own
    /// outputs. A loop being finished also reads its settled iterations
    /// under `loop`.
    pub fn scope_of(&self, i: usize) -> Map<String, Value> {
        let mut scope = self.base_scope(i);
        if let Some(lp) = self.loops.get(&i)
            && self.finished_loops().any(|l| l == i)
        {
            let started = lp.started.iter().flatten();
            // A `while` decides from its last iteration alone.
            let skip = match lp.spec.last_only {
                true => lp.started.iter().flatten().count().saturating_sub(1),
                false => 0,
            };
            let iterations: Vec<Value> = started
                .skip(skip)
                .map(|f| match self.failure(f) {
                    Some(error) => json!({"index": f.index, "error": error}),
                    None => json!({"index": f.index, "scope": self.iteration_scope(f)}),
                })
                .collect();
            let started_at = self.nodes[i].started_at;
            scope.insert(
                LOOP.to_owned(),
                json!({ "iterations": iterations, "started_at": started_at }),
            );
        }
        scope
    }

    fn base_scope(&self, i: usize) -> Map<String, Value> {
        match self.frame(i) {
            None => self.scope(),
            Some(frame) => self.iteration_scope(frame),
        }
    }

    fn iteration_scope(&self, frame: &Frame) -> Map<String, Value> {
        let mut scope = self.base_scope(frame.owner);
        let binds = self
            .loops
            .get(&frame.owner)
            .map_or(ITEM, |lp| lp.spec.binds);
        scope.insert(binds.to_owned(), frame.item.clone());
        scope.insert(INDEX.to_owned(), json!(frame.index));
        self.add_outputs(self.members(frame), &mut scope);
        scope
    }
}

#[cfg(test)]
mod tests;
