//! The loop and signal parts of the simulation: a loop's attempts run
//! within the turn as the actor's do (its first reads its items, the one
//! after its iterations settle builds its output or, for a `while`,
//! repeats), and signals wait in the store until their step waits.

use std::collections::{BTreeMap, BTreeSet};

use flowmesh_model::NodeStatus;
use serde_json::{Value, json};

use super::{Kind, Result_, Sim, WAITS};
use crate::progress::MAX_STEPS;

impl Sim {
    fn loop_kind(&self, l: usize) -> Kind {
        self.loops[&self.progress.node(l).id].clone()
    }

    /// A loop's first attempt: its items (a `while`'s first state), handed
    /// to progress as the actor does, unless they would bring the
    /// execution past the steps it may hold.
    pub(super) fn start_loop(&mut self, l: usize) {
        if let Result_::Permanent = self.result() {
            return self.node_failed(l);
        }
        let items: Vec<Value> = match self.loop_kind(l) {
            Kind::ForEach { items, .. } => (0..items).map(|k| json!(k)).collect(),
            _ => vec![json!(0)],
        };
        let after = self.progress.steps_after(l, items.len());
        if after > MAX_STEPS {
            return self.node_failed(l);
        }
        self.allowed = self.allowed.max(after);
        self.progress.set_items(l, items);
    }

    /// The attempt after a loop's iterations settled, reading them as the
    /// kinds do: a failed one fails a loop that stops on failure; a `while`
    /// otherwise ends when its `until` holds (drawn), fails past its
    /// `max_iterations`, or repeats with its next state.
    pub(super) fn finish_loop(&mut self, l: usize) {
        let scope = self.progress.scope_of(l);
        let iterations = scope["loop"]["iterations"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let failed = |it: &Value| it.get("error").is_some();
        let attempt = self.progress.nodes[l].attempts;
        let output = json!({"node": self.key(l), "attempt": attempt, "count": iterations.len()});
        match self.loop_kind(l) {
            Kind::ForEach { continue_items, .. } => {
                if !continue_items && iterations.iter().any(failed) {
                    self.node_failed(l);
                } else {
                    self.succeed(l, output, None);
                }
            }
            Kind::While { max_iterations, .. } => {
                let last = iterations.last().expect("a while has run an iteration");
                let until = matches!(self.result(), Result_::Ok(true));
                let ran = last["index"].as_u64().expect("an index") + 1;
                if failed(last) {
                    self.node_failed(l);
                } else if until {
                    self.succeed(l, output, None);
                } else if ran >= u64::from(max_iterations) {
                    self.node_failed(l);
                } else {
                    let after = self.progress.steps_after(l, 1);
                    if after > MAX_STEPS {
                        return self.node_failed(l);
                    }
                    self.allowed = self.allowed.max(after);
                    self.progress.push_state(l, json!(ran));
                }
            }
            _ => unreachable!("only loops finish"),
        }
    }

    /// A signal for one of the waiting kinds' steps, waiting or not yet.
    pub(super) fn signal(&mut self, k: usize, ok: bool) {
        let waits: Vec<usize> = (0..self.progress.nodes.len())
            .filter(|&i| self.kind(i) == WAITS)
            .collect();
        if let Some(&i) = waits.get(k % waits.len().max(1)) {
            self.signals.push((self.key(i), ok));
        }
        self.apply_signals();
    }

    /// As the actor's: a signal makes its waiting step succeed or fail;
    /// one for a step that settled, or that the execution does not hold,
    /// is dropped; one for a step not waiting yet is kept until it is.
    pub(super) fn apply_signals(&mut self) {
        for (key, ok) in std::mem::take(&mut self.signals) {
            let Some(&i) = self.progress.index.get(&key) else {
                continue;
            };
            match self.progress.nodes[i].status {
                _ if self.failed => {}
                NodeStatus::Waiting if ok => {
                    let attempt = self.progress.nodes[i].attempts;
                    self.succeed(i, json!({"node": key, "attempt": attempt}), None);
                }
                NodeStatus::Waiting => self.node_failed(i),
                status if status.is_terminal() => {}
                _ => self.signals.push((key, ok)),
            }
        }
    }

    /// No loop has more iterations started and unsettled than its
    /// concurrency (a `while` runs one at a time).
    pub(super) fn check_concurrency(&self) {
        let mut unsettled: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
        for i in 0..self.progress.nodes.len() {
            if let Some(frame) = self.progress.frame(i)
                && !self.progress.nodes[i].status.is_terminal()
            {
                unsettled
                    .entry(frame.owner)
                    .or_default()
                    .insert(frame.index);
            }
        }
        for (l, iterations) in unsettled {
            let concurrency = match self.loop_kind(l) {
                Kind::ForEach { concurrency, .. } => concurrency,
                _ => 1,
            };
            assert!(
                iterations.len() <= concurrency as usize,
                "{} runs iterations {iterations:?} at once, over {concurrency}",
                self.key(l)
            );
        }
    }

    /// A loop that stops on a failed item (a `for_each` with `on_item_error:
    /// fail`, a `while`) and had one did not succeed, unless its own
    /// `on_error: continue` made its failure an output (steps abandoned when
    /// the execution failed carry no error).
    pub(super) fn check_failed_items_fail_their_loop(&self) {
        let mut failed_items = BTreeSet::new();
        for i in 0..self.progress.nodes.len() {
            if let Some(frame) = self.progress.frame(i)
                && self.progress.nodes[i].status == NodeStatus::Failed
                && !self.progress.is_routed_failure(i)
                && self.progress.nodes[i].error.is_some()
            {
                failed_items.insert(frame.owner);
            }
        }
        for l in failed_items {
            let stops = match self.loop_kind(l) {
                Kind::ForEach { continue_items, .. } => !continue_items,
                _ => true,
            };
            let step = &self.progress.nodes[l];
            if stops && step.status == NodeStatus::Succeeded {
                let error = step.output.as_ref().and_then(|o| o.get("error"));
                assert!(
                    error.is_some(),
                    "{} succeeded after a failed item",
                    step.node
                );
            }
        }
    }
}
