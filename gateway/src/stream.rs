//! The tenant's stream of every execution event, as Server-Sent Events
//! (`GET /v1/events`) or WebSocket messages (`GET /v1/events/ws`). Each
//! event's id is its position in the tenant's stream, as recorded with the
//! turn that produced it. A client that reconnects with the last id it saw
//! (`Last-Event-ID`, or `?last_event_id=`) gets every later event from the
//! record, then live ones, with no gap and no repeat; without one it
//! follows from now on. A browser, which cannot send an `Authorization`
//! header here, opens a stream with a ticket (`POST /v1/stream-tickets`,
//! then `?ticket=`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use flowmesh_api::ErrorCode;
use flowmesh_model::{ExecutionEvent, TenantId};
use flowmesh_services::records::{EventScope, Resume};
use futures::stream;
use serde_json::json;

use crate::access::Auth;
use crate::error::ApiError;
use crate::extract::{AppState, TypedQuery};
use crate::queries::StreamQuery;
use crate::replay::{Broken, Recorded, Start};

/// Where a reconnecting client left off: the `Last-Event-ID` header or the
/// `last_event_id` query parameter.
fn last_event_id(headers: &HeaderMap, query: &StreamQuery) -> Result<Option<u64>, ApiError> {
    match headers.get("last-event-id") {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| {
                ApiError::bad_request(
                    "Last-Event-ID: must be an event id from this stream (a number)",
                )
            }),
        None => Ok(query.last_event_id),
    }
}

/// The tenant's stream after `after` (checked against the record), or
/// from now on.
async fn open(
    state: &AppState,
    tenant: TenantId,
    after: Option<u64>,
) -> Result<Recorded, ApiError> {
    if let Some(position) = after {
        match state.engine.resume_at(tenant, position).await? {
            Resume::Known => {}
            Resume::Future { last } => {
                return Err(ApiError::bad_request(format!(
                    "Last-Event-ID: {position} is not an event of this stream yet (its newest is \
                     {last}); reconnect with an id the stream sent, or without one"
                )));
            }
            Resume::Purged => {
                return Err(ApiError::new(
                    ErrorCode::EventsPurged,
                    format!(
                        "Last-Event-ID: event {position} is no longer kept (its execution was \
                         purged after the tenant's retention); reconnect with Last-Event-ID: 0 \
                         to replay what is kept, or without one to follow from now on"
                    ),
                ));
            }
        }
    }
    // Subscribed before the record is read: nothing falls in between.
    let live = state.engine.tenant_events(tenant).await?;
    let start = match after {
        Some(position) => position,
        None => state.engine.last_event_position(tenant).await?,
    };
    Ok(Recorded::new(
        state.engine.clone(),
        live,
        Start {
            tenant,
            scope: EventScope::Tenant,
            after: start,
            replay: after.is_some(),
            ends: false,
        },
    ))
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

/// A single-use ticket that opens one event stream of the caller's tenant
/// as `?ticket=`, with the caller's role. It takes no body: one sent is a
/// mistake worth saying, not something to ignore.
pub(crate) async fn stream_ticket(
    State(state): State<AppState>,
    Auth(who): Auth,
    body: bytes::Bytes,
) -> Result<Response, ApiError> {
    if !body.is_empty() {
        return Err(ApiError::bad_request(
            "POST /v1/stream-tickets takes no body; send the request without one",
        ));
    }
    let issued = state.engine.issue_stream_ticket(&who).await?;
    Ok((axum::http::StatusCode::CREATED, axum::Json(issued)).into_response())
}

pub(crate) async fn tenant_events(
    State(state): State<AppState>,
    Auth(who): Auth,
    headers: HeaderMap,
    TypedQuery(query): TypedQuery<StreamQuery>,
) -> Result<Response, ApiError> {
    let after = last_event_id(&headers, &query)?;
    let slot = state.streams.take(who.tenant)?;
    let events = open(&state, who.tenant, after).await?;
    let stream = stream::unfold((events, slot), |(mut events, slot)| async move {
        let sse = match events.next().await? {
            Ok(event) => Event::default()
                .id(event.position.to_string())
                .event(event.kind.name())
                .json_data(event.to_json())
                .unwrap_or_default(),
            Err(Broken::Lagged(e)) => Event::default()
                .event("lagged")
                .data(format!("{e}; reconnect with Last-Event-ID")),
            Err(Broken::Failed(e)) => Event::default().event("error").data(format!(
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
    TypedQuery(query): TypedQuery<StreamQuery>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let after = last_event_id(&headers, &query)?;
    let slot = state.streams.take(who.tenant)?;
    // Opened before the upgrade: a bad id or an unreachable bus is an HTTP error.
    let events = open(&state, who.tenant, after).await?;
    Ok(upgrade.on_upgrade(move |socket| async move {
        forward(socket, events).await;
        drop(slot);
    }))
}

fn message(event: &ExecutionEvent) -> serde_json::Value {
    json!({"id": event.position, "type": event.kind.name(), "event": event.to_json()})
}

/// Sends each event as a text message `{"id", "type", "event"}` until
/// either side closes; messages from the client are read only to notice
/// a close.
async fn forward(mut socket: WebSocket, mut events: Recorded) {
    loop {
        tokio::select! {
            next = events.next() => {
                let text = match next {
                    Some(Ok(event)) => message(&event),
                    Some(Err(Broken::Lagged(e))) => json!({"type": "lagged", "error": format!("{e}; reconnect with last_event_id")}),
                    Some(Err(Broken::Failed(e))) => json!({"type": "error", "error": format!("the event stream broke ({e}); reconnect with last_event_id")}),
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
