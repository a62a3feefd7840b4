//! Webhook authentication: a token, basic auth, or an HMAC-SHA256 signature
//! in the senders' conventions. A refused caller gets 401 with a generic
//! answer, and starts nothing and spends nothing.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use common::{ADMIN_KEY, Engine, Mode};
use hmac::{Hmac, Mac};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const SECRET: &str = "whsec-0123456789abcdef";

/// Headers a sender adds to its request.
type Headers = Vec<(&'static str, String)>;

fn hook(path: &str, auth: Value) -> Value {
    json!({"name": path, "nodes": [
        {"id": "hook", "type": "trigger", "kind": "webhook",
         "config": {"path": path, "method": "POST", "auth": auth}},
        {"id": "echo", "type": "data", "kind": "mapping", "config": {"mapping": {"got": "{{ trigger.body }}"}}}
    ], "edges": [{"from": "hook", "to": "echo"}]})
}

fn sign(message: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Six minutes ago: past the five minutes a signed timestamp may be off.
fn stale() -> i64 {
    now() - 360
}

async fn send(engine: &Engine, path: &str, headers: &[(&str, String)], body: &str) -> Answer {
    let mut request = engine
        .client()
        .post(engine.url(&format!("/hooks/default/{path}")))
        .header("content-type", "application/json")
        .body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.unwrap();
    Answer {
        status: response.status(),
        headers: response.headers().clone(),
        text: response.text().await.unwrap(),
    }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Answer {
    /// 401 with one generic message, whatever failed.
    fn assert_refused(&self, what: &str) {
        assert_eq!(
            self.status,
            StatusCode::UNAUTHORIZED,
            "{what}: {}",
            self.text
        );
        let body: Value = serde_json::from_str(&self.text).unwrap();
        assert_eq!(
            body,
            json!({"error": {"code": "unauthenticated", "message": "authentication failed"}}),
            "{what}"
        );
        assert!(!self.text.contains(SECRET), "{what}");
    }

    fn execution(&self, what: &str) -> String {
        assert_eq!(self.status, StatusCode::ACCEPTED, "{what}: {}", self.text);
        let body: Value = serde_json::from_str(&self.text).unwrap();
        body["execution_id"].as_str().unwrap().to_owned()
    }
}

async fn executions(engine: &Engine) -> Vec<Value> {
    let (status, body) = engine.get("/v1/executions").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"].as_array().unwrap().clone()
}

async fn balance(engine: &Engine) -> i64 {
    let (status, body) = engine.get("/v1/billing").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["balance"].as_i64().unwrap()
}

/// The refused requests left no execution and the balance as it was.
async fn assert_nothing_started(engine: &Engine, before: i64) {
    assert_eq!(executions(engine).await, Vec::<Value>::new());
    assert_eq!(balance(engine).await, before);
}

/// A run started with `body`, whose trigger data holds no credential header.
async fn assert_ran(engine: &Engine, id: &str, body: &str, hidden: &str) {
    let execution = engine.finished(id).await;
    assert_eq!(execution["status"], "succeeded", "{execution}");
    let expected: Value = serde_json::from_str(body).unwrap();
    assert_eq!(execution["trigger"]["body"], expected, "{execution}");
    let headers = execution["trigger"]["headers"].as_object().unwrap();
    assert!(!headers.contains_key(hidden), "{hidden} kept: {execution}");
}

async fn tokens_and_basic_auth(mode: Mode) {
    let engine = Engine::start(mode).await;
    engine.put_secret("hook_token", SECRET).await;
    engine
        .deploy(hook(
            "bearer",
            json!({"scheme": "token", "secret": "hook_token"}),
        ))
        .await;
    engine
        .deploy(hook(
            "named",
            json!({"scheme": "token", "secret": "hook_token", "header": "X-Hook-Token"}),
        ))
        .await;
    engine
        .deploy(hook(
            "basic",
            json!({"scheme": "basic", "secret": "hook_token", "user": "sender"}),
        ))
        .await;
    let body = r#"{"order":1}"#;
    let basic = |user: &str, password: &str| {
        let pair = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Basic {pair}")
    };
    let before = balance(&engine).await;
    let key = ("idempotency-key", "order-1".to_owned());

    let refused = send(&engine, "bearer", std::slice::from_ref(&key), body).await;
    refused.assert_refused("no token");
    assert_eq!(refused.headers["www-authenticate"], "Bearer");
    let wrong = ("authorization", "Bearer whsec-0123456789abcdeF".to_owned());
    send(&engine, "bearer", &[wrong, key.clone()], body)
        .await
        .assert_refused("wrong token");
    send(&engine, "named", &[("x-hook-token", "nope".into())], body)
        .await
        .assert_refused("wrong named token");
    let refused = send(
        &engine,
        "basic",
        &[("authorization", basic("sender", "nope"))],
        body,
    )
    .await;
    refused.assert_refused("wrong password");
    assert!(
        refused.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic realm="),
        "{:?}",
        refused.headers
    );
    send(
        &engine,
        "basic",
        &[("authorization", basic("other", SECRET))],
        body,
    )
    .await
    .assert_refused("wrong user");
    assert_nothing_started(&engine, before).await;

    // The idempotency key of a refused request was not spent.
    let bearer = ("authorization", format!("Bearer {SECRET}"));
    let id = send(&engine, "bearer", &[bearer, key], body)
        .await
        .execution("token");
    assert_ran(&engine, &id, body, "authorization").await;
    let named = ("x-hook-token", SECRET.to_owned());
    let id = send(&engine, "named", &[named], body)
        .await
        .execution("named");
    assert_ran(&engine, &id, body, "x-hook-token").await;
    let id = send(
        &engine,
        "basic",
        &[("authorization", basic("sender", SECRET))],
        body,
    )
    .await
    .execution("basic");
    assert_ran(&engine, &id, body, "authorization").await;
}
both_modes!(
    tokens_and_basic_auth_admit_only_the_secret,
    tokens_and_basic_auth
);

async fn signatures(mode: Mode) {
    let engine = Engine::start(mode).await;
    engine.put_secret("signing", SECRET).await;
    for (path, scheme) in [
        ("generic", json!({"scheme": "hmac", "secret": "signing"})),
        (
            "timed",
            json!({"scheme": "hmac", "secret": "signing", "timestamp_header": "X-Signature-Timestamp"}),
        ),
        ("github", json!({"scheme": "github", "secret": "signing"})),
        ("stripe", json!({"scheme": "stripe", "secret": "signing"})),
        ("slack", json!({"scheme": "slack", "secret": "signing"})),
    ] {
        engine.deploy(hook(path, scheme)).await;
    }
    let body = r#"{"event":"paid","amount":100}"#;
    // Same JSON, other bytes: a signature covers the bytes as sent.
    let altered = r#"{"event":"paid","amount":1000}"#;
    let reformatted = r#"{"event": "paid", "amount": 100}"#;
    let generic = |body: &str| vec![("x-signature", format!("sha256={}", sign(body.as_bytes())))];
    let timed = |t: i64, body: &str| {
        vec![
            ("x-signature-timestamp", t.to_string()),
            (
                "x-signature",
                format!("sha256={}", sign(format!("{t}.{body}").as_bytes())),
            ),
        ]
    };
    let github = |body: &str| {
        vec![(
            "x-hub-signature-256",
            format!("sha256={}", sign(body.as_bytes())),
        )]
    };
    let stripe = |t: i64, body: &str| {
        let v1 = sign(format!("{t}.{body}").as_bytes());
        // A second signature, as while Stripe rolls a signing secret.
        vec![(
            "stripe-signature",
            format!("t={t},v1={},v1={v1}", "0".repeat(64)),
        )]
    };
    let slack = |t: i64, body: &str| {
        vec![
            ("x-slack-request-timestamp", t.to_string()),
            (
                "x-slack-signature",
                format!("v0={}", sign(format!("v0:{t}:{body}").as_bytes())),
            ),
        ]
    };
    let before = balance(&engine).await;
    let refusals: Vec<(&str, &str, Headers, &str)> = vec![
        ("generic", "unsigned", vec![], body),
        ("generic", "altered body", generic(body), altered),
        ("generic", "reformatted body", generic(body), reformatted),
        (
            "generic",
            "forged",
            vec![("x-signature", format!("sha256={}", "0".repeat(64)))],
            body,
        ),
        (
            "generic",
            "no prefix",
            vec![("x-signature", sign(body.as_bytes()))],
            body,
        ),
        ("timed", "stale", timed(stale(), body), body),
        ("timed", "altered body", timed(now(), body), altered),
        (
            "timed",
            "no timestamp",
            timed(now(), body)[1..].to_vec(),
            body,
        ),
        ("github", "altered body", github(body), altered),
        ("github", "unsigned", vec![], body),
        ("stripe", "stale", stripe(stale(), body), body),
        ("stripe", "altered body", stripe(now(), body), altered),
        (
            "stripe",
            "malformed",
            vec![("stripe-signature", "v1=abc".into())],
            body,
        ),
        ("slack", "stale", slack(stale(), body), body),
        ("slack", "altered body", slack(now(), body), altered),
        (
            "slack",
            "timestamp not signed",
            vec![
                slack(now(), body)[0].clone(),
                slack(stale(), body)[1].clone(),
            ],
            body,
        ),
    ];
    for (path, what, headers, sent) in &refusals {
        send(&engine, path, headers, sent)
            .await
            .assert_refused(&format!("{path}: {what}"));
    }
    assert_nothing_started(&engine, before).await;

    let accepted: Vec<(&str, Headers, &str)> = vec![
        ("generic", generic(body), "x-signature"),
        ("timed", timed(now(), body), "x-signature"),
        ("github", github(body), "x-hub-signature-256"),
        ("stripe", stripe(now(), body), "stripe-signature"),
        ("slack", slack(now(), body), "x-slack-signature"),
    ];
    for (path, headers, hidden) in accepted {
        let id = send(&engine, path, &headers, body).await.execution(path);
        assert_ran(&engine, &id, body, hidden).await;
    }
}
both_modes!(
    signatures_cover_the_raw_body_and_a_fresh_timestamp,
    signatures
);

/// A secret the trigger names but the tenant has not set: the caller gets
/// the same 401, and the operator's log says which secret is missing.
async fn missing_secret(mode: Mode) {
    let engine = Engine::start(mode).await;
    engine
        .deploy(hook(
            "unset",
            json!({"scheme": "github", "secret": "never_set"}),
        ))
        .await;
    let before = balance(&engine).await;
    let body = r#"{"a":1}"#;
    send(
        &engine,
        "unset",
        &[(
            "x-hub-signature-256",
            format!("sha256={}", sign(body.as_bytes())),
        )],
        body,
    )
    .await
    .assert_refused("secret not set");
    assert_nothing_started(&engine, before).await;
    common::eventually("the warning is logged", Duration::from_secs(10), || async {
        let log = engine.log_text();
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("never_set") && l.contains("not set"))
            .then_some(())
    })
    .await;
}
both_modes!(a_missing_secret_refuses_the_caller, missing_secret);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_auth_configs_are_refused_where_they_are() {
    let engine = Engine::start(Mode::Embedded).await;
    for (auth, path, word) in [
        (
            json!({"scheme": "hmac"}),
            "nodes[0].config.auth.secret",
            "required",
        ),
        (
            json!({"scheme": "rot13", "secret": "s"}),
            "nodes[0].config.auth.scheme",
            "unknown",
        ),
        (
            json!({"secret": "s"}),
            "nodes[0].config.auth.scheme",
            "required",
        ),
        (
            json!({"scheme": "basic", "secret": "s"}),
            "nodes[0].config.auth.user",
            "required",
        ),
        (
            json!({"scheme": "stripe", "secret": "s", "tolerance": "1h"}),
            "nodes[0].config.auth.tolerance",
            "takes",
        ),
        (json!("s3cret"), "nodes[0].config.auth", "object"),
    ] {
        let (status, body) = engine
            .request_as(
                ADMIN_KEY,
                Method::POST,
                "/v1/workflows",
                Some(hook("bad", auth.clone())),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{auth}: {body}");
        let found = body["error"]["details"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["path"] == path && e["message"].as_str().unwrap().contains(word));
        assert!(found, "{auth}: {body}");
    }
}

/// `--webhook-signature-tolerance` widens how old a signed request may be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signature_tolerance_is_a_setting() {
    let engine = Engine::start_with(
        Mode::Embedded,
        &[("FLOWMESH_WEBHOOK_SIGNATURE_TOLERANCE", "10m")],
    )
    .await;
    engine.put_secret("signing", SECRET).await;
    engine
        .deploy(hook(
            "slack",
            json!({"scheme": "slack", "secret": "signing"}),
        ))
        .await;
    let body = r#"{"a":1}"#;
    let signed = |t: i64| {
        vec![
            ("x-slack-request-timestamp", t.to_string()),
            (
                "x-slack-signature",
                format!("v0={}", sign(format!("v0:{t}:{body}").as_bytes())),
            ),
        ]
    };
    send(&engine, "slack", &signed(now() - 900), body)
        .await
        .assert_refused("fifteen minutes old");
    let id = send(&engine, "slack", &signed(stale()), body)
        .await
        .execution("six minutes old");
    assert_ran(&engine, &id, body, "x-slack-signature").await;
}
