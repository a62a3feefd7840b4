//! Every test runs against both backends: SQLite in a temporary directory
//! and PostgreSQL in a database of its own, dropped at the end.

use crate::{Committed, Mark, Slots};
use std::time::Duration;

use flowmesh_model::{
    ExecutionId, ExecutionStatus, NodeStatus, TenantId, WorkflowDocument, WorkflowId,
};
use serde_json::json;
use sqlx::Connection;

use crate::{
    ClaimRequest, Error, ExecutionChange, ExecutionQuery, NewExecution, Options, Publish, Route,
    StepRecord, Store, Turn, Update, Updated,
};

const POSTGRES_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A store and what must be cleaned up after it.
struct Scratch {
    store: Store,
    database: Option<String>,
    _dir: tempfile::TempDir,
}

impl Scratch {
    async fn sqlite() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&Options {
            data_dir: dir.path().to_owned(),
            ..Default::default()
        })
        .await
        .unwrap();
        Scratch {
            store,
            database: None,
            _dir: dir,
        }
    }

    async fn postgres() -> Scratch {
        let name = format!("flowmesh_t_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(POSTGRES_ADMIN)
            .await
            .expect("PostgreSQL on 127.0.0.1:5432");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
        let store = Store::connect(&Options {
            database_url: Some(url),
            ..Default::default()
        })
        .await
        .unwrap();
        Scratch {
            store,
            database: Some(name),
            _dir: tempfile::tempdir().unwrap(),
        }
    }

    async fn drop_database(self) {
        self.store.close().await;
        if let Some(name) = self.database {
            let mut admin = sqlx::PgConnection::connect(POSTGRES_ADMIN).await.unwrap();
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut admin)
                .await
                .unwrap();
        }
    }
}

/// Runs one test body on both backends.
macro_rules! both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let s = super::Scratch::sqlite().await;
                super::$name(&s.store).await;
                s.drop_database().await;
            }

            #[tokio::test]
            async fn postgres() {
                let s = super::Scratch::postgres().await;
                super::$name(&s.store).await;
                s.drop_database().await;
            }
        }
    };
}

fn doc(name: &str, path: &str) -> WorkflowDocument {
    WorkflowDocument::from_value(json!({"name": name, "nodes": [
        {"id": "hook", "type": "trigger", "kind": "webhook", "config": {"path": path}}
    ]}))
    .unwrap()
}

fn new_execution(tenant: TenantId, workflow: WorkflowId, key: Option<&str>) -> NewExecution {
    NewExecution {
        id: ExecutionId::new(),
        tenant,
        workflow,
        version: 1,
        trigger_node: "hook".into(),
        trigger: json!({"body": {"n": 1}}),
        idempotency_key: key.map(str::to_owned),
        fingerprint: None,
        deadline_ms: None,
        origin: None,
        steps: Vec::new(),
        traceparent: None,
        test: None,
        handles: None,
        called_by: None,
    }
}

async fn bootstrap_and_keys(store: &Store) {
    let key = store
        .bootstrap(None, 0)
        .await
        .unwrap()
        .expect("a generated key the first time");
    assert!(
        store.bootstrap(None, 0).await.unwrap().is_none(),
        "only once"
    );
    let who = store.authenticate(&key).await.unwrap().unwrap();
    assert_eq!(who.tenant_slug, "default");
    assert!(store.authenticate("fmk_unknown").await.unwrap().is_none());
    // A chosen admin key is added to an existing store.
    store.bootstrap(Some("fmk_chosen"), 0).await.unwrap();
    assert_eq!(
        store
            .authenticate("fmk_chosen")
            .await
            .unwrap()
            .unwrap()
            .tenant,
        who.tenant
    );
    let (other, other_key) = store.create_tenant("Acme").await.unwrap();
    assert_eq!(
        store
            .authenticate(&other_key)
            .await
            .unwrap()
            .unwrap()
            .tenant,
        other
    );
    // A name taken gets a numbered slug.
    let (again, _) = store.create_tenant("Acme").await.unwrap();
    assert_eq!(store.tenant_by_slug("acme").await.unwrap(), Some(other));
    assert_eq!(store.tenant_by_slug("acme-2").await.unwrap(), Some(again));
}
both_backends!(bootstrap_and_keys);

