//! Starts the release `flowmesh` binary in either mode, as an operator would.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

pub const NATS_URL: &str = "nats://127.0.0.1:4222";
pub const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";
pub const KEY: &str = "fmk_bench_admin_key";

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Embedded,
    /// NATS and PostgreSQL as this machine runs them.
    Distributed,
    /// Every acknowledgement flushed to disk: a NATS server with
    /// `sync_interval: always`, and `synchronous_commit = on`.
    DistributedFlushed,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Embedded => "embedded",
            Mode::Distributed => "distributed",
            Mode::DistributedFlushed => "distributed, flushed",
        }
    }
}

/// What an engine of a run connects to.
#[derive(Clone, Debug)]
pub struct Target {
    pub mode: Mode,
    pub nats_url: String,
    /// Where traces go (OTLP/HTTP); none: tracing off.
    pub otlp_endpoint: Option<String>,
}

impl Target {
    /// Embedded, and distributed on this machine's NATS and PostgreSQL.
    pub fn local() -> [Target; 2] {
        [
            Target {
                mode: Mode::Embedded,
                nats_url: String::new(),
                otlp_endpoint: None,
            },
            Target {
                mode: Mode::Distributed,
                nats_url: NATS_URL.to_owned(),
                otlp_endpoint: None,
            },
        ]
    }
}

pub struct Engine {
    child: Option<Child>,
    pub base: String,
    dir: tempfile::TempDir,
    database: Option<String>,
    prefix: String,
    pub http: reqwest::Client,
    allow: String,
    target: Target,
    /// Settings of this run beyond the harness's own.
    env: Vec<(String, String)>,
}

pub fn binary() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("FLOWMESH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/release/flowmesh")
        });
    if !path.exists() {
        bail!(
            "{} is missing: build it with `cargo build --release -p flowmesh` (or set FLOWMESH_BIN)",
            path.display()
        );
    }
    Ok(path)
}

impl Engine {
    pub async fn start(target: &Target, allow: &str) -> anyhow::Result<Engine> {
        Self::start_with(target, allow, &[]).await
    }

    /// Starts an engine with environment settings of its own.
    pub async fn start_with(
        target: &Target,
        allow: &str,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Engine> {
        let database = match target.mode {
            Mode::Embedded => None,
            Mode::Distributed | Mode::DistributedFlushed => {
                use sqlx::Connection;
                let name = format!("flowmesh_bench_{}", uuid::Uuid::new_v4().simple());
                let mut admin =
                    sqlx::PgConnection::connect(&format!("{POSTGRES}/postgres")).await?;
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut admin)
                    .await?;
                Some(name)
            }
        };
        let mut engine = Engine {
            child: None,
            base: String::new(),
            dir: tempfile::tempdir()?,
            database,
            prefix: format!("bench{}", uuid::Uuid::new_v4().simple()),
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(1024)
                .timeout(Duration::from_secs(60))
                .build()?,
            allow: allow.to_owned(),
            target: target.clone(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        engine.spawn()?;
        Ok(engine)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let mut cmd = Command::new(binary()?);
        cmd.env("FLOWMESH_LISTEN", "127.0.0.1:0")
            .env("FLOWMESH_DATA_DIR", self.dir.path())
            .env("FLOWMESH_ADMIN_KEY", KEY)
            .env("FLOWMESH_NODE_ID", "bench")
            .env("FLOWMESH_BUS_PREFIX", &self.prefix)
            .env("FLOWMESH_HTTP_ALLOW_HOSTS", &self.allow)
            .env("FLOWMESH_LOG", "error")
            // Every tenant of a run registers from this one address.
            .env("FLOWMESH_REGISTRATIONS_PER_ADDRESS", "0")
            // The scenarios run millions of node attempts on one tenant.
            .env("FLOWMESH_INITIAL_CREDITS", "1000000000000")
            // One load generator, one address: the public-surface limits
            // would measure themselves instead of the engine.
            .env("FLOWMESH_WEBHOOK_RATE_PER_ADDRESS", "1000000")
            .env("FLOWMESH_WEBHOOK_RATE_PER_ROUTE", "1000000")
            .env("FLOWMESH_MAX_CONNECTIONS_PER_ADDRESS", "10000")
            .env_remove("FLOWMESH_NATS_URL")
            .env_remove("DATABASE_URL")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        if let Some(endpoint) = &self.target.otlp_endpoint {
            cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint);
        }
        if let Some(db) = &self.database {
            let options = match self.target.mode {
                Mode::DistributedFlushed => "?options=-c%20synchronous_commit%3Don",
                _ => "",
            };
            cmd.env("DATABASE_URL", format!("{POSTGRES}/{db}{options}"))
                .env("FLOWMESH_NATS_URL", &self.target.nats_url);
        }
        let mut child = cmd.spawn().context("starting flowmesh")?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send(addr.trim().to_owned());
                }
            }
        });
        self.base = rx
            .recv_timeout(Duration::from_secs(60))
            .context("flowmesh did not start")?;
        self.child = Some(child);
        Ok(())
    }

    /// The engine's database, for what a scenario writes there directly.
    pub fn store_options(&self) -> flowmesh_store::Options {
        flowmesh_store::Options {
            database_url: self.database.as_ref().map(|db| format!("{POSTGRES}/{db}")),
            data_dir: self.dir.path().to_owned(),
            max_connections: 16,
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Resident memory of the engine process, in bytes.
    pub fn rss(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace()
            .nth(1)?
            .parse::<u64>()
            .ok()
            .map(|kb| kb * 1024)
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// kill -9, then start again; returns when it listens.
    pub fn kill_and_restart(&mut self) -> anyhow::Result<Instant> {
        self.kill();
        let restarted = Instant::now();
        self.spawn()?;
        Ok(restarted)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let resp = self
            .http
            .post(self.url(path))
            .bearer_auth(KEY)
            .json(body)
            .send()
            .await?;
        let status = resp.status();
        let value: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("POST {path}: {status} {value}");
        }
        Ok(value)
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        Ok(self
            .http
            .get(self.url(path))
            .bearer_auth(KEY)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// Creates and publishes a workflow; returns its id.
    pub async fn deploy(&self, doc: &Value) -> anyhow::Result<String> {
        let created = self.post("/v1/workflows", doc).await?;
        let id = created["id"].as_str().context("workflow id")?.to_owned();
        self.post(&format!("/v1/workflows/{id}/publish"), &json!({}))
            .await?;
        Ok(id)
    }

    /// How many executions of a workflow are in a status (counting pages).
    pub async fn count(&self, workflow: &str, status: &str) -> anyhow::Result<usize> {
        let mut total = 0;
        let mut cursor: Option<String> = None;
        loop {
            let mut path =
                format!("/v1/executions?workflow_id={workflow}&status={status}&limit=500");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page = self.get(&path).await?;
            total += page["items"].as_array().map(Vec::len).unwrap_or(0);
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return Ok(total),
            }
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.kill();
        let (database, prefix) = (self.database.take(), self.prefix.to_uppercase());
        let nats_url = self.target.nats_url.clone();
        if database.is_none() {
            return;
        }
        let cleanup = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                use sqlx::Connection;
                if let (Some(db), Ok(mut admin)) = (
                    database,
                    sqlx::PgConnection::connect(&format!("{POSTGRES}/postgres")).await,
                ) {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                        .execute(&mut admin)
                        .await;
                }
                if let Ok(client) = async_nats::connect(&nats_url).await {
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
