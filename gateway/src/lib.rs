//! The gateway: HTTP in, engine requests out. Handlers hold no SQL and no
//! workflow logic; they translate requests for the [`EngineHandle`] and map
//! its errors to HTTP statuses (the only place that does).

mod access;
mod accounts;
mod ai;
mod answers;
mod billing;
mod bodies;
mod console;
mod error;
mod executions;
mod extract;
mod hook_limits;
mod hooks;
pub mod openapi;
mod operate;
mod operations;
mod queries;
mod replay;
mod routes;
mod server;
mod session;
mod sse;
mod stream;
mod workflows;

use std::net::SocketAddr;

use flowmesh_services::EngineHandle;
use serde::{Deserialize, Serialize};

pub use access::{Access, Guard};
pub use error::ApiError;
pub use hook_limits::WebhookLimitOptions;
pub use routes::{RouteInfo, router, routes};
pub use server::ConnectionOptions;

/// Settings of the HTTP gateway.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Options {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Largest accepted request body, in bytes; larger ones get 413.
    pub max_body_bytes: usize,
    /// Bounds of the connections held open.
    pub connections: ConnectionOptions,
    /// Event streams (`/v1/events`, SSE and WebSocket) one tenant holds
    /// open in one process; more get 429.
    pub max_streams_per_tenant: usize,
    /// Rate limits of the public webhook routes.
    pub webhook_limits: WebhookLimitOptions,
    /// The bearer token `GET /metrics` requires. Without one, metrics are
    /// not served: they name every tenant and workflow.
    pub metrics_token: Option<String>,
    /// Which routes this listener serves.
    pub surface: Surface,
    /// Mark the console's session cookie `Secure` (sent over HTTPS only):
    /// set it where the console is reached over TLS, as behind a proxy
    /// that terminates TLS.
    pub secure_cookies: bool,
}

/// The routes one listener serves: the public API, the operations routes
/// ([`OPERATIONS_PATHS`]), or both. A process may serve its operations
/// routes on a listener of its own, which probes and scrapers reach and
/// the public does not.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Surface {
    #[default]
    All,
    /// Everything but the operations routes.
    Public,
    /// The operations routes only.
    Operations,
}

/// The routes of liveness, readiness and metrics.
pub const OPERATIONS_PATHS: [&str; 3] = ["/health", "/ready", "/metrics"];

impl Surface {
    pub fn serves(self, path: &str) -> bool {
        let operations = OPERATIONS_PATHS.contains(&path);
        match self {
            Surface::All => true,
            Surface::Public => !operations,
            Surface::Operations => operations,
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 1024 * 1024,
            connections: ConnectionOptions::default(),
            max_streams_per_tenant: 100,
            webhook_limits: WebhookLimitOptions::default(),
            metrics_token: None,
            surface: Surface::All,
            secure_cookies: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The address could not be bound (in use, or not allowed). Retrying only helps once it is free.
    #[error("could not listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The server stopped on an I/O error.
    #[error("the HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
}

impl Error {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Bind { .. })
    }
}

/// The gateway service: binds, then serves until `shutdown` completes.
pub struct Gateway {
    listener: tokio::net::TcpListener,
    router: axum::Router,
    connections: ConnectionOptions,
}

impl Gateway {
    pub async fn bind(options: &Options, engine: EngineHandle) -> Result<Gateway, Error> {
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: options.listen,
                source,
            })?;
        Ok(Gateway {
            listener,
            router: router(engine, options),
            connections: options.connections.clone(),
        })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until `shutdown` resolves, then stops accepting and lets
    /// requests in progress finish.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        server::run(
            server::Serve {
                listener: self.listener,
                router: self.router,
                options: self.connections,
            },
            shutdown,
        )
        .await
        .map_err(Error::Serve)
    }
}
