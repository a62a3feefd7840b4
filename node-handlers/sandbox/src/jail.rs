//! The jail of sandboxed processes: bubblewrap (`bwrap`) gives each one new
//! user, PID, mount, network, IPC, UTS (and cgroup) namespaces, a mount view
//! holding only its program, the shared libraries and standard library it
//! needs (read-only), a fresh `/proc`, a minimal `/dev` and a size-limited
//! tmpfs working directory, and loads a seccomp filter that refuses signals
//! to other processes, process handles, sockets, mounts and namespaces.
//! When the engine is root, each tenant's code runs as a host uid of its own.
//!
//! What the host offers is found once, at start-up, by a real probe: a
//! jailed interpreter reports its namespaces, its seccomp mode and whether
//! a socket and a signal were refused. Landlock is not used.

mod seccomp;

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::ops::Range;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use command_fds::{CommandFdExt, FdMapping};
use serde::{Deserialize, Serialize};

use crate::{Class, Failure};

/// The uid the code runs as when the engine is root and no tenant uid is given.
const NOBODY: u32 = 65_534;
/// Where the working directory is, inside the jail.
pub const WORKDIR: &str = "/work";
/// Where an interpreter may not live: a home directory can hold a shim that
/// is not the interpreter it claims to be.
const HOMES: &[&str] = &["/home", "/root"];
/// The child's descriptors that carry the seccomp filters to bubblewrap.
const FILTER_FDS: [i32; 2] = [3, 4];

/// Settings of the jail.
#[derive(Clone, Debug)]
pub struct JailOptions {
    /// The bubblewrap program.
    pub bwrap: PathBuf,
    /// The Python interpreter, which the probe runs (and whose standard
    /// library is bound into the jail when it is the program).
    pub python: PathBuf,
    /// The host uids tenants' code runs as when the engine is root.
    pub uid_range: Range<u32>,
    /// What to do where the jail does not work.
    pub without_jail: WithoutJail,
}

impl Default for JailOptions {
    fn default() -> Self {
        JailOptions {
            bwrap: PathBuf::from("bwrap"),
            python: PathBuf::from("/usr/bin/python3"),
            uid_range: 1_000_000..1_065_536,
            without_jail: WithoutJail::Refuse,
        }
    }
}

/// What to do with code where the host cannot jail it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WithoutJail {
    /// Refuse it (the default).
    Refuse,
    /// Run it anyway, bounded only by the interpreter's audit hook and
    /// resource limits: an operator's explicit choice.
    Allow,
}

/// The namespaces the probe found its jailed process in.
#[derive(Clone, Debug, Default, Serialize, schemars::JsonSchema)]
pub struct Namespaces {
    pub user: bool,
    pub pid: bool,
    pub mount: bool,
    pub network: bool,
    pub ipc: bool,
    pub uts: bool,
    pub cgroup: bool,
}

/// What the host offers sandboxed processes, found once at start-up by a real probe.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct Jail {
    /// bubblewrap's version, if it ran.
    pub bwrap: Option<String>,
    pub namespaces: Namespaces,
    /// The seccomp filter was loaded and refused what it should.
    pub seccomp: bool,
    /// The jail has a `/proc` of its own PID namespace. Some container
    /// runtimes mask parts of theirs, which forbids mounting a new one; the
    /// jail then has none.
    pub proc: bool,
    pub landlock: &'static str,
    /// Each tenant's code runs as a host uid of its own (the engine is
    /// root); otherwise it runs as the engine's uid, inside the namespaces.
    pub uid_per_tenant: bool,
    pub uid_range: Range<u32>,
    pub without_jail: WithoutJail,
    /// Why code cannot be jailed here, if it cannot.
    pub problem: Option<String>,
    #[serde(skip)]
    setup: Arc<Setup>,
}

#[derive(Debug, Default)]
struct Setup {
    bwrap: PathBuf,
    root: bool,
    /// Whether the jail mounts a `/proc` of its own.
    proc: bool,
    filters: Option<[Vec<u8>; 2]>,
    /// The interpreter, resolved, and its standard library.
    python: Option<PathBuf>,
    stdlib: Vec<PathBuf>,
    /// bubblewrap's arguments binding a program and what it needs, by program.
    binds: Mutex<HashMap<PathBuf, Arc<Vec<String>>>>,
}

/// One program to run in the jail.
pub struct JailSpec<'a> {
    /// Bound read-only into the jail at the same path (with the shared libraries it needs).
    pub program: &'a Path,
    pub args: &'a [String],
    /// The host uid and gid the code runs as when the engine is root (per
    /// tenant; without one, the user nobody).
    pub uid: Option<u32>,
    /// Size of the private tmpfs working directory, in bytes.
    pub workdir_bytes: u64,
}

