//! Sandboxes for the `code` node: user code that cannot hurt the engine,
//! the host or another tenant.
//!
//! - JavaScript runs in QuickJS (rquickjs) on a thread of its own per
//!   sandbox: a memory limit, a stack limit and an interrupt handler that
//!   stops the code at its deadline, a fresh context for every call, and no
//!   I/O of any kind in the engine.
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
pub use js::JsSandbox;
pub use limits::{Limits, LimitsOverride};
pub use python::PythonSandbox;

/// The languages of the `code` node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
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

/// Appends a line to a call's logs, within bounds.
fn push_log(logs: &mut Vec<String>, line: &str) {
    if logs.len() < MAX_LOG_LINES {
        let mut line = line.to_owned();
        if line.len() > MAX_LOG_LINE {
            let mut end = MAX_LOG_LINE;
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            line.truncate(end);
            line.push('…');
        }
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
    /// Memory held now (JavaScript: the engine's heap; Python: the warm
    /// processes' resident memory), in bytes.
    pub memory_bytes: u64,
    /// Time spent running calls, in milliseconds.
    pub busy_ms: u64,
}
