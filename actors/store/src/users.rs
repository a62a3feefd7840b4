//! Users, their sessions, and invitations to join a tenant. Passwords are
//! hashed with argon2id (its recommended parameters) off the async threads.

use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};
use argon2::{Argon2, PasswordHash};
use flowmesh_model::{Role, TenantId};
use sqlx::any::AnyRow;

use crate::credentials;
use crate::{Error, Principal, Store, int, now_ms, parse, text};

/// A new tenant and its owner.
#[derive(Clone, Debug)]
pub struct Registration<'a> {
    pub email: &'a str,
    pub password: &'a str,
    pub tenant_name: &'a str,
    pub initial_credits: i64,
}

/// A session just opened; the token is shown this once.
#[derive(Clone, Debug)]
pub struct NewSession {
    pub token: String,
    pub expires_at: i64,
    pub principal: Principal,
}

#[derive(Clone, Debug, serde::Serialize, schemars::JsonSchema)]
pub struct UserInfo {
    pub id: String,
    pub email: String,
    pub role: Role,
    pub created_at: i64,
}

#[derive(Clone, Debug)]
pub struct NewInvitation<'a> {
    pub tenant: TenantId,
    pub email: &'a str,
    pub role: Role,
    pub created_by: &'a str,
    pub expires_at: i64,
}

#[derive(Clone, Debug, serde::Serialize, schemars::JsonSchema)]
pub struct InvitationInfo {
    pub id: String,
    pub email: String,
    pub role: Role,
    pub expires_at: i64,
}

/// An invitation accepted by the person it was for.
#[derive(Clone, Debug)]
pub struct Acceptance<'a> {
    pub invitation: &'a PendingInvitation,
    pub password: &'a str,
}

/// An invitation found by its token, not used yet.
#[derive(Clone, Debug)]
pub struct PendingInvitation {
    id: String,
    tenant: TenantId,
    email: String,
    role: Role,
}

/// A hash verified when an email is unknown, so that a failed login takes
/// as long whether or not the user exists.
async fn decoy() -> &'static str {
    static DECOY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    DECOY
        .get_or_init(|| async {
            hash_password(&credentials::generate("decoy"))
                .await
                .unwrap_or_default()
        })
        .await
}

async fn hash_password(password: &str) -> Result<String, Error> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(Error::PasswordHash)
    })
    .await?
}

async fn verify_password(password: &str, hash: &str) -> bool {
    let (password, hash) = (password.to_owned(), hash.to_owned());
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false)
}

/// The one spelling of an email that accounts and invitations are found by.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

fn user_info(row: &AnyRow) -> Result<UserInfo, Error> {
    Ok(UserInfo {
        id: text(row, "id")?,
        email: text(row, "email")?,
        role: parse(row, "role")?,
        created_at: int(row, "created_at")?,
    })
}