/// What the probe writes (with no `/proc`, only its pid and what was refused).
const PROBE: &str = r#"
import json, os, socket
ns, mode = {}, []
if os.path.exists("/proc/self"):
    ns = {n: os.readlink("/proc/self/ns/" + n) for n in ("user", "pid", "mnt", "net", "ipc", "uts", "cgroup")}
    mode = [l.split()[1] for l in open("/proc/self/status") if l.startswith("Seccomp:")]
refused = []
for name, attempt in (("socket", lambda: socket.socket(socket.AF_UNIX)), ("kill", lambda: os.kill(1, 0))):
    try:
        attempt()
    except PermissionError:
        refused.append(name)
print(json.dumps({"ns": ns, "seccomp": mode[0] if mode else "", "refused": refused, "pid": os.getpid()}))
"#;

#[derive(Deserialize)]
struct ProbeAnswer {
    ns: HashMap<String, String>,
    seccomp: String,
    refused: Vec<String>,
    pid: u32,
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

impl Jail {
    pub fn detect(options: &JailOptions) -> Jail {
        let mut setup = Setup {
            bwrap: options.bwrap.clone(),
            root: is_root(),
            ..Default::default()
        };
        let mut jail = Jail::unprobed(options, setup.root);
        let problem = jail.probe(options, &mut setup).err();
        jail.problem = problem;
        jail.setup = Arc::new(setup);
        jail
    }

    /// The jail of a process that runs no code, not probed (no bubblewrap
    /// started, nothing logged): it refuses every call, saying `why`.
    pub fn unused(options: &JailOptions, why: &str) -> Jail {
        Jail {
            without_jail: WithoutJail::Refuse,
            problem: Some(why.to_owned()),
            ..Jail::unprobed(options, false)
        }
    }

    fn unprobed(options: &JailOptions, root: bool) -> Jail {
        Jail {
            bwrap: None,
            namespaces: Namespaces::default(),
            seccomp: false,
            proc: false,
            landlock: "not used",
            uid_per_tenant: root,
            uid_range: options.uid_range.clone(),
            without_jail: options.without_jail,
            problem: None,
            setup: Arc::default(),
        }
    }

    fn probe(&mut self, options: &JailOptions, setup: &mut Setup) -> Result<(), String> {
        if setup.root && options.uid_range.is_empty() {
            return Err("the sandbox uid range is empty".into());
        }
        let version = Command::new(&options.bwrap)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("bubblewrap ({}) cannot run: {e}", options.bwrap.display()))?;
        self.bwrap = Some(String::from_utf8_lossy(&version.stdout).trim().to_owned());
        setup.filters = Some(seccomp::filters().map_err(|e| e.to_string())?);
        let python = std::fs::canonicalize(&options.python)
            .map_err(|e| format!("the interpreter {}: {e}", options.python.display()))?;
        if HOMES.iter().any(|home| python.starts_with(home)) {
            return Err(format!(
                "the interpreter {} is under a home directory; use a system interpreter",
                python.display()
            ));
        }
        setup.stdlib = stdlib(&python)?;
        setup.python = Some(python.clone());
        let args = ["-I", "-S", "-c", PROBE].map(str::to_owned);
        let spec = JailSpec {
            program: &python,
            args: &args,
            uid: Some(options.uid_range.start),
            workdir_bytes: 1 << 20,
        };
        setup.proc = true;
        let answer = match probe_answer(setup, &spec) {
            Ok(answer) => answer,
            Err(with_proc) => {
                setup.proc = false;
                probe_answer(setup, &spec).map_err(|_| with_proc)?
            }
        };
        self.proc = setup.proc;
        let refused = answer.refused.len() == 2;
        if setup.proc {
            let host = |name: &str| std::fs::read_link(format!("/proc/self/ns/{name}")).ok();
            let own = |name: &str| {
                let inside = answer.ns.get(name).map(PathBuf::from);
                inside.is_some() && inside != host(name)
            };
            self.namespaces = Namespaces {
                user: own("user"),
                pid: own("pid"),
                mount: own("mnt"),
                network: own("net"),
                ipc: own("ipc"),
                uts: own("uts"),
                cgroup: own("cgroup"),
            };
            self.seccomp = answer.seccomp == "2" && refused;
        } else {
            // Unseen without /proc; bubblewrap fails when it cannot make
            // one it is asked for (all but the cgroup namespace).
            self.namespaces = Namespaces {
                user: true,
                pid: answer.pid <= 2,
                mount: true,
                network: true,
                ipc: true,
                uts: true,
                cgroup: false,
            };
            self.seccomp = refused;
        }
        let n = &self.namespaces;
        if !(n.user && n.pid && n.mount && n.network && n.ipc) {
            return Err(format!("the jail lacks namespaces: {n:?}"));
        }
        if !self.seccomp {
            return Err("the seccomp filter did not hold in the jail".into());
        }
        Ok(())
    }

