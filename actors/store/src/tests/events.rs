//! Events recorded with their turns: numbered per execution and per
//! tenant, read back in pages, purged with their executions.

use flowmesh_model::{EventKind, ExecutionEvent};

use super::*;
use crate::{EVENT_PAGE, EventScope, Resume, SettingsChange, now_ms};

fn events(
    tenant: TenantId,
    execution: ExecutionId,
    seqs: std::ops::Range<u64>,
) -> Vec<ExecutionEvent> {
    seqs.map(|seq| ExecutionEvent {
        tenant,
        workflow: WorkflowId::new(),
        execution,
        at_ms: 1,
        seq,
        position: 0,
        kind: EventKind::NodeStarted {
            node: format!("n{seq}"),
            attempt: 1,
        },
    })
    .collect()
}

/// A turn of `owner` that records `events` and nothing else.
async fn record_as(
    store: &Store,
    owner: &str,
    (tenant, id): (TenantId, ExecutionId),
    events: &[ExecutionEvent],
) -> Committed {
    let turn = Turn {
        owner,
        tenant,
        execution: id,
        transition: None,
        steps: &[],
        consumed_signals: &[],
        usage: None,
        slots: Slots::Unlimited,
        in_process: Mark::Keep,
        events,
        handler: None,
        children: &[],
        to_parent: None,
        take_slot: false,
    };
    store.commit_turn(&turn).await.unwrap()
}

async fn events_are_recorded_with_their_turn_and_replayed(store: &Store) {
    let (tenant, id) = one_execution(store).await;
    let (other, theirs) = one_execution(store).await;
    assert_eq!(store.last_event_position(tenant).await.unwrap(), 0);
    let first = events(tenant, id, 1..4);
    assert_eq!(
        record_as(store, OWNER, (tenant, id), &first).await,
        Committed::Written {
            woke: None,
            first_position: Some(1),
            parent_told: false,
        }
    );
    // Another tenant's events take positions of its own.
    assert_eq!(
        record_as(store, OWNER, (other, theirs), &events(other, theirs, 1..3)).await,
        Committed::Written {
            woke: None,
            first_position: Some(1),
            parent_told: false,
        }
    );
    assert_eq!(
        record_as(
            store,
            OWNER,
            (tenant, id),
            &events(tenant, id, 4..EVENT_PAGE as u64 + 10)
        )
        .await,
        Committed::Written {
            woke: None,
            first_position: Some(4),
            parent_told: false,
        }
    );
    let last = EVENT_PAGE as u64 + 9;
    assert_eq!(store.last_event_position(tenant).await.unwrap(), last);
    assert_eq!(store.last_event_seq(id).await.unwrap(), last);

    // Read back in pages, in order, with their positions.
    let page = store
        .events_after(tenant, EventScope::Tenant, 0)
        .await
        .unwrap();
    assert_eq!(page.len(), EVENT_PAGE);
    assert!(
        page.iter()
            .zip(1..)
            .all(|(e, n)| e.position == n && e.seq == n)
    );
    let rest = store
        .events_after(tenant, EventScope::Tenant, EVENT_PAGE as u64)
        .await
        .unwrap();
    assert_eq!(rest.len(), 9);
    let one = store
        .events_after(tenant, EventScope::Execution(id), 2)
        .await
        .unwrap();
    assert_eq!(one[0].seq, 3);
    assert_eq!(one[0].kind, first[2].kind);
    // Another tenant's execution is not read through this tenant.
    assert!(
        store
            .events_after(tenant, EventScope::Execution(theirs), 0)
            .await
            .unwrap()
            .is_empty()
    );

    assert_eq!(store.resume_at(tenant, 0).await.unwrap(), Resume::Known);
    assert_eq!(store.resume_at(tenant, 5).await.unwrap(), Resume::Known);
    assert_eq!(
        store.resume_at(tenant, last + 1).await.unwrap(),
        Resume::Future { last }
    );

    // A fenced turn records nothing.
    let stale = events(tenant, id, 200..201);
    assert_eq!(
        record_as(store, "somebody-else", (tenant, id), &stale).await,
        Committed::Fenced
    );
    assert_eq!(store.last_event_position(tenant).await.unwrap(), last);

    // Purged with their execution; positions never go back.
    let end = ExecutionChange {
        id,
        from: ExecutionStatus::Queued,
        to: ExecutionStatus::Succeeded,
        output: None,
        error: None,
    };
    let finished = events(tenant, id, last + 1..last + 2);
    assert_eq!(
        store
            .transition_with_events(&crate::Ending {
                owner: OWNER,
                change: &end,
                events: &finished,
                to_parent: None,
                handler: None,
            })
            .await
            .unwrap(),
        Some((Some(last + 1), false))
    );
    let short = SettingsChange {
        retention_ms: Some(Some(0)),
        ..SettingsChange::default()
    };
    assert!(store.set_tenant_settings(tenant, &short).await.unwrap());
    let deadline = now_ms() + 1;
    while now_ms() <= deadline {
        tokio::task::yield_now().await;
    }
    assert_eq!(store.purge_expired(10).await.unwrap(), 1);
    assert!(
        store
            .events_after(tenant, EventScope::Tenant, 0)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.resume_at(tenant, 5).await.unwrap(), Resume::Purged);
    assert_eq!(store.last_event_position(tenant).await.unwrap(), last + 1);
    assert_eq!(
        store
            .events_after(other, EventScope::Tenant, 0)
            .await
            .unwrap()
            .len(),
        2
    );
}
both_backends!(events_are_recorded_with_their_turn_and_replayed);

/// A turn whose statements take more parameters than one SQLite query
/// string may number is written whole, its events numbered in order.
async fn a_turn_larger_than_one_query_is_written_whole(store: &Store) {
    let (tenant, id) = one_execution(store).await;
    let steps: Vec<StepRecord> = (0..3_000)
        .map(|n| StepRecord {
            execution: id,
            node: format!("n{n:04}"),
            status: NodeStatus::Succeeded,
            attempts: 1,
            input: None,
            output: Some(serde_json::json!({"n": n})),
            branch: None,
            error: None,
            started_at: Some(n),
            finished_at: Some(n),
            wake_at: None,
            logs: Vec::new(),
        })
        .collect();
    let recorded = events(tenant, id, 1..501);
    let turn = Turn {
        owner: OWNER,
        tenant,
        execution: id,
        transition: None,
        steps: &steps,
        consumed_signals: &[],
        usage: None,
        slots: Slots::Unlimited,
        in_process: Mark::Keep,
        events: &recorded,
        handler: None,
        children: &[],
        to_parent: None,
        take_slot: false,
    };
    assert_eq!(
        store.commit_turn(&turn).await.unwrap(),
        Committed::Written {
            woke: None,
            first_position: Some(1),
            parent_told: false,
        }
    );
    let record = store.get_execution(tenant, id).await.unwrap().unwrap();
    assert_eq!(record.steps.len(), 3_000);
    assert_eq!(
        record.steps[2_999].output,
        Some(serde_json::json!({"n": 2_999}))
    );
    assert_eq!(store.last_event_position(tenant).await.unwrap(), 500);
    let mut after = 0;
    while let Some(last) = store
        .events_after(tenant, EventScope::Tenant, after)
        .await
        .unwrap()
        .last()
    {
        assert_eq!(last.seq, last.position);
        after = last.position;
    }
    assert_eq!(after, 500);
}
both_backends!(a_turn_larger_than_one_query_is_written_whole);
