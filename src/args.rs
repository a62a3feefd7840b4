//! The binary's command line (each flag has a matching environment
//! variable): its commands, and the settings each one takes. Serving takes
//! them all; the other commands only what they use, so that their help
//! lists only that.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use flowmesh_model::HumanDuration;

#[derive(Parser, Debug)]
#[command(
    name = "flowmesh",
    version,
    about = "Multi-tenant workflow automation engine",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Commands>,

    /// With no command, the engine serves with these settings.
    #[command(flatten)]
    pub serve: ServeArgs,
}

impl Cli {
    /// The log format of the command run.
    pub fn log_format(&self) -> LogFormat {
        match &self.command {
            Some(Commands::Serve(serve)) => serve.log.log_format,
            Some(Commands::Migrate { log, .. })
            | Some(Commands::Secrets {
                command: SecretsCommand::Rotate { log, .. },
            }) => log.log_format,
            _ => self.serve.log.log_format,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Commands {
    /// Run the engine (the default).
    Serve(Box<ServeArgs>),
    /// Apply database migrations and exit.
    Migrate {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        log: LogArgs,
    },
    /// Check a workflow document offline, with the same messages as the API.
    Validate {
        /// Path of the JSON document.
        file: PathBuf,
        #[command(flatten)]
        maxima: MaximaArgs,
    },
    /// Manage the key that seals tenants' secrets.
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// Serve sandboxed code on stdin and stdout (started by the engine).
    #[command(hide = true)]
    SandboxWorker {
        #[arg(value_enum)]
        language: WorkerLanguage,
    },
}

#[derive(Subcommand, Debug)]
pub enum SecretsCommand {
    /// Seal every tenant's secret under a new key, in one transaction
    /// (stop the engines first; running it again is safe). The current key
    /// is --secrets-key, or the data directory's key file, which is then
    /// replaced by a new one (the old one is kept beside it).
    Rotate {
        #[command(flatten)]
        secrets: SecretsArgs,
        /// The new key: 32 random bytes in base64 (openssl rand -base64
        /// 32). Needed with --secrets-key; with the key file, one is made.
        #[arg(long, env = "FLOWMESH_NEW_SECRETS_KEY", hide_env_values = true)]
        new_secrets_key: Option<String>,
        #[command(flatten)]
        log: LogArgs,
    },
}

/// Where the store is.
#[derive(clap::Args, Debug)]
pub struct StoreArgs {
    /// Directory of the embedded SQLite store.
    #[arg(long, env = "FLOWMESH_DATA_DIR", default_value = "./flowmesh-data")]
    pub data_dir: PathBuf,

    /// PostgreSQL URL (postgres://...); without it the store is SQLite in the data directory.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

/// The store, and the key that seals tenants' secrets in it.
#[derive(clap::Args, Debug)]
pub struct SecretsArgs {
    #[command(flatten)]
    pub store: StoreArgs,

    /// Key that seals tenants' secrets at rest: 32 random bytes in base64
    /// (`openssl rand -base64 32`). Embedded without one (or with an empty
    /// one), a key is made and kept in the data directory; distributed
    /// without one, secrets are off.
    #[arg(long, env = "FLOWMESH_SECRETS_KEY", hide_env_values = true)]
    pub secrets_key: Option<String>,
}

/// The most a code node may ask for, instance-wide.
#[derive(clap::Args, Debug)]
pub struct MaximaArgs {
    /// The most a code node may ask for, as JSON: {"wall": "30s",
    /// "memory_mb": 512, "output_bytes": 16777216}.
    #[arg(long, env = "FLOWMESH_SANDBOX_MAXIMA")]
    pub sandbox_maxima: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct LogArgs {
    /// Log format.
    #[arg(long, env = "FLOWMESH_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// The settings of a serving process.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address of the HTTP API.
    #[arg(long, env = "FLOWMESH_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Bearer token GET /metrics requires (metrics name every tenant and
    /// workflow). Unset or empty: metrics are not served.
    #[arg(long, env = "FLOWMESH_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// Mark the console's session cookie Secure (sent over HTTPS only): set
    /// it where browsers reach the console over TLS, as behind a proxy that
    /// terminates TLS (the proxy must pass the Host header on).
    #[arg(long, env = "FLOWMESH_SECURE_COOKIES")]
    pub secure_cookies: bool,

    /// NATS server with JetStream; without it the bus is in-process.
    #[arg(long, env = "FLOWMESH_NATS_URL", hide_env_values = true)]
    pub nats_url: Option<String>,

    /// User the engine logs in to NATS as (with --nats-password); or put
    /// them in the URL: nats://user:password@host:4222.
    #[arg(long, env = "FLOWMESH_NATS_USER")]
    pub nats_user: Option<String>,

    /// Password of --nats-user.
    #[arg(long, env = "FLOWMESH_NATS_PASSWORD", hide_env_values = true)]
    pub nats_password: Option<String>,

    /// Token the engine logs in to NATS with.
    #[arg(long, env = "FLOWMESH_NATS_TOKEN", hide_env_values = true)]
    pub nats_token: Option<String>,

    /// Seed of the user nkey the engine logs in to NATS with (SU...).
    #[arg(long, env = "FLOWMESH_NATS_NKEY_SEED", hide_env_values = true)]
    pub nats_nkey_seed: Option<String>,

    /// Credentials file (JWT and nkey seed, as nsc writes them) the engine
    /// logs in to NATS with.
    #[arg(long, env = "FLOWMESH_NATS_CREDENTIALS")]
    pub nats_credentials: Option<PathBuf>,

    /// Prefix of NATS subjects and streams, to run several deployments on one NATS.
    #[arg(long, env = "FLOWMESH_BUS_PREFIX", default_value = "flowmesh")]
    pub bus_prefix: String,

    /// This process's identity as an owner of executions; keep it across
    /// restarts to take executions back at once. Default: "embedded" with
    /// SQLite, a random id when distributed.
    #[arg(long, env = "FLOWMESH_NODE_ID")]
    pub node_id: Option<String>,

    /// API key of the default tenant's admin, created on first start (a random one is printed otherwise).
    #[arg(long, env = "FLOWMESH_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,

    /// Hosts or CIDRs that http_request may reach although private (comma-separated).
    #[arg(long, env = "FLOWMESH_HTTP_ALLOW_HOSTS", default_value = "")]
    pub http_allow_hosts: String,

    /// Base URL of an OpenAI-compatible chat-completions API (OpenAI,
    /// Ollama, vLLM...) for ai and agents nodes and workflow generation;
    /// tenants may set their own.
    #[arg(long, env = "FLOWMESH_LLM_BASE_URL")]
    pub llm_base_url: Option<String>,

    /// Model used when neither the node nor the tenant names one.
    #[arg(long, env = "FLOWMESH_LLM_MODEL")]
    pub llm_model: Option<String>,

    /// API key sent to the instance's model endpoint.
    #[arg(long, env = "FLOWMESH_LLM_API_KEY", hide_env_values = true)]
    pub llm_api_key: Option<String>,

    /// How long answers to identical deterministic model requests
    /// (temperature 0) are reused per tenant; 0 turns the cache off.
    #[arg(long, env = "FLOWMESH_LLM_CACHE_TTL", default_value = "10m")]
    pub llm_cache_ttl: HumanDuration,

    /// Copies of each JetStream stream (3 on a three-node NATS cluster);
    /// applies when the streams are first created.
    #[arg(long, env = "FLOWMESH_NATS_REPLICAS", default_value_t = 1)]
    pub nats_replicas: usize,

    /// How long an execution lease lasts without renewal.
    #[arg(long, env = "FLOWMESH_LEASE", default_value = "15s")]
    pub lease: HumanDuration,

    /// How often each process looks for executions nobody started or owns
    /// (lost commands, dead processes, parked executions coming due).
    #[arg(long, env = "FLOWMESH_CLAIM_INTERVAL", default_value = "1s")]
    pub claim_interval: HumanDuration,

    /// An execution with nothing to do for longer than this (a long wait,
    /// a distant retry, a wait for a resume) is parked in the store and
    /// holds no memory until it is due.
    #[arg(long, env = "FLOWMESH_PARK_AFTER", default_value = "5s")]
    pub park_after: HumanDuration,

    /// A process that runs executions runs those it accepts itself, at
    /// once, while it has fewer live executions than this; beyond it (and
    /// with 0, always) they go through the bus to whichever process takes
    /// them.
    #[arg(long, env = "FLOWMESH_MAX_STARTED_HERE", default_value_t = 1_000)]
    pub max_started_here: usize,

    /// Live executions a process that runs executions holds at most; past
    /// it, start commands wait on the bus and claim sweeps take nothing.
    #[arg(long, env = "FLOWMESH_MAX_EXECUTIONS_HERE", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_executions_here: u64,

    /// Accepted executions that may wait on the bus for a process to run
    /// them; past it, new starts (API, webhooks, NATS triggers) are refused
    /// with 503 and Retry-After before anything is recorded.
    #[arg(long, env = "FLOWMESH_MAX_QUEUED_STARTS", default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_queued_starts: u64,

    /// A tenant or workflow actor with nothing to do for this long stops
    /// (the next message spawns it again), and what the process keeps for
    /// that tenant or workflow goes after as long unused.
    #[arg(long, env = "FLOWMESH_ACTOR_IDLE_AFTER", default_value = "5m")]
    pub actor_idle_after: HumanDuration,

    /// Longest a synchronous caller waits for an answer (`?wait=true`, a
    /// webhook whose workflow responds); after it, the caller gets 202 with
    /// the execution id and the run goes on.
    #[arg(long, env = "FLOWMESH_MAX_SYNC_WAIT", default_value = "30s")]
    pub max_sync_wait: HumanDuration,

    /// How long a stream ticket (`POST /v1/stream-tickets`) stays valid.
    #[arg(long, env = "FLOWMESH_STREAM_TICKET_TTL", default_value = "60s")]
    pub stream_ticket_ttl: HumanDuration,

    /// How far the signed timestamp of a webhook signature (Stripe, Slack,
    /// `hmac` with a timestamp header) may be from now, either way; older
    /// requests are refused with 401, so a captured one cannot be replayed.
    #[arg(
        long,
        env = "FLOWMESH_WEBHOOK_SIGNATURE_TOLERANCE",
        default_value = "5m"
    )]
    pub webhook_signature_tolerance: HumanDuration,

    /// How often finished executions past their tenant's retention are
    /// purged and their space given back.
    #[arg(long, env = "FLOWMESH_RETENTION_INTERVAL", default_value = "10m")]
    pub retention_interval: HumanDuration,

    /// On shutdown, how long running node attempts may take to finish.
    #[arg(long, env = "FLOWMESH_SHUTDOWN_GRACE", default_value = "10s")]
    pub shutdown_grace: HumanDuration,

    /// Largest accepted request body, in bytes.
    #[arg(long, env = "FLOWMESH_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Connections the gateway holds open at once; more are closed at once.
    #[arg(long, env = "FLOWMESH_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Event streams (`/v1/events`, an execution's events) one tenant holds
    /// open in one process; more get 429.
    #[arg(long, env = "FLOWMESH_TENANT_MAX_STREAMS", default_value_t = 100)]
    pub tenant_max_streams: usize,

    /// Schedule triggers one tenant may hold across its published
    /// workflows; a publish beyond it is refused (422).
    #[arg(long, env = "FLOWMESH_TENANT_MAX_SCHEDULES", default_value_t = 100)]
    pub tenant_max_schedules: u64,

    /// Shortest time a schedule trigger may leave between two ticks; a
    /// workflow whose schedule ticks more often is refused at publish (422).
    #[arg(long, env = "FLOWMESH_SCHEDULE_MIN_INTERVAL", default_value = "1m")]
    pub schedule_min_interval: HumanDuration,

    /// Events kept, per tenant and process, for the slowest of the
    /// tenant's event streams; a stream further behind is closed with a
    /// `lagged` event, to reconnect from its last event id.
    #[arg(long, env = "FLOWMESH_STREAM_BUFFER", default_value_t = 1_024)]
    pub stream_buffer: usize,

    /// Webhook requests per second from one client address (0: no limit).
    #[arg(
        long,
        env = "FLOWMESH_WEBHOOK_RATE_PER_ADDRESS",
        default_value_t = 1_000
    )]
    pub webhook_rate_per_address: u32,

    /// Webhook requests per second to one webhook, from anyone (0: no limit).
    #[arg(long, env = "FLOWMESH_WEBHOOK_RATE_PER_ROUTE", default_value_t = 5_000)]
    pub webhook_rate_per_route: u32,

    /// Connections the gateway holds open from one address.
    #[arg(
        long,
        env = "FLOWMESH_MAX_CONNECTIONS_PER_ADDRESS",
        default_value_t = 1_000
    )]
    pub max_connections_per_address: usize,

    /// Time a client has to send a request's headers; then its connection
    /// is closed.
    #[arg(long, env = "FLOWMESH_HEADER_READ_TIMEOUT", default_value = "10s")]
    pub header_read_timeout: HumanDuration,

    /// A connection that moves no bytes for this long is closed (event
    /// streams send a keep-alive every 15 s).
    #[arg(long, env = "FLOWMESH_IDLE_TIMEOUT", default_value = "2m")]
    pub idle_timeout: HumanDuration,

    /// Time a client has, once a request's headers are in, to send its
    /// whole body; then it gets 408 and its connection is closed.
    #[arg(long, env = "FLOWMESH_BODY_READ_TIMEOUT", default_value = "10s")]
    pub body_read_timeout: HumanDuration,

    #[command(flatten)]
    pub secrets: SecretsArgs,

    #[command(flatten)]
    pub tenancy: crate::tenancy_args::TenancyArgs,

    #[command(flatten)]
    pub roles: crate::roles::RoleArgs,

    /// The Python interpreter of code nodes: a system interpreter (one
    /// under /home or /root is refused), bound read-only into the jail.
    #[arg(long, env = "FLOWMESH_PYTHON", default_value = "/usr/bin/python3")]
    pub python: PathBuf,

    /// The bubblewrap program that jails code nodes.
    #[arg(long, env = "FLOWMESH_BWRAP", default_value = "bwrap")]
    pub bwrap: PathBuf,

    /// Host uids the code of each tenant runs as (one per tenant) when the
    /// engine runs as root, as FIRST..END (END excluded).
    #[arg(
        long,
        env = "FLOWMESH_SANDBOX_UID_RANGE",
        default_value = "1000000..1065536",
        value_parser = parse_uid_range)]
    pub sandbox_uid_range: std::ops::Range<u32>,

    /// Size of a Python call's working directory (a tmpfs in the jail), in
    /// bytes: all the code may write.
    #[arg(
        long,
        env = "FLOWMESH_SANDBOX_WORKDIR_BYTES",
        default_value_t = 16 << 20)]
    pub sandbox_workdir_bytes: u64,

    /// Python calls of one tenant running at once in one engine process;
    /// the rest wait their turn (up to a minute).
    #[arg(long, env = "FLOWMESH_SANDBOX_PYTHON_CONCURRENCY", default_value_t = 4)]
    pub sandbox_python_concurrency: usize,

    /// Where the host cannot jail code (bubblewrap missing, or no user,
    /// PID, mount or network namespaces, or no seccomp): refuse code nodes,
    /// or allow them bounded only by the interpreter's audit hook and
    /// resource limits.
    #[arg(
        long,
        env = "FLOWMESH_SANDBOX_WITHOUT_JAIL",
        value_enum,
        default_value = "refuse"
    )]
    pub sandbox_without_jail: WithoutJailArg,

    #[command(flatten)]
    pub maxima: MaximaArgs,

    /// Maxima of particular tenants, as JSON by tenant slug:
    /// {"acme": {"wall": "60s", "memory_mb": 1024}}.
    #[arg(long, env = "FLOWMESH_SANDBOX_TENANT_MAXIMA")]
    pub sandbox_tenant_maxima: Option<String>,

    #[command(flatten)]
    pub log: LogArgs,
}

/// The languages that run in a worker process of this binary.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum WorkerLanguage {
    Javascript,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum WithoutJailArg {
    Refuse,
    Allow,
}

/// `FIRST..END`: a non-empty range of uids.
fn parse_uid_range(text: &str) -> Result<std::ops::Range<u32>, String> {
    let (first, end) = text
        .split_once("..")
        .ok_or("expected FIRST..END, e.g. 1000000..1065536")?;
    let parse = |n: &str| n.trim().parse::<u32>().map_err(|e| format!("{n:?}: {e}"));
    let range = parse(first)?..parse(end)?;
    if range.is_empty() || range.start == 0 {
        return Err("the range must hold at least one uid, and not uid 0".into());
    }
    Ok(range)
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}
