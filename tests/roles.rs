//! Process roles: gateways serve requests and run no executions, workers
//! run executions and serve only their operations routes, and a worker
//! killed mid-run loses nothing to the others.

mod common;

use std::time::{Duration, Instant};

use common::{ADMIN_KEY, Engine, METRICS_TOKEN, Mode, eventually, node};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Every process of a split deployment: short leases (a killed worker's
/// executions move on within seconds), waits held in memory (so that a
/// kill finds executions held by the process), operations on a listener
/// of their own.
const SPLIT: &[(&str, &str)] = &[
    ("FLOWMESH_LEASE", "3s"),
    ("FLOWMESH_PARK_AFTER", "1h"),
    ("FLOWMESH_OPS_LISTEN", "127.0.0.1:0"),
];
const GATEWAY: (&str, &str) = ("FLOWMESH_ROLE", "gateway");
const WORKER: (&str, &str) = ("FLOWMESH_ROLE", "worker");

fn signup() -> Value {
    serde_json::from_str(include_str!("../docs/examples/signup.json")).expect("example parses")
}

/// Code, a timer, then a wait for a person's resume.
fn approval() -> Value {
    json!({"name": "approval", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "double", "type": "action", "kind": "code",
         "config": {"language": "javascript", "source": "return {n: input.trigger.body.n * 2};"}},
        {"id": "pause", "type": "action", "kind": "wait", "config": {"duration": "500ms"}},
        {"id": "approve", "type": "action", "kind": "wait_for_event", "config": {"timeout": "10m"}},
        {"id": "done", "type": "data", "kind": "mapping",
         "config": {"mapping": {"n": "{{ double.n }}", "by": "{{ approve.payload.by }}"}}}
    ], "edges": [{"from": "start", "to": "double"}, {"from": "double", "to": "pause"},
                 {"from": "pause", "to": "approve"}, {"from": "approve", "to": "done"}]})
}

/// The signup webhook through `gateway`, answered synchronously.
async fn sign_up(gateway: &Engine, name: &str) {
    let resp = gateway
        .client()
        .post(gateway.url("/hooks/default/signup"))
        .json(&json!({"email": format!("{name}@example.com"), "name": name}))
        .send()
        .await
        .expect("webhook");
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.expect("JSON");
    assert_eq!(body, json!({"welcome": name.to_uppercase()}));
}

async fn get(engine: &Engine, url: &str, token: &str) -> (StatusCode, String) {
    let resp = engine
        .client()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    let status = resp.status();
    (status, resp.text().await.unwrap_or_default())
}

/// `GET /ready` of a process's operations listener.
async fn ready(engine: &Engine) -> Value {
    let ops = engine.ops.as_deref().expect("an operations listener");
    let (status, body) = get(engine, &format!("{ops}/ready"), ADMIN_KEY).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_str(&body).expect("JSON")
}

async fn held_here(engine: &Engine) -> u64 {
    ready(engine).await["executions_here"].as_u64().unwrap()
}

async fn all_waiting(gateway: &Engine, ids: &[String], limit: Duration) {
    for id in ids {
        eventually("the execution waits for a resume", limit, || async {
            let e = gateway.execution(id).await;
            (node(&e, "approve")["status"] == "waiting").then_some(())
        })
        .await;
    }
}

