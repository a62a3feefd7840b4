//! `flowmesh-bench`: runs every scenario in both modes beside the measured
//! limits of this machine, and writes JSON and a markdown table.

mod closed;
mod code;
mod control;
mod engine;
mod fairness;
mod flushed;
mod idle;
mod limits;
mod load;
mod report;
mod scenarios;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use engine::{Engine, Mode, Target};
use serde::{Deserialize, Serialize};

#[derive(Parser)]
#[command(
    name = "flowmesh-bench",
    about = "flowmesh beside the limits of this machine"
)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Every scenario in both modes.
    All {
        /// Small sizes: finishes in about a minute, to catch breakage, not to judge speed.
        #[arg(long)]
        quick: bool,
        /// Where results.json and results.md go.
        #[arg(long, default_value = "bench-results")]
        out: PathBuf,
        /// A nats-server (2.10 or later) for the run with every acknowledgement
        /// flushed to disk; without one found, that run is skipped and the
        /// report says why.
        #[arg(long)]
        flushed_nats_server: Option<PathBuf>,
    },
    /// Only the parked scenario, embedded and distributed, at a chosen size
    /// (the memory of waiting executions); prints JSON.
    Parked {
        #[arg(long, default_value_t = 100_000)]
        executions: usize,
        /// Only this setup: `embedded` or `distributed`.
        #[arg(long, value_parser = ["embedded", "distributed"])]
        only: Option<String>,
    },
    /// Only the fairness scenario, embedded and distributed, at full size
    /// (or `--quick`); prints JSON.
    Fairness {
        #[arg(long)]
        quick: bool,
        /// Only this setup: `embedded` or `distributed`.
        #[arg(long, value_parser = ["embedded", "distributed"])]
        only: Option<String>,
    },
    /// Only the webhook-sync scenario, embedded and distributed, at full
    /// size (or `--quick`); prints JSON.
    Webhook {
        #[arg(long)]
        quick: bool,
        /// Only this setup: `embedded` or `distributed`.
        #[arg(long, value_parser = ["embedded", "distributed"])]
        only: Option<String>,
    },
    /// Only the control-flow scenario (a `for_each` over many items with a
    /// pure body and with an HTTP body, and a `call_workflow` round trip),
    /// embedded and distributed; prints JSON.
    ControlFlow {
        #[arg(long)]
        quick: bool,
        /// Only this setup: `embedded` or `distributed`.
        #[arg(long, value_parser = ["embedded", "distributed"])]
        only: Option<String>,
    },
    /// Only the saturation scenario (ten-node chains started through the
    /// API as fast as they finish), embedded and distributed, at full size
    /// (or `--quick`); prints JSON.
    Saturation {
        #[arg(long)]
        quick: bool,
        /// Only this setup: `embedded` or `distributed`.
        #[arg(long, value_parser = ["embedded", "distributed"])]
        only: Option<String>,
    },
    /// Only the code-node overhead (one small call in each sandbox, cold
    /// and warm); prints JSON.
    Code {
        /// Cold calls per sandbox.
        #[arg(long, default_value_t = 100)]
        cold: usize,
        /// Warm and sustained calls.
        #[arg(long, default_value_t = 1_000)]
        warm: usize,
    },
    /// Only the idle-memory scenario: tenants seeded through the store run
    /// once each, then the engine's memory is read at idle; prints JSON.
    IdleMemory {
        #[arg(long, default_value_t = 10_000)]
        tenants: usize,
        /// The engine's `--actor-idle-after` for the run, in seconds (the
        /// default setting is five minutes); the last reading is taken
        /// twice this after the load.
        #[arg(long, default_value_t = 30)]
        idle_after_s: u64,
        /// Only this setup: `embedded` or `distributed`.
        #[arg(long, value_parser = ["embedded", "distributed"])]
        only: Option<String>,
    },
    /// Writes the markdown table again from a run's results.json.
    Report {
        /// The results.json of a run.
        results: PathBuf,
    },
}

