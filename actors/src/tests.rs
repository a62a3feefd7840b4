//! Supervision, end to end inside one process: a real SQLite store, the
//! in-process bus, and a node runner that misbehaves on purpose.

use std::sync::Arc;
use std::time::{Duration, Instant};

use flowmesh_bus::Bus;
use flowmesh_model::{ExecutionId, ExecutionStatus, Node, TenantId, WorkflowId};
use flowmesh_node_handlers::{Behaviour, NodeError, Outcome, Registry, RunRequest};
use flowmesh_store::Store;
use futures::future::BoxFuture;
use ractor::{ActorId, ActorRef};
use serde_json::{Value, json};

use crate::execution::ExecutionMsg;
use crate::{Engine, EngineParts, NodeRunner};
use flowmesh_api::StartRequest;
use flowmesh_services::EngineHandle;

use crate::Options;

/// Panics on nodes whose id starts with `boom`, dawdles on those whose id
/// starts with `slow`; runs the others normally.
struct PanickyRunner(Registry);

impl NodeRunner for PanickyRunner {
    fn run<'a>(&'a self, request: RunRequest<'a>) -> BoxFuture<'a, Result<Outcome, NodeError>> {
        Box::pin(async move {
            if request.node.id.starts_with("boom") {
                panic!("a node handler bug");
            }
            if request.node.id.starts_with("slow") {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            self.0.run(request).await
        })
    }

    fn behaviour(&self, node: &Node) -> Behaviour {
        self.0.behaviour(node)
    }
}

mod deaths;
mod idle;
mod refills;

struct Harness {
    engine: Option<Engine>,
    handle: EngineHandle,
    tenant: TenantId,
    /// The engine's store, for what tests set up or look at directly.
    store: Store,
    _dir: tempfile::TempDir,
}

async fn harness() -> Harness {
    harness_with(|registry, _| Arc::new(PanickyRunner(registry))).await
}

/// The runtime's and the services' settings of a test engine.
#[derive(Default)]
struct Settings {
    runtime: Options,
    services: flowmesh_services::Options,
}

/// These tests crash waiting executions: they keep their actors.
fn options() -> Settings {
    Settings {
        runtime: Options {
            park_after: flowmesh_model::HumanDuration::from_millis(24 * 3_600_000),
            ..Options::default()
        },
        ..Settings::default()
    }
}

/// An engine whose nodes run through the runner `runner` makes.
async fn harness_with(runner: impl FnOnce(Registry, &Store) -> Arc<dyn NodeRunner>) -> Harness {
    harness_from(runner, Arc::new(flowmesh_services::LedgerOnly), options()).await
}

/// An engine with these options and payments, whose nodes run through the
/// runner `runner` makes.
async fn harness_from(
    runner: impl FnOnce(Registry, &Store) -> Arc<dyn NodeRunner>,
    payments: Arc<dyn flowmesh_services::PaymentProvider>,
    settings: Settings,
) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store_options = flowmesh_store::Options {
        data_dir: dir.path().to_owned(),
        ..Default::default()
    };
    let store = Store::connect(&store_options).await.unwrap();
    store
        .bootstrap(Some("fmk_supervision_test"), 1_000_000)
        .await
        .unwrap();
    let tenant = store
        .authenticate("fmk_supervision_test")
        .await
        .unwrap()
        .unwrap()
        .tenant;
    let bus = Bus::connect(&flowmesh_bus::Options::default())
        .await
        .unwrap();
    let registry = Registry::new(&Default::default()).unwrap();
    let runner = runner(registry.clone(), &store);
    let engine = Engine::start(EngineParts {
        store: store.clone(),
        bus,
        registry,
        runner: Some(runner),
        sealing_key: None,
        payments,
        options: settings.runtime,
        services: settings.services,
    })
    .await
    .unwrap();
    Harness {
        handle: engine.handle(),
        engine: Some(engine),
        tenant,
        store,
        _dir: dir,
    }
}

impl Harness {
    async fn deploy(&self, doc: Value) -> WorkflowId {
        let id = self
            .handle
            .create_workflow(self.tenant, doc.to_string().as_bytes())
            .await
            .unwrap()
            .id;
        self.handle
            .publish_workflow(self.tenant, id, None)
            .await
            .unwrap();
        id
    }

    async fn start(&self, workflow: WorkflowId) -> ExecutionId {
        let request = StartRequest {
            tenant: self.tenant,
            workflow,
            input: json!({}),
            idempotency_key: None,
            wait: false,
        };
        self.handle
            .start_execution(request)
            .await
            .unwrap()
            .execution
    }