impl Store {
    /// Adds a user; none when the email is a user already (of any tenant),
    /// without failing the caller's transaction.
    async fn insert_user(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        tenant: TenantId,
        email: &str,
        password_hash: &str,
        role: Role,
    ) -> Result<Option<String>, Error> {
        let id = uuid::Uuid::now_v7().to_string();
        let inserted = sqlx::query(
            "INSERT INTO users (id, tenant_id, email, password_hash, role, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(&id)
        .bind(tenant.to_string())
        .bind(email)
        .bind(password_hash)
        .bind(role.as_str())
        .bind(now_ms())
        .execute(&mut **tx)
        .await?
        .rows_affected();
        Ok((inserted == 1).then_some(id))
    }

    /// Creates a tenant with its owner, in one transaction; returns the
    /// tenant's id and slug, or none (and creates nothing) when the email
    /// is a user already or has a pending invitation. Both take one password hash and one transaction.
    pub async fn register(&self, r: Registration<'_>) -> Result<Option<(TenantId, String)>, Error> {
        let hash = hash_password(r.password).await?;
        let email = normalize_email(r.email);
        let mut tx = self.pool.begin().await?;
        // An email with a pending invitation is its invitee's to take: a
        // registration by someone else must not keep them out.
        let invited = sqlx::query(
            "SELECT 1 FROM invitations WHERE email = $1 AND accepted_at IS NULL AND expires_at > $2",
        )
        .bind(&email)
        .bind(now_ms())
        .fetch_optional(&mut *tx)
        .await?;
        if invited.is_some() {
            tx.rollback().await?;
            return Ok(None);
        }
        let (tenant, slug) = Self::insert_tenant(&mut tx, r.tenant_name, r.initial_credits).await?;
        let user = Self::insert_user(&mut tx, tenant, &email, &hash, Role::Owner).await?;
        if user.is_none() {
            tx.rollback().await?;
            return Ok(None);
        }
        tx.commit().await?;
        Ok(Some((tenant, slug)))
    }

    /// Opens a session for a known email and password; none otherwise.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        expires_at: i64,
    ) -> Result<Option<NewSession>, Error> {
        let row = sqlx::query(
            "SELECT u.id AS id, u.password_hash AS password_hash, u.role AS role, \
                    t.id AS tenant_id, t.slug AS slug \
             FROM users u JOIN tenants t ON t.id = u.tenant_id WHERE u.email = $1",
        )
        .bind(normalize_email(email))
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            verify_password(password, decoy().await).await;
            return Ok(None);
        };
        if !verify_password(password, &text(&row, "password_hash")?).await {
            return Ok(None);
        }
        let user = text(&row, "id")?;
        let tenant: TenantId = parse(&row, "tenant_id")?;
        let token = credentials::generate("fms");
        let session = uuid::Uuid::now_v7().to_string();
        sqlx::query(
            "INSERT INTO sessions (id, user_id, tenant_id, prefix, hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&session)
        .bind(&user)
        .bind(tenant.to_string())
        .bind(credentials::prefix(&token))
        .bind(credentials::digest(&token))
        .bind(now_ms())
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(Some(NewSession {
            token,
            expires_at,
            principal: Principal {
                tenant,
                tenant_slug: text(&row, "slug")?,
                role: parse(&row, "role")?,
                actor: format!("user:{user}"),
                session: Some(session),
            },
        }))
    }

    pub(crate) async fn session_principal(&self, token: &str) -> Result<Option<Principal>, Error> {
        let rows = sqlx::query(
            "SELECT s.id AS id, s.hash AS hash, u.id AS user_id, u.role AS role, \
                    t.id AS tenant_id, t.slug AS slug \
             FROM sessions s JOIN users u ON u.id = s.user_id JOIN tenants t ON t.id = u.tenant_id \
             WHERE s.prefix = $1 AND s.revoked_at IS NULL AND s.expires_at > $2",
        )
        .bind(credentials::prefix(token))
        .bind(now_ms())
        .fetch_all(self.reader())
        .await?;
        for row in rows {
            if credentials::matches(token, &text(&row, "hash")?) {
                return Ok(Some(Principal {
                    tenant: parse(&row, "tenant_id")?,
                    tenant_slug: text(&row, "slug")?,
                    role: parse(&row, "role")?,
                    actor: format!("user:{}", text(&row, "user_id")?),
                    session: Some(text(&row, "id")?),
                }));
            }
        }
        Ok(None)
    }

