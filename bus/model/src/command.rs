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
        cause: StartCause,
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

/// Why a start command is sent. An execution may be started more than once
/// within the bus's deduplication window (accepted, then resumed or woken
/// for a free slot): the cause keeps each start apart from the others, while
/// the same start published again is still one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StartCause {
    /// The execution was accepted (a start, a re-run, a schedule tick).
    Accepted,
    /// A resume of it is in the store: `signal` is the resume's id.
    Resumed { signal: String },
    /// `by` ended and gave back the tenant's concurrency slot that this
    /// execution waits for.
    SlotFreed { by: ExecutionId },
}

impl Command {
    /// The first start of an accepted execution.
    pub fn start(tenant: TenantId, workflow: WorkflowId, execution: ExecutionId) -> Self {
        Command::StartExecution {
            tenant,
            workflow,
            execution,
            cause: StartCause::Accepted,
        }
    }

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
            Command::StartExecution {
                execution, cause, ..
            } => match cause {
                StartCause::Accepted => format!("start.{execution}"),
                StartCause::Resumed { signal } => format!("start.{execution}.resume.{signal}"),
                StartCause::SlotFreed { by } => format!("start.{execution}.slot.{by}"),
            },
            Command::CancelExecution { execution, .. } => format!("cancel.{execution}"),
            Command::SignalExecution { signal, .. } => format!("signal.{signal}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_start_of_an_execution_has_its_own_key_and_a_repeat_the_same() {
        let (tenant, workflow, execution) =
            (TenantId::new(), WorkflowId::new(), ExecutionId::new());
        let with = |cause: StartCause| Command::StartExecution {
            tenant,
            workflow,
            execution,
            cause,
        };
        let keys = [
            Command::start(tenant, workflow, execution),
            with(StartCause::Resumed { signal: "a".into() }),
            with(StartCause::Resumed { signal: "b".into() }),
            with(StartCause::SlotFreed {
                by: ExecutionId::new(),
            }),
        ]
        .map(|c| c.idempotency_key());
        let distinct: std::collections::BTreeSet<_> = keys.iter().collect();
        assert_eq!(distinct.len(), keys.len(), "{keys:?}");
        let resumed = with(StartCause::Resumed { signal: "a".into() });
        assert_eq!(resumed.idempotency_key(), resumed.clone().idempotency_key());
    }
}
