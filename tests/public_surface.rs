//! The public surface under attack: what an anonymous caller or a hostile
//! tenant can reach through webhooks, logins, registration, metrics and
//! event streams, and the limits that are meant to hold them.

mod common;

use std::time::Duration;

use common::{ADMIN_KEY, Engine, Mode, client_from, eventually};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const TOKEN: &str = "hook-token-0123456789";

/// A published webhook of the platform tenant that answers `answer`.
fn responding_hook(path: &str, auth: Value, answer: Value) -> Value {
    json!({"name": path, "nodes": [
        {"id": "hook", "type": "trigger", "kind": "webhook",
         "config": {"path": path, "method": "POST", "auth": auth}},
        {"id": "answer", "type": "action", "kind": "respond",
         "config": {"status": 200, "body": answer}}
    ], "edges": [{"from": "hook", "to": "answer"}]})
}

/// A published webhook of the platform tenant without a `respond` node.
fn silent_hook(path: &str) -> Value {
    json!({"name": path, "nodes": [
        {"id": "hook", "type": "trigger", "kind": "webhook",
         "config": {"path": path, "method": "POST"}},
        {"id": "copy", "type": "data", "kind": "mapping", "config": {"mapping": {"got": "{{ trigger.body }}"}}}
    ], "edges": [{"from": "hook", "to": "copy"}]})
}

async fn call_hook(
    engine: &Engine,
    path: &str,
    headers: &[(&str, &str)],
    body: Value,
) -> (StatusCode, Value) {
    let mut request = engine
        .client()
        .post(engine.url(&format!("/hooks/default/{path}")))
        .json(&body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("webhook call");
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Idempotency keys belong to one trigger: an anonymous caller of an open
/// webhook can neither read the answer of a run another (authenticated)
/// webhook started with a key, nor take a key before that webhook's
/// rightful caller and so keep its run from ever starting.
async fn idempotency_keys_across_webhooks(mode: Mode) {
    let engine = Engine::start(mode).await;
    engine.put_secret("hook_token", TOKEN).await;
    engine
        .deploy(responding_hook(
            "signed",
            json!({"scheme": "token", "secret": "hook_token"}),
            json!({"from": "signed", "balance": "{{ trigger.body.balance }}"}),
        ))
        .await;
    engine
        .deploy(responding_hook(
            "open",
            Value::Null,
            json!({"from": "open"}),
        ))
        .await;
    let bearer = format!("Bearer {TOKEN}");

    // The rightful caller of the signed webhook, with a key of its own.
    let (status, body) = call_hook(
        &engine,
        "signed",
        &[("authorization", &bearer), ("idempotency-key", "order-17")],
        json!({"balance": 1234}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"from": "signed", "balance": 1234}));

    // Anyone, through the open webhook, with the same key.
    let (status, body) = call_hook(
        &engine,
        "open",
        &[("idempotency-key", "order-17")],
        json!({}),
    )
    .await;
    assert!(
        !body.to_string().contains("1234"),
        "an anonymous caller of the open webhook read the signed webhook's answer: {status} {body}"
    );

    // Anyone takes a key first; the rightful caller must still be served.
    let (status, _) = call_hook(
        &engine,
        "open",
        &[("idempotency-key", "order-18")],
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = call_hook(
        &engine,
        "signed",
        &[("authorization", &bearer), ("idempotency-key", "order-18")],
        json!({"balance": 99}),
    )
    .await;
    assert_eq!(
        (status, body.clone()),
        (StatusCode::OK, json!({"from": "signed", "balance": 99})),
        "the signed webhook's call was answered with the open webhook's run: {body}"
    );
}
both_modes!(
    idempotency_keys_do_not_cross_webhooks,
    idempotency_keys_across_webhooks
);

/// A WebSocket event stream is a connection like any other: it counts
/// against `--max-connections-per-address` for as long as it is open.
async fn websocket_streams_and_caps(mode: Mode) {
    let engine = Engine::start_with(mode, &[("FLOWMESH_MAX_CONNECTIONS_PER_ADDRESS", "3")]).await;
    let url = engine.url("/v1/events/ws").replacen("http", "ws", 1);
    let mut open = Vec::new();
    for _ in 0..6 {
        let mut request =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
                url.as_str(),
            )
            .unwrap();
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {ADMIN_KEY}").parse().unwrap(),
        );
        let connected = tokio::time::timeout(
            Duration::from_secs(10),
            tokio_tungstenite::connect_async(request),
        )
        .await;
        if let Ok(Ok((socket, _))) = connected {
            open.push(socket);
        }
    }
    assert!(
        open.len() <= 3,
        "{} WebSocket streams held open from one address with a cap of 3 connections per address",
        open.len()
    );
}
both_modes!(
    websocket_streams_count_against_the_connection_caps,
    websocket_streams_and_caps
);

