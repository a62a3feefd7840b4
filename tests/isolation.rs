//! The jail of code nodes through the whole engine: code that rewrites the
//! sandbox's own rules still reaches no host file, socket, process or other
//! tenant; it cannot signal its engine or another tenant's code; it cannot
//! fill the disk; and /ready says what the jail found.

mod common;

use std::time::{Duration, Instant};

use common::{ADMIN_KEY, Engine, Mode, code_workflow, node};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Runs a one-node code workflow as the holder of `key`; returns the
/// code node's state when the execution has finished.
async fn run_as(engine: &Engine, key: &str, source: &str, input: Value, limits: Value) -> Value {
    let workflow = engine
        .deploy_as(key, code_workflow("code", "python", source, limits))
        .await;
    let execution = engine.run_as(key, &workflow, input).await;
    node(&execution, "code").clone()
}

/// Each named attempt's result or how it was refused, by name.
const ATTEMPTS: &str = r#"results = {}
def attempt(name, f):
    try:
        results[name] = "GOT " + repr(f())[:300]
    except BaseException as e:
        results[name] = "refused: %s: %s" % (type(e).__name__, e)
"#;

/// Writes a file readable by anyone into the engine's data directory.
fn plant(engine: &Engine, name: &str, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = engine.data_dir().join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
}

async fn rules_rewritten_reach_nothing(mode: Mode) {
    let engine = Engine::start(mode).await;
    // Another tenant's data, in the store and in a file beside it.
    let other = engine.create_tenant("Other Tenant").await;
    run_as(
        &engine,
        &other,
        "return 'tenant-b-marker'",
        json!({}),
        json!({}),
    )
    .await;
    plant(&engine, "secrets.key", "c2VjcmV0LWtleS1vZi10aGUtZW5naW5l");
    let dir = engine.data_dir().display();
    let source = format!(
        r#"import sys, os, socket
main = sys.modules["__main__"]
main.STDLIB = ("/",)
for name in ("DENIED_MODULES", "PROCESS_EVENTS", "NATIVE_EVENTS", "NETWORK_EVENTS"):
    setattr(main, name, set())
{ATTEMPTS}
attempt("passwd", lambda: open("/etc/passwd").read())
attempt("store", lambda: open("{dir}/flowmesh.db", "rb").read())
attempt("key", lambda: open("{dir}/secrets.key").read())
attempt("ctypes", lambda: __import__("ctypes").CDLL(None))
attempt("unix", lambda: socket.socket(socket.AF_UNIX).connect("/var/run/postgresql/.s.PGSQL.5432"))
attempt("inet", lambda: socket.socket(socket.AF_INET))
attempt("postgres", lambda: socket.create_connection(("127.0.0.1", 5432), 1))
return results"#
    );
    let step = run_as(&engine, ADMIN_KEY, &source, json!({}), json!({})).await;
    let results = step["output"]
        .as_object()
        .unwrap_or_else(|| panic!("{step:#}"));
    assert_eq!(results.len(), 7, "{results:?}");
    for (name, result) in results {
        let result = result.as_str().unwrap();
        assert!(result.starts_with("refused"), "{name}: {result}");
        for secret in ["root:x:0:0", "tenant-b-marker", "c2VjcmV0", "SQLite format"] {
            assert!(!result.contains(secret), "{name} leaked {secret}: {result}");
        }
    }
}
both_modes!(rewritten_rules_reach_nothing, rules_rewritten_reach_nothing);

/// Signals and process handles at every pid given and every pid in sight,
/// the parent's first; returns what got through.
const SIGNALS: &str = r#"import os, signal
got = []
pids = [os.getppid()] + input["trigger"]["body"]["pids"]
try:
    pids += [int(p) for p in os.listdir("/proc") if p.isdigit()]
except PermissionError:
    pids += list(range(1, 100))
for pid in pids:
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

/// The pids of a process and all its descendants.
fn family(root: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let ppid = stat.rsplit_once(") ")?.1.split_whitespace().nth(1)?;
            Some((pid, ppid.parse().ok()?))
        })
        .collect();
    let mut found = vec![root];
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

