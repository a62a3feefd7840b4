//! The commands of the binary.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use flowmesh_actors::{Engine, EngineParts};
use flowmesh_bus::Bus;
use flowmesh_node_handlers::{Bounds, HttpOptions, Registry};
use flowmesh_services::LedgerOnly;
use flowmesh_store::Store;

use crate::args::{MaximaArgs, ServeArgs, StoreArgs, WithoutJailArg, WorkerLanguage};
use crate::roles::Listeners;

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

/// The instance's maxima of code nodes' limits, from the command line.
fn maxima(args: &MaximaArgs) -> anyhow::Result<flowmesh_sandbox::Limits> {
    match &args.sandbox_maxima {
        Some(json) => serde_json::from_str(json).context("--sandbox-maxima"),
        None => Ok(flowmesh_sandbox::Limits::maxima()),
    }
}

/// Settings of the code nodes' sandboxes, from the command line.
fn sandbox_options(args: &ServeArgs) -> anyhow::Result<flowmesh_sandbox::Options> {
    let mut options = flowmesh_sandbox::Options {
        jail: flowmesh_sandbox::JailOptions {
            bwrap: args.bwrap.clone(),
            python: args.python.clone(),
            uid_range: args.sandbox_uid_range.clone(),
            without_jail: match args.sandbox_without_jail {
                WithoutJailArg::Refuse => flowmesh_sandbox::WithoutJail::Refuse,
                WithoutJailArg::Allow => flowmesh_sandbox::WithoutJail::Allow,
            },
        },
        workdir_bytes: args.sandbox_workdir_bytes,
        python_concurrency: args.sandbox_python_concurrency,
        maxima: maxima(&args.maxima)?,
        ..Default::default()
    };
    if let Some(json) = &args.sandbox_tenant_maxima {
        options.tenant_maxima = serde_json::from_str(json).context("--sandbox-tenant-maxima")?;
    }
    Ok(options)
}

pub(crate) fn store_options(args: &StoreArgs) -> flowmesh_store::Options {
    flowmesh_store::Options {
        database_url: args.database_url.clone(),
        data_dir: args.data_dir.clone(),
        ..Default::default()
    }
}

fn registry(args: &ServeArgs) -> anyhow::Result<Registry> {
    let options = flowmesh_node_handlers::Options {
        http: HttpOptions {
            allow_hosts: HttpOptions::parse_allow_hosts(&args.http_allow_hosts),
            ..Default::default()
        },
        llm: flowmesh_node_handlers::llm::Options {
            base_url: args.llm_base_url.clone(),
            model: args.llm_model.clone(),
            api_key: args.llm_api_key.clone(),
            cache_ttl: args.llm_cache_ttl,
            ..Default::default()
        },
        ..Default::default()
    };
    Registry::new(&options).context("FLOWMESH_HTTP_ALLOW_HOSTS")
}

pub async fn migrate(store: &StoreArgs) -> anyhow::Result<ExitCode> {
    crate::data_dir::tighten(&store.data_dir)?;
    let store = Store::connect(&store_options(store))
        .await
        .context("connecting to the store")?;
    store.migrate().await.context("migrating")?;
    store.close().await;
    eprintln!("migrations applied");
    Ok(ExitCode::SUCCESS)
}