    /// Says what was found in the engine's log (at start-up).
    pub fn logged(self) -> Jail {
        let n = &self.namespaces;
        let namespaces: Vec<&str> = [
            (n.user, "user"),
            (n.pid, "pid"),
            (n.mount, "mount"),
            (n.network, "network"),
            (n.ipc, "ipc"),
            (n.uts, "uts"),
            (n.cgroup, "cgroup"),
        ]
        .into_iter()
        .filter_map(|(found, name)| found.then_some(name))
        .collect();
        let found = format!(
            "bubblewrap: {}; namespaces: {}; seccomp: {}; /proc: {}; Landlock: not used; uid: {}",
            self.bwrap.as_deref().unwrap_or("not found"),
            if namespaces.is_empty() {
                "none".to_owned()
            } else {
                namespaces.join(" ")
            },
            if self.seccomp { "yes" } else { "no" },
            if self.proc { "its own" } else { "none" },
            if self.uid_per_tenant {
                format!(
                    "one per tenant from {}..{}",
                    self.uid_range.start, self.uid_range.end
                )
            } else {
                "the engine's own".to_owned()
            },
        );
        match (&self.problem, self.without_jail) {
            (None, _) => tracing::info!(%found, "code nodes run in the jail"),
            (Some(problem), WithoutJail::Allow) => {
                tracing::warn!(%found, %problem, "code nodes run WITHOUT the jail (--sandbox-without-jail allow)")
            }
            (Some(problem), WithoutJail::Refuse) => {
                tracing::warn!(%found, %problem, "code nodes are refused: this host cannot jail them")
            }
        }
        self
    }

    /// Whether code may run here (the jail works, or the operator opted in), with the reason if not.
    pub fn check(&self) -> Result<(), Failure> {
        match &self.problem {
            None => Ok(()),
            Some(_) if self.without_jail == WithoutJail::Allow => Ok(()),
            Some(problem) => Err(Failure::new(
                Class::Denied,
                format!(
                    "code nodes are refused on this host: it cannot jail them ({problem}); an \
                     operator may run them without the jail with --sandbox-without-jail allow"
                ),
            )),
        }
    }

    /// Whether processes run in the jail (otherwise the operator opted out).
    pub fn is_jailed(&self) -> bool {
        self.problem.is_none()
    }

    /// The host uid of a tenant's code, from the tenant's number (assigned
    /// once, unique), when the engine is root.
    pub fn tenant_uid(&self, number: u32) -> Result<Option<u32>, Failure> {
        if !self.uid_per_tenant {
            return Ok(None);
        }
        match self.uid_range.start.checked_add(number) {
            Some(uid) if uid < self.uid_range.end => Ok(Some(uid)),
            _ => Err(Failure::new(
                Class::Denied,
                format!(
                    "no sandbox uid left for this tenant: the range {}..{} is used up",
                    self.uid_range.start, self.uid_range.end
                ),
            )),
        }
    }

    /// A command that runs `spec.program spec.args` inside the jail (stdio left for the caller to set).
    /// The child's descriptors 3 and 4 carry the seccomp filters to
    /// bubblewrap; the command is killed when dropped.
    pub fn command(&self, spec: &JailSpec<'_>) -> std::io::Result<tokio::process::Command> {
        let command = if self.is_jailed() {
            jailed(&self.setup, spec)?
        } else {
            let mut command = as_user(&self.setup, spec.uid);
            command.arg(spec.program).args(spec.args);
            command
        };
        let mut command = tokio::process::Command::from(command);
        command.kill_on_drop(true);
        Ok(command)
    }
}

/// Runs the probe in the jail and reads what it wrote.
fn probe_answer(setup: &Setup, spec: &JailSpec<'_>) -> Result<ProbeAnswer, String> {
    let output = jailed(setup, spec)
        .and_then(|mut command| command.stdin(Stdio::null()).output())
        .map_err(|e| format!("bubblewrap could not start: {e}"))?;
    serde_json::from_slice(&output.stdout).map_err(|_| {
        let stderr = String::from_utf8_lossy(&output.stderr);
        format!("bubblewrap failed: {}", stderr.trim())
    })
}

/// The interpreter's standard library directories.
fn stdlib(python: &Path) -> Result<Vec<PathBuf>, String> {
    let script =
        "import sysconfig\nfor p in ('stdlib', 'platstdlib'): print(sysconfig.get_path(p))";
    let output = Command::new(python)
        .args(["-I", "-S", "-c", script])
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("the interpreter {} cannot run: {e}", python.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let dirs: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| std::fs::canonicalize(l).ok())
        .collect();
    if dirs.is_empty() {
        return Err(format!(
            "the interpreter {} did not say where its standard library is",
            python.display()
        ));
    }
    Ok(dirs)
}

