//! JavaScript in QuickJS, on a thread of its own so that no call can block
//! the async runtime. One runtime per sandbox, a fresh context per call (so
//! nothing one call leaves on a prototype reaches the next), the memory and
//! stack limits of the call, and an interrupt handler that stops the code at
//! its deadline. A second, wall-clock watchdog on the async side declares
//! the sandbox broken if its thread ever fails to answer.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rquickjs::function::Rest;
use rquickjs::{CatchResultExt, CaughtError, Context, Ctx, Function, Object, Runtime, Value};

use crate::{Call, Class, Failure, Returned, Usage, push_log};

/// Stack the JavaScript code may use.
const STACK_BYTES: usize = 512 * 1024;
/// Stack of the sandbox's thread: room for QuickJS's own frames beyond it.
const THREAD_STACK_BYTES: usize = 8 * 1024 * 1024;
/// The JavaScript thread's priority on the crate's 0-99 scale: nice 10 on
/// Linux, the same as the Python processes.
const LOWER_PRIORITY: u8 = 22;
/// How long past its limit a call may go before the sandbox is declared broken.
const WATCHDOG_GRACE: Duration = Duration::from_secs(1);
/// Longest a call waits for the calls queued before it (one runs at a time).
const QUEUE_WAIT: Duration = Duration::from_secs(60);

struct Job {
    call: Call,
    /// Told when the call starts: its time limit counts from then.
    started: tokio::sync::oneshot::Sender<()>,
    reply: tokio::sync::oneshot::Sender<Result<Returned, Failure>>,
}

/// A JavaScript sandbox: cheap to clone, one thread behind it.
#[derive(Clone)]
pub struct JsSandbox {
    jobs: std::sync::mpsc::Sender<Job>,
    usage: Arc<Mutex<Usage>>,
    broken: Arc<AtomicBool>,
}

impl JsSandbox {
    pub fn start(name: &str) -> std::io::Result<JsSandbox> {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let usage = Arc::new(Mutex::new(Usage::default()));
        let broken = Arc::new(AtomicBool::new(false));
        let (thread_usage, thread_broken) = (usage.clone(), broken.clone());
        std::thread::Builder::new()
            .name(format!("js-{name}"))
            .stack_size(THREAD_STACK_BYTES)
            .spawn(move || {
                // User code yields to the engine's own threads, as Python
                // processes do (nice 10): a tenant's loop cannot slow the
                // engine that serves everyone else.
                let lower = LOWER_PRIORITY
                    .try_into()
                    .map(thread_priority::ThreadPriority::Crossplatform);
                if let Err(e) = lower.and_then(|p| {
                    thread_priority::set_current_thread_priority(p).map_err(|e| e.to_string())
                }) {
                    tracing::warn!(error = %e, "the JavaScript thread keeps its priority");
                }
                if let Err(e) = serve(&queue, &thread_usage) {
                    tracing::error!(error = %e, "the JavaScript engine could not start");
                }
                thread_broken.store(true, Ordering::SeqCst);
            })?;
        Ok(JsSandbox {
            jobs,
            usage,
            broken,
        })
    }

    /// Whether the sandbox can no longer run code (its thread stopped or
    /// overran a deadline); its owner replaces it.
    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::SeqCst)
    }

    pub fn usage(&self) -> Usage {
        self.usage.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Runs a call once the calls queued before it are done: a tenant's
    /// JavaScript runs one call at a time, on one core at most.
    pub async fn run(&self, call: Call) -> Result<Returned, Failure> {
        let limit = call.limits.wall.0 + WATCHDOG_GRACE;
        let (started, running) = tokio::sync::oneshot::channel();
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = Job {
            call,
            started,
            reply,
        };
        if self.is_broken() || self.jobs.send(job).is_err() {
            return Err(Failure::new(
                Class::Crashed,
                "the JavaScript sandbox stopped",
            ));
        }
        match tokio::time::timeout(QUEUE_WAIT, running).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                return Err(Failure::new(
                    Class::Crashed,
                    "the JavaScript sandbox stopped",
                ));
            }
            Err(_) => {
                return Err(Failure::new(
                    Class::Timeout,
                    "the sandbox stayed busy with earlier calls of this tenant",
                ));
            }
        }
        match tokio::time::timeout(limit, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => {
                self.broken.store(true, Ordering::SeqCst);
                Err(Failure::new(
                    Class::Crashed,
                    "the JavaScript sandbox stopped",
                ))
            }
            Err(_) => {
                self.broken.store(true, Ordering::SeqCst);
                Err(Failure::new(
                    Class::Timeout,
                    "the code did not stop at its deadline; its sandbox was discarded",
                ))
            }
        }
    }
}

/// The sandbox thread: one runtime, one call at a time.
fn serve(queue: &std::sync::mpsc::Receiver<Job>, usage: &Mutex<Usage>) -> rquickjs::Result<()> {
    let runtime = Runtime::new()?;
    runtime.set_max_stack_size(STACK_BYTES);
    let deadline: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let interrupted = Arc::new(AtomicBool::new(false));
    let (handler_deadline, handler_flag) = (deadline.clone(), interrupted.clone());
    runtime.set_interrupt_handler(Some(Box::new(move || {
        let due = handler_deadline
            .lock()
            .map(|d| d.is_some_and(|d| Instant::now() >= d))
            .unwrap_or(true);
        if due {
            handler_flag.store(true, Ordering::SeqCst);
        }
        due
    })));
    for job in queue {
        let _ = job.started.send(());
        let started = Instant::now();
        interrupted.store(false, Ordering::SeqCst);
        *deadline.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(started + job.call.limits.wall.0);
        runtime.set_memory_limit((job.call.limits.memory_mb as usize) << 20);
        let result = run_call(&runtime, &job.call, &interrupted);
        *deadline.lock().unwrap_or_else(|p| p.into_inner()) = None;
        // Free what the call left behind before the next one's limit applies.
        runtime.set_memory_limit(0);
        runtime.run_gc();
        let mut usage = usage.lock().unwrap_or_else(|p| p.into_inner());
        usage.calls += 1;
        usage.failures += u64::from(result.is_err());
        usage.busy_ms += started.elapsed().as_millis() as u64;
        usage.memory_bytes = runtime.memory_usage().malloc_size.max(0) as u64;
        drop(usage);
        let _ = job.reply.send(result);
    }
    Ok(())
}

