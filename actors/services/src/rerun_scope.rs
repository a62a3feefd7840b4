//! Re-running one iteration of a loop: from a node of its body, named with
//! the iteration's scope (`{"from_node": "charge", "scope": "each[3]"}`)
//! or by its step key (`each[3].charge`). The new execution takes over the
//! loop's items and every other iteration's settled steps as they are, so
//! only the addressed iteration runs again (from that node: the body nodes
//! before it are reused), then the loop's output is built anew and the
//! nodes after the loop run. A nested iteration (`outer[1].inner[2]`) is
//! addressed the same way at each level.

use flowmesh_model::NodeStatus;
use flowmesh_model::scope::{Scope, ScopeLevel, StepKey};
use flowmesh_model::validate::ValidationError;
use flowmesh_store::{ExecutionRecord, StepRecord};

use super::EngineHandle;
use crate::error::Error;
use crate::rerun::upstream_of;

pub(crate) fn refused(field: &str, code: &str, message: impl Into<String>) -> Error {
    Error::Field(ValidationError::new(field, code, message))
}

/// The iteration and body node a request names (a re-run's `from_node`, a
/// resume's `node`, given as `field`), when it is within a loop: with
/// `scope`, or as a step key. None for a node of the workflow itself.
pub(crate) fn target(
    field: &str,
    node: &str,
    scope: Option<&str>,
) -> Result<Option<StepKey>, Error> {
    if scope.is_none() && !node.contains('[') {
        return Ok(None);
    }
    let key = StepKey::parse(node).map_err(|e| refused(field, "invalid_node", e.0))?;
    let Some(text) = scope else {
        return Ok(Some(key));
    };
    if !key.iterations.is_empty() {
        return Err(refused(
            "scope",
            "invalid_scope",
            format!("{field} already names its iteration; give the scope once"),
        ));
    }
    let scope = Scope::parse(text).map_err(|e| refused("scope", "invalid_scope", e.0))?;
    if !scope.is_iteration() {
        return Err(refused(
            "scope",
            "invalid_scope",
            format!("{text:?} names a loop, not one of its iterations (such as `{text}[0]`)"),
        ));
    }
    Ok(Some(StepKey {
        iterations: scope.iterations,
        node: key.node,
    }))
}

impl EngineHandle {
    /// The loops along a target, as the execution's version has them.
    pub(crate) async fn target_levels(
        &self,
        record: &ExecutionRecord,
        target: &StepKey,
    ) -> Result<Vec<ScopeLevel>, Error> {
        let scope = target.scope().unwrap_or(Scope {
            iterations: Vec::new(),
            every: None,
        });
        self.scope_levels(record, &scope)
            .await
            .map_err(|e| e.named(|why| refused("scope", "unknown_scope", why)))
    }

    /// The loops along a re-run's target, each a `for_each`.
    pub(crate) async fn rerun_levels(
        &self,
        record: &ExecutionRecord,
        target: &StepKey,
    ) -> Result<Vec<ScopeLevel>, Error> {
        let levels = self.target_levels(record, target).await?;
        if let Some(level) = levels.iter().find(|l| l.is_while()) {
            return Err(refused(
                "scope",
                "not_rerunnable",
                format!(
                    "{} is a while: each of its iterations starts from the state the one \
                     before it made, so one cannot run again alone; re-run from {} itself",
                    level.node.id, level.node.id
                ),
            ));
        }
        Ok(levels)
    }
}

/// The steps a re-run of `target` starts with beyond the nodes upstream of
/// its outermost loop: each loop along the target running again with its
/// items, every other iteration's settled steps, and the addressed
/// iteration's body nodes before the next level (or `target`'s node).
pub(crate) fn iteration_steps(
    record: &ExecutionRecord,
    levels: &[ScopeLevel],
    target: &StepKey,
) -> Result<Vec<StepRecord>, Error> {
    let journal: std::collections::HashMap<&str, &StepRecord> =
        record.steps.iter().map(|s| (s.node.as_str(), s)).collect();
    let mut kept: Vec<StepRecord> = Vec::new();
    let mut within = String::new();
    for (n, (level, at)) in levels.iter().zip(&target.iterations).enumerate() {
        let loop_key = format!("{within}{}", level.node.id);
        let iteration = format!("{loop_key}[{}]", at.index);
        let step = journal.get(loop_key.as_str()).copied();
        let items = step
            .and_then(|s| s.input.as_ref())
            .and_then(|input| input.get("items"))
            .and_then(serde_json::Value::as_array)
            .map_or(0, Vec::len);
        if at.index >= items {
            return Err(refused(
                "scope",
                "unknown_scope",
                format!(
                    "{loop_key} read {items} items in this execution: it has no iteration {}",
                    at.index
                ),
            ));
        }
        if let Some(step) = step {
            kept.push(running_again(step));
        }
        // Every other iteration stays as it settled: its effects are not
        // repeated.
        let others = format!("{loop_key}[");
        let mine = format!("{iteration}.");
        kept.extend(
            record
                .steps
                .iter()
                .filter(|s| s.node.starts_with(&others) && !s.node.starts_with(&mine))
                .filter(|s| s.status.is_terminal())
                .cloned(),
        );
        let body = level.spec.body_graph();
        let next = match levels.get(n + 1) {
            Some(inner) => inner.node.id.as_str(),
            None => target.node.as_str(),
        };
        let Some(&start) = body.index.get(next) else {
            return Err(refused(
                "from_node",
                "unknown_node",
                format!("the body of {} has no node {next:?}", level.node.id),
            ));
        };
        for u in upstream_of(&body, start) {
            let id = &body.node(u).id;
            let key = format!("{mine}{id}");
            let status = journal
                .get(key.as_str())
                .map_or(NodeStatus::Pending, |s| s.status);
            if !matches!(status, NodeStatus::Succeeded | NodeStatus::Skipped) {
                return Err(Error::Conflict(format!(
                    "node {key} upstream of {next} did not succeed in the original run \
                     ({status}); re-run from it instead"
                )));
            }
            // A loop before it keeps its iterations' steps too.
            let nested = format!("{key}[");
            kept.extend(
                record
                    .steps
                    .iter()
                    .filter(|s| s.node == key || s.node.starts_with(&nested))
                    .cloned(),
            );
        }
        within = mine;
    }
    Ok(kept)
}

/// A loop's step as a re-run starts it: running, with the items it read.
fn running_again(step: &StepRecord) -> StepRecord {
    StepRecord {
        status: NodeStatus::Running,
        output: None,
        branch: None,
        error: None,
        finished_at: None,
        wake_at: None,
        logs: Vec::new(),
        ..step.clone()
    }
}
