//! Commands: requests addressed to the engine's actors, carried by the bus.
//!
//! Commands are lean: the store already holds what they refer to, so a
//! command that arrives twice or late is harmless.

use serde::{Deserialize, Serialize};

use crate::ids::{ExecutionId, TenantId, WorkflowId};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Run (or resume) an execution the store holds.
    StartExecution {
        tenant: TenantId,
        workflow: WorkflowId,
        execution: ExecutionId,
    },
    /// Stop an execution; its nodes that are still running are abandoned.
    CancelExecution {
        tenant: TenantId,
        workflow: WorkflowId,
        execution: ExecutionId,
    },
    /// A resume for the execution is in the store (`signal` names it): its
    /// owner, if it has one, applies it now.
    SignalExecution {
        tenant: TenantId,
        workflow: WorkflowId,
        execution: ExecutionId,
        signal: String,
    },
}

impl Command {
    pub fn tenant(&self) -> TenantId {
        match self {
            Command::StartExecution { tenant, .. }
            | Command::CancelExecution { tenant, .. }
            | Command::SignalExecution { tenant, .. } => *tenant,
        }
    }

    pub fn workflow(&self) -> WorkflowId {
        match self {
            Command::StartExecution { workflow, .. }
            | Command::CancelExecution { workflow, .. }
            | Command::SignalExecution { workflow, .. } => *workflow,
        }
    }

    pub fn execution(&self) -> ExecutionId {
        match self {
            Command::StartExecution { execution, .. }
            | Command::CancelExecution { execution, .. }
            | Command::SignalExecution { execution, .. } => *execution,
        }
    }

    /// The key that makes a repeated publish of the same command a no-op.
    pub fn idempotency_key(&self) -> String {
        match self {
            Command::StartExecution { execution, .. } => format!("start.{execution}"),
            Command::CancelExecution { execution, .. } => format!("cancel.{execution}"),
            Command::SignalExecution { signal, .. } => format!("signal.{signal}"),
        }
    }
}
