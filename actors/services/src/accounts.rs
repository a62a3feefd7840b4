//! Accounts and access: registration, sessions, invitations, users, API
//! keys, secrets and the audit log.

use flowmesh_api::{AcceptRequest, LoginRequest, RegisterRequest, Session};
use std::time::Duration;

use flowmesh_model::{Role, TenantId};
use flowmesh_store::{
    Acceptance, Accepted, AuditQuery, AuditRecord, InvitationInfo, KeyInfo, LoginAttempt,
    LoginOutcome, NewInvitation, NewKey, Principal, Registration, SecretInfo, UserInfo,
    credentials, now_ms, valid_secret_name,
};

use super::api::EngineHandle;
use super::blank;
use crate::cache::{Bound, Cache};
use crate::error::Error;
use crate::shared::Shared;

/// How long an authenticated credential is trusted without asking the
/// store again: a revocation reaches every process within this.
pub(crate) const AUTH_TTL: Duration = Duration::from_secs(2);

/// Credentials recently found valid, by digest.
pub(crate) struct AuthCache(pub(super) Cache<String, Principal>);

impl Default for AuthCache {
    fn default() -> Self {
        Self(
            Bound {
                entries: 100_000,
                live: Some(AUTH_TTL),
                idle: None,
            }
            .build(),
        )
    }
}

impl AuthCache {
    fn get(&self, digest: &str) -> Option<Principal> {
        self.0.get(digest)
    }

    fn put(&self, digest: String, principal: Principal) {
        self.0.insert(digest, principal);
    }

    /// Forgets everything: a revocation on this process applies at once.
    fn clear(&self) {
        self.0.invalidate_all();
    }
}

/// `local@domain.tld` without spaces: the OpenAPI document's pattern says
/// the same (`^[^@ \t\n\r\f\v]+@[^ \t\n\r\f\v]*\.[^ \t\n\r\f\v]*$`).
fn check_email(email: &str) -> Result<(), Error> {
    let ok = email.chars().count() <= 254
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
        && !email
            .chars()
            .any(|c| c.is_ascii_whitespace() || c == '\u{b}');
    if ok {
        Ok(())
    } else {
        Err(Error::BadRequest(
            "email: must be an email address such as ada@example.com".into(),
        ))
    }
}

fn check_password(password: &str) -> Result<(), Error> {
    match password.chars().count() {
        0..=9 => Err(Error::BadRequest(
            "password: must have at least 10 characters".into(),
        )),
        10..=1024 => Ok(()),
        _ => Err(Error::BadRequest(
            "password: must have at most 1024 characters".into(),
        )),
    }
}

/// A caller may hand out at most its own role.
fn check_grantable(who: &Principal, role: Role) -> Result<(), Error> {
    if role > who.role {
        return Err(Error::Forbidden(format!(
            "the role {} cannot give the role {role}",
            who.role
        )));
    }
    Ok(())
}

/// Keys made at bootstrap, or before creators were kept, count as an
/// owner's: only an owner revokes them.
fn check_revocable(who: &Principal, key: &KeyInfo) -> Result<(), Error> {
    let creator = key.creator_role.unwrap_or(Role::Owner);
    if key.role > who.role {
        return Err(Error::Forbidden(format!(
            "API key {}: has the role {}; the role {} cannot revoke it",
            key.id, key.role, who.role
        )));
    }
    if creator > who.role {
        return Err(Error::Forbidden(format!(
            "API key {}: made by an {creator}; only an {creator} can revoke it",
            key.id
        )));
    }
    Ok(())
}

impl EngineHandle {
    /// Who a bearer credential belongs to; none when it is unknown,
    /// revoked or expired.
    pub async fn authenticate(&self, credential: &str) -> Result<Option<Principal>, Error> {
        let digest = credentials::digest(credential);
        if let Some(principal) = self.auth.get(&digest) {
            return Ok(Some(principal));
        }
        let found = self.shared.store.authenticate(credential).await?;
        if let Some(principal) = &found {
            self.auth.put(digest, principal.clone());
        }
        Ok(found)
    }

