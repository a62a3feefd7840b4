//! The files in deploy/ parse, and what they tell the binary (environment
//! variables, commands, ports, probe paths) is what the binary reads and
//! serves. No container engine is needed: the checks read the files.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::servers::{ConfiguredNats, TENANT_PASSWORDS};
use common::{Engine, Mode};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_yaml_ng::Value;

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(deploy(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every document of a YAML file, with merge keys applied.
fn yaml(path: &str) -> Vec<Value> {
    let text = read(path);
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| {
            let mut value = Value::deserialize(doc).unwrap_or_else(|e| panic!("{path}: {e}"));
            value
                .apply_merge()
                .unwrap_or_else(|e| panic!("{path}: {e}"));
            value
        })
        .collect()
}

/// What `flowmesh --help` says it reads and does.
struct Binary {
    env: BTreeSet<String>,
    help: String,
}

fn binary() -> Binary {
    let out = Command::new(env!("CARGO_BIN_EXE_flowmesh"))
        .arg("--help")
        .output()
        .expect("flowmesh --help");
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let env = help
        .split("[env: ")
        .skip(1)
        .filter_map(|rest| rest.split(['=', ']']).next())
        .map(str::to_owned)
        .collect();
    Binary { env, help }
}

impl Binary {
    fn check_env(&self, name: &str, file: &str) {
        if name.starts_with("FLOWMESH_") || name == "DATABASE_URL" {
            assert!(
                self.env.contains(name),
                "{file}: the binary reads no {name}"
            );
        }
    }

    fn check_command(&self, args: &[String], file: &str) {
        let Some(command) = args.first() else { return };
        assert!(
            self.help
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{command} "))),
            "{file}: the binary has no command {command:?}"
        );
    }
}

fn port_of_listen(listen: &str) -> u16 {
    listen
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("FLOWMESH_LISTEN {listen:?} has no port"))
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_dockerfile_exposes_the_port_it_listens_on() {
    let text = read("Dockerfile");
    let listen = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix("FLOWMESH_LISTEN="))
        .expect("the image sets FLOWMESH_LISTEN");
    let exposed: u16 = text
        .lines()
        .find_map(|l| l.strip_prefix("EXPOSE "))
        .and_then(|p| p.trim().parse().ok())
        .expect("EXPOSE");
    assert_eq!(exposed, port_of_listen(listen));
    let bin = binary();
    for word in text.split_whitespace() {
        if let Some((name, _)) = word.split_once('=') {
            bin.check_env(name, "Dockerfile");
        }
    }
    assert!(text.contains("cargo build --release --locked -p flowmesh"));
    assert!(text.contains(r#"CMD ["serve"]"#));
}

/// Where a process serves `/health`, `/ready` and `/metrics`: its
/// operations listener, or the API's listener without one.
fn ops_listen<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Option<&'a str> {
    get("FLOWMESH_OPS_LISTEN").or_else(|| get("FLOWMESH_LISTEN"))
}

#[test]
fn compose_matches_the_binary() {
    let bin = binary();
    let doc = yaml("compose.yaml").remove(0);
    let services = doc["services"].as_mapping().expect("services");
    let names: BTreeSet<String> = services
        .keys()
        .filter_map(|k| k.as_str().map(str::to_owned))
        .collect();
    let mut roles = Vec::new();
    for (name, service) in services {
        let name = name.as_str().unwrap();
        if service["image"].as_str() != Some("flowmesh:latest") {
            continue;
        }
        let command = strings(&service["command"]);
        bin.check_command(&command, name);
        let env = service["environment"].as_mapping().expect("environment");
        for key in env.keys() {
            bin.check_env(key.as_str().unwrap(), name);
        }
        if let Some(urls) = env.get("FLOWMESH_NATS_URL").and_then(Value::as_str) {
            for url in urls.split(',') {
                let host = url.trim_start_matches("nats://").split(':').next().unwrap();
                assert!(names.contains(host), "{name}: no service {host}");
            }
        }
        if !matches!(command.first().map(String::as_str), None | Some("serve")) {
            continue;
        }
        let var = |key: &str| env.get(key).and_then(Value::as_str);
        let role = var("FLOWMESH_ROLE").unwrap_or("all");
        assert!(ops_listen(var).is_some(), "{name}: no operations listener");
        let published = strings(&service["ports"]);
        if role == "worker" {
            assert!(published.is_empty(), "{name}: a worker serves no API");
        } else {
            let port = port_of_listen(var("FLOWMESH_LISTEN").expect(name));
            for mapping in published {
                let inner: u16 = mapping.rsplit(':').next().unwrap().parse().unwrap();
                assert_eq!(
                    inner, port,
                    "{name}: {mapping} misses the port it listens on"
                );
            }
        }
        roles.push(role.to_owned());
    }
    roles.sort();
    assert_eq!(
        roles,
        ["gateway", "worker", "worker"],
        "a gateway and two workers"
    );
    assert_eq!(
        names.iter().filter(|n| n.starts_with("nats-")).count(),
        3,
        "a three-node NATS cluster"
    );
    assert!(names.contains("postgres"));
}

/// The flowmesh containers of the Kubernetes manifests.
fn flowmesh_containers(docs: &[Value]) -> Vec<&Value> {
    docs.iter()
        .filter(|d| matches!(d["kind"].as_str(), Some("Deployment" | "Job")))
        .flat_map(|d| {
            d["spec"]["template"]["spec"]["containers"]
                .as_sequence()
                .unwrap()
        })
        .filter(|c| c["image"].as_str() == Some("flowmesh:latest"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_matches_the_binary() {
    let bin = binary();
    let docs = yaml("kubernetes/flowmesh.yaml");
    let kinds: BTreeSet<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    for kind in [
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "Secret",
        "Job",
    ] {
        assert!(kinds.contains(kind), "no {kind}");
    }
    let engine =
        Engine::start_with(Mode::Embedded, &[("FLOWMESH_OPS_LISTEN", "127.0.0.1:0")]).await;
    let ops_base = engine.ops.clone().expect("an operations listener");
    let mut probes = 0;
    let mut roles = BTreeSet::new();
    for container in flowmesh_containers(&docs) {
        bin.check_command(&strings(&container["args"]), "kubernetes");
        let env = container["env"].as_sequence().expect("env");
        for var in env {
            bin.check_env(var["name"].as_str().unwrap(), "kubernetes");
        }
        let var = |name: &str| {
            env.iter()
                .find(|v| v["name"] == name)
                .and_then(|v| v["value"].as_str())
        };
        let Some(ops) = ops_listen(var) else { continue };
        let role = var("FLOWMESH_ROLE").unwrap_or("all");
        roles.insert(role);
        assert!(
            env.iter().any(|v| v["name"] == "FLOWMESH_METRICS_TOKEN"),
            "a serving container without a metrics token serves no metrics"
        );
        let ports = container["ports"].as_sequence().expect("ports");
        let port_named = |port: u16| {
            ports
                .iter()
                .find(|p| p["containerPort"].as_u64() == Some(u64::from(port)))
                .and_then(|p| p["name"].as_str())
                .unwrap_or_else(|| panic!("{role}: no container port {port}"))
        };
        if role != "worker" {
            let api = port_of_listen(var("FLOWMESH_LISTEN").expect("FLOWMESH_LISTEN"));
            assert_eq!(port_named(api), "http", "{role}");
        }
        let ops_port = port_named(port_of_listen(ops));
        for probe in ["livenessProbe", "readinessProbe"] {
            let get = &container[probe]["httpGet"];
            assert_eq!(get["port"].as_str(), Some(ops_port), "{role} {probe}");
            let path = get["path"].as_str().expect("probe path");
            let resp = engine
                .client()
                .get(format!("{ops_base}{path}"))
                .send()
                .await
                .expect("probe");
            assert_eq!(resp.status(), StatusCode::OK, "{probe} {path}");
            probes += 1;
        }
    }
    assert_eq!(roles, BTreeSet::from(["gateway", "worker"]));
    assert_eq!(probes, 4);
    // The API's Service reaches the gateways only.
    let service = docs.iter().find(|d| d["kind"] == "Service").unwrap();
    assert_eq!(
        service["spec"]["ports"][0]["targetPort"].as_str(),
        Some("http")
    );
    assert_eq!(
        service["spec"]["selector"]["app.kubernetes.io/component"].as_str(),
        Some("gateway")
    );
}

/// `nats-server -t` accepts every shipped NATS configuration.
#[test]
fn nats_configurations_are_valid() {
    let binary = std::env::var("FLOWMESH_TEST_NATS_SERVER").unwrap_or("nats-server".into());
    let dir = tempfile::tempdir().unwrap();
    let from_kubernetes = yaml("kubernetes/nats.yaml")
        .into_iter()
        .find(|d| d["kind"] == "ConfigMap")
        .and_then(|d| d["data"]["nats.conf"].as_str().map(str::to_owned))
        .expect("the NATS ConfigMap");
    let k8s = dir.path().join("nats.conf");
    std::fs::write(&k8s, from_kubernetes).unwrap();
    for file in [
        deploy("nats-server.conf"),
        deploy("nats-cluster.conf"),
        deploy("nats-tenants.conf"),
        k8s,
    ] {
        let out = Command::new(&binary)
            .arg("-t")
            .arg("-c")
            .arg(&file)
            .env("NATS_NAME", "nats-0")
            .envs(TENANT_PASSWORDS)
            .output()
            .expect("nats-server on PATH (or FLOWMESH_TEST_NATS_SERVER)");
        assert!(
            out.status.success(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

const TEN_SECONDS: std::time::Duration = std::time::Duration::from_secs(10);

/// Sends until `subscriber` receives a message, for at most ten seconds.
async fn delivered<F, Fut>(
    what: &str,
    subscriber: &mut async_nats::Subscriber,
    mut send: F,
) -> async_nats::Message
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), async_nats::PublishError>>,
{
    use futures::StreamExt;
    let deadline = tokio::time::Instant::now() + TEN_SECONDS;
    loop {
        send().await.unwrap();
        let wait = std::time::Duration::from_millis(100);
        if let Ok(Some(message)) = tokio::time::timeout(wait, subscriber.next()).await {
            return message;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
    }
}

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(TEN_SECONDS, future)
        .await
        .unwrap_or_else(|_| panic!("{what} within 10 s"))
}

/// With the shipped tenant configuration, a tenant's client reads its own
/// event subjects, starts its own workflows and gets replies in its own
/// inbox; the server refuses it the other tenant's subjects.
#[tokio::test]
async fn tenants_reach_only_their_own_nats_subjects() {
    use futures::StreamExt;
    let nats = ConfiguredNats::tenants().await;
    let (engine, _) = nats.login("flowmesh").await;
    let (acme, _) = nats.login("acme").await;

    // A client's flush only writes its buffer, so the server may see a
    // subscription after the message meant for it: send until it arrives.
    let mut own_events = acme.subscribe("flowmesh.events.acme.>").await.unwrap();
    let got = delivered("acme's own event", &mut own_events, || {
        engine.publish("flowmesh.events.acme.e1", "acme".into())
    })
    .await;
    assert_eq!(&got.payload[..], b"acme");

    let mut triggers = engine.subscribe("flowmesh.trigger.>").await.unwrap();
    let got = delivered("acme's own trigger", &mut triggers, || {
        acme.publish("flowmesh.trigger.acme.orders", "to acme".into())
    })
    .await;
    assert_eq!(got.subject.as_str(), "flowmesh.trigger.acme.orders");

    let mut served = engine
        .subscribe("flowmesh.trigger.acme.ping")
        .await
        .unwrap();
    let responder = engine.clone();
    tokio::spawn(async move {
        while let Some(message) = served.next().await {
            if let Some(reply) = message.reply {
                responder.publish(reply, "pong".into()).await.unwrap();
            }
        }
    });
    let answer = common::eventually(
        "a reply through flowmesh.inbox.acme",
        TEN_SECONDS,
        || async {
            acme.request("flowmesh.trigger.acme.ping", "ping".into())
                .await
                .ok()
        },
    )
    .await;
    assert_eq!(&answer.payload[..], b"pong");

    // Each attempt at the other tenant's subjects is refused by the server.
    let (snoop, mut refusals) = nats.login("acme").await;
    let _other = snoop.subscribe("flowmesh.events.globex.>").await.unwrap();
    snoop.flush().await.unwrap();
    within("the subscription refused", refusals.recv())
        .await
        .unwrap();
    snoop
        .publish("flowmesh.trigger.globex.orders", "to globex".into())
        .await
        .unwrap();
    snoop.flush().await.unwrap();
    within("the publish refused", refusals.recv())
        .await
        .unwrap();
    assert!(refusals.try_recv().is_err(), "one refusal each");
}

/// The dashboard queries only metrics the engine exports, and shows them all.
#[test]
fn the_dashboard_queries_exported_metrics() {
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("observability/grafana-dashboard.json")).expect("JSON");
    let mut queried = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if let Some(name) = word.strip_prefix("flowmesh_") {
                    let name = ["_bucket", "_count", "_sum"]
                        .iter()
                        .find_map(|s| name.strip_suffix(s))
                        .unwrap_or(name);
                    queried.insert(format!("flowmesh_{name}"));
                }
            }
        }
    }
    let exported: BTreeSet<String> = flowmesh_services::metrics::METRICS
        .iter()
        .map(|m| m.name.to_owned())
        .collect();
    for name in &queried {
        assert!(
            exported.contains(name),
            "the dashboard queries {name}, which is not exported"
        );
    }
    for name in &exported {
        assert!(queried.contains(name), "{name} is on no dashboard panel");
    }
}

#[test]
fn prometheus_and_the_collector_point_where_flowmesh_serves() {
    let scrape = yaml("observability/prometheus.yml").remove(0);
    let job = &scrape["scrape_configs"][0];
    assert_eq!(job["metrics_path"].as_str(), Some("/metrics"));
    // Metrics are served only with the instance's token: Prometheus sends
    // one, and every process it scrapes is given one.
    assert_eq!(job["authorization"]["type"].as_str(), Some("Bearer"));
    assert!(job["authorization"]["credentials_file"].is_string());
    let compose = yaml("compose.yaml").remove(0);
    let targets = strings(&job["static_configs"][0]["targets"]);
    let serving = compose["services"]
        .as_mapping()
        .unwrap()
        .values()
        .filter(|s| s["environment"]["FLOWMESH_ROLE"].is_string())
        .count();
    assert_eq!(targets.len(), serving, "every process is scraped");
    for target in targets {
        let (host, port) = target.split_once(':').unwrap();
        let service = &compose["services"][host];
        let listen = ops_listen(|key| service["environment"][key].as_str()).expect(host);
        assert!(
            service["environment"]["FLOWMESH_METRICS_TOKEN"].is_string(),
            "{host} has no metrics token"
        );
        assert_eq!(
            port.parse::<u16>().unwrap(),
            port_of_listen(listen),
            "{target}"
        );
    }
    let collector = yaml("observability/otel-collector.yaml").remove(0);
    let http = collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
        .as_str()
        .expect("an OTLP/HTTP receiver");
    assert!(http.ends_with(":4318"), "{http}");
    let pipeline = &collector["service"]["pipelines"]["traces"];
    assert_eq!(strings(&pipeline["receivers"]), ["otlp"]);
}
