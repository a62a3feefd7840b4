use flowmesh_model::HumanDuration;
use flowmesh_store::TenantLimits;
use serde::{Deserialize, Serialize};

/// Settings of the application services: acceptance, accounts, billing,
/// schedules, retention and the streams. The actor runtime has its own.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Options {
    /// How often due schedules are looked for.
    pub schedule_interval: HumanDuration,
    /// What the services keep for a tenant or workflow (compiled versions,
    /// settings, rate limiters) is let go after this long unused.
    pub cache_idle_after: HumanDuration,
    /// How often finished executions past their tenant's retention are
    /// purged (in batches) and their space given back.
    pub retention_interval: HumanDuration,
    /// Longest a synchronous caller (`?wait=true`, responding webhooks) waits.
    pub max_sync_wait: HumanDuration,
    /// How long a stream ticket stays valid.
    pub stream_ticket_ttl: HumanDuration,
    /// How far the signed timestamp of a webhook signature (Stripe, Slack,
    /// `hmac` with a timestamp header) may be from now, either way; an
    /// older request is refused, so a captured one cannot be replayed later.
    pub webhook_signature_tolerance: HumanDuration,
    /// Accounts, per-tenant limits and credits.
    pub tenancy: Tenancy,
    /// How many schedule triggers a tenant may publish, and how often each may fire.
    pub schedules: ScheduleLimits,
    /// Which part of the engine this process runs.
    pub role: ProcessRole,
    /// Accepted executions that may wait on the bus for a process to run
    /// them; past it, new starts are refused (503 with Retry-After).
    pub max_queued_starts: u64,
}

/// The part of the engine one process runs. Gateways and workers split a
/// distributed deployment; an embedded process is always `All`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcessRole {
    /// Requests and executions alike.
    #[default]
    All,
    /// Serves requests (HTTP, NATS triggers): accepts executions, publishes
    /// their commands and waits on their events, but runs none.
    Gateway,
    /// Runs executions, their sandboxes and the loops that keep time;
    /// serves no requests.
    Worker,
}

impl ProcessRole {
    /// Whether this process runs the actor tree and the loops that feed it.
    pub fn runs_executions(self) -> bool {
        self != ProcessRole::Gateway
    }

    /// Whether this process serves the API and NATS triggers.
    pub fn serves_requests(self) -> bool {
        self != ProcessRole::Worker
    }

    pub fn name(self) -> &'static str {
        match self {
            ProcessRole::All => "all",
            ProcessRole::Gateway => "gateway",
            ProcessRole::Worker => "worker",
        }
    }
}

/// Bounds on schedule triggers, checked when a workflow is published: each
/// tick costs a store transaction and an execution, and every tenant's
/// ticks share one firing loop.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct ScheduleLimits {
    /// Schedule triggers across one tenant's published workflows.
    pub max_per_tenant: u64,
    /// Shortest time a schedule may leave between two ticks.
    pub min_interval: HumanDuration,
}

impl Default for ScheduleLimits {
    fn default() -> Self {
        Self {
            max_per_tenant: 100,
            min_interval: HumanDuration::from_millis(60_000),
        }
    }
}

/// Accounts, per-tenant limits and credits.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Tenancy {
    /// Whether anyone may create a tenant with `POST /v1/auth/register`.
    pub registration: bool,
    /// Registrations one source address may make per period.
    pub registrations: crate::RegistrationLimit,
    /// The largest `max_output_bytes` a tenant may set; it also bounds
    /// every tenant's node outputs, whatever their settings say.
    pub max_output_bytes: u64,
    /// How long a login session lasts.
    pub session_ttl: HumanDuration,
    /// How long an invitation can be accepted.
    pub invitation_ttl: HumanDuration,
    /// Credits a new tenant starts with.
    pub initial_credits: i64,
    /// What executions, node runs and sandbox time cost.
    pub prices: Prices,
    /// Limits of tenants that have none of their own (none: unlimited).
    pub limits: TenantLimits,
    /// How often metered usage is settled into balances.
    pub settle_interval: HumanDuration,
    /// Automatic refills a tenant may be paid in any 24 hours: a flood
    /// that spends credits cannot buy more without bound.
    pub max_refills_per_day: u32,
    /// Password hashing and failed-login delays.
    pub logins: crate::LoginOptions,
}

impl Default for Tenancy {
    fn default() -> Self {
        Self {
            registration: true,
            registrations: Default::default(),
            max_output_bytes: flowmesh_store::DEFAULT_MAX_OUTPUT_BYTES as u64,
            session_ttl: HumanDuration::from_millis(12 * 3_600_000),
            invitation_ttl: HumanDuration::from_millis(7 * 24 * 3_600_000),
            initial_credits: 1_000_000,
            prices: Prices::default(),
            limits: TenantLimits::default(),
            settle_interval: HumanDuration::from_millis(2_000),
            max_refills_per_day: 5,
            logins: Default::default(),
        }
    }
}

/// The price table, in credits.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Prices {
    /// Each execution that starts.
    pub execution: i64,
    /// Each node attempt that runs (pure nodes included).
    pub node_run: i64,
    /// Each second of sandbox time, charged by the millisecond (rounded up).
    pub sandbox_second: i64,
    /// Each thousand tokens language models use (prompt and answer),
    /// charged by the token (rounded up).
    pub llm_1k_tokens: i64,
}

impl Default for Prices {
    fn default() -> Self {
        Self {
            execution: 1,
            node_run: 1,
            sandbox_second: 10,
            llm_1k_tokens: 2,
        }
    }
}

impl Prices {
    /// The credits `usage` costs (its own `credits` field aside).
    pub fn charge(&self, usage: &flowmesh_store::Usage) -> i64 {
        let per_thousand = |n: i64, price: i64| (n * price + 999) / 1000;
        usage.executions * self.execution
            + usage.node_runs * self.node_run
            + per_thousand(usage.sandbox_ms, self.sandbox_second)
            + per_thousand(usage.llm_tokens, self.llm_1k_tokens)
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            schedule_interval: HumanDuration::from_millis(1_000),
            cache_idle_after: HumanDuration::from_millis(300_000),
            retention_interval: HumanDuration::from_millis(600_000),
            max_sync_wait: HumanDuration::from_millis(30_000),
            stream_ticket_ttl: HumanDuration::from_millis(60_000),
            webhook_signature_tolerance: HumanDuration::from_millis(300_000),
            tenancy: Tenancy::default(),
            schedules: ScheduleLimits::default(),
            role: ProcessRole::All,
            max_queued_starts: 2_000,
        }
    }
}
