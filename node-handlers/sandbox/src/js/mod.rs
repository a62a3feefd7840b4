//! JavaScript: one worker process per sandbox, started through the jail,
//! serving one call at a time (`worker` runs in it, `quickjs` is its inner
//! layer). A call that is not answered by its wall limit and a short grace
//! has its process killed and reaped before the next call starts a fresh
//! one: a built-in that ignores QuickJS's interrupt handler stops with it.

mod quickjs;
mod syntax;
pub mod worker;

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout};

pub use quickjs::JsEngine;
pub use syntax::{SyntaxError, check_javascript};
use worker::{Answer, MAX_REQUEST_BYTES, READY, Request};

use crate::{Call, Class, Failure, Jail, JailSpec, Returned, Usage, tree_rss};

/// How long past its wall limit a call may go before its process is killed:
/// room for starting a process and for the answer.
const KILL_GRACE: Duration = Duration::from_millis(500);
/// Longest a call waits for the calls queued before it (one runs at a time).
const QUEUE_WAIT: Duration = Duration::from_secs(60);
/// Longest a new worker may take to start, before its call's time counts.
const START_WAIT: Duration = Duration::from_secs(10);
/// JavaScript writes no files: the smallest working directory.
const WORKDIR_BYTES: u64 = 1 << 20;
/// Most stderr kept from a worker that died.
const STDERR_BYTES: u64 = 4_096;
/// Longest wait for the stderr of a worker that died.
const STDERR_WAIT: Duration = Duration::from_secs(1);

/// How a JavaScript sandbox starts its worker processes.
#[derive(Clone, Debug)]
pub struct JsStart {
    /// The program run as `<program> sandbox-worker javascript`.
    pub program: PathBuf,
    pub jail: Jail,
    /// The host uid and gid the code runs as when the engine is root.
    pub uid: Option<u32>,
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    stderr: ChildStderr,
}

struct Inner {
    start: JsStart,
    /// The running worker, if any; held by the call being served.
    worker: Arc<tokio::sync::Mutex<Option<Worker>>>,
    /// Its process id, for its memory; 0 when there is none.
    pid: AtomicU32,
    usage: Mutex<Usage>,
}

/// A JavaScript sandbox of one tenant: cheap to clone. Its worker starts
/// with its first call.
#[derive(Clone)]
pub struct JsSandbox {
    inner: Arc<Inner>,
}

impl JsSandbox {
    pub fn start(start: JsStart) -> JsSandbox {
        JsSandbox {
            inner: Arc::new(Inner {
                start,
                worker: Arc::default(),
                pid: AtomicU32::new(0),
                usage: Mutex::new(Usage::default()),
            }),
        }
    }

    /// The worker's process id, while one runs (for operators' tools).
    pub fn pid(&self) -> Option<u32> {
        Some(self.inner.pid.load(Ordering::SeqCst)).filter(|&pid| pid != 0)
    }

    pub fn usage(&self) -> Usage {
        let mut usage = Usage::read(&self.inner.usage);
        usage.memory_bytes = self.pid().map_or(0, tree_rss);
        usage
    }

    /// Runs a call once the calls queued before it are done: a tenant's
    /// JavaScript runs one call at a time, on one core at most.
    pub async fn run(&self, call: Call) -> Result<Returned, Failure> {
        let worker = tokio::time::timeout(QUEUE_WAIT, self.inner.worker.clone().lock_owned())
            .await
            .map_err(|_| {
                Failure::new(
                    Class::Timeout,
                    "the sandbox stayed busy with earlier calls of this tenant",
                )
            })?;
        let started = Instant::now();
        let inner = self.inner.clone();
        // A task of its own: a caller that gives up leaves no call running,
        // and the next call waits until this one's process is reaped.
        let result = tokio::spawn(async move { inner.call(worker, &call).await })
            .await
            .unwrap_or_else(|e| Err(Failure::new(Class::Crashed, e.to_string())));
        Usage::record(&self.inner.usage, &result, started.elapsed());
        result
    }
}

