//! Operating flowmesh: metrics that move with the work.

mod common;

use std::time::Duration;

use common::stub::StubServer;
use common::{Engine, Mode, eventually};
use flowmesh_services::metrics::METRICS;
use reqwest::{Method, StatusCode};
use serde_json::json;

/// The sum of the samples of `name` whose labels include all of `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, "}"));
            (metric == name).then_some((rest, value))
        })
        .filter(|(rest, _)| {
            labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|(_, value)| value.parse::<f64>().ok())
        .sum()
}

async fn scrape(engine: &Engine) -> String {
    let resp = engine.metrics().await;
    assert!(resp.status().is_success());
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    resp.text().await.unwrap()
}

async fn metrics_move(mode: Mode) {
    let stub = StubServer::start().await;
    let env = [
        ("FLOWMESH_PARK_AFTER", "1s"),
        ("FLOWMESH_MAX_REFILLS_PER_DAY", "0"),
        // Its schedule ticks every second.
        ("FLOWMESH_SCHEDULE_MIN_INTERVAL", "1s"),
        // Starts go through the bus, so that its metrics move too (the
        // placement tests count starts run where they were accepted).
        ("FLOWMESH_MAX_STARTED_HERE", "0"),
    ];
    let engine = Engine::start_with(mode, &env).await;
    // Every settlement wants a refill, and the cap (0) stops each.
    let refill = json!({"threshold": 1_000_000_000_000i64, "amount": 1});
    let (status, body) = engine
        .request(Method::PUT, "/v1/billing/auto-refill", Some(refill))
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    let calls = engine
        .deploy(json!({"name": "calls", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "call", "type": "action", "kind": "http_request",
             "retry": {"max_attempts": 2, "initial_backoff": "10ms"},
             "config": {"url": stub.url("/status/{{ trigger.body.status }}")}},
            {"id": "shape", "type": "data", "kind": "mapping", "config": {"mapping": {"ok": true}}}
        ], "edges": [{"from": "start", "to": "call"}, {"from": "call", "to": "shape"}]}))
        .await;
    let naps = engine
        .deploy(json!({"name": "nap", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "nap", "type": "action", "kind": "wait", "config": {"duration": "2s"}},
            {"id": "spin", "type": "action", "kind": "code", "retry": {"max_attempts": 1},
             "config": {"language": "javascript", "source": "while (true) {}", "limits": {"wall": "200ms"}}}
        ], "edges": [{"from": "start", "to": "nap"}, {"from": "nap", "to": "spin"}]}))
        .await;
    let before = scrape(&engine).await;
    let mut ids = Vec::new();
    for status in [200, 200, 200, 500] {
        ids.push(
            engine
                .start_execution(&calls, json!({"status": status}))
                .await,
        );
    }
    ids.push(engine.start_execution(&naps, json!({})).await);
    // While it waits, the store's count shows it.
    eventually(
        "the waiting execution counted",
        Duration::from_secs(10),
        || async {
            let text = scrape(&engine).await;
            let running = [("workflow", naps.as_str()), ("status", "running")];
            (sample(&text, "flowmesh_executions_unfinished", &running) == 1.0).then_some(())
        },
    )
    .await;
    for id in &ids {
        engine.finished(id).await;
    }
    let after = scrape(&engine).await;
    let moved = |name: &str, labels: &[(&str, &str)]| {
        sample(&after, name, labels) - sample(&before, name, labels)
    };
    let w = calls.as_str();
    assert_eq!(
        moved("flowmesh_executions_started_total", &[("workflow", w)]),
        4.0
    );
    assert_eq!(
        moved(
            "flowmesh_executions_finished_total",
            &[("workflow", w), ("status", "succeeded")]
        ),
        3.0
    );
    assert_eq!(
        moved(
            "flowmesh_executions_finished_total",
            &[("workflow", w), ("status", "failed")]
        ),
        1.0
    );
    assert!(
        moved(
            "flowmesh_node_duration_seconds_count",
            &[("kind", "http_request"), ("outcome", "ok")]
        ) >= 3.0
    );
    assert!(moved("flowmesh_node_retries_total", &[("kind", "http_request")]) >= 1.0);
    assert!(moved("flowmesh_executions_parked_total", &[]) >= 1.0);
    assert_eq!(
        moved("flowmesh_sandbox_kills_total", &[("reason", "timeout")]),
        1.0
    );
    assert!(moved("flowmesh_bus_consume_lag_seconds_count", &[]) >= 5.0);
    assert!(
        moved(
            "flowmesh_store_query_seconds_count",
            &[("op", "commit_turn")]
        ) >= 5.0
    );
    assert!(
        moved(
            "flowmesh_bus_publish_seconds_count",
            &[("message", "event")]
        ) >= 5.0
    );
    assert_eq!(sample(&after, "flowmesh_actors", &[("kind", "root")]), 1.0);
    // Five executions of one or two nodes each, at one credit per start and node run.
    assert!(moved("flowmesh_credits_used_total", &[]) >= 10.0);
    // A tenant held to one running execution and two requests a second.
    let key = engine.create_tenant("Held").await;
    let held = engine
        .deploy_as(
            &key,
            json!({"name": "held", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "pause", "type": "action", "kind": "wait", "config": {"duration": "200ms"}}
        ], "edges": [{"from": "start", "to": "pause"}]}),
        )
        .await;
    let limits = json!({"rate_limit": null, "max_concurrent": 1, "max_payload_bytes": null});
    let (status, _) = engine
        .request(Method::PUT, "/v1/admin/tenants/held/limits", Some(limits))
        .await;
    assert!(status.is_success());
    let mut held_ids = Vec::new();
    for _ in 0..2 {
        let (_, body) = engine
            .request_as(
                &key,
                Method::POST,
                &format!("/v1/workflows/{held}/executions"),
                Some(json!({})),
            )
            .await;
        held_ids.push(body["execution_id"].as_str().expect("started").to_owned());
    }
    for id in &held_ids {
        eventually(
            "the held execution ends",
            Duration::from_secs(20),
            || async {
                let (_, e) = engine
                    .request_as(&key, Method::GET, &format!("/v1/executions/{id}"), None)
                    .await;
                (e["status"] == "succeeded").then_some(())
            },
        )
        .await;
    }
    let limits = json!({"rate_limit": 2, "max_concurrent": null, "max_payload_bytes": null});
    engine
        .request(Method::PUT, "/v1/admin/tenants/held/limits", Some(limits))
        .await;
    eventually(
        "a request over the rate",
        Duration::from_secs(10),
        || async {
            let (status, _) = engine
                .request_as(&key, Method::GET, "/v1/workflows", None)
                .await;
            (status == reqwest::StatusCode::TOO_MANY_REQUESTS).then_some(())
        },
    )
    .await;
    // A schedule of a tenant without credits: its ticks are skipped.
    let broke = engine.create_tenant("Broke").await;
    engine
        .request(
            Method::POST,
            "/v1/admin/tenants/broke/credits",
            Some(json!({"amount": -1_000_000_000})),
        )
        .await;
    engine
        .deploy_as(
            &broke,
            json!({"name": "ticks", "nodes": [
                {"id": "tick", "type": "trigger", "kind": "schedule", "config": {"cron": "* * * * * *"}},
                {"id": "shape", "type": "data", "kind": "mapping", "config": {"mapping": {"ok": true}}}
            ], "edges": [{"from": "tick", "to": "shape"}]}),
        )
        .await;
    eventually(
        "a skipped tick and a capped refill",
        Duration::from_secs(20),
        || async {
            let text = scrape(&engine).await;
            (sample(&text, "flowmesh_schedule_ticks_skipped_total", &[]) >= 1.0
                && sample(&text, "flowmesh_refills_capped_total", &[]) >= 1.0)
                .then_some(())
        },
    )
    .await;
    let limited = scrape(&engine).await;
    assert!(sample(&limited, "flowmesh_executions_deferred_total", &[]) >= 1.0);
    assert!(sample(&limited, "flowmesh_requests_rate_limited_total", &[]) >= 1.0);
    // A NATS message for no published trigger starts nothing and is counted
    // (embedded mode has no NATS interface).
    if mode == Mode::Distributed {
        let nats = async_nats::connect(&engine.servers.nats)
            .await
            .expect("NATS");
        let subject = format!("{}.trigger.nobody-here.orders", engine.prefix);
        nats.publish(subject, "{}".into()).await.unwrap();
        nats.flush().await.unwrap();
        eventually(
            "a refused trigger message",
            Duration::from_secs(20),
            || async {
                let text = scrape(&engine).await;
                (sample(&text, "flowmesh_nats_triggers_refused_total", &[]) >= 1.0).then_some(())
            },
        )
        .await;
    }
    // Nothing runs any more: no execution actor is left.
    let idle = eventually(
        "no execution in flight",
        Duration::from_secs(10),
        || async {
            let text = scrape(&engine).await;
            (sample(&text, "flowmesh_executions_in_flight", &[]) == 0.0).then_some(text)
        },
    )
    .await;
    assert_eq!(
        sample(&idle, "flowmesh_actors", &[("kind", "execution")]),
        0.0
    );
    for metric in METRICS {
        if mode == Mode::Embedded && metric.name == "flowmesh_nats_triggers_refused_total" {
            continue;
        }
        assert!(
            idle.contains(&format!("# TYPE {} ", metric.name)),
            "{} is never exported",
            metric.name
        );
    }
}
both_modes!(metrics_move_with_a_known_workload, metrics_move);

