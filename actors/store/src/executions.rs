//! Executions, the step journal and execution leases.

use std::time::Duration;

use flowmesh_model::{ExecutionEvent, ExecutionId, ExecutionStatus, TenantId, WorkflowId};
use sqlx::any::AnyRow;

use crate::batch::Batch;
use crate::credits::{Usage, add_usage};
use crate::deaths::{Mark, claim_mark};
use crate::failpoints::crash_point;
use crate::limits::SLOT_HELD;

use crate::{
    CalledBy, Error, ExecutionChange, ExecutionPage, ExecutionQuery, ExecutionRecord,
    ExecutionSummary, InProcess, NewExecution, NewSignal, Origin, StepRecord, Store, TestRun,
    Woken, int, json, now_ms, opt_int, opt_text, parse, text,
};

const ACTIVE: &str = "status IN ('queued', 'running')";
/// Owners whose lease has run out; `now` names the parameter holding now.
fn expired_owners(now: &str) -> String {
    format!("SELECT node_id FROM engine_leases WHERE lease_until < {now}")
}

/// Claim executions nobody (alive) owns.
#[derive(Clone, Debug)]
pub struct ClaimRequest<'a> {
    pub owner: &'a str,
    /// The claiming process run: queued executions are marked for it (see
    /// [`Mark`]).
    pub incarnation: &'a str,
    pub limit: u32,
    /// Parked executions due this far ahead are claimed already, so that
    /// their own timers fire on time.
    pub lookahead: Duration,
}

/// Steps written by one statement.
pub(crate) const STEPS_PER_STATEMENT: usize = 64;

/// What one turn of an execution changes, written atomically by its owner.
#[derive(Clone, Copy, Debug)]
pub struct Turn<'a> {
    /// The process writing it: nothing is written unless it still owns the
    /// execution (a process that lost its lease is fenced off).
    pub owner: &'a str,
    pub tenant: TenantId,
    pub execution: ExecutionId,
    pub transition: Option<&'a ExecutionChange>,
    pub steps: &'a [StepRecord],
    /// Resumes this turn applied, deleted with it.
    pub consumed_signals: &'a [String],
    /// What the turn used, charged with it.
    pub usage: Option<&'a Usage>,
    /// Whether a start takes one of the tenant's concurrency slots and an
    /// end gives it back, in the turn's transaction.
    pub slots: Slots,
    /// The execution's in-process mark after the turn (an end clears it).
    pub in_process: Mark<'a>,
    /// The events the turn produced, recorded with it (their positions are
    /// given by the store).
    pub events: &'a [ExecutionEvent],
    /// The run an end by failure starts (`on_error_workflow`), recorded
    /// with the end so that neither is lost without the other.
    pub handler: Option<&'a NewExecution>,
    /// Child executions its `call_workflow` steps start, recorded with
    /// the steps that name them.
    pub children: &'a [NewExecution],
    /// For a child execution's end: the signal that ends its parent's wait
    /// (recorded if the parent's step still waits).
    pub to_parent: Option<&'a NewSignal>,
    /// A parked execution taken up again: it takes a concurrency slot (or
    /// waits for one, unowned) before the turn is written.
    pub take_slot: bool,
}

/// A status change made outside a turn (an execution given up after
/// repeated crashes), with what is recorded in its transaction.
#[derive(Clone, Copy, Debug)]
pub struct Ending<'a> {
    pub owner: &'a str,
    pub change: &'a ExecutionChange,
    pub events: &'a [ExecutionEvent],
    /// For a child's end: the signal for its parent's waiting step.
    pub to_parent: Option<&'a NewSignal>,
    /// The failure handler's run the end starts.
    pub handler: Option<&'a NewExecution>,
}

/// Whether executions of a tenant take concurrency slots.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Slots {
    /// Neither the tenant nor the instance sets a limit.
    #[default]
    Unlimited,
    /// The tenant's own limit applies, or else the instance's.
    Limited { instance: Option<i64> },
}