/// `/metrics` is public: it must not list the ids of tenants and their
/// workflows, nor how much each one runs, to anyone who asks.
async fn metrics_to_anyone(mode: Mode) {
    let engine = Engine::start(mode).await;
    let workflow = engine.deploy(silent_hook("counted")).await;
    let (status, _) = call_hook(&engine, "counted", &[], json!({"n": 1})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, me) = engine.get("/v1/me").await;
    let tenant = me["tenant"]["id"].as_str().expect("tenant id").to_owned();

    let response = reqwest::get(engine.url("/metrics")).await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(
        !status.is_success() || (!text.contains(&tenant) && !text.contains(&workflow)),
        "an anonymous caller read tenant {tenant} and workflow {workflow} in /metrics"
    );
}
both_modes!(metrics_name_no_tenant_to_anyone, metrics_to_anyone);

/// Failed logins are counted per account, however its email is spelled:
/// the store finds `ADA@example.com` and ` ada@example.com` as one account.
async fn login_spellings(mode: Mode) {
    let engine = Engine::start_with(
        mode,
        &[
            ("FLOWMESH_LOGIN_PAIR_FAILURES", "2"),
            ("FLOWMESH_LOGIN_ADDRESS_FAILURES", "50"),
        ],
    )
    .await;
    engine.create_tenant("spelled").await;
    let attacker = client_from("127.0.0.21");
    let login = |email: &'static str| {
        let attacker = attacker.clone();
        let url = engine.url("/v1/auth/login");
        async move {
            attacker
                .post(url)
                .json(&json!({"email": email, "password": "not the password"}))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    for _ in 0..2 {
        assert_eq!(
            login("owner@spelled.example.com").await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login("owner@spelled.example.com").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    for email in [
        "OWNER@spelled.example.com",
        "Owner@Spelled.example.com",
        "owner@SPELLED.example.com",
    ] {
        assert_eq!(
            login(email).await,
            StatusCode::TOO_MANY_REQUESTS,
            "{email}: the same account, guessed again without delay"
        );
    }
}
both_modes!(
    failed_logins_count_an_account_however_its_email_is_spelled,
    login_spellings
);

/// Registering an email nobody has proved to own must not keep its owner
/// out: an invitation to that address can still be accepted.
async fn squatted_email(mode: Mode) {
    let engine = Engine::start(mode).await;
    let (status, invitation) = engine
        .post(
            "/v1/invitations",
            json!({"email": "newhire@corp.example.com", "role": "editor"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{invitation}");
    let token = invitation["token"].as_str().expect("token").to_owned();

    // Anyone registers the invitee's address first.
    let anyone = client_from("127.0.0.22");
    let squat = anyone
        .post(engine.url("/v1/auth/register"))
        .json(&json!({"email": "NewHire@corp.example.com", "password": "squatter password", "tenant": "Squat"}))
        .send()
        .await
        .unwrap();
    // Registration and acceptance answer 202 whatever happened, so as not
    // to tell who has an account: what proves the invitee got in is that
    // their own password then opens a session in the inviting tenant.
    assert_eq!(squat.status(), StatusCode::ACCEPTED);

    let accepted = engine
        .client()
        .post(engine.url("/v1/auth/accept"))
        .json(&json!({"token": token, "password": "the invitee's password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let (_, me) = engine.get("/v1/me").await;
    let signed_in = engine
        .client()
        .post(engine.url("/v1/auth/login"))
        .json(&json!({"email": "newhire@corp.example.com", "password": "the invitee's password"}))
        .send()
        .await
        .unwrap();
    let status = signed_in.status();
    let session: Value = signed_in.json().await.unwrap_or_default();
    assert_eq!(
        (status, &session["tenant"]["id"]),
        (StatusCode::OK, &me["tenant"]["id"]),
        "the invitee was kept out by a registration of their address: {session}"
    );
}
both_modes!(
    a_registered_address_does_not_keep_an_invitee_out,
    squatted_email
);

/// Registration answers an anonymous caller the same whether an email has
/// an account or not, as login does.
async fn registration_and_existing_emails(mode: Mode) {
    let engine = Engine::start(mode).await;
    engine.create_tenant("known").await;
    let anyone = client_from("127.0.0.23");
    let register = |email: &'static str, tenant: &'static str| {
        let anyone = anyone.clone();
        let url = engine.url("/v1/auth/register");
        async move {
            let response = anyone
                .post(url)
                .json(&json!({"email": email, "password": "a long enough password", "tenant": tenant}))
                .send()
                .await
                .unwrap();
            let status = response.status();
            (status, response.text().await.unwrap())
        }
    };
    let (fresh, _) = register("nobody@unknown.example.com", "Fresh").await;
    let (taken, text) = register("owner@known.example.com", "Probe").await;
    assert_eq!(
        taken, fresh,
        "registration tells whether owner@known.example.com has an account: {text}"
    );
}
both_modes!(
    registration_does_not_tell_whether_an_email_exists,
    registration_and_existing_emails
);

/// The per-webhook rate limit holds however the method is spelled: the
/// router takes `post` to the `POST` webhook, so the limit must too.
async fn route_limit_and_method_case(mode: Mode) {
    let engine = Engine::start_with(
        mode,
        &[
            ("FLOWMESH_WEBHOOK_RATE_PER_ROUTE", "2"),
            ("FLOWMESH_WEBHOOK_RATE_PER_ADDRESS", "0"),
        ],
    )
    .await;
    engine.deploy(silent_hook("limited")).await;
    let url = engine.url("/hooks/default/limited");
    let send = |method: &'static str| {
        let client = engine.client().clone();
        let url = url.clone();
        async move {
            client
                .request(Method::from_bytes(method.as_bytes()).unwrap(), url)
                .json(&json!({"n": 1}))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    eventually(
        "the route's bucket is spent",
        Duration::from_secs(5),
        || async { (send("POST").await == StatusCode::TOO_MANY_REQUESTS).then_some(()) },
    )
    .await;
    // A token comes back every half second: one may, not three.
    let mut admitted = Vec::new();
    for method in ["post", "Post", "pOST"] {
        if send(method).await != StatusCode::TOO_MANY_REQUESTS {
            admitted.push(method);
        }
    }
    assert!(
        admitted.len() <= 1,
        "{admitted:?} reached the limited webhook past its rate limit"
    );
}
both_modes!(
    the_webhook_rate_limit_holds_whatever_the_method_case,
    route_limit_and_method_case
);

/// Every webhook answer carries `nosniff` and the sandboxing policy, as the
/// security notes say: the 202 of a run without `respond`, and the errors.
async fn security_headers_everywhere(mode: Mode) {
    let engine = Engine::start(mode).await;
    engine.deploy(silent_hook("quiet")).await;
    let answers = [
        ("a run without respond", "/hooks/default/quiet"),
        ("an unknown webhook", "/hooks/default/nowhere"),
    ];
    for (what, path) in answers {
        let response = engine
            .client()
            .post(engine.url(path))
            .header("content-type", "text/html")
            .body("<script>alert(1)</script>")
            .send()
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers();
        assert_eq!(
            headers
                .get("x-content-type-options")
                .map(|v| v.to_str().unwrap()),
            Some("nosniff"),
            "{what} ({status}) has no X-Content-Type-Options"
        );
        assert!(
            headers.contains_key("content-security-policy"),
            "{what} ({status}) has no Content-Security-Policy"
        );
    }
}
both_modes!(
    every_webhook_answer_carries_the_security_headers,
    security_headers_everywhere
);

/// Callers the webhook's `auth` refuses spend nothing of it, its rate limit
/// included: a flood of unsigned requests from elsewhere must not turn the
/// rightful, signed caller away with 429.
async fn refused_callers_and_the_route_limit(mode: Mode) {
    let engine = Engine::start_with(
        mode,
        &[
            ("FLOWMESH_WEBHOOK_RATE_PER_ROUTE", "2"),
            ("FLOWMESH_WEBHOOK_RATE_PER_ADDRESS", "0"),
        ],
    )
    .await;
    engine.put_secret("hook_token", TOKEN).await;
    engine
        .deploy(responding_hook(
            "guarded",
            json!({"scheme": "token", "secret": "hook_token"}),
            json!({"ok": true}),
        ))
        .await;
    let url = engine.url("/hooks/default/guarded");
    let attacker = client_from("127.0.0.31");
    eventually(
        "unsigned requests are turned away by the rate limit",
        Duration::from_secs(5),
        || async {
            let status = attacker
                .post(&url)
                .json(&json!({}))
                .send()
                .await
                .unwrap()
                .status();
            (status == StatusCode::TOO_MANY_REQUESTS).then_some(())
        },
    )
    .await;
    let status = client_from("127.0.0.32")
        .post(&url)
        .bearer_auth(TOKEN)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(
        status,
        StatusCode::OK,
        "the signed caller was refused because unsigned callers spent the webhook's limit"
    );
}
both_modes!(
    refused_callers_do_not_spend_the_webhook_rate_limit,
    refused_callers_and_the_route_limit
);

/// Failed-login delays hold for attempts sent at once: the password of
/// one account is checked at most `--login-pair-failures` times from one
/// address before delays start, however many attempts arrive together.
async fn concurrent_guesses(mode: Mode) {
    let engine = Engine::start_with(
        mode,
        &[
            ("FLOWMESH_LOGIN_PAIR_FAILURES", "2"),
            ("FLOWMESH_LOGIN_ADDRESS_FAILURES", "50"),
            ("FLOWMESH_PASSWORD_HASHING_CONCURRENCY", "8"),
        ],
    )
    .await;
    engine.create_tenant("raced").await;
    let attacker = client_from("127.0.0.41");
    let url = engine.url("/v1/auth/login");
    let guesses = (0..16).map(|i| {
        let attacker = attacker.clone();
        let url = url.clone();
        async move {
            attacker
                .post(url)
                .json(&json!({"email": "owner@raced.example.com", "password": format!("guess number {i}")}))
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    let statuses = futures::future::join_all(guesses).await;
    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    assert!(
        checked <= 2,
        "{checked} passwords checked for one account from one address at once, past a limit of 2: {statuses:?}"
    );
}
both_modes!(
    failed_login_delays_hold_for_guesses_sent_at_once,
    concurrent_guesses
);

/// What the webhook rate limits remember of a route is bounded in bytes,
/// not only in entries: made-up webhook paths as long as a request line
/// may be do not grow the engine's memory with each call.
async fn long_made_up_paths(mode: Mode) {
    let engine = Engine::start(mode).await;
    // hyper takes request targets up to 64 KiB.
    let filler = "p".repeat(60_000);
    let before = engine.rss();
    for batch in 0..64 {
        let calls = (0..16).map(|i| {
            let url = engine.url(&format!("/hooks/default/{batch}-{i}-{filler}"));
            let client = engine.client().clone();
            async move { client.post(url).send().await.map(|r| r.status()) }
        });
        for status in futures::future::join_all(calls).await {
            let status = status.expect("an answer");
            assert!(
                matches!(
                    status,
                    StatusCode::NOT_FOUND | StatusCode::TOO_MANY_REQUESTS
                ),
                "{status}"
            );
        }
    }
    let grown = engine.rss().saturating_sub(before);
    assert!(
        grown < 24 * 1024 * 1024,
        "1024 calls to made-up 60 kB webhook paths grew the engine by {} MiB",
        grown / (1024 * 1024)
    );
}
both_modes!(made_up_webhook_paths_do_not_grow_memory, long_made_up_paths);

/// A request body must arrive in bounded time too: a caller that trickles
/// one byte at a time, each before `--idle-timeout`, would otherwise hold
/// its connection (and its place in the caps) for as long as it likes.
async fn trickled_bodies(mode: Mode) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let engine = Engine::start_with(
        mode,
        &[
            ("FLOWMESH_HEADER_READ_TIMEOUT", "2s"),
            ("FLOWMESH_IDLE_TIMEOUT", "3s"),
        ],
    )
    .await;
    let address = engine.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    stream
        .write_all(
            b"POST /hooks/default/anything HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n",
        )
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut closed = false;
    while started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if stream.write_all(b"a").await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 512];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(10), stream.read(&mut buf)).await
        {
            closed = true;
            break;
        }
    }
    assert!(
        closed,
        "a body trickled one byte a second held its connection for {:?} (header timeout 2 s, idle timeout 3 s)",
        started.elapsed()
    );
}
both_modes!(a_trickled_body_does_not_hold_a_connection, trickled_bodies);

/// A `respond` node speaks for its tenant, not for the engine's origin:
/// it cannot wipe the origin's cookies and storage, raise a browser's
/// password prompt under the engine's name, or pin HSTS on the domain.
async fn origin_wide_headers(mode: Mode) {
    let engine = Engine::start(mode).await;
    engine
        .deploy(json!({"name": "page", "nodes": [
            {"id": "hook", "type": "trigger", "kind": "webhook", "config": {"path": "page", "method": "GET"}},
            {"id": "answer", "type": "action", "kind": "respond", "config": {
                "status": 401,
                "headers": {
                    "Clear-Site-Data": "\"*\"",
                    "WWW-Authenticate": "Basic realm=\"flowmesh sign-in\"",
                    "Strict-Transport-Security": "max-age=63072000; includeSubDomains"
                },
                "body": "sign in"}}
        ], "edges": [{"from": "hook", "to": "answer"}]}))
        .await;
    let response = engine
        .client()
        .get(engine.url("/hooks/default/page"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    for name in [
        "clear-site-data",
        "www-authenticate",
        "strict-transport-security",
    ] {
        assert!(
            response.headers().get(name).is_none(),
            "a tenant's respond node set {name}: {:?}",
            response.headers().get(name)
        );
    }
}
both_modes!(
    a_respond_node_cannot_set_origin_wide_headers,
    origin_wide_headers
);

/// A 204 answer has no body and so no `Content-Length` (RFC 9110 §8.6): a
/// client that believes the header reads the next answer as this body.
async fn no_content_framing(mode: Mode) {
    let engine = Engine::start(mode).await;
    engine
        .deploy(json!({"name": "empty", "nodes": [
            {"id": "hook", "type": "trigger", "kind": "webhook", "config": {"path": "empty", "method": "POST"}},
            {"id": "answer", "type": "action", "kind": "respond", "config": {"status": 204, "body": {"ignored": "body"}}}
        ], "edges": [{"from": "hook", "to": "answer"}]}))
        .await;
    let response = engine
        .client()
        .post(engine.url("/hooks/default/empty"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(
        response.headers().get("content-length").is_none(),
        "a 204 answer carries content-length {:?}",
        response.headers().get("content-length")
    );
}
both_modes!(a_no_content_answer_has_no_length, no_content_framing);

/// Password hashing is shared by everyone, so it cannot be spent freely
/// from one address: made-up invitation tokens sent without pause must not
/// keep an account's owner, signing in from elsewhere, from signing in.
async fn made_up_invitations(mode: Mode) {
    // One hash at a time, as on a one-core host.
    let engine = Engine::start_with(mode, &[("FLOWMESH_PASSWORD_HASHING_CONCURRENCY", "1")]).await;
    engine.create_tenant("busy").await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let attacker = client_from("127.0.0.51");
    let flood: Vec<_> = (0..32)
        .map(|i| {
            let attacker = attacker.clone();
            let url = engine.url("/v1/auth/accept");
            let stop = stop.clone();
            let answered = answered.clone();
            tokio::spawn(async move {
                // Spread out, so that the queue for hashing is never empty.
                tokio::time::sleep(Duration::from_millis(i * 65)).await;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = attacker
                        .post(&url)
                        .json(&json!({"token": format!("fmi_made_up_{i}"), "password": "any ten characters"}))
                        .send()
                        .await;
                    answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            })
        })
        .collect();
    // The flood is under way: the hashing queue is never empty from here.
    eventually("the flood under way", Duration::from_secs(30), || async {
        (answered.load(std::sync::atomic::Ordering::Relaxed) >= 64).then_some(())
    })
    .await;
    let owner = client_from("127.0.0.52");
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let status = owner
            .post(engine.url("/v1/auth/login"))
            .json(&json!({"email": "owner@busy.example.com", "password": "a long enough password"}))
            .send()
            .await
            .unwrap()
            .status();
        statuses.push(status);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in flood {
        let _ = task.await;
    }
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "the owner could not sign in while one address sent made-up invitation tokens: {statuses:?}"
    );
}
both_modes!(
    made_up_invitation_tokens_do_not_lock_everyone_out,
    made_up_invitations
);
