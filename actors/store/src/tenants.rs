//! Tenants and API keys. Keys are kept only as SHA-256 digests: looking a
//! key up by its digest never compares secret bytes one by one.

use flowmesh_model::TenantId;
use rand::distr::{Alphanumeric, SampleString};
use sha2::{Digest, Sha256};

use crate::{Error, Principal, Store, now_ms, parse, text};

pub(crate) const DEFAULT_TENANT: &str = "default";

fn digest(key: &str) -> String {
    let hash = Sha256::digest(key.as_bytes());
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

fn new_key() -> String {
    format!("fmk_{}", Alphanumeric.sample_string(&mut rand::rng(), 40))
}

impl Store {
    /// Creates the default tenant on an empty store, with `admin_key` or a
    /// generated key; returns the key only when it was generated here.
    /// An `admin_key` unknown to an existing store is added to the default tenant.
    pub async fn bootstrap(&self, admin_key: Option<&str>) -> Result<Option<String>, Error> {
        let any_tenant = sqlx::query("SELECT id FROM tenants LIMIT 1")
            .fetch_optional(&self.pool)
            .await?
            .is_some();
        let mut generated = None;
        if !any_tenant {
            let id = TenantId::new();
            let inserted = sqlx::query(
                "INSERT INTO tenants (id, slug, name, created_at) VALUES ($1, $2, 'Default', $3) ON CONFLICT DO NOTHING",
            )
            .bind(id.to_string())
            .bind(DEFAULT_TENANT)
            .bind(now_ms())
            .execute(&self.pool)
            .await?
            .rows_affected();
            // Only the process that created the tenant makes up a key.
            if inserted == 1 && admin_key.is_none() {
                let key = new_key();
                self.insert_key(id, "admin", &key).await?;
                generated = Some(key);
            }
        }
        if let Some(key) = admin_key
            && let Some(tenant) = self.tenant_by_slug(DEFAULT_TENANT).await?
        {
            self.insert_key(tenant, "admin", key).await?;
        }
        Ok(generated)
    }

    async fn insert_key(&self, tenant: TenantId, role: &str, key: &str) -> Result<(), Error> {
        let prefix: String = key.chars().take(8).collect();
        sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, name, prefix, hash, role, created_at) \
             VALUES ($1, $2, 'admin', $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(tenant.to_string())
        .bind(prefix)
        .bind(digest(key))
        .bind(role)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Creates a tenant with an admin key; returns both.
    pub async fn create_tenant(&self, slug: &str, name: &str) -> Result<(TenantId, String), Error> {
        let id = TenantId::new();
        sqlx::query("INSERT INTO tenants (id, slug, name, created_at) VALUES ($1, $2, $3, $4)")
            .bind(id.to_string())
            .bind(slug)
            .bind(name)
            .bind(now_ms())
            .execute(&self.pool)
            .await
            .map_err(|e| match Error::from(e) {
                Error::Conflict(_) => Error::Conflict(format!("the tenant slug {slug:?} is taken")),
                other => other,
            })?;
        let key = new_key();
        self.insert_key(id, "admin", &key).await?;
        Ok((id, key))
    }

    pub async fn authenticate(&self, api_key: &str) -> Result<Option<Principal>, Error> {
        let row = sqlx::query(
            "SELECT k.id AS key_id, k.role AS role, t.id AS tenant_id, t.slug AS slug \
             FROM api_keys k JOIN tenants t ON t.id = k.tenant_id \
             WHERE k.hash = $1 AND k.revoked_at IS NULL",
        )
        .bind(digest(api_key))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(Principal {
                tenant: parse(&row, "tenant_id")?,
                tenant_slug: text(&row, "slug")?,
                role: text(&row, "role")?,
                key_id: text(&row, "key_id")?,
            })
        })
        .transpose()
    }

    /// A tenant's slug, by id.
    pub async fn tenant_slug(&self, tenant: TenantId) -> Result<Option<String>, Error> {
        let row = sqlx::query("SELECT slug FROM tenants WHERE id = $1")
            .bind(tenant.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| text(&row, "slug")).transpose()
    }

    pub async fn tenant_by_slug(&self, slug: &str) -> Result<Option<TenantId>, Error> {
        let row = sqlx::query("SELECT id FROM tenants WHERE slug = $1")
            .bind(slug)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| parse(&row, "id")).transpose()
    }
}