/// How a turn ended in the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Committed {
    /// `woke`: the turn gave its tenant's concurrency slot back, and this
    /// start that waited for one is due now. `first_position`: the
    /// tenant-stream position of the turn's first event, if it had any
    /// (the others follow it).
    Written {
        woke: Option<Woken>,
        first_position: Option<u64>,
        /// A child's end was recorded for its waiting parent: the parent
        /// should be told to apply it.
        parent_told: bool,
    },
    /// Nothing was written: the writer no longer owns the execution, or
    /// another writer moved it on.
    Fenced,
    /// The start needs a concurrency slot of the tenant and none is free:
    /// only that was written, the execution left unowned to wait for one.
    NoSlot,
}

/// Adds a statement that inserts or replaces `steps` (at most
/// [`STEPS_PER_STATEMENT`]); a large output is written to its blob first.
pub(crate) async fn add_steps(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    batch: &mut Batch,
    tenant: TenantId,
    steps: &[StepRecord],
) -> Result<(), Error> {
    let mut outputs = Vec::with_capacity(steps.len());
    for step in steps {
        outputs.push(crate::blobs::output_column(tx, tenant, step).await?);
    }
    batch.statement(|b| {
        let rows: Vec<String> = steps
            .iter()
            .zip(&outputs)
            .map(|(step, output)| {
                let logs = (!step.logs.is_empty())
                    .then(|| serde_json::Value::from(step.logs.clone()).to_string());
                let params = [
                    b.bind(step.execution.to_string()),
                    b.bind(step.node.clone()),
                    b.bind(step.status.as_str()),
                    b.bind(i64::from(step.attempts)),
                    b.bind(to_json(&step.input)),
                    b.bind(output.clone()),
                    b.bind(step.branch.clone()),
                    b.bind(step.error.clone()),
                    b.bind(step.started_at),
                    b.bind(step.finished_at),
                    b.bind(step.wake_at),
                    b.bind(logs),
                ];
                format!("({})", params.join(", "))
            })
            .collect();
        format!(
            "INSERT INTO steps (execution_id, node, status, attempts, input, output, branch, error, started_at, \
             finished_at, wake_at, logs) VALUES {} \
             ON CONFLICT (execution_id, node) DO UPDATE SET status = excluded.status, attempts = excluded.attempts, \
             input = excluded.input, output = excluded.output, branch = excluded.branch, error = excluded.error, \
             started_at = excluded.started_at, finished_at = excluded.finished_at, wake_at = excluded.wake_at, \
             logs = excluded.logs",
            rows.join(", ")
        )
    });
    Ok(())
}

fn to_json(value: &Option<serde_json::Value>) -> Option<String> {
    value.as_ref().map(|v| v.to_string())
}

fn lease_until(lease: Duration) -> i64 {
    now_ms() + lease.as_millis() as i64
}

pub(crate) fn step(row: &AnyRow) -> Result<StepRecord, Error> {
    Ok(StepRecord {
        execution: parse(row, "execution_id")?,
        node: text(row, "node")?,
        status: parse(row, "status")?,
        attempts: u32::try_from(int(row, "attempts")?)
            .map_err(|_| Error::Corrupt("attempts".into()))?,
        input: json(row, "input")?,
        output: json(row, "output")?,
        branch: opt_text(row, "branch")?,
        error: opt_text(row, "error")?,
        started_at: opt_int(row, "started_at")?,
        finished_at: opt_int(row, "finished_at")?,
        wake_at: opt_int(row, "wake_at")?,
        logs: match opt_text(row, "logs")? {
            Some(text) => {
                serde_json::from_str(&text).map_err(|_| Error::Corrupt("step logs".into()))?
            }
            None => Vec::new(),
        },
    })
}

