//! Command-line settings (each flag has a matching environment variable)
//! and the commands of the binary.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use flowmesh_actors::LedgerOnly;
use flowmesh_actors::records::{SealingKey, TenantLimits};
use flowmesh_actors::{Engine, EngineParts};
use flowmesh_bus::Bus;
use flowmesh_gateway::Gateway;
use flowmesh_model::{HumanDuration, WorkflowDocument};
use flowmesh_node_handlers::{HttpOptions, Registry};
use flowmesh_store::Store;

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

    /// Directory of the embedded SQLite store.
    #[arg(
        long,
        env = "FLOWMESH_DATA_DIR",
        default_value = "./flowmesh-data",
        global = true
    )]
    pub data_dir: PathBuf,

    /// NATS server with JetStream; without it the bus is in-process.
    #[arg(long, env = "FLOWMESH_NATS_URL", global = true)]
    pub nats_url: Option<String>,

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

    /// An execution with nothing to do for longer than this (a long wait,
    /// a distant retry, a wait for a resume) is parked in the store and
    /// holds no memory until it is due.
    #[arg(long, env = "FLOWMESH_PARK_AFTER", default_value = "5s", global = true)]
    pub park_after: HumanDuration,

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

    /// Key that seals tenants' secrets at rest: 32 random bytes in base64
    /// (`openssl rand -base64 32`). Embedded without one, a key is made and
    /// kept in the data directory; distributed without one, secrets are off.
    #[arg(
        long,
        env = "FLOWMESH_SECRETS_KEY",
        global = true,
        hide_env_values = true
    )]
    pub secrets_key: Option<String>,

    /// Whether anyone may create a tenant with POST /v1/auth/register.
    #[arg(long, env = "FLOWMESH_REGISTRATION", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub registration: bool,

    /// How long a login session lasts.
    #[arg(
        long,
        env = "FLOWMESH_SESSION_TTL",
        default_value = "12h",
        global = true
    )]
    pub session_ttl: HumanDuration,

    /// Credits each new tenant starts with.
    #[arg(
        long,
        env = "FLOWMESH_INITIAL_CREDITS",
        default_value_t = 1_000_000,
        global = true
    )]
    pub initial_credits: i64,

    /// Credits each started execution costs.
    #[arg(
        long,
        env = "FLOWMESH_PRICE_EXECUTION",
        default_value_t = 1,
        global = true
    )]
    pub price_execution: i64,

    /// Credits each node attempt costs.
    #[arg(
        long,
        env = "FLOWMESH_PRICE_NODE_RUN",
        default_value_t = 1,
        global = true
    )]
    pub price_node_run: i64,

    /// Credits per second of sandbox time (charged by the millisecond).
    #[arg(
        long,
        env = "FLOWMESH_PRICE_SANDBOX_SECOND",
        default_value_t = 10,
        global = true
    )]
    pub price_sandbox_second: i64,

    /// Credits per thousand language-model tokens (charged by the token).
    #[arg(
        long,
        env = "FLOWMESH_PRICE_LLM_1K_TOKENS",
        default_value_t = 2,
        global = true
    )]
    pub price_llm_1k_tokens: i64,

    /// Requests per second of a tenant without a limit of its own, per
    /// process (unset: unlimited).
    #[arg(long, env = "FLOWMESH_TENANT_RATE_LIMIT", global = true)]
    pub tenant_rate_limit: Option<i64>,

    /// Executions running at once for a tenant without a limit of its own;
    /// more wait, queued (unset: unlimited).
    #[arg(long, env = "FLOWMESH_TENANT_MAX_CONCURRENT", global = true)]
    pub tenant_max_concurrent: Option<i64>,

    /// Largest start input or webhook body for a tenant without a limit of
    /// its own, in bytes (unset: only --max-body-bytes applies).
    #[arg(long, env = "FLOWMESH_TENANT_MAX_PAYLOAD_BYTES", global = true)]
    pub tenant_max_payload_bytes: Option<i64>,

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
fn tenancy_options(cli: &Cli) -> flowmesh_actors::Tenancy {
    flowmesh_actors::Tenancy {
        registration: cli.registration,
        session_ttl: cli.session_ttl,
        initial_credits: cli.initial_credits,
        prices: flowmesh_actors::Prices {
            execution: cli.price_execution,
            node_run: cli.price_node_run,
            sandbox_second: cli.price_sandbox_second,
            llm_1k_tokens: cli.price_llm_1k_tokens,
        },
        limits: TenantLimits {
            rate_limit: cli.tenant_rate_limit,
            max_concurrent: cli.tenant_max_concurrent,
            max_payload_bytes: cli.tenant_max_payload_bytes,
        },
        ..Default::default()
    }
}

