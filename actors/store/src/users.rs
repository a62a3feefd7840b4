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

/// A login: an email, its password, and the tenant to open the session
/// for (needed only when the user belongs to several).
#[derive(Clone, Copy, Debug)]
pub struct LoginAttempt<'a> {
    pub email: &'a str,
    pub password: &'a str,
    pub tenant: Option<TenantId>,
    pub expires_at: i64,
}

/// How a login ended.
#[derive(Clone, Debug)]
pub enum LoginOutcome {
    Opened(NewSession),
    /// Unknown email, wrong password, or a tenant the user is not a member of.
    Refused,
    /// The right password, for a user of several tenants, and no tenant named.
    ChooseTenant(Vec<MemberTenant>),
}

/// A tenant a user belongs to, as a login that must name one lists them.
#[derive(Clone, Debug, serde::Serialize, schemars::JsonSchema)]
pub struct MemberTenant {
    pub id: TenantId,
    pub slug: String,
    pub name: String,
    pub role: Role,
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

/// An invitation accepted by the person it was for: with the password of
/// their account when the email has one, else the password of a new one.
#[derive(Clone, Debug)]
pub struct Acceptance<'a> {
    pub invitation: &'a PendingInvitation,
    pub password: &'a str,
}

/// How an acceptance ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accepted {
    /// The email is a member of the inviting tenant now.
    Joined(TenantId),
    /// The email has an account and this is not its password: nothing changed.
    WrongPassword,
}

/// An invitation found by its token, not used yet.
#[derive(Clone, Debug)]
pub struct PendingInvitation {
    id: String,
    tenant: TenantId,
    email: String,
    role: Role,
}

