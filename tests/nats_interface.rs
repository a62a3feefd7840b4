//! NATS publishers and subscribers: a JSON message on a tenant's trigger
//! subject starts its published workflow (a request gets the reply), and
//! the tenant's event subjects carry the same events as its SSE stream.

mod common;

use std::time::Duration;

use common::servers::ConfiguredNats;
use common::{Engine, Mode, Servers, TestDatabase, eventually};
use futures::{FutureExt, StreamExt};
use reqwest::Method;
use serde_json::{Value, json};

fn order_flow() -> Value {
    json!({"name": "orders", "nodes": [
        {"id": "in", "type": "trigger", "kind": "nats", "config": {"subject": "orders.created"}},
        {"id": "answer", "type": "action", "kind": "respond",
         "config": {"status": 201, "body": {"order": "{{ trigger.body.id }}", "via": "{{ trigger.subject }}"}}}
    ], "edges": [{"from": "in", "to": "answer"}]})
}

fn audit_flow() -> Value {
    json!({"name": "audit", "nodes": [
        {"id": "in", "type": "trigger", "kind": "nats", "config": {"subject": "audit"}},
        {"id": "note", "type": "data", "kind": "mapping", "config": {"mapping": {"seen": "{{ trigger.body.what }}"}}}
    ], "edges": [{"from": "in", "to": "note"}]})
}

