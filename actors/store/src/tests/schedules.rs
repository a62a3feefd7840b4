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
