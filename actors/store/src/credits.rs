//! Credits: each tenant's balance, its ledger, and metered usage.
//!
//! Turns append what they used to `usage_events` in their own transaction,
//! so a turn is charged exactly when it is written: never twice under
//! retries or fail-over, and without every turn of a tenant contending for
//! one balance row. Settlement folds those rows into the balance, the
//! ledger and the daily totals in bounded batches, one transaction each.
//! The balance a tenant sees is the settled balance minus what is not
//! settled yet.

use std::collections::BTreeMap;

use flowmesh_model::{TenantId, WorkflowId};
use serde::Serialize;
use sqlx::any::AnyRow;

use crate::batch::Batch;
use crate::{Backend, Error, Store, int, now_ms, opt_int, opt_text, text};

/// What one turn of an execution used, and its price.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub workflow: WorkflowId,
    pub executions: i64,
    pub node_runs: i64,
    pub sandbox_ms: i64,
    /// Tokens language models used.
    pub llm_tokens: i64,
    pub credits: i64,
}

impl Usage {
    pub fn is_empty(&self) -> bool {
        self.executions == 0
            && self.node_runs == 0
            && self.sandbox_ms == 0
            && self.llm_tokens == 0
            && self.credits == 0
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Balance {
    /// Settled balance minus usage not settled yet.
    pub balance: i64,
    pub pending: i64,
    pub refill_threshold: Option<i64>,
    pub refill_amount: Option<i64>,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct LedgerEntry {
    pub id: String,
    pub at: i64,
    pub delta: i64,
    pub balance_after: i64,
    pub kind: String,
    pub reference: Option<String>,
    pub actor: Option<String>,
    pub note: Option<String>,
}

/// A change to a balance made by a person or a payment.
#[derive(Clone, Debug)]
pub struct Credit<'a> {
    pub tenant: TenantId,
    pub amount: i64,
    /// `grant` or `refill`.
    pub kind: &'a str,
    /// Written once per tenant: a second credit with the same reference
    /// changes nothing and returns the first.
    pub reference: Option<&'a str>,
    pub actor: Option<&'a str>,
    pub note: Option<&'a str>,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct DailyUsage {
    pub day: String,
    pub workflow_id: String,
    pub executions: i64,
    pub node_runs: i64,
    pub sandbox_ms: i64,
    pub llm_tokens: i64,
    pub credits: i64,
}

/// A tenant whose balance fell below its refill threshold after settling,
/// and the refill opened for it.
#[derive(Clone, Debug)]
pub struct RefillDue {
    pub tenant: TenantId,
    /// The refill's own reference: the same until it is recorded as paid,
    /// so that every attempt to pay it is the same payment.
    pub reference: String,
    /// What the refill was opened for (later changes to the tenant's
    /// settings apply to the next one).
    pub amount: i64,
    pub balance: i64,
}

/// Rows settled per transaction.
const SETTLE_BATCH: i64 = 1000;

fn ledger_entry(row: &AnyRow) -> Result<LedgerEntry, Error> {
    Ok(LedgerEntry {
        id: text(row, "id")?,
        at: int(row, "at")?,
        delta: int(row, "delta")?,
        balance_after: int(row, "balance_after")?,
        kind: text(row, "kind")?,
        reference: opt_text(row, "reference")?,
        actor: opt_text(row, "actor")?,
        note: opt_text(row, "note")?,
    })
}

/// `YYYY-MM-DD` (UTC) of a time in epoch milliseconds.
pub fn day_of(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string()
}

/// Opens an empty account for a tenant that has none.
async fn ensure_account<'e, E>(executor: E, tenant: TenantId, now: i64) -> Result<(), Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO credit_accounts (tenant_id, balance, updated_at) VALUES ($1, 0, $2) \
         ON CONFLICT DO NOTHING",
    )
    .bind(tenant.to_string())
    .bind(now)
    .execute(executor)
    .await?;
    Ok(())
}

pub(crate) async fn append_usage(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    tenant: TenantId,
    usage: &Usage,
) -> Result<(), Error> {
    let mut batch = Batch::new(backend);
    add_usage(&mut batch, tenant, usage);
    batch.run(tx).await?;
    Ok(())
}

/// Adds the statement that appends `usage` to the tenant's usage events.
pub(crate) fn add_usage(batch: &mut Batch, tenant: TenantId, usage: &Usage) {
    batch.statement(|b| {
        let values = [
            b.bind(uuid::Uuid::now_v7().to_string()),
            b.bind(tenant.to_string()),
            b.bind(usage.workflow.to_string()),
            b.bind(now_ms()),
            b.bind(usage.executions),
            b.bind(usage.node_runs),
            b.bind(usage.sandbox_ms),
            b.bind(usage.llm_tokens),
            b.bind(usage.credits),
        ];
        format!(
            "INSERT INTO usage_events (id, tenant_id, workflow_id, at, executions, node_runs, sandbox_ms, llm_tokens, credits) \
             VALUES ({})",
            values.join(", ")
        )
    });
}