    /// Ends a session, and the stream tickets its user asked for (a ticket
    /// does not say which of the user's sessions asked); ending one that
    /// already ended changes nothing.
    pub async fn revoke_session(&self, session: &str) -> Result<(), Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(session)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "DELETE FROM stream_tickets WHERE actor IN \
             (SELECT 'user:' || user_id FROM sessions WHERE id = $1)",
        )
        .bind(session)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn list_users(&self, tenant: TenantId) -> Result<Vec<UserInfo>, Error> {
        let rows = sqlx::query(
            "SELECT id, email, role, created_at FROM users WHERE tenant_id = $1 ORDER BY id",
        )
        .bind(tenant.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_info).collect()
    }

    pub async fn get_user(&self, tenant: TenantId, id: &str) -> Result<UserInfo, Error> {
        let row = sqlx::query(
            "SELECT id, email, role, created_at FROM users WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant.to_string())
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(Error::NotFound)?;
        user_info(&row)
    }

    /// Removes a user of the tenant, ends their sessions, revokes the API
    /// keys they created (and the keys those keys created, and so on),
    /// withdraws the invitations any of them sent that are not accepted yet,
    /// and drops the stream tickets any of them asked for.
    pub async fn remove_user(&self, tenant: TenantId, id: &str) -> Result<(), Error> {
        // The user and every key descended from them, as actors.
        const GRANTS: &str = "WITH RECURSIVE grants (actor) AS ( \
                SELECT 'user:' || $1 \
                UNION SELECT 'key:' || k.id FROM api_keys k JOIN grants g ON k.created_by = g.actor \
                WHERE k.tenant_id = $2)";
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND tenant_id = $2")
            .bind(id)
            .bind(tenant.to_string())
            .execute(&mut *tx)
            .await?;
        let now = now_ms();
        for withdraw in [
            "UPDATE api_keys SET revoked_at = $3 WHERE tenant_id = $2 AND revoked_at IS NULL",
            "UPDATE invitations SET expires_at = $3 \
             WHERE tenant_id = $2 AND accepted_at IS NULL AND expires_at > $3",
        ] {
            sqlx::query(&format!(
                "{GRANTS} {withdraw} AND created_by IN (SELECT actor FROM grants)"
            ))
            .bind(id)
            .bind(tenant.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(&format!(
            "{GRANTS} DELETE FROM stream_tickets \
             WHERE tenant_id = $2 AND actor IN (SELECT actor FROM grants)"
        ))
        .bind(id)
        .bind(tenant.to_string())
        .execute(&mut *tx)
        .await?;
        let gone = sqlx::query("DELETE FROM users WHERE id = $1 AND tenant_id = $2")
            .bind(id)
            .bind(tenant.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if gone == 0 {
            return Err(Error::NotFound);
        }
        tx.commit().await?;
        Ok(())
    }

    /// An invitation; its token is returned here and never again.
    pub async fn invite(&self, new: NewInvitation<'_>) -> Result<(InvitationInfo, String), Error> {
        let token = credentials::generate("fmi");
        let info = InvitationInfo {
            id: uuid::Uuid::now_v7().to_string(),
            email: normalize_email(new.email),
            role: new.role,
            expires_at: new.expires_at,
        };
        sqlx::query(
            "INSERT INTO invitations (id, tenant_id, email, role, prefix, hash, created_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&info.id)
        .bind(new.tenant.to_string())
        .bind(&info.email)
        .bind(new.role.as_str())
        .bind(credentials::prefix(&token))
        .bind(credentials::digest(&token))
        .bind(new.created_by)
        .bind(now_ms())
        .bind(new.expires_at)
        .execute(&self.pool)
        .await?;
        Ok((info, token))
    }

    /// The pending (not used, not expired) invitation a token belongs to;
    /// found without hashing any password.
    pub async fn pending_invitation(
        &self,
        token: &str,
    ) -> Result<Option<PendingInvitation>, Error> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, email, role, hash FROM invitations \
             WHERE prefix = $1 AND accepted_at IS NULL AND expires_at > $2",
        )
        .bind(credentials::prefix(token))
        .bind(now_ms())
        .fetch_all(&self.pool)
        .await?;
        let Some(row) = rows
            .into_iter()
            .find(|row| text(row, "hash").is_ok_and(|h| credentials::matches(token, &h)))
        else {
            return Ok(None);
        };
        Ok(Some(PendingInvitation {
            id: text(&row, "id")?,
            tenant: parse(&row, "tenant_id")?,
            email: text(&row, "email")?,
            role: parse(&row, "role")?,
        }))
    }

    /// Uses an invitation, once: its person becomes a user of the inviting
    /// tenant unless the email is a user already (then nothing else
    /// changes). Returns the inviting tenant either way; `NotFound` when
    /// it was used meanwhile.
    pub async fn accept_invitation(&self, a: Acceptance<'_>) -> Result<TenantId, Error> {
        let invitation = a.invitation;
        let hash = hash_password(a.password).await?;
        let mut tx = self.pool.begin().await?;
        let taken = sqlx::query(
            "UPDATE invitations SET accepted_at = $2 \
             WHERE id = $1 AND accepted_at IS NULL AND expires_at > $2",
        )
        .bind(&invitation.id)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if taken == 0 {
            return Err(Error::NotFound);
        }
        Self::insert_user(
            &mut tx,
            invitation.tenant,
            &invitation.email,
            &hash,
            invitation.role,
        )
        .await?;
        tx.commit().await?;
        Ok(invitation.tenant)
    }
}
