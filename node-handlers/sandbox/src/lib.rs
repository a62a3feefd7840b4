//! Sandboxes for the `code` node: user code that cannot hurt the engine,
//! the host or another tenant.
//!
//! - JavaScript runs in QuickJS (rquickjs) in a worker process per sandbox,
//!   started through the jail: a memory limit, a stack limit and an
//!   interrupt handler that stops the code at its deadline, a fresh context
//!   for every call, and no I/O of any kind. Code that ignores the interrupt
//!   (a built-in running for minutes) has its process killed at its wall
//!   limit; the next call gets a fresh one.
//! - Python runs in a separate `python3` process per call, taken from a warm
//!   pool, inside the jail (`jail.rs`: bubblewrap namespaces, a seccomp
//!   filter, a size-limited tmpfs working directory, a host uid per tenant
//!   when the engine is root), with an empty environment, limits on address
//!   space, CPU time, file size and processes, and an audit hook that refuses
//!   process creation, native code, sockets and files outside the working
//!   directory and the standard library.
//!
//! The caller (the engine's SandboxActor) decides which sandbox serves a
//! tenant; a sandbox never serves two tenants.

mod jail;
mod js;
mod limits;
mod python;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use jail::{Jail, JailOptions, JailSpec, Namespaces, WithoutJail};
pub use js::worker::{self, Answer, Request};
pub use js::{JsEngine, JsSandbox, JsStart, SyntaxError, check_javascript};
pub use limits::{Limits, LimitsOverride};
pub use python::PythonSandbox;

/// The languages of the `code` node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Javascript,
    Python,
}

impl Language {
    pub fn as_str(self) -> &'static str {
        match self {
            Language::Javascript => "javascript",
            Language::Python => "python",
        }
    }
}

/// Settings of the sandboxes of one engine process.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Options {
    /// Limits of a code node that sets none.
    pub defaults: Limits,
    /// The most a node may ask for, for every tenant without its own entry.
    pub maxima: Limits,
    /// Maxima of particular tenants (by slug), replacing `maxima`.
    pub tenant_maxima: std::collections::BTreeMap<String, Limits>,
    /// Python processes kept started and waiting, per sandbox.
    pub python_warm: usize,
    /// Python calls of one tenant running at once in one engine process;
    /// the rest wait their turn (each may hold its memory limit).
    pub python_concurrency: usize,
    /// The program that runs JavaScript (`<program> sandbox-worker
    /// javascript`); none: this executable.
    pub javascript_worker: Option<std::path::PathBuf>,
    /// The jail: bubblewrap, the Python interpreter, the tenants' uids, and
    /// what to do where the jail does not work.
    #[serde(skip)]
    pub jail: JailOptions,
    /// Size of a Python call's working directory (a tmpfs), in bytes: all
    /// the code may write.
    pub workdir_bytes: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            defaults: Limits::default(),
            maxima: Limits::maxima(),
            tenant_maxima: Default::default(),
            python_warm: 2,
            python_concurrency: 4,
            javascript_worker: None,
            jail: JailOptions::default(),
            workdir_bytes: 16 << 20,
        }
    }
}

impl Options {
    /// The maxima that apply to a tenant.
    pub fn maxima_for(&self, tenant_slug: &str) -> &Limits {
        self.tenant_maxima.get(tenant_slug).unwrap_or(&self.maxima)
    }

    /// The program that runs JavaScript workers.
    pub fn javascript_worker(&self) -> std::io::Result<std::path::PathBuf> {
        match &self.javascript_worker {
            Some(program) => Ok(program.clone()),
            None => std::env::current_exe(),
        }
    }
}

/// One call of user code.
#[derive(Clone, Debug)]
pub struct Call {
    /// The body of a function of `input`.
    pub source: String,
    /// What `input` is bound to, as JSON text.
    pub input: String,
    pub limits: Limits,
}

/// What a call returned, with what it printed.
#[derive(Clone, Debug, PartialEq)]
pub struct Returned {
    pub output: Value,
    pub logs: Vec<String>,
}

/// How a call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// Past its wall-clock or CPU time.
    Timeout,
    /// Past its memory (or stack) limit.
    Memory,
    /// Returned more than its output limit.
    OutputTooLarge,
    /// The sandbox itself died (a signal, a broken interpreter).
    Crashed,
    /// Tried something the sandbox forbids (processes, native code, network,
    /// files outside its directory, a file past its size limit).
    Denied,
    /// The user's code raised an error or returned something that is not JSON.
    Code,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Timeout => "timeout",
            Class::Memory => "memory",
            Class::OutputTooLarge => "output_too_large",
            Class::Crashed => "crashed",
            Class::Denied => "denied",
            Class::Code => "code",
        }
    }
}

/// A failed call, with what the code printed before it failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[error("{}: {message}", class.as_str())]
pub struct Failure {
    pub class: Class,
    pub message: String,
    pub logs: Vec<String>,
}

impl Failure {
    pub fn new(class: Class, message: impl Into<String>) -> Self {
        Failure {
            class,
            message: message.into(),
            logs: Vec::new(),
        }
    }
}

/// Most log lines kept from one call, and most bytes of one line.
const MAX_LOG_LINES: usize = 200;
const MAX_LOG_LINE: usize = 2_000;

/// Cuts a text to at most `max` bytes (at a character boundary), marking
/// the cut.
fn truncate(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
}

/// Appends a line to a call's logs, within bounds.
fn push_log(logs: &mut Vec<String>, line: &str) {
    if logs.len() < MAX_LOG_LINES {
        let mut line = line.to_owned();
        truncate(&mut line, MAX_LOG_LINE);
        logs.push(line);
    } else if logs.len() == MAX_LOG_LINES {
        logs.push("… (further lines dropped)".to_owned());
    }
}

/// A running sandbox's resource use, for operators.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Usage {
    pub calls: u64,
    pub failures: u64,
    /// Memory held now (the resident memory of the sandbox's processes:
    /// JavaScript's worker, Python's warm pool), in bytes.
    pub memory_bytes: u64,
    /// Time spent running calls, in milliseconds.
    pub busy_ms: u64,
}

impl Usage {
    /// A copy of counters kept behind a lock.
    fn read(usage: &std::sync::Mutex<Usage>) -> Usage {
        usage.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Counts a call that ended.
    fn record<T>(
        usage: &std::sync::Mutex<Usage>,
        result: &Result<T, Failure>,
        took: std::time::Duration,
    ) {
        let mut usage = usage.lock().unwrap_or_else(|p| p.into_inner());
        usage.calls += 1;
        usage.failures += u64::from(result.is_err());
        usage.busy_ms += took.as_millis() as u64;
    }
}

/// Resident memory of a process, in bytes.
fn rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

/// The resident memory of a process and its descendants: the engine starts
/// bubblewrap, whose children run the code.
fn tree_rss(pid: u32) -> u64 {
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    rss(pid).unwrap_or(0)
        + children
            .split_whitespace()
            .filter_map(|c| c.parse().ok())
            .map(tree_rss)
            .sum::<u64>()
}
