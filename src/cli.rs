//! Command-line settings (each flag has a matching environment variable)
//! and the commands of the binary.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use flowmesh_actors::{Engine, EngineParts};
use flowmesh_bus::Bus;
use flowmesh_model::HumanDuration;
use flowmesh_node_handlers::{HttpOptions, Registry};
use flowmesh_services::LedgerOnly;
use flowmesh_store::Store;

use crate::roles::Listeners;

#[derive(Parser, Debug)]
#[command(
    name = "flowmesh",
    version,
    about = "Multi-tenant workflow automation engine"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Commands>,

    /// Address of the HTTP API.
    #[arg(
        long,
        env = "FLOWMESH_LISTEN",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub listen: SocketAddr,

    /// Bearer token GET /metrics requires (metrics name every tenant and
    /// workflow). Unset or empty: metrics are not served.
    #[arg(
        long,
        env = "FLOWMESH_METRICS_TOKEN",
        global = true,
        hide_env_values = true
    )]
    pub metrics_token: Option<String>,

    /// Directory of the embedded SQLite store.
    #[arg(
        long,
        env = "FLOWMESH_DATA_DIR",
        default_value = "./flowmesh-data",
        global = true
    )]
    pub data_dir: PathBuf,

    /// NATS server with JetStream; without it the bus is in-process.
    #[arg(long, env = "FLOWMESH_NATS_URL", global = true, hide_env_values = true)]
    pub nats_url: Option<String>,

    /// User the engine logs in to NATS as (with --nats-password); or put
    /// them in the URL: nats://user:password@host:4222.
    #[arg(long, env = "FLOWMESH_NATS_USER", global = true)]
    pub nats_user: Option<String>,

    /// Password of --nats-user.
    #[arg(
        long,
        env = "FLOWMESH_NATS_PASSWORD",
        global = true,
        hide_env_values = true
    )]
    pub nats_password: Option<String>,

    /// Token the engine logs in to NATS with.
    #[arg(
        long,
        env = "FLOWMESH_NATS_TOKEN",
        global = true,
        hide_env_values = true
    )]
    pub nats_token: Option<String>,

    /// Seed of the user nkey the engine logs in to NATS with (SU...).
    #[arg(
        long,
        env = "FLOWMESH_NATS_NKEY_SEED",
        global = true,
        hide_env_values = true
    )]
    pub nats_nkey_seed: Option<String>,

    /// Credentials file (JWT and nkey seed, as nsc writes them) the engine
    /// logs in to NATS with.
    #[arg(long, env = "FLOWMESH_NATS_CREDENTIALS", global = true)]
    pub nats_credentials: Option<PathBuf>,

    /// PostgreSQL URL (postgres://...); without it the store is SQLite in the data directory.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,

    /// Prefix of NATS subjects and streams, to run several deployments on one NATS.
    #[arg(
        long,
        env = "FLOWMESH_BUS_PREFIX",
        default_value = "flowmesh",
        global = true
    )]
    pub bus_prefix: String,

    /// This process's identity as an owner of executions; keep it across
    /// restarts to take executions back at once. Default: "embedded" with
    /// SQLite, a random id when distributed.
    #[arg(long, env = "FLOWMESH_NODE_ID", global = true)]
    pub node_id: Option<String>,

    /// API key of the default tenant's admin, created on first start (a random one is printed otherwise).
    #[arg(
        long,
        env = "FLOWMESH_ADMIN_KEY",
        global = true,
        hide_env_values = true
    )]
    pub admin_key: Option<String>,

    /// Hosts or CIDRs that http_request may reach although private (comma-separated).
    #[arg(
        long,
        env = "FLOWMESH_HTTP_ALLOW_HOSTS",
        default_value = "",
        global = true
    )]
    pub http_allow_hosts: String,

    /// Base URL of an OpenAI-compatible chat-completions API (OpenAI,
    /// Ollama, vLLM...) for ai and agents nodes and workflow generation;
    /// tenants may set their own.
    #[arg(long, env = "FLOWMESH_LLM_BASE_URL", global = true)]
    pub llm_base_url: Option<String>,

    /// Model used when neither the node nor the tenant names one.
    #[arg(long, env = "FLOWMESH_LLM_MODEL", global = true)]
    pub llm_model: Option<String>,

    /// API key sent to the instance's model endpoint.
    #[arg(
        long,
        env = "FLOWMESH_LLM_API_KEY",
        global = true,
        hide_env_values = true
    )]
    pub llm_api_key: Option<String>,

    /// How long answers to identical deterministic model requests
    /// (temperature 0) are reused per tenant; 0 turns the cache off.
    #[arg(
        long,
        env = "FLOWMESH_LLM_CACHE_TTL",
        default_value = "10m",
        global = true
    )]
    pub llm_cache_ttl: HumanDuration,

    /// Copies of each JetStream stream (3 on a three-node NATS cluster);
    /// applies when the streams are first created.
    #[arg(
        long,
        env = "FLOWMESH_NATS_REPLICAS",
        default_value_t = 1,
        global = true
    )]
    pub nats_replicas: usize,

    /// How long an execution lease lasts without renewal.
    #[arg(long, env = "FLOWMESH_LEASE", default_value = "15s", global = true)]
    pub lease: HumanDuration,

    /// How often each process looks for executions nobody started or owns
    /// (lost commands, dead processes, parked executions coming due).
    #[arg(
        long,
        env = "FLOWMESH_CLAIM_INTERVAL",
        default_value = "1s",
        global = true
    )]
    pub claim_interval: HumanDuration,

    /// An execution with nothing to do for longer than this (a long wait,
    /// a distant retry, a wait for a resume) is parked in the store and
    /// holds no memory until it is due.
    #[arg(long, env = "FLOWMESH_PARK_AFTER", default_value = "5s", global = true)]
    pub park_after: HumanDuration,

    /// A tenant or workflow actor with nothing to do for this long stops
    /// (the next message spawns it again), and what the process keeps for
    /// that tenant or workflow goes after as long unused.
    #[arg(
        long,
        env = "FLOWMESH_ACTOR_IDLE_AFTER",
        default_value = "5m",
        global = true
    )]
    pub actor_idle_after: HumanDuration,

    /// Longest a synchronous caller waits for an answer (`?wait=true`, a
    /// webhook whose workflow responds); after it, the caller gets 202 with
    /// the execution id and the run goes on.
    #[arg(
        long,
        env = "FLOWMESH_MAX_SYNC_WAIT",
        default_value = "30s",
        global = true
    )]
    pub max_sync_wait: HumanDuration,

    /// How long a stream ticket (`POST /v1/stream-tickets`) stays valid.
    #[arg(
        long,
        env = "FLOWMESH_STREAM_TICKET_TTL",
        default_value = "60s",
        global = true
    )]
    pub stream_ticket_ttl: HumanDuration,

    /// How far the signed timestamp of a webhook signature (Stripe, Slack,
    /// `hmac` with a timestamp header) may be from now, either way; older
    /// requests are refused with 401, so a captured one cannot be replayed.
    #[arg(
        long,
        env = "FLOWMESH_WEBHOOK_SIGNATURE_TOLERANCE",
        default_value = "5m",
        global = true
    )]
    pub webhook_signature_tolerance: HumanDuration,

    /// How often finished executions past their tenant's retention are
    /// purged and their space given back.
    #[arg(
        long,
        env = "FLOWMESH_RETENTION_INTERVAL",
        default_value = "10m",
        global = true
    )]
    pub retention_interval: HumanDuration,

    /// On shutdown, how long running node attempts may take to finish.
    #[arg(
        long,
        env = "FLOWMESH_SHUTDOWN_GRACE",
        default_value = "10s",
        global = true
    )]
    pub shutdown_grace: HumanDuration,

    /// Largest accepted request body, in bytes.
    #[arg(long, env = "FLOWMESH_MAX_BODY_BYTES", default_value_t = 1024 * 1024, global = true)]
    pub max_body_bytes: usize,

    /// Connections the gateway holds open at once; more are closed at once.
    #[arg(
        long,
        env = "FLOWMESH_MAX_CONNECTIONS",
        default_value_t = 10_000,
        global = true
    )]
    pub max_connections: usize,

    /// Event streams (`/v1/events`, an execution's events) one tenant holds
    /// open in one process; more get 429.
    #[arg(
        long,
        env = "FLOWMESH_TENANT_MAX_STREAMS",
        default_value_t = 100,
        global = true
    )]
    pub tenant_max_streams: usize,

    /// Schedule triggers one tenant may hold across its published
    /// workflows; a publish beyond it is refused (422).
    #[arg(
        long,
        env = "FLOWMESH_TENANT_MAX_SCHEDULES",
        default_value_t = 100,
        global = true
    )]
    pub tenant_max_schedules: u64,

    /// Shortest time a schedule trigger may leave between two ticks; a
    /// workflow whose schedule ticks more often is refused at publish (422).
    #[arg(
        long,
        env = "FLOWMESH_SCHEDULE_MIN_INTERVAL",
        default_value = "1m",
        global = true
    )]
    pub schedule_min_interval: HumanDuration,

    /// Events kept, per tenant and process, for the slowest of the
    /// tenant's event streams; a stream further behind is closed with a
    /// `lagged` event, to reconnect from its last event id.
    #[arg(
        long,
        env = "FLOWMESH_STREAM_BUFFER",
        default_value_t = 1_024,
        global = true
    )]
    pub stream_buffer: usize,

    /// Webhook requests per second from one client address (0: no limit).
    #[arg(
        long,
        env = "FLOWMESH_WEBHOOK_RATE_PER_ADDRESS",
        default_value_t = 1_000,
        global = true
    )]
    pub webhook_rate_per_address: u32,

    /// Webhook requests per second to one webhook, from anyone (0: no limit).
    #[arg(
        long,
        env = "FLOWMESH_WEBHOOK_RATE_PER_ROUTE",
        default_value_t = 5_000,
        global = true
    )]
    pub webhook_rate_per_route: u32,

    /// Connections the gateway holds open from one address.
    #[arg(
        long,
        env = "FLOWMESH_MAX_CONNECTIONS_PER_ADDRESS",
        default_value_t = 1_000,
        global = true
    )]
    pub max_connections_per_address: usize,

    /// Time a client has to send a request's headers; then its connection
    /// is closed.
    #[arg(
        long,
        env = "FLOWMESH_HEADER_READ_TIMEOUT",
        default_value = "10s",
        global = true
    )]
    pub header_read_timeout: HumanDuration,

    /// A connection that moves no bytes for this long is closed (event
    /// streams send a keep-alive every 15 s).
    #[arg(
        long,
        env = "FLOWMESH_IDLE_TIMEOUT",
        default_value = "2m",
        global = true
    )]
    pub idle_timeout: HumanDuration,

    /// Time a client has, once a request's headers are in, to send its
    /// whole body; then it gets 408 and its connection is closed.
    #[arg(
        long,
        env = "FLOWMESH_BODY_READ_TIMEOUT",
        default_value = "10s",
        global = true
    )]
    pub body_read_timeout: HumanDuration,

    /// Key that seals tenants' secrets at rest: 32 random bytes in base64
    /// (`openssl rand -base64 32`). Embedded without one (or with an empty
    /// one), a key is made and kept in the data directory; distributed
    /// without one, secrets are off.
    #[arg(
        long,
        env = "FLOWMESH_SECRETS_KEY",
        global = true,
        hide_env_values = true
    )]
    pub secrets_key: Option<String>,

    #[command(flatten)]
    pub tenancy: crate::tenancy_args::TenancyArgs,

    #[command(flatten)]
    pub roles: crate::roles::RoleArgs,

    /// The Python interpreter of code nodes: a system interpreter (one
    /// under /home or /root is refused), bound read-only into the jail.
    #[arg(
        long,
        env = "FLOWMESH_PYTHON",
        default_value = "/usr/bin/python3",
        global = true
    )]
    pub python: PathBuf,

    /// The bubblewrap program that jails code nodes.
    #[arg(long, env = "FLOWMESH_BWRAP", default_value = "bwrap", global = true)]
    pub bwrap: PathBuf,

    /// Host uids the code of each tenant runs as (one per tenant) when the
    /// engine runs as root, as FIRST..END (END excluded).
    #[arg(
        long,
        env = "FLOWMESH_SANDBOX_UID_RANGE",
        default_value = "1000000..1065536",
        value_parser = parse_uid_range,
        global = true
    )]
    pub sandbox_uid_range: std::ops::Range<u32>,

    /// Size of a Python call's working directory (a tmpfs in the jail), in
    /// bytes: all the code may write.
    #[arg(
        long,
        env = "FLOWMESH_SANDBOX_WORKDIR_BYTES",
        default_value_t = 16 << 20,
        global = true
    )]
    pub sandbox_workdir_bytes: u64,

    /// Python calls of one tenant running at once in one engine process;
    /// the rest wait their turn (up to a minute).
    #[arg(
        long,
        env = "FLOWMESH_SANDBOX_PYTHON_CONCURRENCY",
        default_value_t = 4,
        global = true
    )]
    pub sandbox_python_concurrency: usize,

    /// Where the host cannot jail code (bubblewrap missing, or no user,
    /// PID, mount or network namespaces, or no seccomp): refuse code nodes,
    /// or allow them bounded only by the interpreter's audit hook and
    /// resource limits.
    #[arg(
        long,
        env = "FLOWMESH_SANDBOX_WITHOUT_JAIL",
        value_enum,
        default_value = "refuse",
        global = true
    )]
    pub sandbox_without_jail: WithoutJailArg,

    /// The most a code node may ask for, as JSON: {"wall": "30s",
    /// "memory_mb": 512, "output_bytes": 16777216}.
    #[arg(long, env = "FLOWMESH_SANDBOX_MAXIMA", global = true)]
    pub sandbox_maxima: Option<String>,

    /// Maxima of particular tenants, as JSON by tenant slug:
    /// {"acme": {"wall": "60s", "memory_mb": 1024}}.
    #[arg(long, env = "FLOWMESH_SANDBOX_TENANT_MAXIMA", global = true)]
    pub sandbox_tenant_maxima: Option<String>,

    /// Log format.
    #[arg(
        long,
        env = "FLOWMESH_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
}

