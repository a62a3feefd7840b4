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
    Answer, Call, Class, Failure, Isolation, Limits, NetworkIsolation, Options, PythonSandbox,
    Request, Returned,
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

fn python() -> PythonSandbox {
    PythonSandbox::start(&Options::default(), Isolation::detect())
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

#[tokio::test]
async fn python_is_kept_off_the_network_by_the_host_too() {
    let isolation = Isolation::detect();
    if isolation.network == NetworkIsolation::Unavailable {
        // Said in /ready's details; such hosts refuse Python by default.
        let sandbox = PythonSandbox::start(&Options::default(), isolation);
        assert_eq!(class_of(sandbox.run(call("return 1")).await), Class::Denied);
        return;
    }
    // Without the audit hook at all: a process started the way sandbox
    // processes are has no route to NATS on this host's loopback.
    let mut line = isolation.prefix(false);
    line.push(Options::default().python);
    let probe = "import socket\ns = socket.socket()\ns.settimeout(0.5)\nprint(s.connect_ex(('127.0.0.1', 4222)))";
    let out = std::process::Command::new(&line[0])
        .args(&line[1..])
        .args(["-c", probe])
        .output()
        .unwrap();
    let code = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(out.status.success(), "{out:?}");
    assert_ne!(code, "0", "connected to NATS from the sandbox's namespace");
}
