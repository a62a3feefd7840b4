//! Tenants, their API keys, and who a bearer credential belongs to.

use flowmesh_model::{Role, TenantId};
use sqlx::any::AnyRow;

use crate::credentials;
use crate::{Error, Principal, Store, now_ms, opt_int, opt_text, parse, text};

/// The tenant the instance creates on an empty store: its owners and
/// admins administer the instance (credits and limits of every tenant).
pub const PLATFORM_TENANT: &str = "default";

/// An API key as listed: never the key itself.
#[derive(Clone, Debug, serde::Serialize, schemars::JsonSchema)]
pub struct KeyInfo {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub role: Role,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    /// Who created it (`user:<id>` or `key:<id>`); none for a key made at
    /// bootstrap or before creators were kept.
    pub created_by: Option<String>,
    /// The creator's role when they created it; none as for `created_by`.
    #[serde(skip)]
    pub creator_role: Option<Role>,
}

/// A new API key of a tenant.
#[derive(Clone, Debug)]
pub struct NewKey<'a> {
    pub tenant: TenantId,
    pub name: &'a str,
    pub role: Role,
    /// The principal creating it.
    pub creator: &'a Principal,
}

/// A key as stored; `creator` is none for keys the instance makes itself.
struct KeyRow<'a> {
    tenant: TenantId,
    name: &'a str,
    role: Role,
    key: &'a str,
    creator: Option<&'a Principal>,
}

const KEY_COLUMNS: &str =
    "id, name, prefix, role, created_at, revoked_at, created_by, creator_role";

/// A tenant as the instance's administrators see it.
#[derive(Clone, Debug, serde::Serialize, schemars::JsonSchema)]
pub struct TenantInfo {
    pub id: TenantId,
    pub slug: String,
    pub name: String,
    pub created_at: i64,
    /// Credits left: the settled balance minus usage not settled yet.
    pub balance: i64,
    /// Its own limits; none means the instance default.
    pub limits: crate::TenantLimits,
}

/// Lowercase ASCII letters and digits, runs of anything else as one `-`.
pub fn slug_of(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_end_matches('-');
    let slug: String = slug.chars().take(40).collect();
    if slug.is_empty() {
        "tenant".to_owned()
    } else {
        slug.trim_end_matches('-').to_owned()
    }
}

fn key_info(row: &AnyRow) -> Result<KeyInfo, Error> {
    Ok(KeyInfo {
        id: text(row, "id")?,
        name: text(row, "name")?,
        prefix: text(row, "prefix")?,
        role: parse(row, "role")?,
        created_at: crate::int(row, "created_at")?,
        revoked_at: opt_int(row, "revoked_at")?,
        created_by: opt_text(row, "created_by")?,
        creator_role: opt_text(row, "creator_role")?
            .map(|r| r.parse())
            .transpose()
            .map_err(|_| Error::Corrupt("api_keys.creator_role: not a role".into()))?,
    })
}

impl Store {
    /// Creates the platform tenant on an empty store, with `admin_key` or a
    /// generated owner key; returns the key only when it was generated here.
    /// An `admin_key` unknown to an existing store is added to the platform tenant.
    pub async fn bootstrap(
        &self,
        admin_key: Option<&str>,
        initial_credits: i64,
    ) -> Result<Option<String>, Error> {
        let any_tenant = sqlx::query("SELECT id FROM tenants LIMIT 1")
            .fetch_optional(&self.pool)
            .await?
            .is_some();
        let mut generated = None;
        if !any_tenant {
            let id = TenantId::new();
            let mut tx = self.pool.begin().await?;
            let inserted = sqlx::query(
                "INSERT INTO tenants (id, slug, name, created_at) VALUES ($1, $2, 'Default', $3) ON CONFLICT DO NOTHING",
            )
            .bind(id.to_string())
            .bind(PLATFORM_TENANT)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 1 {
                Self::open_account(&mut tx, id, initial_credits).await?;
            }
            tx.commit().await?;
            // Only the process that created the tenant makes up a key.
            if inserted == 1 && admin_key.is_none() {
                let key = credentials::generate("fmk");
                self.insert_key(KeyRow {
                    tenant: id,
                    name: "bootstrap",
                    role: Role::Owner,
                    key: &key,
                    creator: None,
                })
                .await?;
                generated = Some(key);
            }
        }
        if let Some(key) = admin_key
            && let Some(tenant) = self.tenant_by_slug(PLATFORM_TENANT).await?
        {
            self.insert_key(KeyRow {
                tenant,
                name: "bootstrap",
                role: Role::Owner,
                key,
                creator: None,
            })
            .await?;
        }
        Ok(generated)
    }

