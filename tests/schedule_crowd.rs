//! A crowd of schedules against one quiet tenant's: a load test of the
//! schedule sweep, in a binary of its own so that no other test shares the
//! machine while it measures how late ticks fire.

mod common;

use std::time::Duration;

use common::{Engine, Mode, SECOND_TICKS, eventually, every_second};
use reqwest::Method;

/// One tenant's thousand every-second schedules do not hold back another
/// tenant's: each of its ticks fires within seconds of its time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_of_schedules_does_not_delay_another_tenants() {
    let engine = Engine::start_with(
        Mode::Embedded,
        &[SECOND_TICKS, ("FLOWMESH_TENANT_MAX_SCHEDULES", "1000")],
    )
    .await;
    let crowd = engine.create_tenant("Crowd").await;
    let quiet = engine.create_tenant("Quiet").await;
    for n in 0..4 {
        engine
            .deploy_as(&crowd, every_second(&format!("crowd{n}"), 250))
            .await;
    }
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let workflow = engine.deploy_as(&quiet, every_second("quiet", 1)).await;
    // Ten seconds of ticks from 10 s on, when the crowd's backlog (if
    // any) has built up.
    let from = (started / 1_000 + 10) * 1_000;
    let until = from + 10_000;
    let lags = eventually(
        "the quiet tenant's ticks",
        Duration::from_secs(60),
        || async {
            let (_, page) = engine
                .request_as(
                    &quiet,
                    Method::GET,
                    &format!("/v1/executions?workflow_id={workflow}&limit=500"),
                    None,
                )
                .await;
            let mut lags = Vec::new();
            for item in page["items"].as_array()? {
                let id = item["id"].as_str()?;
                let (_, execution) = engine
                    .request_as(&quiet, Method::GET, &format!("/v1/executions/{id}"), None)
                    .await;
                let due = execution["trigger"]["scheduled_at_ms"].as_i64()?;
                if (from..until).contains(&due) {
                    lags.push((due, execution["created_at"].as_i64()? - due));
                }
            }
            (lags.len() == 10).then_some(lags)
        },
    )
    .await;
    let late: Vec<_> = lags.iter().filter(|(_, lag)| *lag > 5_000).collect();
    assert!(late.is_empty(), "ticks fired late (due, lag ms): {late:?}");
}
