//! Event streams as callers see them: the record to replay, and the
//! tickets that open a stream for a client that cannot send a header.

use flowmesh_model::{ExecutionEvent, ExecutionId, TenantId};
use flowmesh_store::{EventScope, Principal, Redeemed, Resume, StreamTicket};

use super::EngineHandle;
use crate::error::Error;

impl EngineHandle {
    /// Recorded events after `after` (a tenant position, or an execution's
    /// `seq`), a bounded page at a time.
    pub async fn recorded_events(
        &self,
        tenant: TenantId,
        scope: EventScope,
        after: u64,
    ) -> Result<Vec<ExecutionEvent>, Error> {
        Ok(self.shared.store.events_after(tenant, scope, after).await?)
    }

    /// Live events of one execution from now on (the record has the rest).
    pub async fn live_events(
        &self,
        tenant: TenantId,
        execution: ExecutionId,
    ) -> Result<flowmesh_bus::Events, Error> {
        Ok(self.shared.bus.watch_execution(tenant, execution).await?)
    }

    /// The position of the tenant's newest recorded event.
    pub async fn last_event_position(&self, tenant: TenantId) -> Result<u64, Error> {
        Ok(self.shared.store.last_event_position(tenant).await?)
    }

    /// The `seq` of an execution's newest recorded event; the caller has
    /// checked that the execution is the tenant's.
    pub async fn last_event_seq(&self, execution: ExecutionId) -> Result<u64, Error> {
        Ok(self.shared.store.last_event_seq(execution).await?)
    }

    /// Whether the tenant's stream can resume after `position`.
    pub async fn resume_at(&self, tenant: TenantId, position: u64) -> Result<Resume, Error> {
        Ok(self.shared.store.resume_at(tenant, position).await?)
    }

    /// A single-use ticket that opens one of `who`'s event streams.
    pub async fn issue_stream_ticket(&self, who: &Principal) -> Result<StreamTicket, Error> {
        Ok(self
            .shared
            .store
            .issue_stream_ticket(who, self.shared.options.stream_ticket_ttl.0)
            .await?)
    }

    /// Who a stream ticket speaks for; it is used up either way.
    pub async fn redeem_stream_ticket(&self, ticket: &str) -> Result<Principal, Error> {
        let again = "get a new one with POST /v1/stream-tickets";
        match self.shared.store.redeem_stream_ticket(ticket).await? {
            Redeemed::Valid(who) => Ok(who),
            Redeemed::Expired { .. } => Err(Error::Unauthorized(format!(
                "the stream ticket expired (a ticket is valid for {}); {again}",
                self.shared.options.stream_ticket_ttl
            ))),
            Redeemed::Unknown => Err(Error::Unauthorized(format!(
                "unknown or already used stream ticket (a ticket opens one stream, once); {again}"
            ))),
        }
    }
}
