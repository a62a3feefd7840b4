//! The JavaScript worker process and its protocol: `READY` out on stdout
//! once it has started, then one JSON request line in on stdin per call and
//! one JSON answer line out on stdout. The worker opens no file or socket;
//! the end of its stdin (its engine is gone) ends it, even in the middle of
//! a call.

use std::io::{BufRead, Read, Write};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use super::quickjs::JsEngine;
use crate::{Call, Class, Failure, Returned};

/// What a worker writes once it has started and waits for its first call.
pub const READY: &[u8] = b"ready\n";
/// Longest request line (the code and its input, as JSON).
pub const MAX_REQUEST_BYTES: u64 = 64 << 20;
/// Room in an answer beside the output: the logs (at most 200 lines of
/// 2,000 bytes, escaped) and an error message.
const LOG_ROOM: u64 = 4 << 20;
/// Stack of the thread that runs calls: room for QuickJS's own frames
/// beyond the code's limit.
const THREAD_STACK_BYTES: usize = 8 * 1024 * 1024;
/// The calling thread's priority on the crate's 0-99 scale: nice 10 on
/// Linux, the same as the Python processes.
const LOWER_PRIORITY: u8 = 22;

/// One call, as the engine sends it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The body of a function of `input`.
    pub source: String,
    /// What `input` is bound to, as JSON text.
    pub input: String,
    pub wall_ms: u64,
    pub memory_bytes: u64,
    pub output_bytes: u64,
}

impl From<&Call> for Request {
    fn from(call: &Call) -> Request {
        Request {
            source: call.source.clone(),
            input: call.input.clone(),
            wall_ms: u64::try_from(call.limits.wall.0.as_millis()).unwrap_or(u64::MAX),
            memory_bytes: call.limits.memory_mb << 20,
            output_bytes: call.limits.output_bytes,
        }
    }
}

/// What a call came to, as the worker answers it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// The output as the code's JSON text, at most `output_bytes` long.
    Returned {
        output: Box<RawValue>,
        logs: Vec<String>,
    },
    Failed(Failure),
}

impl Answer {
    /// The longest answer line to a request allowing `output_bytes`.
    pub fn limit(output_bytes: u64) -> u64 {
        output_bytes + LOG_ROOM
    }

    pub fn into_result(self) -> Result<Returned, Failure> {
        match self {
            Answer::Returned { output, logs } => {
                match serde_json::from_str::<Value>(output.get()) {
                    Ok(output) => Ok(Returned { output, logs }),
                    Err(e) => Err(Failure {
                        class: Class::Code,
                        message: format!("the output is not JSON: {e}"),
                        logs,
                    }),
                }
            }
            Answer::Failed(failure) => Err(failure),
        }
    }
}

/// Reads the next request; none once `input` has ended.
fn read_request(input: &mut impl BufRead) -> std::io::Result<Option<Request>> {
    let mut line = Vec::new();
    input
        .take(MAX_REQUEST_BYTES + 1)
        .read_until(b'\n', &mut line)?;
    if line.is_empty() {
        return Ok(None);
    }
    if line.len() as u64 > MAX_REQUEST_BYTES {
        return Err(std::io::Error::other(format!(
            "a request longer than {MAX_REQUEST_BYTES} bytes"
        )));
    }
    serde_json::from_slice(&line)
        .map(Some)
        .map_err(|e| std::io::Error::other(format!("a request that is not one: {e}")))
}

/// Serves the requests of `input` until it ends, answering on `output`.
/// Calls run on a thread of their own, so that the end of `input` is seen
/// while a call runs: `serve` then returns, and a worker process exits with
/// its call unfinished.
pub fn serve(mut input: impl BufRead, output: impl Write + Send + 'static) -> std::io::Result<()> {
    let (calls, queue) = std::sync::mpsc::channel::<Request>();
    std::thread::Builder::new()
        .name("js".into())
        .stack_size(THREAD_STACK_BYTES)
        .spawn(move || {
            if let Err(e) = answer(&queue, output) {
                eprintln!("the JavaScript worker stopped: {e}");
            }
        })?;
    while let Some(request) = read_request(&mut input)? {
        if calls.send(request).is_err() {
            return Err(std::io::Error::other("the JavaScript engine stopped"));
        }
    }
    Ok(())
}

/// The calling thread: one engine, one call at a time.
fn answer(
    queue: &std::sync::mpsc::Receiver<Request>,
    mut output: impl Write,
) -> std::io::Result<()> {
    // User code yields to everything else on the host: a tenant's loop slows
    // its own tenant, not the engine serving the others.
    let lower = LOWER_PRIORITY
        .try_into()
        .map(thread_priority::ThreadPriority::Crossplatform);
    if let Err(e) = lower
        .and_then(|p| thread_priority::set_current_thread_priority(p).map_err(|e| e.to_string()))
    {
        eprintln!("the JavaScript worker keeps its priority: {e}");
    }
    let engine = JsEngine::new().map_err(std::io::Error::other)?;
    output.write_all(READY)?;
    output.flush()?;
    for request in queue {
        let mut line = serde_json::to_vec(&engine.run(&request))?;
        line.push(b'\n');
        output.write_all(&line)?;
        output.flush()?;
    }
    Ok(())
}
