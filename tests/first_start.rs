//! The first start: the default tenant and its key are made only once the
//! server holds its port, so a start that cannot listen loses no key.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Mode, Servers, TestDatabase};

/// What a start on a store needs besides its address.
struct Store {
    data_dir: tempfile::TempDir,
    database: Option<TestDatabase>,
    prefix: String,
}

impl Store {
    async fn new(mode: Mode) -> Store {
        let database = match mode {
            Mode::Embedded => None,
            Mode::Distributed => Some(TestDatabase::create(&Servers::default()).await),
        };
        Store {
            data_dir: tempfile::tempdir().unwrap(),
            database,
            prefix: format!("it{}", uuid::Uuid::new_v4().simple()),
        }
    }

    fn start(&self, listen: &str) -> Child {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowmesh"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("FLOWMESH_LISTEN", listen)
            .env("FLOWMESH_DATA_DIR", self.data_dir.path())
            .env("FLOWMESH_BUS_PREFIX", &self.prefix)
            .env("FLOWMESH_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(db) = &self.database {
            cmd.env("DATABASE_URL", db.url())
                .env("FLOWMESH_NATS_URL", common::NATS_URL);
        }
        cmd.spawn().unwrap()
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if self.database.is_none() {
            return;
        }
        let prefix = self.prefix.to_uppercase();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                if let Ok(client) = async_nats::connect(common::NATS_URL).await {
                    let js = async_nats::jetstream::new(client);
                    for suffix in ["CMD", "CTL", "EVT"] {
                        let _ = js.delete_stream(format!("{prefix}_{suffix}")).await;
                    }
                }
            });
        })
        .join();
    }
}

/// Waits for the process to exit; its status, stdout and stderr.
fn exit_of(mut child: Child) -> (std::process::ExitStatus, String, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("it kept running on a port that was taken");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (mut out, mut err) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status, out, err)
}

async fn a_start_that_cannot_listen_makes_no_key(mode: Mode) {
    let store = Store::new(mode).await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let (status, out, err) = exit_of(store.start(&address));
    assert!(!status.success(), "{out}{err}");
    assert!(
        err.contains(&format!("could not listen on {address}")),
        "a clear error: {err}"
    );
    assert!(!out.contains("API key"), "no key was printed: {out}");
    drop(taken);

    // The next start, on a free port, is still the first one: it makes the
    // tenant and prints its key, which works.
    let mut child = store.start("127.0.0.1:0");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (mut key, mut base) = (None, None);
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
    let key = key.expect("the key of the default tenant is printed");
    let answer = reqwest::Client::new()
        .get(format!("{}/v1/workflows", base.unwrap()))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), reqwest::StatusCode::OK);
    let _ = child.kill();
    let _ = child.wait();
}
both_modes!(
    a_start_that_cannot_listen,
    a_start_that_cannot_listen_makes_no_key
);
