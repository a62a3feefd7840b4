//! Server-Sent Events of one execution: its recorded events after the
//! client's last (`Last-Event-ID`, a `seq`; from the first without one),
//! then live ones, closing after the last event of a finished execution.

use std::convert::Infallible;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use flowmesh_model::ExecutionId;
use flowmesh_services::records::EventScope;
use futures::stream;

use crate::access::Auth;
use crate::error::ApiError;
use crate::extract::{AppState, parse_id};
use crate::replay::{Broken, Recorded, Start};

/// Events carry their per-execution `seq` as id.
pub async fn execution_events(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id: ExecutionId = parse_id(&id, "execution")?;
    let after = match headers.get("last-event-id") {
        None => 0,
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .ok_or_else(|| {
                ApiError::bad_request("Last-Event-ID: must be an event id of this stream")
            })?,
    };
    let slot = state.streams.take(who.tenant)?;
    // Subscribed before the record is read: nothing falls in between.
    let live = state.engine.live_events(who.tenant, id).await?;
    let record = state.engine.get_execution(who.tenant, id).await?;
    let last = state.engine.last_event_seq(id).await?;
    if after > last {
        return Err(ApiError::bad_request(format!(
            "Last-Event-ID: {after} is not an event of this execution yet (its newest is \
             {last}); reconnect with an id the stream sent, or without one"
        )));
    }
    let events = Recorded::new(
        state.engine.clone(),
        live,
        Start {
            tenant: who.tenant,
            scope: EventScope::Execution(id),
            after,
            replay: true,
            ends: record.status.is_terminal(),
        },
    );
    let stream = stream::unfold((events, slot), |(mut events, slot)| async move {
        let sse = match events.next().await? {
            Ok(event) => Event::default()
                .id(event.seq.to_string())
                .event(event.kind.name())
                .json_data(event.to_json())
                .unwrap_or_default(),
            Err(Broken::Lagged(e) | Broken::Failed(e)) => Event::default().event("error").data(
                format!("the event stream broke ({e}); reconnect with Last-Event-ID"),
            ),
        };
        Some((Ok::<_, Infallible>(sse), (events, slot)))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}
