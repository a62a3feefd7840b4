//! Stream tickets: short-lived, single-use credentials that open one event
//! stream where a client cannot send an `Authorization` header (a
//! browser's EventSource or WebSocket). Kept as digests, like keys.

use std::time::Duration;

use crate::{Error, Principal, Store, credentials, int, now_ms, parse, text};

/// A ticket as issued: the only time it is seen in clear.
#[derive(Clone, Debug, serde::Serialize, schemars::JsonSchema)]
pub struct StreamTicket {
    pub ticket: String,
    /// Milliseconds since the Unix epoch.
    pub expires_at: i64,
}

/// What presenting a ticket came to.
#[derive(Clone, Debug)]
pub enum Redeemed {
    /// The ticket was valid and is used up now: who it speaks for.
    Valid(Principal),
    /// It was valid until `at` (ms since the Unix epoch); used up now.
    Expired { at: i64 },
    /// No such ticket: never issued, or already used.
    Unknown,
}

impl Store {
    /// Issues a ticket for `who`, valid for `ttl`.
    pub async fn issue_stream_ticket(
        &self,
        who: &Principal,
        ttl: Duration,
    ) -> Result<StreamTicket, Error> {
        let ticket = credentials::generate("fmt");
        let now = now_ms();
        let expires_at = now + ttl.as_millis() as i64;
        // Expired tickets nobody presented go with the next issue.
        sqlx::query("DELETE FROM stream_tickets WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO stream_tickets (hash, tenant_id, role, actor, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(credentials::digest(&ticket))
        .bind(who.tenant.to_string())
        .bind(who.role.as_str())
        .bind(&who.actor)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(StreamTicket { ticket, expires_at })
    }

    /// Uses a ticket up: whatever the answer, it cannot be presented again.
    pub async fn redeem_stream_ticket(&self, ticket: &str) -> Result<Redeemed, Error> {
        // One statement: of two processes presenting the same ticket at
        // once, one deletes it and the other finds nothing.
        let row = sqlx::query(
            "DELETE FROM stream_tickets WHERE hash = $1 \
             RETURNING tenant_id, role, actor, expires_at",
        )
        .bind(credentials::digest(ticket))
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(Redeemed::Unknown);
        };
        let expires_at = int(&row, "expires_at")?;
        if expires_at <= now_ms() {
            return Ok(Redeemed::Expired { at: expires_at });
        }
        let tenant = parse(&row, "tenant_id")?;
        let Some(slug) = self.tenant_slug(tenant).await? else {
            return Ok(Redeemed::Unknown);
        };
        Ok(Redeemed::Valid(Principal {
            tenant,
            tenant_slug: slug,
            role: parse(&row, "role")?,
            actor: text(&row, "actor")?,
            session: None,
        }))
    }
}
