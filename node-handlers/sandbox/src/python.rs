//! Python: one process per call, started ahead of time from a warm pool
//! (`worker.py` does the rest inside the process: limits, audit hook, the
//! call), each in the jail (`jail.rs`). A process serves one call and
//! exits, so nothing one call changes reaches the next.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::jail::{Jail, JailSpec};
use crate::{Call, Class, Failure, Options, Returned, Usage, tree_rss};

const WORKER: &str = include_str!("worker.py");
/// Longest a call waits for the tenant's earlier calls to make room.
const QUEUE_WAIT: Duration = Duration::from_secs(60);
/// Time past the wall limit for the process to answer and exit.
const EXIT_GRACE: Duration = Duration::from_millis(500);
/// Room in a process's answer for its logs, beside the output.
const LOG_ROOM: u64 = 1 << 20;
/// Largest file the code may write in its directory.
const FILE_BYTES: u64 = 8 << 20;
/// Most stderr kept from a process that died without answering.
const STDERR_BYTES: u64 = 4_096;

/// What a worker writes once it has started and waits for its call.
const READY: &[u8] = b"ready\n";

struct Worker {
    child: tokio::process::Child,
    /// Its working directory where the operator runs code without the jail
    /// (in the jail, a tmpfs of its own).
    _dir: Option<tempfile::TempDir>,
    /// Its `READY` line has been read.
    ready: bool,
}

impl Worker {
    async fn wait_ready(&mut self) -> std::io::Result<()> {
        if !self.ready {
            let stdout = self
                .child
                .stdout
                .as_mut()
                .ok_or_else(|| std::io::Error::other("no stdout"))?;
            read_ready(stdout).await?;
            self.ready = true;
        }
        Ok(())
    }
}

async fn read_ready(stdout: &mut tokio::process::ChildStdout) -> std::io::Result<()> {
    let mut line = [0u8; READY.len()];
    stdout.read_exact(&mut line).await?;
    if line != READY {
        return Err(std::io::Error::other(
            "the Python process did not start as expected",
        ));
    }
    Ok(())
}

struct Inner {
    python: PathBuf,
    jail: Jail,
    /// The host uid of the tenant's code, when the engine is root.
    uid: Option<u32>,
    workdir_bytes: u64,
    warm: usize,
    /// Started processes waiting for a call.
    pool: Mutex<Vec<Worker>>,
    usage: Mutex<Usage>,
    /// Places for calls running at once.
    running: tokio::sync::Semaphore,
}

/// A Python sandbox of one tenant: cheap to clone.
#[derive(Clone)]
pub struct PythonSandbox {
    inner: Arc<Inner>,
}

#[derive(Deserialize)]
struct Answer {
    ok: bool,
    #[serde(default)]
    output: Value,
    #[serde(default)]
    logs: Vec<String>,
    #[serde(default)]
    class: Option<Class>,
    #[serde(default)]
    message: String,
}

impl PythonSandbox {
    /// A sandbox whose code runs in `jail`, as the host uid `uid` when the
    /// engine is root (see `Jail::tenant_uid`).
    pub fn start(options: &Options, jail: Jail, uid: Option<u32>) -> PythonSandbox {
        let sandbox = PythonSandbox {
            inner: Arc::new(Inner {
                python: options.jail.python.clone(),
                jail,
                uid,
                workdir_bytes: options.workdir_bytes,
                warm: options.python_warm,
                pool: Mutex::new(Vec::new()),
                usage: Mutex::new(Usage::default()),
                running: tokio::sync::Semaphore::new(options.python_concurrency.max(1)),
            }),
        };
        sandbox.refill();
        sandbox
    }

    pub fn usage(&self) -> Usage {
        let mut usage = Usage::read(&self.inner.usage);
        let pool = self.inner.pool.lock().unwrap_or_else(|p| p.into_inner());
        usage.memory_bytes = pool.iter().filter_map(|w| w.child.id()).map(tree_rss).sum();
        usage
    }

    /// Starts processes until the pool holds its warm count.
    fn refill(&self) {
        if self.inner.jail.check().is_err() {
            return;
        }
        let mut pool = self.inner.pool.lock().unwrap_or_else(|p| p.into_inner());
        while pool.len() < self.inner.warm {
            match self.spawn() {
                Ok(worker) => pool.push(worker),
                Err(e) => {
                    tracing::warn!(error = %e, "could not start a Python sandbox process");
                    break;
                }
            }
        }
    }

    fn spawn(&self) -> std::io::Result<Worker> {
        let inner = &self.inner;
        let args = ["-I", "-S", "-B", "-c", WORKER].map(str::to_owned);
        let mut command = inner.jail.command(&JailSpec {
            program: &inner.python,
            args: &args,
            uid: inner.uid,
            workdir_bytes: inner.workdir_bytes,
        })?;
        let dir = if inner.jail.is_jailed() {
            None
        } else {
            let dir = tempfile::Builder::new().prefix("flowmesh-py-").tempdir()?;
            if let Some(uid) = inner.uid {
                std::os::unix::fs::chown(dir.path(), Some(uid), Some(uid))?;
            }
            command.current_dir(dir.path());
            Some(dir)
        };
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Ok(Worker {
            child: command.spawn()?,
            _dir: dir,
            ready: false,
        })
    }

    /// Waits until the warm pool holds its count of started processes,
    /// each waiting for a call.
    pub async fn warmed(&self) -> std::io::Result<()> {
        self.refill();
        let workers =
            std::mem::take(&mut *self.inner.pool.lock().unwrap_or_else(|p| p.into_inner()));
        let mut ready = Vec::with_capacity(workers.len());
        let mut failed = None;
        for mut worker in workers {
            match worker.wait_ready().await {
                Ok(()) => ready.push(worker),
                Err(e) => failed = Some(e),
            }
        }
        self.inner
            .pool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(ready);
        failed.map_or(Ok(()), Err)
    }