    /// Creates a tenant and its owner unless the email is a user already;
    /// either way the caller learns nothing more than that the request was
    /// taken (then signs in), so registration cannot tell who has an
    /// account. Returns the new tenant, for the audit log only.
    pub async fn register(&self, request: RegisterRequest) -> Result<Option<TenantId>, Error> {
        if !self.shared.options.tenancy.registration {
            return Err(Error::Forbidden(
                "registration is closed on this instance; ask an administrator for an invitation"
                    .into(),
            ));
        }
        check_email(&request.email)?;
        check_password(&request.password)?;
        let name = request.tenant.trim();
        if blank(name) || name.chars().count() > 100 {
            return Err(Error::BadRequest(
                "tenant: must be a name of 1 to 100 characters".into(),
            ));
        }
        self.registrations.admit(request.source)?;
        let _slot = self.logins.hashing_slot().await?;
        let created = self
            .shared
            .store
            .register(Registration {
                email: &request.email,
                password: &request.password,
                tenant_name: name,
                initial_credits: self.shared.options.tenancy.initial_credits,
            })
            .await?;
        Ok(created.map(|(tenant, _)| tenant))
    }

    pub async fn login(&self, request: LoginRequest<'_>) -> Result<Session, Error> {
        let LoginRequest {
            email,
            password,
            tenant,
            source,
        } = request;
        self.logins.admit(email, source)?;
        match self.open_session(email, password, tenant).await {
            Ok(Some(session)) => {
                self.logins.succeeded(email, source);
                Ok(session)
            }
            Ok(None) => {
                self.logins.failed(Some(email), source);
                Err(Error::Unauthorized(
                    "unknown email or wrong password".into(),
                ))
            }
            // The password was right: no failure to count.
            Err(e @ Error::TenantRequired(_)) => {
                self.logins.succeeded(email, source);
                Err(e)
            }
            Err(e) => {
                self.logins.refund(Some(email), source);
                Err(e)
            }
        }
    }

    /// A session for a known email and password, in the tenant named or the
    /// user's only one; none otherwise (a tenant the user is not a member
    /// of is refused like a wrong password).
    async fn open_session(
        &self,
        email: &str,
        password: &str,
        tenant: Option<TenantId>,
    ) -> Result<Option<Session>, Error> {
        let expires_at = now_ms() + self.shared.options.tenancy.session_ttl.0.as_millis() as i64;
        let _slot = self.logins.hashing_slot().await?;
        let attempt = LoginAttempt {
            email,
            password,
            tenant,
            expires_at,
        };
        let session = match self.shared.store.login(attempt).await? {
            LoginOutcome::Opened(session) => session,
            LoginOutcome::Refused => return Ok(None),
            LoginOutcome::ChooseTenant(tenants) => return Err(Error::TenantRequired(tenants)),
        };
        Ok(Some(Session {
            token: session.token,
            expires_at: session.expires_at,
            tenant: session.principal.tenant,
            tenant_slug: session.principal.tenant_slug,
            role: session.principal.role,
        }))
    }

    /// Ends the caller's session (an API key has none to end).
    pub async fn logout(&self, who: &Principal) -> Result<(), Error> {
        let session = who.session.as_deref().ok_or_else(|| {
            Error::BadRequest("an API key is not a session; revoke it instead".into())
        })?;
        self.shared.store.revoke_session(session).await?;
        self.auth.clear();
        Ok(())
    }

    pub async fn invite(
        &self,
        who: &Principal,
        email: &str,
        role: Role,
    ) -> Result<(InvitationInfo, String), Error> {
        check_email(email)?;
        check_grantable(who, role)?;
        let ttl = self.shared.options.tenancy.invitation_ttl.0;
        Ok(self
            .shared
            .store
            .invite(NewInvitation {
                tenant: who.tenant,
                email,
                role,
                created_by: &who.actor,
                expires_at: now_ms() + ttl.as_millis() as i64,
            })
            .await?)
    }