async fn request(
    client: &async_nats::Client,
    subject: String,
    body: &[u8],
) -> (Option<String>, Value) {
    let reply = tokio::time::timeout(
        Duration::from_secs(20),
        client.request(subject, body.to_vec().into()),
    )
    .await
    .expect("a reply in time")
    .expect("a reply");
    let status = reply
        .headers
        .as_ref()
        .and_then(|h| h.get("Flowmesh-Status"))
        .map(|v| v.as_str().to_owned());
    (
        status,
        serde_json::from_slice(&reply.payload).expect("JSON reply"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_messages_start_workflows_and_subscribers_see_events() {
    let engine = Engine::start(Mode::Distributed).await;
    let key = engine.create_tenant("Nats Shop").await;
    engine.deploy_as(&key, order_flow()).await;
    engine.deploy_as(&key, audit_flow()).await;
    let prefix = &engine.prefix;
    let client = async_nats::ConnectOptions::new()
        .custom_inbox_prefix(format!("{prefix}.inbox.nats-shop"))
        .connect(&engine.servers.nats)
        .await
        .expect("NATS");
    let mut events = client
        .subscribe(format!("{prefix}.events.nats-shop.>"))
        .await
        .unwrap();
    client.flush().await.unwrap();

    // A workflow that responds answers the request with its response.
    let (status, body) = request(
        &client,
        format!("{prefix}.trigger.nats-shop.orders.created"),
        br#"{"id": "A-17"}"#,
    )
    .await;
    assert_eq!(status.as_deref(), Some("201"));
    assert_eq!(body, json!({"order": "A-17", "via": "orders.created"}));

    // Another answers once the execution is recorded; it then runs.
    let (status, body) = request(
        &client,
        format!("{prefix}.trigger.nats-shop.audit"),
        br#"{"what": "login"}"#,
    )
    .await;
    assert_eq!(status.as_deref(), Some("202"));
    let id = body["execution_id"]
        .as_str()
        .expect("execution id")
        .to_owned();
    let done = eventually("the audit run ends", Duration::from_secs(20), || async {
        let (_, e) = engine
            .request_as(&key, Method::GET, &format!("/v1/executions/{id}"), None)
            .await;
        (e["status"] == "succeeded").then_some(e)
    })
    .await;
    assert_eq!(done["output"], json!({"seen": "login"}));

    // Subscribers got the same events as the execution's SSE stream.
    let mut seen: Vec<Value> = Vec::new();
    let finished = |seen: &Vec<Value>| {
        seen.iter()
            .any(|e| e["execution_id"] == id.as_str() && e["type"] == "execution_finished")
    };
    while !finished(&seen) {
        let message = tokio::time::timeout(Duration::from_secs(20), events.next())
            .await
            .expect("an event in time")
            .expect("subscribed");
        seen.push(serde_json::from_slice(&message.payload).expect("JSON event"));
    }
    let ours: Vec<&Value> = seen
        .iter()
        .filter(|e| e["execution_id"] == id.as_str())
        .collect();
    let kinds: Vec<&str> = ours.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"execution_started"));
    assert!(kinds.contains(&"node_succeeded"));
    let seqs: Vec<u64> = ours.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());

    // Bad input gets a clear error reply, and starts nothing.
    let (status, body) = request(
        &client,
        format!("{prefix}.trigger.nats-shop.audit"),
        b"{not json",
    )
    .await;
    assert_eq!(status, None);
    assert_eq!(body["error"]["code"], "malformed_json");
    let (_, body) = request(
        &client,
        format!("{prefix}.trigger.nats-shop.nothing.here"),
        b"{}",
    )
    .await;
    assert_eq!(body["error"]["code"], "not_found");
    let stranger = async_nats::ConnectOptions::new()
        .custom_inbox_prefix(format!("{prefix}.inbox.no-such-tenant"))
        .connect(&engine.servers.nats)
        .await
        .expect("NATS");
    let (_, body) = request(
        &stranger,
        format!("{prefix}.trigger.no-such-tenant.audit"),
        b"{}",
    )
    .await;
    assert_eq!(body["error"]["code"], "not_found");
    // The same trigger is not reachable over HTTP.
    let resp = engine
        .client()
        .request(
            Method::from_bytes(b"NATS").unwrap(),
            engine.url("/hooks/nats-shop/audit"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::NOT_FOUND);
}

/// With the shipped `deploy/nats-tenants.conf`: the engine logs in as its
/// own user and answers each tenant in that tenant's inbox only. NATS does
/// not check a reply subject against the publisher's rights, so a request
/// naming another tenant's inbox or event subject as its reply subject
/// would have the engine publish there with its own: it is refused, and
/// starts nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_go_only_to_the_requesting_tenants_inbox() {
    let nats = ConfiguredNats::tenants().await;
    let servers = Servers {
        nats: nats.url.clone(),
        ..Servers::default()
    };
    let engine = Engine::start_on(
        Mode::Distributed,
        servers,
        &[
            ("FLOWMESH_BUS_PREFIX", "flowmesh"),
            ("FLOWMESH_NATS_USER", "flowmesh"),
            ("FLOWMESH_NATS_PASSWORD", "engine-password"),
        ],
    )
    .await;
    let acme_key = engine.create_tenant("acme").await;
    let globex_key = engine.create_tenant("globex").await;
    engine.deploy_as(&acme_key, order_flow()).await;
    engine.deploy_as(&globex_key, order_flow()).await;
    let (acme, _) = nats.login("acme").await;
    let (globex, _) = nats.login("globex").await;
    let mut stolen = globex
        .subscribe("flowmesh.inbox.globex.stolen")
        .await
        .unwrap();
    let mut forged = globex
        .subscribe("flowmesh.events.globex.forged")
        .await
        .unwrap();
    // A round trip of globex's own: its subscriptions are in place (the
    // server handles one connection's messages in order).
    let (status, body) = request(
        &globex,
        "flowmesh.trigger.globex.orders.created".into(),
        br#"{"id": "G-1"}"#,
    )
    .await;
    assert_eq!(status.as_deref(), Some("201"), "{body}");

    for reply in [
        "flowmesh.inbox.globex.stolen",
        "flowmesh.events.globex.forged",
    ] {
        acme.publish_with_reply(
            "flowmesh.trigger.acme.orders.created",
            reply,
            br#"{"id": "A-666"}"#.to_vec().into(),
        )
        .await
        .unwrap();
    }
    acme.flush().await.unwrap();
    let refusal = "reply subject is outside the tenant's inbox";
    eventually("both requests refused", Duration::from_secs(20), || {
        let leaked = [stolen.next().now_or_never(), forged.next().now_or_never()];
        if let Some(message) = leaked.into_iter().flatten().flatten().next() {
            panic!(
                "globex received an answer to acme on {}: {:?}",
                message.subject, message.payload
            );
        }
        let refused = engine.log_text().matches(refusal).count();
        async move { (refused == 2).then_some(()) }
    })
    .await;

    // Acme with its own inbox gets its answer; only that request started.
    let (status, body) = request(
        &acme,
        "flowmesh.trigger.acme.orders.created".into(),
        br#"{"id": "A-1"}"#,
    )
    .await;
    assert_eq!(status.as_deref(), Some("201"));
    assert_eq!(body, json!({"order": "A-1", "via": "orders.created"}));
    let (_, listed) = engine
        .request_as(&acme_key, Method::GET, "/v1/executions", None)
        .await;
    let runs = listed["items"].as_array().expect("executions");
    assert_eq!(
        runs.len(),
        1,
        "the refused requests started nothing: {listed}"
    );
    // Globex's round trip after all that: anything sent its way is in.
    request(
        &globex,
        "flowmesh.trigger.globex.orders.created".into(),
        br#"{"id": "G-2"}"#,
    )
    .await;
    assert!(stolen.next().now_or_never().is_none());
    assert!(forged.next().now_or_never().is_none());
    assert!(!engine.log_text().contains("engine-password"));
}

