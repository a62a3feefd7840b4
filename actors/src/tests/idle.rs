//! Idle tenant and workflow actors stop, what the process kept for them
//! goes, and the next message for them is served by new actors.

use flowmesh_model::HumanDuration;
use ractor::rpc::CallResult;

use super::*;
use crate::RegistryRunner;
use crate::root::RootMsg;
use crate::workflow::WorkflowMsg;

fn quick() -> Value {
    json!({"name": "quick", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "done", "type": "data", "kind": "mapping", "config": {"mapping": {"ok": true}}}
    ], "edges": [{"from": "start", "to": "done"}]})
}

async fn idle_harness(idle: Duration, rescue: Duration) -> Harness {
    let mut options = options();
    options.runtime = Options {
        actor_idle_after: HumanDuration(idle),
        // What a lost message leaves behind is repaired by these loops;
        // with them this slow, a loss shows.
        claim_interval: HumanDuration(rescue),
        lease: HumanDuration(rescue),
        ..options.runtime
    };
    options.services.cache_idle_after = HumanDuration(idle);
    options.services.schedule_interval = HumanDuration(rescue);
    // So that the tenant has a rate limiter to keep.
    options.services.tenancy.limits.rate_limit = Some(1_000);
    harness_from(
        |registry, _| Arc::new(RegistryRunner(registry)),
        Arc::new(flowmesh_services::LedgerOnly),
        options,
    )
    .await
}

/// Tenant actors alive, and workflow actors under them.
fn actors(h: &Harness) -> (usize, usize) {
    let tenants = h.engine.as_ref().unwrap().root().get_children();
    let workflows = tenants.iter().map(|t| t.get_children().len()).sum();
    (tenants.len(), workflows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_actors_stop_and_what_was_kept_for_them_goes() {
    let h = idle_harness(Duration::from_millis(200), Duration::from_secs(3_600)).await;
    let workflow = h.deploy(quick()).await;
    // Every cache of the tenant gets an entry: its credential, its rate
    // limiter, then a start (settings, balance, compiled graph, slug).
    assert!(
        h.handle
            .authenticate("fmk_supervision_test")
            .await
            .unwrap()
            .is_some()
    );
    h.handle.admit(h.tenant).await.unwrap();
    let first = h.start(workflow).await;
    assert_eq!(h.finished(first).await.status, ExecutionStatus::Succeeded);
    h.until("idle actors stopped", async || {
        (actors(&h) == (0, 0)).then_some(())
    })
    .await;
    h.until("caches emptied", async || {
        let services = h.handle.cached().iter().all(|(_, entries)| *entries == 0);
        let slugs = h.engine.as_ref().unwrap().cached_slugs();
        (services && slugs == 0).then_some(())
    })
    .await;
    // The next message spawns them again.
    let second = h.start(workflow).await;
    assert_eq!(h.finished(second).await.status, ExecutionStatus::Succeeded);
    h.engine.unwrap().shutdown().await;
}

/// Starts of an execution already finished give the workflow actor no
/// work: it goes idle after each, and the next arrives while it stops.
/// Every one is answered; a lost one would end its call without an answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_racing_idle_stops_are_all_answered() {
    let h = idle_harness(Duration::ZERO, Duration::from_secs(3_600)).await;
    let workflow = h.deploy(quick()).await;
    let finished = h.start(workflow).await;
    let record = h.finished(finished).await;
    let (root, tenant) = (h.engine.as_ref().unwrap().root().clone(), h.tenant);
    let callers = (0..8).map(|_| {
        let (root, record) = (root.clone(), record.clone());
        tokio::spawn(async move {
            for n in 0..300 {
                let answer = root
                    .call(
                        |reply| RootMsg::Route {
                            tenant,
                            workflow,
                            msg: WorkflowMsg::Start {
                                record: Box::new(record.clone()),
                                reply: Some(reply),
                                place: None,
                            },
                        },
                        Some(Duration::from_secs(10)),
                    )
                    .await;
                assert!(
                    matches!(answer, Ok(CallResult::Success(Ok(())))),
                    "start {n} was not answered"
                );
            }
        })
    });
    for caller in futures::future::join_all(callers).await {
        caller.unwrap();
    }
    h.engine.unwrap().shutdown().await;
}
