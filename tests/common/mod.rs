//! Test harness: runs the real `flowmesh` binary in either mode and talks to
//! it over HTTP, with a local HTTP server standing in for outside APIs.

#![allow(dead_code)]

pub mod llm;
pub mod load;
pub mod servers;
pub mod sse;
pub mod stub;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub const NATS_URL: &str = "nats://127.0.0.1:4222";
/// The PostgreSQL server of distributed tests, without a database name.
pub const POSTGRES_SERVER: &str = "postgres://postgres@127.0.0.1:5432";
pub const ADMIN_KEY: &str = "fmk_test_admin_key_0123456789";
/// The token test engines serve `GET /metrics` with.
pub const METRICS_TOKEN: &str = "test-metrics-token-0123456789";
/// 32 bytes in base64: the key test engines seal secrets with.
pub const SECRETS_KEY: &str = "dGVzdC1zZWNyZXRzLWtleS0wMTIzNDU2Nzg5YWJjZGU=";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Embedded,
    Distributed,
}

/// One engine process and what it needs; cleaned up on drop.
pub struct Engine {
    pub mode: Mode,
    child: Option<Child>,
    /// The API's base URL (a worker's: its operations listener's).
    pub base: String,
    /// The base URL of the operations listener, when there is one.
    pub ops: Option<String>,
    data_dir: tempfile::TempDir,
    pub database: Option<String>,
    pub prefix: String,
    pub node_id: String,
    /// The servers of distributed mode.
    pub servers: Servers,
    http: reqwest::Client,
    extra_env: Vec<(String, String)>,
    /// A peer shares the database and bus of the engine it was started
    /// from, which cleans them up.
    peer: bool,
    /// The uid the engine runs as, if not the test's own.
    run_as: Option<u32>,
    /// A file the engine inherits as descriptor 9, as one started by a
    /// careless launcher would.
    inherited: Option<std::fs::File>,
}

/// Where the PostgreSQL and NATS servers of distributed mode are.
#[derive(Clone, Debug)]
pub struct Servers {
    /// A PostgreSQL URL without the database name.
    pub postgres: String,
    pub nats: String,
}

impl Default for Servers {
    fn default() -> Self {
        Self {
            postgres: POSTGRES_SERVER.to_owned(),
            nats: NATS_URL.to_owned(),
        }
    }
}