/// How much load each scenario gets.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Plan {
    pub step_duration: Duration,
    pub rates: Vec<f64>,
    pub fixed_rate: f64,
    pub sequential: usize,
    pub saturation: usize,
    pub fan_out_runs: usize,
    pub parked: usize,
    pub recovery: usize,
    pub limit_messages: usize,
    pub limit_rows: usize,
    pub code_cold: usize,
    pub code_warm: usize,
    /// Each quiet tenant's rate in the fairness scenario.
    #[serde(default)]
    pub fair_rate: f64,
    /// Length of each closed-loop run (bare axum, and webhook-sync in each setup).
    #[serde(default)]
    pub closed_loop: Duration,
    /// Items of the control-flow scenario's loops.
    #[serde(default)]
    pub loop_items: usize,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Plan {
                step_duration: Duration::from_secs(2),
                rates: vec![100.0, 200.0],
                fixed_rate: 100.0,
                sequential: 20,
                saturation: 200,
                fan_out_runs: 3,
                parked: 500,
                recovery: 200,
                limit_messages: 2_000,
                limit_rows: 10_000,
                code_cold: 10,
                code_warm: 50,
                fair_rate: 10.0,
                closed_loop: Duration::from_secs(2),
                loop_items: 100,
            }
        } else {
            Plan {
                step_duration: Duration::from_secs(5),
                rates: vec![250.0, 500.0, 1_000.0, 2_000.0, 4_000.0, 8_000.0, 12_000.0],
                fixed_rate: 500.0,
                sequential: 200,
                saturation: 5_000,
                fan_out_runs: 20,
                parked: 100_000,
                recovery: 10_000,
                limit_messages: 50_000,
                limit_rows: 200_000,
                code_cold: 100,
                code_warm: 1_000,
                fair_rate: 25.0,
                closed_loop: Duration::from_secs(10),
                loop_items: 1_000,
            }
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ModeResults {
    pub mode: Mode,
    pub webhook_sync: scenarios::WebhookSync,
    pub durable_latency: scenarios::DurableLatency,
    pub saturation: scenarios::Saturation,
    pub fan_out: scenarios::FanOut,
    pub parked: scenarios::Parked,
    pub recovery: scenarios::Recovery,
    pub fairness: Option<fairness::Fairness>,
    #[serde(default)]
    pub control_flow: Option<control::ControlFlow>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Results {
    pub machine: report::Machine,
    pub quick: bool,
    pub plan: Plan,
    pub limits: limits::Limits,
    /// Sandbox overhead per code-node call (the same in every mode).
    pub code_node: code::CodeNode,
    /// Per-step overhead with tracing off and on (embedded).
    pub tracing: scenarios::TracingCost,
    pub modes: Vec<ModeResults>,
    /// Runs left out, and why.
    pub skipped: Vec<String>,
}

/// The local setups, or only the one named.
fn only_targets(only: Option<&str>) -> impl Iterator<Item = Target> {
    Target::local()
        .into_iter()
        .filter(move |t| only.is_none_or(|name| t.mode.name() == name))
}

async fn run_mode(target: &Target, plan: &Plan) -> anyhow::Result<ModeResults> {
    let mode = target.mode;
    let (sink_url, sink) = scenarios::Sink::start().await?;
    eprintln!("[{}] webhook-sync", mode.name());
    let engine = Engine::start(target, "127.0.0.1").await?;
    let webhook_sync = scenarios::webhook_sync(&engine, plan).await?;
    eprintln!("[{}] durable-latency", mode.name());
    let durable_latency = scenarios::durable_latency(&engine, plan, &sink_url).await?;
    eprintln!("[{}] saturation", mode.name());
    let saturation = scenarios::saturation(&engine, plan).await?;
    eprintln!("[{}] fan-out", mode.name());
    let fan_out = scenarios::fan_out(&engine, plan).await?;
    eprintln!("[{}] control flow", mode.name());
    let control_flow = Some(control::control_flow(&engine, plan, &sink_url).await?);
    drop(engine);
    eprintln!("[{}] parked", mode.name());
    let mut engine = Engine::start(target, "127.0.0.1").await?;
    let parked = scenarios::parked(&mut engine, plan).await?;
    drop(engine);
    eprintln!("[{}] recovery", mode.name());
    let (recovery_url, recovery_sink) = scenarios::Sink::start().await?;
    let mut engine = Engine::start(target, "127.0.0.1").await?;
    let recovery = scenarios::recovery(&mut engine, plan, &recovery_url, &recovery_sink).await?;
    drop(engine);
    eprintln!("[{}] fairness", mode.name());
    let engine = Engine::start(target, "127.0.0.1").await?;
    let fairness = Some(fairness::fairness(&engine, plan, &sink_url).await?);
    drop(sink);
    Ok(ModeResults {
        mode,
        webhook_sync,
        durable_latency,
        saturation,
        fan_out,
        parked,
        recovery,
        fairness,
        control_flow,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (quick, out, flushed_nats_server) = match Cli::parse().command {
        Commands::All {
            quick,
            out,
            flushed_nats_server,
        } => (quick, out, flushed_nats_server),
        Commands::Code { cold, warm } => {
            let code_node = code::code_node(cold, warm).await?;
            println!("{}", serde_json::to_string_pretty(&code_node)?);
            return Ok(());
        }
        Commands::Parked { executions, only } => {
            engine::binary()?;
            let plan = Plan {
                parked: executions,
                ..Plan::new(true)
            };
            let targets = only_targets(only.as_deref());
            for target in targets {
                eprintln!("[{}] parked", target.mode.name());
                let mut engine = Engine::start(&target, "127.0.0.1").await?;
                let parked = scenarios::parked(&mut engine, &plan).await?;
                println!(
                    "{}: {}",
                    target.mode.name(),
                    serde_json::to_string(&parked)?
                );
            }
            return Ok(());
        }
        Commands::Fairness { quick, only } => {
            engine::binary()?;
            let plan = Plan::new(quick);
            let (sink_url, _sink) = scenarios::Sink::start().await?;
            let targets = only_targets(only.as_deref());
            for target in targets {
                eprintln!("[{}] fairness", target.mode.name());
                let engine = Engine::start(&target, "127.0.0.1").await?;
                let result = fairness::fairness(&engine, &plan, &sink_url).await?;
                println!(
                    "{}: {}",
                    target.mode.name(),
                    serde_json::to_string(&result)?
                );
            }
            return Ok(());
        }
        Commands::Webhook { quick, only } => {
            engine::binary()?;
            let plan = Plan::new(quick);
            for target in only_targets(only.as_deref()) {
                eprintln!("[{}] webhook-sync", target.mode.name());
                let engine = Engine::start(&target, "127.0.0.1").await?;
                let result = scenarios::webhook_sync(&engine, &plan).await?;
                println!(
                    "{}: {}",
                    target.mode.name(),
                    serde_json::to_string(&result)?
                );
            }
            return Ok(());
        }
        Commands::ControlFlow { quick, only } => {
            engine::binary()?;
            let plan = Plan::new(quick);
            let (sink_url, _sink) = scenarios::Sink::start().await?;
            for target in only_targets(only.as_deref()) {
                eprintln!("[{}] control flow", target.mode.name());
                let engine = Engine::start(&target, "127.0.0.1").await?;
                let result = control::control_flow(&engine, &plan, &sink_url).await?;
                println!(
                    "{}: {}",
                    target.mode.name(),
                    serde_json::to_string(&result)?
                );
            }
            return Ok(());
        }
        Commands::Saturation { quick, only } => {
            engine::binary()?;
            let plan = Plan::new(quick);
            for target in only_targets(only.as_deref()) {
                eprintln!("[{}] saturation", target.mode.name());
                let engine = Engine::start(&target, "127.0.0.1").await?;
                let result = scenarios::saturation(&engine, &plan).await?;
                println!(
                    "{}: {}",
                    target.mode.name(),
                    serde_json::to_string(&result)?
                );
            }
            return Ok(());
        }
        Commands::IdleMemory {
            tenants,
            idle_after_s,
            only,
        } => {
            engine::binary()?;
            let mut all_within = true;
            let targets = only_targets(only.as_deref());
            for target in targets {
                eprintln!("[{}] idle-memory", target.mode.name());
                let result = idle::idle_memory(&target, tenants, idle_after_s).await?;
                all_within &= result.within_margin && result.failed_runs == 0;
                println!(
                    "{}: {}",
                    target.mode.name(),
                    serde_json::to_string(&result)?
                );
            }
            if !all_within {
                anyhow::bail!(
                    "the engine stayed more than {} MB above its idle baseline, or runs failed",
                    idle::MARGIN_MB
                );
            }
            return Ok(());
        }
        Commands::Report { results } => {
            let text = std::fs::read_to_string(&results)?;
            let results: Results = serde_json::from_str(&text)?;
            println!("{}", report::markdown(&results));
            return Ok(());
        }
    };
    engine::binary()?;
    let plan = Plan::new(quick);
    let mut skipped = Vec::new();
    let flushed = match flushed::find(flushed_nats_server) {
        Ok((binary, version)) => Some(flushed::FlushedNats::start(&binary, version)?),
        Err(why) => {
            skipped.push(format!("distributed, flushed: {why}"));
            None
        }
    };
    eprintln!("limits");
    let http_bare_axum = limits::http(&plan.rates, plan.step_duration).await?;
    let http_bare_axum_closed = match limits::http_closed(plan.closed_loop).await {
        Ok(closed) => Some(closed),
        Err(why) => {
            skipped.push(format!("closed-loop runs: {why}"));
            None
        }
    };
    let jetstream = limits::jetstream(engine::NATS_URL, plan.limit_messages).await?;
    let jetstream_flushed = match &flushed {
        Some(server) => Some(limits::jetstream(&server.url, plan.limit_messages).await?),
        None => None,
    };
    let (postgres_batched_rows_per_s, postgres_single_commit_per_s) =
        limits::postgres(plan.limit_rows).await?;
    let (sqlite_batched_rows_per_s, sqlite_single_commit_per_s) =
        limits::sqlite(plan.limit_rows).await?;
    let limits = limits::Limits {
        http_bare_axum,
        http_bare_axum_closed,
        jetstream,
        jetstream_flushed,
        postgres_synchronous_commit: limits::postgres_synchronous_commit().await?,
        postgres_batched_rows_per_s,
        postgres_single_commit_per_s,
        sqlite_batched_rows_per_s,
        sqlite_single_commit_per_s,
    };
    let mut targets = Target::local().to_vec();
    if let Some(server) = &flushed {
        eprintln!("flushed runs use nats-server {}", server.version);
        targets.push(Target {
            mode: Mode::DistributedFlushed,
            nats_url: server.url.clone(),
            otlp_endpoint: None,
        });
    }
    eprintln!("code-node");
    let code_node = code::code_node(plan.code_cold, plan.code_warm).await?;
    eprintln!("tracing");
    let tracing = scenarios::tracing_cost(&plan).await?;
    let mut modes = Vec::new();
    for target in &targets {
        modes.push(run_mode(target, &plan).await?);
    }
    let results = Results {
        machine: report::Machine::detect(),
        quick,
        plan,
        limits,
        code_node,
        tracing,
        modes,
        skipped,
    };
    std::fs::create_dir_all(&out)?;
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&results)?,
    )?;
    let table = report::markdown(&results);
    std::fs::write(out.join("results.md"), &table)?;
    println!("{table}");
    Ok(())
}