async fn add_ledger(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tenant: TenantId,
    entry: &LedgerEntry,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO credit_ledger (id, tenant_id, at, delta, balance_after, kind, reference, actor, note) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&entry.id)
    .bind(tenant.to_string())
    .bind(entry.at)
    .bind(entry.delta)
    .bind(entry.balance_after)
    .bind(&entry.kind)
    .bind(&entry.reference)
    .bind(&entry.actor)
    .bind(&entry.note)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The tenant's open refill, opened now for `amount` if it has none: until
/// it is recorded as paid, every settlement that finds the balance low
/// returns the same one.
async fn open_refill(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tenant: TenantId,
    amount: i64,
    balance: i64,
) -> Result<RefillDue, Error> {
    let row = sqlx::query(
        "UPDATE credit_accounts SET open_refill = COALESCE(open_refill, $2), \
         open_refill_amount = COALESCE(open_refill_amount, $3) WHERE tenant_id = $1 \
         RETURNING open_refill, open_refill_amount",
    )
    .bind(tenant.to_string())
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(amount)
    .fetch_one(&mut **tx)
    .await?;
    Ok(RefillDue {
        tenant,
        reference: text(&row, "open_refill")?,
        amount: int(&row, "open_refill_amount")?,
        balance,
    })
}

/// A credit within a transaction (see [`Store::credit`]).
async fn credit_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    c: Credit<'_>,
) -> Result<LedgerEntry, Error> {
    if let Some(reference) = c.reference {
        let seen = sqlx::query(
            "SELECT id, at, delta, balance_after, kind, reference, actor, note FROM credit_ledger \
             WHERE tenant_id = $1 AND reference = $2",
        )
        .bind(c.tenant.to_string())
        .bind(reference)
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(row) = seen {
            return ledger_entry(&row);
        }
    }
    let now = now_ms();
    ensure_account(&mut **tx, c.tenant, now).await?;
    let row = sqlx::query(
        "UPDATE credit_accounts SET balance = balance + $2, updated_at = $3 \
         WHERE tenant_id = $1 RETURNING balance",
    )
    .bind(c.tenant.to_string())
    .bind(c.amount)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    let entry = LedgerEntry {
        id: uuid::Uuid::now_v7().to_string(),
        at: now,
        delta: c.amount,
        balance_after: int(&row, "balance")?,
        kind: c.kind.to_owned(),
        reference: c.reference.map(str::to_owned),
        actor: c.actor.map(str::to_owned),
        note: c.note.map(str::to_owned),
    };
    // A concurrent credit with the same reference loses on the unique
    // index and rolls back, balance included.
    add_ledger(tx, c.tenant, &entry).await?;
    Ok(entry)
}

impl Store {
    pub(crate) async fn open_account(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        tenant: TenantId,
        initial: i64,
    ) -> Result<(), Error> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO credit_accounts (tenant_id, balance, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(tenant.to_string())
        .bind(initial)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        if initial != 0 {
            let entry = LedgerEntry {
                id: uuid::Uuid::now_v7().to_string(),
                at: now,
                delta: initial,
                balance_after: initial,
                kind: "initial".into(),
                reference: Some("initial".into()),
                actor: None,
                note: None,
            };
            add_ledger(tx, tenant, &entry).await?;
        }
        Ok(())
    }

