//! Hostile code against both sandboxes: each attempt is stopped within its
//! limit plus one second and classified; nothing sensitive comes back.
//! JavaScript runs here through the worker's protocol, served in this
//! process (its own process and the killing of it are tested with the
//! engine binary).

use std::io::{BufRead, BufReader, Write};
use std::time::{Duration, Instant};

use flowmesh_model::HumanDuration;
use flowmesh_sandbox::worker::{MAX_REQUEST_BYTES, READY, serve};
use flowmesh_sandbox::{
    Answer, Call, Class, Failure, Jail, JailSpec, Limits, Options, PythonSandbox, Request, Returned,
};
use serde_json::json;

/// What engine settings and secrets look like in an environment.
const ENGINE_VARIABLES: &str = "FLOWMESH_";

fn call(source: &str) -> Call {
    Call {
        source: source.to_owned(),
        input: json!({"trigger": {"body": {"name": "ada"}}, "n": 3}).to_string(),
        limits: Limits {
            wall: HumanDuration::from_millis(1_000),
            ..Limits::default()
        },
    }
}

/// Runs a call and checks it was over within its wall limit plus a second.
async fn timed<F>(run: F, limit: Duration) -> Result<Returned, Failure>
where
    F: Future<Output = Result<Returned, Failure>>,
{
    let started = Instant::now();
    let result = run.await;
    assert!(
        started.elapsed() <= limit + Duration::from_secs(1),
        "took {:?}: {result:?}",
        started.elapsed()
    );
    result
}

fn class_of(result: Result<Returned, Failure>) -> Class {
    match result {
        Ok(returned) => panic!("expected a failure, got {returned:?}"),
        Err(failure) => failure.class,
    }
}

fn jail() -> Jail {
    let jail = Jail::detect(&Options::default().jail);
    assert_eq!(jail.problem, None, "this host must jail code: {jail:?}");
    jail
}

fn python() -> PythonSandbox {
    python_of(0)
}

/// The sandbox of the tenant with this sandbox number.
fn python_of(tenant: u32) -> PythonSandbox {
    let jail = jail();
    let uid = jail.tenant_uid(tenant).unwrap();
    PythonSandbox::start(&Options::default(), jail, uid)
}

/// A JavaScript worker served on a thread of this process, through pipes.
struct Served {
    requests: std::io::PipeWriter,
    answers: BufReader<std::io::PipeReader>,
    serving: std::thread::JoinHandle<std::io::Result<()>>,
}

fn served() -> Served {
    let (request_reader, requests) = std::io::pipe().unwrap();
    let (answer_reader, answers) = std::io::pipe().unwrap();
    let serving = std::thread::spawn(move || serve(BufReader::new(request_reader), answers));
    let mut answers = BufReader::new(answer_reader);
    let mut ready = Vec::new();
    answers.read_until(b'\n', &mut ready).unwrap();
    assert_eq!(ready, READY);
    Served {
        requests,
        answers,
        serving,
    }
}

impl Served {
    fn run(&mut self, call: &Call) -> Result<Returned, Failure> {
        let mut line = serde_json::to_vec(&Request::from(call)).unwrap();
        line.push(b'\n');
        self.requests.write_all(&line).unwrap();
        let mut answer = String::new();
        self.answers.read_line(&mut answer).unwrap();
        serde_json::from_str::<Answer>(&answer)
            .unwrap()
            .into_result()
    }
}

/// Waits for a serving thread to end, at most `limit`.
fn ended(
    serving: std::thread::JoinHandle<std::io::Result<()>>,
    limit: Duration,
) -> std::io::Result<()> {
    let deadline = Instant::now() + limit;
    while !serving.is_finished() {
        assert!(Instant::now() < deadline, "the worker is still serving");
        std::thread::yield_now();
    }
    serving.join().unwrap()
}

/// Runs a call in a fresh worker. Only the time limit is timed: the worker
/// runs at a low priority, and a busy host delays the others.
async fn js(source: &str) -> Result<Returned, Failure> {
    served().run(&call(source))
}

async fn py(sandbox: &PythonSandbox, source: &str) -> Result<Returned, Failure> {
    timed(sandbox.run(call(source)), Duration::from_secs(1)).await
}

