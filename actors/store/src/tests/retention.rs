//! Large outputs stored once, and the purge of expired executions.

use super::*;
use crate::{Committed, Slots};
use crate::{SettingsChange, TenantSettings, now_ms};

async fn count(store: &Store, sql: &str) -> i64 {
    let row = sqlx::query(sql).fetch_one(&store.pool).await.unwrap();
    crate::int(&row, "n").unwrap()
}

async fn large_outputs_are_stored_once_and_purged_with_their_runs(store: &Store) {
    let (tenant, first) = one_execution(store).await;
    assert_eq!(
        store.tenant_settings(tenant).await.unwrap(),
        Some(TenantSettings::default())
    );
    let w = store
        .create_workflow(tenant, &doc("two", "b"))
        .await
        .unwrap();
    let mut second = new_execution(tenant, w.id, None);
    second.id = ExecutionId::new();
    let second = store.create_execution(&second).await.unwrap().id;
    own(store, second).await;
    let big = json!({"text": "x".repeat(200_000)});
    for id in [first, second] {
        let mut step = StepRecord {
            execution: id,
            node: "fetch".into(),
            status: NodeStatus::Succeeded,
            attempts: 1,
            input: None,
            output: Some(big.clone()),
            branch: None,
            error: None,
            started_at: Some(1),
            finished_at: Some(2),
            wake_at: None,
            logs: Vec::new(),
        };
        let turn = Turn {
            owner: OWNER,
            tenant,
            execution: id,
            transition: Some(&start_change(id)),
            steps: std::slice::from_ref(&step),
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
        step.node = "small".into();
        step.output = Some(json!({"ok": true}));
        save_step(store, tenant, &step).await;
        let end = ExecutionChange {
            id,
            from: ExecutionStatus::Running,
            to: ExecutionStatus::Succeeded,
            output: None,
            error: None,
        };
        assert!(store.transition_execution(OWNER, &end).await.unwrap());
    }
    assert_eq!(
        count(store, "SELECT COUNT(*) AS n FROM blobs").await,
        1,
        "stored once"
    );
    let record = store.get_execution(tenant, second).await.unwrap().unwrap();
    let fetched = record.steps.iter().find(|s| s.node == "fetch").unwrap();
    assert_eq!(fetched.output.as_ref(), Some(&big), "read back whole");

    assert_eq!(
        store.purge_expired(10).await.unwrap(),
        0,
        "kept 30 days by default"
    );
    let short = SettingsChange {
        retention_ms: Some(Some(0)),
        ..SettingsChange::default()
    };
    assert!(store.set_tenant_settings(tenant, &short).await.unwrap());
    let kept = TenantSettings {
        retention_ms: 0,
        ..TenantSettings::default()
    };
    assert_eq!(store.tenant_settings(tenant).await.unwrap(), Some(kept));
    // Finished "in the past" as far as a zero retention goes.
    let deadline = now_ms() + 1;
    while now_ms() <= deadline {
        tokio::task::yield_now().await;
    }
    assert_eq!(store.purge_expired(1).await.unwrap(), 1, "bounded batches");
    assert_eq!(
        count(store, "SELECT COUNT(*) AS n FROM blobs").await,
        1,
        "still referred to"
    );
    assert_eq!(store.purge_expired(10).await.unwrap(), 1);
    for table in ["blobs", "step_blobs", "steps", "executions"] {
        assert_eq!(
            count(store, &format!("SELECT COUNT(*) AS n FROM {table}")).await,
            0,
            "{table}"
        );
    }
    assert!(store.get_execution(tenant, first).await.unwrap().is_none());
    store.reclaim_space().await.unwrap();
}
both_backends!(large_outputs_are_stored_once_and_purged_with_their_runs);
