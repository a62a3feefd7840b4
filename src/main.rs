//! `flowmesh`: the engine binary. With no arguments it serves on
//! 127.0.0.1:8080 with an in-process bus and SQLite under ./flowmesh-data;
//! given a NATS URL and a Postgres URL it runs distributed.

mod args;
mod cli;
mod data_dir;
mod roles;
mod secrets_key;
mod telemetry;
mod tenancy_args;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Commands, SecretsCommand};

/// jemalloc, whose background thread gives memory back to the system once
/// freed, even while the engine idles: with glibc's malloc, what a burst of
/// tenants had used stayed resident for the life of the process.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    // Whatever started the engine may have left descriptors open: none of
    // them may reach a child (sandboxed code above all). Still one thread.
    close_fds::set_fds_cloexec(3, &[]);
    data_dir::private_umask();
    let cli = Cli::parse();
    // A sandbox worker has no runtime, no logging and nothing but stdio.
    let result = match &cli.command {
        Some(Commands::SandboxWorker { language }) => cli::sandbox_worker(*language),
        _ => tokio::runtime::Runtime::new()
            .map_err(anyhow::Error::from)
            .and_then(|runtime| runtime.block_on(engine(&cli))),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("flowmesh: {}", report(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each said once: errors name their cause in
/// their own message too, so a cause already said is not repeated.
fn report(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let message = cause.to_string();
        if text.contains(&message) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&message);
    }
    text
}

async fn engine(cli: &Cli) -> anyhow::Result<ExitCode> {
    let _telemetry = telemetry::init(cli.log_format());
    // Only the engine: a sandbox worker lives no longer than its sandbox.
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::warn!(error = %e, "freed memory is given back to the system only while allocating");
    }
    // Test builds only: elsewhere this does nothing.
    flowmesh_store::failpoints::arm();
    flowmesh_services::metrics::install();
    match &cli.command {
        Some(Commands::Migrate { store, .. }) => cli::migrate(store).await,
        Some(Commands::Validate { file, maxima }) => cli::validate(file, maxima),
        Some(Commands::Secrets {
            command:
                SecretsCommand::Rotate {
                    secrets,
                    new_secrets_key,
                    ..
                },
        }) => secrets_key::rotate(secrets, new_secrets_key.as_deref()).await,
        Some(Commands::Serve(serve)) => cli::serve(serve).await,
        None | Some(Commands::SandboxWorker { .. }) => cli::serve(&cli.serve).await,
    }
}
