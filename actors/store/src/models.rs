//! A tenant's language-model settings, and usage recorded outside an
//! execution (generating a workflow).

use flowmesh_model::TenantId;

use crate::credits::{Usage, append_usage};
use crate::{Error, Store, opt_text};

/// A tenant's own model endpoint; `None` fields take the instance's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelSettings {
    pub base_url: Option<String>,
    pub model: Option<String>,
    /// The name of the tenant's secret that holds its API key.
    pub api_key_secret: Option<String>,
}

impl Store {
    pub async fn model_settings(&self, tenant: TenantId) -> Result<ModelSettings, Error> {
        let row = sqlx::query(
            "SELECT llm_base_url, llm_model, llm_api_key_secret FROM tenants WHERE id = $1",
        )
        .bind(tenant.to_string())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(ModelSettings::default());
        };
        Ok(ModelSettings {
            base_url: opt_text(&row, "llm_base_url")?,
            model: opt_text(&row, "llm_model")?,
            api_key_secret: opt_text(&row, "llm_api_key_secret")?,
        })
    }

    /// Returns false when the tenant does not exist.
    pub async fn set_model_settings(
        &self,
        tenant: TenantId,
        settings: &ModelSettings,
    ) -> Result<bool, Error> {
        let updated = sqlx::query(
            "UPDATE tenants SET llm_base_url = $2, llm_model = $3, llm_api_key_secret = $4 \
             WHERE id = $1",
        )
        .bind(tenant.to_string())
        .bind(settings.base_url.as_deref())
        .bind(settings.model.as_deref())
        .bind(settings.api_key_secret.as_deref())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(updated == 1)
    }

    /// Meters usage that belongs to no execution, in its own transaction.
    pub async fn record_usage(&self, tenant: TenantId, usage: &Usage) -> Result<(), Error> {
        let mut tx = self.pool.begin().await?;
        append_usage(&mut tx, self.backend, tenant, usage).await?;
        tx.commit().await?;
        Ok(())
    }
}
