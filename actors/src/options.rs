use flowmesh_model::HumanDuration;
use serde::{Deserialize, Serialize};

/// Settings of the engine's actors and loops.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Options {
    /// Identity of this process as the owner of execution leases. A process
    /// restarted with the same id takes its executions back at once; with a
    /// new id it waits for the old leases to expire.
    pub node_id: String,
    /// How long an execution lease lasts without renewal.
    pub lease: HumanDuration,
    /// How often this process looks for executions nobody owns.
    pub claim_interval: HumanDuration,
    /// An execution with nothing to do for longer than this (a long `wait`,
    /// a distant retry, a wait for a resume) is parked: its state stays in
    /// the store and its actor stops until a claim sweep takes it again.
    pub park_after: HumanDuration,
    /// How often finished executions past their tenant's retention are
    /// purged (in batches) and their space given back.
    pub retention_interval: HumanDuration,
    /// On shutdown, how long running node attempts may take to finish.
    pub shutdown_grace: HumanDuration,
    /// Longest a synchronous caller (`?wait=true`, responding webhooks) waits.
    pub max_sync_wait: HumanDuration,
    /// Limits and settings of code nodes' sandboxes.
    pub sandbox: flowmesh_sandbox::Options,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            node_id: "embedded".to_owned(),
            lease: HumanDuration::from_millis(15_000),
            claim_interval: HumanDuration::from_millis(1_000),
            park_after: HumanDuration::from_millis(5_000),
            retention_interval: HumanDuration::from_millis(600_000),
            shutdown_grace: HumanDuration::from_millis(10_000),
            max_sync_wait: HumanDuration::from_millis(30_000),
            sandbox: flowmesh_sandbox::Options::default(),
        }
    }
}
