//! The tenant's stream of every execution event, as Server-Sent Events
//! (`GET /v1/events`) or WebSocket messages (`GET /v1/events/ws`). Each
//! event's id is its position on the bus; a client that reconnects with
//! the last id it saw (`Last-Event-ID`, or `?last_event_id=`) continues
//! after it, with no gap and no repeat, as long as the bus still keeps the
//! events it missed (an hour by default).

use flowmesh_api::ErrorCode;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use flowmesh_bus::Positioned;
use flowmesh_model::TenantId;
use futures::stream;
use serde_json::json;

use crate::access::Auth;
use crate::error::ApiError;
use crate::extract::AppState;

/// Where a reconnecting client left off: the `Last-Event-ID` header or the
/// `last_event_id` query parameter.
fn last_event_id(
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<Option<u64>, ApiError> {
    if let Some(unknown) = query.keys().find(|k| k.as_str() != "last_event_id") {
        return Err(ApiError::bad_request(format!(
            "query parameter {unknown}: unknown; the stream takes last_event_id"
        )));
    }
    let text = match headers.get("last-event-id") {
        Some(value) => Some(value.to_str().map_err(|_| {
            ApiError::bad_request("Last-Event-ID: must be an event id from this stream")
        })?),
        None => query.get("last_event_id").map(String::as_str),
    };
    text.map(|t| {
        t.trim().parse::<u64>().map_err(|_| {
            ApiError::bad_request("Last-Event-ID: must be an event id from this stream (a number)")
        })
    })
    .transpose()
}

/// Open streams by tenant: each holds a connection and a reader of the
/// tenant's events (in distributed mode, a process's readers of one tenant
/// share one JetStream consumer), so each tenant's share is bounded.
pub(crate) struct StreamSlots {
    max: usize,
    open: Mutex<HashMap<TenantId, usize>>,
}

/// One open stream's slot, given back when the stream ends.
pub(crate) struct StreamSlot {
    slots: Arc<StreamSlots>,
    tenant: TenantId,
}

impl StreamSlots {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            open: Mutex::default(),
        })
    }

    pub fn take(self: &Arc<Self>, tenant: TenantId) -> Result<StreamSlot, ApiError> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(tenant).or_default();
        if *count >= self.max {
            metrics::counter!("flowmesh_streams_refused_total").increment(1);
            let mut error = ApiError::new(
                ErrorCode::TooManyStreams,
                format!(
                    "the tenant already has {} event streams open here; close one, or retry later",
                    self.max
                ),
            );
            error.retry_after = Some(5);
            return Err(error);
        }
        *count += 1;
        Ok(StreamSlot {
            slots: self.clone(),
            tenant,
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.tenant) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.tenant);
            }
        }
    }
}

fn body(p: &Positioned) -> serde_json::Value {
    p.event.to_json()
}

pub(crate) async fn tenant_events(
    State(state): State<AppState>,
    Auth(who): Auth,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let after = last_event_id(&headers, &query)?;
    let slot = state.streams.take(who.tenant)?;
    let events = state.engine.tenant_events(who.tenant, after).await?;
    let stream = stream::unfold((events, slot), |(mut events, slot)| async move {
        let sse = match events.next_positioned().await? {
            Ok(p) => Event::default()
                .id(p.position.to_string())
                .event(p.event.kind.name())
                .json_data(body(&p))
                .unwrap_or_default(),
            Err(e @ flowmesh_bus::Error::Lagged { .. }) => Event::default()
                .event("lagged")
                .data(format!("{e}; reconnect with Last-Event-ID")),
            Err(e) => Event::default().event("error").data(format!(
                "the event stream broke ({e}); reconnect with Last-Event-ID"
            )),
        };
        Some((Ok::<_, Infallible>(sse), (events, slot)))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

pub(crate) async fn tenant_events_ws(
    State(state): State<AppState>,
    Auth(who): Auth,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let after = last_event_id(&headers, &query)?;
    let slot = state.streams.take(who.tenant)?;
    // Subscribed before the upgrade: an unreachable bus is an HTTP error.
    let events = state.engine.tenant_events(who.tenant, after).await?;
    Ok(upgrade.on_upgrade(move |socket| async move {
        forward(socket, events).await;
        drop(slot);
    }))
}

/// Sends each event as a text message `{"id", "event"}` until either side
/// closes; messages from the client are read only to notice a close.
async fn forward(mut socket: WebSocket, mut events: flowmesh_bus::Events) {
    loop {
        tokio::select! {
            next = events.next_positioned() => {
                let text = match next {
                    Some(Ok(p)) => json!({"id": p.position, "type": p.event.kind.name(), "event": body(&p)}),
                    Some(Err(e @ flowmesh_bus::Error::Lagged { .. })) => json!({"type": "lagged", "error": format!("{e}; reconnect with last_event_id")}),
                    Some(Err(e)) => json!({"type": "error", "error": format!("the event stream broke ({e}); reconnect with last_event_id")}),
                    None => break,
                };
                if socket.send(Message::Text(text.to_string().into())).await.is_err() {
                    break;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
}
