//! Command-line settings of accounts, registration, logins, credits and
//! per-tenant limits (each flag has a matching environment variable).

use flowmesh_model::HumanDuration;
use flowmesh_services::records::TenantLimits;

#[derive(clap::Args, Debug)]
pub struct TenancyArgs {
    /// Whether anyone may create a tenant with POST /v1/auth/register.
    #[arg(long, env = "FLOWMESH_REGISTRATION", default_value_t = true, action = clap::ArgAction::Set)]
    pub registration: bool,

    /// Registrations one source address (an IPv6 /64) may make per
    /// --registration-window, per process; more get 429 (0: no limit).
    #[arg(long, env = "FLOWMESH_REGISTRATIONS_PER_ADDRESS", default_value_t = 5)]
    pub registrations_per_address: u32,

    /// The period --registrations-per-address counts over.
    #[arg(long, env = "FLOWMESH_REGISTRATION_WINDOW", default_value = "1h")]
    pub registration_window: HumanDuration,

    /// The largest max_output_bytes a tenant may set (more gets 422); it
    /// also bounds the node outputs of tenants that set more before.
    #[arg(
        long,
        env = "FLOWMESH_TENANT_MAX_OUTPUT_BYTES",
        default_value_t = 8 << 20,
        value_parser = clap::value_parser!(u64).range(1024..=256 << 20))]
    pub tenant_max_output_bytes: u64,

    /// Password hashes (argon2, about 19 MiB each) computed at once; the
    /// rest wait up to 2 s, then get 503. Default: the cores, at most 4.
    #[arg(long, env = "FLOWMESH_PASSWORD_HASHING_CONCURRENCY")]
    pub password_hashing_concurrency: Option<usize>,

    /// Failed logins of one account from one address before each further
    /// attempt waits (1 s, doubling up to 15 min).
    #[arg(long, env = "FLOWMESH_LOGIN_PAIR_FAILURES", default_value_t = 5)]
    pub login_pair_failures: u32,

    /// Failed logins from one address, any account, before delays start.
    #[arg(long, env = "FLOWMESH_LOGIN_ADDRESS_FAILURES", default_value_t = 50)]
    pub login_address_failures: u32,

    /// How long a login session lasts.
    #[arg(long, env = "FLOWMESH_SESSION_TTL", default_value = "12h")]
    pub session_ttl: HumanDuration,

    /// Credits each new tenant starts with.
    #[arg(long, env = "FLOWMESH_INITIAL_CREDITS", default_value_t = 1_000_000)]
    pub initial_credits: i64,

    /// Automatic refills paid to one tenant in any 24 hours; more are
    /// refused, logged, counted and audited.
    #[arg(long, env = "FLOWMESH_MAX_REFILLS_PER_DAY", default_value_t = 5)]
    pub max_refills_per_day: u32,

    /// Credits each started execution costs.
    #[arg(long, env = "FLOWMESH_PRICE_EXECUTION", default_value_t = 1)]
    pub price_execution: i64,

    /// Credits each node attempt costs.
    #[arg(long, env = "FLOWMESH_PRICE_NODE_RUN", default_value_t = 1)]
    pub price_node_run: i64,

    /// Credits per second of sandbox time (charged by the millisecond).
    #[arg(long, env = "FLOWMESH_PRICE_SANDBOX_SECOND", default_value_t = 10)]
    pub price_sandbox_second: i64,

    /// Credits per thousand language-model tokens (charged by the token).
    #[arg(long, env = "FLOWMESH_PRICE_LLM_1K_TOKENS", default_value_t = 2)]
    pub price_llm_1k_tokens: i64,

    /// Requests per second of a tenant without a limit of its own, per
    /// process (unset: unlimited).
    #[arg(long, env = "FLOWMESH_TENANT_RATE_LIMIT")]
    pub tenant_rate_limit: Option<i64>,

    /// Executions running at once for a tenant without a limit of its own;
    /// more wait, queued (unset: unlimited).
    #[arg(long, env = "FLOWMESH_TENANT_MAX_CONCURRENT")]
    pub tenant_max_concurrent: Option<i64>,

    /// Largest start input or webhook body for a tenant without a limit of
    /// its own, in bytes (unset: only --max-body-bytes applies).
    #[arg(long, env = "FLOWMESH_TENANT_MAX_PAYLOAD_BYTES")]
    pub tenant_max_payload_bytes: Option<i64>,
}

impl TenancyArgs {
    /// Accounts, limits, logins and credits, from the command line.
    pub fn options(&self) -> flowmesh_services::Tenancy {
        flowmesh_services::Tenancy {
            registration: self.registration,
            registrations: flowmesh_services::RegistrationLimit {
                per_address: self.registrations_per_address,
                window: self.registration_window,
            },
            max_output_bytes: self.tenant_max_output_bytes,
            session_ttl: self.session_ttl,
            initial_credits: self.initial_credits,
            max_refills_per_day: self.max_refills_per_day,
            prices: flowmesh_services::Prices {
                execution: self.price_execution,
                node_run: self.price_node_run,
                sandbox_second: self.price_sandbox_second,
                llm_1k_tokens: self.price_llm_1k_tokens,
            },
            logins: {
                let defaults = flowmesh_services::LoginOptions::default();
                flowmesh_services::LoginOptions {
                    hashing_concurrency: self
                        .password_hashing_concurrency
                        .unwrap_or(defaults.hashing_concurrency),
                    pair_failures: self.login_pair_failures,
                    address_failures: self.login_address_failures,
                    ..defaults
                }
            },
            limits: TenantLimits {
                rate_limit: self.tenant_rate_limit,
                max_concurrent: self.tenant_max_concurrent,
                max_payload_bytes: self.tenant_max_payload_bytes,
            },
            ..Default::default()
        }
    }
}
