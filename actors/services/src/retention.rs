//! The retention job: every `retention_interval`, finished executions past
//! their tenant's retention go, in bounded batches, and their space is
//! given back. Every process that runs executions runs it; a batch is one
//! transaction, so processes purging at once only share the work.

use flowmesh_api::{Settings, SettingsUpdate};
use std::sync::Arc;

use flowmesh_model::{HumanDuration, TenantId};
use flowmesh_store::SettingsChange;

use super::EngineHandle;
use crate::error::Error;
use crate::shared::Shared;

/// Executions deleted per transaction.
const BATCH: u32 = 500;

pub(super) async fn purge(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(shared.options.retention_interval.0);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let mut purged = 0;
        loop {
            match shared.store.purge_expired(BATCH).await {
                Ok(0) => break,
                Ok(n) => purged += n,
                Err(e) => {
                    tracing::warn!(error = %e, "could not purge expired executions; trying again later");
                    break;
                }
            }
        }
        if purged > 0 {
            tracing::info!(purged, "expired executions purged");
            if let Err(e) = shared.store.reclaim_space().await {
                tracing::warn!(error = %e, "could not give the purged space back");
            }
        }
    }
}

const MAX_RETENTION_MS: u128 = 10 * 365 * 24 * 3_600_000;
const OUTPUT_BYTES: std::ops::RangeInclusive<u64> = 1024..=256 * 1024 * 1024;

impl EngineHandle {
    /// The operator's bound on every tenant's output cap.
    pub fn output_cap(&self) -> u64 {
        self.shared.options.tenancy.max_output_bytes
    }

    /// The tenant's settings; an output cap stored above the instance's
    /// bound shows (and applies) as the bound.
    pub async fn settings(&self, tenant: TenantId) -> Result<Settings, Error> {
        let s = self
            .shared
            .store
            .tenant_settings(tenant)
            .await?
            .ok_or(Error::NotFound("tenant"))?;
        Ok(Settings {
            retention: HumanDuration::from_millis(s.retention_ms as u64),
            max_output_bytes: (s.max_output_bytes as u64).min(self.output_cap()),
        })
    }

    /// Changes the settings an update names (the others keep their
    /// values; a null resets one to its default) and returns them all;
    /// every process follows within seconds.
    pub async fn set_settings(
        &self,
        tenant: TenantId,
        update: SettingsUpdate,
    ) -> Result<Settings, Error> {
        if let Some(Some(retention)) = update.retention {
            let retention = retention.0.as_millis();
            if retention == 0 || retention > MAX_RETENTION_MS {
                return Err(Error::BadRequest(
                    "retention: must be between 1ms and 3650d".into(),
                ));
            }
        }
        if let Some(Some(bytes)) = update.max_output_bytes {
            self.check_output_bytes(bytes)?;
        }
        let change = SettingsChange {
            retention_ms: update.retention.map(|r| r.map(|r| r.0.as_millis() as i64)),
            max_output_bytes: update.max_output_bytes.map(|b| b.map(|b| b as i64)),
        };
        if !self
            .shared
            .store
            .set_tenant_settings(tenant, &change)
            .await?
        {
            return Err(Error::NotFound("tenant"));
        }
        self.shared.settings.forget(tenant);
        self.settings(tenant).await
    }

    fn check_output_bytes(&self, bytes: u64) -> Result<(), Error> {
        if !OUTPUT_BYTES.contains(&bytes) {
            return Err(Error::BadRequest(format!(
                "max_output_bytes: must be between {} and {}",
                OUTPUT_BYTES.start(),
                OUTPUT_BYTES.end()
            )));
        }
        let cap = self.output_cap();
        if bytes > cap {
            return Err(Error::OverLimit {
                field: "max_output_bytes",
                message: format!(
                    "{bytes} is over this instance's cap of {cap} bytes; choose at most {cap}"
                ),
            });
        }
        Ok(())
    }
}
