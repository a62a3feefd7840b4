//! `flowmesh`: the engine binary. With no arguments it serves on
//! 127.0.0.1:8080 with an in-process bus and SQLite under ./flowmesh-data;
//! given a NATS URL and a Postgres URL it runs distributed.

mod cli;
mod data_dir;
mod secrets_key;
mod telemetry;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Commands, SecretsCommand};

#[tokio::main]
async fn main() -> ExitCode {
    data_dir::private_umask();
    let cli = Cli::parse();
    let _telemetry = telemetry::init(cli.log_format);
    // Test builds only: elsewhere this does nothing.
    flowmesh_store::failpoints::arm();
    flowmesh_actors::metrics::install();
    let result = match &cli.command {
        None | Some(Commands::Serve) => cli::serve(&cli).await,
        Some(Commands::Migrate) => cli::migrate(&cli).await,
        Some(Commands::Validate { file }) => cli::validate(&cli, file),
        Some(Commands::Secrets {
            command: SecretsCommand::Rotate { new_secrets_key },
        }) => secrets_key::rotate(&cli, new_secrets_key.as_deref()).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("flowmesh: {e:#}");
            ExitCode::FAILURE
        }
    }
}
