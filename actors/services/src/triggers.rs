//! NATS publishers: messages on the public trigger subjects start
//! executions. A request gets a JSON reply once the execution is recorded
//! (`{"execution_id"}`), or, for a workflow with a respond node, the
//! response it chose. A plain publish gets nothing back: use a request to
//! know the message was accepted. A request is answered only on the
//! tenant's inbox prefix (`{prefix}.inbox.{tenant-slug}`); one that asks
//! for its answer elsewhere is refused, logged, and starts nothing.

use flowmesh_api::{Outcome, Until};
use std::sync::Arc;

use flowmesh_bus::{HEADER_STATUS, TriggerMessage, Triggers};
use serde_json::json;
use tokio::sync::Semaphore;
use tracing::Instrument;

use super::api::EngineHandle;

/// Trigger messages handled at once by one process.
const CONCURRENT: usize = 256;

pub(super) async fn serve(handle: EngineHandle, mut triggers: Triggers) {
    let permits = Arc::new(Semaphore::new(CONCURRENT));
    while let Some(message) = triggers.next().await {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let span = tracing::info_span!(
                "nats.message",
                otel.name = "nats trigger",
                otel.kind = "consumer",
                messaging.system = "nats",
                tenant = %message.tenant_slug,
                trigger = %message.subject,
            );
            crate::trace::set_parent(&span, message.traceparent.as_deref());
            handle_one(&handle, &message).instrument(span).await;
            drop(permit);
        });
    }
}

async fn handle_one(handle: &EngineHandle, message: &TriggerMessage) {
    if message.foreign_reply {
        // Answering would publish, with the engine's rights, where the
        // requester may not: another tenant's inbox or event subjects.
        tracing::warn!(
            reply = message.reply.as_deref().unwrap_or_default(),
            "refused a NATS trigger request whose reply subject is outside the tenant's inbox; nothing started"
        );
        return;
    }
    let answer = match handle.nats_trigger(message).await {
        Ok(started) if message.reply.is_some() && started.responds => {
            let wait = handle.shared.options.max_sync_wait.0;
            match handle.await_outcome(&started, Until::Responded, wait).await {
                Ok(Some(Outcome::Responded { status, body, .. })) => Ok((status, body)),
                Ok(Some(Outcome::Finished {
                    status,
                    output,
                    error,
                })) => Ok((
                    200,
                    json!({"execution_id": started.execution, "status": status, "output": output, "error": error}),
                )),
                Ok(None) => Ok((
                    202,
                    json!({"execution_id": started.execution, "status": "running"}),
                )),
                Err(e) => Err(e),
            }
        }
        Ok(started) => Ok((202, json!({"execution_id": started.execution}))),
        Err(e) => Err(e),
    };
    let Some(reply) = &message.reply else {
        if let Err(e) = answer {
            tracing::warn!(error = %e, "a NATS trigger message was refused");
        }
        return;
    };
    let (status, body) = match answer {
        Ok(answer) => answer,
        Err(e) => (
            0,
            json!({"error": {"code": e.code(), "message": e.to_string(), "retryable": e.is_retryable()}}),
        ),
    };
    let body = serde_json::to_vec(&body).unwrap_or_default();
    let sent = if status == 0 {
        handle.shared.bus.reply(reply, &[], body).await
    } else {
        let status = status.to_string();
        handle
            .shared
            .bus
            .reply(reply, &[(HEADER_STATUS, status.as_str())], body)
            .await
    };
    if let Err(e) = sent {
        tracing::warn!(error = %e, "could not answer a NATS trigger request");
    }
}
