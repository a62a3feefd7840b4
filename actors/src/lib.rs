//! The engine's actors: a supervision tree of tenants, workflows and
//! executions (ractor), fed by commands from the bus, journaled in the store.
//!
//! ```text
//! RootActor
//! └── TenantActor (one per tenant with work in this process)
//!     └── WorkflowActor (one per workflow; caches compiled versions)
//!         └── ExecutionActor (one per running execution)
//! ```
//!
//! Tenant and workflow actors idle for `--actor-idle-after` are stopped
//! and spawned again by the next message for them (`idle`).
//!
//! Callers (the gateway) use [`EngineHandle`]; [`Engine`] owns the loops that
//! consume the bus and keep leases.

mod cache;
mod children;
mod context;
mod engine;
mod error;
mod events;
mod execution;
mod idle;
pub mod metrics;
mod options;
mod root;
mod runner;
mod sandbox;
mod supervision;
mod tenant;
pub mod trace;
mod workflow;

#[cfg(test)]
mod tests;

pub use engine::{
    AcceptRequest, AuthenticatedWebhook, Engine, EngineHandle, EngineParts, GenerateRequest,
    Generated, GrantRequest, InstantiateRequest, LedgerOnly, LoginOptions, LoginRequest,
    MAX_PROMPT_CHARS, NodeLog, Outcome as ExecutionOutcome, Parameter, ParameterType,
    PaymentProvider, Readiness, Receipt, RefillRequest, RegisterRequest, RegistrationLimit,
    RerunRequest, ResumeRequest, Session, Settings, StartRequest, Started, Template, Until,
    VISIBLE, WebhookRequest, WorkflowStats,
};
pub use error::Error;
pub use flowmesh_store::ModelSettings;
pub use options::Options;
pub use options::{Prices, ProcessRole, ScheduleLimits, Tenancy};
pub use runner::{NodeRunner, RegistryRunner};
pub use sandbox::SandboxInfo;
pub use supervision::{RESTART_POLICIES, RestartPolicy};

/// Records the gateway shows; re-exported so that it needs no store dependency.
pub mod records {
    pub use flowmesh_store::{
        AuditQuery, AuditRecord, Balance, DailyUsage, EventScope, ExecutionPage, ExecutionQuery,
        ExecutionRecord, ExecutionSummary, InvitationInfo, KeyInfo, LedgerEntry, PLATFORM_TENANT,
        Principal, Resume, SealingKey, SecretInfo, StepRecord, StreamTicket, TenantInfo,
        TenantLimits, UserInfo, WorkflowRecord, WorkflowSummary, day_of, now_ms,
    };
}
