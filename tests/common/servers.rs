//! PostgreSQL and NATS servers a test starts, stops and restarts itself
//! (the shared ones on the standard ports must never be disturbed).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{Servers, eventually};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

async fn accepts_connections(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_ok()
}

/// A PostgreSQL cluster in a temporary directory, run by the `postgres`
/// user when the tests run as root (the server refuses root).
pub struct OwnPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
}

fn postgres_bin() -> PathBuf {
    if let Ok(dir) = std::env::var("FLOWMESH_TEST_PG_BIN") {
        return dir.into();
    }
    let out = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .expect("pg_config (or FLOWMESH_TEST_PG_BIN) locates the PostgreSQL binaries");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"))
}

impl OwnPostgres {
    pub async fn start() -> OwnPostgres {
        let dir = tempfile::tempdir().expect("temp dir");
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success());
        }
        let pg = OwnPostgres {
            dir,
            bin: postgres_bin(),
            port: free_port(),
        };
        pg.run(
            "initdb",
            &[
                "-D",
                &pg.data(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ],
        );
        pg.up().await;
        pg
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn command(&self, tool: &str) -> Command {
        let program = self.bin.join(tool);
        let mut cmd = if is_root() {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(&program);
            cmd
        } else {
            Command::new(&program)
        };
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        cmd
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let status = self
            .command(tool)
            .args(args)
            .status()
            .expect("run a PostgreSQL tool");
        assert!(status.success(), "{tool} {args:?} failed");
    }

    /// Starts the server and waits until it accepts connections.
    pub async fn up(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
        eventually("postgres up", Duration::from_secs(30), || async {
            accepts_connections(self.port).await.then_some(())
        })
        .await;
    }

    /// Stops the server at once, as a crash would (no checkpoint).
    pub fn down(&self) {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .status();
    }
}

/// A NATS server with JetStream, its store in a temporary directory.
pub struct OwnNats {
    dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

impl OwnNats {
    pub async fn start() -> OwnNats {
        let mut nats = OwnNats {
            dir: tempfile::tempdir().expect("temp dir"),
            port: free_port(),
            child: None,
        };
        nats.up().await;
        nats
    }

    fn store(&self) -> &Path {
        self.dir.path()
    }

    pub async fn up(&mut self) {
        let binary = std::env::var("FLOWMESH_TEST_NATS_SERVER").unwrap_or("nats-server".into());
        let child = Command::new(binary)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(self.store())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server on PATH (or FLOWMESH_TEST_NATS_SERVER)");
        self.child = Some(child);
        eventually("nats up", Duration::from_secs(30), || async {
            accepts_connections(self.port).await.then_some(())
        })
        .await;
    }

    /// Kills the server (SIGKILL); its store stays for the next `up`.
    pub fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for OwnNats {
    fn drop(&mut self) {
        self.down();
    }
}

/// A PostgreSQL and a NATS server of the test's own.
pub async fn own_servers() -> (OwnPostgres, OwnNats, Servers) {
    let (pg, nats) = tokio::join!(OwnPostgres::start(), OwnNats::start());
    let servers = Servers {
        postgres: pg.url(),
        nats: nats.url(),
    };
    (pg, nats, servers)
}

/// The passwords `deploy/nats-tenants.conf` reads from the environment.
pub const TENANT_PASSWORDS: [(&str, &str); 3] = [
    ("FLOWMESH_NATS_PASSWORD", "engine-password"),
    ("ACME_NATS_PASSWORD", "acme-password"),
    ("GLOBEX_NATS_PASSWORD", "globex-password"),
];

/// A NATS server of the test's own, run from a configuration file on free
/// ports, its JetStream store in a temporary directory.
pub struct ConfiguredNats {
    child: Child,
    pub url: String,
    _store: tempfile::TempDir,
}

impl Drop for ConfiguredNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ConfiguredNats {
    /// Runs `config`, where `{store}` stands for the JetStream directory.
    /// The server picks its own ports and names them in a ports file, so
    /// a test running alongside cannot take them first.
    pub async fn start(config: &str, env: &[(&str, &str)]) -> ConfiguredNats {
        let binary = std::env::var("FLOWMESH_TEST_NATS_SERVER").unwrap_or("nats-server".into());
        let store = tempfile::tempdir().expect("temp dir");
        let file = store.path().join("nats.conf");
        let js = store.path().join("js");
        let ports = store.path().join("ports");
        let log = store.path().join("nats.log");
        std::fs::create_dir(&ports).expect("the ports directory");
        std::fs::write(&file, config.replace("{store}", &js.display().to_string()))
            .expect("write the NATS configuration");
        let mut child = Command::new(binary)
            .arg("-c")
            .arg(&file)
            .args(["-a", "127.0.0.1", "-p", "-1", "-m", "-1"])
            .arg("--ports_file_dir")
            .arg(&ports)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("the NATS log file"))
            .spawn()
            .expect("nats-server on PATH (or FLOWMESH_TEST_NATS_SERVER)");
        let url = eventually("nats up", Duration::from_secs(30), || {
            if let Some(status) = child.try_wait().expect("the NATS server's status") {
                panic!(
                    "nats-server exited ({status}): {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            // Named after the executable and its process id.
            let url = std::fs::read_dir(&ports)
                .ok()
                .and_then(|mut files| files.next())
                .and_then(|file| std::fs::read(file.ok()?.path()).ok())
                .and_then(|text| serde_json::from_slice::<serde_json::Value>(&text).ok())
                .and_then(|ports| ports["nats"][0].as_str().map(str::to_owned));
            async move { url }
        })
        .await;
        ConfiguredNats {
            child,
            url,
            _store: store,
        }
    }

    /// The shipped `deploy/nats-tenants.conf`, with its passwords.
    pub async fn tenants() -> ConfiguredNats {
        let path = format!("{}/deploy/nats-tenants.conf", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).expect("nats-tenants.conf");
        Self::start(&text.replace("/var/lib/nats", "{store}"), &TENANT_PASSWORDS).await
    }

    /// A client logged in as a user of `nats-tenants.conf`, with the
    /// inbox prefix its tenant's replies come to; the server's complaints
    /// to it (such as permission violations) arrive on the returned channel.
    pub async fn login(
        &self,
        user: &str,
    ) -> (
        async_nats::Client,
        tokio::sync::mpsc::UnboundedReceiver<async_nats::ServerError>,
    ) {
        let password = TENANT_PASSWORDS
            .iter()
            .find(|(name, _)| name.starts_with(&user.to_uppercase()))
            .map(|(_, p)| *p)
            .expect("a user of nats-tenants.conf");
        let (errors, complaints) = tokio::sync::mpsc::unbounded_channel();
        let mut options =
            async_nats::ConnectOptions::with_user_and_password(user.into(), password.into())
                .event_callback(move |event| {
                    if let async_nats::Event::ServerError(error) = event {
                        let _ = errors.send(error);
                    }
                    async {}
                });
        if user != "flowmesh" {
            options = options.custom_inbox_prefix(format!("flowmesh.inbox.{user}"));
        }
        (options.connect(&self.url).await.expect("login"), complaints)
    }
}
