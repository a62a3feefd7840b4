//! In-process marks, and the engine deaths they reveal.

use super::*;
use crate::{DeathVerdict, EngineDeath, InProcess, Slots};

const WINDOW: Duration = Duration::from_secs(600);
const MINUTE: i64 = 60_000;

async fn mark_of(store: &Store, id: ExecutionId) -> Option<InProcess> {
    store.load_execution(id).await.unwrap().unwrap().in_process
}

fn marked(by: &str, node: Option<&str>) -> Option<InProcess> {
    Some(InProcess {
        by: by.to_owned(),
        node: node.map(str::to_owned),
    })
}

fn turn<'a>(
    tenant: TenantId,
    id: ExecutionId,
    transition: Option<&'a ExecutionChange>,
    in_process: Mark<'a>,
) -> Turn<'a> {
    Turn {
        owner: OWNER,
        tenant,
        execution: id,
        transition,
        steps: &[],
        consumed_signals: &[],
        usage: None,
        slots: Slots::Unlimited,
        in_process,
        events: &[],
        handler: None,
        children: &[],
        to_parent: None,
        take_slot: false,
    }
}

async fn marks_follow_claims_turns_and_graceful_stops(store: &Store) {
    // Claimed while queued: marked for the claiming process run.
    let (tenant, id) = one_execution(store).await;
    assert_eq!(mark_of(store, id).await, marked("test-run", None));
    // Claimed again by another run: the mark it found is kept, to be seen.
    assert!(
        store
            .claim_execution(id, OWNER, "second-run")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(mark_of(store, id).await, marked("test-run", None));
    // The start turn moves the mark with its status change.
    let start = start_change(id);
    let set = Mark::Set {
        by: "second-run",
        node: "code",
    };
    let starting = turn(tenant, id, Some(&start), set);
    assert_eq!(
        store.commit_turn(&starting).await.unwrap(),
        Committed::Written {
            woke: None,
            first_position: None,
            parent_told: false,
        }
    );
    assert_eq!(mark_of(store, id).await, marked("second-run", Some("code")));
    // A running execution's claim leaves its mark alone.
    assert!(
        store
            .claim_execution(id, OWNER, "third-run")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(mark_of(store, id).await, marked("second-run", Some("code")));
    // A turn without a status change clears it, and only its owner may.
    let stranger = Turn {
        owner: "stranger",
        ..turn(tenant, id, None, Mark::Clear)
    };
    assert_eq!(
        store.commit_turn(&stranger).await.unwrap(),
        Committed::Fenced
    );
    assert_eq!(mark_of(store, id).await, marked("second-run", Some("code")));
    let clearing = turn(tenant, id, None, Mark::Clear);
    assert_eq!(
        store.commit_turn(&clearing).await.unwrap(),
        Committed::Written {
            woke: None,
            first_position: None,
            parent_told: false,
        }
    );
    assert_eq!(mark_of(store, id).await, None);
    // A graceful stop is no death: its marks go with its lease.
    let marking = turn(tenant, id, None, set);
    assert_eq!(
        store.commit_turn(&marking).await.unwrap(),
        Committed::Written {
            woke: None,
            first_position: None,
            parent_told: false,
        }
    );
    store.release_leases(OWNER).await.unwrap();
    assert_eq!(mark_of(store, id).await, None);
}
both_backends!(marks_follow_claims_turns_and_graceful_stops);

async fn a_death_older_than_the_window_does_not_count(store: &Store) {
    let (_, id) = one_execution(store).await;
    let death = |at: i64| EngineDeath {
        owner: OWNER,
        execution: id,
        at,
        window: WINDOW,
    };
    let t0 = crate::now_ms();
    assert_eq!(
        store.record_engine_death(&death(t0)).await.unwrap(),
        DeathVerdict::First
    );
    let record = store.load_execution(id).await.unwrap().unwrap();
    assert_eq!(record.engine_death_at, Some(t0));
    assert_eq!(
        record.in_process, None,
        "the mark is cleared with the record"
    );
    // Nine minutes later: the second within the window, and it stays so
    // (nothing written) until the execution has failed.
    for _ in 0..2 {
        assert_eq!(
            store
                .record_engine_death(&death(t0 + 9 * MINUTE))
                .await
                .unwrap(),
            DeathVerdict::Repeated { previous: t0 }
        );
    }
    // Eleven minutes after the first, that one no longer counts.
    let t1 = t0 + 11 * MINUTE;
    assert_eq!(
        store.record_engine_death(&death(t1)).await.unwrap(),
        DeathVerdict::First
    );
    assert_eq!(
        store
            .record_engine_death(&death(t1 + MINUTE))
            .await
            .unwrap(),
        DeathVerdict::Repeated { previous: t1 }
    );
    let stranger = EngineDeath {
        owner: "stranger",
        ..death(t1 + 30 * MINUTE)
    };
    assert_eq!(
        store.record_engine_death(&stranger).await.unwrap(),
        DeathVerdict::Fenced
    );
}
both_backends!(a_death_older_than_the_window_does_not_count);