    /// Uses an invitation: its email joins the inviting tenant, as a new
    /// user with the password given, or, when the email has an account,
    /// only with that account's password (401 otherwise, counted like a
    /// failed login of the account, so an invitation is no way around the
    /// login's delays). Returns the inviting tenant. The token is looked
    /// up before any password is hashed, so made-up tokens cost no share
    /// of the hashing pool, and they count as failures of their address,
    /// delayed like failed logins.
    pub async fn accept_invitation(&self, request: AcceptRequest<'_>) -> Result<TenantId, Error> {
        let AcceptRequest {
            token,
            password,
            source,
        } = request;
        check_password(password)?;
        self.logins.admit_address(source)?;
        let unknown = || Error::NotFound("invitation (unknown, used or expired)");
        let Some(invitation) = self.shared.store.pending_invitation(token).await? else {
            self.logins.failed(None, source);
            return Err(unknown());
        };
        // A real token is no failure of its address; its password is
        // counted as a login of its email.
        self.logins.refund(None, source);
        let email = invitation.email();
        self.logins.admit(email, source)?;
        let accepted = match self.logins.hashing_slot().await {
            Ok(_slot) => {
                self.shared
                    .store
                    .accept_invitation(Acceptance {
                        invitation: &invitation,
                        password,
                    })
                    .await
            }
            Err(busy) => {
                self.logins.refund(Some(email), source);
                return Err(busy);
            }
        };
        match accepted {
            Ok(Accepted::Joined(tenant)) => {
                self.logins.succeeded(email, source);
                Ok(tenant)
            }
            Ok(Accepted::WrongPassword) => {
                self.logins.failed(Some(email), source);
                Err(Error::Unauthorized(
                    "this email has an account: accept with its password".into(),
                ))
            }
            Err(e) => {
                self.logins.refund(Some(email), source);
                Err(match e {
                    flowmesh_store::Error::NotFound => unknown(),
                    other => other.into(),
                })
            }
        }
    }

    pub async fn users(&self, tenant: TenantId) -> Result<Vec<UserInfo>, Error> {
        Ok(self.shared.store.list_users(tenant).await?)
    }

    /// Removes a user; only an owner removes an owner, and nobody removes
    /// themselves (so a tenant always keeps the one who acts).
    pub async fn remove_user(&self, who: &Principal, id: &str) -> Result<(), Error> {
        let user = self
            .shared
            .store
            .get_user(who.tenant, id)
            .await
            .map_err(|_| Error::NotFound("user"))?;
        if who.actor == format!("user:{}", user.id) {
            return Err(Error::Conflict("you cannot remove yourself".into()));
        }
        check_grantable(who, user.role)?;
        self.shared.store.remove_user(who.tenant, id).await?;
        self.auth.clear();
        Ok(())
    }

    pub async fn create_key(
        &self,
        who: &Principal,
        name: &str,
        role: Role,
    ) -> Result<(KeyInfo, String), Error> {
        if blank(name) || name.chars().count() > 100 {
            return Err(Error::BadRequest(
                "name: must be 1 to 100 characters".into(),
            ));
        }
        check_grantable(who, role)?;
        Ok(self
            .shared
            .store
            .create_key(NewKey {
                tenant: who.tenant,
                name: name.trim(),
                role,
                creator: who,
            })
            .await?)
    }

    pub async fn keys(&self, tenant: TenantId) -> Result<Vec<KeyInfo>, Error> {
        Ok(self.shared.store.list_keys(tenant).await?)
    }