async fn stats_logs_and_rerun(mode: Mode) {
    let stub = StubServer::start().await;
    let engine = Engine::start(mode).await;
    let workflow = engine
        .deploy(json!({"name": "pipeline", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "fetch", "type": "action", "kind": "http_request",
             "config": {"method": "POST", "url": stub.url("/ok/fetch"), "body": {"n": "{{ trigger.body.n }}", "token": "s3cr3t"}}},
            {"id": "double", "type": "data", "kind": "mapping", "config": {"mapping": {"v": "{{ fetch.body.received.n * 2 }}"}}},
            {"id": "note", "type": "action", "kind": "code", "retry": {"max_attempts": 1},
             "config": {"language": "javascript", "source": "console.log('v is', input.double.v); return {seen: input.double.v};"}},
            {"id": "send", "type": "action", "kind": "http_request",
             "config": {"method": "POST", "url": stub.url("/ok/send"), "body": {"v": "{{ double.v }}"}}}
        ], "edges": [{"from": "start", "to": "fetch"}, {"from": "fetch", "to": "double"},
                     {"from": "double", "to": "note"}, {"from": "note", "to": "send"}]}))
        .await;
    let mut runs = Vec::new();
    for n in [json!(1), json!(2), json!(3), json!({"not": "a number"})] {
        let id = engine.start_execution(&workflow, json!({"n": n})).await;
        engine.finished(&id).await;
        runs.push(id);
    }

    let (status, stats) = engine.get(&format!("/v1/workflows/{workflow}/stats")).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{stats}");
    assert_eq!(stats["total"], 4);
    assert_eq!(stats["by_status"]["succeeded"], 3);
    assert_eq!(stats["by_status"]["failed"], 1);
    assert_eq!(stats["success_rate"], 0.75);
    assert!(stats["p50_ms"].as_i64().unwrap() <= stats["p95_ms"].as_i64().unwrap());
    assert_eq!(stats["last_run"]["execution_id"], runs[3].as_str());
    assert_eq!(stats["last_run"]["status"], "failed");

    let (status, logs) = engine
        .get(&format!("/v1/executions/{}/logs", runs[1]))
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{logs}");
    let nodes = logs["nodes"].as_array().unwrap();
    let order: Vec<&str> = nodes.iter().map(|n| n["node"].as_str().unwrap()).collect();
    assert_eq!(order, ["start", "fetch", "double", "note", "send"]);
    assert_eq!(nodes[0]["output"]["body"]["n"], 2);
    assert_eq!(nodes[2]["input"]["fetch"]["body"]["received"]["n"], 2);
    assert_eq!(
        nodes[2]["input"]["fetch"]["body"]["received"]["token"], "[redacted]",
        "sensitive values never show in logs"
    );
    assert_eq!(nodes[3]["lines"][0], "v is 4");
    assert_eq!(nodes[4]["attempts"], 1);
    let (status, failed) = engine
        .get(&format!("/v1/executions/{}/logs", runs[3]))
        .await;
    assert_eq!(status, reqwest::StatusCode::OK);
    assert_eq!(failed["nodes"][2]["status"], "failed");
    assert!(failed["nodes"][2]["error"].is_string());

    // Re-run the second run from `send` with another value for `double`.
    let fetched = stub.hits("/ok/fetch").len();
    let (status, body) = engine
        .post(
            &format!("/v1/executions/{}/rerun", runs[1]),
            json!({"from_node": "send", "input_override": {"double": {"v": 100}}}),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{body}");
    let rerun = body["execution_id"].as_str().unwrap().to_owned();
    let done = engine.finished(&rerun).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["rerun_of"]["execution_id"], runs[1].as_str());
    assert_eq!(done["rerun_of"]["from_node"], "send");
    assert_eq!(
        stub.hits("/ok/fetch").len(),
        fetched,
        "upstream nodes are not run again"
    );
    assert_eq!(stub.hits("/ok/send").last().unwrap().body["v"], 100);

    for (body, why) in [
        (json!({"from_node": "nope"}), "unknown node"),
        (json!({"from_node": "start"}), "a trigger"),
        (
            json!({"from_node": "double", "input_override": {"send": {}}}),
            "not upstream",
        ),
        (json!({"input_override": {}}), "no from_node"),
    ] {
        let (status, _) = engine
            .post(&format!("/v1/executions/{}/rerun", runs[1]), body)
            .await;
        assert_eq!(status, reqwest::StatusCode::BAD_REQUEST, "{why}");
    }
    let stranger = engine.create_tenant("stranger").await;
    for path in [
        format!("/v1/executions/{}/logs", runs[1]),
        format!("/v1/workflows/{workflow}/stats"),
    ] {
        let (status, _) = engine
            .request_as(&stranger, reqwest::Method::GET, &path, None)
            .await;
        assert_eq!(status, reqwest::StatusCode::NOT_FOUND, "{path}");
    }
}
both_modes!(statistics_logs_and_reruns, stats_logs_and_rerun);