    pub async fn run(&self, call: Call) -> Result<Returned, Failure> {
        let started = Instant::now();
        let Ok(Ok(_place)) = tokio::time::timeout(QUEUE_WAIT, self.inner.running.acquire()).await
        else {
            return Err(Failure::new(
                Class::Timeout,
                "the sandbox stayed busy with earlier calls of this tenant",
            ));
        };
        let result = self.run_inner(call).await;
        Usage::record(&self.inner.usage, &result, started.elapsed());
        result
    }

    async fn run_inner(&self, call: Call) -> Result<Returned, Failure> {
        self.inner.jail.check()?;
        let pooled = self
            .inner
            .pool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop();
        let worker = match pooled {
            Some(worker) => {
                // On a runtime thread, not a blocking-pool one: those end
                // after ten idle seconds, and bubblewrap's parent-death
                // signal would end the warm processes they started.
                let sandbox = self.clone();
                tokio::spawn(async move { sandbox.refill() });
                worker
            }
            None => self.spawn().map_err(|e| {
                Failure::new(Class::Crashed, format!("could not start Python: {e}"))
            })?,
        };
        let mut result = drive(worker, &call, self.inner.workdir_bytes).await;
        if !self.inner.jail.is_jailed() {
            // Said in the step's logs too, as /ready says it.
            let note = "note: this host runs code without the jail (the operator's choice); \
                        only the interpreter's audit hook and limits bound it"
                .to_owned();
            match &mut result {
                Ok(returned) => returned.logs.insert(0, note),
                Err(failure) => failure.logs.insert(0, note),
            }
        }
        result
    }
}

/// Sends the call to a started process and reads its one answer.
async fn drive(mut worker: Worker, call: &Call, workdir_bytes: u64) -> Result<Returned, Failure> {
    let limits = &call.limits;
    let request = json!({
        "source": call.source,
        "input": call.input,
        "wall_ms": limits.wall.0.as_millis() as u64,
        "memory_bytes": limits.memory_mb << 20,
        "output_bytes": limits.output_bytes,
        "file_bytes": FILE_BYTES,
        "workdir_bytes": workdir_bytes,
    });
    let crashed = |what: String| Failure::new(Class::Crashed, what);
    let mut stdin = worker
        .child
        .stdin
        .take()
        .ok_or_else(|| crashed("no stdin".into()))?;
    let mut stdout = worker
        .child
        .stdout
        .take()
        .ok_or_else(|| crashed("no stdout".into()))?;
    let ready = worker.ready;
    let stderr = worker
        .child
        .stderr
        .take()
        .ok_or_else(|| crashed("no stderr".into()))?;
    let mut line = request.to_string();
    line.push('\n');
    let cap = limits.output_bytes + LOG_ROOM;
    let exchange = async {
        // A process that died starting has no answer; its stderr says why.
        let started = ready || read_ready(&mut stdout).await.is_ok();
        let mut answer = Vec::new();
        if started {
            stdin.write_all(line.as_bytes()).await?;
            stdout.take(cap + 1).read_to_end(&mut answer).await?;
        }
        // Held open until the answer is read: the process ends when it
        // closes (the engine is gone, or gave up on the call).
        drop(stdin);
        let mut errors = Vec::new();
        stderr.take(STDERR_BYTES).read_to_end(&mut errors).await?;
        std::io::Result::Ok((answer, errors))
    };
    let outcome = tokio::time::timeout(limits.wall.0 + EXIT_GRACE, exchange).await;
    let (answer, errors) = match outcome {
        Ok(Ok(read)) => read,
        Ok(Err(e)) => {
            let _ = worker.child.start_kill();
            return Err(crashed(format!("lost the Python process: {e}")));
        }
        Err(_) => {
            let _ = worker.child.start_kill();
            let _ = worker.child.wait().await;
            return Err(Failure::new(
                Class::Timeout,
                format!("the code passed its time limit of {}", limits.wall),
            ));
        }
    };
    if answer.len() as u64 > cap {
        let _ = worker.child.start_kill();
        return Err(Failure::new(
            Class::OutputTooLarge,
            format!("the code wrote more than {cap} bytes"),
        ));
    }
    let status = worker
        .child
        .wait()
        .await
        .map_err(|e| crashed(e.to_string()))?;
    match serde_json::from_slice::<Answer>(&answer) {
        Ok(Answer {
            ok: true,
            output,
            logs,
            ..
        }) => Ok(Returned { output, logs }),
        Ok(Answer {
            class,
            message,
            logs,
            ..
        }) => Err(Failure {
            class: class.unwrap_or(Class::Code),
            message,
            logs,
        }),
        // bubblewrap exits with 128 + n when what it ran died of signal n.
        Err(_) => Err(
            match status
                .signal()
                .or_else(|| status.code().filter(|c| *c > 128).map(|c| c - 128))
            {
                // SIGXCPU: the CPU-time limit.
                Some(24) => Failure::new(Class::Timeout, "the code passed its CPU-time limit"),
                signal => {
                    let detail = String::from_utf8_lossy(&errors);
                    let detail = detail.lines().last().unwrap_or_default();
                    crashed(match signal {
                        Some(signal) => {
                            format!("the Python process died of signal {signal} {detail}")
                        }
                        None => {
                            format!(
                                "the Python process exited without an answer ({status}) {detail}"
                            )
                        }
                    })
                }
            },
        ),
    }
}
