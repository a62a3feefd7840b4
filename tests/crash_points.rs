//! The process dies at each durable boundary in turn (a crash point armed
//! for its first pass), is started again, and the outcome is exact: every
//! accepted execution succeeds, each node effect is journaled once and
//! reached the outside under one idempotency key.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::load::{Targets, accept_all, all_finished, chain, check_effects};
use common::stub::StubServer;
use common::{Engine, Mode};
use tokio::sync::RwLock;

async fn crash_at(point: &str, mode: Mode) {
    const RUNS: usize = 20;
    let stub = StubServer::start().await;
    let armed = format!("{point}=1*return");
    // Waits of 300 ms park at once, so parking has its boundary crossed too.
    // A start command is consumed only when accepted executions go
    // through the bus.
    let through_bus = if point == "engine::command::started" {
        "0"
    } else {
        "1000"
    };
    let env = [
        ("FAILPOINTS", armed.as_str()),
        ("FLOWMESH_PARK_AFTER", "100ms"),
        ("FLOWMESH_MAX_STARTED_HERE", through_bus),
    ];
    let mut engine = Engine::start_with(mode, &env).await;
    let workflow = engine.deploy(chain(&stub)).await;
    let targets: Targets = Arc::new(RwLock::new(vec![engine.base.clone()]));
    let load = tokio::spawn(accept_all(targets.clone(), workflow, RUNS, 4));
    engine.exited().await;
    engine.restart_without("FAILPOINTS").await;
    *targets.write().await = vec![engine.base.clone()];
    let (ids, _) = load.await.expect("load");
    let finished = all_finished(&engine, &ids, Duration::from_secs(60)).await;
    let effects = check_effects(&stub, &finished);
    println!(
        "crash at {point} ({mode:?}): {} outbound repeats",
        effects.repeats
    );
}

macro_rules! crash_points {
    ($($name:ident => $point:literal),+ $(,)?) => {
        $(
            mod $name {
                use super::*;

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn embedded() {
                    crash_at($point, Mode::Embedded).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn distributed() {
                    crash_at($point, Mode::Distributed).await;
                }
            }
        )+

        #[test]
        fn every_crash_point_is_tested() {
            let tested = [$($point),+];
            for (point, _) in flowmesh_store::failpoints::POINTS {
                assert!(tested.contains(point), "{point} has no test");
            }
        }
    };
}

crash_points! {
    after_accepting => "engine::accept::recorded",
    before_acknowledging_a_start => "engine::command::started",
    before_a_turn_commits => "store::turn::before_commit",
    after_a_turn_commits => "store::turn::committed",
    after_an_outside_call => "engine::attempt::returned",
    after_parking => "engine::park::parked",
}
