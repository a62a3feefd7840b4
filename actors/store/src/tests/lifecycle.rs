//! A workflow's lifecycle in the store: saves over a named version, an
//! unpublish that frees the triggers, a rollback that routes them again.

use super::*;
use crate::VersionsQuery;

async fn saves_over_a_version_race_safely(store: &Store) {
    let (tenant, _) = store.create_tenant("T1").await.unwrap();
    let w = store
        .create_workflow(tenant, &doc("one", "a"))
        .await
        .unwrap();
    let over = |document| Update {
        expected: Some(1),
        ..update(tenant, w.id, document)
    };
    let (a, b) = (doc("one", "b"), doc("one", "c"));
    let (a, b) = (over(&a), over(&b));
    let (first, second) = tokio::join!(store.update_workflow(&a), store.update_workflow(&b));
    let outcomes = [first.unwrap(), second.unwrap()];
    let saved = outcomes
        .iter()
        .filter(|o| matches!(o, Updated::Saved(s) if s.latest_version == 2))
        .count();
    let stale = outcomes
        .iter()
        .filter(|o| matches!(o, Updated::Stale { latest: 2 }))
        .count();
    assert_eq!((saved, stale), (1, 1), "{outcomes:?}");
    let page = VersionsQuery {
        tenant,
        workflow: w.id,
        before: None,
        limit: 10,
    };
    let (_, versions) = store.workflow_versions(&page).await.unwrap().unwrap();
    assert_eq!(versions.len(), 2, "the refused save stored nothing");
}
both_backends!(saves_over_a_version_race_safely);

async fn unpublish_frees_and_rollback_routes(store: &Store) {
    let (tenant, _) = store.create_tenant("T1").await.unwrap();
    let w = store
        .create_workflow(tenant, &doc("one", "a"))
        .await
        .unwrap();
    let v1 = vec![("POST".to_owned(), "a".to_owned())];
    store
        .publish_workflow(&publish(tenant, w.id, &v1))
        .await
        .unwrap()
        .unwrap();
    store
        .update_workflow(&update(tenant, w.id, &doc("one", "b")))
        .await
        .unwrap();
    let unpublished = store
        .unpublish_workflow(tenant, w.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (unpublished.published_version, unpublished.latest_version),
        (None, 2)
    );
    let route = store.find_route("t1", "POST", "a").await.unwrap().unwrap();
    assert_eq!(
        route.workflow, None,
        "an unpublished workflow routes nothing"
    );

    // The route is free for another workflow meanwhile.
    let other = store
        .create_workflow(tenant, &doc("two", "a"))
        .await
        .unwrap();
    store
        .publish_workflow(&publish(tenant, other.id, &v1))
        .await
        .unwrap()
        .unwrap();
    store
        .unpublish_workflow(tenant, other.id)
        .await
        .unwrap()
        .unwrap();

    let rolled_back = store
        .publish_workflow(&publish(tenant, w.id, &v1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rolled_back.published_version, Some(1));
    let route = store.find_route("t1", "POST", "a").await.unwrap().unwrap();
    assert_eq!(route.workflow, Some((w.id, 1)));
    let beyond = Publish {
        version: 3,
        ..publish(tenant, w.id, &v1)
    };
    assert!(
        store.publish_workflow(&beyond).await.unwrap().is_none(),
        "a version never saved is not published"
    );
}
both_backends!(unpublish_frees_and_rollback_routes);