/// A re-run takes new trigger data under `trigger` or under the id of the
/// trigger that started the execution: both names read it.
async fn rerun_trigger_data(mode: Mode) {
    let engine = Engine::start(mode).await;
    let workflow = engine
        .deploy(json!({"name": "shapes", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "hook", "type": "trigger", "kind": "webhook", "config": {"path": "shapes"}},
            {"id": "shape", "type": "data", "kind": "mapping", "config": {"mapping": {"n": "{{ trigger.body.n }}"}}},
            {"id": "out", "type": "data", "kind": "mapping", "config": {"mapping": {
                "by_name": "{{ trigger.body.n }}", "by_id": "{{ start.body.n }}", "shaped": "{{ shape.n }}"}}}
        ], "edges": [{"from": "start", "to": "shape"}, {"from": "hook", "to": "shape"},
                     {"from": "shape", "to": "out"}]}))
        .await;
    let first = engine.start_execution(&workflow, json!({"n": 1})).await;
    engine.finished(&first).await;
    let rerun = |input_override: serde_json::Value| {
        let path = format!("/v1/executions/{first}/rerun");
        let body = json!({"from_node": "out", "input_override": input_override});
        let engine = &engine;
        async move { engine.post(&path, body).await }
    };
    for by in ["start", "trigger"] {
        let (status, body) = rerun(json!({by: {"body": {"n": 7}}})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{by}: {body}");
        let done = engine
            .finished(body["execution_id"].as_str().unwrap())
            .await;
        assert_eq!(done["status"], "succeeded", "{done}");
        assert_eq!(
            common::node(&done, "out")["output"],
            json!({"by_name": 7, "by_id": 7, "shaped": 1}),
            "{by}: the new trigger data, and the recorded output upstream"
        );
    }
    // The trigger that did not start the run has no output to replace, and
    // the trigger data is given once.
    for (input_override, named) in [
        (json!({"hook": {"body": {"n": 7}}}), "input_override.hook"),
        (
            json!({"start": {"body": {"n": 7}}, "trigger": {"body": {"n": 8}}}),
            "input_override.start",
        ),
    ] {
        let (status, body) = rerun(input_override).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            common::error_message(&body).starts_with(named),
            "{named}: {body}"
        );
    }
}
both_modes!(
    a_rerun_takes_new_trigger_data_by_either_name,
    rerun_trigger_data
);

