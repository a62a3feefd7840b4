//! The binary's commands: help, validate, migrate, and the first start.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

fn flowmesh() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowmesh"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd
}

#[test]
fn help_lists_every_setting() {
    let out = flowmesh().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--data-dir",
        "--nats-url",
        "--database-url",
        "FLOWMESH_LISTEN",
        "FLOWMESH_DATA_DIR",
        "DATABASE_URL",
    ] {
        assert!(text.contains(flag), "{flag} missing from --help");
    }
}

#[test]
fn validate_accepts_the_example_and_locates_problems() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/examples/signup.json");
    let ok = flowmesh().arg("validate").arg(example).output().unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    let doc = json!({"name": "bad", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "call", "type": "action", "kind": "http_request", "config": {}}
    ], "edges": [{"from": "start", "to": "call"}]});
    std::fs::write(&bad, doc.to_string()).unwrap();
    let out = flowmesh().arg("validate").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("nodes[1].config.url"));

    let missing = flowmesh()
        .arg("validate")
        .arg(dir.path().join("absent.json"))
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
}

#[test]
fn migrate_prepares_an_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let out = flowmesh()
        .arg("migrate")
        .env("FLOWMESH_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("flowmesh.db").exists());
}

#[test]
fn nats_without_a_database_is_refused_with_what_to_add() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = flowmesh()
        .args(["--nats-url", "nats://127.0.0.1:4222"])
        .env("FLOWMESH_LISTEN", "127.0.0.1:0")
        .env("FLOWMESH_DATA_DIR", dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("it started instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("--database-url postgres://"), "{stderr}");
    assert!(
        !dir.path().join("flowmesh.db").exists(),
        "no SQLite store was made"
    );
}

#[tokio::test]
async fn the_first_start_prints_an_admin_key_that_works() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = flowmesh()
        .env("FLOWMESH_LISTEN", "127.0.0.1:0")
        .env("FLOWMESH_DATA_DIR", dir.path())
        .env("FLOWMESH_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut key = None;
    let mut base = None;
    while base.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("output from flowmesh");
        if let Some(k) = line.split("admin API key: ").nth(1) {
            key = Some(k.trim().to_owned());
        }
        if let Some(addr) = line.strip_prefix("listening on ") {
            base = Some(addr.trim().to_owned());
        }
    }
    let key = key.expect("the generated key is printed before the server listens");
    let client = reqwest::Client::new();
    let resp = client
        .get(format!("{}/v1/workflows", base.unwrap()))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::OK);
    let _ = child.kill();
    let _ = child.wait();
}
