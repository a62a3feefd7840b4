//! Tenants and access: accounts, roles on every route, isolation, keys,
//! limits, credits, secrets and the audit log, through the real engine.

mod common;

use std::time::Duration;

use common::{ADMIN_KEY, Engine, Mode, assert_ran_one_at_a_time, eventually};
use flowmesh_gateway::{Access, routes};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ROLES: [&str; 5] = ["viewer", "operator", "editor", "admin", "owner"];

fn rank(role: &str) -> usize {
    ROLES.iter().position(|r| *r == role).expect("a role")
}

fn workflow(name: &str, hook: &str) -> Value {
    json!({"name": name, "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "hook", "type": "trigger", "kind": "webhook", "config": {"path": hook}},
        {"id": "shape", "type": "data", "kind": "mapping", "config": {"mapping": {"ok": true}}}
    ], "edges": [{"from": "start", "to": "shape"}, {"from": "hook", "to": "shape"}]})
}

/// A key of each role of the tenant whose owner holds `owner`.
async fn keys_by_role(engine: &Engine, owner: &str) -> Vec<(&'static str, String)> {
    let mut keys = Vec::new();
    for role in ROLES {
        let (status, body) = engine
            .request_as(
                owner,
                Method::POST,
                "/v1/api-keys",
                Some(json!({"name": role, "role": role})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        keys.push((role, body["key"].as_str().expect("key").to_owned()));
    }
    keys
}

fn concrete(path: &str, slug: &str) -> String {
    path.replace("{id}", "0190d7a0-0000-7000-8000-000000000000")
        .replace("{name}", "some_secret")
        .replace("{slug}", slug)
        .replace("{tenant}", slug)
        .replace("{*path}", "nowhere")
}

fn method(name: &str) -> Method {
    match name {
        "ANY" | "GET" => Method::GET,
        other => other.parse().expect("method"),
    }
}

/// Every route, called with a key of every role: refused (403) exactly
/// when the role is below what the route needs; never 401 for a valid key.
async fn every_route_checks_every_role(mode: Mode) {
    let engine = Engine::start(mode).await;
    let owner = engine.create_tenant("Roles Inc").await;
    let keys = keys_by_role(&engine, &owner).await;
    let table = routes();
    assert!(table.len() > 40, "the whole table");
    for route in &table {
        // Event streams stay open; they are checked by the isolation test.
        if route.path.ends_with("/events") {
            continue;
        }
        for (role, key) in &keys {
            let path = concrete(route.path, "roles-inc");
            let (status, body) = engine
                .request_as(key, method(route.method), &path, Some(json!({})))
                .await;
            let allowed = match route.guard.access {
                Access::Public => true,
                Access::Role(needed) => rank(role) >= rank(needed.as_str()),
                Access::Platform => false,
                Access::MetricsToken => {
                    // Only the instance's metrics token reads metrics.
                    assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} as {role}");
                    continue;
                }
            };
            if allowed {
                assert!(
                    status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED,
                    "{} {path} as {role}: {status} {body}",
                    route.method
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{} {path} as {role}: {body}",
                    route.method
                );
                assert_eq!(body["error"]["code"], "forbidden");
            }
        }
        if route.guard.access == Access::Platform {
            let (status, body) = engine
                .request_as(
                    ADMIN_KEY,
                    method(route.method),
                    &concrete(route.path, "roles-inc"),
                    Some(json!({})),
                )
                .await;
            assert!(
                status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED,
                "{} as platform: {status} {body}",
                route.path
            );
        }
    }
    let (status, _) = engine
        .request_as("fmk_not_a_key", Method::GET, "/v1/workflows", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
both_modes!(
    every_route_checks_every_role_in_one_table,
    every_route_checks_every_role
);

/// Another tenant's ids are not found on any route, and its data shows in
/// no answer.
async fn tenants_never_see_each_other(mode: Mode) {
    let engine = Engine::start(mode).await;
    let alice = engine.create_tenant("Alice").await;
    let bob = engine.create_tenant("Bob").await;
    let wf = engine
        .deploy_as(&alice, workflow("alice-flow", "signup"))
        .await;
    let (status, started) = engine
        .request_as(
            &alice,
            Method::POST,
            &format!("/v1/workflows/{wf}/executions"),
            Some(json!({"secret": "alice-data"})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let execution = started["execution_id"].as_str().unwrap().to_owned();
    let (_, key) = engine
        .request_as(
            &alice,
            Method::POST,
            "/v1/api-keys",
            Some(json!({"name": "ci", "role": "viewer"})),
        )
        .await;
    let key_id = key["id"].as_str().unwrap().to_owned();
    let (status, _) = engine
        .request_as(
            &alice,
            Method::PUT,
            "/v1/secrets/alice_token",
            Some(json!({"value": "alice-secret-value"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, me) = engine.request_as(&alice, Method::GET, "/v1/me", None).await;
    let alice_tenant = me["tenant"]["id"].as_str().unwrap().to_owned();
    let alice_ids = [
        wf.clone(),
        execution.clone(),
        key_id.clone(),
        alice_tenant.clone(),
    ];

    for route in routes() {
        // Logging out would end Bob's session, not test Alice's data.
        if route.path == "/v1/auth/logout" {
            continue;
        }
        if let Access::Role(_) = route.guard.access {
            let id = if route.path.starts_with("/v1/executions/") {
                execution.clone()
            } else if route.path.starts_with("/v1/api-keys/") {
                key_id.clone()
            } else {
                wf.clone()
            };
            // Deleting or reading Alice's secret by name; writing one is Bob's own.
            let name = if route.method == "PUT" {
                "bob_token"
            } else {
                "alice_token"
            };
            let path = route
                .path
                .replace("{id}", &id)
                .replace("{name}", name)
                .replace("{version}", "1");
            // A body each route accepts, so that only whose ids they are decides.
            let body = match (route.method, route.path) {
                ("PUT", "/v1/workflows/{id}") => workflow("bob-flow", "b"),
                ("POST", "/v1/executions/{id}/rerun") => json!({"from_node": "shape"}),
                ("PUT", "/v1/secrets/{name}") => json!({"value": "bob-value"}),
                _ => json!({}),
            };
            let (status, body) = engine
                .request_as(&bob, method(route.method), &path, Some(body))
                .await;
            // Bob may create a secret of that name for himself; Alice's stays hers.
            if route.path.contains('{') && route.method != "PUT"
                || route.path == "/v1/workflows/{id}"
            {
                assert_eq!(
                    status,
                    StatusCode::NOT_FOUND,
                    "{} {path} as bob: {body}",
                    route.method
                );
            }
            if route.path == "/v1/secrets/{name}" && route.method == "PUT" {
                assert_eq!(body["created"], true, "Bob's secret is his own: {body}");
                continue;
            }
            let text = body.to_string();
            // Bob's audit log lists the ids he tried, each refused: his own input, not her data.
            let ids: &[String] = if route.path == "/v1/audit" {
                for record in body["items"].as_array().unwrap() {
                    let tried = record["target"].as_str().unwrap_or_default();
                    if alice_ids.iter().any(|id| id == tried) {
                        assert_eq!(record["outcome"], "not_found", "{record}");
                    }
                }
                &[]
            } else {
                &alice_ids
            };
            for leaked in ids.iter().map(String::as_str).chain([
                "alice-data",
                "alice-flow",
                "alice-secret-value",
            ]) {
                assert!(
                    !text.contains(leaked),
                    "{} {path} showed {leaked}: {text}",
                    route.method
                );
            }
        }
    }
    // Alice's webhook, under Bob's name.
    let resp = engine
        .client()
        .post(engine.url("/hooks/bob/signup"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    // Her secret is hers: listed by name for her, never by value.
    let (_, listed) = engine
        .request_as(&alice, Method::GET, "/v1/secrets", None)
        .await;
    assert_eq!(listed["items"][0]["name"], "alice_token");
    assert!(!listed.to_string().contains("alice-secret-value"));
}
both_modes!(
    tenants_never_see_each_other_on_any_route,
    tenants_never_see_each_other
);

/// Users: register, log in and out, invite, join with the invited role;
/// keys: shown once, listed by prefix, revoked everywhere within seconds.
async fn users_sessions_and_keys(mode: Mode) {
    let engine = Engine::start(mode).await;
    let owner = engine.create_tenant("Acme").await;
    let (status, body) = engine
        .request_as(
            &owner,
            Method::POST,
            "/v1/invitations",
            Some(json!({"email": "eve@acme.example.com", "role": "editor"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    let accept = json!({"token": token, "password": "eve's long password"});
    let resp = engine
        .client()
        .post(engine.url("/v1/auth/accept"))
        .json(&accept)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let again = engine
        .client()
        .post(engine.url("/v1/auth/accept"))
        .json(&accept)
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.status(),
        StatusCode::NOT_FOUND,
        "an invitation is used once"
    );
    let login = json!({"email": "EVE@acme.example.com", "password": "eve's long password"});
    let resp = engine
        .client()
        .post(engine.url("/v1/auth/login"))
        .json(&login)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let session: Value = resp.json().await.unwrap();
    assert_eq!(session["role"], "editor");
    assert_eq!(session["tenant"]["slug"], "acme");
    let eve = session["token"].as_str().unwrap().to_owned();
    let (status, _) = engine
        .request_as(&eve, Method::GET, "/v1/workflows", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = engine
        .request_as(
            &eve,
            Method::POST,
            "/v1/invitations",
            Some(json!({"email": "x@y.example.com", "role": "viewer"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "an editor invites nobody");
    let wrong = json!({"email": "eve@acme.example.com", "password": "not her password"});
    let resp = engine
        .client()
        .post(engine.url("/v1/auth/login"))
        .json(&wrong)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let (status, _) = engine
        .request_as(&eve, Method::POST, "/v1/auth/logout", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = engine
        .request_as(&eve, Method::GET, "/v1/workflows", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a session ends at logout");

    let (status, body) = engine
        .request_as(
            &owner,
            Method::POST,
            "/v1/api-keys",
            Some(json!({"name": "deploy", "role": "operator"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let key = body["key"].as_str().unwrap().to_owned();
    let id = body["id"].as_str().unwrap().to_owned();
    let (_, listed) = engine
        .request_as(&owner, Method::GET, "/v1/api-keys", None)
        .await;
    let listed = listed.to_string();
    assert!(
        listed.contains(&key[..12]) && !listed.contains(&key),
        "listed by prefix only"
    );
    // Another process trusts the key until it is revoked, then within 5 s no more.
    let other = if mode == Mode::Distributed {
        Some(engine.peer().await)
    } else {
        None
    };
    let serving = other.as_ref().unwrap_or(&engine);
    let (status, _) = serving
        .request_as(&key, Method::GET, "/v1/workflows", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = engine
        .request_as(&owner, Method::DELETE, &format!("/v1/api-keys/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    eventually(
        "the revoked key is refused",
        Duration::from_secs(5),
        || async {
            let (status, _) = serving
                .request_as(&key, Method::GET, "/v1/workflows", None)
                .await;
            (status == StatusCode::UNAUTHORIZED).then_some(())
        },
    )
    .await;
    let (status, body) = engine
        .request_as(
            &owner,
            Method::POST,
            "/v1/api-keys",
            Some(json!({"name": "x", "role": "root"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("role:"),
        "{body}"
    );
    let resp = engine
        .client()
        .post(engine.url("/v1/auth/register"))
        .json(&json!({"email": "not-an-email", "password": "long enough password", "tenant": "T"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}
both_modes!(users_sessions_and_revocable_keys, users_sessions_and_keys);

/// Credits: executions are metered; with none left new ones get 402;
/// a grant (sent twice with one key) counts once; auto-refill tops up.
async fn credits_meter_and_refuse(mode: Mode) {
    let env = [("FLOWMESH_INITIAL_CREDITS", "20")];
    let engine = Engine::start_with(mode, &env).await;
    let owner = engine.create_tenant("Thrifty").await;
    let wf = engine.deploy_as(&owner, workflow("metered", "m")).await;
    let start = |key: String| {
        let engine = &engine;
        let wf = wf.clone();
        async move {
            engine
                .request_as(
                    &key,
                    Method::POST,
                    &format!("/v1/workflows/{wf}/executions?wait=true"),
                    Some(json!({})),
                )
                .await
        }
    };
    let mut succeeded = 0;
    let refusal = loop {
        let (status, body) = start(owner.clone()).await;
        if status == StatusCode::PAYMENT_REQUIRED {
            break body;
        }
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "succeeded");
        succeeded += 1;
        assert!(succeeded < 30, "20 credits never ran out");
    };
    assert_eq!(refusal["error"]["code"], "no_credits");
    assert!(
        succeeded >= 5,
        "each run costs 2 credits (start and one node): {succeeded}"
    );
    let (_, billing) = engine
        .request_as(&owner, Method::GET, "/v1/billing", None)
        .await;
    assert!(billing["balance"].as_i64().unwrap() <= 0, "{billing}");
    let usage = eventually("usage settled", Duration::from_secs(20), || async {
        let (_, usage) = engine
            .request_as(&owner, Method::GET, "/v1/usage", None)
            .await;
        (usage["total"]["executions"].as_i64() == Some(succeeded)).then_some(usage)
    })
    .await;
    assert_eq!(
        usage["total"]["node_runs"].as_i64(),
        Some(succeeded),
        "{usage}"
    );
    assert_eq!(usage["items"][0]["workflow_id"], wf.as_str());

    // The platform's administrators grant credits; a retried grant counts once.
    for _ in 0..2 {
        let resp = engine
            .client()
            .post(engine.url("/v1/admin/tenants/thrifty/credits"))
            .bearer_auth(ADMIN_KEY)
            .header("Idempotency-Key", "order-17")
            .json(&json!({"amount": 100, "note": "top-up"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
    }
    let (status, _) = engine
        .request_as(
            &owner,
            Method::POST,
            "/v1/admin/tenants/thrifty/credits",
            Some(json!({"amount": 1000})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a tenant grants itself nothing"
    );
    let (status, body) = eventually("credits usable again", Duration::from_secs(5), || async {
        let (status, body) = start(owner.clone()).await;
        (status != StatusCode::PAYMENT_REQUIRED).then_some((status, body))
    })
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, billing) = engine
        .request_as(&owner, Method::GET, "/v1/billing", None)
        .await;
    let grants = billing["ledger"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "grant")
        .count();
    assert_eq!(grants, 1, "{billing}");

    // Auto-refill: below the threshold, a refill is recorded.
    let (status, _) = engine
        .request_as(
            &owner,
            Method::PUT,
            "/v1/billing/auto-refill",
            Some(json!({"threshold": 1000, "amount": 500})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    start(owner.clone()).await;
    eventually(
        "a refill in the ledger",
        Duration::from_secs(20),
        || async {
            let (_, billing) = engine
                .request_as(&owner, Method::GET, "/v1/billing", None)
                .await;
            billing["ledger"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["kind"] == "refill" && e["delta"] == 500)
                .then_some(())
        },
    )
    .await;
}
both_modes!(
    credits_are_metered_refused_granted_and_refilled,
    credits_meter_and_refuse
);

/// Limits set by the platform: request rate (429 with Retry-After),
/// payload size (413), concurrent executions (queued, never dropped).
async fn limits_apply(mode: Mode) {
    let engine = Engine::start(mode).await;
    let owner = engine.create_tenant("Limited").await;
    let slow = json!({"name": "slow", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "pause", "type": "action", "kind": "wait", "config": {"duration": "300ms"}}
    ], "edges": [{"from": "start", "to": "pause"}]});
    let wf = engine.deploy_as(&owner, slow).await;
    let limits = json!({"rate_limit": null, "max_concurrent": 1, "max_payload_bytes": 200});
    let (status, body) = engine
        .request_as(
            ADMIN_KEY,
            Method::PUT,
            "/v1/admin/tenants/limited/limits",
            Some(limits),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Settings are cached for up to 10 s by each process.
    eventually(
        "the payload limit applies",
        Duration::from_secs(15),
        || async {
            let (status, _) = engine
                .request_as(
                    &owner,
                    Method::POST,
                    &format!("/v1/workflows/{wf}/executions"),
                    Some(json!({"pad": "x".repeat(300)})),
                )
                .await;
            (status == StatusCode::PAYLOAD_TOO_LARGE).then_some(())
        },
    )
    .await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        let (status, body) = engine
            .request_as(
                &owner,
                Method::POST,
                &format!("/v1/workflows/{wf}/executions"),
                Some(json!({})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        ids.push(body["execution_id"].as_str().unwrap().to_owned());
    }
    let mut finished = Vec::new();
    for id in &ids {
        let done = eventually(
            "the queued execution ran",
            Duration::from_secs(30),
            || async {
                let (_, e) = engine
                    .request_as(&owner, Method::GET, &format!("/v1/executions/{id}"), None)
                    .await;
                (e["status"] == "succeeded").then_some(e)
            },
        )
        .await;
        finished.push(done);
    }
    assert_ran_one_at_a_time(&finished);
    let limits = json!({"rate_limit": 2, "max_concurrent": null, "max_payload_bytes": null});
    let (status, _) = engine
        .request_as(
            ADMIN_KEY,
            Method::PUT,
            "/v1/admin/tenants/limited/limits",
            Some(limits),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let retry_after = eventually(
        "a request is refused with 429",
        Duration::from_secs(15),
        || async {
            let resp = engine
                .client()
                .get(engine.url("/v1/workflows"))
                .bearer_auth(&owner)
                .send()
                .await
                .unwrap();
            (resp.status() == StatusCode::TOO_MANY_REQUESTS)
                .then(|| resp.headers()["retry-after"].to_str().unwrap().to_owned())
        },
    )
    .await;
    assert!(retry_after.parse::<u64>().unwrap() >= 1);
    let (status, _) = engine.get("/v1/workflows").await;
    assert_eq!(status, StatusCode::OK, "other tenants are not limited");
}
both_modes!(limits_on_rate_payload_and_concurrency, limits_apply);

/// Changes leave audit records: who, what, from where, how it ended.
async fn changes_are_audited(mode: Mode) {
    let engine = Engine::start(mode).await;
    let owner = engine.create_tenant("Audited").await;
    let wf = engine.deploy_as(&owner, workflow("audited", "a")).await;
    let (_, key) = engine
        .request_as(
            &owner,
            Method::POST,
            "/v1/api-keys",
            Some(json!({"name": "viewer", "role": "viewer"})),
        )
        .await;
    let viewer = key["key"].as_str().unwrap().to_owned();
    let (status, _) = engine
        .request_as(
            &viewer,
            Method::DELETE,
            &format!("/v1/workflows/{wf}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = engine
        .request_as(
            &owner,
            Method::PUT,
            "/v1/secrets/token",
            Some(json!({"value": "audited-secret"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, log) = engine
        .request_as(&owner, Method::GET, "/v1/audit?limit=50", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let actions: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    for expected in [
        "tenant.register",
        "workflow.create",
        "workflow.publish",
        "key.create",
        "workflow.delete",
        "secret.put",
    ] {
        assert!(actions.contains(&expected), "{expected} in {actions:?}");
    }
    let items = log["items"].as_array().unwrap();
    let refused = items
        .iter()
        .find(|r| r["action"] == "workflow.delete")
        .unwrap();
    assert_eq!(refused["outcome"], "forbidden");
    assert_eq!(refused["target"], wf.as_str());
    assert!(refused["actor"].as_str().unwrap().starts_with("key:"));
    assert_eq!(refused["source"], "127.0.0.1");
    let created = items
        .iter()
        .find(|r| r["action"] == "workflow.create")
        .unwrap();
    assert_eq!(
        (created["outcome"].as_str(), created["target"].as_str()),
        (Some("ok"), Some(wf.as_str()))
    );
    assert!(!log.to_string().contains("audited-secret"));
    let (_, filtered) = engine
        .request_as(&owner, Method::GET, "/v1/audit?action=workflow.", None)
        .await;
    assert!(
        filtered["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["action"].as_str().unwrap().starts_with("workflow."))
    );
    let (status, _) = engine
        .request_as(&viewer, Method::GET, "/v1/audit", None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = engine
        .request_as(&owner, Method::GET, "/v1/audit?since=yesterday", None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}
both_modes!(changes_leave_audit_records, changes_are_audited);

/// A re-run is admitted like a start: its input (trigger data and
/// overrides) within the tenant's payload limit, and credits left.
async fn reruns_admitted(mode: Mode) {
    let engine = Engine::start(mode).await;
    let owner = engine.create_tenant("Rerunner").await;
    let wf = engine
        .deploy_as(
            &owner,
            json!({"name": "two-steps", "nodes": [
                {"id": "start", "type": "trigger", "kind": "manual"},
                {"id": "shape", "type": "data", "kind": "mapping", "config": {"mapping": {"v": 1}}},
                {"id": "after", "type": "data", "kind": "mapping", "config": {"mapping": {"v": "{{ shape.v }}"}}}
            ], "edges": [{"from": "start", "to": "shape"}, {"from": "shape", "to": "after"}]}),
        )
        .await;
    let run = engine.run_as(&owner, &wf, json!({})).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let rerun = |shape: Value| {
        let engine = &engine;
        let owner = owner.clone();
        let path = format!("/v1/executions/{}/rerun", run["id"].as_str().unwrap());
        async move {
            let body = json!({"from_node": "after", "input_override": {"shape": shape}});
            engine
                .request_as(&owner, Method::POST, &path, Some(body))
                .await
        }
    };
    let limits = json!({"rate_limit": null, "max_concurrent": null, "max_payload_bytes": 100});
    let (status, body) = engine
        .request_as(
            ADMIN_KEY,
            Method::PUT,
            "/v1/admin/tenants/rerunner/limits",
            Some(limits),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = rerun(json!({"v": "x".repeat(5_000)})).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["code"], "payload_too_large");
    let (status, body) = rerun(json!({"v": 2})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "a small override: {body}");

    let (_, billing) = engine
        .request_as(&owner, Method::GET, "/v1/billing", None)
        .await;
    let spend_all = -billing["balance"].as_i64().unwrap() - 1_000;
    let resp = engine
        .client()
        .post(engine.url("/v1/admin/tenants/rerunner/credits"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"amount": spend_all}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let (status, body) = rerun(json!({"v": 3})).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{body}");
    assert_eq!(body["error"]["code"], "no_credits");
}
both_modes!(reruns_are_admitted_like_starts, reruns_admitted);

/// An anonymous flood on a public webhook spends the tenant's credits:
/// automatic refills stop at the cap, and the stop is audited and counted.
async fn refills_capped(mode: Mode) {
    let env = [
        ("FLOWMESH_INITIAL_CREDITS", "100"),
        ("FLOWMESH_MAX_REFILLS_PER_DAY", "2"),
    ];
    let engine = Engine::start_with(mode, &env).await;
    let owner = engine.create_tenant("Flooded").await;
    engine.deploy_as(&owner, workflow("flooded", "in")).await;
    let (status, _) = engine
        .request_as(
            &owner,
            Method::PUT,
            "/v1/billing/auto-refill",
            Some(json!({"threshold": 1_000_000, "amount": 1_000})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let audit = eventually(
        "a refill stopped by the cap",
        Duration::from_secs(60),
        || async {
            for _ in 0..5 {
                engine
                    .client()
                    .post(engine.url("/hooks/flooded/in"))
                    .json(&json!({}))
                    .send()
                    .await
                    .unwrap();
            }
            let (_, audit) = engine
                .request_as(
                    &owner,
                    Method::GET,
                    "/v1/audit?action=billing.refill_capped",
                    None,
                )
                .await;
            let items = audit["items"].as_array()?.clone();
            (!items.is_empty()).then_some(items)
        },
    )
    .await;
    assert_eq!(audit.len(), 1, "audited once per day: {audit:?}");
    assert_eq!(audit[0]["outcome"], "refill_cap_reached");
    let (_, billing) = engine
        .request_as(&owner, Method::GET, "/v1/billing", None)
        .await;
    let refills = billing["ledger"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "refill")
        .count();
    assert_eq!(refills, 2, "{billing}");
    let metrics = engine.metrics_text().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("flowmesh_refills_capped_total{")),
        "{metrics}"
    );
}
both_modes!(automatic_refills_stop_at_the_cap, refills_capped);