    pub async fn balance(&self, tenant: TenantId) -> Result<Balance, Error> {
        let row = sqlx::query(
            "SELECT a.balance AS balance, a.refill_threshold AS refill_threshold, a.refill_amount AS refill_amount, \
             CAST(COALESCE((SELECT SUM(credits) FROM usage_events WHERE tenant_id = $1), 0) AS BIGINT) AS pending \
             FROM credit_accounts a WHERE a.tenant_id = $1",
        )
        .bind(tenant.to_string())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            // Tenants made before credits existed start with an empty account.
            return Ok(Balance {
                balance: 0,
                pending: 0,
                refill_threshold: None,
                refill_amount: None,
            });
        };
        let pending = int(&row, "pending")?;
        Ok(Balance {
            balance: int(&row, "balance")? - pending,
            pending,
            refill_threshold: opt_int(&row, "refill_threshold")?,
            refill_amount: opt_int(&row, "refill_amount")?,
        })
    }

    /// Adds (or, negative, takes) credits in one transaction with its
    /// ledger entry; a reference seen before returns its first entry.
    pub async fn credit(&self, c: Credit<'_>) -> Result<LedgerEntry, Error> {
        let mut tx = self.pool.begin().await?;
        let entry = credit_in(&mut tx, c).await?;
        tx.commit().await?;
        Ok(entry)
    }

    /// Records a paid refill and closes it, in one transaction: a refill
    /// recorded twice (its payment retried after a lost answer) is
    /// credited once.
    pub async fn record_refill(&self, due: &RefillDue, note: &str) -> Result<LedgerEntry, Error> {
        let mut tx = self.pool.begin().await?;
        let reference = format!("refill:{}", due.reference);
        let credit = Credit {
            tenant: due.tenant,
            amount: due.amount,
            kind: "refill",
            reference: Some(&reference),
            actor: None,
            note: Some(note),
        };
        let entry = credit_in(&mut tx, credit).await?;
        sqlx::query(
            "UPDATE credit_accounts SET open_refill = NULL, open_refill_amount = NULL \
             WHERE tenant_id = $1 AND open_refill = $2",
        )
        .bind(due.tenant.to_string())
        .bind(&due.reference)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(entry)
    }

    /// Sets (or, with none, clears) the automatic refill of a tenant.
    pub async fn set_auto_refill(
        &self,
        tenant: TenantId,
        refill: Option<(i64, i64)>,
    ) -> Result<(), Error> {
        let now = now_ms();
        ensure_account(&self.pool, tenant, now).await?;
        sqlx::query(
            "UPDATE credit_accounts SET refill_threshold = $2, refill_amount = $3, updated_at = $4 \
             WHERE tenant_id = $1",
        )
        .bind(tenant.to_string())
        .bind(refill.map(|r| r.0))
        .bind(refill.map(|r| r.1))
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Newest first; `before` is the last id of the previous page.
    /// How many automatic refills a tenant received since `since` (ms).
    pub async fn refills_since(&self, tenant: TenantId, since: i64) -> Result<i64, Error> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS refills FROM credit_ledger \
             WHERE tenant_id = $1 AND kind = 'refill' AND at >= $2",
        )
        .bind(tenant.to_string())
        .bind(since)
        .fetch_one(&self.pool)
        .await?;
        int(&row, "refills")
    }

    pub async fn ledger(
        &self,
        tenant: TenantId,
        limit: u32,
        before: Option<&str>,
    ) -> Result<Vec<LedgerEntry>, Error> {
        let rows = sqlx::query(
            "SELECT id, at, delta, balance_after, kind, reference, actor, note FROM credit_ledger \
             WHERE tenant_id = $1 AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
        )
        .bind(tenant.to_string())
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ledger_entry).collect()
    }

    /// Daily usage per workflow in `[from_day, to_day]` (`YYYY-MM-DD`),
    /// settled and not yet settled alike.
    pub async fn usage(
        &self,
        tenant: TenantId,
        from_day: &str,
        to_day: &str,
    ) -> Result<Vec<DailyUsage>, Error> {
        let mut totals: BTreeMap<(String, String), DailyUsage> = BTreeMap::new();
        let mut add = |u: DailyUsage| {
            let slot = totals
                .entry((u.day.clone(), u.workflow_id.clone()))
                .or_insert_with(|| DailyUsage {
                    day: u.day.clone(),
                    workflow_id: u.workflow_id.clone(),
                    executions: 0,
                    node_runs: 0,
                    sandbox_ms: 0,
                    llm_tokens: 0,
                    credits: 0,
                });
            slot.executions += u.executions;
            slot.node_runs += u.node_runs;
            slot.sandbox_ms += u.sandbox_ms;
            slot.llm_tokens += u.llm_tokens;
            slot.credits += u.credits;
        };
        let settled = sqlx::query(
            "SELECT day, workflow_id, executions, node_runs, sandbox_ms, llm_tokens, credits FROM usage_daily \
             WHERE tenant_id = $1 AND day >= $2 AND day <= $3",
        )
        .bind(tenant.to_string())
        .bind(from_day)
        .bind(to_day)
        .fetch_all(&self.pool)
        .await?;
        for row in &settled {
            add(DailyUsage {
                day: text(row, "day")?,
                workflow_id: text(row, "workflow_id")?,
                executions: int(row, "executions")?,
                node_runs: int(row, "node_runs")?,
                sandbox_ms: int(row, "sandbox_ms")?,
                llm_tokens: int(row, "llm_tokens")?,
                credits: int(row, "credits")?,
            });
        }
        let pending = sqlx::query(
            "SELECT workflow_id, at, executions, node_runs, sandbox_ms, llm_tokens, credits FROM usage_events \
             WHERE tenant_id = $1",
        )
        .bind(tenant.to_string())
        .fetch_all(&self.pool)
        .await?;
        for row in &pending {
            let day = day_of(int(row, "at")?);
            if day.as_str() < from_day || day.as_str() > to_day {
                continue;
            }
            add(DailyUsage {
                day,
                workflow_id: text(row, "workflow_id")?,
                executions: int(row, "executions")?,
                node_runs: int(row, "node_runs")?,
                sandbox_ms: int(row, "sandbox_ms")?,
                llm_tokens: int(row, "llm_tokens")?,
                credits: int(row, "credits")?,
            });
        }
        Ok(totals.into_values().collect())
    }

    /// Settles up to one batch of one tenant's usage; returns how many
    /// rows it settled and a refill that became due, if any.
    pub async fn settle_usage(&self) -> Result<(usize, Option<RefillDue>), Error> {
        let Some(row) = sqlx::query("SELECT tenant_id FROM usage_events ORDER BY id LIMIT 1")
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok((0, None));
        };
        let tenant: TenantId = crate::parse(&row, "tenant_id")?;
        let mut tx = self.pool.begin().await?;
        // Concurrent settlers take disjoint rows: each deletes what it settles.
        let rows = sqlx::query(&format!(
            "DELETE FROM usage_events WHERE id IN (SELECT id FROM usage_events WHERE tenant_id = $1 \
             ORDER BY id LIMIT $2 {}) \
             RETURNING workflow_id, at, executions, node_runs, sandbox_ms, llm_tokens, credits",
            self.backend.skip_locked()
        ))
        .bind(tenant.to_string())
        .bind(SETTLE_BATCH)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok((0, None));
        }
        let mut days: BTreeMap<(String, String), [i64; 5]> = BTreeMap::new();
        let mut credits = 0;
        for row in &rows {
            let key = (day_of(int(row, "at")?), text(row, "workflow_id")?);
            let sums = days.entry(key).or_default();
            sums[0] += int(row, "executions")?;
            sums[1] += int(row, "node_runs")?;
            sums[2] += int(row, "sandbox_ms")?;
            sums[3] += int(row, "llm_tokens")?;
            sums[4] += int(row, "credits")?;
            credits += int(row, "credits")?;
        }
        for ((day, workflow), sums) in &days {
            sqlx::query(
                "INSERT INTO usage_daily (tenant_id, day, workflow_id, executions, node_runs, sandbox_ms, llm_tokens, credits) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (tenant_id, day, workflow_id) DO UPDATE SET \
                 executions = usage_daily.executions + excluded.executions, \
                 node_runs = usage_daily.node_runs + excluded.node_runs, \
                 sandbox_ms = usage_daily.sandbox_ms + excluded.sandbox_ms, \
                 llm_tokens = usage_daily.llm_tokens + excluded.llm_tokens, \
                 credits = usage_daily.credits + excluded.credits",
            )
            .bind(tenant.to_string())
            .bind(day)
            .bind(workflow)
            .bind(sums[0])
            .bind(sums[1])
            .bind(sums[2])
            .bind(sums[3])
            .bind(sums[4])
            .execute(&mut *tx)
            .await?;
        }
        let now = now_ms();
        ensure_account(&mut *tx, tenant, now).await?;
        let account = sqlx::query(
            "UPDATE credit_accounts SET balance = balance - $2, updated_at = $3 WHERE tenant_id = $1 \
             RETURNING balance, refill_threshold, refill_amount",
        )
        .bind(tenant.to_string())
        .bind(credits)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let balance = int(&account, "balance")?;
        if credits != 0 {
            let entry = LedgerEntry {
                id: uuid::Uuid::now_v7().to_string(),
                at: now,
                delta: -credits,
                balance_after: balance,
                kind: "usage".into(),
                reference: None,
                actor: None,
                note: Some(format!("{} metered turns", rows.len())),
            };
            add_ledger(&mut tx, tenant, &entry).await?;
        }
        let refill = match (
            opt_int(&account, "refill_threshold")?,
            opt_int(&account, "refill_amount")?,
        ) {
            (Some(threshold), Some(amount)) if balance < threshold && amount > 0 => {
                Some(open_refill(&mut tx, tenant, amount, balance).await?)
            }
            _ => None,
        };
        tx.commit().await?;
        Ok((rows.len(), refill))
    }
}

#[cfg(test)]
mod tests {
    use super::day_of;

    #[test]
    fn days_are_utc_calendar_dates() {
        assert_eq!(day_of(0), "1970-01-01");
        assert_eq!(day_of(951_782_400_000), "2000-02-29");
        assert_eq!(day_of(1_795_478_399_999), "2026-11-23");
        assert_eq!(day_of(-1), "1969-12-31");
    }
}