#[tokio::test]
async fn javascript_runs_a_function_body_and_captures_its_console() {
    let returned = js("console.log('hello', {a: 1}); return {name: input.trigger.body.name.toUpperCase(), n: input.n * 2};")
        .await
        .unwrap();
    assert_eq!(returned.output, json!({"name": "ADA", "n": 6}));
    assert_eq!(returned.logs, vec!["hello {\"a\":1}"]);
    assert_eq!(js("return;").await.unwrap().output, json!(null));
    let failure = js("throw new Error('nope')").await.unwrap_err();
    assert_eq!(failure.class, Class::Code);
    assert!(failure.message.contains("nope"));
}

#[tokio::test]
async fn javascript_limits_hold() {
    let spin = timed(js("while (true) {}"), Duration::from_secs(1)).await;
    assert_eq!(class_of(spin), Class::Timeout);
    assert_eq!(
        class_of(
            js("const a = []; while (true) { a.push('x'.repeat(1 << 20) + a.length); }").await
        ),
        Class::Memory
    );
    assert_eq!(
        class_of(js("const f = () => f(); f();").await),
        Class::Memory
    );
    assert_eq!(
        class_of(js("return 'x'.repeat(2 * 1024 * 1024);").await),
        Class::OutputTooLarge
    );
}

#[tokio::test]
async fn javascript_reaches_nothing_of_the_host() {
    for probe in [
        "return typeof process",
        "return typeof require",
        "return typeof fetch",
        "return typeof std",
        "return typeof os",
        "return (function () {}).constructor('return typeof process')()",
        "return [].constructor.constructor('return typeof globalThis.process')()",
    ] {
        assert_eq!(
            js(probe).await.unwrap().output,
            json!("undefined"),
            "{probe}"
        );
    }
    // What one call does to a prototype does not reach the next call.
    let mut worker = served();
    worker
        .run(&call(
            "Object.prototype.polluted = 'yes'; Array.prototype.map = null; return 1;",
        ))
        .unwrap();
    let next = worker
        .run(&call(
            "return [({}).polluted === undefined, typeof [].map];",
        ))
        .unwrap();
    assert_eq!(next.output, json!([true, "function"]));
}

#[test]
fn a_javascript_worker_ends_with_its_input_even_in_the_middle_of_a_call() {
    let mut worker = served();
    let mut spin = call("while (true) {}");
    spin.limits.wall = HumanDuration::from_millis(30_000);
    let mut line = serde_json::to_vec(&Request::from(&spin)).unwrap();
    line.push(b'\n');
    worker.requests.write_all(&line).unwrap();
    // The engine is gone: its end of the pipe closes.
    drop(worker.requests);
    let result = ended(worker.serving, Duration::from_secs(2));
    assert!(result.is_ok(), "{result:?}");
}

#[test]
fn a_javascript_worker_refuses_what_is_not_a_request() {
    let mut worker = served();
    worker.requests.write_all(b"{\"source\": 1}\n").unwrap();
    assert!(ended(worker.serving, Duration::from_secs(2)).is_err());
    // A line past the bound is refused once the bound is reached, not read
    // to its end.
    let mut worker = served();
    let chunk = vec![b'x'; 1 << 20];
    let mut sent = 0;
    // Writing fails once the worker has stopped reading.
    while sent <= MAX_REQUEST_BYTES && worker.requests.write_all(&chunk).is_ok() {
        sent += chunk.len() as u64;
    }
    assert!(ended(worker.serving, Duration::from_secs(2)).is_err());
}

#[tokio::test]
async fn python_runs_a_function_body_and_captures_its_output() {
    let sandbox = python();
    let returned = py(
        &sandbox,
        "print('hello', input['n'])\nreturn {'name': input['trigger']['body']['name'].upper(), 'n': input['n'] * 2}",
    )
    .await
    .unwrap();
    assert_eq!(returned.output, json!({"name": "ADA", "n": 6}));
    assert_eq!(returned.logs, vec!["hello 3"]);
    let failure = py(&sandbox, "x = 1\nraise ValueError('nope')")
        .await
        .unwrap_err();
    assert_eq!(failure.class, Class::Code);
    assert!(failure.message.contains("nope"), "{failure:?}");
    assert!(
        failure.logs.iter().any(|l| l.contains("line 2")),
        "the traceback names the user's line: {failure:?}"
    );
    let syntax = py(&sandbox, "return (").await.unwrap_err();
    assert_eq!(syntax.class, Class::Code);
    assert!(syntax.message.contains("line 1"), "{syntax:?}");
}