/// The key sealing secrets: given, or (embedded) kept in the data directory.
fn sealing_key(cli: &Cli) -> anyhow::Result<Option<SealingKey>> {
    if let Some(text) = &cli.secrets_key {
        return Ok(Some(SealingKey::from_base64(text)?));
    }
    if cli.database_url.is_some() {
        tracing::warn!("FLOWMESH_SECRETS_KEY is not set: the secrets API is off");
        return Ok(None);
    }
    let path = cli.data_dir.join("secrets.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(SealingKey::from_base64(&text).with_context(|| {
            format!("reading the secrets key in {}", path.display())
        })?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SealingKey::generate();
            std::fs::create_dir_all(&cli.data_dir)?;
            let mut file = std::fs::OpenOptions::new();
            file.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
            let mut file = file
                .open(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            std::io::Write::write_all(&mut file, key.to_base64().as_bytes())?;
            tracing::info!(path = %path.display(), "made a key for secrets; back it up with the database");
            Ok(Some(key))
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

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

fn store_options(cli: &Cli) -> flowmesh_store::Options {
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
    let checked = WorkflowDocument::from_json(&text)
        .and_then(|doc| flowmesh_model::validate::validate(&doc, &registry).map(|()| doc));
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
    let store = Store::connect(&store_options(cli))
        .await
        .context("connecting to the store")?;
    if let Some(key) = store
        .bootstrap(cli.admin_key.as_deref(), cli.initial_credits)
        .await
        .context("creating the default tenant")?
    {
        // Printed once, on the terminal only: it is the only copy.
        println!("created tenant \"default\" with admin API key: {key}");
    }
    let bus_options = flowmesh_bus::Options {
        nats_url: cli.nats_url.clone(),
        prefix: cli.bus_prefix.clone(),
        replicas: cli.nats_replicas,
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
    let options = flowmesh_actors::Options {
        node_id: node_id.clone(),
        lease: cli.lease,
        park_after: cli.park_after,
        retention_interval: cli.retention_interval,
        shutdown_grace: cli.shutdown_grace,
        sandbox: sandbox_options(cli)?,
        tenancy: tenancy_options(cli),
        ..Default::default()
    };
    let engine = Engine::start(EngineParts {
        store: store.clone(),
        bus: bus.clone(),
        registry: registry(cli)?,
        runner: None,
        sealing_key: sealing_key(cli)?,
        payments: Arc::new(LedgerOnly),
        options,
    })
    .await
    .context("starting the engine")?;
    let gateway_options = flowmesh_gateway::Options {
        listen: cli.listen,
        max_body_bytes: cli.max_body_bytes,
    };
    let gateway = Gateway::bind(&gateway_options, engine.handle()).await?;
    let addr = gateway.local_addr().unwrap_or(cli.listen);
    tracing::info!(%addr, node_id, transport = bus.transport_name(), "flowmesh is listening");
    // On stdout so that scripts (and tests, which pass port 0) can find the port.
    println!("listening on http://{addr}");
    gateway.serve(shutdown_signal()).await?;
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
