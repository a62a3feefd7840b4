//! Engine deaths during in-process work. An owner marks an execution before
//! it runs in-process nodes (templates, conditions, code) and clears the
//! mark with the turn that journals their results; a process run that finds
//! another run's mark knows that run died while the work ran, and records
//! it here before running anything again.

use std::time::Duration;

use flowmesh_model::ExecutionId;
use sqlx::any::AnyArguments;
use sqlx::query::Query;

use crate::{Error, Store, opt_int};

/// How a turn changes its execution's in-process mark.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mark<'a> {
    #[default]
    Keep,
    /// `by` (a process run) may be running the in-process node `node`.
    Set {
        by: &'a str,
        node: &'a str,
    },
    Clear,
}

impl Mark<'_> {
    /// The assignments of an `UPDATE executions` (none to keep the mark);
    /// a set mark takes the parameters numbered from `first`.
    pub(crate) fn assignments(&self, first: usize) -> Option<String> {
        match self {
            Mark::Keep => None,
            Mark::Set { .. } => Some(format!(
                "in_process_by = ${first}, in_process_node = ${}",
                first + 1
            )),
            Mark::Clear => Some("in_process_by = NULL, in_process_node = NULL".to_owned()),
        }
    }

    /// Binds what [`Mark::assignments`] names.
    pub(crate) fn bind<'q>(
        &self,
        query: Query<'q, sqlx::Any, AnyArguments<'q>>,
    ) -> Query<'q, sqlx::Any, AnyArguments<'q>> {
        match self {
            Mark::Set { by, node } => query.bind(by.to_string()).bind(node.to_string()),
            Mark::Keep | Mark::Clear => query,
        }
    }
}

/// The assignment with which a claim marks a queued execution for the
/// claiming process run (parameter `param`): its start turn runs the
/// in-process nodes after the trigger under this mark, without a write of
/// its own. A mark left by a run that died is kept, to be found.
pub(crate) fn claim_mark(param: &str) -> String {
    format!(
        "in_process_by = CASE WHEN status = 'queued' THEN COALESCE(in_process_by, {param}) \
         ELSE in_process_by END"
    )
}

/// A death found by a new owner: `at` (now, or a time a test injects);
/// an earlier death less than `window` before it makes this the second.
#[derive(Clone, Copy, Debug)]
pub struct EngineDeath<'a> {
    pub owner: &'a str,
    pub execution: ExecutionId,
    pub at: i64,
    pub window: Duration,
}

/// What recording a death decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeathVerdict {
    /// The first within the window: recorded, and the mark cleared.
    First,
    /// An earlier death (at this time) is within the window: the execution
    /// is to fail. Nothing was written, so that a crash before the failure
    /// is committed comes to the same verdict.
    Repeated { previous: i64 },
    /// The writer no longer owns the execution.
    Fenced,
}

impl Store {
    /// Records a death of an engine while `death.execution` ran in-process
    /// work, unless an earlier one is within the window. One statement: the
    /// compare and the write cannot be split by another writer.
    pub async fn record_engine_death(
        &self,
        death: &EngineDeath<'_>,
    ) -> Result<DeathVerdict, Error> {
        let first = "(engine_death_at IS NULL OR engine_death_at <= $3)";
        let row = sqlx::query(&format!(
            "UPDATE executions SET \
             engine_death_at = CASE WHEN {first} THEN $4 ELSE engine_death_at END, \
             in_process_by = CASE WHEN {first} THEN NULL ELSE in_process_by END, \
             in_process_node = CASE WHEN {first} THEN NULL ELSE in_process_node END \
             WHERE id = $1 AND owner = $2 RETURNING engine_death_at"
        ))
        .bind(death.execution.to_string())
        .bind(death.owner)
        .bind(death.at - death.window.as_millis() as i64)
        .bind(death.at)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(DeathVerdict::Fenced);
        };
        Ok(match opt_int(&row, "engine_death_at")? {
            Some(previous) if previous != death.at => DeathVerdict::Repeated { previous },
            _ => DeathVerdict::First,
        })
    }
}