#[tokio::test]
async fn python_limits_hold() {
    let sandbox = python();
    assert_eq!(
        class_of(py(&sandbox, "while True:\n    pass").await),
        Class::Timeout
    );
    assert_eq!(
        class_of(py(&sandbox, "import time\ntime.sleep(30)").await),
        Class::Timeout
    );
    assert_eq!(
        class_of(py(&sandbox, "x = bytearray(1024 * 1024 * 1024)\nreturn len(x)").await),
        Class::Memory
    );
    assert_eq!(
        class_of(py(&sandbox, "def f(n):\n    return f(n + 1)\nreturn f(0)").await),
        Class::Memory
    );
    assert_eq!(
        class_of(py(&sandbox, "return 'x' * (2 * 1024 * 1024)").await),
        Class::OutputTooLarge
    );
    assert_eq!(
        class_of(
            py(
                &sandbox,
                "with open('big', 'wb') as f:\n    while True:\n        f.write(b'x' * 1048576)"
            )
            .await
        ),
        Class::Denied
    );
}

#[tokio::test]
async fn pool_processes_outlive_the_thread_that_started_them() {
    // bubblewrap's --die-with-parent is set on its own child, not on the
    // process the engine starts, so the (tokio blocking) thread that
    // started a pool may end without taking its processes along.
    let runtime = tokio::runtime::Handle::current();
    let sandbox = std::thread::spawn(move || {
        let _inside = runtime.enter();
        python()
    })
    .join()
    .unwrap();
    sandbox.warmed().await.unwrap();
    let returned = py(&sandbox, "return 41 + 1").await.unwrap();
    assert_eq!(returned.output, json!(42));
}

#[tokio::test]
async fn python_cannot_escape() {
    let sandbox = python();
    let env = py(&sandbox, "import os\nreturn dict(os.environ)")
        .await
        .unwrap();
    assert_eq!(env.output, json!({}));
    for (name, source) in [
        ("passwd", "return open('/etc/passwd').read()"),
        ("environ", "return open('/proc/self/environ').read()"),
        ("parent environ", "return open('/proc/1/environ').read()"),
        ("os.system", "import os\nreturn os.system('id')"),
        (
            "subprocess",
            "import subprocess\nreturn subprocess.run(['id']).returncode",
        ),
        ("ctypes", "import ctypes\nreturn 1"),
        ("fork bomb", "import os\nwhile True:\n    os.fork()"),
        (
            "nats",
            "import socket\ns = socket.socket()\ns.connect(('127.0.0.1', 4222))\nreturn s.recv(100).decode()",
        ),
        (
            "postgres",
            "import socket\ns = socket.socket()\ns.connect(('127.0.0.1', 5432))\nreturn 1",
        ),
        (
            "outside",
            "import socket\ns = socket.socket()\ns.connect(('1.1.1.1', 443))\nreturn 1",
        ),
    ] {
        let failure = py(&sandbox, source)
            .await
            .expect_err(&format!("{name} must fail"));
        assert_eq!(failure.class, Class::Denied, "{name}: {failure:?}");
        let text = format!("{failure:?}");
        assert!(!text.contains("root:x:0:0"), "{name} leaked /etc/passwd");
        assert!(
            !text.contains(ENGINE_VARIABLES),
            "{name} leaked the environment"
        );
    }
}

/// A host directory like the engine's data directory, readable by anyone,
/// so that only the jail keeps code from it.
fn data_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("flowmesh.db"),
        "SQLite format 3 tenant-b-row",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("secrets.key"),
        "c2VjcmV0LWtleS1vZi10aGUtZW5naW5l",
    )
    .unwrap();
    for path in [
        dir.path().to_path_buf(),
        dir.path().join("flowmesh.db"),
        dir.path().join("secrets.key"),
    ] {
        let mode = if path.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    dir
}

/// Runs each named attempt in the code and returns what it gave or how it
/// was refused, by name.
const ATTEMPTS: &str = r#"
results = {}
def attempt(name, f):
    try:
        results[name] = "GOT " + repr(f())[:300]
    except BaseException as e:
        results[name] = "refused: %s: %s" % (type(e).__name__, e)
"#;