fn unique(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// A database of its own for a test that runs the binary by hand; dropped
/// with it.
pub struct TestDatabase {
    pub name: String,
    servers: Servers,
}

impl TestDatabase {
    pub async fn create(servers: &Servers) -> TestDatabase {
        TestDatabase {
            name: create_database(servers).await,
            servers: servers.clone(),
        }
    }

    pub fn url(&self) -> String {
        format!("{}/{}", self.servers.postgres, self.name)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (name, servers) = (self.name.clone(), self.servers.clone());
        let _ = std::thread::spawn(move || block_on(drop_database(&servers, &name))).join();
    }
}

/// Runs a future to its end on a runtime of its own (in a drop).
fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

async fn drop_database(servers: &Servers, name: &str) {
    use sqlx::Connection;
    if let Ok(mut admin) =
        sqlx::PgConnection::connect(&format!("{}/postgres", servers.postgres)).await
    {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await;
    }
}

async fn create_database(servers: &Servers) -> String {
    use sqlx::Connection;
    let name = unique("flowmesh_it_");
    let mut admin = sqlx::PgConnection::connect(&format!("{}/postgres", servers.postgres))
        .await
        .expect("PostgreSQL must be reachable for distributed tests");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create test database");
    name
}

impl Engine {
    pub async fn start(mode: Mode) -> Engine {
        Self::start_with(mode, &[]).await
    }

    /// Starts an engine with extra environment variables.
    pub async fn start_with(mode: Mode, env: &[(&str, &str)]) -> Engine {
        Self::start_on(mode, Servers::default(), env).await
    }

    /// Starts an engine on the given servers (distributed mode).
    pub async fn start_on(mode: Mode, servers: Servers, env: &[(&str, &str)]) -> Engine {
        let database = match mode {
            Mode::Embedded => None,
            Mode::Distributed => Some(create_database(&servers).await),
        };
        let mut engine = Engine {
            mode,
            child: None,
            base: String::new(),
            ops: None,
            data_dir: tempfile::tempdir().expect("temp dir"),
            database,
            prefix: unique("it"),
            node_id: unique("node-"),
            servers,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
            extra_env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            peer: false,
            run_as: None,
            inherited: None,
        };
        engine.spawn();
        engine.wait_ready().await;
        engine
    }

    /// Another process on the same database and bus (distributed mode),
    /// with a node id of its own.
    pub async fn peer(&self) -> Engine {
        self.peer_with(&[]).await
    }

    /// A peer with environment variables of its own (added or replaced;
    /// an empty value leaves the variable unset).
    pub async fn peer_with(&self, env: &[(&str, &str)]) -> Engine {
        assert_eq!(self.mode, Mode::Distributed, "peers share a database");
        let mut extra_env = self.extra_env.clone();
        for (name, value) in env {
            extra_env.retain(|(k, _)| k != name);
            if !value.is_empty() {
                extra_env.push((name.to_string(), value.to_string()));
            }
        }
        let mut engine = Engine {
            mode: self.mode,
            child: None,
            base: String::new(),
            ops: None,
            data_dir: tempfile::tempdir().expect("temp dir"),
            database: self.database.clone(),
            prefix: self.prefix.clone(),
            node_id: unique("node-"),
            servers: self.servers.clone(),
            http: self.http.clone(),
            extra_env,
            peer: true,
            run_as: self.run_as,
            inherited: None,
        };
        engine.spawn();
        engine.wait_ready().await;
        engine
    }

    /// An embedded engine, not started yet, with what a test sets.
    fn embedded(run_as: Option<u32>, inherited: Option<std::fs::File>) -> Engine {
        Engine {
            mode: Mode::Embedded,
            child: None,
            base: String::new(),
            ops: None,
            data_dir: tempfile::tempdir().expect("temp dir"),
            database: None,
            prefix: unique("it"),
            node_id: unique("node-"),
            servers: Servers::default(),
            http: reqwest::Client::new(),
            extra_env: Vec::new(),
            peer: false,
            run_as,
            inherited,
        }
    }

    /// Starts an embedded engine as an unprivileged user (`setpriv`; the
    /// test runs as root), with its data directory made that user's.
    pub async fn start_as_user(uid: u32) -> Engine {
        let mut engine = Self::embedded(Some(uid), None);
        std::os::unix::fs::chown(engine.data_dir.path(), Some(uid), Some(uid)).expect("chown");
        engine.spawn();
        engine.wait_ready().await;
        engine
    }

    /// An embedded engine that inherits `file` as its descriptor 9.
    pub async fn start_inheriting(file: std::fs::File) -> Engine {
        let mut engine = Self::embedded(None, Some(file));
        engine.spawn();
        engine.wait_ready().await;
        engine
    }

    /// The engine's data directory (the SQLite store in embedded mode).
    pub fn data_dir(&self) -> &std::path::Path {
        self.data_dir.path()
    }

    fn log_path(&self) -> std::path::PathBuf {
        self.data_dir.path().join("engine.log")
    }

    /// Everything the engine wrote to its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Kills the process without warning (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn spawn(&mut self) {
        let mut cmd = match self.run_as {
            None => Command::new(env!("CARGO_BIN_EXE_flowmesh")),
            Some(uid) => {
                let mut cmd = Command::new("setpriv");
                cmd.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={uid}"))
                    .args(["--clear-groups", "--", env!("CARGO_BIN_EXE_flowmesh")]);
                cmd
            }
        };
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("FLOWMESH_LISTEN", "127.0.0.1:0")
            .env("FLOWMESH_DATA_DIR", self.data_dir.path())
            .env("FLOWMESH_ADMIN_KEY", ADMIN_KEY)
            .env("FLOWMESH_SECRETS_KEY", SECRETS_KEY)
            .env("FLOWMESH_HTTP_ALLOW_HOSTS", "127.0.0.1")
            .env("FLOWMESH_NODE_ID", &self.node_id)
            .env("FLOWMESH_BUS_PREFIX", &self.prefix)
            .env("FLOWMESH_SHUTDOWN_GRACE", "2s")
            .env("FLOWMESH_METRICS_TOKEN", METRICS_TOKEN)
            // Tests register many tenants from one address; a test of the
            // limit sets its own.
            .env("FLOWMESH_REGISTRATIONS_PER_ADDRESS", "0")
            .env(
                "FLOWMESH_LOG",
                std::env::var("FLOWMESH_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(db) = &self.database {
            cmd.env("DATABASE_URL", format!("{}/{db}", self.servers.postgres));
            cmd.env("FLOWMESH_NATS_URL", &self.servers.nats);
        }
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        if let Some(file) = &self.inherited {
            use command_fds::{CommandFdExt, FdMapping};
            cmd.fd_mappings(vec![FdMapping {
                parent_fd: file.try_clone().expect("the inherited file").into(),
                child_fd: 9,
            }])
            .expect("descriptor 9");
        }
        // The engine's log goes to the test's stderr and to a file the test
        // can read (`log_text`), private like everything in a data dir.
        let log_path = self.log_path();
        let file = std::os::unix::fs::OpenOptionsExt::mode(
            std::fs::OpenOptions::new().create(true).append(true),
            0o600,
        )
        .open(&log_path)
        .ok();
        let mut child = cmd.spawn().expect("spawn flowmesh");
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            use std::io::Write;
            let mut file = file;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{line}");
                if let Some(f) = file.as_mut() {
                    let _ = writeln!(f, "{line}");
                }
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send((false, addr.trim().to_owned()));
                } else if let Some(addr) = line.strip_prefix("ops listening on ") {
                    let _ = tx.send((true, addr.trim().to_owned()));
                }
            }
        });
        let worker = self.env_value("FLOWMESH_ROLE") == Some("worker");
        let wants_ops = worker || self.env_value("FLOWMESH_OPS_LISTEN").is_some();
        let (mut api, mut ops) = (None, None);
        while (!worker && api.is_none()) || (wants_ops && ops.is_none()) {
            let (is_ops, addr) = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("flowmesh did not report its addresses");
            *(if is_ops { &mut ops } else { &mut api }) = Some(addr);
        }
        self.base = api.or(ops.clone()).expect("an address");
        self.ops = ops;
        self.child = Some(child);
    }

    fn env_value(&self, name: &str) -> Option<&str> {
        self.extra_env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    async fn wait_ready(&self) {
        let url = format!("{}/ready", self.ops.as_deref().unwrap_or(&self.base));
        eventually("engine ready", Duration::from_secs(30), || async {
            let r = self.http.get(&url).send().await.ok()?;
            (r.status() == StatusCode::OK).then_some(())
        })
        .await;
    }

    /// Kills the process without warning (SIGKILL) and starts it again with the same settings.
    pub async fn kill_and_restart(&mut self) {
        self.kill();
        self.spawn();
        self.wait_ready().await;
    }

    /// Waits until the process exits by itself (an armed crash point).
    pub async fn exited(&mut self) {
        let child = self.child.as_mut().expect("engine running");
        eventually("the process exits", Duration::from_secs(60), || {
            let status = child.try_wait().ok().flatten();
            async move { status.map(|_| ()) }
        })
        .await;
        self.child = None;
    }

    /// Starts the process again without the environment variable `name`.
    pub async fn restart_without(&mut self, name: &str) {
        self.kill();
        self.extra_env.retain(|(k, _)| k != name);
        self.spawn();
        self.wait_ready().await;
    }

    /// Starts the process again (killing it if it runs) with one
    /// environment variable set to `value`.
    pub async fn restart_with(&mut self, name: &str, value: &str) {
        self.kill();
        self.extra_env.retain(|(k, _)| k != name);
        self.extra_env.push((name.to_owned(), value.to_owned()));
        self.spawn();
        self.wait_ready().await;
    }

    /// Sends SIGTERM and waits for a graceful exit; returns the exit status.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("engine running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        eventually("graceful exit", Duration::from_secs(30), || {
            let status = child.try_wait().ok().flatten();
            async move { status }
        })
        .await
    }

    /// Starts the process again after `terminate`.
    pub async fn start_again(&mut self) {
        self.spawn();
        self.wait_ready().await;
    }

    /// The engine's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("engine running").id()
    }

    /// Resident memory of the engine process, in bytes.
    pub fn rss(&self) -> u64 {
        self.status_bytes("VmRSS:")
    }

    /// The most memory the engine process has held, in bytes.
    pub fn peak_rss(&self) -> u64 {
        self.status_bytes("VmHWM:")
    }

    /// A size in the engine's `/proc/{pid}/status`, in bytes.
    fn status_bytes(&self, field: &str) -> u64 {
        let pid = self.child.as_ref().expect("engine running").id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .expect(field)
            * 1024
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.request_as(ADMIN_KEY, method, path, body).await
    }

    /// A request with another tenant's API key.
    pub async fn request_as(
        &self,
        key: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(key);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.request(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.request(Method::POST, path, Some(body)).await
    }

    /// A POST without credentials (registration, login, invitations).
    pub async fn post_public(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("post");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// The metrics text of `GET /metrics`.
    pub async fn metrics_text(&self) -> String {
        let resp = self.metrics().await;
        assert!(resp.status().is_success(), "{}", resp.status());
        resp.text().await.expect("metrics text")
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.http
    }

    /// Creates and publishes a workflow; returns its id.
    pub async fn deploy(&self, document: Value) -> String {
        self.deploy_as(ADMIN_KEY, document).await
    }

    /// Creates and publishes a workflow of the tenant of `key`.
    pub async fn deploy_as(&self, key: &str, document: Value) -> String {
        let (status, body) = self
            .request_as(key, Method::POST, "/v1/workflows", Some(document))
            .await;
        assert_eq!(status, StatusCode::CREATED, "create: {body}");
        let id = body["id"].as_str().expect("id").to_owned();
        let (status, body) = self
            .request_as(
                key,
                Method::POST,
                &format!("/v1/workflows/{id}/publish"),
                Some(json!({})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "publish: {body}");
        id
    }

    /// Starts a workflow as the tenant of `key` and polls until the
    /// execution ends; returns it.
    pub async fn run_as(&self, key: &str, workflow: &str, input: Value) -> Value {
        let (status, body) = self
            .request_as(
                key,
                Method::POST,
                &format!("/v1/workflows/{workflow}/executions"),
                Some(input),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let id = body["execution_id"]
            .as_str()
            .expect("execution_id")
            .to_owned();
        eventually("the execution ends", Duration::from_secs(30), || async {
            let (_, e) = self
                .request_as(key, Method::GET, &format!("/v1/executions/{id}"), None)
                .await;
            (!matches!(e["status"].as_str(), Some("queued" | "running"))).then_some(e)
        })
        .await
    }

    /// Another tenant, registered through the API; returns its owner's
    /// session token.
    pub async fn create_tenant(&self, name: &str) -> String {
        let body = serde_json::json!({
            "email": format!("owner@{}.example.com", name.replace(' ', "-")),
            "password": "a long enough password",
            "tenant": name,
        });
        let resp = self
            .http
            .post(self.url("/v1/auth/register"))
            .json(&body)
            .send()
            .await
            .expect("register");
        assert_eq!(resp.status(), StatusCode::ACCEPTED, "register {name}");
        let login = serde_json::json!({"email": body["email"], "password": body["password"]});
        let resp = self
            .http
            .post(self.url("/v1/auth/login"))
            .json(&login)
            .send()
            .await
            .expect("login");
        assert_eq!(resp.status(), StatusCode::OK, "sign in to {name}");
        let session: Value = resp.json().await.expect("session");
        session["token"].as_str().expect("token").to_owned()
    }

    /// A new invitation of `owner`'s tenant for `email` with `role`; its
    /// token.
    pub async fn invitation_as(&self, owner: &str, email: &str, role: &str) -> String {
        let (status, body) = self
            .request_as(
                owner,
                Method::POST,
                "/v1/invitations",
                Some(json!({"email": email, "role": role})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "invite: {body}");
        body["token"].as_str().expect("token").to_owned()
    }

    /// The engine's metrics, read with the instance's metrics token.
    pub async fn metrics(&self) -> reqwest::Response {
        self.http
            .get(self.url("/metrics"))
            .bearer_auth(METRICS_TOKEN)
            .send()
            .await
            .expect("scrape")
    }

    /// Sets a secret of the platform tenant.
    pub async fn put_secret(&self, name: &str, value: &str) {
        let (status, body) = self
            .request(
                Method::PUT,
                &format!("/v1/secrets/{name}"),
                Some(serde_json::json!({"value": value})),
            )
            .await;
        assert!(status.is_success(), "put secret: {status} {body}");
    }

    /// Bytes the store uses for execution data: PostgreSQL's tables of
    /// executions, steps and blobs (with their TOAST and indexes), or the
    /// SQLite file's pages in use.
    pub async fn store_bytes(&self) -> i64 {
        use sqlx::{Connection, Row};
        match &self.database {
            Some(db) => {
                let url = format!("{}/{db}", self.servers.postgres);
                let mut conn = sqlx::PgConnection::connect(&url).await.expect("database");
                sqlx::query(
                    "SELECT (pg_total_relation_size('executions') + pg_total_relation_size('steps') \
                     + pg_total_relation_size('blobs'))::BIGINT AS n",
                )
                .fetch_one(&mut conn)
                .await
                .expect("sizes")
                .get::<i64, _>("n")
            }
            None => {
                let path = self.data_dir.path().join("flowmesh.db");
                let url = format!("sqlite://{}?mode=ro", path.display());
                let mut conn = sqlx::SqliteConnection::connect(&url)
                    .await
                    .expect("database");
                let pages: i64 = sqlx::query("PRAGMA page_count")
                    .fetch_one(&mut conn)
                    .await
                    .expect("pages")
                    .get(0);
                let size: i64 = sqlx::query("PRAGMA page_size")
                    .fetch_one(&mut conn)
                    .await
                    .expect("page size")
                    .get(0);
                pages * size
            }
        }
    }

    /// Starts an execution through the API; returns its id.
    pub async fn start_execution(&self, workflow: &str, input: Value) -> String {
        self.start_execution_as(ADMIN_KEY, workflow, input).await
    }

    /// Starts an execution with a key of another tenant; returns its id.
    pub async fn start_execution_as(&self, key: &str, workflow: &str, input: Value) -> String {
        let (status, body) = self
            .request_as(
                key,
                Method::POST,
                &format!("/v1/workflows/{workflow}/executions"),
                Some(input),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "start: {body}");
        body["execution_id"]
            .as_str()
            .expect("execution_id")
            .to_owned()
    }

    pub async fn execution(&self, id: &str) -> Value {
        let (status, body) = self.get(&format!("/v1/executions/{id}")).await;
        assert_eq!(status, StatusCode::OK, "get execution: {body}");
        body
    }

    /// The whole Server-Sent Events stream of an execution, read until it closes.
    pub async fn events_text(&self, id: &str) -> String {
        let resp = self
            .http
            .get(self.url(&format!("/v1/executions/{id}/events")))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .expect("events");
        assert_eq!(resp.status(), StatusCode::OK);
        resp.text().await.expect("events text")
    }

    /// Polls until the execution ends; returns it.
    pub async fn finished(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        loop {
            tick.tick().await;
            let e = self.execution(id).await;
            if !matches!(e["status"].as_str(), Some("queued" | "running")) {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "execution {id} did not finish: {e:#}"
            );
        }
    }
}

/// A workflow of one code node after a manual trigger, run once (no retries).
pub fn code_workflow(name: &str, language: &str, source: &str, limits: Value) -> Value {
    json!({"name": name, "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "code", "type": "action", "kind": "code",
         "retry": {"max_attempts": 1},
         "config": {"language": language, "source": source, "limits": limits}}
    ], "edges": [{"from": "start", "to": "code"}]})
}

/// One outbound call through a `credentials` connection to the secret
/// `api_token` of the tenant.
pub fn secret_workflow(stub: &stub::StubServer) -> Value {
    json!({"name": "secret", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "call", "type": "action", "kind": "http_request",
         "config": {"method": "POST", "url": stub.url("/ok/secret"), "connection": "api", "body": {"x": 1}}},
        {"id": "api", "type": "connection", "kind": "credentials", "config": {"secret": "api_token"}}
    ], "edges": [{"from": "start", "to": "call"}]})
}