/// The wrapper around the user's function body: `input` is parsed from JSON
/// inside the sandbox, and the result leaves it as JSON text.
fn script(source: &str) -> String {
    format!(
        "(() => {{ const input = JSON.parse(globalThis.__flowmesh_input); \
         delete globalThis.__flowmesh_input; \
         const result = (function (input) {{\n{source}\n}})(input); \
         return result === undefined ? 'null' : JSON.stringify(result); }})()"
    )
}

fn run_call(runtime: &Runtime, call: &Call, interrupted: &AtomicBool) -> Result<Returned, Failure> {
    let context = Context::full(runtime).map_err(|e| engine_failure(&e))?;
    let logs = Rc::new(RefCell::new(Vec::new()));
    let result = context.with(|ctx| -> Result<Option<String>, Failure> {
        install_console(&ctx, &logs).map_err(|e| engine_failure(&e))?;
        ctx.globals()
            .set("__flowmesh_input", call.input.as_str())
            .map_err(|e| engine_failure(&e))?;
        let value: Value = ctx
            .eval(script(&call.source))
            .catch(&ctx)
            .map_err(|e| classify(&e, interrupted))?;
        Ok(value.as_string().and_then(|s| s.to_string().ok()))
    });
    drop(context);
    let logs = logs.take();
    let with_logs = |mut failure: Failure| {
        failure.logs = logs.clone();
        failure
    };
    let json = match result {
        Ok(Some(json)) => json,
        Ok(None) => {
            return Err(with_logs(Failure::new(
                Class::Code,
                "the code returned something that is not JSON (a function?)",
            )));
        }
        Err(failure) => return Err(with_logs(failure)),
    };
    if json.len() as u64 > call.limits.output_bytes {
        return Err(with_logs(Failure::new(
            Class::OutputTooLarge,
            format!(
                "the output is {} bytes, more than the limit of {}",
                json.len(),
                call.limits.output_bytes
            ),
        )));
    }
    match serde_json::from_str(&json) {
        Ok(output) => Ok(Returned { output, logs }),
        Err(e) => Err(with_logs(Failure::new(
            Class::Code,
            format!("the output is not JSON: {e}"),
        ))),
    }
}

/// `console.log` and friends write to the call's logs.
fn install_console<'js>(ctx: &Ctx<'js>, logs: &Rc<RefCell<Vec<String>>>) -> rquickjs::Result<()> {
    let console = Object::new(ctx.clone())?;
    for level in ["log", "info", "warn", "error", "debug"] {
        let logs = logs.clone();
        let log = Function::new(ctx.clone(), move |ctx: Ctx<'js>, args: Rest<Value<'js>>| {
            let parts: Vec<String> = args.0.into_iter().map(|v| display(&ctx, v)).collect();
            let line = match level {
                "log" | "info" | "debug" => parts.join(" "),
                _ => format!("{level}: {}", parts.join(" ")),
            };
            push_log(&mut logs.borrow_mut(), &line);
        })?;
        console.set(level, log)?;
    }
    ctx.globals().set("console", console)
}

fn display<'js>(ctx: &Ctx<'js>, value: Value<'js>) -> String {
    if let Some(s) = value.as_string() {
        return s.to_string().unwrap_or_default();
    }
    match ctx.json_stringify(value) {
        Ok(Some(s)) => s.to_string().unwrap_or_default(),
        _ => "undefined".to_owned(),
    }
}

fn engine_failure(e: &rquickjs::Error) -> Failure {
    match e {
        rquickjs::Error::Allocation => Failure::new(Class::Memory, "the code ran out of memory"),
        other => Failure::new(
            Class::Crashed,
            format!("the JavaScript engine failed: {other}"),
        ),
    }
}

fn classify(error: &CaughtError<'_>, interrupted: &AtomicBool) -> Failure {
    if interrupted.load(Ordering::SeqCst) {
        return Failure::new(Class::Timeout, "the code passed its time limit");
    }
    let (message, stack) = match error {
        CaughtError::Error(e) => return engine_failure(e),
        CaughtError::Exception(e) => (
            e.message().unwrap_or_default(),
            e.stack().unwrap_or_default(),
        ),
        CaughtError::Value(v) => (format!("uncaught {:?}", v.type_of()), String::new()),
    };
    let class = if message.contains("out of memory") {
        Class::Memory
    } else if message.contains("stack overflow") || message.contains("call stack size exceeded") {
        return Failure::new(
            Class::Memory,
            "the code passed its stack limit (recursion too deep)",
        );
    } else {
        Class::Code
    };
    let mut failure = Failure::new(class, message);
    if class == Class::Code && !stack.is_empty() {
        failure.message = format!("{}\n{}", failure.message, stack.trim_end());
    }
    failure
}
