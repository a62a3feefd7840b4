use flowmesh_node_handlers::{NodeError, Outcome};

pub enum ExecutionMsg {
    /// A node attempt ended.
    NodeDone {
        node: usize,
        attempt: u32,
        result: Result<Outcome, NodeError>,
        /// What the attempt printed (code nodes).
        logs: Vec<String>,
        /// Time the attempt spent in a sandbox, metered as usage.
        sandbox_ms: u64,
        /// Tokens language models used, metered as usage.
        llm_tokens: u64,
    },
    /// A retry backoff or a wait elapsed.
    Wake { node: usize, attempt: u32 },
    /// Resumes may have arrived: apply those for nodes that wait for one.
    CheckSignals,
    /// Stop the execution at the user's request.
    Cancel,
    /// The execution's deadline passed.
    Deadline,
    /// Shutdown: start nothing new, stop once running attempts end.
    Drain,
    /// Fails the actor on purpose, to exercise supervision in tests.
    #[cfg(test)]
    Crash,
}