async fn workflows_versions_and_routes(store: &Store) {
    let (tenant, _) = store.create_tenant("T1").await.unwrap();
    let (stranger, _) = store.create_tenant("T2").await.unwrap();
    let w = store
        .create_workflow(tenant, &doc("one", "orders"))
        .await
        .unwrap();
    assert_eq!((w.latest_version, w.published_version), (1, None));
    let v2 = match store
        .update_workflow(&update(tenant, w.id, &doc("one", "orders/v2")))
        .await
        .unwrap()
    {
        Updated::Saved(v2) => v2,
        other => panic!("not saved: {other:?}"),
    };
    assert_eq!(v2.latest_version, 2);
    assert!(
        store.get_workflow(stranger, w.id).await.unwrap().is_none(),
        "tenants never see each other"
    );
    assert!(matches!(
        store
            .update_workflow(&update(stranger, w.id, &doc("x", "x")))
            .await
            .unwrap(),
        Updated::NotFound
    ));
    assert!(!store.delete_workflow(stranger, w.id).await.unwrap());

    let routes = vec![("POST".to_owned(), "orders/v2".to_owned())];
    let published = store
        .publish_workflow(&Publish {
            version: 2,
            ..publish(tenant, w.id, &routes)
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(published.published_version, Some(2));
    assert_eq!(
        store.find_route("t1", "POST", "orders/v2").await.unwrap(),
        Some(Route {
            tenant,
            workflow: Some((w.id, 2))
        })
    );
    assert_eq!(
        store.find_route("t2", "POST", "orders/v2").await.unwrap(),
        Some(Route {
            tenant: stranger,
            workflow: None
        }),
        "another tenant's slug never finds this route"
    );
    assert_eq!(
        store.find_route("t3", "POST", "orders/v2").await.unwrap(),
        None
    );
    assert!(!store.delete_workflow(stranger, w.id).await.unwrap());
    let still = store.find_route("t1", "POST", "orders/v2").await.unwrap();
    assert!(
        still.is_some_and(|r| r.workflow.is_some()),
        "another tenant cannot free the route"
    );
    assert_eq!(
        store
            .workflow_version(w.id, 1)
            .await
            .unwrap()
            .unwrap()
            .nodes[0]
            .config["path"],
        "orders"
    );

    let rival = store
        .create_workflow(tenant, &doc("two", "orders/v2"))
        .await
        .unwrap();
    assert!(matches!(
        store
            .publish_workflow(&publish(tenant, rival.id, &routes))
            .await,
        Err(Error::Conflict(_))
    ));
    assert!(store.delete_workflow(tenant, w.id).await.unwrap());
    assert_eq!(
        store
            .find_route("t1", "POST", "orders/v2")
            .await
            .unwrap()
            .and_then(|r| r.workflow),
        None,
        "a deleted workflow routes nothing"
    );
    assert!(
        store
            .publish_workflow(&publish(tenant, rival.id, &routes))
            .await
            .unwrap()
            .is_some(),
        "the route is free again"
    );
    let listed: Vec<WorkflowId> = store
        .list_workflows(tenant)
        .await
        .unwrap()
        .iter()
        .map(|w| w.id)
        .collect();
    assert_eq!(listed, vec![rival.id]);
}
both_backends!(workflows_versions_and_routes);

async fn executions_and_journal(store: &Store) {
    let (tenant, _) = store.create_tenant("T1").await.unwrap();
    let (stranger, _) = store.create_tenant("T2").await.unwrap();
    let w = store
        .create_workflow(tenant, &doc("one", "a"))
        .await
        .unwrap();
    let first = store
        .create_execution(&new_execution(tenant, w.id, Some("k1")))
        .await
        .unwrap();
    assert!(first.created);
    let again = store
        .create_execution(&new_execution(tenant, w.id, Some("k1")))
        .await
        .unwrap();
    assert_eq!((again.id, again.created), (first.id, false));
    let other_tenant = store
        .create_execution(&new_execution(stranger, w.id, Some("k1")))
        .await
        .unwrap();
    assert!(other_tenant.created, "idempotency keys are per tenant");
    let w2 = store
        .create_workflow(tenant, &doc("two", "b"))
        .await
        .unwrap();
    let other_workflow = store
        .create_execution(&new_execution(tenant, w2.id, Some("k1")))
        .await
        .unwrap();
    assert!(other_workflow.created, "idempotency keys are per workflow");
    let mut different = new_execution(tenant, w.id, Some("k1"));
    different.fingerprint = Some("another request".into());
    assert!(matches!(
        store.create_execution(&different).await,
        Err(Error::KeyReused(key)) if key == "k1"
    ));

    let change = |from, to| ExecutionChange {
        id: first.id,
        from,
        to,
        output: None,
        error: None,
    };
    own(store, first.id).await;
    assert!(
        store
            .transition_execution(
                OWNER,
                &change(ExecutionStatus::Queued, ExecutionStatus::Running)
            )
            .await
            .unwrap()
    );
    assert!(
        !store
            .transition_execution(
                OWNER,
                &change(ExecutionStatus::Queued, ExecutionStatus::Running)
            )
            .await
            .unwrap()
    );
    let step = |node: &str, started: i64| StepRecord {
        execution: first.id,
        node: node.into(),
        status: NodeStatus::Running,
        attempts: 1,
        input: None,
        output: None,
        branch: None,
        error: None,
        started_at: Some(started),
        finished_at: None,
        wake_at: None,
        logs: Vec::new(),
    };
    save_step(store, tenant, &step("b", 20)).await;
    save_step(store, tenant, &step("a", 10)).await;
    let mut done = step("b", 20);
    done.status = NodeStatus::Succeeded;
    done.output = Some(json!({"ok": true}));
    save_step(store, tenant, &done).await;
    let record = store
        .get_execution(tenant, first.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, ExecutionStatus::Running);
    assert_eq!(
        record
            .steps
            .iter()
            .map(|s| s.node.as_str())
            .collect::<Vec<_>>(),
        vec!["a", "b"]
    );
    assert_eq!(record.steps[1], done);
    assert!(
        store
            .get_execution(stranger, first.id)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store.request_cancel(tenant, first.id).await.unwrap(),
        Some(ExecutionStatus::Running)
    );
    assert!(
        store
            .request_cancel(stranger, first.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .load_execution(first.id)
            .await
            .unwrap()
            .unwrap()
            .cancel_requested
    );

    let mut finish = change(ExecutionStatus::Running, ExecutionStatus::Succeeded);
    finish.output = Some(json!({"result": 1}));
    assert!(store.transition_execution(OWNER, &finish).await.unwrap());
    let record = store
        .get_execution(tenant, first.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.output, Some(json!({"result": 1})));
    assert!(record.finished_at.is_some());
}
both_backends!(executions_and_journal);

fn update(tenant: TenantId, workflow: WorkflowId, document: &WorkflowDocument) -> Update<'_> {
    Update {
        tenant,
        workflow,
        document,
        expected: None,
    }
}

/// Publishing the first version.
fn publish(tenant: TenantId, workflow: WorkflowId, routes: &[(String, String)]) -> Publish<'_> {
    Publish {
        tenant,
        workflow,
        version: 1,
        routes,
        schedules: &[],
    }
}

/// From queued to running.
fn start_change(id: ExecutionId) -> ExecutionChange {
    ExecutionChange {
        id,
        from: ExecutionStatus::Queued,
        to: ExecutionStatus::Running,
        output: None,
        error: None,
    }
}

/// The process that owns the executions of these tests.
const OWNER: &str = "test-owner";

/// Makes OWNER the owner of an execution, as a claim does.
async fn own(store: &Store, id: ExecutionId) {
    store
        .heartbeat(OWNER, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(
        store
            .claim_execution(id, OWNER, "test-run")
            .await
            .unwrap()
            .is_some()
    );
}

/// Writes one step of the journal, as a turn of its own.
async fn save_step(store: &Store, tenant: TenantId, step: &StepRecord) {
    let turn = Turn {
        owner: OWNER,
        tenant,
        execution: step.execution,
        transition: None,
        steps: std::slice::from_ref(step),
        consumed_signals: &[],
        usage: None,
        slots: Slots::Unlimited,
        in_process: Mark::Keep,
        events: &[],
        handler: None,
        children: &[],
        to_parent: None,
        take_slot: false,
    };
    assert_eq!(
        store.commit_turn(&turn).await.unwrap(),
        Committed::Written {
            woke: None,
            first_position: None,
            parent_told: false,
        }
    );
}

/// A tenant with one queued execution, owned by OWNER.
async fn one_execution(store: &Store) -> (TenantId, ExecutionId) {
    let (tenant, _) = store.create_tenant("T1").await.unwrap();
    let w = store
        .create_workflow(tenant, &doc("one", "a"))
        .await
        .unwrap();
    let id = store
        .create_execution(&new_execution(tenant, w.id, None))
        .await
        .unwrap()
        .id;
    own(store, id).await;
    (tenant, id)
}

async fn turns_are_all_or_nothing(store: &Store) {
    let (tenant, id) = one_execution(store).await;
    // More steps than one statement carries.
    let steps: Vec<StepRecord> = (0..150)
        .map(|n| StepRecord {
            execution: id,
            node: format!("n{n:03}"),
            status: NodeStatus::Succeeded,
            attempts: 1,
            input: None,
            output: Some(json!({"n": n})),
            branch: None,
            error: None,
            started_at: Some(n),
            finished_at: Some(n),
            wake_at: None,
            // Logs survive the round trip.
            logs: if n == 0 {
                vec!["printed".into()]
            } else {
                Vec::new()
            },
        })
        .collect();
    let start = start_change(id);
    let turn = Turn {
        owner: OWNER,
        tenant,
        execution: id,
        transition: Some(&start),
        steps: &steps,
        consumed_signals: &[],
        usage: None,
        slots: Slots::Unlimited,
        in_process: Mark::Keep,
        events: &[],
        handler: None,
        children: &[],
        to_parent: None,
        take_slot: false,
    };
    assert_eq!(
        store.commit_turn(&turn).await.unwrap(),
        Committed::Written {
            woke: None,
            first_position: None,
            parent_told: false,
        }
    );
    let record = store.get_execution(tenant, id).await.unwrap().unwrap();
    assert_eq!(record.status, ExecutionStatus::Running);
    assert_eq!(record.steps, steps);

    let mut changed = steps[..2].to_vec();
    changed[0].status = NodeStatus::Failed;
    let stale = Turn {
        owner: OWNER,
        tenant,
        execution: id,
        transition: Some(&start),
        steps: &changed,
        consumed_signals: &[],
        usage: None,
        slots: Slots::Unlimited,
        in_process: Mark::Keep,
        events: &[],
        handler: None,
        children: &[],
        to_parent: None,
        take_slot: false,
    };
    assert!(
        store.commit_turn(&stale).await.unwrap() == Committed::Fenced,
        "the status is no longer queued"
    );
    let record = store.get_execution(tenant, id).await.unwrap().unwrap();
    assert_eq!(record.steps, steps, "a lost turn writes no step");
}
both_backends!(turns_are_all_or_nothing);

async fn paging_and_filters(store: &Store) {
    let (tenant, _) = store.create_tenant("T1").await.unwrap();
    let w = store
        .create_workflow(tenant, &doc("one", "a"))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(
            store
                .create_execution(&new_execution(tenant, w.id, None))
                .await
                .unwrap()
                .id,
        );
    }
    let query = |cursor| ExecutionQuery {
        workflow: Some(w.id),
        status: None,
        test: None,
        limit: 2,
        cursor,
        ..Default::default()
    };
    let first = store.list_executions(tenant, &query(None)).await.unwrap();
    assert_eq!(
        first.items.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![ids[4], ids[3]]
    );
    let second = store
        .list_executions(tenant, &query(first.next_cursor))
        .await
        .unwrap();
    assert_eq!(
        second.items.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![ids[2], ids[1]]
    );
    let third = store
        .list_executions(tenant, &query(second.next_cursor))
        .await
        .unwrap();
    assert_eq!((third.items.len(), third.next_cursor), (1, None));
    let running = ExecutionQuery {
        status: Some(ExecutionStatus::Running),
        ..Default::default()
    };
    assert!(
        store
            .list_executions(tenant, &running)
            .await
            .unwrap()
            .items
            .is_empty()
    );
}
both_backends!(paging_and_filters);

async fn leases(store: &Store) {
    let (_, id) = one_execution(store).await;
    // Its first owner goes away at once.
    store.release_leases(OWNER).await.unwrap();
    let start = start_change(id);
    let long = Duration::from_secs(60);
    for owner in ["a", "b", "c"] {
        store.heartbeat(owner, long).await.unwrap();
    }
    let claimed = |owner: &'static str| async move {
        store
            .claim_execution(id, owner, "test-run")
            .await
            .unwrap()
            .is_some()
    };
    assert!(claimed("a").await);
    assert!(store.transition_execution("a", &start).await.unwrap());
    assert!(claimed("a").await, "claiming again is fine");
    assert!(!claimed("b").await, "a live owner keeps its executions");
    let sweep = |owner| ClaimRequest {
        owner,
        incarnation: "test-run",
        limit: 10,
        lookahead: Duration::ZERO,
    };
    assert!(
        store
            .claim_executions(&sweep("b"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.owned_executions("a").await.unwrap(), vec![id]);
    // Without renewal the owner's lease runs out and another takes over.
    store
        .heartbeat("a", Duration::from_millis(1))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    loop {
        tick.tick().await;
        if store
            .claim_executions(&sweep("b"))
            .await
            .unwrap()
            .contains(&id)
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the expired lease was never taken over"
        );
    }
    store.heartbeat("a", long).await.unwrap();
    assert!(!claimed("a").await, "a came back too late: b owns it now");
    assert!(store.owned_executions("a").await.unwrap().is_empty());
    store.release_leases("b").await.unwrap();
    assert!(claimed("c").await, "released leases are free at once");
    let change = ExecutionChange {
        id,
        from: ExecutionStatus::Running,
        to: ExecutionStatus::Cancelled,
        output: None,
        error: None,
    };
    assert!(
        !store.transition_execution("b", &change).await.unwrap(),
        "b lost it: fenced off"
    );
    assert!(store.transition_execution("c", &change).await.unwrap());
    assert!(
        store.owned_executions("c").await.unwrap().is_empty(),
        "an execution that ends leaves its owner"
    );
    store.release_leases("c").await.unwrap();
    assert!(!claimed("a").await, "finished executions are never claimed");
}
both_backends!(leases);

#[tokio::test]
async fn concurrent_claims_never_share_an_execution() {
    let scratch = Scratch::postgres().await;
    let store = &scratch.store;
    let (tenant, _) = store.create_tenant("T1").await.unwrap();
    let w = store
        .create_workflow(tenant, &doc("one", "a"))
        .await
        .unwrap();
    store
        .heartbeat("gone", Duration::from_secs(60))
        .await
        .unwrap();
    for _ in 0..200 {
        let mut new = new_execution(tenant, w.id, None);
        new.id = ExecutionId::new();
        let id = store.create_execution(&new).await.unwrap().id;
        let change = start_change(id);
        // Left behind by a process whose lease has run out.
        assert!(
            store
                .claim_execution(id, "gone", "test-run")
                .await
                .unwrap()
                .is_some()
        );
        assert!(store.transition_execution("gone", &change).await.unwrap());
    }
    store.release_leases("gone").await.unwrap();
    let claim = |owner: &'static str| {
        let store = store.clone();
        async move {
            let mut all = Vec::new();
            for _ in 0..10 {
                let request = ClaimRequest {
                    owner,
                    incarnation: "test-run",
                    limit: 15,
                    lookahead: Duration::ZERO,
                };
                all.extend(store.claim_executions(&request).await.unwrap());
            }
            all
        }
    };
    let (a, b) = tokio::join!(claim("a"), claim("b"));
    let mut all: Vec<ExecutionId> = a.iter().chain(b.iter()).copied().collect();
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), total, "an execution was claimed twice");
    assert_eq!(total, 200);
    scratch.drop_database().await;
}

#[tokio::test]
async fn migrations_run_twice_are_a_no_op() {
    let scratch = Scratch::sqlite().await;
    scratch.store.migrate().await.unwrap();
    scratch.store.migrate().await.unwrap();
    scratch.drop_database().await;
}

#[tokio::test]
async fn a_database_url_of_another_kind_is_refused() {
    let options = Options {
        database_url: Some("mysql://localhost/x".into()),
        ..Default::default()
    };
    assert!(matches!(
        Store::connect(&options).await,
        Err(Error::Invalid(_))
    ));
}

mod deaths;
mod events;
mod lifecycle;
mod parking;
mod retention;
mod schedules;
mod slots;
mod tenancy;