/// Code signals its engine and every process of it; the engine stays up.
async fn engine_survives(engine: &Engine) {
    let pids = family(engine.pid());
    let step = run_as(engine, ADMIN_KEY, SIGNALS, json!({"pids": pids}), json!({})).await;
    assert_eq!(step["output"], json!([]), "{step:#}");
    let (status, _) = engine.get("/health").await;
    assert_eq!(status, StatusCode::OK, "the engine is up");
}

async fn code_cannot_signal_its_engine(mode: Mode) {
    engine_survives(&Engine::start(mode).await).await;
}
both_modes!(
    the_engine_cannot_be_signalled,
    code_cannot_signal_its_engine
);

#[tokio::test]
async fn code_cannot_signal_a_non_root_engine() {
    let engine = Engine::start_as_user(65_534).await;
    plant(&engine, "secrets.key", "c2VjcmV0LWtleS1vZi10aGUtZW5naW5l");
    engine_survives(&engine).await;
    let source = format!(
        "{ATTEMPTS}\nattempt('key', lambda: open('{}/secrets.key').read())\nreturn results",
        engine.data_dir().display()
    );
    let step = run_as(&engine, ADMIN_KEY, &source, json!({}), json!({})).await;
    let key = step["output"]["key"].as_str().unwrap_or_default();
    assert!(key.starts_with("refused"), "{step:#}");
}

async fn tenants_cannot_signal_each_other(mode: Mode) {
    let engine = Engine::start(mode).await;
    let other = engine.create_tenant("Slow Tenant").await;
    let slow = "import time\nend = time.time() + 4\nwhile time.time() < end:\n    time.sleep(0.05)\nreturn 'finished'";
    let running = {
        let engine = &engine;
        let other = other.clone();
        async move { run_as(engine, &other, slow, json!({}), json!({"wall": "20s"})).await }
    };
    let attacking = async {
        // Until the other tenant's call has surely started and ended.
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            let pids = family(engine.pid());
            let step = run_as(
                &engine,
                ADMIN_KEY,
                SIGNALS,
                json!({"pids": pids}),
                json!({}),
            )
            .await;
            assert_eq!(step["output"], json!([]), "{step:#}");
        }
    };
    let (step, ()) = tokio::join!(running, attacking);
    assert_eq!(step["output"], "finished", "{step:#}");
}
both_modes!(
    tenants_cannot_signal_each_other_code,
    tenants_cannot_signal_each_other
);

