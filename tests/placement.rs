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

/// A webhook that answers after a pause long enough to park in.
async fn deploy_late_answer(engine: &Engine) {
    engine
        .deploy(json!({"name": "late answer", "nodes": [
            {"id": "hook", "type": "trigger", "kind": "webhook", "config": {"path": "late", "method": "POST"}},
            {"id": "pause", "type": "action", "kind": "wait", "config": {"duration": "1500ms"}},
            {"id": "answer", "type": "action", "kind": "respond",
             "config": {"status": 201, "body": {"n": "{{ trigger.body.n }}"}}}
        ], "edges": [{"from": "hook", "to": "pause"}, {"from": "pause", "to": "answer"}]}))
        .await;
}

/// Calls the late answer's webhook and waits for its answer.
async fn call_late(engine: &Engine) -> (reqwest::StatusCode, Value) {
    let response = engine
        .client()
        .post(engine.url("/hooks/default/late"))
        .json(&json!({"n": 7}))
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

/// A synchronous caller of an execution that parks before it answers (so
/// that its actor leaves the process that accepted it) still gets the
/// answer: the wait goes on from the record.
async fn answer_after_parking(mode: Mode) {
    let engine = Engine::start_with(mode, &[("FLOWMESH_PARK_AFTER", "100ms")]).await;
    deploy_late_answer(&engine).await;
    let (status, body) = call_late(&engine).await;
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

/// A webhook of `tenant` that answers with its tenant's mark and the
/// caller's number, after a pause that keeps many runs here at once.
fn marked_answer(tenant: &str) -> Value {
    json!({"name": "marked", "nodes": [
        {"id": "hook", "type": "trigger", "kind": "webhook", "config": {"path": "mark", "method": "POST"}},
        {"id": "pause", "type": "action", "kind": "wait", "config": {"duration": "200ms"}},
        {"id": "answer", "type": "action", "kind": "respond",
         "config": {"status": 200, "body": {"tenant": tenant, "n": "{{ trigger.body.n }}"}}}
    ], "edges": [{"from": "hook", "to": "pause"}, {"from": "pause", "to": "answer"}]})
}

/// Synchronous callers of two tenants' webhooks, all waiting at once in
/// the process that runs their executions, each get their own run's
/// answer and nothing of another's.
async fn callers_get_their_own_answers(mode: Mode) {
    const CALLS: i64 = 20;
    let engine = Engine::start(mode).await;
    let rival = engine.create_tenant("rival").await;
    engine.deploy(marked_answer("default")).await;
    engine.deploy_as(&rival, marked_answer("rival")).await;
    let calls = (0..CALLS).flat_map(|n| ["default", "rival"].map(|slug| (slug, n)));
    let answers = calls.map(|(slug, n)| {
        let engine = &engine;
        async move {
            let response = engine
                .client()
                .post(engine.url(&format!("/hooks/{slug}/mark")))
                .json(&json!({"n": n}))
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap();
            (slug, n, status, body)
        }
    });
    for (slug, n, status, body) in futures::future::join_all(answers).await {
        assert_eq!(status, reqwest::StatusCode::OK, "{slug} {n}: {body}");
        assert_eq!(body, json!({"tenant": slug, "n": n}), "{slug} {n}");
    }
    let (here, _) = placed(&engine).await;
    assert_eq!(
        here,
        (2 * CALLS) as f64,
        "every run ran where it was accepted"
    );
}
both_modes!(
    synchronous_callers_of_two_tenants_get_their_own_answers,
    callers_get_their_own_answers
);

/// An API start with an idempotency key; the execution's id.
async fn keyed_start(engine: &Engine, workflow: &str, key: &str) -> String {
    let response = engine
        .client()
        .post(engine.url(&format!("/v1/workflows/{workflow}/executions")))
        .bearer_auth(common::ADMIN_KEY)
        .header("Idempotency-Key", key)
        .json(&json!({"n": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::ACCEPTED);
    let body: Value = response.json().await.unwrap();
    body["execution_id"]
        .as_str()
        .expect("execution_id")
        .to_owned()
}

/// A start repeated with its idempotency key while the execution runs
/// where it was first accepted (here, or at a second process) sends a
/// start command for it: that command neither runs it a second time nor
/// repeats its outside call.
async fn repeats_while_running_here(mode: Mode) {
    let stub = common::stub::StubServer::start().await;
    let engine = Engine::start(mode).await;
    let workflow = engine
        .deploy(json!({"name": "slow call", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "call", "type": "action", "kind": "http_request", "config": {"url": stub.url("/slow/1500")}},
            {"id": "after", "type": "action", "kind": "http_request", "config": {"url": stub.url("/ok/after")}}
        ], "edges": [{"from": "start", "to": "call"}, {"from": "call", "to": "after"}]}))
        .await;
    let peer = match mode {
        Mode::Embedded => None,
        Mode::Distributed => Some(engine.peer().await),
    };
    let first = keyed_start(&engine, &workflow, "once").await;
    eventually("the call is out", Duration::from_secs(10), || async {
        (!stub.hits("/slow/").is_empty()).then_some(())
    })
    .await;
    for _ in 0..5 {
        assert_eq!(keyed_start(&engine, &workflow, "once").await, first);
        if let Some(peer) = &peer {
            assert_eq!(keyed_start(peer, &workflow, "once").await, first);
        }
    }
    let done = engine.finished(&first).await;
    assert_eq!(done["status"], "succeeded", "{done:#}");
    assert_eq!(stub.hits("/slow/").len(), 1, "the call was made again");
    assert_eq!(
        stub.hits("/ok/after").len(),
        1,
        "the next call was repeated"
    );
    assert_eq!(common::node(&done, "call")["attempts"], 1, "{done:#}");
}
both_modes!(
    a_repeated_start_of_an_execution_running_here_runs_nothing_twice,
    repeats_while_running_here
);

/// Most executions whose spans (`started_at` to `finished_at`) overlap.
fn most_at_once(finished: &[Value]) -> usize {
    let mut edges: Vec<(i64, i64)> = finished
        .iter()
        .flat_map(|e| {
            let at = |field: &str| e[field].as_i64().expect("a finished execution's times");
            // An end sorts before a start at the same instant.
            [(at("started_at"), 1), (at("finished_at"), -1)]
        })
        .collect();
    edges.sort();
    let mut running = 0i64;
    let mut most = 0i64;
    for (_, step) in edges {
        running += step;
        most = most.max(running);
    }
    most as usize
}

/// A tenant's concurrency limit holds for a burst of starts run where
/// they are accepted, by every process that accepts them.
async fn limit_under_a_burst(mode: Mode) {
    const LIMIT: usize = 2;
    const BURST: i64 = 12;
    let engine = Engine::start_with(mode, &[("FLOWMESH_TENANT_MAX_CONCURRENT", "2")]).await;
    let peer = match mode {
        Mode::Embedded => None,
        Mode::Distributed => Some(engine.peer().await),
    };
    let workflow = engine.deploy(pausing("300ms")).await;
    let starts = (0..BURST).map(|n| {
        let to = match &peer {
            Some(peer) if n % 2 == 1 => peer,
            _ => &engine,
        };
        let workflow = &workflow;
        async move { (n, to.start_execution(workflow, json!({"n": n})).await) }
    });
    let ids = futures::future::join_all(starts).await;
    let mut finished = Vec::new();
    for (n, id) in &ids {
        let done = engine.finished(id).await;
        assert_eq!(done["status"], "succeeded", "{done:#}");
        assert_eq!(done["output"]["n"], json!(n), "{done:#}");
        finished.push(done);
    }
    let most = most_at_once(&finished);
    assert!(
        most <= LIMIT,
        "{most} ran at once, past the limit of {LIMIT}"
    );
}
both_modes!(
    a_burst_run_where_accepted_keeps_the_tenant_limit,
    limit_under_a_burst
);

/// A synchronous caller whose execution runs here, parks, and answers
/// while NATS is away learns the answer or at least its execution's id:
/// the execution was accepted, so the caller is never told to send it
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synchronous_caller_is_answered_while_the_bus_is_away() {
    let mut nats = common::servers::OwnNats::start().await;
    let servers = common::Servers {
        nats: nats.url(),
        ..Default::default()
    };
    let engine = Engine::start_on(
        Mode::Distributed,
        servers,
        &[("FLOWMESH_PARK_AFTER", "100ms")],
    )
    .await;
    deploy_late_answer(&engine).await;
    nats.down();
    let (status, body) = call_late(&engine).await;
    assert!(status.is_success(), "{status}: {body}");
    let id = match status {
        reqwest::StatusCode::CREATED => {
            assert_eq!(body, json!({"n": 7}));
            None
        }
        _ => Some(
            body["execution_id"]
                .as_str()
                .expect("execution_id")
                .to_owned(),
        ),
    };
    if let Some(id) = id {
        let done = engine.finished(&id).await;
        assert_eq!(done["status"], "succeeded", "{done:#}");
    }
}

/// `chain`'s outside calls with short slow calls between them, and no
/// wait: nodes end (and the next start) all the time.
fn busy_chain(stub: &common::stub::StubServer) -> Value {
    let call = |id: &str, path: &str| {
        json!({"id": id, "type": "action", "kind": "http_request",
               "config": {"method": "POST", "url": stub.url(path), "body": {"run": "{{ trigger.body.run }}"}}})
    };
    json!({"name": "busy chain", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        call("a", "/ok/a"), call("s1", "/slow/20"), call("b", "/ok/b"),
        call("s2", "/slow/20"), call("c", "/ok/c")
    ], "edges": [{"from": "start", "to": "a"}, {"from": "a", "to": "s1"}, {"from": "s1", "to": "b"},
                 {"from": "b", "to": "s2"}, {"from": "s2", "to": "c"}]})
}

/// A graceful stop while starts are accepted and run here: the process
/// drains and exits in time (an execution handed over or ending a node as
/// draining begins starts nothing and steps aside), and after the restart
/// every accepted execution finishes with each effect journaled once.
async fn stop_under_load(mode: Mode) {
    use common::load::{Targets, accept_all, all_finished, check_effects, succeeded};
    const RUNS: usize = 200;
    let stub = common::stub::StubServer::start().await;
    let mut engine = Engine::start(mode).await;
    let workflow = engine.deploy(busy_chain(&stub)).await;
    let targets: Targets = std::sync::Arc::new(tokio::sync::RwLock::new(vec![engine.base.clone()]));
    let load = tokio::spawn(accept_all(targets.clone(), workflow.clone(), RUNS, 32));
    eventually("some finished", Duration::from_secs(60), || async {
        (succeeded(&engine, &workflow).await >= RUNS / 5).then_some(())
    })
    .await;
    let status = engine.terminate().await;
    assert!(status.success(), "graceful exit: {status}");
    engine.start_again().await;
    *targets.write().await = vec![engine.base.clone()];
    let (ids, _) = load.await.expect("load");
    let finished = all_finished(&engine, &ids, Duration::from_secs(120)).await;
    check_effects(&stub, &finished);
}
both_modes!(
    a_graceful_stop_under_load_drains_and_loses_nothing,
    stop_under_load
);
