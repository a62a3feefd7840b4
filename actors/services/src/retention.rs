//! The retention job: every `retention_interval`, finished executions past
//! their tenant's retention go, in bounded batches, and their space is
//! given back. Every process that runs executions runs it; a batch is one
//! transaction, so processes purging at once only share the work.

use flowmesh_api::Settings;
use std::sync::Arc;

use flowmesh_model::{HumanDuration, TenantId};
use flowmesh_store::TenantSettings;

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

    /// Changes a tenant's settings; every process follows within seconds.
    pub async fn set_settings(&self, tenant: TenantId, settings: &Settings) -> Result<(), Error> {
        let retention = settings.retention.0.as_millis();
        if retention == 0 || retention > MAX_RETENTION_MS {
            return Err(Error::BadRequest(
                "retention: must be between 1ms and 3650d".into(),
            ));
        }
        if !OUTPUT_BYTES.contains(&settings.max_output_bytes) {
            return Err(Error::BadRequest(format!(
                "max_output_bytes: must be between {} and {}",
                OUTPUT_BYTES.start(),
                OUTPUT_BYTES.end()
            )));
        }
        let cap = self.output_cap();
        if settings.max_output_bytes > cap {
            return Err(Error::OverLimit {
                field: "max_output_bytes",
                message: format!(
                    "{} is over this instance's cap of {cap} bytes; choose at most {cap}",
                    settings.max_output_bytes
                ),
            });
        }
        let stored = TenantSettings {
            retention_ms: retention as i64,
            max_output_bytes: settings.max_output_bytes as i64,
            // Limits are the instance administrators'; this write leaves them.
            limits: Default::default(),
        };
        if self
            .shared
            .store
            .set_tenant_settings(tenant, &stored)
            .await?
        {
            self.shared.settings.forget(tenant);
            Ok(())
        } else {
            Err(Error::NotFound("tenant"))
        }
    }
}
