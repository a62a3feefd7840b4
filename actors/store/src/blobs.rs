//! Large node outputs, stored once per tenant and content and referred to
//! from the journal. A step's output above [`BLOB_THRESHOLD`] bytes of JSON
//! is kept in `blobs` under its SHA-256 and the step holds a reference;
//! reading the journal puts the value back. Identical large outputs (a
//! re-run's reused results, the same API answer in many runs) cost once.

use std::collections::HashMap;

use flowmesh_model::{ExecutionId, TenantId};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{Error, StepRecord, Store, now_ms, text};

/// Outputs larger than this (serialized) are stored as blobs.
pub const BLOB_THRESHOLD: usize = 64 * 1024;
const MARKER: &str = "$flowmesh_blob";

/// The output column of a step: inline JSON, or a blob reference once the
/// blob is written within `tx`.
pub(crate) async fn output_column(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tenant: TenantId,
    step: &StepRecord,
) -> Result<Option<String>, Error> {
    let Some(output) = &step.output else {
        return Ok(None);
    };
    let text = output.to_string();
    if text.len() <= BLOB_THRESHOLD {
        return Ok(Some(text));
    }
    let hash: String = Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    sqlx::query(
        "INSERT INTO blobs (tenant_id, hash, data, size, created_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT DO NOTHING",
    )
    .bind(tenant.to_string())
    .bind(&hash)
    .bind(&text)
    .bind(text.len() as i64)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO step_blobs (execution_id, node, tenant_id, hash) VALUES ($1, $2, $3, $4) \
         ON CONFLICT DO NOTHING",
    )
    .bind(step.execution.to_string())
    .bind(&step.node)
    .bind(tenant.to_string())
    .bind(&hash)
    .execute(&mut **tx)
    .await?;
    Ok(Some(json!({MARKER: hash, "size": text.len()}).to_string()))
}

fn reference(output: &Value) -> Option<&str> {
    let map = output.as_object()?;
    (map.len() == 2 && map.contains_key("size"))
        .then(|| map.get(MARKER)?.as_str())
        .flatten()
}

impl Store {
    /// Puts the values of blob references back into `steps`.
    pub(crate) async fn resolve_blobs(
        &self,
        execution: ExecutionId,
        steps: &mut [StepRecord],
    ) -> Result<(), Error> {
        if !steps
            .iter()
            .any(|s| s.output.as_ref().and_then(reference).is_some())
        {
            return Ok(());
        }
        let rows = sqlx::query(
            "SELECT b.hash, b.data FROM step_blobs sb \
             JOIN blobs b ON b.tenant_id = sb.tenant_id AND b.hash = sb.hash \
             WHERE sb.execution_id = $1",
        )
        .bind(execution.to_string())
        .fetch_all(self.reader())
        .await?;
        let mut data = HashMap::new();
        for row in &rows {
            data.insert(text(row, "hash")?, text(row, "data")?);
        }
        for step in steps {
            let Some(hash) = step.output.as_ref().and_then(reference) else {
                continue;
            };
            let text = data
                .get(hash)
                .ok_or_else(|| Error::Corrupt(format!("blob {hash} of step {}", step.node)))?;
            step.output = Some(
                serde_json::from_str(text).map_err(|_| Error::Corrupt(format!("blob {hash}")))?,
            );
        }
        Ok(())
    }
}
