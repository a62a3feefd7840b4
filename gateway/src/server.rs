//! The HTTP server loop: accepts connections within bounds and serves each
//! with HTTP/1.1. Anyone on the network can open connections, so each one
//! costs a slot of a global cap and of its address's cap (held until an
//! upgraded stream closes too), must send its request headers and then its
//! body within time limits, and is closed once idle.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use flowmesh_model::HumanDuration;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tower::ServiceExt;

/// Bounds of the connections the gateway holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct ConnectionOptions {
    /// Open connections at once; further ones are closed at accept.
    pub max_connections: usize,
    /// Open connections from one address.
    pub max_per_address: usize,
    /// Time a client has to send a request's headers.
    pub header_read_timeout: HumanDuration,
    /// A connection with no bytes in either direction for this long is closed.
    pub idle_timeout: HumanDuration,
    /// Time a client has, from the end of a request's headers, to send its
    /// whole body; then it gets 408 and the connection is closed.
    pub body_read_timeout: HumanDuration,
}

/// When a request's body must be in: set per request, read by `read_body`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BodyDeadline(pub tokio::time::Instant);

impl Default for ConnectionOptions {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_per_address: 1_000,
            header_read_timeout: HumanDuration::from_millis(10_000),
            idle_timeout: HumanDuration::from_millis(120_000),
            body_read_timeout: HumanDuration::from_millis(10_000),
        }
    }
}

/// Open connections by address; an entry leaves with its last connection.
#[derive(Default)]
struct PerAddress(Mutex<HashMap<IpAddr, usize>>);

/// One connection's place in the caps, given back when it closes.
struct Admitted {
    _global: OwnedSemaphorePermit,
    address: IpAddr,
    per_address: Arc<PerAddress>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self.per_address.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}

fn admit(
    global: &Arc<Semaphore>,
    per_address: &Arc<PerAddress>,
    address: IpAddr,
    options: &ConnectionOptions,
) -> Option<Admitted> {
    let address = flowmesh_services::source_block(address);
    let permit = global.clone().try_acquire_owned().ok()?;
    let mut open = per_address.0.lock().unwrap_or_else(|p| p.into_inner());
    let count = open.entry(address).or_default();
    if *count >= options.max_per_address {
        return None;
    }
    *count += 1;
    Some(Admitted {
        _global: permit,
        address,
        per_address: per_address.clone(),
    })
}

/// A stream that remembers when bytes last moved. It holds its place in
/// the caps, so that an upgraded (WebSocket) connection, which outlives the
/// HTTP serving of it, keeps counting until its stream is dropped.
struct Tracked {
    inner: TcpStream,
    last: Arc<Mutex<Instant>>,
    _admitted: Admitted,
}

impl Tracked {
    fn touch(&self) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.touch();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Resolves once the connection has moved no bytes for `limit`.
async fn idle(last: Arc<Mutex<Instant>>, limit: Duration) {
    loop {
        let since = last.lock().unwrap_or_else(|p| p.into_inner()).elapsed();
        if since >= limit {
            return;
        }
        tokio::time::sleep(limit - since).await;
    }
}

/// Longest wait on shutdown for open requests to finish.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

/// What the loop serves with.
pub(crate) struct Serve {
    pub listener: TcpListener,
    pub router: axum::Router,
    pub options: ConnectionOptions,
}

/// Accepts and serves until `shutdown`, then lets open requests finish.
pub(crate) async fn run(
    serve: Serve,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let Serve {
        listener,
        router,
        options,
    } = serve;
    let global = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let per_address = Arc::new(PerAddress::default());
    let (stop, stopping) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors or the like: the connections in
                    // progress free them; accepting again at once would spin.
                    tracing::warn!(error = %e, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(admitted) = admit(&global, &per_address, peer.ip(), &options) else {
            metrics::counter!("flowmesh_connections_refused_total").increment(1);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(Connection {
            stream,
            peer,
            router: router.clone(),
            options: options.clone(),
            stopping: stopping.clone(),
            admitted,
        }));
    }
    drop(listener);
    let _ = stop.send(true);
    // Each connection holds a permit: all are back once all have closed.
    // Streams (events) never finish by themselves, so the wait is bounded.
    let all = global.acquire_many(options.max_connections.max(1) as u32);
    let _ = tokio::time::timeout(SHUTDOWN_WAIT, all).await;
    Ok(())
}

struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    router: axum::Router,
    options: ConnectionOptions,
    stopping: watch::Receiver<bool>,
    admitted: Admitted,
}

async fn connection(c: Connection) {
    let Connection {
        stream,
        peer,
        router,
        options,
        stopping,
        admitted,
    } = c;
    let mut stopping = stopping;
    let last = Arc::new(Mutex::new(Instant::now()));
    let io = TokioIo::new(Tracked {
        inner: stream,
        last: last.clone(),
        _admitted: admitted,
    });
    let body_read_timeout = options.body_read_timeout.0;
    let service =
        hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request.extensions_mut().insert(BodyDeadline(
                tokio::time::Instant::now() + body_read_timeout,
            ));
            router.clone().oneshot(request)
        });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout.0)
        .serve_connection(io, service)
        .with_upgrades();
    let mut served = std::pin::pin!(served);
    let idle = idle(last, options.idle_timeout.0);
    let mut idle = std::pin::pin!(idle);
    let stop = async move {
        while !*stopping.borrow_and_update() {
            if stopping.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = served.as_mut() => {}
        () = idle.as_mut() => {}
        () = stop => {
            served.as_mut().graceful_shutdown();
            let _ = served.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_hold_per_address_and_in_all() {
        let options = ConnectionOptions {
            max_connections: 3,
            max_per_address: 2,
            ..Default::default()
        };
        let global = Arc::new(Semaphore::new(3));
        let per_address = Arc::new(PerAddress::default());
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let first = admit(&global, &per_address, a, &options).unwrap();
        let _second = admit(&global, &per_address, a, &options).unwrap();
        assert!(
            admit(&global, &per_address, a, &options).is_none(),
            "a third from a"
        );
        let _third = admit(&global, &per_address, b, &options).unwrap();
        assert!(
            admit(&global, &per_address, b, &options).is_none(),
            "over the global cap"
        );
        drop(first);
        assert!(
            admit(&global, &per_address, a, &options).is_some(),
            "a slot came back"
        );
        assert!(per_address.0.lock().unwrap().len() <= 2);
    }

    #[test]
    fn addresses_of_one_ipv6_64_share_their_cap() {
        let options = ConnectionOptions {
            max_connections: 10,
            max_per_address: 2,
            ..Default::default()
        };
        let global = Arc::new(Semaphore::new(10));
        let per_address = Arc::new(PerAddress::default());
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let _one = admit(&global, &per_address, ip("2001:db8::1"), &options).unwrap();
        let _two = admit(&global, &per_address, ip("2001:db8::2"), &options).unwrap();
        assert!(
            admit(&global, &per_address, ip("2001:db8::3"), &options).is_none(),
            "a third address of the same /64"
        );
        assert!(admit(&global, &per_address, ip("2001:db8:0:1::1"), &options).is_some());
    }
}