/// JSON logs carry the ids of what they are about, and never a secret.
async fn logs_carry_ids_not_secrets(mode: Mode) {
    let stub = StubServer::start().await;
    let secret = "sk-live-logs-0123456789";
    let env = [("FLOWMESH_LOG", "debug"), ("FLOWMESH_LOG_FORMAT", "json")];
    let engine = Engine::start_with(mode, &env).await;
    engine.put_secret("api_token", secret).await;
    let workflow = engine.deploy(common::secret_workflow(&stub)).await;
    let id = engine.start_execution(&workflow, json!({})).await;
    assert_eq!(engine.finished(&id).await["status"], "succeeded");
    assert!(
        stub.hits("/ok/secret")[0].authorization.is_some(),
        "the secret was used"
    );
    let line = eventually("a log line about the node", Duration::from_secs(10), || {
        let text = engine.log_text();
        let id = id.clone();
        async move {
            text.lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|l| {
                    l["fields"]["message"] == "node attempt ended"
                        && l["span"]["execution"] == id.as_str()
                })
        }
    })
    .await;
    assert_eq!(line["span"]["node"], "call");
    assert_eq!(line["span"]["workflow"], workflow.as_str());
    assert!(line["span"]["tenant"].is_string());
    let text = engine.log_text();
    assert!(text.lines().count() > 10, "the log was captured");
    assert!(!text.contains(secret), "a secret reached the log");
}
both_modes!(logs_carry_ids_and_never_secrets, logs_carry_ids_not_secrets);

