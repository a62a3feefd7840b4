//! The API against its own OpenAPI description: Schemathesis (from PyPI)
//! runs every check on every route of a running engine (distributed: real
//! NATS JetStream and PostgreSQL). No 5xx, no answer outside the schema, no
//! schema-valid request refused, no invalid one accepted.
//!
//! Schemathesis is found as `FLOWMESH_SCHEMATHESIS`, else `.ci/venv/bin/
//! schemathesis` (what `.ci/run` installs), else `schemathesis` on PATH.
//! A failure shows the seed of its run; `FLOWMESH_CONTRACT_SEED` runs that
//! seed again.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{ADMIN_KEY, Engine, Mode};

fn schemathesis() -> PathBuf {
    if let Ok(path) = std::env::var("FLOWMESH_SCHEMATHESIS") {
        return path.into();
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".ci/venv/bin/schemathesis");
    if venv.exists() {
        return venv;
    }
    "schemathesis".into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_keeps_its_openapi_contract() {
    let engine = Engine::start(Mode::Distributed).await;
    let (status, doc) = engine.get("/openapi.json").await;
    assert!(status.is_success());
    assert_eq!(doc["openapi"], "3.1.0");
    let report = tempfile::tempdir().unwrap();
    let config = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/contract/schemathesis.toml");
    let url = engine.url("/openapi.json");
    let bin = schemathesis();
    // Run where Schemathesis may keep its cache: a scratch directory, not
    // the source tree.
    let scratch = report.path().to_owned();
    let seed = std::env::var("FLOWMESH_CONTRACT_SEED").ok();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(&bin)
            .current_dir(&scratch)
            .arg("--config-file")
            .arg(&config)
            .args(["run", &url, "--checks", "all"])
            .args(["--header", &format!("Authorization: Bearer {ADMIN_KEY}")])
            // Event streams stay open for as long as the client listens.
            .args(["--exclude-path-regex", "/events"])
            .args([
                "--max-examples",
                "40",
                "--request-timeout",
                "10",
                // One worker: Python 3.11 can fail compiling a pattern in
                // two threads at once ("AST constructor recursion depth
                // mismatch"), which would fail a run for nothing the API did.
                "--workers",
                "1",
            ])
            .args(seed.iter().flat_map(|s| ["--seed", s.as_str()]))
            .args(["--report", "junit", "--report-dir"])
            .arg(report.path())
            .env("SCHEMATHESIS_HOOKS", "")
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "running {} ({e}): install it with `pip install schemathesis` or run .ci/run",
                    bin.display()
                )
            })
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    // The failures with their reproductions, and the summary after them.
    let shown = match stdout.find("FAILURES") {
        Some(at) => stdout[stdout[..at].rfind('\n').map_or(0, |n| n + 1)..].to_owned(),
        None => {
            let lines: Vec<&str> = stdout.lines().collect();
            lines[lines.len().saturating_sub(60)..].join("\n")
        }
    };
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{shown}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("Tested:"), "schemathesis ran: {shown}");
    let (status, _) = engine.get("/health").await;
    assert!(status.is_success(), "the engine is still up");
}