impl Inner {
    async fn call(
        &self,
        mut slot: tokio::sync::OwnedMutexGuard<Option<Worker>>,
        call: &Call,
    ) -> Result<Returned, Failure> {
        let mut line = serde_json::to_vec(&Request::from(call))
            .map_err(|e| Failure::new(Class::Crashed, e.to_string()))?;
        if line.len() as u64 > MAX_REQUEST_BYTES {
            return Err(Failure::new(
                Class::Denied,
                format!(
                    "the code and its input are {} bytes, more than the {MAX_REQUEST_BYTES} a \
                     JavaScript call takes",
                    line.len()
                ),
            ));
        }
        line.push(b'\n');
        // A worker that died waiting (killed from outside) is replaced
        // rather than failing a call that did nothing to it.
        if let Some(worker) = slot.as_mut()
            && !matches!(worker.child.try_wait(), Ok(None))
        {
            self.end(worker).await;
            *slot = None;
        }
        let mut worker = match slot.take() {
            Some(worker) => worker,
            None => self.started().await?,
        };
        let cap = Answer::limit(call.limits.output_bytes);
        let exchange = async {
            worker.stdin.write_all(&line).await?;
            worker.stdin.flush().await?;
            let mut answer = Vec::new();
            (&mut worker.stdout)
                .take(cap + 1)
                .read_until(b'\n', &mut answer)
                .await?;
            std::io::Result::Ok(answer)
        };
        let answer = match tokio::time::timeout(call.limits.wall.0 + KILL_GRACE, exchange).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => return Err(self.crashed(worker, &e.to_string()).await),
            Err(_) => {
                self.end(&mut worker).await;
                return Err(Failure::new(
                    Class::Timeout,
                    format!(
                        "the code did not stop at its time limit of {}; its process was killed",
                        call.limits.wall
                    ),
                ));
            }
        };
        if answer.len() as u64 > cap {
            self.end(&mut worker).await;
            return Err(Failure::new(
                Class::OutputTooLarge,
                format!("the code's answer is longer than {cap} bytes"),
            ));
        }
        if answer.last() != Some(&b'\n') {
            return Err(self.crashed(worker, "no answer").await);
        }
        match serde_json::from_slice::<Answer>(&answer) {
            Ok(answer) => {
                *slot = Some(worker);
                answer.into_result()
            }
            Err(e) => Err(self
                .crashed(worker, &format!("an answer that is not one: {e}"))
                .await),
        }
    }

    /// A new worker, once it has started.
    async fn started(&self) -> Result<Worker, Failure> {
        let mut worker = self.spawn()?;
        let mut line = Vec::new();
        let mut stdout = (&mut worker.stdout).take(READY.len() as u64);
        let ready = stdout.read_until(b'\n', &mut line);
        match tokio::time::timeout(START_WAIT, ready).await {
            Ok(Ok(_)) if line == READY => Ok(worker),
            Ok(Ok(_)) => Err(self.crashed(worker, "it did not start").await),
            Ok(Err(e)) => Err(self.crashed(worker, &e.to_string()).await),
            Err(_) => Err(self
                .crashed(worker, &format!("it did not start within {START_WAIT:?}"))
                .await),
        }
    }

    fn spawn(&self) -> Result<Worker, Failure> {
        let start = &self.start;
        start.jail.check()?;
        let failed = |e: std::io::Error| {
            Failure::new(
                Class::Crashed,
                format!("could not start the JavaScript worker: {e}"),
            )
        };
        let args = ["sandbox-worker".to_owned(), "javascript".to_owned()];
        let mut command = start
            .jail
            .command(&JailSpec {
                program: &start.program,
                args: &args,
                uid: start.uid,
                workdir_bytes: WORKDIR_BYTES,
            })
            .map_err(failed)?;
        command
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(failed)?;
        let pipes = (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let (Some(stdin), Some(stdout), Some(stderr)) = pipes else {
            return Err(failed(std::io::Error::other("no pipes to the worker")));
        };
        self.pid.store(child.id().unwrap_or(0), Ordering::SeqCst);
        Ok(Worker {
            child,
            stdin,
            stdout: BufReader::new(stdout),
            stderr,
        })
    }

    /// Kills a worker and reaps it.
    async fn end(&self, worker: &mut Worker) -> Option<std::process::ExitStatus> {
        self.pid.store(0, Ordering::SeqCst);
        let _ = worker.child.start_kill();
        worker.child.wait().await.ok()
    }

    /// Ends a worker that failed to answer, saying how it died.
    async fn crashed(&self, mut worker: Worker, what: &str) -> Failure {
        let status = self.end(&mut worker).await;
        let mut errors = Vec::new();
        let mut stderr = (&mut worker.stderr).take(STDERR_BYTES);
        let _ = tokio::time::timeout(STDERR_WAIT, stderr.read_to_end(&mut errors)).await;
        let errors = String::from_utf8_lossy(&errors);
        let how = match status {
            Some(status) => match status.signal() {
                Some(signal) => format!("died of signal {signal}"),
                None => format!("ended ({status})"),
            },
            None => "was lost".to_owned(),
        };
        let detail = errors.lines().last().unwrap_or_default();
        Failure::new(
            Class::Crashed,
            format!("the JavaScript worker {how}: {what} {detail}")
                .trim_end()
                .to_owned(),
        )
    }
}
