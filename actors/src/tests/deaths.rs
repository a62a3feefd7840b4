//! The poison pill inside one process: in-process nodes run under a
//! durable mark, and the marks a dead process run left (set up directly in
//! the store, with the times of earlier deaths injected) are counted.

use std::sync::Mutex;

use flowmesh_model::{Command, NodeStatus};
use flowmesh_store::{DeathVerdict, EngineDeath, InProcess, now_ms};

use super::*;
use crate::execution::DEATH_WINDOW;

/// Each node that ran, with the in-process mark the store held meanwhile.
type Seen = Arc<Mutex<Vec<(String, Option<InProcess>)>>>;

/// Notes the execution's in-process mark, as the store holds it, each time
/// a node whose id starts with `look` runs.
struct MarkWatcher {
    registry: Registry,
    store: Store,
    seen: Seen,
}

impl NodeRunner for MarkWatcher {
    fn run<'a>(&'a self, request: RunRequest<'a>) -> BoxFuture<'a, Result<Outcome, NodeError>> {
        Box::pin(async move {
            if request.node.id.starts_with("look") {
                let (execution, _) = request.idempotency_key.split_once(':').unwrap();
                let record = self
                    .store
                    .load_execution(execution.parse().unwrap())
                    .await
                    .unwrap()
                    .unwrap();
                let seen = (request.node.id.clone(), record.in_process);
                self.seen.lock().unwrap().push(seen);
            }
            self.registry.run(request).await
        })
    }

    fn behaviour(&self, node: &Node) -> Behaviour {
        self.registry.behaviour(node)
    }
}

fn mapping(id: &str) -> Value {
    json!({"id": id, "type": "data", "kind": "mapping", "config": {"mapping": {"node": id}}})
}

fn pause() -> Value {
    json!({"id": "pause", "type": "action", "kind": "wait", "config": {"duration": "10ms"}})
}

fn trigger() -> Value {
    json!({"id": "start", "type": "trigger", "kind": "manual"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_nodes_run_under_a_durable_mark() {
    let seen: Seen = Arc::default();
    let watched = seen.clone();
    let h = harness_with(move |registry, store| {
        Arc::new(MarkWatcher {
            registry,
            store: store.clone(),
            seen: watched,
        })
    })
    .await;
    // One in-process node in the start turn, one in a turn after a wait.
    let workflow = h
        .deploy(json!({"name": "marks", "nodes": [trigger(), mapping("look_first"), pause(), mapping("look_then")],
            "edges": [{"from": "start", "to": "look_first"}, {"from": "look_first", "to": "pause"},
                      {"from": "pause", "to": "look_then"}]}))
        .await;
    let id = h.start(workflow).await;
    assert_eq!(h.finished(id).await.status, ExecutionStatus::Succeeded);
    let seen = seen.lock().unwrap().clone();
    let by = seen[0]
        .1
        .as_ref()
        .expect("a mark while look_first ran")
        .by
        .clone();
    let mark = |node: Option<&str>| {
        Some(InProcess {
            by: by.clone(),
            node: node.map(str::to_owned),
        })
    };
    assert_eq!(
        seen,
        vec![
            // The claim's mark covers the start turn: no write of its own.
            ("look_first".to_owned(), mark(None)),
            // A later turn commits its own mark first.
            ("look_then".to_owned(), mark(Some("look_then"))),
        ]
    );
    let record = h.store.load_execution(id).await.unwrap().unwrap();
    assert_eq!(record.in_process, None, "the end clears the mark");
    assert_eq!(record.engine_death_at, None, "nobody died");
    h.engine.unwrap().shutdown().await;
}

/// An execution of `workflow` whose start turn the process run `dead-run`
/// was running when it died, after an earlier death at `earlier` if any;
/// then a start command brings it to the harness's engine.
async fn left_by_a_dead_run(
    h: &Harness,
    workflow: WorkflowId,
    earlier: Option<i64>,
) -> ExecutionId {
    let id = h.accept(workflow).await;
    // The dead process's lease is over.
    let dead = "dead-node";
    h.store
        .heartbeat(dead, Duration::from_secs(60))
        .await
        .unwrap();
    h.store.release_leases(dead).await.unwrap();
    if let Some(at) = earlier {
        let claimed = h.store.claim_execution(id, dead, "earlier-run").await;
        assert!(claimed.unwrap().is_some());
        let death = EngineDeath {
            owner: dead,
            execution: id,
            at,
            window: DEATH_WINDOW,
        };
        let verdict = h.store.record_engine_death(&death).await.unwrap();
        assert_eq!(verdict, DeathVerdict::First);
    }
    let claimed = h.store.claim_execution(id, dead, "dead-run").await;
    assert!(claimed.unwrap().is_some());
    let command = Command::start(h.tenant, workflow, id);
    h.engine.as_ref().unwrap().deliver(&command).await.unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_death_within_ten_minutes_fails_and_an_older_one_does_not() {
    let h = harness().await;
    let inline = h
        .deploy(
            json!({"name": "inline", "nodes": [trigger(), mapping("look")],
            "edges": [{"from": "start", "to": "look"}]}),
        )
        .await;
    let minute = 60_000;

    // A death one minute before this one: failed, with the reason, unrun.
    let again = left_by_a_dead_run(&h, inline, Some(now_ms() - minute)).await;
    let failed = h.finished(again).await;
    assert_eq!(failed.status, ExecutionStatus::Failed);
    let reason = "the engine stopped twice within 10 minutes while node `look` was running; \
                  the execution was failed instead of resumed again";
    assert_eq!(failed.error.as_deref(), Some(reason));
    let look = failed.steps.iter().find(|s| s.node == "look").unwrap();
    assert_eq!(
        (
            look.status,
            look.attempts,
            look.error.as_deref(),
            &look.output
        ),
        (NodeStatus::Failed, 1, Some(reason), &None)
    );

    // A death eleven minutes before: too old to count; this one is the first.
    let before = now_ms();
    let old = left_by_a_dead_run(&h, inline, Some(before - 11 * minute)).await;
    let resumed = h.finished(old).await;
    assert_eq!(resumed.status, ExecutionStatus::Succeeded, "{resumed:?}");
    assert!(resumed.engine_death_at.is_some_and(|at| at >= before));
    assert_eq!(resumed.in_process, None);

    // A start turn that runs no in-process node (a wait comes first) was
    // not what died, however recent the earlier death.
    let waits = h
        .deploy(
            json!({"name": "waits", "nodes": [trigger(), pause(), mapping("look")],
            "edges": [{"from": "start", "to": "pause"}, {"from": "pause", "to": "look"}]}),
        )
        .await;
    let earlier = now_ms() - minute;
    let spared = left_by_a_dead_run(&h, waits, Some(earlier)).await;
    let spared = h.finished(spared).await;
    assert_eq!(spared.status, ExecutionStatus::Succeeded, "{spared:?}");
    assert_eq!(spared.engine_death_at, Some(earlier), "no death counted");
    h.engine.unwrap().shutdown().await;
}