/// Requests that wait for their workflow's response hold their slots for
/// up to `--max-sync-wait`: one tenant sending hundreds of them holds only
/// its own share, its excess is refused at once as retryable, and another
/// tenant is answered meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenants_waiting_requests_do_not_hold_up_another_tenant() {
    let engine = Engine::start_with(Mode::Distributed, &[("FLOWMESH_MAX_SYNC_WAIT", "60s")]).await;
    let slow_key = engine.create_tenant("Slow Co").await;
    let fast_key = engine.create_tenant("Fast Co").await;
    engine
        .deploy_as(
            &slow_key,
            json!({"name": "held", "nodes": [
                {"id": "in", "type": "trigger", "kind": "nats", "config": {"subject": "held"}},
                {"id": "hold", "type": "action", "kind": "wait_for_event", "config": {}},
                {"id": "answer", "type": "action", "kind": "respond", "config": {"status": 200, "body": {}}}
            ], "edges": [{"from": "in", "to": "hold"}, {"from": "hold", "to": "answer"}]}),
        )
        .await;
    engine.deploy_as(&fast_key, order_flow()).await;
    let prefix = &engine.prefix;
    let client = |slug: &str| {
        async_nats::ConnectOptions::new()
            .custom_inbox_prefix(format!("{prefix}.inbox.{slug}"))
            .request_timeout(Some(Duration::from_secs(30)))
            .connect(&engine.servers.nats)
    };
    let slow = client("slow-co").await.expect("NATS");
    let fast = client("fast-co").await.expect("NATS");

    const SENT: usize = 300;
    const HELD: usize = 32;
    let waiting: Vec<_> = (0..SENT)
        .map(|_| {
            let slow = slow.clone();
            let subject = format!("{prefix}.trigger.slow-co.held");
            tokio::spawn(async move { slow.request(subject, "{}".into()).await })
        })
        .collect();
    slow.flush().await.unwrap();

    let (status, body) = request(
        &fast,
        format!("{prefix}.trigger.fast-co.orders.created"),
        br#"{"id": "F-1"}"#,
    )
    .await;
    assert_eq!(status.as_deref(), Some("201"), "{body}");

    let mut waiting: futures::stream::FuturesUnordered<_> = waiting.into_iter().collect();
    let mut refused = 0;
    while let Some(request) = waiting.next().await {
        let Ok(reply) = request.unwrap() else {
            continue;
        };
        let body: Value = serde_json::from_slice(&reply.payload).expect("JSON reply");
        assert_eq!(body["error"]["code"], "rate_limited", "{body}");
        assert_eq!(body["error"]["retryable"], true, "{body}");
        refused += 1;
        if refused == SENT - HELD {
            break;
        }
    }
    assert_eq!(
        refused,
        SENT - HELD,
        "all but the tenant's share are refused"
    );
}