#[derive(Subcommand, Debug)]
pub enum Commands {
    /// Run the engine (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Check a workflow document offline, with the same messages as the API.
    Validate {
        /// Path of the JSON document.
        file: PathBuf,
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
        /// The new key: 32 random bytes in base64 (openssl rand -base64
        /// 32). Needed with --secrets-key; with the key file, one is made.
        #[arg(long, env = "FLOWMESH_NEW_SECRETS_KEY", hide_env_values = true)]
        new_secrets_key: Option<String>,
    },
}

/// The languages that run in a worker process of this binary.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum WorkerLanguage {
    Javascript,
}

/// A sandbox worker: answers the calls its engine sends until its stdin
/// ends (the engine is gone).
pub fn sandbox_worker(language: WorkerLanguage) -> anyhow::Result<ExitCode> {
    match language {
        WorkerLanguage::Javascript => {
            flowmesh_sandbox::worker::serve(std::io::stdin().lock(), std::io::stdout())?;
        }
    }
    Ok(ExitCode::SUCCESS)
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

/// Settings of the code nodes' sandboxes, from the command line.
fn sandbox_options(cli: &Cli) -> anyhow::Result<flowmesh_sandbox::Options> {
    let mut options = flowmesh_sandbox::Options {
        jail: flowmesh_sandbox::JailOptions {
            bwrap: cli.bwrap.clone(),
            python: cli.python.clone(),
            uid_range: cli.sandbox_uid_range.clone(),
            without_jail: match cli.sandbox_without_jail {
                WithoutJailArg::Refuse => flowmesh_sandbox::WithoutJail::Refuse,
                WithoutJailArg::Allow => flowmesh_sandbox::WithoutJail::Allow,
            },
        },
        workdir_bytes: cli.sandbox_workdir_bytes,
        python_concurrency: cli.sandbox_python_concurrency,
        ..Default::default()
    };
    if let Some(json) = &cli.sandbox_maxima {
        options.maxima = serde_json::from_str(json).context("--sandbox-maxima")?;
    }
    if let Some(json) = &cli.sandbox_tenant_maxima {
        options.tenant_maxima = serde_json::from_str(json).context("--sandbox-tenant-maxima")?;
    }
    Ok(options)
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

pub(crate) fn store_options(cli: &Cli) -> flowmesh_store::Options {
    flowmesh_store::Options {
        database_url: cli.database_url.clone(),
        data_dir: cli.data_dir.clone(),
        ..Default::default()
    }
}

fn registry(cli: &Cli) -> anyhow::Result<Registry> {
    let options = flowmesh_node_handlers::Options {
        http: HttpOptions {
            allow_hosts: HttpOptions::parse_allow_hosts(&cli.http_allow_hosts),
            ..Default::default()
        },
        llm: flowmesh_node_handlers::llm::Options {
            base_url: cli.llm_base_url.clone(),
            model: cli.llm_model.clone(),
            api_key: cli.llm_api_key.clone(),
            cache_ttl: cli.llm_cache_ttl,
            ..Default::default()
        },
        ..Default::default()
    };
    Registry::new(&options).context("FLOWMESH_HTTP_ALLOW_HOSTS")
}

pub async fn migrate(cli: &Cli) -> anyhow::Result<ExitCode> {
    crate::data_dir::tighten(&cli.data_dir)?;
    let store = Store::connect(&store_options(cli))
        .await
        .context("connecting to the store")?;
    store.migrate().await.context("migrating")?;
    store.close().await;
    eprintln!("migrations applied");
    Ok(ExitCode::SUCCESS)
}

pub fn validate(cli: &Cli, file: &Path) -> anyhow::Result<ExitCode> {
    let text = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let registry = registry(cli)?;
    let checked = flowmesh_model::validate::check_json(&text, &registry);
    match checked {
        Ok(doc) => {
            println!(
                "{}: valid workflow {:?} with {} nodes",
                file.display(),
                doc.name,
                doc.nodes.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            println!("{}: {errors}", file.display());
            Ok(ExitCode::from(2))
        }
    }
}

pub async fn serve(cli: &Cli) -> anyhow::Result<ExitCode> {
    // Processes sharing NATS must share one store: each on its own SQLite
    // file would claim and run the same work apart.
    if cli.nats_url.is_some() && cli.database_url.is_none() {
        anyhow::bail!(
            "--nats-url needs a database every process shares: add --database-url postgres://... \
             (or DATABASE_URL); SQLite in the data directory serves the embedded mode only"
        );
    }
    cli.roles.check(cli.nats_url.is_some(), cli.listen)?;
    if !cli.roles.role().serves_requests() && cli.admin_key.is_some() {
        tracing::warn!(
            "--admin-key is ignored by a worker: gateways make the platform tenant and its key"
        );
    }
    // Before SQLite opens its files: it gives -wal and -shm the database's mode.
    crate::data_dir::tighten(&cli.data_dir)?;
    let store = Store::connect(&store_options(cli))
        .await
        .context("connecting to the store")?;
    let bus_options = flowmesh_bus::Options {
        nats_url: cli.nats_url.clone(),
        auth: flowmesh_bus::NatsAuth {
            user: cli.nats_user.clone(),
            password: cli.nats_password.clone(),
            token: cli.nats_token.clone(),
            nkey_seed: cli.nats_nkey_seed.clone(),
            credentials_file: cli.nats_credentials.clone(),
        },
        prefix: cli.bus_prefix.clone(),
        replicas: cli.nats_replicas,
        stream_buffer: cli.stream_buffer,
        ..Default::default()
    };
    let bus = Bus::connect(&bus_options)
        .await
        .context("connecting to the bus")?;
    let node_id = cli.node_id.clone().unwrap_or_else(|| {
        if cli.nats_url.is_none() && cli.database_url.is_none() {
            "embedded".to_owned()
        } else {
            format!("node-{}", flowmesh_model::ExecutionId::new().0.simple())
        }
    });
    let tenancy = cli.tenancy.options();
    let options = flowmesh_actors::Options {
        node_id: node_id.clone(),
        lease: cli.lease,
        claim_interval: cli.claim_interval,
        park_after: cli.park_after,
        actor_idle_after: cli.actor_idle_after,
        shutdown_grace: cli.shutdown_grace,
        sandbox: sandbox_options(cli)?,
        public_events: true,
        prices: tenancy.prices,
        max_concurrent: tenancy.limits.max_concurrent,
    };
    let services = flowmesh_services::Options {
        schedule_interval: cli.claim_interval,
        cache_idle_after: cli.actor_idle_after,
        max_sync_wait: cli.max_sync_wait,
        stream_ticket_ttl: cli.stream_ticket_ttl,
        webhook_signature_tolerance: cli.webhook_signature_tolerance,
        retention_interval: cli.retention_interval,
        tenancy,
        schedules: flowmesh_services::ScheduleLimits {
            max_per_tenant: cli.tenant_max_schedules,
            min_interval: cli.schedule_min_interval,
        },
        role: cli.roles.role(),
    };
    let sealing_key = crate::secrets_key::sealing_key(cli)?;
    if let Some(key) = &sealing_key {
        crate::secrets_key::check_opens_stored(&store, key).await?;
    }
    let engine = Engine::start(EngineParts {
        store: store.clone(),
        bus: bus.clone(),
        registry: registry(cli)?,
        runner: None,
        sealing_key,
        payments: Arc::new(LedgerOnly),
        options,
        services,
    })
    .await
    .context("starting the engine")?;
    let gateway_options = flowmesh_gateway::Options {
        listen: cli.listen,
        max_body_bytes: cli.max_body_bytes,
        connections: flowmesh_gateway::ConnectionOptions {
            max_connections: cli.max_connections,
            max_per_address: cli.max_connections_per_address,
            header_read_timeout: cli.header_read_timeout,
            idle_timeout: cli.idle_timeout,
            body_read_timeout: cli.body_read_timeout,
        },
        max_streams_per_tenant: cli.tenant_max_streams,
        webhook_limits: flowmesh_gateway::WebhookLimitOptions {
            per_address: Some(cli.webhook_rate_per_address).filter(|&r| r > 0),
            per_route: Some(cli.webhook_rate_per_route).filter(|&r| r > 0),
        },
        metrics_token: cli.metrics_token.clone(),
        ..Default::default()
    };
    let listeners = Listeners::bind(&cli.roles, gateway_options, engine.handle()).await?;
    // Only once the listeners hold their ports: a start that cannot bind
    // makes no tenant, so the key printed here is never lost to a failed
    // start. The platform tenant and its key are for the API: a worker,
    // which serves none, leaves them to the gateways and prints no key.
    if cli.roles.role().serves_requests()
        && let Some(key) = store
            .bootstrap(cli.admin_key.as_deref(), cli.tenancy.initial_credits)
            .await
            .context("creating the default tenant")?
    {
        // Printed once, on the terminal only: it is the only copy.
        println!("created tenant \"default\" with admin API key: {key}");
    }
    listeners.announce(cli.roles.role(), &node_id, bus.transport_name());
    let handle = engine.handle();
    listeners
        .serve(async move {
            shutdown_signal().await;
            handle.stop_waiting();
        })
        .await?;
    tracing::info!("shutting down: no new requests; letting running nodes finish");
    engine.shutdown().await;
    bus.shutdown().await;
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
