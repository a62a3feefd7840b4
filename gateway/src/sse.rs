//! Server-Sent Events of one execution, closing when it finishes.

use std::convert::Infallible;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use flowmesh_model::{ExecutionId, NodeStatus};
use flowmesh_services::records::ExecutionRecord;
use futures::stream::{self, BoxStream, StreamExt};
use serde_json::json;

use crate::access::Auth;
use crate::error::ApiError;
use crate::extract::{AppState, parse_id};

/// Events carry their per-execution `seq` as id; a client reconnecting
/// with `Last-Event-ID` gets only the events after it.
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
    let record = state.engine.get_execution(who.tenant, id).await?;
    let events: BoxStream<'static, Result<Event, Infallible>> = if record.status.is_terminal() {
        // Finished runs are told from the journal: their events may have aged out of the bus.
        stream::iter(journal_events(&record)).map(Ok).boxed()
    } else {
        let slot = state.streams.take(who.tenant)?;
        let live = state.engine.events(who.tenant, id).await?;
        stream::unfold(
            (live, false, slot),
            move |(mut live, done, slot)| async move {
                if done {
                    return None;
                }
                loop {
                    match live.next().await {
                        Some(Ok(event)) if event.seq <= after && !event.kind.is_final() => continue,
                        Some(Ok(event)) => {
                            let last = event.kind.is_final();
                            let sse = Event::default()
                                .id(event.seq.to_string())
                                .event(event.kind.name())
                                .json_data(event.to_json())
                                .unwrap_or_default();
                            return Some((Ok(sse), (live, last, slot)));
                        }
                        Some(Err(e)) => {
                            let sse = Event::default().event("error").data(e.to_string());
                            return Some((Ok(sse), (live, true, slot)));
                        }
                        None => return None,
                    }
                }
            },
        )
        .boxed()
    };
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

fn journal_events(record: &ExecutionRecord) -> Vec<Event> {
    let mut out = Vec::new();
    for step in &record.steps {
        let (name, body) = match step.status {
            NodeStatus::Succeeded => (
                "node_succeeded",
                json!({"node": step.node, "output": step.output}),
            ),
            NodeStatus::Failed => (
                "node_failed",
                json!({"node": step.node, "error": step.error}),
            ),
            NodeStatus::Skipped => ("node_skipped", json!({"node": step.node})),
            _ => continue,
        };
        let mut body = body;
        body["type"] = json!(name);
        body["execution_id"] = json!(record.id);
        out.push(
            Event::default()
                .event(name)
                .json_data(body)
                .unwrap_or_default(),
        );
    }
    let finished = json!({
        "type": "execution_finished",
        "execution_id": record.id,
        "status": record.status,
        "output": record.output,
        "error": record.error,
    });
    out.push(
        Event::default()
            .event("execution_finished")
            .json_data(finished)
            .unwrap_or_default(),
    );
    out
}
