//! Concurrency slots across parking: a parked execution gives its slot
//! back, and takes one again (or waits for one, oldest first) when it is
//! taken up.

use super::*;
use crate::{ClaimRequest, Park, Parked, TenantLimits, Turn, Woken, now_ms};

fn turn(tenant: TenantId, id: ExecutionId, change: Option<&ExecutionChange>) -> Turn<'_> {
    Turn {
        owner: OWNER,
        tenant,
        execution: id,
        transition: change,
        steps: &[],
        consumed_signals: &[],
        usage: None,
        slots: Slots::Limited { instance: None },
        in_process: Mark::Keep,
        events: &[],
        handler: None,
        children: &[],
        to_parent: None,
        take_slot: change.is_none(),
    }
}

fn written(woke: Option<Woken>) -> Committed {
    Committed::Written {
        woke,
        first_position: None,
        parent_told: false,
    }
}

async fn parked_executions_give_their_slot_back_and_take_one_again(store: &Store) {
    let (tenant, first) = one_execution(store).await;
    let limits = TenantLimits {
        max_concurrent: Some(1),
        ..Default::default()
    };
    assert!(store.set_tenant_limits(tenant, &limits).await.unwrap());
    let workflow = store
        .get_execution(tenant, first)
        .await
        .unwrap()
        .unwrap()
        .workflow;
    let second = store
        .create_execution(&new_execution(tenant, workflow, None))
        .await
        .unwrap()
        .id;
    own(store, second).await;
    let (first_start, second_start) = (start_change(first), start_change(second));
    let commit = async |t: Turn<'_>| store.commit_turn(&t).await.unwrap();
    assert_eq!(
        commit(turn(tenant, first, Some(&first_start))).await,
        written(None)
    );
    assert_eq!(
        commit(turn(tenant, second, Some(&second_start))).await,
        Committed::NoSlot
    );
    let held = |id| async move {
        store
            .get_execution(tenant, id)
            .await
            .unwrap()
            .unwrap()
            .holds_slot
    };
    assert!(held(first).await);

    // The first parks, due now: its slot wakes the second.
    let park = Park {
        owner: OWNER,
        tenant,
        execution: first,
        wake_at: Some(now_ms()),
    };
    let woke = Some(Woken {
        execution: second,
        workflow,
    });
    assert_eq!(
        store.park_execution(&park).await.unwrap(),
        Parked::Parked { woke }
    );
    assert!(!held(first).await);
    own(store, second).await;
    assert_eq!(
        commit(turn(tenant, second, Some(&second_start))).await,
        written(None)
    );

    // Taken up again, the first finds no slot: it waits, unowned.
    let sweep = ClaimRequest {
        owner: OWNER,
        incarnation: "test-run",
        limit: 10,
        lookahead: Duration::from_secs(1),
    };
    assert_eq!(store.claim_executions(&sweep).await.unwrap(), [first]);
    assert_eq!(commit(turn(tenant, first, None)).await, Committed::NoSlot);
    assert!(store.claim_executions(&sweep).await.unwrap().is_empty());

    // The second's end wakes it, and it takes the slot.
    let end = ExecutionChange {
        id: second,
        from: ExecutionStatus::Running,
        to: ExecutionStatus::Succeeded,
        output: None,
        error: None,
    };
    let woke = Some(Woken {
        execution: first,
        workflow,
    });
    assert_eq!(
        commit(turn(tenant, second, Some(&end))).await,
        written(woke)
    );
    assert_eq!(store.claim_executions(&sweep).await.unwrap(), [first]);
    assert_eq!(commit(turn(tenant, first, None)).await, written(None));
    assert!(held(first).await);
    // An end with no slot held gives none back: the count stays right.
    let parked_end = ExecutionChange {
        id: first,
        from: ExecutionStatus::Running,
        to: ExecutionStatus::Failed,
        output: None,
        error: None,
    };
    assert_eq!(
        commit(turn(tenant, first, Some(&parked_end))).await,
        written(None)
    );
    assert!(!held(first).await);
}
both_backends!(parked_executions_give_their_slot_back_and_take_one_again);