    /// Accepts an execution in the store, without a start command.
    async fn accept(&self, workflow: WorkflowId) -> ExecutionId {
        let new = flowmesh_store::NewExecution {
            id: ExecutionId::new(),
            tenant: self.tenant,
            workflow,
            version: 1,
            trigger_node: "start".into(),
            trigger: json!({}),
            idempotency_key: None,
            fingerprint: None,
            deadline_ms: None,
            origin: None,
            steps: Vec::new(),
            traceparent: None,
            test: None,
            handles: None,
            called_by: None,
        };
        self.store.create_execution(&new).await.unwrap().id
    }

    async fn until<T>(&self, what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        loop {
            tick.tick().await;
            if let Some(v) = probe().await {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
        }
    }

    async fn finished(&self, id: ExecutionId) -> flowmesh_store::ExecutionRecord {
        self.until("execution finished", async || {
            let record = self.handle.get_execution(self.tenant, id).await.ok()?;
            record.status.is_terminal().then_some(record)
        })
        .await
    }

    async fn waiting(&self, id: ExecutionId) {
        self.until("execution waiting", async || {
            let record = self.handle.get_execution(self.tenant, id).await.ok()?;
            record
                .steps
                .iter()
                .any(|s| s.node == "pause" && s.wake_at.is_some())
                .then_some(())
        })
        .await;
    }

    /// Crashes the execution's actor, unless the one running is `last`
    /// (already crashed, not yet replaced). Returns the actor crashed.
    fn crash(&self, id: ExecutionId, last: Option<ActorId>) -> Option<ActorId> {
        let cell = ractor::registry::where_is(format!("execution:{id}"))?;
        let actor = cell.get_id();
        if Some(actor) == last {
            return None;
        }
        ActorRef::<ExecutionMsg>::from(cell)
            .cast(ExecutionMsg::Crash)
            .ok()?;
        Some(actor)
    }
}

fn waiting_workflow(pause: &str) -> Value {
    json!({"name": "pause", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "pause", "type": "action", "kind": "wait", "config": {"duration": pause}},
        {"id": "done", "type": "data", "kind": "mapping", "config": {"mapping": {"ok": true}}}
    ], "edges": [{"from": "start", "to": "pause"}, {"from": "pause", "to": "done"}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_node_handler_fails_only_its_node() {
    let h = harness().await;
    let bad = h
        .deploy(json!({"name": "bad", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "boom", "type": "data", "kind": "mapping", "config": {"mapping": {}}}
        ], "edges": [{"from": "start", "to": "boom"}]}))
        .await;
    let good = h.deploy(waiting_workflow("10ms")).await;
    let (bad_run, good_run) = (h.start(bad).await, h.start(good).await);
    let failed = h.finished(bad_run).await;
    assert_eq!(failed.status, ExecutionStatus::Failed);
    let boom = failed.steps.iter().find(|s| s.node == "boom").unwrap();
    assert_eq!(boom.attempts, 1, "a crash is permanent, not retried");
    assert_eq!(
        h.finished(good_run).await.status,
        ExecutionStatus::Succeeded
    );
    h.engine.unwrap().shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_execution_actor_restarts_from_the_journal_and_spares_siblings() {
    let h = harness().await;
    let workflow = h.deploy(waiting_workflow("1s")).await;
    let (victim, sibling) = (h.start(workflow).await, h.start(workflow).await);
    h.waiting(victim).await;
    h.waiting(sibling).await;
    assert!(h.crash(victim, None).is_some());
    let victim = h.finished(victim).await;
    assert_eq!(victim.status, ExecutionStatus::Succeeded, "{victim:?}");
    let pause = victim.steps.iter().find(|s| s.node == "pause").unwrap();
    assert_eq!(
        pause.attempts, 1,
        "the wait resumed from the journal, not from scratch"
    );
    assert_eq!(h.finished(sibling).await.status, ExecutionStatus::Succeeded);
    h.engine.unwrap().shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execution_that_keeps_crashing_is_failed_by_policy() {
    let h = harness().await;
    let workflow = h.deploy(waiting_workflow("1h")).await;
    let (victim, sibling) = (h.start(workflow).await, h.start(workflow).await);
    h.waiting(victim).await;
    h.waiting(sibling).await;
    let policy = crate::supervision::policy("execution");
    let mut last = None;
    for _ in 0..=policy.max_restarts {
        last = Some(
            h.until("actor running again", async || h.crash(victim, last))
                .await,
        );
    }
    let record = h.finished(victim).await;
    assert_eq!(record.status, ExecutionStatus::Failed);
    let sibling = h.handle.get_execution(h.tenant, sibling).await.unwrap();
    assert_eq!(
        sibling.status,
        ExecutionStatus::Running,
        "siblings are untouched"
    );
    h.engine.unwrap().shutdown().await;
}

/// A run failed by the crash policy starts its failure handler, as any
/// failure does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_given_up_after_crashes_starts_its_failure_handler() {
    let h = harness().await;
    let handler = h
        .deploy(json!({"name": "handler", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "note", "type": "data", "kind": "mapping", "config": {"mapping": {"ok": true}}}
        ], "edges": [{"from": "start", "to": "note"}]}))
        .await;
    let mut document = waiting_workflow("1h");
    document["settings"] = json!({"on_error_workflow": handler});
    let workflow = h.deploy(document).await;
    let victim = h.start(workflow).await;
    h.waiting(victim).await;
    let policy = crate::supervision::policy("execution");
    let mut last = None;
    for _ in 0..=policy.max_restarts {
        last = Some(
            h.until("actor running again", async || h.crash(victim, last))
                .await,
        );
    }
    assert_eq!(h.finished(victim).await.status, ExecutionStatus::Failed);
    let query = flowmesh_store::ExecutionQuery {
        workflow: Some(handler),
        ..Default::default()
    };
    let run = h
        .until("the handler started", async || {
            let page = h.handle.list_executions(h.tenant, &query).await.ok()?;
            page.items.first().map(|e| e.id)
        })
        .await;
    let record = h.finished(run).await;
    assert_eq!(record.status, ExecutionStatus::Succeeded);
    assert_eq!(record.handles, Some(victim));
    h.engine.unwrap().shutdown().await;
}