pub(crate) fn execution(row: &AnyRow, steps: Vec<StepRecord>) -> Result<ExecutionRecord, Error> {
    Ok(ExecutionRecord {
        id: parse(row, "id")?,
        tenant: parse(row, "tenant_id")?,
        workflow: parse(row, "workflow_id")?,
        version: int(row, "version")?,
        status: parse(row, "status")?,
        trigger_node: text(row, "trigger_node")?,
        trigger: json(row, "trigger_data")?.unwrap_or_default(),
        output: json(row, "output")?,
        error: opt_text(row, "error")?,
        cancel_requested: int(row, "cancel_requested")? != 0,
        deadline_ms: opt_int(row, "deadline_ms")?,
        created_at: int(row, "created_at")?,
        started_at: opt_int(row, "started_at")?,
        finished_at: opt_int(row, "finished_at")?,
        origin: match opt_text(row, "origin_id")? {
            Some(id) => Some(Origin {
                execution: id.parse().map_err(|_| Error::Corrupt("origin_id".into()))?,
                node: opt_text(row, "origin_node")?.unwrap_or_default(),
            }),
            None => None,
        },
        traceparent: opt_text(row, "traceparent")?,
        handles: opt_text(row, "handles_id")?
            .map(|id| id.parse().map_err(|_| Error::Corrupt("handles_id".into())))
            .transpose()?,
        called_by: match opt_text(row, "parent_id")? {
            Some(id) => Some(CalledBy {
                execution: id.parse().map_err(|_| Error::Corrupt("parent_id".into()))?,
                workflow: parse(row, "parent_workflow_id")?,
                node: opt_text(row, "parent_node")?.unwrap_or_default(),
                depth: u32::try_from(int(row, "call_depth")?)
                    .map_err(|_| Error::Corrupt("call_depth".into()))?,
                cancel_with_parent: int(row, "cancel_with_parent")? != 0,
            }),
            None => None,
        },
        holds_slot: opt_text(row, "slot")?.as_deref() == Some(SLOT_HELD),
        test: if int(row, "test")? != 0 {
            Some(TestRun {
                mocks: json(row, "mocks")?
                    .map(|mocks| match mocks {
                        serde_json::Value::Object(map) => Ok(map),
                        _ => Err(Error::Corrupt("mocks".into())),
                    })
                    .transpose()?
                    .unwrap_or_default(),
            })
        } else {
            None
        },
        steps,
        in_process: opt_text(row, "in_process_by")?.map(|by| InProcess {
            by,
            node: opt_text(row, "in_process_node").ok().flatten(),
        }),
        engine_death_at: opt_int(row, "engine_death_at")?,
        last_event_seq: None,
    })
}

impl Store {
    async fn steps(&self, id: ExecutionId) -> Result<Vec<StepRecord>, Error> {
        let rows = sqlx::query(
            "SELECT * FROM steps WHERE execution_id = $1 \
             ORDER BY CASE WHEN started_at IS NULL THEN 1 ELSE 0 END, started_at, node",
        )
        .bind(id.to_string())
        .fetch_all(self.reader())
        .await?;
        let mut steps = rows.iter().map(step).collect::<Result<Vec<_>, _>>()?;
        self.resolve_blobs(id, &mut steps).await?;
        Ok(steps)
    }

    pub async fn get_execution(
        &self,
        tenant: TenantId,
        id: ExecutionId,
    ) -> Result<Option<ExecutionRecord>, Error> {
        let Some(mut record) = self.execution_head(tenant, id).await? else {
            return Ok(None);
        };
        record.steps = self.steps(id).await?;
        Ok(Some(record))
    }

    /// An execution whatever its tenant, for the engine itself.
    pub async fn load_execution(&self, id: ExecutionId) -> Result<Option<ExecutionRecord>, Error> {
        let row = sqlx::query("SELECT * FROM executions WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => Ok(Some(execution(&row, self.steps(id).await?)?)),
            None => Ok(None),
        }
    }

