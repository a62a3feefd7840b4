//! The inner layer of the JavaScript sandbox, inside the worker process:
//! one QuickJS runtime, a fresh context per call (so nothing one call leaves
//! on a prototype reaches the next), the memory and stack limits of the
//! call, and an interrupt handler that stops the code at its deadline.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rquickjs::function::Rest;
use rquickjs::{CatchResultExt, CaughtError, Context, Ctx, Function, Object, Runtime, Value};
use serde_json::value::RawValue;

use super::worker::{Answer, Request};
use crate::{Class, Failure, push_log, truncate};

/// Stack the JavaScript code may use.
const STACK_BYTES: usize = 512 * 1024;
/// Longest error message kept from a call.
const MAX_MESSAGE: usize = 8_192;

/// A QuickJS runtime that runs one call at a time.
pub struct JsEngine {
    runtime: Runtime,
    deadline: Arc<Mutex<Option<Instant>>>,
    interrupted: Arc<AtomicBool>,
}

impl JsEngine {
    pub fn new() -> rquickjs::Result<JsEngine> {
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
        Ok(JsEngine {
            runtime,
            deadline,
            interrupted,
        })
    }

    /// Runs one call to its end, its deadline or its memory limit.
    pub fn run(&self, request: &Request) -> Answer {
        self.interrupted.store(false, Ordering::SeqCst);
        *self.deadline.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(Instant::now() + Duration::from_millis(request.wall_ms));
        self.runtime
            .set_memory_limit(usize::try_from(request.memory_bytes).unwrap_or(usize::MAX));
        let result = run_call(&self.runtime, request, &self.interrupted);
        *self.deadline.lock().unwrap_or_else(|p| p.into_inner()) = None;
        // Free what the call left behind before the next one's limit applies.
        self.runtime.set_memory_limit(0);
        self.runtime.run_gc();
        match result {
            Ok((output, logs)) => Answer::Returned { output, logs },
            Err(mut failure) => {
                truncate(&mut failure.message, MAX_MESSAGE);
                Answer::Failed(failure)
            }
        }
    }
}

/// The line of the wrapped script on which the user's source begins.
pub(super) const SOURCE_LINE: u32 = 2;

/// The wrapper around the user's function body: `input` is parsed from JSON
/// inside the sandbox, and the result leaves it as JSON text.
pub(super) fn script(source: &str) -> String {
    format!(
        "(() => {{ const input = JSON.parse(globalThis.__flowmesh_input); \
         delete globalThis.__flowmesh_input; \
         const result = (function (input) {{\n{source}\n}})(input); \
         return result === undefined ? 'null' : JSON.stringify(result); }})()"
    )
}

fn run_call(
    runtime: &Runtime,
    call: &Request,
    interrupted: &AtomicBool,
) -> Result<(Box<RawValue>, Vec<String>), Failure> {
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
    if json.len() as u64 > call.output_bytes {
        return Err(with_logs(Failure::new(
            Class::OutputTooLarge,
            format!(
                "the output is {} bytes, more than the limit of {}",
                json.len(),
                call.output_bytes
            ),
        )));
    }
    match RawValue::from_string(json) {
        Ok(output) => Ok((output, logs)),
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