#[tokio::test]
async fn python_rewriting_the_sandbox_rules_gains_nothing() {
    let dir = data_dir();
    let path = dir.path().display();
    let source = format!(
        r#"import sys, os, socket
main = sys.modules["__main__"]
# The rules as module globals (as they once were): widened or emptied.
main.STDLIB = ("/",)
for name in ("DENIED_MODULES", "PROCESS_EVENTS", "NATIVE_EVENTS", "NETWORK_EVENTS"):
    setattr(main, name, set())
for name, value in list(vars(main).items()):
    if isinstance(value, (set, frozenset)):
        value = set(value)
        setattr(main, name, set())
    elif isinstance(value, tuple) and all(isinstance(v, str) for v in value):
        setattr(main, name, ("/",))
import builtins
real_isinstance, builtins.isinstance = builtins.isinstance, lambda *a: True
{ATTEMPTS}
attempt("passwd", lambda: open("/etc/passwd").read())
attempt("store", lambda: open("{path}/flowmesh.db").read())
attempt("key", lambda: open("{path}/secrets.key").read())
attempt("listing", lambda: os.listdir("{path}"))
attempt("ctypes", lambda: __import__("ctypes").CDLL(None))
attempt("unix", lambda: socket.socket(socket.AF_UNIX).connect("/var/run/postgresql/.s.PGSQL.5432"))
attempt("inet", lambda: socket.socket(socket.AF_INET))
attempt("postgres", lambda: socket.create_connection(("127.0.0.1", 5432), 1))
builtins.isinstance = real_isinstance
return results"#
    );
    let sandbox = python();
    let results = match py(&sandbox, &source).await {
        Ok(returned) => returned.output,
        Err(failure) => panic!("the attempts were refused as a whole: {failure:?}"),
    };
    let results = results.as_object().unwrap();
    assert_eq!(results.len(), 8, "{results:?}");
    for (name, result) in results {
        let result = result.as_str().unwrap();
        assert!(result.starts_with("refused"), "{name}: {result}");
        for secret in ["root:x:0:0", "tenant-b-row", "c2VjcmV0", "secrets.key"] {
            assert!(!result.contains(secret), "{name} leaked {secret}: {result}");
        }
    }
}

/// The pids of this process's descendants: the sandboxes' processes.
fn descendants() -> Vec<u32> {
    let me = std::process::id();
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let ppid = stat
                .rsplit_once(") ")?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some((pid, ppid))
        })
        .collect();
    let mut found = vec![me];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        i += 1;
    }
    found
}

/// Signals and process handles at every pid it is given and every pid it
/// sees; returns what got through.
const SIGNALS: &str = r#"import os, signal
got = []
pids = set(input["pids"])
try:
    pids.update(int(entry) for entry in os.listdir("/proc") if entry.isdigit())
except PermissionError:
    pids.update(range(1, 100))
pids.add(os.getppid())
for pid in sorted(pids):
    if pid == os.getpid():
        continue
    for name, f in (("kill", lambda: os.kill(pid, signal.SIGKILL)),
                    ("pidfd", lambda: signal.pidfd_send_signal(os.pidfd_open(pid), signal.SIGKILL))):
        try:
            f()
            got.append("%s %d" % (name, pid))
        except OSError:
            pass
return got"#;

fn signals(pids: &[u32]) -> Call {
    Call {
        input: json!({"pids": pids}).to_string(),
        ..call(SIGNALS)
    }
}

#[tokio::test]
async fn python_cannot_signal_the_engine_or_another_tenant() {
    let (a, b) = (python_of(0), python_of(1));
    a.warmed().await.unwrap();
    b.warmed().await.unwrap();
    // Tenant B's long-running call.
    let mut slow = call(
        "import time\nend = time.time() + 3\nwhile time.time() < end:\n    time.sleep(0.05)\nreturn 'finished'",
    );
    slow.limits.wall = HumanDuration::from_millis(10_000);
    let running = tokio::spawn(async move { b.run(slow).await });
    // Tenant A, while B runs, at the engine's pid and every sandbox process.
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let got = a.run(signals(&descendants())).await.unwrap();
        assert_eq!(got.output, json!([]), "signals got through");
    }
    let finished = running
        .await
        .unwrap()
        .expect("B's call survives A's signals");
    assert_eq!(finished.output, json!("finished"));
}