/// What a run shows that does not depend on timing: steps by node id, since
/// their stored order is by start time in milliseconds, and nodes started
/// in one turn may or may not share one.
fn shape(record: &flowmesh_store::ExecutionRecord) -> Value {
    let mut steps: Vec<&flowmesh_store::StepRecord> = record.steps.iter().collect();
    steps.sort_by(|a, b| a.node.cmp(&b.node));
    let steps: Vec<Value> = steps
        .iter()
        .map(|s| json!([s.node, s.status.as_str(), s.attempts, s.branch, s.error]))
        .collect();
    json!({"status": record.status.as_str(), "output": record.output, "steps": steps})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_and_late_start_commands_change_nothing() {
    let h = harness().await;
    let workflow = h.deploy(waiting_workflow("300ms")).await;
    let reference = h.start(workflow).await;
    let reference = h.finished(reference).await;

    let id = h.start(workflow).await;
    let engine = h.engine.as_ref().unwrap();
    let command = flowmesh_model::Command::start(h.tenant, workflow, id);
    // Delivered again and again while it runs, some at the same moment.
    let again = (0..8).map(|_| engine.deliver(&command));
    for result in futures::future::join_all(again).await {
        result.unwrap();
    }
    let done = h.finished(id).await;
    // And late, after it ended.
    for _ in 0..3 {
        engine.deliver(&command).await.unwrap();
    }
    let after = h.handle.get_execution(h.tenant, id).await.unwrap();
    assert_eq!(
        shape(&done),
        shape(&reference),
        "same outcome as a clean run"
    );
    assert_eq!(shape(&after), shape(&done));
    assert_eq!(
        after.finished_at, done.finished_at,
        "late commands changed nothing"
    );
    h.engine.unwrap().shutdown().await;
}

/// A start command is acknowledged once the execution's first turn is
/// committed (here slowed by an in-process node it runs), not once its
/// actor merely exists: until then the execution is only claimed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_is_acknowledged_once_its_first_turn_is_committed() {
    let h = harness().await;
    let workflow = h
        .deploy(json!({"name": "slow start", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "slow", "type": "data", "kind": "mapping", "config": {"mapping": {"ok": true}}},
            {"id": "pause", "type": "action", "kind": "wait", "config": {"duration": "1h"}}
        ], "edges": [{"from": "start", "to": "slow"}, {"from": "slow", "to": "pause"}]}))
        .await;
    let id = h.accept(workflow).await;
    let command = flowmesh_model::Command::start(h.tenant, workflow, id);
    h.engine.as_ref().unwrap().deliver(&command).await.unwrap();
    let record = h.store.load_execution(id).await.unwrap().unwrap();
    assert_eq!(record.status, ExecutionStatus::Running);
    let slow = record.steps.iter().find(|s| s.node == "slow");
    assert!(
        slow.is_some_and(|s| s.finished_at.is_some()),
        "the first turn is in: {:?}",
        record.steps
    );
    h.engine.unwrap().shutdown().await;
}