/// The start of every sandboxed command line: a lower priority than the
/// engine's (code running to its limits slows its own tenant, not the
/// engine), and, as root, the tenant's own unprivileged uid.
fn as_user(setup: &Setup, uid: Option<u32>) -> Command {
    let mut command = Command::new("nice");
    command.args(["-n", "10"]).env_clear();
    if setup.root {
        let uid = uid.unwrap_or(NOBODY);
        command.args([
            "setpriv".to_owned(),
            format!("--reuid={uid}"),
            format!("--regid={uid}"),
            "--clear-groups".to_owned(),
            "--".to_owned(),
        ]);
    }
    command
}

/// The jailed command line, with the seccomp filters passed as descriptors.
fn jailed(setup: &Setup, spec: &JailSpec<'_>) -> std::io::Result<Command> {
    let filters = setup
        .filters
        .as_ref()
        .ok_or_else(|| std::io::Error::other("no seccomp filter"))?;
    let program = std::fs::canonicalize(spec.program)?;
    let mut command = as_user(setup, spec.uid);
    command.arg(&setup.bwrap).args([
        "--unshare-user",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        // Kills the jail when its bubblewrap process is killed (a call past
        // its deadline); bubblewrap sets it on its own child, not on itself,
        // so the engine thread that started it may come and go.
        "--die-with-parent",
        "--new-session",
        "--dev",
        "/dev",
        "--size",
        &spec.workdir_bytes.to_string(),
        "--tmpfs",
        WORKDIR,
        "--chdir",
        WORKDIR,
    ]);
    if setup.proc {
        command.args(["--proc", "/proc"]);
    }
    command.args(binds(setup, &program)?.iter());
    // Nothing but the working directory is writable: the jail's root and
    // /dev are tmpfs mounts without a size limit.
    command.args(["--remount-ro", "/", "--remount-ro", "/dev"]);
    let mut mappings = Vec::with_capacity(FILTER_FDS.len());
    for (filter, child_fd) in filters.iter().zip(FILTER_FDS) {
        let (reader, mut writer) = std::io::pipe()?;
        // Far smaller than a pipe's buffer: written before bubblewrap reads.
        writer.write_all(filter)?;
        drop(writer);
        command.args(["--add-seccomp-fd", &child_fd.to_string()]);
        mappings.push(FdMapping {
            parent_fd: OwnedFd::from(reader),
            child_fd,
        });
    }
    command
        .fd_mappings(mappings)
        .map_err(std::io::Error::other)?;
    command.arg("--").arg(&program).args(spec.args);
    Ok(command)
}

/// bubblewrap's arguments that bind a program, the directories of the
/// shared libraries it needs and (for the interpreter) its standard library
/// read-only at their own paths, with the host's top-level symbolic links
/// (`/lib64` → `usr/lib64`) that lead to them. Found once per program.
fn binds(setup: &Setup, program: &Path) -> std::io::Result<Arc<Vec<String>>> {
    let mut cache = setup.binds.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(binds) = cache.get(program) {
        return Ok(binds.clone());
    }
    let libraries = libraries(program)?;
    let mut bound = BTreeSet::from([program.to_path_buf()]);
    let mut links = BTreeSet::new();
    for library in &libraries {
        for dir in [
            library.parent().and_then(|d| std::fs::canonicalize(d).ok()),
            std::fs::canonicalize(library)
                .ok()
                .and_then(|l| l.parent().map(Path::to_path_buf)),
        ]
        .into_iter()
        .flatten()
        {
            bound.insert(dir);
        }
        if let Some(Component::Normal(top)) = library.components().nth(1) {
            let top = Path::new("/").join(top);
            if let Ok(target) = std::fs::read_link(&top) {
                links.insert((target, top));
            }
        }
    }
    if setup.python.as_deref() == Some(program) {
        bound.extend(setup.stdlib.iter().cloned());
    }
    let mut args = Vec::new();
    for path in &bound {
        let path = path.to_string_lossy().into_owned();
        args.extend(["--ro-bind".to_owned(), path.clone(), path]);
    }
    for (target, link) in &links {
        args.extend([
            "--symlink".to_owned(),
            target.to_string_lossy().into_owned(),
            link.to_string_lossy().into_owned(),
        ]);
    }
    let args = Arc::new(args);
    cache.insert(program.to_path_buf(), args.clone());
    Ok(args)
}

/// The shared libraries a program loads, as `ldd` lists them (none for a
/// static program).
fn libraries(program: &Path) -> std::io::Result<Vec<PathBuf>> {
    let output = Command::new("ldd")
        .arg(program)
        .env_clear()
        .stdin(Stdio::null())
        .output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(text
        .lines()
        .filter_map(|line| {
            let path = match line.split_once("=>") {
                Some((_, after)) => after.trim(),
                None => line.trim(),
            };
            let path = path.split(" (").next()?.trim();
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}
