//! Code nodes through the whole engine: hostile code is contained and
//! classified, its tenant's sandboxes are visible to operators, and another
//! tenant's code nodes keep their pace meanwhile.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{Engine, Mode, code_workflow, node};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Runs a one-node code workflow; returns the finished execution and how
/// long the code node took.
async fn run_code(
    engine: &Engine,
    language: &str,
    source: &str,
    limits: Value,
) -> (Value, Duration) {
    let workflow = engine
        .deploy(code_workflow("code", language, source, limits))
        .await;
    let id = engine
        .start_execution(&workflow, json!({"name": "ada"}))
        .await;
    let execution = engine.finished(&id).await;
    let step = node(&execution, "code");
    let took = match (step["started_at"].as_i64(), step["finished_at"].as_i64()) {
        (Some(start), Some(end)) => Duration::from_millis((end - start).max(0) as u64),
        _ => Duration::ZERO,
    };
    (execution, took)
}

async fn code_nodes_compute(mode: Mode) {
    let engine = Engine::start(mode).await;
    for (language, source) in [
        (
            "javascript",
            "console.log('hi', input.trigger.body.name); return {upper: input.trigger.body.name.toUpperCase()};",
        ),
        (
            "python",
            "print('hi', input['trigger']['body']['name'])\nreturn {'upper': input['trigger']['body']['name'].upper()}",
        ),
    ] {
        let (execution, _) = run_code(&engine, language, source, json!({})).await;
        assert_eq!(
            execution["status"], "succeeded",
            "{language}: {execution:#}"
        );
        let step = node(&execution, "code");
        assert_eq!(step["output"], json!({"upper": "ADA"}), "{language}");
        assert_eq!(step["logs"], json!(["hi ada"]), "{language}");
    }
    let (status, sandboxes) = engine.get("/v1/sandboxes").await;
    assert_eq!(status, StatusCode::OK);
    let items = sandboxes["items"].as_array().unwrap();
    let mut languages: Vec<&str> = items
        .iter()
        .map(|s| s["language"].as_str().unwrap())
        .collect();
    languages.sort();
    assert_eq!(languages, ["javascript", "python"]);
    assert!(
        items.iter().all(|s| s["executions_served"] == 1),
        "{sandboxes:#}"
    );

    // Deleting one tears it down; the next code node gets a fresh one.
    let js = items
        .iter()
        .find(|s| s["language"] == "javascript")
        .unwrap();
    let id = js["id"].as_str().unwrap();
    let (status, _) = engine
        .request(Method::DELETE, &format!("/v1/sandboxes/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = engine
        .request(Method::DELETE, &format!("/v1/sandboxes/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    run_code(&engine, "javascript", "return 1", json!({})).await;
    let (_, after) = engine.get("/v1/sandboxes").await;
    let fresh = after["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["language"] == "javascript")
        .unwrap();
    assert_ne!(fresh["id"], js["id"]);
    assert_eq!(fresh["executions_served"], 1);
}
both_modes!(
    code_nodes_compute_log_and_their_sandboxes_are_listed,
    code_nodes_compute
);

/// Hostile code, each case: (language, source, expected error class).
const HOSTILE: &[(&str, &str, &str)] = &[
    ("javascript", "while (true) {}", "timeout"),
    (
        "javascript",
        "const a = []; while (true) a.push(new Array(1e6).fill(1));",
        "memory",
    ),
    ("javascript", "const f = () => f(); return f();", "memory"),
    (
        "javascript",
        "return 'x'.repeat(2 * 1024 * 1024);",
        "output_too_large",
    ),
    ("python", "while True:\n    pass", "timeout"),
    ("python", "import time\ntime.sleep(60)", "timeout"),
    ("python", "x = bytearray(1 << 30)\nreturn len(x)", "memory"),
    (
        "python",
        "def f(n):\n    return f(n + 1)\nreturn f(0)",
        "memory",
    ),
    ("python", "import os\nwhile True:\n    os.fork()", "denied"),
    (
        "python",
        "with open('big', 'wb') as f:\n    while True:\n        f.write(b'x' * 1048576)",
        "denied",
    ),
    (
        "python",
        "return 'x' * (2 * 1024 * 1024)",
        "output_too_large",
    ),
    ("python", "return open('/etc/passwd').read()", "denied"),
    ("python", "import ctypes\nreturn 1", "denied"),
    (
        "python",
        "import subprocess\nreturn subprocess.run(['id']).returncode",
        "denied",
    ),
    ("python", "import os\nreturn os.system('id')", "denied"),
    (
        "python",
        "import socket\ns = socket.socket()\ns.connect(('127.0.0.1', 5432))\nreturn 1",
        "denied",
    ),
];

async fn hostile_code_is_contained(mode: Mode) {
    let engine = Engine::start(mode).await;
    let limits = json!({"wall": "1s"});
    // Twice: the engine's memory after the second round shows whether the
    // first left anything behind.
    let mut memory = Vec::new();
    for _ in 0..2 {
        for (language, source, class) in HOSTILE {
            let (execution, took) = run_code(&engine, language, source, limits.clone()).await;
            assert_eq!(execution["status"], "failed", "{source}: {execution:#}");
            let error = node(&execution, "code")["error"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            assert!(error.starts_with(&format!("{class}:")), "{source}: {error}");
            assert!(took <= Duration::from_secs(2), "{source} took {took:?}");
            assert!(
                !execution.to_string().contains("root:x:0:0"),
                "{source} leaked"
            );
        }
        memory.push(engine.rss());
    }
    assert!(
        memory[1] <= memory[0] + (32 << 20),
        "the engine grew from {} MiB to {} MiB over a second round of hostile code",
        memory[0] >> 20,
        memory[1] >> 20
    );
    // Neither the engine's own gateway nor an outside address.
    let gateway_port = engine.base.rsplit(':').next().unwrap().to_owned();
    for address in [
        format!("('127.0.0.1', {gateway_port})"),
        "('1.1.1.1', 443)".to_owned(),
    ] {
        let source = format!("import socket\ns = socket.socket()\ns.connect({address})\nreturn 1");
        let (execution, _) = run_code(&engine, "python", &source, limits.clone()).await;
        let error = node(&execution, "code")["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(error.starts_with("denied:"), "{address}: {error}");
    }
    // Nothing of the engine's environment reaches code.
    let (execution, _) = run_code(
        &engine,
        "python",
        "import os\nreturn sorted(os.environ)",
        json!({}),
    )
    .await;
    assert_eq!(node(&execution, "code")["output"], json!([]));
    let (execution, _) = run_code(
        &engine,
        "javascript",
        "return [typeof process, typeof require, [].constructor.constructor('return typeof globalThis.process')()];",
        json!({}),
    )
    .await;
    assert_eq!(
        node(&execution, "code")["output"],
        json!(["undefined", "undefined", "undefined"])
    );
    // Limits beyond the tenant's maxima are refused, not granted: when the
    // workflow is saved (and, should the maxima have changed since, when
    // it runs).
    let (status, body) = engine
        .post(
            "/v1/workflows",
            code_workflow(
                "greedy",
                "javascript",
                "return 1",
                json!({"memory_mb": 100000}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        body["error"]["details"][0]["path"],
        "nodes[1].config.limits.memory_mb"
    );
}
both_modes!(
    hostile_code_is_contained_and_classified,
    hostile_code_is_contained
);

/// A process's parent, state and CPU time in clock ticks, from
/// `/proc/{pid}/stat`; none once it is gone.
fn process(pid: u32) -> Option<(u32, char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let parent = fields.get(1)?.parse().ok()?;
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((parent, state, ticks))
}

#[tokio::test]
async fn code_stops_when_its_engine_dies() {
    for (language, source) in [
        ("python", "while True:\n    pass"),
        ("javascript", "while (true) {}"),
    ] {
        code_stops_with_its_engine(language, source).await;
    }
}

async fn code_stops_with_its_engine(language: &str, source: &str) {
    let mut engine = Engine::start(Mode::Embedded).await;
    let workflow = engine
        .deploy(code_workflow(
            "spin",
            language,
            source,
            json!({"wall": "30s"}),
        ))
        .await;
    engine.start_execution(&workflow, json!({})).await;
    let engine_pid = engine.pid();
    // The engine's descendant (in its jail) that is burning CPU runs the loop.
    let spinning = common::eventually(
        &format!("the {language} loop runs in a process of its own"),
        Duration::from_secs(20),
        || async {
            let pids: Vec<u32> = std::fs::read_dir("/proc")
                .ok()?
                .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .collect();
            let descends = |mut pid: u32| {
                while let Some((parent, _, _)) = process(pid) {
                    if parent == engine_pid {
                        return true;
                    }
                    pid = parent;
                }
                false
            };
            pids.into_iter()
                .find(|&pid| process(pid).is_some_and(|(_, _, ticks)| ticks > 20) && descends(pid))
        },
    )
    .await;
    engine.kill();
    // Without its engine the code ends at once, not at its 30 s limit.
    common::eventually(
        &format!("the {language} code's process ends with its engine"),
        Duration::from_secs(10),
        || async {
            process(spinning)
                .is_none_or(|(_, state, _)| state == 'Z')
                .then_some(())
        },
    )
    .await;
}

/// Built-ins that run to their end without asking QuickJS's interrupt
/// handler: minutes of CPU each.
const IGNORE_THE_INTERRUPT: &[&str] = &[
    "const a = []; a.length = 4294967295; a.reverse(); return 1;",
    "const a = []; a.length = 4294967295; a.sort(); return 1;",
    "const a = []; a.length = 4294967295; return a.join('').length;",
    "const a = []; a.length = 4294967295; a.fill(0, 0, 1); return a.copyWithin(1, 0).length;",
];

/// The engine's JavaScript worker processes.
/// CPU time of a process and its descendants, in clock ticks.
fn tree_ticks(pid: u32) -> u64 {
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    process(pid).map_or(0, |(_, _, ticks)| ticks)
        + children
            .split_whitespace()
            .filter_map(|c| c.parse().ok())
            .map(tree_ticks)
            .sum::<u64>()
}

fn js_workers(engine_pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| process(pid).is_some_and(|(parent, _, _)| parent == engine_pid))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|line| line.split(|&b| b == 0).any(|arg| arg == b"sandbox-worker"))
        })
        .collect()
}

/// The threads of a process that are running or waiting to run.
fn runnable_threads(pid: u32) -> HashSet<(u32, String)> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return HashSet::new();
    };
    tasks
        .filter_map(|task| {
            let name = task.ok()?.file_name().into_string().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{name}/stat")).ok()?;
            let state = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .next()?
                .to_owned();
            (state == "R").then_some((pid, name))
        })
        .collect()
}

/// Threads of the engine and its workers that stay runnable over a
/// quarter of a second: code still running (an idle engine sleeps).
async fn busy_threads(engine_pid: u32) -> HashSet<(u32, String)> {
    let sample = || {
        let mut pids = js_workers(engine_pid);
        pids.push(engine_pid);
        pids.into_iter()
            .flat_map(runnable_threads)
            .collect::<HashSet<_>>()
    };
    let mut busy = sample();
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(25)).await;
        let now = sample();
        busy.retain(|thread| now.contains(thread));
    }
    busy
}

fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |tasks| tasks.count())
}

