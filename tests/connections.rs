//! Connections anyone can open: half-sent requests are closed after the
//! header-read timeout, idle connections after the idle timeout, and one
//! address cannot hold more than its share while others are served.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Engine, Mode};
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

fn address(engine: &Engine) -> SocketAddr {
    engine
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("the engine's address")
}

async fn connect_from(local: &str, engine: &Engine) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{local}:0").parse().unwrap()).unwrap();
    socket.connect(address(engine)).await.unwrap()
}

/// Whether the server has closed the connection (a read ends or fails).
async fn closed(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return true,
            // An answer (408, or a response) may come first; then the close.
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

async fn health_from(local: &str, engine: &Engine) -> StatusCode {
    reqwest::Client::builder()
        .local_address(local.parse::<std::net::IpAddr>().unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
        .get(engine.url("/health"))
        .send()
        .await
        .map(|r| r.status())
        .unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
}

async fn half_sent_requests(mode: Mode) {
    let engine = Engine::start_with(
        mode,
        &[
            ("FLOWMESH_MAX_CONNECTIONS_PER_ADDRESS", "100"),
            ("FLOWMESH_HEADER_READ_TIMEOUT", "2s"),
        ],
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..150 {
        let mut stream = connect_from("127.0.0.3", &engine).await;
        // The request line and one header, never the end of the headers.
        let _ = stream
            .write_all(b"POST /hooks/default/x HTTP/1.1\r\nHost: flowmesh\r\n")
            .await;
        held.push(stream);
    }
    // Past its address's share, a connection is closed at once...
    let mut refused = 0;
    for stream in held.iter_mut().skip(100) {
        refused += usize::from(closed(stream, Duration::from_secs(1)).await);
    }
    assert_eq!(refused, 50, "connections past the share of one address");
    // ...and everyone else is served meanwhile.
    assert_eq!(health_from("127.0.0.4", &engine).await, StatusCode::OK);
    // The held ones are closed once the header-read timeout passes.
    let started = Instant::now();
    for stream in held.iter_mut().take(100) {
        assert!(
            closed(stream, Duration::from_secs(15)).await,
            "a half-sent request was still held after {:?}",
            started.elapsed()
        );
    }
}
both_modes!(half_sent_requests_are_closed, half_sent_requests);

async fn idle_connections(mode: Mode) {
    let engine = Engine::start_with(mode, &[("FLOWMESH_IDLE_TIMEOUT", "2s")]).await;
    let mut stream = connect_from("127.0.0.5", &engine).await;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: flowmesh\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0u8; 12];
    stream.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    assert!(
        closed(&mut stream, Duration::from_secs(15)).await,
        "an idle keep-alive connection was never closed"
    );
}
both_modes!(idle_connections_are_closed, idle_connections);

async fn open_stream(engine: &Engine, key: &str) -> reqwest::Response {
    engine
        .client()
        .get(engine.url("/v1/events"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

async fn streams_per_tenant(mode: Mode) {
    let engine = Engine::start_with(mode, &[("FLOWMESH_TENANT_MAX_STREAMS", "3")]).await;
    let other = engine.create_tenant("Neighbour").await;
    let mut open = Vec::new();
    for _ in 0..3 {
        let stream = open_stream(&engine, common::ADMIN_KEY).await;
        assert_eq!(stream.status(), StatusCode::OK);
        open.push(stream);
    }
    let refused = open_stream(&engine, common::ADMIN_KEY).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key("retry-after"));
    // Another tenant's share is its own.
    assert_eq!(open_stream(&engine, &other).await.status(), StatusCode::OK);
    // A closed stream gives its slot back.
    drop(open.pop());
    common::eventually("a slot is given back", Duration::from_secs(30), || async {
        let stream = open_stream(&engine, common::ADMIN_KEY).await;
        (stream.status() == StatusCode::OK).then_some(())
    })
    .await;
}
both_modes!(event_streams_are_capped_per_tenant, streams_per_tenant);