async fn code_cannot_fill_the_disk(mode: Mode) {
    // The engine's temporary directory, where code without the jail once wrote.
    let tmp = tempfile::tempdir().unwrap();
    let tmp_path = tmp.path().to_str().unwrap();
    let engine = Engine::start_with(mode, &[("TMPDIR", tmp_path)]).await;
    let started = Instant::now();
    let source = "for n in range(100):\n    with open('f%d' % n, 'wb') as f:\n        f.write(b'x' * 1048576)\nreturn 'wrote 100 MB'";
    let step = run_as(&engine, ADMIN_KEY, source, json!({}), json!({})).await;
    let error = step["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("denied: the working directory is full"),
        "{step:#}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // Nothing of it on the host's disk.
    let held = dir_bytes(engine.data_dir()) + dir_bytes(tmp.path());
    assert!(held < 8 << 20, "{held} bytes on the host's disk");
}
both_modes!(the_disk_cannot_be_filled, code_cannot_fill_the_disk);

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|entry| match entry.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&entry.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

async fn ready_says_what_the_jail_found(mode: Mode) {
    let engine = Engine::start_with(mode, &[("FLOWMESH_LOG", "info")]).await;
    let (status, body) = engine.get("/ready").await;
    assert_eq!(status, StatusCode::OK);
    let jail = &body["sandbox"]["jail"];
    assert!(
        jail["bwrap"]
            .as_str()
            .unwrap_or_default()
            .starts_with("bubblewrap "),
        "{jail:#}"
    );
    for namespace in ["user", "pid", "mount", "network", "ipc"] {
        assert_eq!(jail["namespaces"][namespace], true, "{namespace}: {jail:#}");
    }
    assert_eq!(jail["seccomp"], true, "{jail:#}");
    assert_eq!(jail["landlock"], "not used");
    assert_eq!(jail["problem"], Value::Null);
    let log = engine.log_text();
    assert!(
        log.contains("code nodes run in the jail") && log.contains("seccomp: yes"),
        "{log}"
    );
}
both_modes!(ready_reports_the_jail, ready_says_what_the_jail_found);

async fn a_network_limit_is_refused(mode: Mode) {
    let engine = Engine::start(mode).await;
    let document = code_workflow("net", "python", "return 1", json!({"network": true}));
    let (status, body) = engine.post("/v1/workflows", document).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let detail = &body["error"]["details"][0];
    assert_eq!(detail["path"], "nodes[1].config.limits.network", "{body}");
    assert_eq!(detail["code"], "unknown_field", "{body}");
    assert!(
        detail["message"].as_str().unwrap().contains("http_request"),
        "{body}"
    );
}
both_modes!(network_limits_are_refused, a_network_limit_is_refused);

#[tokio::test]
async fn without_the_jail_code_is_refused_unless_an_operator_allows_it() {
    let missing = [("FLOWMESH_BWRAP", "/nonexistent/bwrap")];
    let engine = Engine::start_with(Mode::Embedded, &missing).await;
    let (status, body) = engine.get("/ready").await;
    assert_eq!(status, StatusCode::OK, "the engine serves the rest");
    let problem = body["sandbox"]["jail"]["problem"]
        .as_str()
        .unwrap_or_default();
    assert!(problem.contains("/nonexistent/bwrap"), "{body:#}");
    let step = run_as(&engine, ADMIN_KEY, "return 1", json!({}), json!({})).await;
    let error = step["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("denied: code nodes are refused on this host")
            && error.contains("--sandbox-without-jail allow"),
        "{step:#}"
    );
    let allowed = [missing[0], ("FLOWMESH_SANDBOX_WITHOUT_JAIL", "allow")];
    let engine = Engine::start_with(Mode::Embedded, &allowed).await;
    let step = run_as(&engine, ADMIN_KEY, "return 1", json!({}), json!({})).await;
    assert_eq!(step["output"], json!(1), "{step:#}");
    assert!(
        step["logs"][0]
            .as_str()
            .unwrap_or_default()
            .contains("without the jail"),
        "{step:#}"
    );
}

/// Descriptors the engine inherited from whatever started it never reach
/// code; memory-backed files, the collector and code rewriting, which
/// could hold memory past the limit or switch the inner checks off, are
/// refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_inherited_and_no_way_around_the_limits() {
    let secret = tempfile::tempfile().unwrap();
    std::io::Write::write_all(&mut &secret, b"a host secret").unwrap();
    let engine = Engine::start_inheriting(secret).await;
    let source = format!(
        r#"import os, gc
{ATTEMPTS}
attempt("inherited", lambda: os.pread(9, 100, 0))
attempt("descriptors", lambda: [fd for fd in os.listdir("/proc/self/fd") if int(fd) > 2 and os.path.exists("/proc/self/fd/" + fd) and not os.readlink("/proc/self/fd/" + fd).startswith("/proc")] or (_ for _ in ()).throw(PermissionError("none")))
attempt("memfd", lambda: os.memfd_create("m"))
attempt("collector", lambda: gc.get_objects())
def f():
    return 1
attempt("rewrite", lambda: setattr(f, "__code__", (lambda: 2).__code__))
return results"#
    );
    let step = run_as(&engine, ADMIN_KEY, &source, json!({}), json!({})).await;
    let results = step["output"]
        .as_object()
        .unwrap_or_else(|| panic!("{step:#}"));
    assert_eq!(results.len(), 5, "{results:?}");
    for (name, result) in results {
        let result = result.as_str().unwrap();
        assert!(result.starts_with("refused"), "{name}: {result}");
    }
}

/// A warm Python process waits as long as it must: it outlives the
/// thread that started it (threads of the blocking pool end after ten idle
/// seconds, and bubblewrap's parent-death signal follows the thread).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_processes_outlive_an_idle_pause() {
    let engine = Engine::start(Mode::Embedded).await;
    let first = run_as(&engine, ADMIN_KEY, "return 1", json!({}), json!({})).await;
    assert_eq!(first["output"], json!(1), "{first:#}");
    // The pause under test: past the blocking pool's ten-second keep-alive.
    tokio::time::sleep(Duration::from_secs(13)).await;
    let second = run_as(&engine, ADMIN_KEY, "return 2", json!({}), json!({})).await;
    assert_eq!(second["output"], json!(2), "{second:#}");
}
