//! The poison pill: an execution whose in-process node is running each time
//! the engine dies is resumed once, and failed at the second death within
//! ten minutes instead of taking every later engine down with it. An
//! execution that was only calling out when the engine died is untouched.

mod common;

use std::time::Duration;

use common::stub::StubServer;
use common::{Engine, Mode, code_workflow, eventually, node};
use serde_json::{Value, json};

/// Sandbox actors alive in the engine: one exists while a code node of the
/// tenant runs (or ran lately) in this process.
async fn sandboxes(engine: &Engine) -> f64 {
    let text = engine.metrics().await.text().await.expect("metrics text");
    text.lines()
        .filter(|l| l.starts_with("flowmesh_actors{") && l.contains("kind=\"sandbox\""))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// Waits until this engine process runs the spinning code node and the
/// healthy execution's outside call number `calls` is in flight.
async fn both_in_flight(engine: &Engine, stub: &StubServer, calls: usize) {
    eventually(
        "the code node runs here",
        Duration::from_secs(30),
        || async { (sandboxes(engine).await >= 1.0).then_some(()) },
    )
    .await;
    eventually(
        "the outside call is in flight",
        Duration::from_secs(30),
        || {
            let seen = stub.hits("/slow/").len();
            async move { (seen >= calls).then_some(()) }
        },
    )
    .await;
}

/// Code that runs in the engine until its limit: the node is running
/// whenever the engine is killed.
const SPIN: &str = "while (true) {}";

fn status(execution: &Value) -> &str {
    execution["status"].as_str().unwrap_or_default()
}

async fn two_deaths_fail_the_execution_and_spare_the_others(mode: Mode) {
    let stub = StubServer::start().await;
    let mut engine = Engine::start(mode).await;
    let limits = json!({"wall": "30s"});
    let spin = code_workflow("spin", "javascript", SPIN, limits);
    let spin = engine.deploy(spin).await;
    let calls = engine
        .deploy(json!({"name": "calls", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "call", "type": "action", "kind": "http_request",
             "config": {"url": stub.url("/slow/3000")}},
            {"id": "pause", "type": "action", "kind": "wait", "config": {"duration": "1s"}}
        ], "edges": [{"from": "start", "to": "call"}, {"from": "call", "to": "pause"}]}))
        .await;
    let poisoned = engine.start_execution(&spin, json!({})).await;
    let healthy = engine.start_execution(&calls, json!({})).await;

    both_in_flight(&engine, &stub, 1).await;
    engine.kill_and_restart().await;
    // The first death is resumed: the node runs again.
    both_in_flight(&engine, &stub, 2).await;
    assert_eq!(status(&engine.execution(&poisoned).await), "running");
    engine.kill_and_restart().await;

    // The second death within ten minutes fails it, with the reason.
    let failed = engine.finished(&poisoned).await;
    assert_eq!(status(&failed), "failed", "{failed:#}");
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("stopped twice within 10 minutes while node `code` was running"),
        "{error}"
    );
    let code = node(&failed, "code");
    assert_eq!(code["status"], "failed", "{failed:#}");
    assert_eq!(code["error"].as_str(), Some(error), "{failed:#}");

    // The execution that was only calling out is not failed by the rule.
    let done = engine.finished(&healthy).await;
    assert_eq!(status(&done), "succeeded", "{done:#}");
    assert_eq!(node(&done, "pause")["status"], "succeeded", "{done:#}");
    // And the poisoned node was not run a third time.
    assert_eq!(sandboxes(&engine).await, 0.0, "no code node ran here");
}

both_modes!(
    poison_pill,
    two_deaths_fail_the_execution_and_spare_the_others
);
