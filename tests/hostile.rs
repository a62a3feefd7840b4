//! Hostile input on every route that takes a body: naughty strings, deeply
//! nested JSON, 64 MB bodies, invalid UTF-8, the wrong content type. Every
//! answer is a clean 4xx (or a success for input that is merely odd), never
//! a 5xx, and the engine's memory stays bounded.

mod common;

use common::{ADMIN_KEY, Engine, Mode};
use flowmesh_gateway::routes;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Strings that have broken parsers, databases, logs and terminals.
fn naughty() -> Vec<String> {
    let mut list: Vec<String> = [
        "",
        " ",
        "\u{0}",
        "\u{0}\u{1}\u{2}",
        "null",
        "undefined",
        "NaN",
        "-1",
        "0x0",
        "1e309",
        "99999999999999999999999999",
        "true",
        "[]",
        "{}",
        "\"",
        "\\",
        "'; DROP TABLE tenants; --",
        "' OR '1'='1",
        "<script>alert(1)</script>",
        "${jndi:ldap://127.0.0.1/a}",
        "{{ 7 * 7 }}",
        "%s%s%s%n",
        "../../../../etc/passwd",
        "C:\\Windows\\system32",
        "\u{202e}txt.exe",
        "\u{200b}\u{200c}\u{200d}\u{feff}",
        "Z̸̡̧̛̛̖͎̰͓͈̪̳̤̋̿̈́̾̑͑̋͗̑ä̷̧̛͚̜͕̞̦̠͙̫̪̽̈́̀̇l̴̢̹͈̰̥͇̑̔͑̊̈́̏g̴̢̛͔͉͖̯̭̣̥̟̳̐̃̈́͗o",
        "👩‍👩‍👧‍👦🏳️‍🌈",
        "田中さんにあげて下さい",
        "مرحبا",
        "\r\n\r\nHTTP/1.1 200 OK",
        "a\u{7f}b",
        "\u{fffd}\u{fffe}",
        "owner",
        "admin@",
        "@example.com",
        "a@b",
        "fmk_",
        "fms_xxxxxxxxxxxx",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    list.push("x".repeat(100_000));
    list
}

fn concrete(path: &str) -> String {
    path.replace("{id}", "0190d7a0-0000-7000-8000-000000000000")
        .replace("{name}", "hostile_secret")
        .replace("{slug}", "default")
        .replace("{tenant}", "default")
        .replace("{*path}", "hostile")
}

async fn send(
    engine: &Engine,
    method: &Method,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (StatusCode, String) {
    let response = engine
        .client()
        .request(method.clone(), engine.url(path))
        .bearer_auth(ADMIN_KEY)
        .header("content-type", content_type)
        // A connection each: the engine closes one whose body it answered
        // without reading, and a pooled one reused just then would fail
        // the next request before it is sent.
        .header("connection", "close")
        .body(body)
        .send()
        .await
        .expect("an answer");
    let status = response.status();
    (status, response.text().await.unwrap_or_default())
}

/// Sends a 64 MB body the way a careful client does: reading the answer
/// while it writes, and stopping once one comes (the engine answers 413 at
/// the limit, without reading the rest).
async fn oversized(engine: &Engine, method: &Method, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let url = reqwest::Url::parse(&engine.url(path)).unwrap();
    let addr = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    // Larger than the loopback socket's buffers can hold (a few MB each
    // way), so that a body the engine does not read cannot be taken whole
    // by the kernel alone while the engine is slow to close.
    let size = 64 * 1024 * 1024;
    let head = format!(
        "{method} {} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {ADMIN_KEY}\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n",
        url.path(),
        url.host_str().unwrap(),
    );
    // The engine closes its side once it has answered: a failed write is
    // expected, and the answer is then waiting to be read.
    let write = async move {
        let sent: std::io::Result<()> = async {
            writer.write_all(head.as_bytes()).await?;
            let chunk = vec![b' '; 64 * 1024];
            for _ in 0..size / chunk.len() {
                writer.write_all(&chunk).await?;
            }
            Ok(())
        }
        .await;
        if sent.is_ok() {
            panic!("the whole 64 MB body was taken");
        }
        std::future::pending::<()>().await
    };
    let read = async {
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = reader.read(&mut buf).await.unwrap();
            assert!(n > 0, "{method} {path}: closed without an answer");
            answer.extend_from_slice(&buf[..n]);
        }
        answer
    };
    let answer = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        tokio::select! {
            answer = read => answer,
            () = write => unreachable!(),
        }
    })
    .await
    .expect("an answer in time");
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn clean(status: StatusCode, body: &str, what: &str) {
    assert!(!status.is_server_error(), "{what}: {status} {body}");
    if status.is_client_error() && status != StatusCode::METHOD_NOT_ALLOWED {
        let parsed: Value =
            serde_json::from_str(body).unwrap_or_else(|_| panic!("{what}: not JSON: {body}"));
        assert!(parsed["error"]["code"].is_string(), "{what}: {body}");
    }
}

