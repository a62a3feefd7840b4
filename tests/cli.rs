//! The binary's commands: help, validate, migrate, and the first start.

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

/// The help of `args`.
fn help(args: &[&str]) -> String {
    let out = flowmesh().args(args).arg("--help").output().unwrap();
    assert!(out.status.success(), "{args:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn each_command_lists_only_the_settings_it_uses() {
    let server_only = [
        "--listen",
        "--role",
        "--nats-url",
        "--lease",
        "--registration",
        "--tenant-max-schedules",
        "--python",
        "--sandbox-tenant-maxima",
        "--metrics-token",
        "FLOWMESH_OPS_LISTEN",
    ];
    let commands: [(&[&str], &[&str]); 4] = [
        (&["validate"], &["<FILE>", "--sandbox-maxima"]),
        (
            &["migrate"],
            &["--data-dir", "--database-url", "--log-format"],
        ),
        (
            &["secrets", "rotate"],
            &[
                "--data-dir",
                "--database-url",
                "--secrets-key",
                "--new-secrets-key",
            ],
        ),
        (
            &["serve"],
            &[
                "--listen",
                "--role",
                "--registration",
                "--sandbox-maxima",
                "--data-dir",
            ],
        ),
    ];
    for (command, uses) in commands {
        let text = help(command);
        for flag in uses {
            assert!(
                text.contains(flag),
                "{flag} missing from {command:?} --help"
            );
        }
        if command != ["serve"] {
            for flag in server_only {
                assert!(!text.contains(flag), "{command:?} --help lists {flag}");
            }
        }
    }
    let validate = help(&["validate"]);
    for flag in [
        "--data-dir",
        "--database-url",
        "--log-format",
        "--secrets-key",
    ] {
        assert!(!validate.contains(flag), "validate --help lists {flag}");
    }
    // A setting is given after its command: one before it is refused, not
    // silently left unused.
    let out = flowmesh()
        .args(["--data-dir", "elsewhere", "migrate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = flowmesh()
        .args(["migrate", "--listen", "127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
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
