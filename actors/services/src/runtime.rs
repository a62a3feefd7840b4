//! What the application layer asks of the actor runtime of its own
//! process. The runtime implements [`Runtime`]; a process that runs no
//! actors answers with [`NoRuntime`].

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use flowmesh_model::TenantId;
use flowmesh_sandbox::{Jail, Language};
use flowmesh_store::{Claim, ExecutionRecord};
use futures::future::BoxFuture;
use serde::Serialize;

use crate::error::Error;

/// What operators see of a live sandbox.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct SandboxInfo {
    /// For `DELETE /v1/sandboxes/{id}`.
    #[schemars(with = "String", extend("format" = "uuid"))]
    pub id: uuid::Uuid,
    pub language: Language,
    pub created_at: i64,
    pub age_ms: u64,
    /// Calls served, and how many of them failed.
    pub executions_served: u64,
    pub failures: u64,
    pub memory_bytes: u64,
    pub busy_ms: u64,
}

/// A place among the executions this process runs, taken with the claim
/// of an accepted execution and carried by its start to its actor: starts
/// accepted together count against the bound before any of their actors
/// runs. Given back when dropped (its actor runs and counts itself, or the
/// start was not made or was lost).
pub struct Place(Arc<AtomicUsize>);

impl Place {
    /// Takes one more of the places counted by `taken`.
    pub fn take(taken: &Arc<AtomicUsize>) -> Place {
        taken.fetch_add(1, Ordering::SeqCst);
        Place(taken.clone())
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What an execution accepted to run here is recorded under, and its place.
pub struct HereClaim {
    pub claim: Claim,
    pub place: Place,
}

/// The actor runtime of this process, as the services see it.
pub trait Runtime: Send + Sync + 'static {
    /// Executions with a live actor here.
    fn executions_here(&self) -> usize;

    /// What the jail of sandboxed code found on this host.
    fn jail(&self) -> &Jail;

    /// Whether the process is shutting down (no new work is taken).
    fn is_draining(&self) -> bool;

    /// The claim under which an execution this process accepts runs here
    /// at once (no bus round trip, no claim of its own); `None` when it
    /// runs no executions, is draining or has enough of them, and the
    /// execution goes through the bus to whichever process takes it.
    fn claim_here(&self) -> Option<HereClaim>;

    /// Starts an execution recorded under [`Runtime::claim_here`]'s claim,
    /// in the place taken with it.
    /// Should the start be lost, the lease keeper finds the execution
    /// owned here without an actor and starts it.
    fn run_here(&self, record: ExecutionRecord, place: Place);

    /// The tenant's live sandboxes here.
    fn sandboxes(&self, tenant: TenantId) -> BoxFuture<'_, Result<Vec<SandboxInfo>, Error>>;

    /// Tears one of the tenant's sandboxes down; false when it has none by
    /// that id here.
    fn stop_sandbox(&self, tenant: TenantId, id: uuid::Uuid) -> BoxFuture<'_, Result<bool, Error>>;
}

/// A process without actors (a gateway): no executions, no sandboxes.
pub struct NoRuntime {
    pub jail: Jail,
}

impl Runtime for NoRuntime {
    fn executions_here(&self) -> usize {
        0
    }

    fn jail(&self) -> &Jail {
        &self.jail
    }

    fn is_draining(&self) -> bool {
        false
    }

    fn claim_here(&self) -> Option<HereClaim> {
        None
    }

    fn run_here(&self, record: ExecutionRecord, _: Place) {
        tracing::warn!(execution = %record.id, "a process without actors was asked to run an execution; it waits for the claim sweep");
    }

    fn sandboxes(&self, _: TenantId) -> BoxFuture<'_, Result<Vec<SandboxInfo>, Error>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn stop_sandbox(&self, _: TenantId, _: uuid::Uuid) -> BoxFuture<'_, Result<bool, Error>> {
        Box::pin(async { Ok(false) })
    }
}