/// Checks a document as the API would for a tenant of this instance
/// without maxima of its own.
pub fn validate(file: &Path, maxima: &MaximaArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let registry = Registry::new(&flowmesh_node_handlers::Options::default())?;
    let bounds = Bounds {
        code_maxima: self::maxima(maxima)?,
        ..Bounds::default()
    };
    let checked = flowmesh_model::validate::check_json(&text, &registry.bounded(&bounds));
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

pub async fn serve(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    // Processes sharing NATS must share one store: each on its own SQLite
    // file would claim and run the same work apart.
    if args.nats_url.is_some() && args.secrets.store.database_url.is_none() {
        anyhow::bail!(
            "--nats-url needs a database every process shares: add --database-url postgres://... \
             (or DATABASE_URL); SQLite in the data directory serves the embedded mode only"
        );
    }
    args.roles.check(args.nats_url.is_some(), args.listen)?;
    if !args.roles.role().serves_requests() && args.admin_key.is_some() {
        tracing::warn!(
            "--admin-key is ignored by a worker: gateways make the platform tenant and its key"
        );
    }
    // Before SQLite opens its files: it gives -wal and -shm the database's mode.
    crate::data_dir::tighten(&args.secrets.store.data_dir)?;
    let store = Store::connect(&store_options(&args.secrets.store))
        .await
        .context("connecting to the store")?;
    let bus_options = flowmesh_bus::Options {
        nats_url: args.nats_url.clone(),
        auth: flowmesh_bus::NatsAuth {
            user: args.nats_user.clone(),
            password: args.nats_password.clone(),
            token: args.nats_token.clone(),
            nkey_seed: args.nats_nkey_seed.clone(),
            credentials_file: args.nats_credentials.clone(),
        },
        prefix: args.bus_prefix.clone(),
        replicas: args.nats_replicas,
        stream_buffer: args.stream_buffer,
        ..Default::default()
    };
    let bus = Bus::connect(&bus_options)
        .await
        .context("connecting to the bus")?;
    let node_id = args.node_id.clone().unwrap_or_else(|| {
        if args.nats_url.is_none() && args.secrets.store.database_url.is_none() {
            "embedded".to_owned()
        } else {
            format!("node-{}", flowmesh_model::ExecutionId::new().0.simple())
        }
    });
    let tenancy = args.tenancy.options();
    let options = flowmesh_actors::Options {
        node_id: node_id.clone(),
        lease: args.lease,
        claim_interval: args.claim_interval,
        park_after: args.park_after,
        actor_idle_after: args.actor_idle_after,
        shutdown_grace: args.shutdown_grace,
        sandbox: sandbox_options(args)?,
        public_events: true,
        prices: tenancy.prices,
        max_concurrent: tenancy.limits.max_concurrent,
        max_started_here: args.max_started_here,
        max_executions_here: usize::try_from(args.max_executions_here).unwrap_or(usize::MAX),
    };
    let services = flowmesh_services::Options {
        schedule_interval: args.claim_interval,
        cache_idle_after: args.actor_idle_after,
        max_sync_wait: args.max_sync_wait,
        stream_ticket_ttl: args.stream_ticket_ttl,
        webhook_signature_tolerance: args.webhook_signature_tolerance,
        retention_interval: args.retention_interval,
        tenancy,
        schedules: flowmesh_services::ScheduleLimits {
            max_per_tenant: args.tenant_max_schedules,
            min_interval: args.schedule_min_interval,
        },
        role: args.roles.role(),
        max_queued_starts: args.max_queued_starts,
    };
    let sealing_key = crate::secrets_key::sealing_key(&args.secrets)?;
    if let Some(key) = &sealing_key {
        crate::secrets_key::check_opens_stored(&store, key).await?;
    }
    let engine = Engine::start(EngineParts {
        store: store.clone(),
        bus: bus.clone(),
        registry: registry(args)?,
        runner: None,
        sealing_key,
        payments: Arc::new(LedgerOnly),
        options,
        services,
    })
    .await
    .context("starting the engine")?;
    let gateway_options = flowmesh_gateway::Options {
        listen: args.listen,
        max_body_bytes: args.max_body_bytes,
        connections: flowmesh_gateway::ConnectionOptions {
            max_connections: args.max_connections,
            max_per_address: args.max_connections_per_address,
            header_read_timeout: args.header_read_timeout,
            idle_timeout: args.idle_timeout,
            body_read_timeout: args.body_read_timeout,
        },
        max_streams_per_tenant: args.tenant_max_streams,
        webhook_limits: flowmesh_gateway::WebhookLimitOptions {
            per_address: Some(args.webhook_rate_per_address).filter(|&r| r > 0),
            per_route: Some(args.webhook_rate_per_route).filter(|&r| r > 0),
        },
        metrics_token: args.metrics_token.clone(),
        secure_cookies: args.secure_cookies,
        ..Default::default()
    };
    let listeners = Listeners::bind(&args.roles, gateway_options, engine.handle()).await?;
    // Only once the listeners hold their ports: a start that cannot bind
    // makes no tenant, so the key printed here is never lost to a failed
    // start. The platform tenant and its key are for the API: a worker,
    // which serves none, leaves them to the gateways and prints no key.
    if args.roles.role().serves_requests()
        && let Some(key) = store
            .bootstrap(args.admin_key.as_deref(), args.tenancy.initial_credits)
            .await
            .context("creating the default tenant")?
    {
        // Printed once, on the terminal only: it is the only copy.
        println!("created tenant \"default\" with admin API key: {key}");
    }
    listeners.announce(args.roles.role(), &node_id, bus.transport_name());
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