/// Runs `flowmesh serve` (SQLite, a NATS bus) until it gives up; its
/// standard error.
async fn refused_start(database: &TestDatabase, env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_flowmesh"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("FLOWMESH_LISTEN", "127.0.0.1:0")
        .env("FLOWMESH_DATA_DIR", dir.path())
        .env("FLOWMESH_LOG", "debug")
        .env("DATABASE_URL", database.url())
        .envs(env.iter().copied())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the engine gives up in time")
        .expect("the engine runs");
    assert!(!out.status.success(), "the engine started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The engine logs in to NATS with user and password (in its settings or
/// its URL), a token or an nkey; wrong credentials stop it at start with
/// an error that says so and shows no secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_logs_in_to_nats() {
    let tenants = ConfiguredNats::tenants().await;
    let token = ConfiguredNats::start(
        "jetstream { store_dir: \"{store}\" }\nauthorization { token: \"tok-3f9a\" }\n",
        &[],
    )
    .await;
    let user = nkeys::KeyPair::new_user();
    let seed = user.seed().unwrap();
    let nkey = ConfiguredNats::start(
        &format!(
            "jetstream {{ store_dir: \"{{store}}\" }}\nauthorization {{ users = [ {{ nkey: \"{}\" }} ] }}\n",
            user.public_key()
        ),
        &[],
    )
    .await;
    let in_url = tenants
        .url
        .replace("nats://", "nats://flowmesh:engine-password@");
    let logins: [&[(&str, &str)]; 4] = [
        &[
            ("FLOWMESH_NATS_URL", &tenants.url),
            ("FLOWMESH_NATS_USER", "flowmesh"),
            ("FLOWMESH_NATS_PASSWORD", "engine-password"),
        ],
        &[("FLOWMESH_NATS_URL", &in_url)],
        &[
            ("FLOWMESH_NATS_URL", &token.url),
            ("FLOWMESH_NATS_TOKEN", "tok-3f9a"),
        ],
        &[
            ("FLOWMESH_NATS_URL", &nkey.url),
            ("FLOWMESH_NATS_NKEY_SEED", &seed),
        ],
    ];
    for env in logins {
        // Ready means the bus answered: the login worked.
        let engine = Engine::start_with(Mode::Distributed, env).await;
        let log = engine.log_text();
        for secret in ["engine-password", "tok-3f9a", &seed] {
            assert!(!log.contains(secret), "a NATS secret in the log");
        }
    }

    let database = TestDatabase::create(&Servers::default()).await;
    let wrong_password = refused_start(
        &database,
        &[
            ("FLOWMESH_NATS_URL", &tenants.url),
            ("FLOWMESH_NATS_USER", "flowmesh"),
            ("FLOWMESH_NATS_PASSWORD", "not-the-password"),
        ],
    )
    .await;
    assert!(
        wrong_password.contains("refused the engine's login as user \"flowmesh\""),
        "{wrong_password}"
    );
    let wrong_in_url = refused_start(
        &database,
        &[(
            "FLOWMESH_NATS_URL",
            &tenants
                .url
                .replace("nats://", "nats://flowmesh:url-wrong-pw@"),
        )],
    )
    .await;
    assert!(
        wrong_in_url.contains("refused the engine's login"),
        "{wrong_in_url}"
    );
    let wrong_token = refused_start(
        &database,
        &[
            ("FLOWMESH_NATS_URL", &token.url),
            ("FLOWMESH_NATS_TOKEN", "tok-wrong"),
        ],
    )
    .await;
    assert!(
        wrong_token.contains("refused the engine's login with a token"),
        "{wrong_token}"
    );
    let no_file = refused_start(
        &database,
        &[
            ("FLOWMESH_NATS_URL", &token.url),
            ("FLOWMESH_NATS_CREDENTIALS", "/nonexistent/engine.creds"),
        ],
    )
    .await;
    assert!(
        no_file.contains("the NATS credentials file /nonexistent/engine.creds"),
        "{no_file}"
    );
    let two_ways = refused_start(
        &database,
        &[
            ("FLOWMESH_NATS_URL", &in_url),
            ("FLOWMESH_NATS_TOKEN", "tok-3f9a"),
        ],
    )
    .await;
    assert!(two_ways.contains("one way"), "{two_ways}");
    for (out, secret) in [
        (&wrong_password, "not-the-password"),
        (&wrong_in_url, "url-wrong-pw"),
        (&wrong_token, "tok-wrong"),
        (&two_ways, "engine-password"),
    ] {
        assert!(!out.contains(secret), "a secret in the output: {out}");
    }
}
