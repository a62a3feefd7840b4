//! Addressing loop iterations when reading an execution: its steps a page
//! at a time, and only those within a scope (`charge_each[3]`), so that a
//! loop of thousands of items does not make one huge answer.

use std::cmp::Ordering;

use flowmesh_model::scope::{Scope, ScopeLevel, in_iteration, key_order};
use flowmesh_model::{ExecutionId, TenantId};
use flowmesh_store::ExecutionRecord;

use super::EngineHandle;
use crate::error::Error;

/// Iteration steps a page lists when the reader names no size.
pub const STEPS_PAGE: u32 = 200;
/// The most iteration steps one page lists.
pub const MAX_STEPS_PAGE: u32 = 1_000;

/// Which of an execution's steps a read lists.
#[derive(Clone, Debug, Default)]
pub struct StepsQuery {
    /// Only the steps within it; the workflow's own nodes are left out.
    pub scope: Option<Scope>,
    /// Only iteration steps after this key, in [`key_order`].
    pub after: Option<String>,
    /// Iteration steps per page ([`STEPS_PAGE`] when none).
    pub limit: Option<u32>,
}

impl StepsQuery {
    fn asked(&self) -> bool {
        self.scope.is_some() || self.after.is_some() || self.limit.is_some()
    }
}

/// An execution with the steps a read asked for.
#[derive(Clone, Debug)]
pub struct ExecutionView {
    pub record: ExecutionRecord,
    /// How the iteration steps were paged: none for an execution without
    /// them read without paging (it reads as it always did); else the key
    /// to read on from, or none after the last page.
    pub paging: Option<Option<String>>,
}

impl EngineHandle {
    /// An execution with every step of the workflow's own nodes and a page
    /// of its iterations' steps, or the steps within a scope.
    pub async fn read_execution(
        &self,
        tenant: TenantId,
        id: ExecutionId,
        query: &StepsQuery,
    ) -> Result<ExecutionView, Error> {
        let mut record = self
            .shared
            .store
            .execution_head(tenant, id)
            .await?
            .ok_or(Error::NotFound("execution"))?;
        if let Some(scope) = &query.scope {
            self.check_query_scope(&record, scope).await?;
        }
        let keys = self.shared.store.step_keys(id).await?;
        let (keys, paging) = page(keys, query);
        record.steps = self.shared.store.steps_named(id, &keys).await?;
        Ok(ExecutionView { record, paging })
    }

    /// Refuses a query's scope that names no loop of the execution's
    /// version, naming the parameter.
    pub(crate) async fn check_query_scope(
        &self,
        record: &ExecutionRecord,
        scope: &Scope,
    ) -> Result<(), Error> {
        self.scope_levels(record, scope)
            .await
            .map(drop)
            .map_err(|e| e.named(|why| Error::BadRequest(format!("query parameter scope: {why}"))))
    }

    /// The loops along `scope` in the execution's version; why not, when
    /// it names no loop there.
    pub(crate) async fn scope_levels(
        &self,
        record: &ExecutionRecord,
        scope: &Scope,
    ) -> Result<Vec<ScopeLevel>, ScopeRefused> {
        let graph = self
            .graph(record.workflow, record.version)
            .await
            .map_err(ScopeRefused::Engine)?;
        scope
            .levels(&graph.document.nodes)
            .map_err(|e| ScopeRefused::Unknown(e.to_string()))
    }
}

/// Why a scope was not taken.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ScopeRefused {
    #[error("{0}")]
    Unknown(String),
    #[error(transparent)]
    Engine(Error),
}

impl ScopeRefused {
    /// The refusal as the error of a request: the engine's own, or the
    /// scope's problem named as `field` says.
    pub(crate) fn named(self, name: impl FnOnce(String) -> Error) -> Error {
        match self {
            ScopeRefused::Unknown(why) => name(why),
            ScopeRefused::Engine(e) => e,
        }
    }
}

/// The keys a read lists, and how the iteration steps were paged.
fn page(keys: Vec<String>, query: &StepsQuery) -> (Vec<String>, Option<Option<String>>) {
    let (mut own, mut iterations): (Vec<String>, Vec<String>) =
        keys.into_iter().partition(|k| !in_iteration(k));
    let paged = query.asked() || !iterations.is_empty();
    if query.scope.is_some() || query.after.is_some() {
        own.clear();
    }
    iterations.retain(|k| {
        query.scope.as_ref().is_none_or(|s| s.holds(k))
            && query
                .after
                .as_deref()
                .is_none_or(|after| key_order(k, after) == Ordering::Greater)
    });
    iterations.sort_by(|a, b| key_order(a, b));
    let limit = query.limit.unwrap_or(STEPS_PAGE) as usize;
    let next = (iterations.len() > limit).then(|| iterations[limit - 1].clone());
    iterations.truncate(limit);
    own.extend(iterations);
    (own, paged.then_some(next))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> Vec<String> {
        let mut keys = vec!["start".to_owned(), "each".to_owned(), "after".to_owned()];
        keys.extend((0..n).map(|k| format!("each[{k}].call")));
        keys
    }

    #[test]
    fn a_workflow_without_loops_lists_every_step_unpaged() {
        let (listed, paging) = page(vec!["start".into(), "a".into()], &StepsQuery::default());
        assert_eq!((listed.len(), paging), (2, None));
    }

    #[test]
    fn iteration_steps_come_a_page_at_a_time_in_index_order() {
        let query = StepsQuery {
            limit: Some(4),
            ..StepsQuery::default()
        };
        let (listed, paging) = page(keys(10), &query);
        assert_eq!(listed.len(), 3 + 4);
        assert_eq!(listed[6], "each[3].call");
        let next = paging.flatten().unwrap();
        let query = StepsQuery {
            after: Some(next),
            limit: Some(4),
            ..StepsQuery::default()
        };
        let (listed, paging) = page(keys(10), &query);
        assert_eq!(
            listed,
            [
                "each[4].call",
                "each[5].call",
                "each[6].call",
                "each[7].call"
            ]
        );
        let query = StepsQuery {
            after: paging.flatten(),
            limit: Some(4),
            ..StepsQuery::default()
        };
        let (listed, paging) = page(keys(10), &query);
        assert_eq!(listed, ["each[8].call", "each[9].call"]);
        assert_eq!(paging, Some(None), "the last page says there is no next");
    }

    #[test]
    fn a_scope_lists_only_its_steps() {
        let query = StepsQuery {
            scope: Some(Scope::parse("each[3]").unwrap()),
            ..StepsQuery::default()
        };
        let (listed, paging) = page(keys(40), &query);
        assert_eq!(listed, ["each[3].call"]);
        assert_eq!(paging, Some(None));
    }
}