    /// Newest first, a page at a time.
    pub async fn list_executions(
        &self,
        tenant: TenantId,
        query: &ExecutionQuery,
    ) -> Result<ExecutionPage, Error> {
        let limit = match query.limit {
            0 => 50,
            n => n.min(500),
        } as i64;
        let mut sql = String::from(
            "SELECT id, workflow_id, version, status, created_at, finished_at, test FROM executions WHERE tenant_id = $1",
        );
        let mut binds = vec![tenant.to_string()];
        if let Some(workflow) = query.workflow {
            binds.push(workflow.to_string());
            sql.push_str(&format!(" AND workflow_id = ${}", binds.len()));
        }
        if let Some(status) = query.status {
            binds.push(status.as_str().to_owned());
            sql.push_str(&format!(" AND status = ${}", binds.len()));
        }
        if let Some(test) = query.test {
            sql.push_str(if test {
                " AND test <> 0"
            } else {
                " AND test = 0"
            });
        }
        // Times are checked numbers, written in the statement as such.
        if let Some(from) = query.from {
            sql.push_str(&format!(" AND created_at >= {from}"));
        }
        if let Some(to) = query.to {
            sql.push_str(&format!(" AND created_at < {to}"));
        }
        if let Some(cursor) = query.cursor {
            binds.push(cursor.to_string());
            sql.push_str(&format!(" AND id < ${}", binds.len()));
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT {}", limit + 1));
        let mut q = sqlx::query(&sql);
        for b in binds {
            q = q.bind(b);
        }
        let rows = q.fetch_all(self.reader()).await?;
        let mut items = rows
            .iter()
            .map(|row| {
                Ok(ExecutionSummary {
                    id: parse(row, "id")?,
                    workflow: parse(row, "workflow_id")?,
                    version: int(row, "version")?,
                    status: parse(row, "status")?,
                    created_at: int(row, "created_at")?,
                    finished_at: opt_int(row, "finished_at")?,
                    test: int(row, "test")? != 0,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let next_cursor = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items.last().map(|e| e.id)
        } else {
            None
        };
        Ok(ExecutionPage { items, next_cursor })
    }

    /// Compare-and-set of an execution's status by its owner; an execution
    /// that ends gives up its lease in the same statement, and its
    /// concurrency slot (the start it wakes is due for the next claim
    /// sweep). Returns whether it won.
    pub async fn transition_execution(
        &self,
        owner: &str,
        change: &ExecutionChange,
    ) -> Result<bool, Error> {
        let ending = Ending {
            owner,
            change,
            events: &[],
            to_parent: None,
            handler: None,
        };
        Ok(self.transition_with_events(&ending).await?.is_some())
    }

    /// [`Store::transition_execution`], recording what `ending` carries
    /// with it; returns, when it won, the position of the first event and
    /// whether the parent was told.
    pub async fn transition_with_events(
        &self,
        ending: &Ending<'_>,
    ) -> Result<Option<(Option<u64>, bool)>, Error> {
        let Ending {
            owner,
            change,
            events,
            to_parent,
            handler,
        } = *ending;
        let mut tx = self.pool.begin().await?;
        if !self
            .apply_transition(&mut tx, owner, change, Mark::Keep)
            .await?
        {
            tx.rollback().await?;
            return Ok(None);
        }
        let row = sqlx::query("SELECT tenant_id FROM executions WHERE id = $1")
            .bind(change.id.to_string())
            .fetch_one(&mut *tx)
            .await?;
        let tenant = parse(&row, "tenant_id")?;
        if change.to.is_terminal() {
            Self::give_held_slot(&mut tx, tenant, change.id).await?;
        }
        if let Some(handler) = handler {
            crate::accept::insert_execution(&mut *tx, handler, None, now_ms()).await?;
        }
        let parent_told = match to_parent {
            Some(signal) if change.to.is_terminal() => {
                crate::parking::tell_parent(&mut tx, signal, &change.id.to_string()).await?
            }
            _ => false,
        };
        let first_position = crate::events::record(&mut tx, self.backend, tenant, events).await?;
        tx.commit().await?;
        Ok(Some((first_position, parent_told)))
    }

    async fn apply_transition(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        owner: &str,
        change: &ExecutionChange,
        mark: Mark<'_>,
    ) -> Result<bool, Error> {
        let now = now_ms();
        // From queued straight to succeeded or failed is a start and an end
        // committed together.
        let started = (change.to == ExecutionStatus::Running
            || (change.from == ExecutionStatus::Queued
                && matches!(
                    change.to,
                    ExecutionStatus::Succeeded | ExecutionStatus::Failed
                )))
        .then_some(now);
        let finished = change.to.is_terminal().then_some(now);
        // An ending execution leaves its owner, and its wake time, so that
        // it never stays in the index of unowned executions.
        let (release, mark) = if change.to.is_terminal() {
            (", owner = NULL, wake_at = NULL", Mark::Clear)
        } else {
            ("", mark)
        };
        let marks = mark
            .assignments(9)
            .map(|a| format!(", {a}"))
            .unwrap_or_default();
        let sql = format!(
            "UPDATE executions SET status = $1, started_at = COALESCE(started_at, $2), \
             finished_at = COALESCE($3, finished_at), output = COALESCE($4, output), error = COALESCE($5, error){release}{marks} \
             WHERE id = $6 AND status = $7 AND owner = $8"
        );
        let query = sqlx::query(&sql)
            .bind(change.to.as_str())
            .bind(started)
            .bind(finished)
            .bind(to_json(&change.output))
            .bind(change.error.clone())
            .bind(change.id.to_string())
            .bind(change.from.as_str())
            .bind(owner);
        let updated = mark.bind(query).execute(&mut **tx).await?.rows_affected();
        Ok(updated == 1)
    }

    /// Writes one turn of an execution in one transaction: its status
    /// change, if any (compare-and-set), its changed steps and the resumes
    /// it consumed. Nothing is written when the status change loses or the
    /// writer no longer owns the execution; returns whether it won.
    pub async fn commit_turn(&self, turn: &Turn<'_>) -> Result<Committed, Error> {
        let mut tx = self.pool.begin().await?;
        let mut woke = None;
        let ends = turn.transition.is_some_and(|c| c.to.is_terminal());
        // A parked execution taken up again takes a slot before anything
        // else; an end needs none.
        if turn.take_slot
            && !ends
            && !self
                .take_slot_or_wait(&mut tx, turn, ExecutionStatus::Running)
                .await?
        {
            tx.commit().await?;
            return Ok(Committed::NoSlot);
        }
        let owned = match turn.transition {
            Some(change) => {
                if turn.slots != Slots::Unlimited
                    && change.from == ExecutionStatus::Queued
                    && change.to == ExecutionStatus::Running
                    && !self
                        .take_slot_or_wait(&mut tx, turn, ExecutionStatus::Queued)
                        .await?
                {
                    tx.commit().await?;
                    return Ok(Committed::NoSlot);
                }
                let won = self
                    .apply_transition(&mut tx, turn.owner, change, turn.in_process)
                    .await?;
                if won && change.to.is_terminal() {
                    woke = Self::give_held_slot(&mut tx, turn.tenant, turn.execution).await?;
                }
                won
            }
            None => match turn.in_process.assignments(3) {
                // A turn that moves the mark writes the row, which also
                // checks ownership and locks it against a claim.
                Some(assignments) => {
                    let sql =
                        format!("UPDATE executions SET {assignments} WHERE id = $1 AND owner = $2");
                    let query = sqlx::query(&sql)
                        .bind(turn.execution.to_string())
                        .bind(turn.owner);
                    turn.in_process
                        .bind(query)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                        == 1
                }
                None => {
                    // The ownership check also locks the row against a
                    // claim until the turn is in.
                    let check = format!(
                        "SELECT 1 AS owned FROM executions WHERE id = $1 AND owner = $2 {}",
                        self.backend.share_lock()
                    );
                    sqlx::query(&check)
                        .bind(turn.execution.to_string())
                        .bind(turn.owner)
                        .fetch_optional(&mut *tx)
                        .await?
                        .is_some()
                }
            },
        };
        if !owned {
            tx.rollback().await?;
            return Ok(Committed::Fenced);
        }
        if let Some(handler) = turn.handler {
            // Its id, fixed when the end was staged, makes a turn written
            // again add nothing.
            crate::accept::insert_execution(&mut *tx, handler, None, now_ms()).await?;
        }
        for child in turn.children {
            // Recorded with the step that names it: a turn written again
            // (its commit's answer lost) finds it there and adds nothing.
            crate::accept::insert_execution(&mut *tx, child, None, now_ms()).await?;
        }
        let parent_told = match turn.to_parent {
            Some(signal) if ends => {
                crate::parking::tell_parent(&mut tx, signal, &turn.execution.to_string()).await?
            }
            _ => false,
        };
        // The rest of the turn in one batch: with SQLite one round trip.
        let mut batch = Batch::new(self.backend);
        for chunk in turn.steps.chunks(STEPS_PER_STATEMENT) {
            add_steps(&mut tx, &mut batch, turn.tenant, chunk).await?;
        }
        for id in turn.consumed_signals {
            batch.statement(|b| {
                format!(
                    "DELETE FROM execution_signals WHERE id = {}",
                    b.bind(id.clone())
                )
            });
        }
        if let Some(usage) = turn.usage.filter(|u| !u.is_empty()) {
            add_usage(&mut batch, turn.tenant, usage);
        }
        // Last: the tenant's position counter stays locked only briefly.
        crate::events::add_record(&mut batch, self.backend, turn.tenant, turn.events)?;
        let first_position =
            crate::events::first_position(&batch.run(&mut tx).await?, turn.events.len())?;
        crash_point("store::turn::before_commit");
        tx.commit().await?;
        crash_point("store::turn::committed");
        Ok(Committed::Written {
            woke,
            first_position,
            parent_told,
        })
    }

    /// Flags an execution for cancellation; returns its status then.
    pub async fn request_cancel(
        &self,
        tenant: TenantId,
        id: ExecutionId,
    ) -> Result<Option<ExecutionStatus>, Error> {
        // A parked execution becomes due, so that a process takes it and ends it.
        sqlx::query(&format!(
            "UPDATE executions SET cancel_requested = 1, \
             wake_at = CASE WHEN owner IS NULL THEN $3 ELSE wake_at END \
             WHERE id = $1 AND tenant_id = $2 AND {ACTIVE}"
        ))
        .bind(id.to_string())
        .bind(tenant.to_string())
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        let row = sqlx::query("SELECT status FROM executions WHERE id = $1 AND tenant_id = $2")
            .bind(id.to_string())
            .bind(tenant.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| parse(&row, "status")).transpose()
    }

    /// Flags the running children of an ended execution that are to be
    /// cancelled with it; returns them (id, workflow), for their commands.
    pub async fn cancel_children(
        &self,
        tenant: TenantId,
        parent: ExecutionId,
    ) -> Result<Vec<(ExecutionId, WorkflowId)>, Error> {
        let rows = sqlx::query(&format!(
            "UPDATE executions SET cancel_requested = 1, \
             wake_at = CASE WHEN owner IS NULL THEN $3 ELSE wake_at END \
             WHERE parent_id = $1 AND tenant_id = $2 AND cancel_with_parent = 1 \
             AND cancel_requested = 0 AND {ACTIVE} RETURNING id, workflow_id"
        ))
        .bind(parent.to_string())
        .bind(tenant.to_string())
        .bind(now_ms())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((parse(row, "id")?, parse(row, "workflow_id")?)))
            .collect()
    }

    /// An execution's status alone.
    pub async fn execution_status(
        &self,
        tenant: TenantId,
        id: ExecutionId,
    ) -> Result<Option<ExecutionStatus>, Error> {
        let row = sqlx::query("SELECT status FROM executions WHERE id = $1 AND tenant_id = $2")
            .bind(id.to_string())
            .bind(tenant.to_string())
            .fetch_optional(self.reader())
            .await?;
        row.map(|row| parse(&row, "status")).transpose()
    }

    /// Takes (or renews) the lease of an engine process: its executions
    /// stay its own until `lease` from now. A process takes its lease
    /// before it claims anything, so every owner has a lease row (an owner
    /// without one would never expire).
    pub async fn heartbeat(&self, owner: &str, lease: Duration) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO engine_leases (node_id, lease_until) VALUES ($1, $2) \
             ON CONFLICT (node_id) DO UPDATE SET lease_until = excluded.lease_until",
        )
        .bind(owner)
        .bind(lease_until(lease))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Claims unfinished executions nobody (alive) owns: parked ones due
    /// soon, accepted ones nobody started in time, then those of processes
    /// whose lease ran out. Returns their ids.
    pub async fn claim_executions(
        &self,
        request: &ClaimRequest<'_>,
    ) -> Result<Vec<ExecutionId>, Error> {
        let now = now_ms();
        // Two statements, so that each reads its own index: unowned
        // executions by `wake_at` (a partial index holding only those), and
        // executions by owner.
        let due = format!(
            "UPDATE executions SET owner = $1, {} WHERE id IN (\
             SELECT id FROM executions WHERE owner IS NULL AND wake_at <= $3 \
             AND (status = 'running' OR (status = 'queued' AND wake_at <= $2)) \
             ORDER BY wake_at LIMIT $4 {}) RETURNING id",
            claim_mark("$5"),
            self.backend.skip_locked()
        );
        let mut claimed: Vec<ExecutionId> = sqlx::query(&due)
            .bind(request.owner)
            .bind(now)
            .bind(now + request.lookahead.as_millis() as i64)
            .bind(i64::from(request.limit))
            .bind(request.incarnation)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| parse(row, "id"))
            .collect::<Result<_, _>>()?;
        let left = i64::from(request.limit) - claimed.len() as i64;
        if left > 0 {
            let orphaned = format!(
                "UPDATE executions SET owner = $1, {} WHERE id IN (\
                 SELECT id FROM executions WHERE {ACTIVE} AND owner IN ({}) \
                 ORDER BY created_at LIMIT $3 {}) RETURNING id",
                claim_mark("$4"),
                expired_owners("$2"),
                self.backend.skip_locked()
            );
            let rows = sqlx::query(&orphaned)
                .bind(request.owner)
                .bind(now)
                .bind(left)
                .bind(request.incarnation)
                .fetch_all(&self.pool)
                .await?;
            for row in &rows {
                claimed.push(parse(row, "id")?);
            }
        }
        Ok(claimed)
    }

    /// Claims one execution if no live process owns it, and returns it
    /// (with its journal) when claimed. A queued one is marked for the
    /// claiming process run, `incarnation` (see [`Mark`]).
    pub async fn claim_execution(
        &self,
        id: ExecutionId,
        owner: &str,
        incarnation: &str,
    ) -> Result<Option<ExecutionRecord>, Error> {
        let row = sqlx::query(&format!(
            "UPDATE executions SET owner = $2, {} WHERE id = $1 AND {ACTIVE} \
             AND (owner = $2 OR owner IS NULL OR owner IN ({})) RETURNING *, \
             (SELECT MAX(seq) FROM execution_events e WHERE e.execution_id = executions.id) AS last_event_seq",
            claim_mark("$4"),
            expired_owners("$3")
        ))
        .bind(id.to_string())
        .bind(owner)
        .bind(now_ms())
        .bind(incarnation)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        // A queued execution has no journal yet, unless it is a re-run.
        let status = parse::<ExecutionStatus>(&row, "status")?;
        let steps = if status == ExecutionStatus::Queued && opt_text(&row, "origin_id")?.is_none() {
            Vec::new()
        } else {
            self.steps(id).await?
        };
        let mut record = execution(&row, steps)?;
        record.last_event_seq = Some(opt_int(&row, "last_event_seq")?.unwrap_or(0) as u64);
        Ok(Some(record))
    }

    /// The unfinished executions `owner` holds.
    pub async fn owned_executions(&self, owner: &str) -> Result<Vec<ExecutionId>, Error> {
        let rows = sqlx::query(&format!(
            "SELECT id FROM executions WHERE owner = $1 AND {ACTIVE}"
        ))
        .bind(owner)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| parse(row, "id")).collect()
    }

    /// Hands back the lease of a process (graceful shutdown), so that
    /// others can take its executions at once. A graceful stop is no
    /// death: the in-process marks of its executions go with it.
    pub async fn release_leases(&self, owner: &str) -> Result<(), Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE engine_leases SET lease_until = 0 WHERE node_id = $1")
            .bind(owner)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE executions SET in_process_by = NULL, in_process_node = NULL \
             WHERE owner = $1 AND in_process_by IS NOT NULL",
        )
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
