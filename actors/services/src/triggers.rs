//! NATS publishers: messages on the public trigger subjects start
//! executions. A request gets a JSON reply once the execution is recorded
//! (`{"execution_id"}`), or, for a workflow with a respond node, the
//! response it chose. A plain publish gets nothing back: use a request to
//! know the message was accepted. A request is answered only on the
//! tenant's inbox prefix (`{prefix}.inbox.{tenant-slug}`); one that asks
//! for its answer elsewhere is refused, logged, and starts nothing.

use flowmesh_api::{ErrorCode, Outcome, Until};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use flowmesh_bus::{HEADER_STATUS, TriggerMessage, Triggers};
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

use super::api::EngineHandle;

/// Trigger messages handled at once by one process.
const CONCURRENT: usize = 256;
/// Of those, the most one tenant's messages hold: a request that waits for
/// its workflow's response holds its slot for up to `--max-sync-wait`, and
/// one tenant's waiting requests must not keep the others' out.
const PER_TENANT: usize = 32;
/// Refusals are logged at most this often, with how many went unlogged:
/// a flood of messages must not become a flood of log lines.
const LOG_EVERY_MS: i64 = 10_000;

/// The slots trigger messages are handled in.
struct Slots {
    all: Arc<Semaphore>,
    /// Slots held per tenant slug; a tenant holding none has no entry.
    tenants: Mutex<HashMap<String, usize>>,
}

/// One message's slot, given back when dropped.
struct Slot {
    slots: Arc<Slots>,
    tenant: String,
    _permit: OwnedSemaphorePermit,
}

impl Slots {
    /// A slot for a message of `tenant`, or none when the process or the
    /// tenant holds all it may. Never waits: the subscription is read on,
    /// so that messages do not pile up in the client's buffer meanwhile.
    fn try_take(self: &Arc<Self>, tenant: &str) -> Option<Slot> {
        let mut tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        let held = tenants.get(tenant).copied().unwrap_or(0);
        if held >= PER_TENANT {
            return None;
        }
        let permit = self.all.clone().try_acquire_owned().ok()?;
        tenants.insert(tenant.to_owned(), held + 1);
        Some(Slot {
            slots: self.clone(),
            tenant: tenant.to_owned(),
            _permit: permit,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut tenants = self.slots.tenants.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(held) = tenants.get_mut(&self.tenant) {
            *held -= 1;
            if *held == 0 {
                tenants.remove(&self.tenant);
            }
        }
    }
}

/// A warning logged at most every [`LOG_EVERY_MS`].
struct Throttled {
    last_ms: AtomicI64,
    unlogged: AtomicU64,
}

impl Throttled {
    const fn new() -> Self {
        Self {
            last_ms: AtomicI64::new(i64::MIN),
            unlogged: AtomicU64::new(0),
        }
    }

    /// Whether to log now, and how many were left unlogged since the last.
    fn due(&self) -> Option<u64> {
        let now = flowmesh_store::now_ms();
        let last = self.last_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= LOG_EVERY_MS
            && self
                .last_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            Some(self.unlogged.swap(0, Ordering::Relaxed))
        } else {
            self.unlogged.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

static BUSY: Throttled = Throttled::new();
static REFUSED: Throttled = Throttled::new();

pub(super) async fn serve(handle: EngineHandle, mut triggers: Triggers) {
    let slots = Arc::new(Slots {
        all: Arc::new(Semaphore::new(CONCURRENT)),
        tenants: Mutex::default(),
    });
    while let Some(message) = triggers.next().await {
        let Some(slot) = slots.try_take(&message.tenant_slug) else {
            busy(&handle, &message).await;
            continue;
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
            drop(slot);
        });
    }
}

/// Refuses a message no slot was free for: nothing starts, and a request
/// is told to try again.
async fn busy(handle: &EngineHandle, message: &TriggerMessage) {
    crate::metrics::trigger_refused("busy");
    if let Some(unlogged) = BUSY.due() {
        tracing::warn!(
            tenant = %message.tenant_slug,
            unlogged,
            "NATS trigger messages refused: this process handles {CONCURRENT} at once, {PER_TENANT} per tenant"
        );
    }
    let Some(reply) = message.reply.as_deref().filter(|_| !message.foreign_reply) else {
        return;
    };
    let body = json!({"error": {
        "code": ErrorCode::RateLimited,
        "message": format!(
            "this process is handling as many of this tenant's trigger messages as it may \
             ({PER_TENANT} at once, or {CONCURRENT} across tenants); nothing was started, \
             and sending again later is safe"
        ),
        "retryable": true,
    }});
    let body = serde_json::to_vec(&body).unwrap_or_default();
    if let Err(e) = handle.shared.bus.reply(reply, &[], body).await {
        tracing::debug!(error = %e, "could not answer a NATS trigger request");
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
                Some(Outcome::Responded { status, body, .. }) => Ok((status, body)),
                Some(Outcome::Finished {
                    status,
                    output,
                    error,
                }) => Ok((
                    200,
                    json!({"execution_id": started.execution, "status": status, "output": output, "error": error}),
                )),
                // Where it stands: queued until a process takes it up.
                None => handle
                    .get_execution(started.tenant, started.execution)
                    .await
                    .map(|record| {
                        (
                            202,
                            json!({"execution_id": started.execution, "status": record.status}),
                        )
                    }),
            }
        }
        Ok(started) => Ok((202, json!({"execution_id": started.execution}))),
        Err(e) => Err(e),
    };
    let Some(reply) = &message.reply else {
        if let Err(e) = answer {
            crate::metrics::trigger_refused(e.code().as_str());
            if let Some(unlogged) = REFUSED.due() {
                tracing::warn!(error = %e, unlogged, "a NATS trigger message was refused");
            }
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
