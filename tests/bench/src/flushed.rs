//! A NATS server of the harness's own, configured to flush every
//! acknowledged write to disk (`sync_interval: always`), for the
//! distributed run in which no acknowledgement rests only in the page cache.
//!
//! `sync_interval` appeared in nats-server 2.10; the binary comes from
//! `--flushed-nats-server`, else `FLOWMESH_BENCH_NATS_SERVER`, else the first
//! `nats-server` on PATH that is recent enough.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub struct FlushedNats {
    child: Child,
    pub url: String,
    pub version: String,
    _dir: tempfile::TempDir,
}

/// `nats-server --version` prints `nats-server: v2.15.1`.
fn version_of(binary: &Path) -> Option<(u32, u32, String)> {
    let out = Command::new(binary).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let version = text.trim().rsplit('v').next()?.to_owned();
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??, version))
}

fn supports_sync_always(binary: &Path) -> Option<String> {
    let (major, minor, version) = version_of(binary)?;
    (major > 2 || (major == 2 && minor >= 10)).then_some(version)
}

/// The binary to use, or why there is none.
pub fn find(explicit: Option<PathBuf>) -> Result<(PathBuf, String), String> {
    let explicit =
        explicit.or_else(|| std::env::var_os("FLOWMESH_BENCH_NATS_SERVER").map(PathBuf::from));
    if let Some(path) = explicit {
        return supports_sync_always(&path)
            .map(|v| (path.clone(), v))
            .ok_or_else(|| format!("{} is not nats-server 2.10 or later", path.display()));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join("nats-server");
        if candidate.is_file()
            && let Some(version) = supports_sync_always(&candidate)
        {
            return Ok((candidate, version));
        }
    }
    Err(
        "no nats-server 2.10 or later found (sync_interval needs it); \
         pass --flushed-nats-server or set FLOWMESH_BENCH_NATS_SERVER"
            .to_owned(),
    )
}

impl FlushedNats {
    pub fn start(binary: &Path, version: String) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let config = dir.path().join("nats.conf");
        std::fs::write(
            &config,
            format!(
                "listen: 127.0.0.1:{port}\njetstream {{\n  store_dir: {:?}\n  sync_interval: always\n}}\n",
                dir.path().join("store")
            ),
        )?;
        let child = Command::new(binary)
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("the flushed nats-server did not listen on port {port}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(FlushedNats {
            child,
            url: format!("nats://127.0.0.1:{port}"),
            version,
            _dir: dir,
        })
    }
}

impl Drop for FlushedNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