/// The message of an error answer (`{"error": {"message"}}`).
pub fn error_message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_default()
}

/// The state of one node in an execution's JSON.
pub fn node<'a>(execution: &'a Value, id: &str) -> &'a Value {
    execution["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|n| n["node"] == id))
        .unwrap_or(&Value::Null)
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.kill();
        if self.mode == Mode::Distributed && !self.peer {
            let database = self.database.clone();
            let prefix = self.prefix.to_uppercase();
            let servers = self.servers.clone();
            let cleanup = std::thread::spawn(move || {
                block_on(async move {
                    if let Some(db) = database {
                        drop_database(&servers, &db).await;
                    }
                    if let Ok(client) = async_nats::connect(&servers.nats).await {
                        let js = async_nats::jetstream::new(client);
                        for suffix in ["CMD", "CTL", "EVT"] {
                            let _ = js.delete_stream(format!("{prefix}_{suffix}")).await;
                        }
                    }
                });
            });
            let _ = cleanup.join();
        }
    }
}

/// Asserts that finished executions ran one after another, never two at once.
pub fn assert_ran_one_at_a_time(finished: &[Value]) {
    let mut spans: Vec<(i64, i64)> = finished
        .iter()
        .map(|e| {
            let at = |field: &str| e[field].as_i64().expect("a finished execution's times");
            (at("started_at"), at("finished_at"))
        })
        .collect();
    spans.sort();
    for pair in spans.windows(2) {
        assert!(pair[1].0 >= pair[0].1, "two ran at once: {spans:?}");
    }
}

/// A client whose requests come from `address` (any of 127.0.0.0/8).
pub fn client_from(address: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(address.parse::<std::net::IpAddr>().expect("an address"))
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

/// Polls `probe` until it returns `Some`, or panics after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        tick.tick().await;
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
    }
}

/// Runs one async test body in both modes, as two tests.
#[macro_export]
macro_rules! both_modes {
    ($name:ident, $body:path) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                $body(common::Mode::Embedded).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn distributed() {
                $body(common::Mode::Distributed).await;
            }
        }
    };
}

/// Lets schedules tick every second (the instance's floor otherwise).
pub const SECOND_TICKS: (&str, &str) = ("FLOWMESH_SCHEDULE_MIN_INTERVAL", "1s");

/// A workflow of `count` schedule triggers, each ticking every second.
pub fn every_second(name: &str, count: usize) -> Value {
    let nodes: Vec<Value> = (0..count)
        .map(|i| serde_json::json!({"id": format!("tick{i}"), "type": "trigger", "kind": "schedule", "config": {"cron": "* * * * * *"}}))
        .collect();
    serde_json::json!({"name": name, "nodes": nodes})
}
