//! The JavaScript sandbox's worker processes, started from the engine
//! binary: calls run in them, code that ignores the interpreter's interrupt
//! is stopped with its process, and a worker that dies fails only its call.

use std::time::{Duration, Instant};

use flowmesh_model::HumanDuration;
use flowmesh_sandbox::{Call, Class, Jail, JailOptions, JsSandbox, JsStart, Limits};
use serde_json::json;

/// Built-ins that run to their end without asking QuickJS's interrupt
/// handler: minutes of CPU each.
const IGNORE_THE_INTERRUPT: &[&str] = &[
    "const a = []; a.length = 4294967295; a.reverse(); return 1;",
    "const a = []; a.length = 4294967295; a.sort(); return 1;",
    "const a = []; a.length = 4294967295; return a.join('').length;",
    "const a = []; a.length = 4294967295; a.fill(0, 0, 1); return a.copyWithin(1, 0).length;",
];

fn sandbox() -> JsSandbox {
    JsSandbox::start(JsStart {
        program: env!("CARGO_BIN_EXE_flowmesh").into(),
        jail: Jail::detect(&JailOptions::default()),
        uid: None,
    })
}

fn call(source: &str, wall_ms: u64) -> Call {
    Call {
        source: source.to_owned(),
        input: json!({"n": 3}).to_string(),
        limits: Limits {
            wall: HumanDuration::from_millis(wall_ms),
            ..Limits::default()
        },
    }
}

/// Whether a process is gone, reaped (not even a zombie is left).
fn gone(pid: u32) -> bool {
    !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

async fn worker_pid(sandbox: &JsSandbox) -> u32 {
    let returned = sandbox.run(call("return input.n * 2;", 2_000)).await;
    assert_eq!(returned.unwrap().output, json!(6));
    sandbox.pid().expect("a worker runs")
}

#[tokio::test]
async fn built_ins_that_ignore_the_interrupt_are_stopped_with_their_process() {
    let sandbox = sandbox();
    for source in IGNORE_THE_INTERRUPT {
        let pid = worker_pid(&sandbox).await;
        let started = Instant::now();
        let failure = sandbox.run(call(source, 500)).await.unwrap_err();
        assert_eq!(failure.class, Class::Timeout, "{source}: {failure:?}");
        assert!(
            started.elapsed() < Duration::from_millis(2_500),
            "{source} took {:?}",
            started.elapsed()
        );
        // Killed and reaped before the call's answer.
        assert!(gone(pid), "{source}: its worker {pid} still exists");
        assert_eq!(sandbox.pid(), None);
        // The next call gets a fresh worker.
        assert_ne!(worker_pid(&sandbox).await, pid);
    }
}

#[tokio::test]
async fn the_limits_hold_in_the_worker_and_it_serves_on_after_each() {
    let sandbox = sandbox();
    let pid = worker_pid(&sandbox).await;
    // Room for the ones stopped by their memory limit on a busy host: the
    // worker runs at a low priority.
    for (source, class, wall_ms) in [
        ("while (true) {}", Class::Timeout, 1_000),
        (
            "const a = []; while (true) { a.push('x'.repeat(1 << 20) + a.length); }",
            Class::Memory,
            20_000,
        ),
        ("const f = () => f(); f();", Class::Memory, 20_000),
        (
            "return 'x'.repeat(2 * 1024 * 1024);",
            Class::OutputTooLarge,
            20_000,
        ),
        ("throw new Error('nope')", Class::Code, 20_000),
        ("return () => 1;", Class::Code, 20_000),
    ] {
        let started = Instant::now();
        let failure = sandbox.run(call(source, wall_ms)).await.unwrap_err();
        assert_eq!(failure.class, class, "{source}: {failure:?}");
        assert!(
            started.elapsed() < Duration::from_millis(wall_ms + 1_000),
            "{source}"
        );
    }
    // The interrupt handler stopped each: the same worker serves on.
    assert_eq!(worker_pid(&sandbox).await, pid);
    for probe in [
        "return typeof process",
        "return typeof require",
        "return typeof std",
        "return typeof os",
        "return [].constructor.constructor('return typeof globalThis.process')()",
    ] {
        let returned = sandbox.run(call(probe, 1_000)).await.unwrap();
        assert_eq!(returned.output, json!("undefined"), "{probe}");
    }
    // Logs and errors are bounded inside the worker, within its answer.
    let noisy = sandbox
        .run(call(
            "for (let i = 0; i < 300; i++) console.log('\\u0001'.repeat(10000)); return 1;",
            20_000,
        ))
        .await
        .unwrap();
    assert_eq!(noisy.logs.len(), 201);
    let failure = sandbox
        .run(call("throw new Error('x'.repeat(10000000));", 20_000))
        .await
        .unwrap_err();
    assert_eq!(failure.class, Class::Code);
    assert!(failure.message.len() < 10_000);
    assert_eq!(worker_pid(&sandbox).await, pid);
}

#[tokio::test]
async fn a_worker_killed_from_outside_fails_only_its_call() {
    let sandbox = sandbox();
    let pid = worker_pid(&sandbox).await;
    let spinning = tokio::spawn({
        let sandbox = sandbox.clone();
        async move { sandbox.run(call("while (true) {}", 20_000)).await }
    });
    // Once the loop runs in it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while cpu_ticks(pid) < 5 {
        assert!(Instant::now() < deadline, "the loop does not run in {pid}");
        tokio::task::yield_now().await;
    }
    kill(pid);
    let failure = tokio::time::timeout(Duration::from_secs(5), spinning)
        .await
        .expect("the call ends with its worker")
        .unwrap()
        .unwrap_err();
    assert_eq!(failure.class, Class::Crashed, "{failure:?}");
    assert!(failure.message.contains("signal 9"), "{failure:?}");
    assert!(gone(pid));
    // Killed between calls: the next call gets a fresh worker, and succeeds.
    let pid = worker_pid(&sandbox).await;
    kill(pid);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !zombie(pid) {
        assert!(Instant::now() < deadline, "{pid} did not die");
        tokio::task::yield_now().await;
    }
    assert_ne!(worker_pid(&sandbox).await, pid);
    assert!(gone(pid));
}

/// CPU time a process has used, in clock ticks.
/// CPU time of a process and its descendants (the worker runs inside its
/// jail, a child of bubblewrap), in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    own_cpu_ticks(pid)
        + children
            .split_whitespace()
            .filter_map(|c| c.parse().ok())
            .map(cpu_ticks)
            .sum::<u64>()
}

fn own_cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    fields.get(11..13).map_or(0, |times| {
        times.iter().filter_map(|t| t.parse::<u64>().ok()).sum()
    })
}

fn kill(pid: u32) {
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
}

/// Whether a process has died, all its threads, and waits to be reaped.
fn zombie(pid: u32) -> bool {
    let dead = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    });
    let threads = std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |tasks| tasks.count());
    dead && threads == 1
}

#[tokio::test]
async fn a_call_given_up_by_its_caller_is_killed_before_the_next_starts() {
    let sandbox = sandbox();
    let pid = worker_pid(&sandbox).await;
    let gave_up = tokio::time::timeout(
        Duration::from_millis(100),
        sandbox.run(call(IGNORE_THE_INTERRUPT[0], 1_000)),
    )
    .await;
    assert!(gave_up.is_err());
    // Waits for the abandoned call's end, its process killed and reaped.
    let next = worker_pid(&sandbox).await;
    assert!(gone(pid));
    assert_ne!(next, pid);
}
