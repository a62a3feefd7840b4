//! Parked executions, resumes, and the fencing of former owners.

use super::*;
use crate::{ClaimRequest, NewSignal, Park, Parked, Signal, SignalAdded, now_ms};
use crate::{Committed, Slots};

/// OWNER's execution, running.
async fn running(store: &Store) -> (TenantId, ExecutionId) {
    let (tenant, id) = one_execution(store).await;
    let start = start_change(id);
    assert!(store.transition_execution(OWNER, &start).await.unwrap());
    (tenant, id)
}

fn park(tenant: TenantId, id: ExecutionId, wake_at: Option<i64>) -> Park<'static> {
    Park {
        owner: OWNER,
        tenant,
        execution: id,
        wake_at,
    }
}

/// What a sweep by process "b" takes, looking `lookahead` ahead.
async fn sweep(store: &Store, lookahead: Duration) -> Vec<ExecutionId> {
    store.heartbeat("b", Duration::from_secs(60)).await.unwrap();
    let request = ClaimRequest {
        owner: "b",
        incarnation: "test-run",
        limit: 10,
        lookahead,
    };
    store.claim_executions(&request).await.unwrap()
}

fn waiting(id: ExecutionId) -> StepRecord {
    StepRecord {
        execution: id,
        node: "approve".into(),
        status: NodeStatus::Waiting,
        attempts: 1,
        input: None,
        output: None,
        branch: None,
        error: None,
        started_at: Some(now_ms()),
        finished_at: None,
        wake_at: None,
        logs: Vec::new(),
    }
}

async fn parked_executions_wake_when_due(store: &Store) {
    let (tenant, id) = running(store).await;
    let at = now_ms() + 60_000;
    let stranger = Park {
        owner: "b",
        ..park(tenant, id, Some(at))
    };
    assert!(
        store.park_execution(&stranger).await.unwrap() == Parked::Refused,
        "only the owner parks"
    );
    assert_ne!(
        store
            .park_execution(&park(tenant, id, Some(at)))
            .await
            .unwrap(),
        Parked::Refused
    );
    assert!(store.owned_executions(OWNER).await.unwrap().is_empty());
    let late = Turn {
        owner: OWNER,
        tenant,
        execution: id,
        transition: None,
        steps: &[waiting(id)],
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
        store.commit_turn(&late).await.unwrap() == Committed::Fenced,
        "a parked execution has no owner to write for it"
    );
    assert!(sweep(store, Duration::ZERO).await.is_empty(), "not due yet");
    assert_eq!(sweep(store, Duration::from_secs(120)).await, vec![id]);
    let record = store.load_execution(id).await.unwrap().unwrap();
    assert!(record.steps.is_empty(), "the fenced turn wrote nothing");
}
both_backends!(parked_executions_wake_when_due);

async fn a_requested_cancel_keeps_an_execution_from_parking(store: &Store) {
    let (tenant, id) = running(store).await;
    store.request_cancel(tenant, id).await.unwrap();
    assert!(
        store.park_execution(&park(tenant, id, None)).await.unwrap() == Parked::Refused,
        "the owner applies the cancel first"
    );
    assert_eq!(
        store.owned_executions(OWNER).await.unwrap(),
        vec![id],
        "still owned"
    );
}
both_backends!(a_requested_cancel_keeps_an_execution_from_parking);

async fn resumes_are_kept_until_applied(store: &Store) {
    let (tenant, id) = running(store).await;
    save_step(store, tenant, &waiting(id)).await;
    let (stranger, _) = store.create_tenant("T2").await.unwrap();
    let mut signal = NewSignal {
        tenant: stranger,
        execution: id,
        node: "approve".into(),
        payload: json!({"approved": true}),
        idempotency_key: Some("r-1".into()),
    };
    assert_eq!(
        store.add_signal(&signal).await.unwrap(),
        None,
        "another tenant's execution does not exist"
    );
    signal.tenant = tenant;
    let Some(SignalAdded::Recorded(first)) = store.add_signal(&signal).await.unwrap() else {
        panic!("the first resume is recorded");
    };
    // One resume per wait: the same one again is recognised, another is not.
    let repeated = Some(SignalAdded::Repeated(first.clone()));
    assert_eq!(store.add_signal(&signal).await.unwrap(), repeated);
    let same_key = NewSignal {
        payload: json!({"approved": false}),
        ..signal.clone()
    };
    assert_eq!(store.add_signal(&same_key).await.unwrap(), repeated);
    let other = NewSignal {
        idempotency_key: None,
        ..same_key
    };
    assert_eq!(
        store.add_signal(&other).await.unwrap(),
        Some(SignalAdded::Taken)
    );
    assert!(
        store.park_execution(&park(tenant, id, None)).await.unwrap() == Parked::Refused,
        "a resume to apply keeps the execution from parking"
    );
    assert_eq!(
        store.signals(id).await.unwrap(),
        vec![Signal {
            id: first.clone(),
            node: "approve".into(),
            payload: json!({"approved": true}),
        }]
    );
    let mut done = waiting(id);
    done.status = NodeStatus::Succeeded;
    let apply = Turn {
        owner: OWNER,
        tenant,
        execution: id,
        transition: None,
        steps: &[done],
        consumed_signals: std::slice::from_ref(&first),
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
        store.commit_turn(&apply).await.unwrap(),
        Committed::Written {
            woke: None,
            first_position: None,
            parent_told: false,
        }
    );
    assert!(store.signals(id).await.unwrap().is_empty());
    assert_eq!(
        store.add_signal(&signal).await.unwrap(),
        Some(SignalAdded::NotWaiting),
        "the wait is over"
    );

    // Parked until a resume (the node waits again): no time makes it due,
    // a resume does.
    save_step(store, tenant, &waiting(id)).await;
    assert_ne!(
        store.park_execution(&park(tenant, id, None)).await.unwrap(),
        Parked::Refused
    );
    assert!(sweep(store, Duration::from_secs(3600)).await.is_empty());
    assert!(matches!(
        store.add_signal(&signal).await.unwrap(),
        Some(SignalAdded::Recorded(_))
    ));
    assert_eq!(sweep(store, Duration::ZERO).await, vec![id]);
}
both_backends!(resumes_are_kept_until_applied);

async fn a_cancel_makes_a_parked_execution_due(store: &Store) {
    let (tenant, id) = running(store).await;
    assert_ne!(
        store.park_execution(&park(tenant, id, None)).await.unwrap(),
        Parked::Refused
    );
    assert!(sweep(store, Duration::ZERO).await.is_empty());
    store.request_cancel(tenant, id).await.unwrap();
    assert_eq!(sweep(store, Duration::ZERO).await, vec![id]);
}
both_backends!(a_cancel_makes_a_parked_execution_due);