async fn resume_all(gateway: &Engine, ids: &[String]) {
    for id in ids {
        let (status, body) = gateway
            .post(
                &format!("/v1/executions/{id}/resume"),
                json!({"payload": {"by": "ada"}}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
}

async fn all_succeeded(gateway: &Engine, ids: &[String], limit: Duration) {
    for id in ids {
        let done = eventually("the execution succeeds", limit, || async {
            let e = gateway.execution(id).await;
            (e["status"] == "succeeded").then_some(e)
        })
        .await;
        assert_eq!(node(&done, "done")["output"]["by"], "ada", "{done:#}");
        let n = node(&done, "double")["output"]["n"].as_i64().unwrap();
        assert_eq!(n % 2, 0, "{done:#}");
    }
}

async fn start_approvals(
    gateway: &Engine,
    workflow: &str,
    runs: std::ops::Range<i64>,
) -> Vec<String> {
    let mut ids = Vec::new();
    for n in runs {
        ids.push(gateway.start_execution(workflow, json!({"n": n})).await);
    }
    ids
}

/// One gateway, two workers. The synchronous webhook is answered through
/// the gateway; executions run code, wait on a timer and for a resume
/// (sent through the gateway); one worker is killed while it holds
/// waiting executions and others are starting, and the other finishes
/// every one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_and_two_workers_lose_nothing_when_a_worker_dies() {
    let env: Vec<_> = SPLIT.iter().copied().chain([GATEWAY]).collect();
    let gateway = Engine::start_with(Mode::Distributed, &env).await;
    let mut workers = [
        gateway.peer_with(&[WORKER]).await,
        gateway.peer_with(&[WORKER]).await,
    ];
    let gateway_ready = ready(&gateway).await;
    assert_eq!(gateway_ready["role"], "gateway");
    // No jail was probed for code the gateway never runs.
    let jail = &gateway_ready["sandbox"]["jail"];
    assert_eq!(jail["problem"], "a gateway runs no code", "{jail}");
    for worker in &workers {
        assert_eq!(ready(worker).await["role"], "worker");
    }

    gateway.deploy(signup()).await;
    sign_up(&gateway, "ada").await;
    let workflow = gateway.deploy(approval()).await;
    let waiting = start_approvals(&gateway, &workflow, 0..20).await;
    all_waiting(&gateway, &waiting, Duration::from_secs(60)).await;
    // Held in memory, so the gateway holds none and the workers hold all.
    assert_eq!(held_here(&gateway).await, 0);
    let held = [held_here(&workers[0]).await, held_here(&workers[1]).await];
    assert_eq!(held[0] + held[1], 20, "{held:?}");

    // The worker holding more dies while more executions are starting.
    let victim = usize::from(held[1] > held[0]);
    let starting = start_approvals(&gateway, &workflow, 20..30).await;
    workers[victim].kill();
    let killed = Instant::now();
    let survivor = &workers[1 - victim];

    resume_all(&gateway, &waiting).await;
    all_waiting(&gateway, &starting, Duration::from_secs(60)).await;
    resume_all(&gateway, &starting).await;
    sign_up(&gateway, "grace").await;
    let every: Vec<String> = waiting.into_iter().chain(starting).collect();
    all_succeeded(&gateway, &every, Duration::from_secs(90)).await;
    println!(
        "30 executions finished {:?} after a kill -9 of the worker that held {} of them",
        killed.elapsed(),
        held[victim]
    );
    eventually("the survivor lets go", Duration::from_secs(30), || async {
        (held_here(survivor).await == 0).then_some(())
    })
    .await;
}

/// A gateway alone accepts but runs nothing; a worker that joins runs
/// what it accepted. The worker serves its operations routes on --listen
/// (it has no API there), and the gateway none on its API's listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_runs_nothing_and_a_worker_serves_no_api() {
    let env: Vec<_> = SPLIT.iter().copied().chain([GATEWAY]).collect();
    let gateway = Engine::start_with(Mode::Distributed, &env).await;
    let workflow = gateway.deploy(approval()).await;
    let id = gateway.start_execution(&workflow, json!({"n": 21})).await;

    // Past the start command's grace and several claim sweeps, still
    // queued: nothing in the gateway runs executions.
    let window = Instant::now() + Duration::from_secs(4);
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    while Instant::now() < window {
        tick.tick().await;
        let e = gateway.execution(&id).await;
        assert_eq!(e["status"], "queued", "{e:#}");
    }
    assert_eq!(held_here(&gateway).await, 0);

    // A caller waiting for a result nobody runs is told where it stands.
    let (status, waited) = gateway
        .post(
            &format!("/v1/workflows/{workflow}/executions?wait=true&timeout=1s"),
            json!({"n": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{waited}");
    assert_eq!(waited["status"], "queued", "{waited}");

    // The gateway's API has no operations routes: they are on their own
    // listener, and its description does not list them.
    for path in ["/health", "/ready", "/metrics"] {
        let (status, _) = get(&gateway, &gateway.url(path), METRICS_TOKEN).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path} on the gateway's API");
    }
    let (_, described) = gateway.get("/openapi.json").await;
    for path in ["/health", "/ready", "/metrics"] {
        assert!(described["paths"].get(path).is_none(), "{path} described");
    }

    let worker = gateway
        .peer_with(&[WORKER, ("FLOWMESH_OPS_LISTEN", "")])
        .await;
    all_waiting(&gateway, std::slice::from_ref(&id), Duration::from_secs(30)).await;
    resume_all(&gateway, std::slice::from_ref(&id)).await;
    all_succeeded(&gateway, &[id], Duration::from_secs(30)).await;
    let (status, sandboxes) = gateway.get("/v1/sandboxes").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sandboxes["items"], json!([]), "a gateway runs no sandboxes");

    // The worker: operations routes only.
    let base = &worker.base;
    for (path, token) in [("/health", ""), ("/ready", ""), ("/metrics", METRICS_TOKEN)] {
        let (status, body) = get(&worker, &format!("{base}{path}"), token).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    let (_, metrics) = get(&worker, &format!("{base}/metrics"), METRICS_TOKEN).await;
    assert!(
        metrics.contains("flowmesh_executions_finished_total"),
        "{metrics}"
    );
    for path in ["/v1/workflows", "/v1/executions", "/openapi.json"] {
        let (status, _) = get(&worker, &format!("{base}{path}"), ADMIN_KEY).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path} on a worker");
    }
    let hook = worker
        .client()
        .post(format!("{base}/hooks/default/signup"))
        .json(&json!({"email": "ada@example.com", "name": "ada"}))
        .send()
        .await
        .expect("webhook");
    assert_eq!(hook.status(), StatusCode::NOT_FOUND, "webhooks on a worker");
}

/// Gateways and workers meet only through NATS: without it a split role
/// is refused at start, saying why, PostgreSQL or not.
#[test]
fn split_roles_are_refused_without_nats() {
    let data = tempfile::tempdir().unwrap();
    let postgres = format!("{}/postgres", common::POSTGRES_SERVER);
    for role in ["gateway", "worker"] {
        for database in [None, Some(&postgres)] {
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_flowmesh"));
            cmd.arg("serve")
                .env_clear()
                .env("FLOWMESH_ROLE", role)
                .env("FLOWMESH_LISTEN", "127.0.0.1:0")
                .env("FLOWMESH_DATA_DIR", data.path());
            if let Some(url) = database {
                cmd.env("DATABASE_URL", url);
            }
            let out = cmd.output().expect("flowmesh");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{role} started: {stderr}");
            let refusal = format!("--role {role} needs --nats-url");
            assert!(stderr.contains(&refusal), "{stderr}");
            assert!(stderr.contains("--role all"), "{stderr}");
        }
    }
}
