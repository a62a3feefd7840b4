//! Acceptance: a new execution recorded, once, whatever its idempotency
//! key finds; or recorded already claimed by the process that runs it.

use flowmesh_model::{ExecutionStatus, TenantId};

use crate::batch::Batch;
use crate::executions::{STEPS_PER_STATEMENT, add_steps};
use crate::{
    Backend, Created, Error, ExecutionRecord, InProcess, NewExecution, StepRecord, Store, now_ms,
    opt_text, parse,
};

/// An execution nobody has claimed yet is left to its start command this long.
const QUEUED_GRACE_MS: i64 = 2_000;

/// The process that records an execution and claims it at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The process's node id, whose lease covers the execution.
    pub owner: String,
    /// Its run: the execution is marked for it (see [`Mark`]).
    pub incarnation: String,
}

/// Inserts a queued execution unless its id or idempotency key exists;
/// returns the rows inserted (0 or 1).
pub(crate) async fn insert_execution<'e, E>(
    executor: E,
    new: &NewExecution,
    claim: Option<&Claim>,
    now: i64,
) -> Result<u64, Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let parent = new.called_by.as_ref();
    let inserted = sqlx::query(
        "INSERT INTO executions (id, tenant_id, workflow_id, version, status, trigger_node, trigger_data, \
         idempotency_key, deadline_ms, created_at, wake_at, origin_id, origin_node, traceparent, request_fingerprint, test, mocks, \
         handles_id, owner, in_process_by, parent_id, parent_workflow_id, parent_node, call_depth, cancel_with_parent) \
         VALUES ($1, $2, $3, $4, 'queued', $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, \
         $20, $21, $22, $23, $24) \
         ON CONFLICT DO NOTHING",
    )
    .bind(new.id.to_string())
    .bind(new.tenant.to_string())
    .bind(new.workflow.to_string())
    .bind(new.version)
    .bind(&new.trigger_node)
    .bind(new.trigger.to_string())
    .bind(new.idempotency_key.clone())
    .bind(new.deadline_ms)
    .bind(now)
    .bind(now + QUEUED_GRACE_MS)
    .bind(new.origin.as_ref().map(|o| o.execution.to_string()))
    .bind(new.origin.as_ref().map(|o| o.node.clone()))
    .bind(new.traceparent.clone())
    .bind(new.fingerprint.clone())
    .bind(i64::from(new.test.is_some()))
    .bind(
        new.test
            .as_ref()
            .map(|t| serde_json::Value::from(t.mocks.clone()).to_string()),
    )
    .bind(new.handles.map(|h| h.to_string()))
    .bind(claim.map(|c| c.owner.clone()))
    .bind(claim.map(|c| c.incarnation.clone()))
    .bind(parent.map(|p| p.execution.to_string()))
    .bind(parent.map(|p| p.workflow.to_string()))
    .bind(parent.map(|p| p.node.clone()))
    .bind(parent.map_or(0, |p| i64::from(p.depth)))
    .bind(i64::from(parent.is_some_and(|p| p.cancel_with_parent)))
    .execute(executor)
    .await?
    .rows_affected();
    Ok(inserted)
}

/// Inserts or replaces steps; the steps of one call have distinct nodes.
async fn upsert_steps(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    tenant: TenantId,
    steps: &[StepRecord],
) -> Result<(), Error> {
    let mut batch = Batch::new(backend);
    for chunk in steps.chunks(STEPS_PER_STATEMENT) {
        add_steps(tx, &mut batch, tenant, chunk).await?;
    }
    batch.run(tx).await?;
    Ok(())
}

impl Store {
    /// Inserts a queued execution, or finds the one its idempotency key
    /// already started for the same workflow, trigger node and request.
    pub async fn create_execution(&self, new: &NewExecution) -> Result<Created, Error> {
        self.insert(new, None, now_ms()).await
    }

    /// Records a new execution already claimed by `claim`, the process
    /// that accepted it and runs it at once: no claim of its own follows.
    /// Returns the record to start it from when it was created (not when
    /// an idempotency key found an earlier execution, which runs where it
    /// was accepted or is claimed as any other).
    pub async fn create_claimed_execution(
        &self,
        new: &NewExecution,
        claim: &Claim,
    ) -> Result<(Created, Option<ExecutionRecord>), Error> {
        let now = now_ms();
        let created = self.insert(new, Some(claim), now).await?;
        let record = created.created.then(|| ExecutionRecord {
            id: new.id,
            tenant: new.tenant,
            workflow: new.workflow,
            version: new.version,
            status: ExecutionStatus::Queued,
            trigger_node: new.trigger_node.clone(),
            trigger: new.trigger.clone(),
            output: None,
            error: None,
            cancel_requested: false,
            deadline_ms: new.deadline_ms,
            created_at: now,
            started_at: None,
            finished_at: None,
            origin: new.origin.clone(),
            handles: new.handles,
            called_by: new.called_by.clone(),
            holds_slot: false,
            traceparent: new.traceparent.clone(),
            test: new.test.clone(),
            steps: new.steps.clone(),
            in_process: Some(InProcess {
                by: claim.incarnation.clone(),
                node: None,
            }),
            engine_death_at: None,
            last_event_seq: Some(0),
        });
        Ok((created, record))
    }

    async fn insert(
        &self,
        new: &NewExecution,
        claim: Option<&Claim>,
        now: i64,
    ) -> Result<Created, Error> {
        let inserted = if new.steps.is_empty() {
            insert_execution(&self.pool, new, claim, now).await?
        } else {
            let mut tx = self.pool.begin().await?;
            let inserted = insert_execution(&mut *tx, new, claim, now).await?;
            if inserted == 1 {
                upsert_steps(&mut tx, self.backend, new.tenant, &new.steps).await?;
            }
            tx.commit().await?;
            inserted
        };
        if inserted == 1 {
            return Ok(Created {
                id: new.id,
                created: true,
            });
        }
        let Some(key) = &new.idempotency_key else {
            return Err(Error::Conflict(format!("execution {} exists", new.id)));
        };
        let row = sqlx::query(
            "SELECT id, request_fingerprint FROM executions WHERE tenant_id = $1 \
             AND workflow_id = $2 AND trigger_node = $3 AND idempotency_key = $4",
        )
        .bind(new.tenant.to_string())
        .bind(new.workflow.to_string())
        .bind(&new.trigger_node)
        .bind(key)
        .fetch_one(&self.pool)
        .await?;
        if opt_text(&row, "request_fingerprint")? != new.fingerprint {
            return Err(Error::KeyReused(key.clone()));
        }
        Ok(Created {
            id: parse(&row, "id")?,
            created: false,
        })
    }
}
