//! Settings of the actor runtime: what the actors and the loops that feed
//! them use, and nothing the services alone need.

use flowmesh_model::HumanDuration;
use flowmesh_services::Prices;

/// Settings of the actors and the loops that feed them.
#[derive(Clone, Debug)]
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
    /// A tenant or workflow actor with nothing to do for this long stops
    /// (the next message for it spawns it again), and the tenants' slugs
    /// the actors keep are let go after as long unused.
    pub actor_idle_after: HumanDuration,
    /// On shutdown, how long running node attempts may take to finish.
    pub shutdown_grace: HumanDuration,
    /// Limits and settings of code nodes' sandboxes.
    pub sandbox: flowmesh_sandbox::Options,
    /// Also send each event as JSON to the tenant's public NATS subject
    /// (distributed mode), for subscribers outside flowmesh.
    pub public_events: bool,
    /// What the executions' usage costs, charged as their turns commit.
    pub prices: Prices,
    /// Running executions per tenant for tenants without a limit of their
    /// own (none: unlimited).
    pub max_concurrent: Option<i64>,
    /// Executions this process accepts (a webhook, an API start, a NATS
    /// message) run here at once, without a bus round trip or a claim,
    /// while it has fewer live executions than this; beyond it they go
    /// through the bus to whichever process takes them.
    pub max_started_here: usize,
    /// Live executions this process holds at most, however they came
    /// (accepted here, start commands, claim sweeps): past it, start
    /// commands wait on the bus and sweeps claim nothing.
    pub max_executions_here: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            node_id: "embedded".to_owned(),
            lease: HumanDuration::from_millis(15_000),
            claim_interval: HumanDuration::from_millis(1_000),
            park_after: HumanDuration::from_millis(5_000),
            actor_idle_after: HumanDuration::from_millis(300_000),
            shutdown_grace: HumanDuration::from_millis(10_000),
            sandbox: flowmesh_sandbox::Options::default(),
            public_events: true,
            prices: Prices::default(),
            max_concurrent: None,
            max_started_here: 1_000,
            max_executions_here: 10_000,
        }
    }
}