async fn hostile_input_gets_clean_errors(mode: Mode) {
    let engine = Engine::start(mode).await;
    let before = engine.rss();
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let invalid_utf8 = b"{\"name\": \"\xff\xfe\xc3\x28\"}".to_vec();
    let fields = [
        "name",
        "email",
        "password",
        "tenant",
        "token",
        "role",
        "value",
        "from_node",
        "node",
        "retention",
    ];
    for route in routes() {
        if !matches!(route.method, "POST" | "PUT" | "ANY") || route.path == "/v1/auth/logout" {
            continue;
        }
        let method = if route.method == "ANY" {
            Method::POST
        } else {
            route.method.parse().unwrap()
        };
        let path = concrete(route.path);
        for s in naughty() {
            let body: serde_json::Map<String, Value> =
                fields.iter().map(|f| (f.to_string(), json!(s))).collect();
            let (status, text) = send(
                &engine,
                &method,
                &path,
                "application/json",
                serde_json::to_vec(&body).unwrap(),
            )
            .await;
            clean(
                status,
                &text,
                &format!(
                    "{method} {path} with {:?}",
                    s.chars().take(20).collect::<String>()
                ),
            );
        }
        let (status, text) = send(
            &engine,
            &method,
            &path,
            "application/json",
            nested.clone().into_bytes(),
        )
        .await;
        clean(status, &text, &format!("{method} {path} nested"));
        assert!(status.is_client_error(), "{method} {path} nested: {status}");
        // 413 where the route reads a body; a route that reads none says what else is wrong.
        let status = oversized(&engine, &method, &path).await;
        assert!(
            (400..500).contains(&status),
            "{method} {path} 64 MB: {status}"
        );
        if route.path == "/v1/workflows" || route.path == "/v1/auth/register" {
            assert_eq!(status, 413, "{method} {path} 64 MB");
        }
        let (status, text) = send(
            &engine,
            &method,
            &path,
            "application/json",
            invalid_utf8.clone(),
        )
        .await;
        clean(status, &text, &format!("{method} {path} invalid UTF-8"));
        assert!(
            status.is_client_error(),
            "{method} {path} invalid UTF-8: {status}"
        );
        let (status, text) = send(
            &engine,
            &method,
            &path,
            "text/plain",
            b"{\"name\": \"x\"}".to_vec(),
        )
        .await;
        clean(status, &text, &format!("{method} {path} text/plain"));
    }
    let (status, _) = engine.get("/health").await;
    assert_eq!(status, StatusCode::OK);
    let grown = engine.rss().saturating_sub(before);
    assert!(
        grown < 200 * 1024 * 1024,
        "the engine grew by {} MB",
        grown / (1024 * 1024)
    );
}
both_modes!(
    hostile_input_gets_clean_errors_on_every_route,
    hostile_input_gets_clean_errors
);

/// Stored text cannot hold NUL: a schema-valid request carrying one, in a
/// body, a query parameter, a path or a webhook, is a 400 that says where,
/// and nothing of it is stored.
async fn nul_characters_are_refused_where_they_are(mode: Mode) {
    let engine = Engine::start(mode).await;
    engine
        .deploy(json!({"name": "hook", "nodes": [
            {"id": "hook", "type": "trigger", "kind": "webhook", "config": {"path": "in"}}
        ], "edges": []}))
        .await;
    let bodies = [
        (
            "/v1/workflows",
            json!({"name": "a\u{0}b", "nodes": [], "edges": []}),
            "/name",
        ),
        (
            "/v1/workflows",
            json!({"name": "ok", "nodes": [{"id": "t", "type": "trigger", "kind": "manual", "config": {"x\u{0}": 1}}], "edges": []}),
            "/nodes/0/config/x\u{0}",
        ),
        (
            "/v1/api-keys",
            json!({"name": "k\u{0}", "role": "viewer"}),
            "/name",
        ),
        (
            "/v1/auth/register",
            json!({"email": "a@example.com", "password": "long enough password", "tenant": "t\u{0}"}),
            "/tenant",
        ),
    ];
    for (path, body, pointer) in bodies {
        let (status, answer) = engine.post(path, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {answer}");
        assert_eq!(answer["error"]["code"], "bad_request");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("{pointer}:")),
            "{path}: {message}"
        );
    }
    let (_, listed) = engine.get("/v1/workflows").await;
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    let (_, keys) = engine.get("/v1/api-keys").await;
    assert!(!keys.to_string().contains("\\u0000"), "{keys}");

    let (status, answer) = engine.get("/v1/audit?action=workflow%00").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("query parameter action:")
    );
    let (status, _) = engine.get("/v1/secrets/a%00b").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    for (content_type, body) in [
        ("text/plain", b"hello\0world".to_vec()),
        (
            "application/json",
            br#"{"text": "hello\u0000world"}"#.to_vec(),
        ),
    ] {
        let (status, text) = send(
            &engine,
            &Method::POST,
            "/hooks/default/in",
            content_type,
            body,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{content_type}: {text}");
    }
    let (_, executions) = engine.get("/v1/executions").await;
    assert_eq!(
        executions["items"].as_array().map(Vec::len),
        Some(0),
        "{executions}"
    );
}
both_modes!(
    nul_characters_are_refused_with_their_location,
    nul_characters_are_refused_where_they_are
);