/// Runs a script in the jail without the worker (no audit hook): what the
/// kernel alone refuses.
async fn bare(jail: &Jail, script: &str) -> String {
    let args = ["-I", "-S", "-c", script].map(str::to_owned);
    let python = Options::default().jail.python;
    let mut command = jail
        .command(&JailSpec {
            program: &python,
            args: &args,
            uid: jail.tenant_uid(2).unwrap(),
            workdir_bytes: 16 << 20,
        })
        .unwrap();
    let output = command.output().await.unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn the_kernel_refuses_what_the_jail_forbids_without_the_audit_hook() {
    let dir = data_dir();
    let script = format!(
        r#"import os, socket, json
{ATTEMPTS}
attempt("kill", lambda: os.kill(1, 9))
attempt("pidfd", lambda: os.pidfd_open(1))
attempt("unix", lambda: socket.socket(socket.AF_UNIX))
attempt("inet", lambda: socket.socket(socket.AF_INET))
attempt("passwd", lambda: open("/etc/passwd").read())
attempt("store", lambda: open("{}/flowmesh.db").read())
attempt("outside", lambda: open("/rooted", "w"))
status = open("/proc/self/status").read()
results["seccomp"] = [l.split()[1] for l in status.splitlines() if l.startswith("Seccomp:")]
results["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
results["cwd"] = os.getcwd()
def fill():
    n = 0
    while True:
        with open("f%d" % n, "wb") as f:
            f.write(b"x" * 1048576)
        n += 1
attempt("fill", fill)
print(json.dumps(results))"#,
        dir.path().display()
    );
    let out: serde_json::Value = serde_json::from_str(&bare(&jail(), &script).await).unwrap();
    for name in ["kill", "pidfd", "unix", "inet"] {
        let result = out[name].as_str().unwrap();
        assert!(
            result.starts_with("refused: PermissionError"),
            "{name}: {result}"
        );
    }
    for name in ["passwd", "store", "outside"] {
        let result = out[name].as_str().unwrap();
        assert!(result.starts_with("refused"), "{name}: {result}");
    }
    assert_eq!(out["seccomp"], json!(["2"]), "the filter is loaded");
    assert_eq!(out["pids"], json!([1, 2]), "only the jail's own processes");
    assert_eq!(out["cwd"], "/work");
    assert!(
        out["fill"].as_str().unwrap().contains("No space left"),
        "{}",
        out["fill"]
    );
}

#[tokio::test]
async fn python_cannot_fill_the_disk() {
    let sandbox = python();
    let started = Instant::now();
    let source = "for n in range(100):\n    with open('f%d' % n, 'wb') as f:\n        f.write(b'x' * 1048576)\nreturn 'wrote 100 MB'";
    let failure = py(&sandbox, source).await.unwrap_err();
    assert_eq!(failure.class, Class::Denied, "{failure:?}");
    assert!(
        failure.message.contains("working directory is full"),
        "{failure:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    // The working directory is a tmpfs of the set size, not the host's disk.
    let size = py(
        &sandbox,
        "import os\ns = os.statvfs('.')\nreturn [os.getcwd(), s.f_blocks * s.f_frsize]",
    )
    .await
    .unwrap();
    assert_eq!(size.output, json!(["/work", 16 << 20]));
}

/// One tenant's Python calls run a few at a time (each may hold its memory
/// limit), however many it starts at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_python_calls_run_a_few_at_a_time() {
    let jail = jail();
    let uid = jail.tenant_uid(3).unwrap();
    let options = Options {
        python_concurrency: 2,
        ..Options::default()
    };
    let sandbox = PythonSandbox::start(&options, jail, uid);
    let source =
        "import time\nstarted = time.time()\ntime.sleep(0.4)\nreturn [started, time.time()]";
    let calls = (0..6).map(|_| {
        let sandbox = sandbox.clone();
        async move { sandbox.run(call(source)).await }
    });
    let spans: Vec<(f64, f64)> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|result| {
            let output = result.unwrap().output;
            (output[0].as_f64().unwrap(), output[1].as_f64().unwrap())
        })
        .collect();
    let most = spans
        .iter()
        .map(|&(start, _)| {
            spans
                .iter()
                .filter(|&&(s, e)| s <= start && start < e)
                .count()
        })
        .max()
        .unwrap();
    assert!(most <= 2, "{most} calls ran at once: {spans:?}");
}