    async fn insert_key(&self, new: KeyRow<'_>) -> Result<KeyInfo, Error> {
        let info = KeyInfo {
            id: uuid::Uuid::now_v7().to_string(),
            name: new.name.to_owned(),
            prefix: credentials::prefix(new.key),
            role: new.role,
            created_at: now_ms(),
            revoked_at: None,
            created_by: new.creator.map(|c| c.actor.clone()),
            creator_role: new.creator.map(|c| c.role),
        };
        sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, name, prefix, hash, role, created_at, created_by, creator_role) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
        )
        .bind(&info.id)
        .bind(new.tenant.to_string())
        .bind(new.name)
        .bind(&info.prefix)
        .bind(credentials::digest(new.key))
        .bind(new.role.as_str())
        .bind(info.created_at)
        .bind(info.created_by.as_deref())
        .bind(info.creator_role.map(Role::as_str))
        .execute(&self.pool)
        .await?;
        Ok(info)
    }

    /// A new API key; the key itself is returned here and never again.
    pub async fn create_key(&self, new: NewKey<'_>) -> Result<(KeyInfo, String), Error> {
        let key = credentials::generate("fmk");
        let info = self
            .insert_key(KeyRow {
                tenant: new.tenant,
                name: new.name,
                role: new.role,
                key: &key,
                creator: Some(new.creator),
            })
            .await?;
        Ok((info, key))
    }

    pub async fn list_keys(&self, tenant: TenantId) -> Result<Vec<KeyInfo>, Error> {
        let rows = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant_id = $1 ORDER BY id"
        ))
        .bind(tenant.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(key_info).collect()
    }

    /// Revokes a key of the tenant, and the stream tickets it asked for;
    /// a key revoked before stays as it was.
    pub async fn revoke_key(&self, tenant: TenantId, id: &str) -> Result<KeyInfo, Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE api_keys SET revoked_at = $3 WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL",
        )
        .bind(tenant.to_string())
        .bind(id)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM stream_tickets WHERE tenant_id = $1 AND actor = $2")
            .bind(tenant.to_string())
            .bind(format!("key:{id}"))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.get_key(tenant, id).await
    }

    /// A key of the tenant, revoked or not.
    pub async fn get_key(&self, tenant: TenantId, id: &str) -> Result<KeyInfo, Error> {
        let row = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant.to_string())
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(Error::NotFound)?;
        key_info(&row)
    }

    /// Creates a tenant named `name`, its slug made from the name (with a
    /// number added while it is taken), with its credit account; the
    /// caller's transaction adds its first user.
    pub(crate) async fn insert_tenant(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        name: &str,
        initial_credits: i64,
    ) -> Result<(TenantId, String), Error> {
        let id = TenantId::new();
        let base = slug_of(name);
        for n in 1..=50 {
            let slug = if n == 1 {
                base.clone()
            } else {
                format!("{base}-{n}")
            };
            let inserted = sqlx::query(
                "INSERT INTO tenants (id, slug, name, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(id.to_string())
            .bind(&slug)
            .bind(name)
            .bind(now_ms())
            .execute(&mut **tx)
            .await?
            .rows_affected();
            if inserted == 1 {
                Self::open_account(tx, id, initial_credits).await?;
                return Ok((id, slug));
            }
        }
        Err(Error::Conflict(format!(
            "too many tenants are named like {name:?}; choose another name"
        )))
    }

    /// Creates a tenant with an owner key; returns both (tests and tools).
    pub async fn create_tenant(&self, name: &str) -> Result<(TenantId, String), Error> {
        let mut tx = self.pool.begin().await?;
        let (id, _) = Self::insert_tenant(&mut tx, name, 0).await?;
        tx.commit().await?;
        let key = credentials::generate("fmk");
        self.insert_key(KeyRow {
            tenant: id,
            name: "owner",
            role: Role::Owner,
            key: &key,
            creator: None,
        })
        .await?;
        Ok((id, key))
    }

    /// Who a bearer credential (API key or session token) belongs to, if
    /// it is known, unrevoked and unexpired.
    pub async fn authenticate(&self, credential: &str) -> Result<Option<Principal>, Error> {
        if credential.starts_with("fms_") {
            return self.session_principal(credential).await;
        }
        // Keys made before prefixes grew to twelve characters kept eight.
        let short: String = credential.chars().take(8).collect();
        let rows = sqlx::query(
            "SELECT k.id AS key_id, k.role AS role, k.hash AS hash, t.id AS tenant_id, t.slug AS slug \
             FROM api_keys k JOIN tenants t ON t.id = k.tenant_id \
             WHERE k.prefix IN ($1, $2) AND k.revoked_at IS NULL",
        )
        .bind(credentials::prefix(credential))
        .bind(short)
        .fetch_all(self.reader())
        .await?;
        for row in rows {
            if credentials::matches(credential, &text(&row, "hash")?) {
                return Ok(Some(Principal {
                    tenant: parse(&row, "tenant_id")?,
                    tenant_slug: text(&row, "slug")?,
                    role: parse(&row, "role")?,
                    actor: format!("key:{}", text(&row, "key_id")?),
                    session: None,
                }));
            }
        }
        Ok(None)
    }

    /// A tenant's slug, by id.
    pub async fn tenant_slug(&self, tenant: TenantId) -> Result<Option<String>, Error> {
        let row = sqlx::query("SELECT slug FROM tenants WHERE id = $1")
            .bind(tenant.to_string())
            .fetch_optional(self.reader())
            .await?;
        row.map(|row| text(&row, "slug")).transpose()
    }

    /// The tenant's sandbox number: its own, assigned on first use and
    /// unique among tenants (a concurrent assignment of the same number to
    /// another tenant loses on the unique rule and takes the next).
    pub async fn sandbox_number(&self, tenant: TenantId) -> Result<i64, Error> {
        const ATTEMPTS: usize = 8;
        for _ in 0..ATTEMPTS {
            let row = sqlx::query("SELECT number FROM sandbox_numbers WHERE tenant_id = $1")
                .bind(tenant.to_string())
                .fetch_optional(&self.pool)
                .await?;
            if let Some(row) = row {
                return crate::int(&row, "number");
            }
            let assigned = sqlx::query(
                "INSERT INTO sandbox_numbers (tenant_id, number) \
                 SELECT $1, COALESCE(MAX(number) + 1, 0) FROM sandbox_numbers",
            )
            .bind(tenant.to_string())
            .execute(&self.pool)
            .await;
            match assigned.map_err(Error::from) {
                Ok(_) | Err(Error::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Err(Error::Conflict(format!(
            "no sandbox number assigned in {ATTEMPTS} attempts"
        )))
    }

    pub async fn tenant_by_slug(&self, slug: &str) -> Result<Option<TenantId>, Error> {
        let row = sqlx::query("SELECT id FROM tenants WHERE slug = $1")
            .bind(slug)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| parse(&row, "id")).transpose()
    }

    /// Every tenant, for the instance's administrators.
    pub async fn list_tenants(&self) -> Result<Vec<TenantInfo>, Error> {
        let rows = sqlx::query(
            "SELECT t.id AS id, t.slug AS slug, t.name AS name, t.created_at AS created_at, \
             t.rate_limit AS rate_limit, t.max_concurrent AS max_concurrent, \
             t.max_payload_bytes AS max_payload_bytes, \
             CAST(COALESCE(a.balance, 0) - COALESCE((SELECT SUM(u.credits) FROM usage_events u \
                  WHERE u.tenant_id = t.id), 0) AS BIGINT) AS balance \
             FROM tenants t LEFT JOIN credit_accounts a ON a.tenant_id = t.id ORDER BY t.slug",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(TenantInfo {
                    id: parse(row, "id")?,
                    slug: text(row, "slug")?,
                    name: text(row, "name")?,
                    created_at: crate::int(row, "created_at")?,
                    balance: crate::int(row, "balance")?,
                    limits: crate::TenantLimits {
                        rate_limit: crate::opt_int(row, "rate_limit")?,
                        max_concurrent: crate::opt_int(row, "max_concurrent")?,
                        max_payload_bytes: crate::opt_int(row, "max_payload_bytes")?,
                    },
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::slug_of;

    #[test]
    fn slugs_are_made_of_letters_digits_and_dashes() {
        assert_eq!(slug_of("Acme Corp."), "acme-corp");
        assert_eq!(slug_of("  Ünïcode -- Ltd "), "n-code-ltd");
        assert_eq!(slug_of("!!!"), "tenant");
    }
}
