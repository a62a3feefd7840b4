//! Tenants' secrets, sealed with XChaCha20-Poly1305 under a key from the
//! environment. The tenant and the secret's name are the associated data:
//! a sealed value copied to another tenant's row, or renamed, does not open.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use flowmesh_model::TenantId;
use serde::Serialize;

use crate::{Error, Store, int, now_ms, text};

/// The key secrets are sealed with: 32 bytes.
#[derive(Clone)]
pub struct SealingKey(chacha20poly1305::Key);

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(..)")
    }
}

impl SealingKey {
    /// From 32 bytes written in base64 (as `openssl rand -base64 32` prints them).
    pub fn from_base64(text: &str) -> Result<SealingKey, Error> {
        let bytes = B64.decode(text.trim()).map_err(|_| {
            Error::Invalid(
                "the secrets key must be 32 bytes in base64 (openssl rand -base64 32)".into(),
            )
        })?;
        if bytes.len() != 32 {
            return Err(Error::Invalid(format!(
                "the secrets key must be 32 bytes, not {}; make one with openssl rand -base64 32",
                bytes.len()
            )));
        }
        Ok(SealingKey(*chacha20poly1305::Key::from_slice(&bytes)))
    }

    pub fn generate() -> SealingKey {
        SealingKey(XChaCha20Poly1305::generate_key(&mut OsRng))
    }

    pub fn to_base64(&self) -> String {
        B64.encode(self.0.as_slice())
    }

    fn aad(tenant: TenantId, name: &str) -> Vec<u8> {
        format!("flowmesh-secret:{tenant}:{name}").into_bytes()
    }

    fn seal(&self, tenant: TenantId, name: &str, value: &str) -> Result<(String, String), Error> {
        let cipher = XChaCha20Poly1305::new(&self.0);
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: value.as_bytes(),
                    aad: &Self::aad(tenant, name),
                },
            )
            .map_err(|_| Error::Invalid("the secret could not be sealed".into()))?;
        Ok((B64.encode(nonce), B64.encode(sealed)))
    }

    fn open(
        &self,
        tenant: TenantId,
        name: &str,
        nonce: &str,
        sealed: &str,
    ) -> Result<String, Error> {
        let corrupt = || {
            Error::Corrupt(format!(
                "secret {name:?} does not open with this key (sealed under another key, or altered)"
            ))
        };
        let nonce = B64.decode(nonce).map_err(|_| corrupt())?;
        let sealed = B64.decode(sealed).map_err(|_| corrupt())?;
        if nonce.len() != 24 {
            return Err(corrupt());
        }
        let cipher = XChaCha20Poly1305::new(&self.0);
        let plain = cipher
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &sealed,
                    aad: &Self::aad(tenant, name),
                },
            )
            .map_err(|_| corrupt())?;
        String::from_utf8(plain).map_err(|_| corrupt())
    }
}

/// What [`Store::reseal_secrets`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Resealed {
    /// Secrets that opened with the old key and are now sealed with the new.
    pub resealed: u64,
    /// Secrets already sealed with the new key (a rotation run again).
    pub already: u64,
}

/// A secret as listed: never its value.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct SecretInfo {
    pub name: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A secret's name: letters, digits, `_`, `-`, `.`; 1 to 128 characters.
pub fn valid_secret_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

