//! Crashes under load: one process killed again and again, and a process
//! that dies for good while another carries on.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::load::{Targets, accept_all, all_finished, chain, check_effects, succeeded};
use common::stub::StubServer;
use common::{Engine, Mode, eventually};
use tokio::sync::RwLock;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_storm_loses_nothing_and_repeats_no_effect() {
    const RUNS: usize = 1_000;
    let stub = StubServer::start().await;
    let mut engine = Engine::start(Mode::Distributed).await;
    let workflow = engine.deploy(chain(&stub)).await;
    let targets: Targets = Arc::new(RwLock::new(vec![engine.base.clone()]));
    let load = tokio::spawn(accept_all(targets.clone(), workflow.clone(), RUNS, 16));
    // Kill -9 while executions are accepted and while they run: each time
    // once more of them have finished.
    for round in 1..=4 {
        let goal = round * RUNS / 6;
        eventually(
            "progress between kills",
            Duration::from_secs(120),
            || async { (succeeded(&engine, &workflow).await >= goal).then_some(()) },
        )
        .await;
        engine.kill_and_restart().await;
        *targets.write().await = vec![engine.base.clone()];
    }
    let (ids, refused) = load.await.expect("load");
    let finished = all_finished(&engine, &ids, Duration::from_secs(180)).await;
    let effects = check_effects(&stub, &finished);
    println!(
        "kill storm: {RUNS} executions, 4 kills, {refused} start requests refused or cut off \
         and sent again; {} node effects, {} outbound repeats with the same key",
        effects.keys, effects.repeats
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_survivor_finishes_what_a_dead_process_held() {
    const RUNS: usize = 300;
    let stub = StubServer::start().await;
    let lease = [("FLOWMESH_LEASE", "3s")];
    let mut first = Engine::start_with(Mode::Distributed, &lease).await;
    let survivor = first.peer().await;
    let workflow = first.deploy(chain(&stub)).await;
    let targets: Targets = Arc::new(RwLock::new(vec![first.base.clone(), survivor.base.clone()]));
    let (ids, _) = accept_all(targets, workflow.clone(), RUNS, 16).await;
    first.kill();
    let killed = Instant::now();
    let finished = all_finished(&survivor, &ids, Duration::from_secs(120)).await;
    let took = killed.elapsed();
    let effects = check_effects(&stub, &finished);
    println!(
        "fail-over: {RUNS} executions finished {took:?} after a kill -9 of one of two \
         processes (lease 3 s); {} outbound repeats with the same key",
        effects.repeats
    );
}
