//! The actor runtime: a supervision tree of tenants, workflows and
//! executions (ractor), fed by commands from the bus, journaled in the
//! store.
//!
//! ```text
//! RootActor
//! └── TenantActor (one per tenant with work in this process)
//!     ├── WorkflowActor (one per workflow; caches compiled versions)
//!     │   └── ExecutionActor (one per running execution)
//!     └── SandboxActor (one per language the tenant's code uses)
//! ```
//!
//! Tenant and workflow actors idle for `--actor-idle-after` are stopped
//! and spawned again by the next message for them (`idle`).
//!
//! [`Engine`] starts the services (`flowmesh-services`) and, where the
//! process runs executions, this tree and the loops that feed it; callers
//! use the services' handle.

mod children;
mod context;
mod engine;
mod events;
mod execution;
mod idle;
mod loops;
mod options;
mod root;
mod runner;
mod sandbox;
mod supervision;
mod tenant;
mod workflow;

#[cfg(test)]
mod tests;

pub use engine::{Engine, EngineParts};
pub use options::Options;
pub use runner::{NodeRunner, RegistryRunner};
pub use supervision::{RESTART_POLICIES, RestartPolicy};