async fn scrape_with(engine: &Engine, credential: Option<&str>) -> (StatusCode, String) {
    let request = engine.client().get(engine.url("/metrics"));
    let request = match credential {
        Some(c) => request.bearer_auth(c),
        None => request,
    };
    let resp = request.send().await.expect("scrape");
    (resp.status(), resp.text().await.unwrap())
}

/// Metrics name every tenant and workflow: only the instance's metrics
/// token reads them (no credential, a tenant's owner, the platform's key
/// and a wrong token get 401), and without a token they are not served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_the_instance_token() {
    let mut engine = Engine::start(Mode::Embedded).await;
    let owner = engine.create_tenant("Watched").await;
    for credential in [
        None,
        Some(owner.as_str()),
        Some(common::ADMIN_KEY),
        Some("test-metrics-token-wrong"),
    ] {
        let (status, text) = scrape_with(&engine, credential).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{credential:?}: {text}");
        assert!(!text.contains("flowmesh_"), "{text}");
    }
    let (status, text) = scrape_with(&engine, Some(common::METRICS_TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains("flowmesh_"), "{text}");

    engine.restart_with("FLOWMESH_METRICS_TOKEN", "").await;
    for credential in [None, Some(common::METRICS_TOKEN)] {
        let (status, text) = scrape_with(&engine, credential).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{credential:?}: {text}");
        assert!(text.contains("--metrics-token"), "{text}");
    }
}

/// Text logs written to a pipe or a file carry no terminal colour codes:
/// they would end up as escape sequences in every log collector.
#[tokio::test]
async fn text_logs_off_a_terminal_have_no_colour_codes() {
    let env = [("FLOWMESH_LOG_FORMAT", "text"), ("FLOWMESH_LOG", "info")];
    let engine = Engine::start_with(Mode::Embedded, &env).await;
    let text = eventually("the start-up lines", Duration::from_secs(10), || {
        let text = engine.log_text();
        async move { text.contains("flowmesh is listening").then_some(text) }
    })
    .await;
    assert!(
        !text.contains('\u{1b}'),
        "colour codes in a piped log: {text:?}"
    );
}
