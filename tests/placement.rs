//! Where an accepted execution runs: a process that runs executions runs
//! those it accepts itself, at once, while it holds fewer than
//! `--max-started-here` live executions; the others (all of them with 0)
//! go through the bus as start commands. Either way each runs once to
//! its end.

mod common;

use std::time::Duration;

use common::{Engine, Mode, eventually};
use serde_json::{Value, json};

/// The sum of a metric's samples whose labels include `label`.
fn sample(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(name) && (label.is_empty() || line.contains(label)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn placed(engine: &Engine) -> (f64, f64) {
    let text = engine.metrics_text().await;
    let name = "flowmesh_executions_placed_total";
    (
        sample(&text, name, "path=\"here\""),
        sample(&text, name, "path=\"bus\""),
    )
}

fn pausing(pause: &str) -> Value {
    json!({"name": "pausing", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "pause", "type": "action", "kind": "wait", "config": {"duration": pause}},
        {"id": "echo", "type": "data", "kind": "mapping", "config": {"mapping": {"n": "{{ trigger.body.n }}"}}}
    ], "edges": [{"from": "start", "to": "pause"}, {"from": "pause", "to": "echo"}]})
}

/// Each execution ends succeeded with its own input as output.
async fn all_succeed(engine: &Engine, ids: &[(i64, String)]) {
    for (n, id) in ids {
        let execution = engine.finished(id).await;
        assert_eq!(execution["status"], "succeeded", "{execution:#}");
        assert_eq!(execution["output"]["n"], json!(n), "{execution:#}");
    }
}

async fn start_some(engine: &Engine, workflow: &str, from: i64, count: i64) -> Vec<(i64, String)> {
    let mut ids = Vec::new();
    for n in from..from + count {
        ids.push((n, engine.start_execution(workflow, json!({"n": n})).await));
    }
    ids
}

async fn run_where_accepted(mode: Mode) {
    let engine = Engine::start(mode).await;
    let workflow = engine.deploy(pausing("1ms")).await;
    let ids = start_some(&engine, &workflow, 0, 10).await;
    all_succeed(&engine, &ids).await;
    assert_eq!(placed(&engine).await, (10.0, 0.0));
}
both_modes!(
    accepted_executions_run_where_they_were_accepted,
    run_where_accepted
);

async fn through_the_bus(mode: Mode) {
    let engine = Engine::start_with(mode, &[("FLOWMESH_MAX_STARTED_HERE", "0")]).await;
    let workflow = engine.deploy(pausing("1ms")).await;
    let ids = start_some(&engine, &workflow, 0, 10).await;
    all_succeed(&engine, &ids).await;
    assert_eq!(placed(&engine).await, (0.0, 10.0));
}
both_modes!(
    with_none_started_here_every_start_is_a_command,
    through_the_bus
);

async fn past_the_bound(mode: Mode) {
    let engine = Engine::start_with(mode, &[("FLOWMESH_MAX_STARTED_HERE", "1")]).await;
    let workflow = engine.deploy(pausing("3s")).await;
    let mut ids = start_some(&engine, &workflow, 0, 1).await;
    eventually(
        "the first execution has its actor",
        Duration::from_secs(10),
        || async {
            let text = engine.metrics_text().await;
            (sample(&text, "flowmesh_executions_in_flight", "") >= 1.0).then_some(())
        },
    )
    .await;
    ids.extend(start_some(&engine, &workflow, 1, 3).await);
    assert_eq!(placed(&engine).await, (1.0, 3.0));
    all_succeed(&engine, &ids).await;
}
both_modes!(past_the_bound_starts_go_through_the_bus, past_the_bound);

/// A synchronous caller of an execution that parks before it answers (so
/// that its actor leaves the process that accepted it) still gets the
/// answer: the wait goes on from the record.
async fn answer_after_parking(mode: Mode) {
    let engine = Engine::start_with(mode, &[("FLOWMESH_PARK_AFTER", "100ms")]).await;
    engine
        .deploy(json!({"name": "late answer", "nodes": [
            {"id": "hook", "type": "trigger", "kind": "webhook", "config": {"path": "late", "method": "POST"}},
            {"id": "pause", "type": "action", "kind": "wait", "config": {"duration": "1500ms"}},
            {"id": "answer", "type": "action", "kind": "respond",
             "config": {"status": 201, "body": {"n": "{{ trigger.body.n }}"}}}
        ], "edges": [{"from": "hook", "to": "pause"}, {"from": "pause", "to": "answer"}]}))
        .await;
    let response = engine
        .client()
        .post(engine.url("/hooks/default/late"))
        .json(&json!({"n": 7}))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
    assert_eq!(body, json!({"n": 7}));
    let text = engine.metrics_text().await;
    assert!(
        sample(&text, "flowmesh_executions_parked_total", "") >= 1.0,
        "the execution did not park"
    );
}
both_modes!(
    a_synchronous_answer_after_parking_still_arrives,
    answer_after_parking
);

/// Starts that arrive together are bounded as those that arrive one by
/// one: a place here is taken when a start is claimed, not once its actor
/// runs, so no more than `--max-started-here` of a burst run here.
async fn bound_under_a_burst(mode: Mode) {
    const BOUND: usize = 3;
    const BURST: i64 = 40;
    let bound = BOUND.to_string();
    let engine = Engine::start_with(mode, &[("FLOWMESH_MAX_STARTED_HERE", bound.as_str())]).await;
    // Long enough that none ends (nor parks) before the burst is accepted.
    let workflow = engine.deploy(pausing("3s")).await;
    let starts = (0..BURST).map(|n| {
        let (engine, workflow) = (&engine, &workflow);
        async move { (n, engine.start_execution(workflow, json!({"n": n})).await) }
    });
    let ids = futures::future::join_all(starts).await;
    let (here, bus) = placed(&engine).await;
    assert_eq!(here + bus, BURST as f64);
    assert!(
        here <= BOUND as f64,
        "{here} of a burst of {BURST} ran here, past the bound of {BOUND}"
    );
    all_succeed(&engine, &ids).await;
}
both_modes!(a_burst_of_starts_keeps_the_bound, bound_under_a_burst);
