//! Schedules: each tick fires once, whoever races for it.

use super::*;
use crate::{Fire, NewSchedule, now_ms};

async fn each_tick_fires_once(store: &Store) {
    let (tenant, _) = store.create_tenant("T1").await.unwrap();
    let w = store
        .create_workflow(tenant, &doc("timed", "a"))
        .await
        .unwrap();
    let schedules = [NewSchedule {
        node: "tick".into(),
        cron: "* * * * *".into(),
        timezone: "UTC".into(),
        missed: "skip".into(),
        next_at: 60_000,
    }];
    let publication = Publish {
        schedules: &schedules,
        ..publish(tenant, w.id, &[])
    };
    store.publish_workflow(&publication).await.unwrap().unwrap();
    let due = store.due_schedules(now_ms(), 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].version, due[0].next_at), (1, 60_000));
    assert!(store.due_schedules(59_999, 10).await.unwrap().is_empty());

    let fire_with = |id: ExecutionId| {
        let mut new = new_execution(tenant, w.id, Some("schedule:tick:60000"));
        new.id = id;
        new
    };
    let (a, b) = (fire_with(ExecutionId::new()), fire_with(ExecutionId::new()));
    let fire = |new| Fire {
        schedule: &due[0],
        next_at: 120_000,
        execution: Some(new),
    };
    let (fire_a, fire_b) = (fire(&a), fire(&b));
    let (first, second) = tokio::join!(store.fire_schedule(&fire_a), store.fire_schedule(&fire_b));
    assert_eq!(
        [first.unwrap(), second.unwrap()]
            .iter()
            .filter(|won| **won)
            .count(),
        1,
        "exactly one racer fires the tick"
    );
    let query = ExecutionQuery {
        limit: 10,
        ..Default::default()
    };
    let page = store.list_executions(tenant, &query).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(
        store.due_schedules(now_ms(), 10).await.unwrap()[0].next_at,
        120_000
    );

    store.delete_workflow(tenant, w.id).await.unwrap();
    assert!(store.due_schedules(now_ms(), 10).await.unwrap().is_empty());
}
both_backends!(each_tick_fires_once);

/// Publishes a workflow of `tenant` with `count` schedules, all due at `due`.
async fn publish_schedules(store: &Store, tenant: TenantId, name: &str, count: usize, due: i64) {
    let w = store
        .create_workflow(tenant, &doc(name, name))
        .await
        .unwrap();
    let schedules: Vec<NewSchedule> = (0..count)
        .map(|i| NewSchedule {
            node: format!("tick{i}"),
            cron: "* * * * * *".into(),
            timezone: "UTC".into(),
            missed: "skip".into(),
            next_at: due + i as i64,
        })
        .collect();
    let publication = Publish {
        schedules: &schedules,
        ..publish(tenant, w.id, &[])
    };
    store.publish_workflow(&publication).await.unwrap().unwrap();
}

/// A tenant with many due schedules, all due before another tenant's one:
/// the other's still comes in the first batch, and counts keep apart.
async fn due_schedules_take_turns_by_tenant(store: &Store) {
    let (crowd, _) = store.create_tenant("crowd").await.unwrap();
    let (quiet, _) = store.create_tenant("quiet").await.unwrap();
    publish_schedules(store, crowd, "crowd", 30, 1_000).await;
    publish_schedules(store, quiet, "quiet", 2, 5_000).await;

    let due = store.due_schedules(now_ms(), 10).await.unwrap();
    let tenants: Vec<TenantId> = due.iter().map(|d| d.tenant).collect();
    assert_eq!(tenants.len(), 10);
    assert_eq!(
        tenants.iter().filter(|t| **t == quiet).count(),
        2,
        "each tenant's due schedules take turns: {tenants:?}"
    );
    assert_eq!(due[0].next_at, 1_000, "each tenant's earliest first");
    assert_eq!(due[1].next_at, 5_000);

    let other = WorkflowId::new();
    assert_eq!(store.count_schedules(crowd, other).await.unwrap(), 30);
    assert_eq!(store.count_schedules(quiet, other).await.unwrap(), 2);
    let crowd_workflow = due[0].workflow;
    assert_eq!(
        store.count_schedules(crowd, crowd_workflow).await.unwrap(),
        0
    );
}
both_backends!(due_schedules_take_turns_by_tenant);
