//! PostgreSQL or NATS going away under load, on servers the test owns:
//! the engine keeps running, refuses with 503 and Retry-After what it
//! cannot accept durably, and finishes everything it accepted once they
//! are back, with no node effect journaled twice.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::load::{Targets, accept_all, all_finished, chain, check_effects, succeeded};
use common::servers::own_servers;
use common::stub::StubServer;
use common::{Engine, Mode, eventually};
use reqwest::StatusCode;
use tokio::sync::RwLock;

#[derive(Clone, Copy, Debug)]
enum Away {
    Postgres,
    Nats,
}

async fn server_goes_away(away: Away) {
    const RUNS: usize = 300;
    let stub = StubServer::start().await;
    let (pg, mut nats, servers) = own_servers().await;
    let engine = Engine::start_on(Mode::Distributed, servers, &[]).await;
    let workflow = engine.deploy(chain(&stub)).await;
    let targets: Targets = Arc::new(RwLock::new(vec![engine.base.clone()]));
    let load = tokio::spawn(accept_all(targets, workflow.clone(), RUNS, 8));
    eventually("a third finished", Duration::from_secs(120), || async {
        (succeeded(&engine, &workflow).await >= RUNS / 3).then_some(())
    })
    .await;
    match away {
        Away::Postgres => pg.down(),
        Away::Nats => nats.down(),
    }
    // The engine stays up and says what is missing.
    eventually(
        "readiness reports the outage",
        Duration::from_secs(30),
        || async {
            let (status, body) = engine.get("/ready").await;
            (status == StatusCode::SERVICE_UNAVAILABLE).then_some(body)
        },
    )
    .await;
    match away {
        Away::Postgres => pg.up().await,
        Away::Nats => nats.up().await,
    }
    let (ids, refused) = load.await.expect("load");
    let finished = all_finished(&engine, &ids, Duration::from_secs(180)).await;
    let effects = check_effects(&stub, &finished);
    println!(
        "{away:?} away: {RUNS} executions all succeeded; {refused} start requests refused \
         (503) or cut off and sent again; {} outbound repeats with the same key",
        effects.repeats
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_mid_load() {
    server_goes_away(Away::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_restart_mid_load() {
    server_goes_away(Away::Nats).await;
}
