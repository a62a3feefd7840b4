//! The console as the engine serves it: its page and files at `/` (with
//! their security and caching headers), its cookie session with CSRF
//! protection, and what the API gained for it (workflow search, filters
//! and statistics in one call; a time filter on executions; node
//! positions kept in the document).

mod common;

use common::{Engine, Mode};
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap};
use serde_json::{Value, json};

const PASSWORD: &str = "a long enough password";

fn plain_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_gzip()
        .build()
        .expect("client")
}

async fn page_and_files(mode: Mode) {
    let engine = Engine::start(mode).await;
    let http = plain_client();
    for path in [
        "/",
        "/workflows/0190f5c2-0000-7000-8000-000000000000",
        "/admin/keys",
    ] {
        let resp = http.get(engine.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let h = resp.headers().clone();
        assert_eq!(h[header::CONTENT_TYPE], "text/html", "{path}");
        assert_eq!(h[header::CACHE_CONTROL], "no-cache", "{path}");
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-eval"), "{csp}");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
        let text = resp.text().await.unwrap();
        assert!(text.contains("<div id=\"root\">"), "{path}: {text}");
        assert!(!text.contains("<script>"), "no inline script: {text}");
    }
    // The page names its hashed script; it is cached for good and
    // compressed for clients that take gzip.
    let page = http
        .get(engine.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let script = page
        .split("src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the page names its script")
        .to_owned();
    assert!(
        script.starts_with("/assets/") && script.ends_with(".js"),
        "{script}"
    );
    let plain = http.get(engine.url(&script)).send().await.unwrap();
    assert_eq!(plain.status(), StatusCode::OK);
    let h = plain.headers().clone();
    assert_eq!(
        h[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    assert!(
        h[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .contains("javascript")
    );
    assert!(h.get(header::CONTENT_ENCODING).is_none());
    let etag = h[header::ETAG].clone();
    let plain_len = plain.bytes().await.unwrap().len();
    let zipped = http
        .get(engine.url(&script))
        .header(header::ACCEPT_ENCODING, "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(zipped.headers()[header::CONTENT_ENCODING], "gzip");
    assert_eq!(zipped.headers()[header::VARY], "accept-encoding");
    let zipped_len = zipped.bytes().await.unwrap().len();
    assert!(zipped_len * 2 < plain_len, "{zipped_len} of {plain_len}");
    let again = http
        .get(engine.url(&script))
        .header(header::IF_NONE_MATCH, etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    // What is not the console keeps the API's answers.
    for (method, path) in [
        ("GET", "/assets/missing-0000.js"),
        ("GET", "/v1/nothing-here"),
        ("GET", "/hooks"),
        ("POST", "/"),
        ("DELETE", "/workflows/x"),
    ] {
        let resp = http
            .request(method.parse().unwrap(), engine.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{method} {path}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found", "{method} {path}");
    }
    // API answers never run as a page of the console's origin.
    let resp = http.get(engine.url("/health")).send().await.unwrap();
    assert!(
        resp.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .starts_with("sandbox")
    );
}
both_modes!(page_and_files, page_and_files);

/// Registers a tenant and opens a console session; answers the cookie
/// header to send and the CSRF token.
async fn console_session(engine: &Engine, http: &reqwest::Client, name: &str) -> (String, String) {
    let email = format!("owner@{name}.example.com");
    engine.create_tenant(name).await;
    let resp = http
        .post(engine.url("/v1/auth/session"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let set = resp.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = resp.json().await.unwrap();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/v1"] {
        assert!(set.contains(part), "{part} in {set}");
    }
    assert!(!set.contains("Secure"), "no TLS here: {set}");
    assert!(
        body.get("token").is_none(),
        "the session stays in the cookie: {body}"
    );
    let csrf = body["csrf_token"]
        .as_str()
        .expect("a CSRF token")
        .to_owned();
    let cookie = set.split(';').next().unwrap().to_owned();
    let secret = cookie.split_once('=').unwrap().1;
    assert!(!csrf.contains(secret) && !secret.is_empty());
    (cookie, csrf)
}

fn with(cookie: &str, extra: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::COOKIE, cookie.parse().unwrap());
    for (name, value) in extra {
        h.insert(*name, value.parse().unwrap());
    }
    h
}

/// A request with these headers (the cookie among them): its status,
/// body and headers.
async fn send(
    http: &reqwest::Client,
    url: String,
    method: reqwest::Method,
    headers: HeaderMap,
    body: Option<Value>,
) -> (StatusCode, Value, HeaderMap) {
    let mut req = http.request(method, url).headers(headers);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.unwrap();
    let (status, h) = (resp.status(), resp.headers().clone());
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        h,
    )
}

async fn cookie_session(mode: Mode) {
    use reqwest::Method;
    let engine = Engine::start(mode).await;
    let http = plain_client();
    let (cookie, csrf) = console_session(&engine, &http, "cookie-co").await;
    let call = |method: Method, path: &str, extra: &[(&'static str, &str)], body: Option<Value>| {
        send(&http, engine.url(path), method, with(&cookie, extra), body)
    };
    // Reads need the cookie only; `me` gives the CSRF token back (a
    // reloaded page has no other way to it).
    let (_, me, _) = call(Method::GET, "/v1/me", &[], None).await;
    assert_eq!(me["tenant"]["slug"], "cookie-co");
    assert_eq!(me["csrf_token"], csrf.as_str());
    let doc = json!({"name": "by cookie", "nodes": [{"id": "t", "type": "trigger", "kind": "manual"}], "edges": []});
    // A change without the token, or with another, is refused and changes
    // nothing; so is one from another origin, even with the token.
    let other = "0".repeat(64);
    for extra in [
        vec![],
        vec![("x-csrf-token", other.as_str())],
        vec![
            ("x-csrf-token", csrf.as_str()),
            ("origin", "http://evil.example"),
        ],
    ] {
        let (status, body, _) =
            call(Method::POST, "/v1/workflows", &extra, Some(doc.clone())).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{extra:?}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("X-CSRF-Token") || message.contains("origin"),
            "{body}"
        );
    }
    let (_, listed, _) = call(Method::GET, "/v1/workflows", &[], None).await;
    assert_eq!(listed["items"], json!([]), "nothing was created");
    // With the token from the console's own origin: done.
    let origin = format!("http://{}", engine.base.trim_start_matches("http://"));
    let extra = [("x-csrf-token", csrf.as_str()), ("origin", origin.as_str())];
    let (status, _, _) = call(Method::POST, "/v1/workflows", &extra, Some(doc.clone())).await;
    assert_eq!(status, StatusCode::CREATED);
    // A bearer credential needs no CSRF token (API clients are unchanged)
    // and `me` then carries none.
    let (_, me) = engine.get("/v1/me").await;
    assert!(me.get("csrf_token").is_none(), "{me}");
    // Logging out ends the session and clears the cookie.
    let (status, _, h) = call(
        Method::POST,
        "/v1/auth/logout",
        &[("x-csrf-token", &csrf)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let cleared = h[header::SET_COOKIE].to_str().unwrap();
    assert!(
        cleared.contains("Max-Age=0") && cleared.starts_with("flowmesh_session=;"),
        "{cleared}"
    );
    let (status, _, _) = call(Method::GET, "/v1/me", &[], None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A wrong password opens nothing.
    let wrong = json!({"email": "owner@cookie-co.example.com", "password": "wrong password here"});
    let (status, _, h) = send(
        &http,
        engine.url("/v1/auth/session"),
        Method::POST,
        HeaderMap::new(),
        Some(wrong),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(h.get(header::SET_COOKIE).is_none());
}
both_modes!(cookie_session, cookie_session);

/// Behind a proxy that terminates TLS the cookie is marked Secure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_cookies_when_asked() {
    let engine = Engine::start_with(Mode::Embedded, &[("FLOWMESH_SECURE_COOKIES", "true")]).await;
    engine.create_tenant("secure-co").await;
    let resp = plain_client()
        .post(engine.url("/v1/auth/session"))
        .json(&json!({"email": "owner@secure-co.example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let set = resp.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(set.contains("; Secure"), "{set}");
}

fn hook_doc(name: &str, path: &str, fail: bool) -> Value {
    let second = if fail {
        json!({"id": "check", "type": "action", "kind": "fail", "config": {"message": "no"}})
    } else {
        json!({"id": "check", "type": "data", "kind": "mapping", "config": {"mapping": {"ok": "yes"}}})
    };
    json!({
        "name": name,
        "nodes": [
            {"id": "hook", "type": "trigger", "kind": "webhook", "config": {"path": path}, "ui": {"x": 10.5, "y": -20}},
            second
        ],
        "edges": [{"from": "hook", "to": "check"}]
    })
}

/// The `items` of a listing read with `key`.
async fn items(engine: &Engine, key: &str, path: String) -> Vec<Value> {
    let (status, body) = engine
        .request_as(key, reqwest::Method::GET, &path, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    body["items"].as_array().unwrap().clone()
}

fn now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(since.as_millis()).unwrap()
}

async fn workflow_list_for_a_dashboard(mode: Mode) {
    let engine = Engine::start(mode).await;
    let key = engine.create_tenant("dash-co").await;
    let tenant = "dash-co";
    let ok = engine
        .deploy_as(&key, hook_doc("Signup flow", "signup", false))
        .await;
    let bad = engine
        .deploy_as(&key, hook_doc("Billing sync", "billing", true))
        .await;
    let (status, draft) = engine
        .request_as(
            &key,
            reqwest::Method::POST,
            "/v1/workflows",
            Some(hook_doc("signup draft", "draft", false)),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{draft}");
    let draft = draft["id"].as_str().unwrap().to_owned();
    let before = now_ms();
    let mut runs = Vec::new();
    for (path, n) in [("signup", 3), ("billing", 2)] {
        for _ in 0..n {
            let resp = engine
                .client()
                .post(engine.url(&format!("/hooks/{tenant}/{path}")))
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::ACCEPTED);
            let body: Value = resp.json().await.unwrap();
            runs.push(body["execution_id"].as_str().unwrap().to_owned());
        }
    }
    for id in &runs {
        common::eventually("the run ends", std::time::Duration::from_secs(30), || {
            let engine = &engine;
            let key = key.clone();
            async move {
                let (_, body) = engine
                    .request_as(
                        &key,
                        reqwest::Method::GET,
                        &format!("/v1/executions/{id}"),
                        None,
                    )
                    .await;
                matches!(body["status"].as_str(), Some("succeeded" | "failed")).then_some(())
            }
        })
        .await;
    }
    let list = |query: &'static str| items(&engine, &key, format!("/v1/workflows{query}"));
    let ids = |items: &[Value]| {
        let mut ids: Vec<String> = items
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let all = list("").await;
    assert_eq!(all.len(), 3);
    assert!(
        all.iter().all(|i| i.get("stats").is_none()),
        "no statistics unless asked"
    );
    assert_eq!(
        ids(&list("?q=SIGNUP").await),
        sorted(vec![ok.clone(), draft.clone()])
    );
    assert_eq!(
        ids(&list("?state=published").await),
        sorted(vec![ok.clone(), bad.clone()])
    );
    assert_eq!(ids(&list("?state=draft").await), vec![draft.clone()]);
    assert_eq!(ids(&list("?failing=true").await), vec![bad.clone()]);
    assert_eq!(
        ids(&list("?q=signup&state=published").await),
        vec![ok.clone()]
    );
    let with_stats = list("?stats=true").await;
    let stats_of = |id: &str| {
        with_stats
            .iter()
            .find(|i| i["id"] == id)
            .map(|i| i["stats"].clone())
            .unwrap()
    };
    let s = stats_of(&ok);
    assert_eq!(s["total"], 3);
    assert_eq!(s["success_rate"], 1.0);
    assert!(
        s["p50_ms"].as_i64().is_some() && s["p95_ms"].as_i64().is_some(),
        "{s}"
    );
    assert_eq!(s["last_run"]["status"], "succeeded");
    let b = stats_of(&bad);
    assert_eq!(
        (b["total"].clone(), b["success_rate"].clone()),
        (json!(2), json!(0.0)),
        "{b}"
    );
    assert_eq!(b["by_status"]["failed"], 2);
    assert_eq!(stats_of(&draft)["total"], 0);
    // The same figures as the one workflow's statistics.
    let (_, one) = engine
        .request_as(
            &key,
            reqwest::Method::GET,
            &format!("/v1/workflows/{ok}/stats"),
            None,
        )
        .await;
    assert_eq!(one, s);
    // Bad filters name the parameter.
    for (query, field) in [
        ("?state=archived", "state"),
        ("?failing=maybe", "failing"),
        ("?sort=name", "sort"),
    ] {
        let (status, body) = engine
            .request_as(
                &key,
                reqwest::Method::GET,
                &format!("/v1/workflows{query}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(field),
            "{body}"
        );
    }
    let long = format!("/v1/workflows?q={}", "a".repeat(201));
    let (status, _) = engine
        .request_as(&key, reqwest::Method::GET, &long, None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Executions in a time window.
    let after = now_ms() + 1;
    let window = |from: i64, to: i64| {
        let path = format!("/v1/executions?from={from}&to={to}&limit=50");
        let engine = &engine;
        let key = &key;
        async move { items(engine, key, path).await.len() }
    };
    assert_eq!(window(before - 1, after).await, 5);
    assert_eq!(window(after, after + 60_000).await, 0);
    assert_eq!(window(0, before - 1).await, 0);
    let (status, _) = engine
        .request_as(
            &key,
            reqwest::Method::GET,
            "/v1/executions?from=yesterday",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Positions are kept with the document.
    let (_, read) = engine
        .request_as(
            &key,
            reqwest::Method::GET,
            &format!("/v1/workflows/{ok}"),
            None,
        )
        .await;
    assert_eq!(
        read["document"]["nodes"][0]["ui"],
        json!({"x": 10.5, "y": -20.0})
    );
}
both_modes!(workflow_list_for_a_dashboard, workflow_list_for_a_dashboard);

/// A position out of bounds or with unknown fields is a validation problem
/// at its path, and nothing is saved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn positions_are_checked() {
    let engine = Engine::start(Mode::Embedded).await;
    for (ui, path) in [
        (json!({"x": 1e9, "y": 0}), "nodes[0].ui.x"),
        (json!({"x": 0, "y": -1e7}), "nodes[0].ui.y"),
        (json!({"x": 0}), "nodes[0].ui"),
        (json!({"x": 0, "y": 0, "z": 1}), "nodes[0].ui"),
        (json!("left"), "nodes[0].ui"),
    ] {
        let doc = json!({"name": "placed", "nodes": [{"id": "t", "type": "trigger", "kind": "manual", "ui": ui}], "edges": []});
        let (status, body) = engine.post("/v1/workflows", doc).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{ui}: {body}");
        let text = body["error"]["details"].to_string();
        assert!(text.contains(path), "{ui}: {path} in {body}");
    }
    let (_, listed) = engine.get("/v1/workflows").await;
    assert_eq!(listed["items"], json!([]));
}