    /// Revokes a key: at once on this process, within [`AUTH_TTL`] on others.
    /// A caller revokes only keys of at most its own role made by someone
    /// of at most its own role: an admin cannot revoke an owner's keys.
    pub async fn revoke_key(&self, who: &Principal, id: &str) -> Result<KeyInfo, Error> {
        let not_found = |e| match e {
            flowmesh_store::Error::NotFound => Error::NotFound("API key"),
            other => other.into(),
        };
        let key = self
            .shared
            .store
            .get_key(who.tenant, id)
            .await
            .map_err(not_found)?;
        check_revocable(who, &key)?;
        let info = self
            .shared
            .store
            .revoke_key(who.tenant, id)
            .await
            .map_err(not_found)?;
        self.auth.clear();
        Ok(info)
    }

    fn sealing_key(&self) -> Result<&flowmesh_store::SealingKey, Error> {
        self.shared.sealing_key.as_ref().ok_or_else(|| {
            Error::Unconfigured(
                "secrets are not set up on this instance: set FLOWMESH_SECRETS_KEY to 32 random bytes in base64"
                    .into(),
            )
        })
    }

    /// Creates or replaces a secret; returns whether it is new.
    pub async fn put_secret(
        &self,
        tenant: TenantId,
        name: &str,
        value: &str,
    ) -> Result<bool, Error> {
        if !valid_secret_name(name) {
            return Err(Error::BadRequest(
                "name: 1 to 128 letters, digits, '_', '-' or '.'".into(),
            ));
        }
        if value.is_empty() || value.chars().count() > 65_536 {
            return Err(Error::BadRequest(
                "value: must be a string of 1 to 65536 characters".into(),
            ));
        }
        let key = self.sealing_key()?;
        Ok(self
            .shared
            .store
            .put_secret(key, tenant, name, value)
            .await?)
    }

    pub async fn secrets(&self, tenant: TenantId) -> Result<Vec<SecretInfo>, Error> {
        Ok(self.shared.store.list_secrets(tenant).await?)
    }

    pub async fn delete_secret(&self, tenant: TenantId, name: &str) -> Result<(), Error> {
        self.shared
            .store
            .delete_secret(tenant, name)
            .await
            .map_err(|e| match e {
                flowmesh_store::Error::NotFound => Error::NotFound("secret"),
                other => other.into(),
            })
    }

    /// Writes an audit record; a record that cannot be written is logged
    /// (the change it describes has happened).
    pub async fn audit(&self, tenant: TenantId, record: AuditRecord) {
        write_audit(&self.shared, tenant, record).await;
    }

    pub async fn audit_log(
        &self,
        tenant: TenantId,
        query: &AuditQuery,
    ) -> Result<Vec<AuditRecord>, Error> {
        Ok(self.shared.store.audit_log(tenant, query).await?)
    }
}

/// Something the engine did on its own for a tenant, for its audit log.
pub(super) struct EngineAudit<'a> {
    pub tenant: TenantId,
    /// Such as `schedule.tick_skipped`.
    pub action: &'a str,
    pub target: Option<String>,
    /// Why, as an error code (such as `no_credits`).
    pub outcome: &'a str,
}

/// Audits an engine's own action: actor `engine`, no source, and status 0
/// (no request was answered).
pub(super) async fn audit_engine(shared: &Shared, event: EngineAudit<'_>) {
    let record = AuditRecord {
        id: uuid::Uuid::now_v7().to_string(),
        at: now_ms(),
        actor: "engine".to_owned(),
        action: event.action.to_owned(),
        target: event.target,
        source: None,
        outcome: event.outcome.to_owned(),
        status: 0,
    };
    write_audit(shared, event.tenant, record).await;
}

/// A record that cannot be written is logged (the change it describes
/// has happened).
async fn write_audit(shared: &Shared, tenant: TenantId, record: AuditRecord) {
    if let Err(e) = shared.store.audit(tenant, &record).await {
        tracing::error!(%tenant, action = %record.action, error = %e, "audit record not written");
    }
}
