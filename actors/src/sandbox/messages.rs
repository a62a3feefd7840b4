use ractor::RpcReplyPort;

use super::SandboxHandle;

pub enum SandboxMsg {
    /// A handle on the sandbox, for the code nodes of its tenant.
    Handle(RpcReplyPort<SandboxHandle>),
    /// Periodic: a sandbox idle too long stops (its tenant spawns a fresh
    /// one on demand).
    Check,
}