impl PendingInvitation {
    /// The address invited (normalized).
    pub fn email(&self) -> &str {
        &self.email
    }
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
    ) -> Result<Option<String>, Error> {
        let id = uuid::Uuid::now_v7().to_string();
        let inserted = sqlx::query(
            "INSERT INTO users (id, tenant_id, email, password_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(&id)
        .bind(tenant.to_string())
        .bind(email)
        .bind(password_hash)
        .bind(now_ms())
        .execute(&mut **tx)
        .await?
        .rows_affected();
        Ok((inserted == 1).then_some(id))
    }

    /// Makes a user a member of a tenant; false (and nothing changed) when
    /// they are one already.
    async fn insert_membership(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        user: &str,
        tenant: TenantId,
        role: Role,
    ) -> Result<bool, Error> {
        let inserted = sqlx::query(
            "INSERT INTO memberships (user_id, tenant_id, role, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(user)
        .bind(tenant.to_string())
        .bind(role.as_str())
        .bind(now_ms())
        .execute(&mut **tx)
        .await?
        .rows_affected();
        Ok(inserted == 1)
    }

    /// Holds a user's row until the transaction ends, so that a new
    /// membership and a removal from their last tenant (which deletes the
    /// account) happen one after the other; false when the account is gone.
    async fn hold_user(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        user: &str,
    ) -> Result<bool, Error> {
        let held = sqlx::query("UPDATE users SET email = email WHERE id = $1")
            .bind(user)
            .execute(&mut **tx)
            .await?
            .rows_affected();
        Ok(held == 1)
    }

    /// The id and password hash of the user an email belongs to.
    async fn user_by_email(&self, email: &str) -> Result<Option<(String, String)>, Error> {
        let row = sqlx::query("SELECT id, password_hash FROM users WHERE email = $1")
            .bind(normalize_email(email))
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| Ok((text(&row, "id")?, text(&row, "password_hash")?)))
            .transpose()
    }

    /// The tenants a user belongs to, oldest membership first.
    async fn member_tenants(&self, user: &str) -> Result<Vec<MemberTenant>, Error> {
        let rows = sqlx::query(
            "SELECT t.id AS id, t.slug AS slug, t.name AS name, m.role AS role \
             FROM memberships m JOIN tenants t ON t.id = m.tenant_id \
             WHERE m.user_id = $1 ORDER BY m.created_at, t.id",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(MemberTenant {
                    id: parse(row, "id")?,
                    slug: text(row, "slug")?,
                    name: text(row, "name")?,
                    role: parse(row, "role")?,
                })
            })
            .collect()
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
        let Some(user) = Self::insert_user(&mut tx, tenant, &email, &hash).await? else {
            tx.rollback().await?;
            return Ok(None);
        };
        Self::insert_membership(&mut tx, &user, tenant, Role::Owner).await?;
        tx.commit().await?;
        Ok(Some((tenant, slug)))
    }

    /// Opens a session for a known email and password, in the tenant named
    /// or the user's only one. An unknown email costs a password check all
    /// the same, so a refusal takes as long whether or not the user exists;
    /// memberships are read only once the password matched.
    pub async fn login(&self, attempt: LoginAttempt<'_>) -> Result<LoginOutcome, Error> {
        let Some((user, hash)) = self.user_by_email(attempt.email).await? else {
            verify_password(attempt.password, decoy().await).await;
            return Ok(LoginOutcome::Refused);
        };
        if !verify_password(attempt.password, &hash).await {
            return Ok(LoginOutcome::Refused);
        }
        let mut tenants = self.member_tenants(&user).await?;
        let member = match attempt.tenant {
            Some(named) => tenants.into_iter().find(|t| t.id == named),
            None if tenants.len() > 1 => return Ok(LoginOutcome::ChooseTenant(tenants)),
            None => tenants.pop(),
        };
        let Some(member) = member else {
            return Ok(LoginOutcome::Refused);
        };
        let token = credentials::generate("fms");
        let session = uuid::Uuid::now_v7().to_string();
        // Opened only while the membership still exists: a removal that
        // came after the memberships were read refuses the login.
        let opened = sqlx::query(
            "INSERT INTO sessions (id, user_id, tenant_id, prefix, hash, created_at, expires_at) \
             SELECT $1, $2, $3, $4, $5, CAST($6 AS BIGINT), CAST($7 AS BIGINT) WHERE EXISTS \
             (SELECT 1 FROM memberships WHERE user_id = $2 AND tenant_id = $3)",
        )
        .bind(&session)
        .bind(&user)
        .bind(member.id.to_string())
        .bind(credentials::prefix(&token))
        .bind(credentials::digest(&token))
        .bind(now_ms())
        .bind(attempt.expires_at)
        .execute(&self.pool)
        .await;
        match opened {
            Ok(done) if done.rows_affected() == 1 => {}
            Ok(_) => return Ok(LoginOutcome::Refused),
            // The account went with its last membership meanwhile.
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                return Ok(LoginOutcome::Refused);
            }
            Err(e) => return Err(e.into()),
        }
        Ok(LoginOutcome::Opened(NewSession {
            token,
            expires_at: attempt.expires_at,
            principal: Principal {
                tenant: member.id,
                tenant_slug: member.slug,
                role: member.role,
                actor: format!("user:{user}"),
                session: Some(session),
            },
        }))
    }

    /// A session acts in the tenant it was opened for, with the role of the
    /// user's membership there; it ends with the membership.
    pub(crate) async fn session_principal(&self, token: &str) -> Result<Option<Principal>, Error> {
        let rows = sqlx::query(
            "SELECT s.id AS id, s.hash AS hash, m.user_id AS user_id, m.role AS role, \
                    t.id AS tenant_id, t.slug AS slug \
             FROM sessions s \
             JOIN memberships m ON m.user_id = s.user_id AND m.tenant_id = s.tenant_id \
             JOIN tenants t ON t.id = s.tenant_id \
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

    /// Ends a session, and the stream tickets its user asked for in its
    /// tenant (a ticket does not say which of the user's sessions asked);
    /// ending one that already ended changes nothing.
    pub async fn revoke_session(&self, session: &str) -> Result<(), Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(session)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "DELETE FROM stream_tickets WHERE EXISTS (SELECT 1 FROM sessions s \
             WHERE s.id = $1 AND stream_tickets.actor = 'user:' || s.user_id \
             AND stream_tickets.tenant_id = s.tenant_id)",
        )
        .bind(session)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn list_users(&self, tenant: TenantId) -> Result<Vec<UserInfo>, Error> {
        let rows = sqlx::query(
            "SELECT u.id AS id, u.email AS email, m.role AS role, m.created_at AS created_at \
             FROM memberships m JOIN users u ON u.id = m.user_id \
             WHERE m.tenant_id = $1 ORDER BY u.id",
        )
        .bind(tenant.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_info).collect()
    }

    pub async fn get_user(&self, tenant: TenantId, id: &str) -> Result<UserInfo, Error> {
        let row = sqlx::query(
            "SELECT u.id AS id, u.email AS email, m.role AS role, m.created_at AS created_at \
             FROM memberships m JOIN users u ON u.id = m.user_id \
             WHERE m.tenant_id = $1 AND m.user_id = $2",
        )
        .bind(tenant.to_string())
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(Error::NotFound)?;
        user_info(&row)
    }

    /// Removes a user from the tenant: ends their sessions there, revokes
    /// the API keys they created there (and the keys those keys created,
    /// and so on), withdraws the invitations any of them sent that are not
    /// accepted yet and those of the tenant for the user's email, and drops
    /// the stream tickets any of them asked for there. Their other
    /// memberships stay; a user left with none is deleted, so that the
    /// email may be registered or invited afresh.
    pub async fn remove_user(&self, tenant: TenantId, id: &str) -> Result<(), Error> {
        // The user and every key descended from them, as actors.
        const GRANTS: &str = "WITH RECURSIVE grants (actor) AS ( \
                SELECT 'user:' || $1 \
                UNION SELECT 'key:' || k.id FROM api_keys k JOIN grants g ON k.created_by = g.actor \
                WHERE k.tenant_id = $2)";
        let mut tx = self.pool.begin().await?;
        if !Self::hold_user(&mut tx, id).await? {
            return Err(Error::NotFound);
        }
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
        // Invitations of this tenant for the removed person's email, left
        // pending while they were a member, would let them back in.
        sqlx::query(
            "UPDATE invitations SET expires_at = $3 \
             WHERE tenant_id = $2 AND accepted_at IS NULL AND expires_at > $3 \
             AND email = (SELECT email FROM users WHERE id = $1)",
        )
        .bind(id)
        .bind(tenant.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(&format!(
            "{GRANTS} DELETE FROM stream_tickets \
             WHERE tenant_id = $2 AND actor IN (SELECT actor FROM grants)"
        ))
        .bind(id)
        .bind(tenant.to_string())
        .execute(&mut *tx)
        .await?;
        let gone = sqlx::query("DELETE FROM memberships WHERE user_id = $1 AND tenant_id = $2")
            .bind(id)
            .bind(tenant.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if gone == 0 {
            return Err(Error::NotFound);
        }
        let lone = "NOT EXISTS (SELECT 1 FROM memberships WHERE user_id = $1)";
        for forget in [
            format!("DELETE FROM sessions WHERE user_id = $1 AND {lone}"),
            format!("DELETE FROM users WHERE id = $1 AND {lone}"),
        ] {
            sqlx::query(&forget).bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// An invitation; its token is returned here and never again.
    /// `Conflict` when the email is a member of the tenant already.
    pub async fn invite(&self, new: NewInvitation<'_>) -> Result<(InvitationInfo, String), Error> {
        let member = sqlx::query(
            "SELECT 1 FROM memberships m JOIN users u ON u.id = m.user_id \
             WHERE u.email = $1 AND m.tenant_id = $2",
        )
        .bind(normalize_email(new.email))
        .bind(new.tenant.to_string())
        .fetch_optional(&self.pool)
        .await?;
        if member.is_some() {
            return Err(Error::Conflict(format!(
                "email: {} is a member of this tenant already",
                normalize_email(new.email)
            )));
        }
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

    /// Uses an invitation, once. An email with an account joins the
    /// inviting tenant only with that account's password (an invitation
    /// never hands over an account); any other becomes a new user with the
    /// password given. `NotFound` when it was used meanwhile; `Conflict`
    /// (and the invitation is left unused) when the email is a member of
    /// the tenant already, or got an account while this was checked.
    pub async fn accept_invitation(&self, a: Acceptance<'_>) -> Result<Accepted, Error> {
        let invitation = a.invitation;
        // The existing user's id, or the new user's password hash.
        let joining = match self.user_by_email(&invitation.email).await? {
            Some((_, hash)) if !verify_password(a.password, &hash).await => {
                return Ok(Accepted::WrongPassword);
            }
            Some((user, _)) => Ok(user),
            None => Err(hash_password(a.password).await?),
        };
        let mut tx = self.pool.begin().await?;
        // The account first, as a removal holds it first too: taking them in
        // one order keeps the two from waiting on each other.
        if let Ok(user) = &joining
            && !Self::hold_user(&mut tx, user).await?
        {
            tx.rollback().await?;
            return Err(Error::Conflict(
                "the account was deleted meanwhile (removed from its last tenant); \
                 accept again with a new password"
                    .into(),
            ));
        }
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
        let user = match joining {
            Ok(user) => user,
            Err(hash) => {
                let Some(user) =
                    Self::insert_user(&mut tx, invitation.tenant, &invitation.email, &hash).await?
                else {
                    tx.rollback().await?;
                    return Err(Error::Conflict(
                        "the email got an account meanwhile; accept again with its password".into(),
                    ));
                };
                user
            }
        };
        if !Self::insert_membership(&mut tx, &user, invitation.tenant, invitation.role).await? {
            tx.rollback().await?;
            return Err(Error::Conflict(format!(
                "{} is a member of this tenant already; sign in instead",
                invitation.email
            )));
        }
        tx.commit().await?;
        Ok(Accepted::Joined(invitation.tenant))
    }
}
