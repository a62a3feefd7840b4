//! Starts sandbox processes. This build runs the program as it is, with an
//! empty environment and no confinement beyond what its caller sets.

use serde::{Deserialize, Serialize};

use crate::Failure;

/// How sandbox processes are confined.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JailOptions {}

/// What the host offers to confine sandbox processes, found once at start-up.
#[derive(Clone, Debug, Serialize)]
pub struct Jail {}

/// One program to run in the jail.
pub struct JailSpec<'a> {
    /// Bound read-only into the jail at the same path.
    pub program: &'a std::path::Path,
    pub args: &'a [String],
    /// The host uid and gid the code runs as when the engine is root (per tenant).
    pub uid: Option<u32>,
    /// Size of the private tmpfs working directory, in bytes.
    pub workdir_bytes: u64,
}

impl Jail {
    pub fn detect(_options: &JailOptions) -> Jail {
        Jail {}
    }

    /// Whether sandbox processes may be started.
    pub fn check(&self) -> Result<(), Failure> {
        Ok(())
    }

    /// A command that runs `spec.program spec.args` inside the jail (stdio
    /// left for the caller to set).
    pub fn command(&self, spec: &JailSpec<'_>) -> std::io::Result<tokio::process::Command> {
        let mut command = tokio::process::Command::new(spec.program);
        command.args(spec.args).env_clear();
        Ok(command)
    }
}