impl Store {
    /// Creates or replaces a secret; returns whether it was new.
    pub async fn put_secret(
        &self,
        key: &SealingKey,
        tenant: TenantId,
        name: &str,
        value: &str,
    ) -> Result<bool, Error> {
        let (nonce, sealed) = key.seal(tenant, name, value)?;
        let now = now_ms();
        let updated = sqlx::query(
            "UPDATE secrets SET nonce = $3, sealed = $4, updated_at = $5 WHERE tenant_id = $1 AND name = $2",
        )
        .bind(tenant.to_string())
        .bind(name)
        .bind(&nonce)
        .bind(&sealed)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if updated == 1 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO secrets (tenant_id, name, nonce, sealed, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) \
             ON CONFLICT (tenant_id, name) DO UPDATE SET nonce = excluded.nonce, sealed = excluded.sealed, \
             updated_at = excluded.updated_at",
        )
        .bind(tenant.to_string())
        .bind(name)
        .bind(&nonce)
        .bind(&sealed)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(true)
    }

    /// A secret's value, opened; none when the tenant has no such secret.
    pub async fn secret_value(
        &self,
        key: &SealingKey,
        tenant: TenantId,
        name: &str,
    ) -> Result<Option<String>, Error> {
        let row =
            sqlx::query("SELECT nonce, sealed FROM secrets WHERE tenant_id = $1 AND name = $2")
                .bind(tenant.to_string())
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|row| key.open(tenant, name, &text(&row, "nonce")?, &text(&row, "sealed")?))
            .transpose()
    }

    /// Whether `key` opens the secrets already sealed (a few of the most
    /// recent, since a rotation seals them all anew): `None` when there are
    /// none, so nothing can be told yet.
    pub async fn key_opens_secrets(&self, key: &SealingKey) -> Result<Option<bool>, Error> {
        let rows = sqlx::query(
            "SELECT tenant_id, name, nonce, sealed FROM secrets ORDER BY updated_at DESC LIMIT 3",
        )
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        for row in &rows {
            let tenant: TenantId = crate::parse(row, "tenant_id")?;
            let name = text(row, "name")?;
            if key
                .open(tenant, &name, &text(row, "nonce")?, &text(row, "sealed")?)
                .is_ok()
            {
                return Ok(Some(true));
            }
        }
        Ok(Some(false))
    }

    /// Seals every tenant's secret under `new`, in one transaction: either
    /// all of them move to the new key or none does. A secret that opens
    /// only with `new` is left as it is, so a rotation can be run again
    /// (after one that wrote the database but not the key file, or to
    /// catch up with secrets an engine still on the old key wrote). A
    /// secret that opens with neither key stops the rotation and changes
    /// nothing.
    pub async fn reseal_secrets(
        &self,
        old: &SealingKey,
        new: &SealingKey,
    ) -> Result<Resealed, Error> {
        let mut tx = self.pool.begin().await?;
        let lock = match self.backend {
            crate::Backend::Postgres => "FOR UPDATE",
            crate::Backend::Sqlite => "",
        };
        let rows = sqlx::query(&format!(
            "SELECT tenant_id, name, nonce, sealed FROM secrets ORDER BY tenant_id, name {lock}"
        ))
        .fetch_all(&mut *tx)
        .await?;
        let mut done = Resealed::default();
        for row in &rows {
            let tenant: TenantId = crate::parse(row, "tenant_id")?;
            let name = text(row, "name")?;
            let (nonce, sealed) = (text(row, "nonce")?, text(row, "sealed")?);
            let value = match old.open(tenant, &name, &nonce, &sealed) {
                Ok(value) => value,
                Err(_) if new.open(tenant, &name, &nonce, &sealed).is_ok() => {
                    done.already += 1;
                    continue;
                }
                Err(_) => {
                    return Err(Error::Corrupt(format!(
                        "secret {name:?} of tenant {tenant} opens with neither the old nor the new key; nothing was changed"
                    )));
                }
            };
            let (nonce, sealed) = new.seal(tenant, &name, &value)?;
            sqlx::query(
                "UPDATE secrets SET nonce = $3, sealed = $4 WHERE tenant_id = $1 AND name = $2",
            )
            .bind(tenant.to_string())
            .bind(&name)
            .bind(&nonce)
            .bind(&sealed)
            .execute(&mut *tx)
            .await?;
            done.resealed += 1;
        }
        tx.commit().await?;
        Ok(done)
    }

    pub async fn list_secrets(&self, tenant: TenantId) -> Result<Vec<SecretInfo>, Error> {
        let rows = sqlx::query(
            "SELECT name, created_at, updated_at FROM secrets WHERE tenant_id = $1 ORDER BY name",
        )
        .bind(tenant.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(SecretInfo {
                    name: text(row, "name")?,
                    created_at: int(row, "created_at")?,
                    updated_at: int(row, "updated_at")?,
                })
            })
            .collect()
    }

    pub async fn delete_secret(&self, tenant: TenantId, name: &str) -> Result<(), Error> {
        let gone = sqlx::query("DELETE FROM secrets WHERE tenant_id = $1 AND name = $2")
            .bind(tenant.to_string())
            .bind(name)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if gone == 0 {
            return Err(Error::NotFound);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_for_its_tenant_name_and_key() {
        let key = SealingKey::generate();
        let (a, b) = (TenantId::new(), TenantId::new());
        let (nonce, sealed) = key.seal(a, "token", "s3cr3t").unwrap();
        assert!(!sealed.contains("s3cr3t"));
        assert_eq!(key.open(a, "token", &nonce, &sealed).unwrap(), "s3cr3t");
        assert!(matches!(
            key.open(b, "token", &nonce, &sealed),
            Err(Error::Corrupt(_))
        ));
        assert!(matches!(
            key.open(a, "other", &nonce, &sealed),
            Err(Error::Corrupt(_))
        ));
        let other = SealingKey::generate();
        assert!(matches!(
            other.open(a, "token", &nonce, &sealed),
            Err(Error::Corrupt(_))
        ));
        let again = SealingKey::from_base64(&key.to_base64()).unwrap();
        assert_eq!(again.open(a, "token", &nonce, &sealed).unwrap(), "s3cr3t");
        assert!(SealingKey::from_base64("c2hvcnQ=").is_err());
    }
}