async fn interrupt_ignoring_code_stops(mode: Mode) {
    let engine = Engine::start(mode).await;
    let pid = engine.pid();
    for _ in 0..3 {
        run_code(&engine, "javascript", "return 1", json!({})).await;
    }
    let (threads_before, memory_before) = (threads(pid), engine.rss());
    for source in IGNORE_THE_INTERRUPT {
        let workers = js_workers(pid);
        let (execution, took) =
            run_code(&engine, "javascript", source, json!({"wall": "1s"})).await;
        let error = node(&execution, "code")["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(error.starts_with("timeout:"), "{source}: {error}");
        assert!(took <= Duration::from_secs(3), "{source} took {took:?}");
        // Nothing of it keeps running: its process is gone, and neither
        // the engine nor a worker has a thread still busy.
        common::eventually(
            &format!("nothing of `{source}` runs on"),
            Duration::from_secs(20),
            || async {
                let left = busy_threads(pid).await;
                let killed_gone = workers.iter().all(|&worker| process(worker).is_none());
                (left.is_empty() && killed_gone).then_some(())
            },
        )
        .await;
        let (execution, _) = run_code(&engine, "javascript", "return 2", json!({})).await;
        assert_eq!(node(&execution, "code")["output"], json!(2));
        let workers = js_workers(pid);
        assert_eq!(workers.len(), 1, "one worker for the tenant: {workers:?}");
    }
    assert!(
        threads(pid) <= threads_before + 2,
        "the engine went from {threads_before} threads to {}",
        threads(pid)
    );
    assert!(
        engine.rss() <= memory_before + (64 << 20),
        "the engine grew from {} MiB to {} MiB",
        memory_before >> 20,
        engine.rss() >> 20
    );
}
both_modes!(
    javascript_that_ignores_the_interrupt_is_stopped_with_its_process,
    interrupt_ignoring_code_stops
);

async fn other_tenants_run_on_while_a_worker_is_killed(mode: Mode) {
    let engine = Engine::start(mode).await;
    let key = engine.create_tenant("bystander").await;
    let quiet = engine
        .deploy_as(
            &key,
            code_workflow(
                "quiet",
                "javascript",
                "return input.trigger.body.n * 2;",
                json!({}),
            ),
        )
        .await;
    let noisy = engine
        .deploy(code_workflow(
            "noisy",
            "javascript",
            IGNORE_THE_INTERRUPT[0],
            json!({"wall": "1s"}),
        ))
        .await;
    let mut flood = Vec::new();
    for _ in 0..3 {
        flood.push(engine.start_execution(&noisy, json!({})).await);
    }
    // Until the last of the noisy calls has had its worker killed, each of
    // the other tenant's calls succeeds.
    let started = Instant::now();
    let mut quiet_runs = 0;
    loop {
        let mut finished = 0;
        for id in &flood {
            let status = engine.execution(id).await["status"].clone();
            finished += usize::from(status == "failed" || status == "succeeded");
        }
        if finished == flood.len() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the flood hangs"
        );
        let (status, body) = engine
            .request_as(
                &key,
                Method::POST,
                &format!("/v1/workflows/{quiet}/executions?wait=true"),
                Some(json!({"n": quiet_runs})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "succeeded", "{body}");
        assert_eq!(body["output"], quiet_runs * 2, "{body}");
        quiet_runs += 1;
    }
    assert!(quiet_runs > 0);
    for id in flood {
        let execution = engine.finished(&id).await;
        let error = node(&execution, "code")["error"]
            .as_str()
            .unwrap_or_default();
        assert!(error.starts_with("timeout:"), "{execution}");
    }
}
both_modes!(
    other_tenants_code_runs_on_while_a_worker_is_killed,
    other_tenants_run_on_while_a_worker_is_killed
);

async fn a_killed_worker_fails_only_its_call(mode: Mode) {
    let engine = Engine::start(mode).await;
    let workflow = engine
        .deploy(code_workflow(
            "spin",
            "javascript",
            "while (true) {}",
            json!({"wall": "20s"}),
        ))
        .await;
    let id = engine.start_execution(&workflow, json!({})).await;
    let pid = engine.pid();
    let worker = common::eventually(
        "the loop runs in a worker",
        Duration::from_secs(20),
        || async {
            js_workers(pid)
                .into_iter()
                .find(|&worker| tree_ticks(worker) > 10)
        },
    )
    .await;
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &worker.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let execution = engine.finished(&id).await;
    let error = node(&execution, "code")["error"]
        .as_str()
        .unwrap_or_default();
    assert!(error.starts_with("crashed:"), "{execution}");
    let (execution, took) = run_code(&engine, "javascript", "return 3", json!({})).await;
    assert_eq!(node(&execution, "code")["output"], json!(3));
    assert!(took < Duration::from_secs(5), "{took:?}");
}
both_modes!(
    a_killed_js_worker_fails_only_its_call,
    a_killed_worker_fails_only_its_call
);

/// A code node that runs out of time runs once under the default policy
/// (running it again would loop and be billed again) and as often as its
/// own `retry` asks.
async fn timed_out_code_is_retried_only_when_asked(mode: Mode) {
    let engine = Engine::start(mode).await;
    let endless = "while (true) {}";
    let mut default_policy = code_workflow("endless", "javascript", endless, json!({"wall": "1s"}));
    default_policy["nodes"][1]
        .as_object_mut()
        .unwrap()
        .remove("retry");
    let workflow = engine.deploy(default_policy).await;
    let id = engine.start_execution(&workflow, json!({})).await;
    let execution = engine.finished(&id).await;
    let step = node(&execution, "code");
    assert_eq!(execution["status"], "failed", "{execution:#}");
    assert!(
        step["error"]
            .as_str()
            .unwrap_or_default()
            .starts_with("timeout:"),
        "{step:#}"
    );
    assert_eq!(step["attempts"], 1, "{step:#}");

    let mut asked = code_workflow(
        "endless-retried",
        "javascript",
        endless,
        json!({"wall": "1s"}),
    );
    asked["nodes"][1]["retry"] = json!({"max_attempts": 2, "initial_backoff": "10ms"});
    let workflow = engine.deploy(asked).await;
    let id = engine.start_execution(&workflow, json!({})).await;
    let execution = engine.finished(&id).await;
    assert_eq!(node(&execution, "code")["attempts"], 2, "{execution:#}");
}
both_modes!(
    timed_out_code_is_retried_only_when_asked_for,
    timed_out_code_is_retried_only_when_asked
);
