//! The data directory is the engine's alone, and the key that seals
//! tenants' secrets can be replaced: `flowmesh secrets rotate`.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::stub::StubServer;
use common::{Engine, Mode, SECRETS_KEY};
use reqwest::Method;
use serde_json::{Value, json};

fn mode_of(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Every file and directory under `dir`, `dir` included.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut all = vec![dir.to_owned()];
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            all.extend(tree(&path));
        } else {
            all.push(path);
        }
    }
    all
}

/// A data directory made readable by others (by an earlier version, or by
/// hand) is tightened at start: the directory `0700`, every file `0600`,
/// SQLite's journal files and the secrets key included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("exports")).unwrap();
    // An empty file is an empty SQLite database.
    std::fs::write(data.join("flowmesh.db"), b"").unwrap();
    std::fs::write(data.join("notes.txt"), b"kept").unwrap();
    std::fs::write(data.join("exports/old.json"), b"{}").unwrap();
    for path in tree(&data) {
        set_mode(&path, if path.is_dir() { 0o755 } else { 0o644 });
    }
    let data_env = data.display().to_string();
    let engine = Engine::start_with(
        Mode::Embedded,
        &[
            ("FLOWMESH_DATA_DIR", &data_env),
            ("FLOWMESH_SECRETS_KEY", ""),
        ],
    )
    .await;
    engine.put_secret("api_token", "sk-private-42").await;

    let names: Vec<String> = tree(&data)
        .iter()
        .map(|p| p.strip_prefix(&data).unwrap().display().to_string())
        .collect();
    for expected in [
        "flowmesh.db",
        "flowmesh.db-wal",
        "flowmesh.db-shm",
        "secrets.key",
        "notes.txt",
        "exports/old.json",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    for path in tree(&data) {
        let want = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(
            mode_of(&path),
            want,
            "{} is {:o}",
            path.display(),
            mode_of(&path)
        );
    }
    let log = engine.log_text();
    assert!(log.contains("tightened"), "the changes are logged: {log}");
    assert!(!log.contains("sk-private-42"));
}

const NEW_KEY: &str = "cm90YXRlZC1zZWNyZXRzLWtleS0wMTIzNDU2Nzg5YWI=";

