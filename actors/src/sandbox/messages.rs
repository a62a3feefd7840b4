use ractor::RpcReplyPort;

use super::SandboxHandle;

pub enum SandboxMsg {
    /// A handle on the sandbox, for the code nodes of its tenant.
    Handle(RpcReplyPort<SandboxHandle>),
    /// Periodic: a broken sandbox fails its actor (its tenant spawns a
    /// fresh one on demand); one idle too long stops.
    Check,
}
