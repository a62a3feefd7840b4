//! What this host lets the Python sandbox use: a network namespace of its
//! own (`unshare -n`, as root; `unshare -rn`, through a user namespace,
//! otherwise), and, as root, an unprivileged user for the code (`setpriv`).

use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};

use serde::Serialize;

/// The unprivileged user and group the code runs as when the engine is root.
pub const NOBODY: u32 = 65_534;

/// How Python processes are kept off the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkIsolation {
    /// A network namespace of their own (`unshare -n`).
    Namespace,
    /// A network namespace inside a user namespace (`unshare -rn`).
    UserNamespace,
    /// None available: only the audit hook refuses sockets.
    Unavailable,
}

/// What the host offers, found once at start-up.
#[derive(Clone, Debug, Serialize)]
pub struct Isolation {
    pub network: NetworkIsolation,
    /// Whether the code runs as an unprivileged user (the engine is root and
    /// `setpriv` is there); otherwise it runs as the engine's own user.
    pub drops_privileges: bool,
}

fn works(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Isolation {
    pub fn detect() -> Isolation {
        let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        let network = if works("unshare", &["-n", "true"]) {
            NetworkIsolation::Namespace
        } else if works("unshare", &["-rn", "true"]) {
            NetworkIsolation::UserNamespace
        } else {
            NetworkIsolation::Unavailable
        };
        let drops_privileges = root && works("setpriv", &["--reuid=65534", "true"]);
        Isolation {
            network,
            drops_privileges,
        }
    }

    /// The command line that starts a sandboxed program, before the
    /// program's own. Sandboxed programs run at a lower priority than the
    /// engine, so that code running to its limits slows its own tenant, not
    /// the engine serving the others.
    pub fn prefix(&self, network: bool) -> Vec<String> {
        let mut prefix = vec!["nice", "-n", "10"];
        if !network {
            match self.network {
                NetworkIsolation::Namespace => prefix.extend(["unshare", "-n", "--"]),
                NetworkIsolation::UserNamespace => prefix.extend(["unshare", "-rn", "--"]),
                NetworkIsolation::Unavailable => {}
            }
        }
        if self.drops_privileges {
            let (uid, gid) = (format!("--reuid={NOBODY}"), format!("--regid={NOBODY}"));
            let mut owned: Vec<String> = prefix.iter().map(|s| s.to_string()).collect();
            owned.extend(["setpriv".to_owned(), uid, gid, "--clear-groups".to_owned()]);
            owned.push("--".to_owned());
            return owned;
        }
        prefix.into_iter().map(str::to_owned).collect()
    }
}