/// `flowmesh secrets rotate` with the engine's settings plus `env`.
fn rotate(engine: &Engine, env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowmesh"));
    cmd.args(["secrets", "rotate"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    if let Some(db) = &engine.database {
        cmd.env("DATABASE_URL", format!("{}/{db}", engine.servers.postgres));
    }
    cmd.envs(env.iter().copied())
        .output()
        .expect("flowmesh runs")
}

/// Secrets of two tenants survive a rotation of the key: after a restart
/// with the new key they still reach actions, and the old key no longer
/// opens them. Embedded, the key file is replaced and the old one kept
/// beside it; distributed, both keys are given.
async fn rotation(mode: Mode) {
    let stub = StubServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").display().to_string();
    let env: Vec<(&str, &str)> = match mode {
        Mode::Embedded => vec![("FLOWMESH_DATA_DIR", &data), ("FLOWMESH_SECRETS_KEY", "")],
        Mode::Distributed => vec![],
    };
    let mut engine = Engine::start_with(mode, &env).await;
    let mut tenants = Vec::new();
    for name in ["north", "south"] {
        let key = engine.create_tenant(name).await;
        let value = format!("sk-{name}-7f3e21");
        let (status, body) = engine
            .request_as(
                &key,
                Method::PUT,
                "/v1/secrets/api_token",
                Some(json!({"value": value})),
            )
            .await;
        assert!(status.is_success(), "{body}");
        let workflow = engine.deploy_as(&key, common::secret_workflow(&stub)).await;
        tenants.push((key, workflow, value));
    }
    let check = |done: &Value, value: &str| {
        assert_eq!(done["status"], "succeeded", "{done:#}");
        let hits = stub.hits("/ok/secret");
        assert_eq!(
            hits.last().unwrap().authorization.as_deref(),
            Some(format!("Bearer {value}").as_str())
        );
    };
    for (key, workflow, value) in &tenants {
        check(&engine.run_as(key, workflow, json!({})).await, value);
    }
    assert!(engine.terminate().await.success());

    let key_file = Path::new(&data).join("secrets.key");
    let (old_key, out) = match mode {
        Mode::Embedded => {
            let old = std::fs::read_to_string(&key_file).unwrap();
            let out = rotate(
                &engine,
                &[("FLOWMESH_DATA_DIR", &data), ("FLOWMESH_SECRETS_KEY", "")],
            );
            (old, out)
        }
        Mode::Distributed => {
            let out = rotate(
                &engine,
                &[
                    ("FLOWMESH_SECRETS_KEY", SECRETS_KEY),
                    ("FLOWMESH_NEW_SECRETS_KEY", NEW_KEY),
                ],
            );
            (SECRETS_KEY.to_owned(), out)
        }
    };
    let said =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("re-sealed 2 secrets"), "{said}");
    match mode {
        Mode::Embedded => {
            let new = std::fs::read_to_string(&key_file).unwrap();
            assert_ne!(new, old_key, "a new key file");
            let backups: Vec<PathBuf> = tree(Path::new(&data))
                .into_iter()
                .filter(|p| p.to_string_lossy().ends_with(".old"))
                .collect();
            assert_eq!(backups.len(), 1, "the old key is kept");
            assert_eq!(std::fs::read_to_string(&backups[0]).unwrap(), old_key);
            assert_eq!(mode_of(&backups[0]), 0o600);
            assert_eq!(mode_of(&key_file), 0o600);
            assert!(!Path::new(&data).join("secrets.key.new").exists());
            assert!(!said.contains(&new) && !said.contains(&old_key));
            engine.start_again().await;
        }
        Mode::Distributed => {
            engine.restart_with("FLOWMESH_SECRETS_KEY", NEW_KEY).await;
        }
    }
    for (key, workflow, value) in &tenants {
        check(&engine.run_as(key, workflow, json!({})).await, value);
        assert!(!said.contains(value.as_str()));
    }
    // Running it again finds nothing left to do (distributed: the same
    // keys; embedded, a rotation from the file makes yet another key).
    if mode == Mode::Distributed {
        engine.terminate().await;
        let again = rotate(
            &engine,
            &[
                ("FLOWMESH_SECRETS_KEY", SECRETS_KEY),
                ("FLOWMESH_NEW_SECRETS_KEY", NEW_KEY),
            ],
        );
        let said = String::from_utf8_lossy(&again.stderr).into_owned();
        assert!(again.status.success(), "{said}");
        assert!(said.contains("re-sealed 0 secrets"), "{said}");
        assert!(said.contains("2 were already"), "{said}");
    }

    // The old key opens nothing any more: a process given it refuses to start.
    let refused = refused_with_key(&engine, old_key.trim(), Path::new(&data)).await;
    assert!(!refused.contains(old_key.trim()), "the key in the message");
    let log = engine.log_text();
    for (_, _, value) in &tenants {
        assert!(!log.contains(value.as_str()), "a secret in the log");
    }
    assert!(!log.contains(NEW_KEY) && !log.contains(old_key.trim()));
}

both_modes!(secrets_survive_a_key_rotation, rotation);

/// Runs `flowmesh serve` on `engine`'s store (embedded: in `data`) with
/// the secrets key `key`, which must be refused; returns what it said.
async fn refused_with_key(engine: &Engine, key: &str, data: &Path) -> String {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_flowmesh"));
    command
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("FLOWMESH_LISTEN", "127.0.0.1:0")
        .env("FLOWMESH_DATA_DIR", data)
        .env("FLOWMESH_SECRETS_KEY", key)
        .kill_on_drop(true);
    if let Some(database) = &engine.database {
        command
            .env(
                "DATABASE_URL",
                format!("{}/{database}", engine.servers.postgres),
            )
            .env("FLOWMESH_NATS_URL", &engine.servers.nats)
            .env("FLOWMESH_BUS_PREFIX", &engine.prefix);
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), command.output())
        .await
        .expect("the process gives up in time")
        .expect("the process runs");
    assert!(!out.status.success(), "a process with another key started");
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        said.contains("FLOWMESH_SECRETS_KEY") && said.contains("does not open"),
        "{said}"
    );
    said
}

/// A process given another secrets key than the one that sealed the
/// secrets in its store refuses to start, saying which setting is wrong,
/// instead of sealing secrets its peers cannot open and failing runs later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_opens_no_stored_secret_is_refused_at_start() {
    let mut engine = Engine::start(Mode::Distributed).await;
    engine.put_secret("api_token", "s3cret").await;
    let other = "b3RoZXItc2VjcmV0cy1rZXktMDEyMzQ1Njc4OWFiY2Q=";
    refused_with_key(&engine, other, engine.data_dir()).await;
    // The right key still starts.
    engine.terminate().await;
    engine.start_again().await;
}
